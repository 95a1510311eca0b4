package api

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/kern-agents/trace-gateway/internal/api/apitest"
	"github.com/kern-agents/trace-gateway/internal/procfs"
	"github.com/kern-agents/trace-gateway/internal/store"
)

// loadTraceRows fills the traces table with n rows in one INSERT ... SELECT
// (seconds for a million rows, unlike going through Write): one run a
// second, 1000 users, 2% errors, every third a team run.
func loadTraceRows(tb testing.TB, st store.Store, n int) {
	tb.Helper()
	traces, _ := st.Tables()
	ts := `to_char(timestamp '2025-01-01 00:00:00' + g * interval '1 second', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"')`
	te := `to_char(timestamp '2025-01-01 00:00:00' + g * interval '1 second' + (g % 5000) * interval '1 millisecond', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"')`
	q := `INSERT INTO ` + traces + ` (trace_id, name, status, start_time, end_time, duration_ms,
		run_id, session_id, user_id, agent_id, team_id, workflow_id, created_at)
	SELECT md5(g::text),
		CASE WHEN g % 3 = 0 THEN 'Team.run research-team' ELSE 'Agent.run support-agent' END,
		CASE WHEN g % 50 = 0 THEN 'ERROR' ELSE 'OK' END,
		` + ts + `, ` + te + `, g % 5000,
		'run-' || g, 'session-' || (g / 4), 'user-' || (g % 1000),
		CASE WHEN g % 3 = 0 THEN NULL ELSE 'support-agent' END,
		CASE WHEN g % 3 = 0 THEN 'research-team' END,
		NULL, ` + te + `
	FROM generate_series(1, $1::int) AS g`
	ctx := context.Background()
	t0 := time.Now()
	if _, err := st.DB().ExecContext(ctx, q, n); err != nil {
		tb.Fatalf("load %d trace rows: %v", n, err)
	}
	if _, err := st.DB().ExecContext(ctx, "ANALYZE "+traces); err != nil {
		tb.Fatalf("analyze: %v", err)
	}
	tb.Logf("loaded %d trace rows in %v", n, time.Since(t0).Round(time.Millisecond))
}

// planNodes flattens an EXPLAIN (FORMAT JSON) plan.
func planNodes(tb testing.TB, raw []byte) []map[string]any {
	tb.Helper()
	var doc []struct {
		Plan map[string]any `json:"Plan"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil || len(doc) == 0 {
		tb.Fatalf("parse plan %s: %v", raw, err)
	}
	var out []map[string]any
	var walk func(n map[string]any)
	walk = func(n map[string]any) {
		out = append(out, n)
		kids, _ := n["Plans"].([]any)
		for _, k := range kids {
			if m, ok := k.(map[string]any); ok {
				walk(m)
			}
		}
	}
	walk(doc[0].Plan)
	return out
}

// assertIndexPlan fails unless the list query for query reads agno_traces
// through an index (no sequential scan).
func assertIndexPlan(tb testing.TB, s *server, query string) {
	tb.Helper()
	q, _ := url.ParseQuery(query)
	ls, err := s.traceListSpec(q)
	if err != nil {
		tb.Fatal(err)
	}
	b := ls.query(s.dialect)
	var raw []byte
	if err := s.st.DB().QueryRowContext(context.Background(), "EXPLAIN (FORMAT JSON) "+b.String(), b.args...).Scan(&raw); err != nil {
		tb.Fatalf("explain %q: %v", query, err)
	}
	indexed := false
	var types []string
	for _, n := range planNodes(tb, raw) {
		typ, _ := n["Node Type"].(string)
		rel, _ := n["Relation Name"].(string)
		types = append(types, typ+"("+rel+")")
		if typ == "Seq Scan" && rel == "agno_traces" {
			tb.Fatalf("list %q scans agno_traces sequentially: %s", query, raw)
		}
		if strings.Contains(typ, "Index") && rel == "agno_traces" || typ == "Bitmap Index Scan" {
			indexed = true
		}
	}
	if !indexed {
		tb.Fatalf("list %q uses no index: %s", query, raw)
	}
	tb.Logf("plan for %q: %s", query, strings.Join(types, " > "))
}

// BenchmarkListTraces1M loads a million trace rows into PostgreSQL, checks
// that the list queries use an index, and times them through the handler.
func BenchmarkListTraces1M(b *testing.B) {
	st := apitest.Postgres(b)
	loadTraceRows(b, st, 1_000_000)
	h := New(st, Options{})
	s := newServer(st, Options{})

	// A cursor deep into the list, as a later page would carry.
	deep := cursor{Sort: "start_time", Desc: true, Key: "2025-01-06T00:00:00.000000+00:00", ID: strings.Repeat("f", 32), Scope: "traces"}
	queries := []struct {
		q       string
		indexed bool // the plan must read agno_traces through an index
	}{
		{"", true},
		{"user_id=user-42", true},
		{"user_id=user-42&cursor=" + deep.encode(), true},
		{"status=ERROR", true},
		{"team_id=research-team&limit=500", true},
		{"start=2025-01-05T00:00:00Z&end=2025-01-06T00:00:00Z", true},
		{"sort=duration_ms&start=2025-01-05T00:00:00Z&end=2025-01-06T00:00:00Z", true},
		{"q=team", true},
		// No index orders by duration: the whole table is sorted. Timed to
		// keep an eye on it; the page always sends a time range.
		{"sort=duration_ms", false},
	}
	for _, c := range queries {
		if c.indexed {
			assertIndexPlan(b, s, c.q)
		}
	}
	for _, c := range queries {
		b.Run(strings.NewReplacer("=", ":", "&", ",").Replace(c.q[:min(len(c.q), 40)]), func(b *testing.B) {
			benchGet(b, h, "/api/traces?"+c.q)
		})
	}
}

// TestListUsesIndex is the everyday version of the benchmark's plan check,
// on 50,000 rows so it runs in a second or two.
func TestListUsesIndex(t *testing.T) {
	st := apitest.Postgres(t)
	loadTraceRows(t, st, 50_000)
	s := newServer(st, Options{})
	for _, q := range []string{"", "user_id=user-42", "session_id=session-7", "status=ERROR", "order=asc&agent_id=support-agent"} {
		assertIndexPlan(t, s, q)
		t0 := time.Now()
		code, body := get(t, New(st, Options{}), "/api/traces?"+q)
		if code != 200 {
			t.Fatalf("%q: %d %s", q, code, body)
		}
		t.Logf("%q answered in %v", q, time.Since(t0))
	}
}

var bigTraceStart = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// loadBigTrace opens a store holding apitest.BigTrace's 2000 spans and
// returns it with the trace's id.
func loadBigTrace(tb testing.TB, open func(testing.TB) store.Store) (store.Store, string) {
	tb.Helper()
	st := open(tb)
	spans := apitest.BigTrace(2000, bigTraceStart)
	apitest.Load(tb, st, spans)
	return st, spans[0].TraceID
}

func TestTraceWith2000Spans(t *testing.T) {
	for _, sd := range stores {
		t.Run(sd.name, func(t *testing.T) {
			st, id := loadBigTrace(t, sd.open)
			t0 := time.Now()
			code, body := get(t, New(st, Options{}), "/api/traces/"+id)
			if code != 200 {
				t.Fatalf("%d %.200s", code, body)
			}
			d := decode[TraceDetail](t, body)
			count := treeSize(d.Spans)
			if d.SpanCount != 2000 || count != 2000 || len(d.Spans) != 1 || len(d.Spans[0].Children) != 200 {
				t.Fatalf("span_count %d, %d in tree, %d roots", d.SpanCount, count, len(d.Spans))
			}
			t.Logf("2000-span trace: %d bytes in %v", len(body), time.Since(t0))

			// MaxSpans truncates, and spans whose parents fell off become orphans.
			code, body = get(t, New(st, Options{MaxSpans: 15}), "/api/traces/"+id)
			d = decode[TraceDetail](t, body)
			if code != 200 || !d.Truncated || d.SpanCount != 15 {
				t.Fatalf("truncated: %d count %d truncated %v", code, d.SpanCount, d.Truncated)
			}
		})
	}
}

func BenchmarkTraceTree2000(b *testing.B) {
	for _, sd := range stores {
		b.Run(sd.name, func(b *testing.B) {
			st, id := loadBigTrace(b, sd.open)
			benchGet(b, New(st, Options{}), "/api/traces/"+id)
		})
	}
}

func BenchmarkBuildTree2000(b *testing.B) {
	rows := apitest.BigTrace(2000, bigTraceStart)
	for b.Loop() {
		nodes := make([]*SpanNode, len(rows))
		for i, r := range rows {
			p := r.ParentSpanID
			nodes[i] = &SpanNode{SpanID: r.SpanID, StartTime: r.StartTime}
			if p != "" {
				nodes[i].ParentSpanID = &p
			}
		}
		if roots := buildTree(nodes); len(roots) != 1 {
			b.Fatal(len(roots))
		}
	}
}

// benchGet times GET target on h, which must answer 200. Besides wall
// time it reports the CPU time this process spent per request (with SQLite
// that includes the database engine), a steadier yardstick on a busy
// machine.
func benchGet(b *testing.B, h http.Handler, target string) {
	b.Helper()
	req, _ := http.NewRequest(http.MethodGet, target, nil)
	cpu0, cpuErr := procfs.CPUTime(os.Getpid())
	for b.Loop() {
		rec := newDiscardRecorder()
		h.ServeHTTP(rec, req)
		if rec.code != http.StatusOK {
			b.Fatalf("status %d", rec.code)
		}
	}
	if cpu1, err := procfs.CPUTime(os.Getpid()); err == nil && cpuErr == nil {
		b.ReportMetric(float64(cpu1-cpu0)/float64(time.Millisecond)/float64(b.N), "cpu-ms/op")
	}
}

// discardRecorder is a ResponseWriter that keeps only the status, so a
// benchmark measures the handler, not buffer growth.
type discardRecorder struct {
	h    http.Header
	code int
}

func newDiscardRecorder() *discardRecorder             { return &discardRecorder{h: http.Header{}, code: 200} }
func (d *discardRecorder) Header() http.Header         { return d.h }
func (d *discardRecorder) Write(p []byte) (int, error) { return len(p), nil }
func (d *discardRecorder) WriteHeader(c int)           { d.code = c }

// BenchmarkSummary10MSpans times /api/summary over the last 24 hours of 10
// million stored spans (a million 10-span runs, one a second over 11.6
// days, a third of the spans LLM calls), with the rollups the writes keep:
// here filled from the rows the way an upgrade backfills them.
func BenchmarkSummary10MSpans(b *testing.B) {
	st := apitest.Postgres(b)
	const runs = 1_000_000
	loadTraceRows(b, st, runs)
	traces, spans := st.Tables()
	ts := `to_char(timestamp '2025-01-01 00:00:00' + g * interval '1 second' + k * interval '1 millisecond', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"')`
	q := `INSERT INTO ` + spans + ` (span_id, trace_id, parent_span_id, name, span_kind, status_code, start_time, end_time, duration_ms, attributes, created_at)
	SELECT substr(md5(g::text || '-' || k), 1, 16), md5(g::text), CASE WHEN k > 0 THEN substr(md5(g::text || '-0'), 1, 16) END,
		CASE WHEN k % 3 = 1 THEN 'chat gpt-4o' ELSE 'step' END, 'INTERNAL', 'OK', ` + ts + `, ` + ts + `, 1,
		CASE WHEN k % 3 = 1 THEN jsonb_build_object('openinference.span.kind', 'LLM', 'llm.model_name', 'gpt-4o-' || (g % 4),
			'llm.token_count.prompt', 100 + g % 50, 'llm.token_count.completion', 20 + g % 7)
		ELSE jsonb_build_object('openinference.span.kind', 'CHAIN') END, ` + ts + `
	FROM generate_series(1, $1::int) AS g, generate_series(0, 9) AS k`
	ctx := context.Background()
	t0 := time.Now()
	if _, err := st.DB().ExecContext(ctx, q, runs); err != nil {
		b.Fatalf("load spans: %v", err)
	}
	if _, err := st.DB().ExecContext(ctx, "ANALYZE "+spans+"; ANALYZE "+traces); err != nil {
		b.Fatal(err)
	}
	b.Logf("loaded %d spans in %v", runs*10, time.Since(t0).Round(time.Second))
	// Reopen the store on the same schema without rollups: it backfills them.
	st = apitest.ReopenPostgresWithoutRollups(b, st)
	h := New(st, Options{})
	end := time.Date(2025, 1, 12, 13, 46, 40, 0, time.UTC) // the last run, mid-minute
	target := "/api/summary?start=" + end.Add(-24*time.Hour).Format(time.RFC3339) + "&end=" + end.Format(time.RFC3339)
	code, body := get(b, h, target)
	if code != 200 || !strings.Contains(string(body), `"trace_count":86400`) {
		b.Fatalf("summary %d %s", code, body)
	}
	benchGet(b, h, target)
}
