package storetest

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"math/rand"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kern-agents/trace-gateway/internal/convert"
	"github.com/kern-agents/trace-gateway/internal/model"
	"github.com/kern-agents/trace-gateway/internal/store"
)

// Run runs the conformance suite. open returns a store with the default
// table names on a fresh, empty database and closes it when the test ends.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	t.Run("Schema", func(t *testing.T) { CheckSchema(t, open(t)) })
	t.Run("RoundTrip", func(t *testing.T) { testRoundTrip(t, open(t)) })
	t.Run("EmptyBatch", func(t *testing.T) {
		s := open(t)
		if err := s.Write(context.Background(), nil); err != nil {
			t.Fatalf("Write(nil) = %v", err)
		}
	})
	t.Run("Ping", func(t *testing.T) {
		if err := open(t).Ping(context.Background()); err != nil {
			t.Fatalf("Ping = %v", err)
		}
	})
	t.Run("Idempotent", func(t *testing.T) { testIdempotent(t, open(t)) })
	t.Run("SpanIDOfAnotherTrace", func(t *testing.T) { testSpanIDOfAnotherTrace(t, open(t)) })
	t.Run("TraceRules", func(t *testing.T) { testTraceRules(t, open) })
	t.Run("Random", func(t *testing.T) {
		for _, seed := range []int64{1, 2, 3, 4, 5} {
			t.Run(fmt.Sprint("seed", seed), func(t *testing.T) { testRandom(t, open(t), seed) })
		}
	})
	t.Run("Concurrent", func(t *testing.T) { WriteConcurrently(t, open(t), 42) })
	t.Run("SeedQuery", func(t *testing.T) { testSeedQuery(t, open(t)) })
	t.Run("CrossServiceTrace", func(t *testing.T) { testCrossServiceTrace(t, open) })
}

// RunOptions covers what depends on store.Options and on what the database
// already holds: custom table names, opening a database that is already set
// up while another store has it open, and taking over tables AgentOS or an
// earlier gateway created. dialect is the stores' ("postgres" or "sqlite");
// fresh returns Options (DSN, and Schema for PostgreSQL) of a new, empty
// database; open opens a store with them and closes it when the test ends
// (Close must be safe to call twice).
func RunOptions(t *testing.T, dialect string, fresh func(t *testing.T) store.Options, open func(t *testing.T, opts store.Options) store.Store) {
	t.Run("Adoption", func(t *testing.T) { runAdoption(t, dialect, fresh, open) })
	t.Run("TableNames", func(t *testing.T) {
		opts := fresh(t)
		opts.TracesTable, opts.SpansTable = "kern_traces_custom", "kern_spans_custom"
		s := open(t, opts)
		traces, spans := s.Tables()
		if !strings.Contains(traces, opts.TracesTable) || !strings.Contains(spans, opts.SpansTable) {
			t.Fatalf("Tables() = %s, %s; want the custom names", traces, spans)
		}
		CheckSchema(t, s)
		tr := AgentTrace(rand.New(rand.NewSource(1)), time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC))
		write(t, s, tr...)
		checkTraces(t, s, map[string][]model.Span{tr[0].TraceID: tr})
	})
	t.Run("OpenTwice", func(t *testing.T) {
		opts := fresh(t)
		r := rand.New(rand.NewSource(2))
		tr := AgentTrace(r, time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC))
		a := open(t, opts)
		write(t, a, tr[:5]...)
		b := open(t, opts)
		CheckSchema(t, b)
		checkTraces(t, b, map[string][]model.Span{tr[0].TraceID: tr[:5]})
		write(t, b, tr[5:]...)
		checkTraces(t, a, map[string][]model.Span{tr[0].TraceID: tr})
		if err := a.Close(); err != nil {
			t.Fatal(err)
		}
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
		c := open(t, opts)
		checkTraces(t, c, map[string][]model.Span{tr[0].TraceID: tr})
		spans, err := ReadAllSpans(context.Background(), c)
		if err != nil {
			t.Fatal(err)
		}
		if len(spans) != len(tr) {
			t.Fatalf("after reopening: %d spans stored, want %d", len(spans), len(tr))
		}
	})
}

func write(t *testing.T, s store.Store, spans ...model.Span) {
	t.Helper()
	if err := s.Write(context.Background(), spans); err != nil {
		t.Fatalf("Write(%d spans): %v", len(spans), err)
	}
}

// checkTraces compares every stored trace row with ExpectedTrace of the given
// spans (which must be exactly the stored ones) and checks that no other
// trace row exists.
func checkTraces(t *testing.T, s store.Store, byTrace map[string][]model.Span) map[string]TraceRow {
	t.Helper()
	got, err := ReadAllTraces(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	for id, spans := range byTrace {
		row, ok := got[id]
		if !ok {
			t.Errorf("trace %s: no row", id)
			continue
		}
		checkRow(t, row, ExpectedTrace(spans))
	}
	for id := range got {
		if _, ok := byTrace[id]; !ok {
			t.Errorf("trace %s: unexpected row %+v", id, got[id])
		}
	}
	return got
}

func checkRow(t *testing.T, got, want TraceRow) {
	t.Helper()
	if got.CreatedAt == "" {
		t.Errorf("trace %s: empty created_at", got.TraceID)
	} else if _, err := model.ParseTime(got.CreatedAt); err != nil {
		t.Errorf("trace %s: created_at %q: %v", got.TraceID, got.CreatedAt, err)
	}
	got.CreatedAt, want.CreatedAt = "", ""
	if got != want {
		t.Errorf("trace %s:\n got  %+v\n want %+v", want.TraceID, got, want)
	}
}

// at is a fixed clock for hand-written spans: ms and µs after a base time.
func at(ms int64, us ...int64) string {
	d := time.Duration(ms) * time.Millisecond
	for _, u := range us {
		d += time.Duration(u) * time.Microsecond
	}
	return model.FormatTime(time.Date(2025, 6, 1, 9, 30, 0, 0, time.UTC).Add(d))
}

func span(trace, id, parent, name string, start, end int64, status string, attrs map[string]any) model.Span {
	sp := model.Span{
		SpanID: id, TraceID: trace, ParentSpanID: parent, Name: name, SpanKind: "INTERNAL",
		StatusCode: status, StartTime: at(start), EndTime: at(end), DurationMS: max(0, end-start),
		CreatedAt: at(100000),
	}
	if attrs != nil {
		sp.Attributes = mustJSON(attrs)
	}
	return sp
}

func testRoundTrip(t *testing.T, s store.Store) {
	ctx := context.Background()
	trace := "0af7651916cd43dd8448eb211c80319c"
	origin := convert.NewOrigin([]byte(`{"service.name":"agentos","kern.tenant":"acme"}`),
		[]byte(`{"name":"openinference.instrumentation.agno","version":"0.1.28"}`))
	origin.Tenant = "acme"
	attrs := map[string]any{
		"string":          "héllo \"quoted\" \\ back\nslash\ttab ✓ 😀 <tag> & 'single'",
		"empty_string":    "",
		"true":            true,
		"false":           false,
		"int":             int64(42),
		"negative":        int64(-7),
		"beyond_2_53":     int64(1)<<62 + 1,
		"max_int64":       int64(math.MaxInt64),
		"min_int64":       int64(math.MinInt64),
		"double":          3.141592653589793,
		"tiny":            5e-324,
		"huge":            1.7976931348623157e308,
		"strings":         []string{"a", "b", ""},
		"ints":            []int64{1, int64(1)<<60 + 3, -5},
		"doubles":         []float64{0.5, -2.25, 1e-9},
		"bools":           []bool{true, false},
		"mixed":           []any{1, "two", 3.5, nil, false},
		"nested":          map[string]any{"a": map[string]any{"b": []any{map[string]any{"c": true}, []any{}}}},
		"null":            nil,
		"empty_object":    map[string]any{},
		"agno.run.id":     "run-1",
		model.KeyResource: origin.ID,
	}
	spans := []model.Span{
		{
			SpanID: "b7ad6b7169203331", TraceID: trace, Name: "Agent.run ✓", SpanKind: "SERVER",
			StatusCode: model.StatusOK, StartTime: at(0, 123), EndTime: at(1500, 456), DurationMS: 1500,
			Attributes: mustJSON(attrs), CreatedAt: at(2000), Origin: origin,
		},
		{
			SpanID: "00f067aa0ba902b7", TraceID: trace, ParentSpanID: "b7ad6b7169203331", Name: "tool",
			SpanKind: "CLIENT", StatusCode: model.StatusError, StatusMessage: "line one\nline two: ünïcode",
			StartTime: at(10), EndTime: at(20), DurationMS: 10, CreatedAt: at(2000), Origin: origin,
			Attributes: []byte(`{"k":"v","` + model.KeyResource + `":"` + origin.ID + `"}`),
		},
		{
			// No attributes, no parent, no status message: all NULL (its
			// origin is its trace's usual one, so no reference is added).
			SpanID: "1111111111111111", TraceID: trace, Name: "bare", SpanKind: "INTERNAL",
			StatusCode: model.StatusUnset, StartTime: at(5), EndTime: at(6), DurationMS: 1, CreatedAt: at(2000),
			Origin: origin,
		},
	}
	write(t, s, spans...)
	got, err := ReadSpans(ctx, s, trace)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(spans) {
		t.Fatalf("read %d spans, want %d", len(got), len(spans))
	}
	byID := map[string]model.Span{}
	for _, sp := range got {
		byID[sp.SpanID] = sp
	}
	for _, want := range spans {
		if d := SpanDiff(want, byID[want.SpanID]); d != "" {
			t.Error(d)
		}
	}

	// Empty optional fields are NULL, not empty strings.
	_, spansTable := s.Tables()
	var nulls [3]int
	err = s.DB().QueryRowContext(ctx, `SELECT
		SUM(CASE WHEN parent_span_id IS NULL THEN 1 ELSE 0 END),
		SUM(CASE WHEN status_message IS NULL THEN 1 ELSE 0 END),
		SUM(CASE WHEN attributes IS NULL THEN 1 ELSE 0 END)
		FROM `+spansTable+` WHERE trace_id = `+placeholder(s, 1), trace).Scan(&nulls[0], &nulls[1], &nulls[2])
	if err != nil {
		t.Fatal(err)
	}
	if nulls != [3]int{2, 2, 1} {
		t.Errorf("NULL parent_span_id, status_message, attributes = %v, want [2 2 1]", nulls)
	}

	// The JSON is queryable as JSON, big integers included.
	var big string
	q := `SELECT attributes ->> 'beyond_2_53' FROM ` + spansTable + ` WHERE span_id = ` + placeholder(s, 1)
	if s.Dialect() == "sqlite" {
		q = `SELECT CAST(json_extract(attributes, '$.beyond_2_53') AS TEXT) FROM ` + spansTable + ` WHERE span_id = ?1`
	}
	if err := s.DB().QueryRowContext(ctx, q, "b7ad6b7169203331").Scan(&big); err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprint(int64(1)<<62 + 1); big != want {
		t.Errorf("attributes.beyond_2_53 read in SQL = %s, want %s", big, want)
	}
	checkTraces(t, s, map[string][]model.Span{trace: spans})
	checkOrigins(t, s, spans, origin)
}

func testIdempotent(t *testing.T, s store.Store) {
	ctx := context.Background()
	tr := "11111111111111111111111111111111"
	root := span(tr, "aaaaaaaaaaaaaaaa", "", "root", 0, 100, model.StatusOK, map[string]any{"agno.session.id": "s1"})
	changed := root
	changed.Name, changed.StatusCode, changed.EndTime = "changed", model.StatusError, at(5000)
	changed.Attributes = mustJSON(map[string]any{"agno.session.id": "s2"})
	child := span(tr, "bbbbbbbbbbbbbbbb", root.SpanID, "child", 10, 20, model.StatusOK, nil)

	// In one batch the first one wins.
	write(t, s, root, changed, child, root)
	first := checkTraces(t, s, map[string][]model.Span{tr: {root, child}})[tr]
	// Across batches the stored one wins, and the trace row stays as it was.
	write(t, s, changed)
	write(t, s, root, child)
	again := checkTraces(t, s, map[string][]model.Span{tr: {root, child}})[tr]
	if again != first {
		t.Errorf("trace row changed by repeated spans:\n before %+v\n after  %+v", first, again)
	}
	got, err := ReadSpans(ctx, s, tr)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("%d spans stored, want 2", len(got))
	}
	for i, want := range []model.Span{root, child} {
		if d := SpanDiff(want, got[i]); d != "" {
			t.Error(d)
		}
	}
}

// A span id is unique across traces: a span whose id is stored under another
// trace is skipped, and its trace gets no row unless another span lands.
func testSpanIDOfAnotherTrace(t *testing.T, s store.Store) {
	t1, t2, t3 := strings.Repeat("1", 32), strings.Repeat("2", 32), strings.Repeat("3", 32)
	a := span(t1, "aaaaaaaaaaaaaaaa", "", "a", 0, 10, model.StatusOK, nil)
	write(t, s, a)
	clash := span(t2, a.SpanID, "", "clash", 0, 50, model.StatusError, nil)
	write(t, s, clash)
	checkTraces(t, s, map[string][]model.Span{t1: {a}})

	clash3 := span(t3, a.SpanID, "", "clash", 0, 50, model.StatusError, nil)
	other := span(t3, "cccccccccccccccc", "aaaaaaaaaaaaaaaa", "other", 5, 7, model.StatusOK, nil)
	write(t, s, clash3, other)
	checkTraces(t, s, map[string][]model.Span{t1: {a}, t3: {other}})
}

type ruleCase struct {
	name    string
	batches [][]model.Span
	want    TraceRow // TraceID is filled in
}

func ruleCases() []ruleCase {
	const tr = "0123456789abcdef0123456789abcdef"
	sp := func(id, parent, name string, start, end int64, status string, attrs map[string]any) model.Span {
		return span(tr, id, parent, name, start, end, status, attrs)
	}
	str := func(s string) sql.NullString { return sql.NullString{String: s, Valid: true} }
	const root, c1, c2 = "0000000000000001", "0000000000000002", "0000000000000003"
	return []ruleCase{
		{
			name:    "root only",
			batches: [][]model.Span{{sp(root, "", "run", 0, 1234, model.StatusOK, nil)}},
			want:    TraceRow{Name: "run", Status: model.StatusOK, StartTime: at(0), EndTime: at(1234), DurationMS: 1234},
		},
		{
			name: "children before root",
			batches: [][]model.Span{
				{sp(c1, root, "child", 10, 20, model.StatusOK, nil), sp(c2, c1, "grandchild", 5, 30, model.StatusUnset, nil)},
				{sp(root, "", "run", 8, 25, model.StatusUnset, nil)},
			},
			want: TraceRow{Name: "run", Status: model.StatusOK, StartTime: at(5), EndTime: at(30), DurationMS: 25},
		},
		{
			name: "no root yet: the earliest span's name, status OK",
			batches: [][]model.Span{
				{sp(c1, root, "later", 10, 20, model.StatusUnset, nil)},
				{sp(c2, root, "earlier", 5, 6, model.StatusUnset, nil)},
			},
			want: TraceRow{Name: "earlier", Status: model.StatusOK, StartTime: at(5), EndTime: at(20), DurationMS: 15},
		},
		{
			name: "no root, same start: the smallest name",
			batches: [][]model.Span{
				{sp(c1, root, "b-span", 5, 20, model.StatusOK, nil)},
				{sp(c2, root, "B-span", 5, 6, model.StatusOK, nil)},
				{sp("0000000000000004", root, "c-span", 5, 6, model.StatusOK, nil)},
			},
			want: TraceRow{Name: "B-span", Status: model.StatusOK, StartTime: at(5), EndTime: at(20), DurationMS: 15},
		},
		{
			name:    "all spans UNSET: status OK, never UNSET",
			batches: [][]model.Span{{sp(root, "", "run", 0, 10, model.StatusUnset, nil), sp(c1, root, "child", 1, 2, model.StatusUnset, nil)}},
			want:    TraceRow{Name: "run", Status: model.StatusOK, StartTime: at(0), EndTime: at(10), DurationMS: 10},
		},
		{
			name: "an error anywhere, in a later batch",
			batches: [][]model.Span{
				{sp(root, "", "run", 0, 100, model.StatusOK, nil)},
				{sp(c1, root, "tool", 10, 20, model.StatusError, nil)},
			},
			want: TraceRow{Name: "run", Status: model.StatusError, StartTime: at(0), EndTime: at(100), DurationMS: 100},
		},
		{
			name: "a later OK batch never overwrites ERROR",
			batches: [][]model.Span{
				{sp(c1, root, "tool", 10, 20, model.StatusError, nil)},
				{sp(root, "", "run", 0, 100, model.StatusOK, nil)},
				{sp(c2, root, "llm", 30, 40, model.StatusOK, nil)},
			},
			want: TraceRow{Name: "run", Status: model.StatusError, StartTime: at(0), EndTime: at(100), DurationMS: 100},
		},
		{
			name: "error without root",
			batches: [][]model.Span{
				{sp(c1, root, "tool", 10, 20, model.StatusError, nil)},
			},
			want: TraceRow{Name: "tool", Status: model.StatusError, StartTime: at(10), EndTime: at(20), DurationMS: 10},
		},
		{
			name: "two roots: the earliest",
			batches: [][]model.Span{
				{sp(c1, "", "second", 5, 10, model.StatusOK, map[string]any{"agno.run.id": "r-second"}),
					sp(c2, "", "first", 3, 4, model.StatusOK, map[string]any{"agno.run.id": "r-first"})},
			},
			want: TraceRow{Name: "first", Status: model.StatusOK, StartTime: at(3), EndTime: at(10), DurationMS: 7, RunID: str("r-first")},
		},
		{
			name: "two roots, same start: the lower span id, whichever comes first",
			batches: [][]model.Span{
				{sp(c2, "", "higher id", 5, 10, model.StatusOK, map[string]any{"agno.session.id": "s-high"})},
				{sp(c1, "", "lower id", 5, 6, model.StatusOK, map[string]any{"agno.user.id": "u-low"})},
			},
			want: TraceRow{Name: "lower id", Status: model.StatusOK, StartTime: at(5), EndTime: at(10), DurationMS: 5, UserID: str("u-low")},
		},
		{
			name: "team run: ids from the team's root span, never from its member's run",
			batches: [][]model.Span{
				{sp(c1, root, "Researcher.run", 10, 80, model.StatusOK, map[string]any{
					"openinference.span.kind": "AGENT", "agno.agent.id": "researcher", "agno.run.id": "member-run",
					"agno.session.id": "member-session", "session.id": "member-session",
				})},
				{sp(root, "", "Research_Team.run", 0, 100, model.StatusOK, map[string]any{
					"openinference.span.kind": "AGENT", "agno.team.id": "research-team", "agno.run.id": "team-run",
					"session.id": "team-session", "user.id": "ada",
				})},
			},
			want: TraceRow{
				Name: "Research_Team.run", Status: model.StatusOK, StartTime: at(0), EndTime: at(100), DurationMS: 100,
				RunID: str("team-run"), SessionID: str("team-session"), UserID: str("ada"), TeamID: str("research-team"),
			},
		},
		{
			name: "ids NULL while no root is stored, even when children carry them",
			batches: [][]model.Span{
				{sp(c1, root, "child", 1, 2, model.StatusOK, map[string]any{"agno.session.id": "s", "agno.agent.id": "a", "run_id": "r"})},
			},
			want: TraceRow{Name: "child", Status: model.StatusOK, StartTime: at(1), EndTime: at(2), DurationMS: 1},
		},
		{
			name: "ids: agno's key order",
			batches: [][]model.Span{{sp(root, "", "run", 0, 9, model.StatusOK, map[string]any{
				"run_id": "r-plain", "agno.run.id": "r-agno",
				"agno.session.id": "s-agno", "session.id": "s-oi", "gen_ai.conversation.id": "s-genai",
				"user.id": "u-oi", "enduser.id": "u-enduser",
				"gen_ai.agent.id": "a-genai",
				"team.id":         "t-oi",
				"workflow_id":     "w-plain", "agno.workflow.id": "w-agno",
			})}},
			want: TraceRow{
				Name: "run", Status: model.StatusOK, StartTime: at(0), EndTime: at(9), DurationMS: 9,
				RunID: str("r-plain"), SessionID: str("s-agno"), UserID: str("u-oi"), AgentID: str("a-genai"),
				TeamID: str("t-oi"), WorkflowID: str("w-plain"),
			},
		},
		{
			name: "ids: GenAI keys only where agno's are absent",
			batches: [][]model.Span{{sp(root, "", "invoke_agent", 0, 9, model.StatusOK, map[string]any{
				"gen_ai.conversation.id": "conv-1", "enduser.id": "u-1", "gen_ai.agent.id": "asst_1",
			})}},
			want: TraceRow{
				Name: "invoke_agent", Status: model.StatusOK, StartTime: at(0), EndTime: at(9), DurationMS: 9,
				SessionID: str("conv-1"), UserID: str("u-1"), AgentID: str("asst_1"),
			},
		},
		{
			name: "ids: empty, zero and non-string values do not count",
			batches: [][]model.Span{{
				sp(root, "", "run", 0, 9, model.StatusOK, map[string]any{
					"session_id": "", "agno.session.id": "s",
					"run_id": 0, "agno.run.id": 7,
					"agent_id": nil, "agno.agent.id": map[string]any{"id": "x"}, "gen_ai.agent.id": false,
					"team_id": []any{"t"}, "agno.team.id": 2.5, "team.id": 4.0,
					"workflow_id": true, "agno.workflow.id": "   ",
					"user_id": strings.Repeat("u", 300),
				}),
				sp(c1, root, "child", 1, 2, model.StatusOK, map[string]any{"agno.user.id": "child-user", "agno.agent.id": "child-agent"}),
			}},
			want: TraceRow{
				Name: "run", Status: model.StatusOK, StartTime: at(0), EndTime: at(9), DurationMS: 9,
				RunID: str("7"), SessionID: str("s"), TeamID: str("4"),
			},
		},
		{
			name:    "end before start: duration 0",
			batches: [][]model.Span{{sp(root, "", "run", 50, 20, model.StatusOK, nil)}},
			want:    TraceRow{Name: "run", Status: model.StatusOK, StartTime: at(50), EndTime: at(20), DurationMS: 0},
		},
		{
			name: "duration truncates to whole ms",
			batches: [][]model.Span{{func() model.Span {
				s := sp(root, "", "run", 0, 0, model.StatusOK, nil)
				s.EndTime = at(1, 999)
				return s
			}()}},
			want: TraceRow{Name: "run", Status: model.StatusOK, StartTime: at(0), EndTime: at(1, 999), DurationMS: 1},
		},
	}
}

func testTraceRules(t *testing.T, open func(t *testing.T) store.Store) {
	s := open(t)
	for i, tc := range ruleCases() {
		t.Run(tc.name, func(t *testing.T) {
			// Each case gets its own trace id in the shared store.
			tr := fmt.Sprintf("%032x", i+1)
			var all []model.Span
			var createdAt string
			for _, b := range tc.batches {
				for j := range b {
					b[j].TraceID = tr
					b[j].SpanID = fmt.Sprintf("%02x%s", i+1, b[j].SpanID[2:])
					if b[j].ParentSpanID != "" {
						b[j].ParentSpanID = fmt.Sprintf("%02x%s", i+1, b[j].ParentSpanID[2:])
					}
				}
				write(t, s, b...)
				all = append(all, b...)
				row, ok, err := ReadTrace(context.Background(), s, tr)
				if err != nil || !ok {
					t.Fatalf("ReadTrace = %v, %v", ok, err)
				}
				if createdAt == "" {
					createdAt = row.CreatedAt
				} else if row.CreatedAt != createdAt {
					t.Errorf("created_at changed from %s to %s", createdAt, row.CreatedAt)
				}
				checkRow(t, row, ExpectedTrace(all))
			}
			want := tc.want
			want.TraceID = tr
			// The hand-written expectation checks the reference too.
			if ref := ExpectedTrace(all); ref != want {
				t.Errorf("ExpectedTrace:\n got  %+v\n want %+v", ref, want)
			}
			row, _, _ := ReadTrace(context.Background(), s, tr)
			checkRow(t, row, want)
		})
	}
}

// testRandom writes random traces, shuffled (children before roots, late
// spans), with repeated span ids, in random batches, and checks after every
// batch that each touched trace row follows from its stored spans.
func testRandom(t *testing.T, s store.Store, seed int64) {
	t.Logf("seed %d", seed)
	ctx := context.Background()
	r := rand.New(rand.NewSource(seed))
	var all []model.Span
	for _, tr := range randomTraces(r, genOptions{traces: 25, maxSpans: 10}) {
		all = append(all, tr...)
	}
	// Repeats: the same span again, or a different span with the same id.
	for _, sp := range all[:len(all)/8] {
		if r.Intn(2) == 0 {
			sp.Name += " (changed)"
			sp.StatusCode = model.StatusError
			sp.EndTime = at(99999)
		}
		all = append(all, sp)
	}
	r.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })

	stored := map[string]model.Span{}
	byTrace := map[string][]string{}
	created := map[string]string{}
	for len(all) > 0 {
		n := min(len(all), 1+r.Intn(30))
		batch := all[:n]
		all = all[n:]
		write(t, s, batch...)
		touched := map[string]bool{}
		for _, sp := range batch {
			touched[sp.TraceID] = true
			if _, ok := stored[sp.SpanID]; !ok {
				stored[sp.SpanID] = sp
				byTrace[sp.TraceID] = append(byTrace[sp.TraceID], sp.SpanID)
			}
		}
		for tr := range touched {
			row, ok, err := ReadTrace(ctx, s, tr)
			if err != nil || !ok {
				t.Fatalf("trace %s: ReadTrace = %v, %v", tr, ok, err)
			}
			var spans []model.Span
			for _, id := range byTrace[tr] {
				spans = append(spans, stored[id])
			}
			checkRow(t, row, ExpectedTrace(spans))
			if c, ok := created[tr]; ok && c != row.CreatedAt {
				t.Errorf("trace %s: created_at changed from %s to %s", tr, c, row.CreatedAt)
			}
			created[tr] = row.CreatedAt
		}
		if t.Failed() {
			t.FailNow()
		}
	}
	got, err := ReadAllSpans(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(stored) {
		t.Errorf("%d spans stored, want %d", len(got), len(stored))
	}
	for id, want := range stored {
		if d := SpanDiff(want, got[id]); d != "" {
			t.Error(d)
		}
		switch k := got[id].SpanKind; k {
		case model.KindInternal, model.KindServer, model.KindClient, model.KindProducer, model.KindConsumer:
		default:
			t.Errorf("span %s: span_kind %q, not one AgentOS writes", id, k)
		}
	}
	traces, err := ReadAllTraces(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	if len(traces) != len(byTrace) {
		t.Errorf("%d trace rows, want %d", len(traces), len(byTrace))
	}
}

// WriteConcurrently writes the same traces from several goroutines at once:
// some write every span (so most are repeats), others a share of them (so
// traces grow from several writers at once). No write may fail (no
// deadlock), and the rows must come out as if written one after the other.
func WriteConcurrently(t *testing.T, s store.Store, seed int64) {
	t.Helper()
	r := rand.New(rand.NewSource(seed))
	byTrace := map[string][]model.Span{}
	var all []model.Span
	for _, tr := range randomTraces(r, genOptions{traces: 20, maxSpans: 12}) {
		byTrace[tr[0].TraceID] = tr
		all = append(all, tr...)
	}
	const workers = 6
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewSource(seed + int64(w) + 1))
			var mine []model.Span
			for i, sp := range all {
				if w%2 == 0 || i%(workers/2) == w/2 {
					mine = append(mine, sp)
				}
			}
			r.Shuffle(len(mine), func(i, j int) { mine[i], mine[j] = mine[j], mine[i] })
			for len(mine) > 0 {
				n := min(len(mine), 1+r.Intn(25))
				if err := s.Write(context.Background(), mine[:n]); err != nil {
					errs <- err
					return
				}
				mine = mine[n:]
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent Write: %v", err)
	}
	got, err := ReadAllTraces(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	for id, spans := range byTrace {
		checkRow(t, got[id], ExpectedTrace(spans))
	}
	stored, err := ReadAllSpans(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range all {
		if d := SpanDiff(want, stored[want.SpanID]); d != "" {
			t.Error(d)
		}
	}
}

// testSeedQuery runs the example query of the data contract verbatim.
func testSeedQuery(t *testing.T, s store.Store) {
	ctx := context.Background()
	tr := strings.Repeat("5", 32)
	type agg struct {
		sum, n int64
	}
	want := map[string]*agg{}
	var spans []model.Span
	for i := range 14 {
		name := fmt.Sprintf("op-%02d", i)
		want[name] = &agg{}
		for j := range 1 + i%4 {
			d := int64(i*37%14*100 + j*7)
			sp := span(tr, fmt.Sprintf("%04x%012x", i, j), "", name, 0, d, model.StatusOK, nil)
			if i+j > 0 {
				sp.ParentSpanID = "0000000000000000"
			}
			spans = append(spans, sp)
			want[name].sum += d
			want[name].n++
		}
	}
	write(t, s, spans...)

	type row struct {
		name  string
		avg   float64
		calls int64
	}
	var expected []row
	for name, a := range want {
		expected = append(expected, row{name, float64(a.sum) / float64(a.n), a.n})
	}
	sort.Slice(expected, func(i, j int) bool { return expected[i].avg > expected[j].avg })
	expected = expected[:10]

	tx, err := s.DB().BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback() //nolint:errcheck // read-only
	if s.Dialect() == "postgres" {
		traces, _ := s.Tables()
		schema := splitIdent(traces)[0]
		if _, err := tx.ExecContext(ctx, `SET LOCAL search_path TO "`+strings.ReplaceAll(schema, `"`, `""`)+`"`); err != nil {
			t.Fatal(err)
		}
	}
	rows, err := tx.QueryContext(ctx, `SELECT name, AVG(duration_ms) AS avg_ms, COUNT(*) AS calls
FROM agno_spans GROUP BY name ORDER BY avg_ms DESC LIMIT 10;`)
	if err != nil {
		t.Fatalf("seed query: %v", err)
	}
	defer rows.Close()
	var got []row
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.name, &r.avg, &r.calls); err != nil {
			t.Fatal(err)
		}
		got = append(got, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(expected) {
		t.Fatalf("seed query returned %d rows, want %d: %v", len(got), len(expected), got)
	}
	for i := range got {
		if got[i].name != expected[i].name || math.Abs(got[i].avg-expected[i].avg) > 1e-9 || got[i].calls != expected[i].calls {
			t.Errorf("row %d = %+v, want %+v", i, got[i], expected[i])
		}
	}
}
