package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"

	"github.com/kern-agents/trace-gateway/internal/gwbuild"
	"github.com/kern-agents/trace-gateway/internal/testdb"
)

// TestGenerateSendsWholeTraces: the load holds at least the spans asked
// for, in whole traces of at most perReq per request, and keeps each span's
// attributes as sent.
func TestGenerateSendsWholeTraces(t *testing.T) {
	const want, perReq = 300, 7
	l, err := generate(context.Background(), want, perReq)
	if err != nil {
		t.Fatal(err)
	}
	if l.spans < want || l.spans > want+30 {
		t.Errorf("%d spans, want %d and at most one more trace", l.spans, want)
	}
	inRequest := map[pcommon.TraceID]int{}
	total := 0
	for i, b := range l.reqs {
		req := ptraceotlp.NewExportRequest()
		if err := req.UnmarshalProto(b); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		td := req.Traces()
		traces := map[pcommon.TraceID]bool{}
		var ids []pcommon.SpanID
		eachSpan(td, func(sp ptrace.Span) {
			if n, ok := inRequest[sp.TraceID()]; ok && n != i {
				t.Errorf("trace %s is in requests %d and %d", sp.TraceID(), n, i)
			}
			inRequest[sp.TraceID()] = i
			traces[sp.TraceID()] = true
			ids = append(ids, sp.SpanID())
			var got map[string]any
			if err := json.Unmarshal([]byte(l.attrs[sp.SpanID().String()]), &got); err != nil {
				t.Errorf("span %s attributes: %v", sp.SpanID(), err)
			}
			sent, _ := json.Marshal(sp.Attributes().AsRaw())
			var wantAttrs map[string]any
			_ = json.Unmarshal(sent, &wantAttrs)
			if len(wantAttrs) == 0 || !reflect.DeepEqual(got, wantAttrs) {
				t.Errorf("span %s attributes %v, want the %d sent", sp.SpanID(), got, len(wantAttrs))
			}
		})
		if len(traces) > perReq {
			t.Errorf("request %d holds %d traces, want at most %d", i, len(traces), perReq)
		}
		if td.ResourceSpans().Len() != 1 {
			t.Errorf("request %d has %d resources, want the simulation's one", i, td.ResourceSpans().Len())
		}
		if !slices.Equal(ids, l.ids[i]) {
			t.Errorf("request %d: ids %v, load says %v", i, ids, l.ids[i])
		}
		total += len(ids)
	}
	if total != l.spans || len(l.attrs) != l.spans || len(inRequest) != l.traces {
		t.Errorf("requests hold %d spans of %d traces; load says %d spans (%d attribute sets) of %d traces",
			total, len(inRequest), l.spans, len(l.attrs), l.traces)
	}
}

func eachSpan(td ptrace.Traces, f func(ptrace.Span)) {
	for i := range td.ResourceSpans().Len() {
		sss := td.ResourceSpans().At(i).ScopeSpans()
		for j := range sss.Len() {
			for k := range sss.At(j).Spans().Len() {
				f(sss.At(j).Spans().At(k))
			}
		}
	}
}

func TestWithAppName(t *testing.T) {
	for _, tc := range []struct{ dsn, want string }{
		{"postgres://u@h:5432/db?sslmode=disable", "postgres://u@h:5432/db?application_name=bench_x&sslmode=disable"},
		{"postgres://u@h/db?application_name=old", "postgres://u@h/db?application_name=bench_x"},
		{"host=h user=u", "host=h user=u application_name=bench_x"},
	} {
		got, err := withAppName(tc.dsn, "bench_x")
		if err != nil || got != tc.want {
			t.Errorf("withAppName(%q) = %q, %v; want %q", tc.dsn, got, err, tc.want)
		}
	}
	if _, err := withAppName("postgres://u@h:bad port/db", "x"); err == nil {
		t.Error("want an error for a DSN that is not a URL")
	}
}

// TestSinkProcess drives serveSinks through its protocol: fresh sinks,
// waiting for spans, and every first arrival.
func TestSinkProcess(t *testing.T) {
	cmdR, cmdW := io.Pipe()
	repR, repW := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- serveSinks(cmdR, repW) }()
	p := newSinkClient(cmdW, repR)

	if _, err := p.start(1); err != nil {
		t.Fatal(err)
	}
	urls, err := p.start(2) // replaces the first
	if err != nil || len(urls) != 2 {
		t.Fatalf("start(2) = %v, %v", urls, err)
	}
	td := ptrace.NewTraces()
	spans := td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty().Spans()
	ids := []pcommon.SpanID{{1}, {2}, {3}}
	for _, id := range ids {
		spans.AppendEmpty().SetSpanID(id)
	}
	body, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
	if err != nil {
		t.Fatal(err)
	}
	before := time.Now()
	for i, u := range urls {
		for range i + 1 { // the second sink gets everything twice
			resp, err := http.Post(u, "application/x-protobuf", bytes.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
		}
	}
	counts, dups, err := p.wait(len(ids), time.Minute)
	if err != nil || !slices.Equal(counts, []int{3, 3}) || !slices.Equal(dups, []int{0, 3}) {
		t.Fatalf("wait = %v, %v, %v; want counts [3 3], duplicates [0 3]", counts, dups, err)
	}
	// Waiting for more than arrived gives up at the timeout with the counts.
	if counts, _, err := p.wait(4, 50*time.Millisecond); err != nil || !slices.Equal(counts, []int{3, 3}) {
		t.Fatalf("wait(4) = %v, %v; want [3 3] after the timeout", counts, err)
	}
	arr, err := p.arrivals()
	if err != nil || len(arr) != 2 {
		t.Fatalf("arrivals = %v, %v", arr, err)
	}
	for i, a := range arr {
		var got []pcommon.SpanID
		for _, x := range a {
			got = append(got, x.ID)
			if at := time.Unix(0, x.At); at.Before(before) || at.After(time.Now()) {
				t.Errorf("sink %d: span %x arrived at %v, outside the test", i, x.ID, at)
			}
		}
		slices.SortFunc(got, func(a, b pcommon.SpanID) int { return bytes.Compare(a[:], b[:]) })
		if !slices.Equal(got, ids) {
			t.Errorf("sink %d arrivals %v, want %v", i, got, ids)
		}
	}
	p.close()
	if err := <-done; err != nil {
		t.Fatalf("serveSinks: %v", err)
	}
	if resp, err := http.Post(urls[0], "application/x-protobuf", bytes.NewReader(body)); err == nil {
		resp.Body.Close()
		t.Error("a sink still answers after the sink process ended")
	}
}

func TestPostgresProcs(t *testing.T) {
	procs := []gwbuild.Proc{
		{Pid: 1, PPid: 0, Args: []string{"init"}},
		{Pid: 10, PPid: 1, Args: []string{"/usr/lib/postgresql/15/bin/postgres", "-D", "/data"}},
		{Pid: 11, PPid: 10, Args: []string{"postgres: 15/main: walwriter "}},
		{Pid: 12, PPid: 10, Args: []string{"postgres: 15/main: postgres postgres 127.0.0.1(5000) idle"}},
		{Pid: 20, PPid: 1, Args: []string{"bin/gateway", "run"}},
		{Pid: 21, PPid: 20, Args: []string{"bin/gateway", "plugin", "otlp"}},
	}
	if got := postgresProcs(procs); !slices.Equal(got, []int{10, 11, 12}) {
		t.Errorf("postgresProcs = %v, want [10 11 12]", got)
	}
}

func TestMedians(t *testing.T) {
	for _, tc := range []struct {
		xs   []float64
		want float64
	}{{nil, 0}, {[]float64{3}, 3}, {[]float64{5, 1, 3}, 3}, {[]float64{4, 1, 3, 2}, 2.5}} {
		if got := median(tc.xs); got != tc.want {
			t.Errorf("median(%v) = %v, want %v", tc.xs, got, tc.want)
		}
	}
	var a, b, c cpuSplit
	a.role[roleGateway], b.role[roleGateway], c.role[roleGateway] = 1, 9, 5
	a.busy, b.busy, c.busy = 30, 10, 20
	c.role[rolePGRest], c.role[roleSinks] = 100, 7
	if c.own() != 12 {
		t.Errorf("own() = %v, want 12: gateway and sinks, not the rest of the PostgreSQL server", c.own())
	}
	m := medianSplit([]cpuSplit{a, b, c})
	if m.role[roleGateway] != 5 || m.busy != 20 {
		t.Errorf("medianSplit: gateway %v, busy %v; want 5 and 20, each role on its own", m.role[roleGateway], m.busy)
	}
}

// testConn connects to a fresh test schema.
func testConn(t *testing.T) (dsn, schema string, conn *pgx.Conn) {
	dsn, schema = testdb.Postgres(t)
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return dsn, schema, conn
}

// spansDDL is AgentOS's agno_spans table, enough for the COPY baseline.
const spansDDL = `CREATE TABLE %s.agno_spans (
	span_id varchar PRIMARY KEY, trace_id varchar NOT NULL, parent_span_id varchar,
	name varchar NOT NULL, span_kind varchar NOT NULL, status_code varchar NOT NULL,
	status_message text, start_time varchar NOT NULL, end_time varchar NOT NULL,
	duration_ms bigint NOT NULL, attributes jsonb, created_at varchar NOT NULL);
	CREATE INDEX ON %[1]s.agno_spans (trace_id)`

// TestRawCopyUsesTheSendersAttributes: the COPY baseline takes every
// column the gateway stored except attributes, which are the sender's, and
// loads them into a table like the stored one.
func TestRawCopyUsesTheSendersAttributes(t *testing.T) {
	ctx := context.Background()
	dsn, schema, conn := testConn(t)
	ident := pgx.Identifier{schema}.Sanitize()
	if _, err := conn.Exec(ctx, fmt.Sprintf(spansDDL, ident)); err != nil {
		t.Fatal(err)
	}
	sent := map[string]string{}
	for i := range 5 {
		id := fmt.Sprintf("%016x", i+1)
		sent[id] = fmt.Sprintf(`{"tool.name": "search", "n": %d}`, i)
		var parent any
		if i > 0 {
			parent = fmt.Sprintf("%016x", 1)
		}
		if _, err := conn.Exec(ctx, `INSERT INTO `+ident+`.agno_spans VALUES ($1, 'T1', $2, 'step', 'INTERNAL', 'OK', NULL,
			'2025-11-19T10:30:00+00:00', '2025-11-19T10:30:01+00:00', 1000, '{"stored": "doubled"}', 'c')`, id, parent); err != nil {
			t.Fatal(err)
		}
	}
	rows, err := copyRows(ctx, conn, schema, sent)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 5 {
		t.Fatalf("%d rows, want 5", len(rows))
	}
	for _, r := range rows {
		if len(r) != len(copyColumns) {
			t.Fatalf("row %v has %d values for %d columns", r, len(r), len(copyColumns))
		}
		id := r[0].(string)
		if r[len(r)-1] != sent[id] || r[1] != "T1" || r[9] != int64(1000) || r[10] != "c" {
			t.Errorf("row %v: want the stored columns and the sent attributes %s", r, sent[id])
		}
	}

	b := &bench{dsn: dsn, conn: conn, copyConns: 2, copyBatch: 2, tag: "test"}
	res, err := b.rawCopy(ctx, schema, rows)
	if err != nil {
		t.Fatal(err)
	}
	if res.rate <= 0 {
		t.Errorf("COPY rate %v", res.rate)
	}
	if len(b.schemas) != 0 {
		t.Errorf("schemas %v left behind", b.schemas)
	}

	delete(sent, fmt.Sprintf("%016x", 3))
	if _, err := copyRows(ctx, conn, schema, sent); err == nil {
		t.Error("want an error for a stored span the senders did not send")
	}
}

func TestRawCopyRefusesAMissingTemplate(t *testing.T) {
	ctx := context.Background()
	dsn, schema, conn := testConn(t)
	b := &bench{dsn: dsn, conn: conn, copyConns: 1, copyBatch: 1, tag: "test"}
	if _, err := b.rawCopy(ctx, schema, [][]any{}); err == nil {
		t.Error("want an error: the schema has no agno_spans to copy the table from")
	}
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'bench_copy%_test'`).Scan(&n); err != nil || n != 0 {
		t.Errorf("%d COPY schemas left behind (%v)", n, err)
	}
}
