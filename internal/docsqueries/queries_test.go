package docsqueries_test

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.opentelemetry.io/collector/pdata/pcommon"

	"github.com/kern-agents/trace-gateway/internal/convert"
	"github.com/kern-agents/trace-gateway/internal/model"
	"github.com/kern-agents/trace-gateway/internal/semantics"
	"github.com/kern-agents/trace-gateway/internal/sim"
	"github.com/kern-agents/trace-gateway/internal/store"
	"github.com/kern-agents/trace-gateway/internal/store/postgres"
	"github.com/kern-agents/trace-gateway/internal/store/sqlite"
	"github.com/kern-agents/trace-gateway/internal/testdb"
)

// block is one ```sql block of a doc.
type block struct {
	file, heading string
	dialects      []string // "PostgreSQL", "SQLite"
	sql           string
}

func (b block) for_(dialect string) bool { return slices.Contains(b.dialects, dialect) }

// readBlocks extracts the ```sql blocks of a Markdown file with the heading
// they sit under. Every block must start with a "-- PostgreSQL" / "-- SQLite"
// line naming the databases it is for.
func readBlocks(t *testing.T, path string) []block {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var (
		out     []block
		heading string
		cur     *strings.Builder
	)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case cur == nil && strings.HasPrefix(line, "#"):
			heading = strings.TrimSpace(strings.TrimLeft(line, "#"))
		case cur == nil && strings.TrimSpace(line) == "```sql":
			cur = &strings.Builder{}
		case cur != nil && strings.TrimSpace(line) == "```":
			text := strings.TrimSpace(cur.String())
			first, _, _ := strings.Cut(text, "\n")
			if !strings.HasPrefix(first, "-- ") {
				t.Fatalf("%s, %q: a sql block must start with -- PostgreSQL and/or SQLite", path, heading)
			}
			b := block{file: path, heading: heading, sql: text}
			for _, d := range strings.Split(strings.TrimPrefix(first, "-- "), ",") {
				d = strings.TrimSpace(d)
				if d != "PostgreSQL" && d != "SQLite" {
					t.Fatalf("%s, %q: unknown dialect %q", path, heading, d)
				}
				b.dialects = append(b.dialects, d)
			}
			out = append(out, b)
			cur = nil
		case cur != nil:
			cur.WriteString(line)
			cur.WriteByte('\n')
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// result is a query's columns and rows, values normalised so that both
// databases compare: numbers as float64 (rounded to 1e-6), text as string.
type result struct {
	cols []string
	rows []map[string]any
}

func (r result) sum(col string) float64 {
	var s float64
	for _, row := range r.rows {
		f, _ := row[col].(float64)
		s += f
	}
	return s
}

func norm(v any) any {
	switch x := v.(type) {
	case []byte:
		return norm(string(x))
	case string:
		if f, err := strconv.ParseFloat(x, 64); err == nil && !strings.ContainsAny(x, "-:T") {
			return math.Round(f*1e6) / 1e6
		}
		return x
	case int64:
		return float64(x)
	case int32:
		return float64(x)
	case float64:
		return math.Round(x*1e6) / 1e6
	case float32:
		return math.Round(float64(x)*1e6) / 1e6
	}
	return v
}

type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

func query(ctx context.Context, t *testing.T, db querier, q string, args ...any) result {
	t.Helper()
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		t.Fatalf("query failed: %v\n%s", err, q)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		t.Fatal(err)
	}
	res := result{cols: cols}
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		row := map[string]any{}
		for i, c := range cols {
			row[c] = norm(vals[i])
		}
		res.rows = append(res.rows, row)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("query failed: %v\n%s", err, q)
	}
	return res
}

// truth is what the queries should find, computed in Go from the converted
// spans, independently of any SQL: from the facts semantics.Normalize reads
// out of the sender's own keys, not from the keys the queries read.
type truth struct {
	spans         []model.Span
	attrs         []map[string]any
	facts         []map[string]any
	byKind        map[string]int
	llmCalls      int
	models        map[string]int
	tokensByDay   map[string][3]float64 // input, output, total
	tools         map[string]*toolTruth
	delegations   map[string]int // member|mode
	toolCalls     map[string]int // tool spans (delegations too) by tool name
	exceptions    int
	sessionTraces map[string][]string
	llmPerTrace   map[string]int
	callsByAgent  map[string]int // day|agent -> LLM calls
	avgByName     map[string]float64
	callsByName   map[string]int
}

type toolTruth struct {
	calls, failures           int
	lastAt, lastType, lastMsg string
}

// factsOf normalises a stored span as the API does.
func factsOf(s model.Span, a map[string]any) map[string]any {
	info := semantics.Info{Name: s.Name, Kind: s.SpanKind, ParentSpanID: s.ParentSpanID, StatusCode: s.StatusCode, StatusMessage: s.StatusMessage}
	evs, _ := a[model.KeyEvents].([]any)
	for _, e := range evs {
		if m, _ := e.(map[string]any); m["name"] == "exception" {
			ea, _ := m["attributes"].(map[string]any)
			info.Events = append(info.Events, semantics.Event{Name: "exception", Attributes: ea})
		}
	}
	return semantics.Normalize(info, a)
}

func buildTruth(t *testing.T, spans []model.Span) *truth {
	tr := &truth{
		spans: spans, byKind: map[string]int{}, models: map[string]int{}, tokensByDay: map[string][3]float64{},
		tools: map[string]*toolTruth{}, delegations: map[string]int{}, toolCalls: map[string]int{},
		sessionTraces: map[string][]string{}, llmPerTrace: map[string]int{},
		avgByName: map[string]float64{}, callsByName: map[string]int{}, callsByAgent: map[string]int{},
	}
	sums := map[string]float64{}
	for _, s := range spans {
		var a map[string]any
		if err := json.Unmarshal(s.Attributes, &a); err != nil {
			t.Fatalf("span %s: attributes are not JSON: %v", s.SpanID, err)
		}
		f := factsOf(s, a)
		tr.attrs = append(tr.attrs, a)
		tr.facts = append(tr.facts, f)
		str := func(k string) string { v, _ := f[k].(string); return v }
		num := func(k string) float64 { v, _ := f[k].(int64); return float64(v) }
		// The converter gives every span a kind; only the row an earlier
		// release stored has none.
		kind, _ := a[semantics.AttrSpanKind].(string)
		tr.byKind[kind]++
		sums[s.Name] += float64(s.DurationMS)
		tr.callsByName[s.Name]++
		if evs, ok := a[model.KeyEvents].([]any); ok {
			for _, e := range evs {
				if m, _ := e.(map[string]any); m["name"] == "exception" {
					tr.exceptions++
				}
			}
		}
		if s.ParentSpanID == "" {
			if sess := semantics.RootIDs(a).SessionID; sess != "" {
				tr.sessionTraces[sess] = append(tr.sessionTraces[sess], s.TraceID)
			}
		}
		switch str(semantics.KeySpanType) {
		case semantics.TypeLLM:
			tr.llmCalls++
			tr.llmPerTrace[s.TraceID]++
			if m := str(semantics.KeyModel); m != "" {
				tr.models[m]++
			}
			day := s.StartTime[:10]
			v := tr.tokensByDay[day]
			v[0] += num(semantics.KeyInputTokens)
			v[1] += num(semantics.KeyOutputTokens)
			v[2] += num(semantics.KeyTotalTokens)
			tr.tokensByDay[day] = v
		case semantics.TypeTool:
			name := str(semantics.KeyToolName)
			tr.toolCalls[name]++
			tt := tr.tools[name]
			if tt == nil {
				tt = &toolTruth{}
				tr.tools[name] = tt
			}
			tt.calls++
			if s.StatusCode == model.StatusError {
				tt.failures++
				if s.StartTime > tt.lastAt {
					tt.lastAt, tt.lastMsg, tt.lastType = s.StartTime, str(semantics.KeyExceptionMessage), str(semantics.KeyExceptionType)
				}
			}
		case semantics.TypeDelegation:
			tr.delegations[str(semantics.KeyDelegationMember)+"|"+str(semantics.KeyDelegationMode)]++
			// A delegation is a call of one of agno's team tools.
			for _, k := range []string{"gen_ai.tool.name", "tool.name"} {
				if name, ok := a[k].(string); ok {
					tr.toolCalls[name]++
					break
				}
			}
		}
	}
	for n, s := range sums {
		tr.avgByName[n] = s / float64(tr.callsByName[n])
	}
	// The documented attribution: the call's own agent, else its parent
	// run's agent or team (every simulated LLM call sits under a run).
	byID := map[string]int{}
	for i, s := range spans {
		byID[s.SpanID] = i
	}
	for i, s := range spans {
		f := tr.facts[i]
		if f[semantics.KeySpanType] != semantics.TypeLLM {
			continue
		}
		agent, _ := f[semantics.KeyAgentID].(string)
		if p, ok := byID[s.ParentSpanID]; ok && agent == "" && tr.facts[p][semantics.KeySpanType] == semantics.TypeRun {
			agent, _ = tr.facts[p][semantics.KeyAgentID].(string)
			if agent == "" {
				agent, _ = tr.facts[p][semantics.KeyTeamID].(string)
			}
		}
		tr.callsByAgent[s.StartTime[:10]+"|"+agent]++
	}
	return tr
}

// busiestSession is the session with the most runs (ties: the smallest id).
func (tr *truth) busiestSession() string {
	best := ""
	for s, ids := range tr.sessionTraces {
		if best == "" || len(ids) > len(tr.sessionTraces[best]) || len(ids) == len(tr.sessionTraces[best]) && s < best {
			best = s
		}
	}
	return best
}

func wantCols(t *testing.T, r result, cols ...string) {
	t.Helper()
	if !reflect.DeepEqual(r.cols, cols) {
		t.Fatalf("columns %v, want %v", r.cols, cols)
	}
}

func nonEmpty(t *testing.T, r result) {
	t.Helper()
	if len(r.rows) == 0 {
		t.Fatal("no rows")
	}
}

func descending(t *testing.T, r result, col string) {
	t.Helper()
	for i := 1; i < len(r.rows); i++ {
		a, _ := r.rows[i-1][col].(float64)
		b, _ := r.rows[i][col].(float64)
		if b > a {
			t.Errorf("rows not ordered by %s descending: %v then %v", col, a, b)
		}
	}
}

// checks asserts what each documented query must return on the simulated
// data; a query without a check fails the test, so every query is covered.
var checks = map[string]func(t *testing.T, tr *truth, r result){
	"The seed query": func(t *testing.T, tr *truth, r result) {
		wantCols(t, r, "name", "avg_ms", "calls")
		nonEmpty(t, r)
		if len(r.rows) > 10 {
			t.Errorf("%d rows, want at most 10", len(r.rows))
		}
		descending(t, r, "avg_ms")
		top := r.rows[0]
		name, _ := top["name"].(string)
		if math.Abs(top["avg_ms"].(float64)-tr.avgByName[name]) > 1e-3 || top["calls"] != float64(tr.callsByName[name]) {
			t.Errorf("top row %v; spans say avg %v over %d calls", top, tr.avgByName[name], tr.callsByName[name])
		}
		for n, avg := range tr.avgByName {
			if avg > tr.avgByName[name]+1e-9 {
				t.Errorf("%q has a higher average (%v) than the top row", n, avg)
			}
		}
	},
	"Slowest span kinds": func(t *testing.T, tr *truth, r result) {
		wantCols(t, r, "span_kind", "spans", "avg_ms", "p95_ms")
		descending(t, r, "p95_ms")
		got := map[string]float64{}
		p95 := map[string]float64{}
		for _, row := range r.rows {
			kind, _ := row["span_kind"].(string)
			got[kind] = row["spans"].(float64)
			p95[kind] = row["p95_ms"].(float64)
		}
		for kind, n := range tr.byKind {
			if got[kind] != float64(n) {
				t.Errorf("kind %q: %v spans, want %d", kind, got[kind], n)
			}
		}
		if len(got) != len(tr.byKind) || got["UNKNOWN"] != 1 || got[""] != 1 {
			t.Errorf("kinds %v, want %v (the oversized span the only UNKNOWN, the legacy row the only one without)", got, tr.byKind)
		}
		// A run contains its LLM calls, so its latency is higher.
		if p95["AGENT"] <= p95["LLM"] || p95["LLM"] <= 0 {
			t.Errorf("p95 AGENT %v, LLM %v: want AGENT > LLM > 0", p95["AGENT"], p95["LLM"])
		}
	},
	"Token use per agent per day": func(t *testing.T, tr *truth, r result) {
		wantCols(t, r, "day", "agent", "llm_calls", "input_tokens", "output_tokens", "total_tokens")
		nonEmpty(t, r)
		if r.sum("llm_calls") != float64(tr.llmCalls) {
			t.Errorf("%v LLM calls, want %d", r.sum("llm_calls"), tr.llmCalls)
		}
		byDay := map[string][3]float64{}
		calls := map[string]int{}
		for _, row := range r.rows {
			calls[fmt.Sprint(row["day"])+"|"+fmt.Sprint(row["agent"])] = int(row["llm_calls"].(float64))
			day, _ := row["day"].(string)
			if row["agent"] == "unknown" || row["agent"] == nil {
				t.Errorf("LLM calls not credited to an agent: %v", row)
			}
			in, out, total := row["input_tokens"].(float64), row["output_tokens"].(float64), row["total_tokens"].(float64)
			if in <= 0 || out <= 0 || total != in+out {
				t.Errorf("implausible tokens: %v", row)
			}
			v := byDay[day]
			byDay[day] = [3]float64{v[0] + in, v[1] + out, v[2] + total}
		}
		if !reflect.DeepEqual(calls, tr.callsByAgent) {
			t.Errorf("LLM calls per day and agent %v, want %v", calls, tr.callsByAgent)
		}
		if !reflect.DeepEqual(byDay, tr.tokensByDay) {
			t.Errorf("tokens per day %v, spans say %v", byDay, tr.tokensByDay)
		}
		if len(byDay) < 2 {
			t.Errorf("runs spread over %d days, want several", len(byDay))
		}
	},
	"Failing tools": func(t *testing.T, tr *truth, r result) {
		wantCols(t, r, "tool", "calls", "failures", "last_failure_at", "last_exception_type", "last_error")
		nonEmpty(t, r)
		descending(t, r, "failures")
		seen := 0
		for _, row := range r.rows {
			name, _ := row["tool"].(string)
			tt := tr.tools[name]
			if tt == nil || tt.failures == 0 {
				t.Errorf("%q listed but never failed", name)
				continue
			}
			seen++
			want := map[string]any{
				"tool": name, "calls": float64(tt.calls), "failures": float64(tt.failures),
				"last_failure_at": tt.lastAt, "last_exception_type": tt.lastType, "last_error": tt.lastMsg,
			}
			if !reflect.DeepEqual(row, want) {
				t.Errorf("row %v, want %v", row, want)
			}
			if tt.lastMsg == "" || tt.lastType == "" {
				t.Errorf("%q: failure without a normalised exception", name)
			}
		}
		failing := 0
		for _, tt := range tr.tools {
			if tt.failures > 0 {
				failing++
			}
		}
		if seen != failing {
			t.Errorf("%d failing tools listed, want %d", seen, failing)
		}
	},
	"A session's runs": func(t *testing.T, tr *truth, r result) {
		wantCols(t, r, "trace_id", "name", "status", "start_time", "duration_ms", "run_id", "agent_id",
			"team_id", "user_id", "session_id", "llm_calls", "total_tokens")
		session := tr.busiestSession()
		want := tr.sessionTraces[session]
		if len(r.rows) != len(want) || len(want) < 2 {
			t.Fatalf("%d runs for %s, want %d (and at least 2)", len(r.rows), session, len(want))
		}
		var ids []string
		for i, row := range r.rows {
			id, _ := row["trace_id"].(string)
			ids = append(ids, id)
			if row["session_id"] != session || row["run_id"] == nil || row["user_id"] == nil {
				t.Errorf("row %v", row)
			}
			if row["llm_calls"] != float64(tr.llmPerTrace[id]) || row["total_tokens"].(float64) <= 0 {
				t.Errorf("trace %s: %v LLM calls / %v tokens, want %d calls", id, row["llm_calls"], row["total_tokens"], tr.llmPerTrace[id])
			}
			if i > 0 && row["start_time"].(string) < r.rows[i-1]["start_time"].(string) {
				t.Error("runs not in time order")
			}
		}
		sort.Strings(ids)
		sort.Strings(want)
		if !reflect.DeepEqual(ids, want) {
			t.Errorf("traces %v, want %v", ids, want)
		}
	},
	"p95 latency per model": func(t *testing.T, tr *truth, r result) {
		wantCols(t, r, "model", "calls", "avg_ms", "p50_ms", "p95_ms")
		nonEmpty(t, r)
		descending(t, r, "p95_ms")
		got := map[string]int{}
		for _, row := range r.rows {
			m, _ := row["model"].(string)
			got[m] = int(row["calls"].(float64))
			if row["p95_ms"].(float64) < row["p50_ms"].(float64) || row["p50_ms"].(float64) <= 0 {
				t.Errorf("implausible percentiles: %v", row)
			}
		}
		if !reflect.DeepEqual(got, tr.models) {
			t.Errorf("calls per model %v, want %v", got, tr.models)
		}
	},
	"Delegations per team member": func(t *testing.T, tr *truth, r result) {
		wantCols(t, r, "member", "mode", "delegations", "avg_ms")
		got := map[string]int{}
		for _, row := range r.rows {
			got[fmt.Sprint(row["member"])+"|"+fmt.Sprint(row["mode"])] = int(row["delegations"].(float64))
		}
		if !reflect.DeepEqual(got, tr.delegations) || len(got) == 0 {
			t.Errorf("delegations %v, want %v", got, tr.delegations)
		}
	},
	"Spans per service": func(t *testing.T, tr *truth, r result) {
		wantCols(t, r, "service", "spans")
		// Every converted span references the resources table; the row
		// an earlier release stored holds its resource inline.
		want := []map[string]any{
			{"service": "agentos", "spans": float64(len(tr.spans) - 1)},
			{"service": legacyService, "spans": float64(1)},
		}
		if !reflect.DeepEqual(r.rows, want) {
			t.Errorf("rows %v, want %v", r.rows, want)
		}
	},
	"Latest exceptions": func(t *testing.T, tr *truth, r result) {
		wantCols(t, r, "trace_id", "name", "at", "exception_type", "message")
		if len(r.rows) != min(20, tr.exceptions) || tr.exceptions == 0 {
			t.Errorf("%d rows, %d exception events", len(r.rows), tr.exceptions)
		}
		for i, row := range r.rows {
			if row["exception_type"] == nil || row["message"] == nil {
				t.Errorf("row %v", row)
			}
			if i > 0 && row["at"].(string) > r.rows[i-1]["at"].(string) {
				t.Error("not newest first")
			}
		}
	},
	"Tool calls by tool": func(t *testing.T, tr *truth, r result) {
		wantCols(t, r, "tool", "calls")
		descending(t, r, "calls")
		got := map[string]int{}
		for _, row := range r.rows {
			name, _ := row["tool"].(string)
			got[name] = int(row["calls"].(float64))
		}
		if !reflect.DeepEqual(got, tr.toolCalls) || len(got) == 0 {
			t.Errorf("calls %v, want %v", got, tr.toolCalls)
		}
	},
	"Spans that lost data to the limits": func(t *testing.T, tr *truth, r result) {
		wantCols(t, r, "span_id", "name", "truncated", "dropped")
		if len(r.rows) != 1 || r.rows[0]["name"] != "oversized" ||
			!strings.Contains(fmt.Sprint(r.rows[0]["truncated"]), "input.value") {
			t.Errorf("rows %v, want the one oversized span", r.rows)
		}
	},
}

// dataset simulates AgentOS runs over three days and adds one span that
// exceeds the converter's limits.
func dataset(t *testing.T) ([]model.Span, sim.Stats) {
	t.Helper()
	td, stats, err := sim.CaptureTraces(context.Background(), sim.Options{
		Count: 80, ErrorRatio: 0.25, Seed: 11, Agents: 4, Users: 5, Sessions: 12, Spread: 72 * time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	big := td.ResourceSpans().AppendEmpty()
	big.Resource().Attributes().PutStr("service.name", "agentos")
	sp := big.ScopeSpans().AppendEmpty().Spans().AppendEmpty()
	sp.SetTraceID([16]byte{0xee, 1})
	sp.SetSpanID([8]byte{0xee, 2})
	sp.SetName("oversized")
	now := time.Now()
	sp.SetStartTimestamp(pcommon.NewTimestampFromTime(now.Add(-time.Second)))
	sp.SetEndTimestamp(pcommon.NewTimestampFromTime(now))
	sp.Attributes().PutStr("input.value", strings.Repeat("x", convert.DefaultMaxAttrValueBytes+5000))

	spans, rejected := convert.FromOTLP(td, time.Now(), convert.Limits{})
	if len(rejected) > 0 || int64(len(spans)) != stats.Spans+1 {
		t.Fatalf("converted %d spans of %d, rejected %v", len(spans), stats.Spans+1, rejected)
	}
	// A row as an earlier release stored it: resource inline, no
	// OpenInference keys.
	at := model.FormatTime(now.Add(-time.Minute))
	spans = append(spans, model.Span{
		SpanID: "ee000000000000a1", TraceID: "ee0000000000000000000000000000a1", Name: "legacy", SpanKind: model.KindInternal,
		StatusCode: model.StatusOK, StartTime: at, EndTime: at, CreatedAt: at,
		Attributes: []byte(`{"custom":"x","kern.resource":{"service.name":"` + legacyService + `"},"kern.scope":{"name":"old"}}`),
	})
	return spans, stats
}

const legacyService = "legacy-service"

func allBlocks(t *testing.T) []block {
	return append(readBlocks(t, "../../docs/queries.md"), readBlocks(t, "../../docs/semantics.md")...)
}

// TestDocumentedQueries stores the same spans with the PostgreSQL store
// (real server, fresh schema) and the SQLite store, runs every block of the
// docs for its database(s), and checks that the two dialects' variants
// agree.
func TestDocumentedQueries(t *testing.T) {
	spans, _ := dataset(t)
	tr := buildTruth(t, spans)
	var pg, lite map[string]result
	t.Run("PostgreSQL", func(t *testing.T) { pg = runPostgres(t, tr, spans) })
	t.Run("SQLite", func(t *testing.T) { lite = runSQLite(t, tr, spans) })
	if pg == nil || lite == nil {
		return
	}
	for heading, p := range pg {
		l, ok := lite[heading]
		if !ok {
			t.Errorf("%q has no SQLite variant", heading)
			continue
		}
		if !reflect.DeepEqual(p.cols, l.cols) {
			t.Errorf("%q: PostgreSQL columns %v, SQLite %v", heading, p.cols, l.cols)
			continue
		}
		if len(p.rows) != len(l.rows) {
			t.Errorf("%q: PostgreSQL %d rows, SQLite %d", heading, len(p.rows), len(l.rows))
			continue
		}
		for i := range p.rows {
			for _, c := range p.cols {
				// Percentiles differ by method (PostgreSQL interpolates,
				// SQLite takes the nearest rank) and so may the order they
				// sort by; JSON arrays print differently.
				if strings.HasPrefix(c, "p50") || strings.HasPrefix(c, "p95") || c == "truncated" || c == "dropped" {
					continue
				}
				if strings.Contains(heading, "latency") || strings.Contains(heading, "Slowest") {
					continue
				}
				if !reflect.DeepEqual(p.rows[i][c], l.rows[i][c]) {
					t.Errorf("%q row %d column %s: PostgreSQL %#v, SQLite %#v", heading, i, c, p.rows[i][c], l.rows[i][c])
				}
			}
		}
	}
}

func runPostgres(t *testing.T, tr *truth, spans []model.Span) map[string]result {
	ctx := context.Background()
	dsn, schema := testdb.Postgres(t)
	st, err := postgres.Open(ctx, store.Options{DSN: dsn, Schema: schema})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Write(ctx, spans); err != nil {
		t.Fatal(err)
	}
	conn, err := st.DB().Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "SET search_path TO "+pgx.Identifier{schema}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	return runBlocks(t, tr, "PostgreSQL", conn)
}

func runSQLite(t *testing.T, tr *truth, spans []model.Span) map[string]result {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, store.Options{DSN: filepath.Join(t.TempDir(), "traces.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Write(ctx, spans); err != nil {
		t.Fatal(err)
	}
	return runBlocks(t, tr, "SQLite", st.DB())
}

func runBlocks(t *testing.T, tr *truth, dialect string, db querier) map[string]result {
	ctx := context.Background()
	results := map[string]result{}
	ran := 0
	for _, b := range allBlocks(t) {
		if !b.for_(dialect) {
			continue
		}
		ran++
		t.Run(b.heading, func(t *testing.T) {
			check, ok := checks[b.heading]
			if !ok {
				t.Fatalf("no expectations for the query under %q in %s", b.heading, b.file)
			}
			var args []any
			if strings.Contains(b.sql, "$1") || strings.Contains(b.sql, "= ?") {
				args = append(args, tr.busiestSession())
			}
			r := query(ctx, t, db, b.sql, args...)
			check(t, tr, r)
			results[b.heading] = r
		})
	}
	if ran < len(checks) {
		t.Errorf("%s: ran %d blocks, %d have expectations", dialect, ran, len(checks))
	}
	return results
}
