package dispatch

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/kern-agents/trace-gateway/internal/store"
	"github.com/kern-agents/trace-gateway/internal/store/deliverytest"
	"github.com/kern-agents/trace-gateway/internal/store/postgres"
	"github.com/kern-agents/trace-gateway/internal/store/sqlite"
	"github.com/kern-agents/trace-gateway/internal/testdb"
)

// testStore is a store with the fan-out's tables.
type testStore interface {
	store.Store
	store.DeliveryLog
	store.Pruner
	store.LoggedWriter
}

func openSQLite(t *testing.T) testStore {
	t.Helper()
	s, err := sqlite.Open(context.Background(), store.Options{DSN: "file:" + t.TempDir() + "/traces.db"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func openPostgres(t *testing.T) testStore {
	t.Helper()
	dsn, schema := testdb.Postgres(t)
	s, err := postgres.Open(context.Background(), store.Options{DSN: dsn, Schema: schema})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// eachStore runs fn against SQLite and PostgreSQL.
func eachStore(t *testing.T, fn func(t *testing.T, s testStore)) {
	t.Run("sqlite", func(t *testing.T) { fn(t, openSQLite(t)) })
	t.Run("postgres", func(t *testing.T) { fn(t, openPostgres(t)) })
}

// write stores n spans (traces of perTrace spans) with created_at at and
// returns their ids.
func write(t *testing.T, s testStore, n, perTrace int, at time.Time) []string {
	t.Helper()
	spans := deliverytest.Spans(n, perTrace, at)
	for i := 0; i < len(spans); i += 500 {
		if err := s.Write(context.Background(), spans[i:min(i+500, len(spans))]); err != nil {
			t.Fatal(err)
		}
	}
	ids := make([]string, len(spans))
	for i := range spans {
		ids[i] = spans[i].SpanID
	}
	return ids
}

// fakeExporter records what it is sent; behave decides each call's answer.
type fakeExporter struct {
	mu       sync.Mutex
	got      map[string]int // span id -> deliveries
	calls    []time.Time
	batches  []int // spans per accepted call
	maxBytes int
	closed   bool
	behave   func(call int, td ptrace.Traces) error
	// last holds a copy of the last accepted batch.
	last ptrace.Traces
}

func newFake(behave func(call int, td ptrace.Traces) error) *fakeExporter {
	return &fakeExporter{got: map[string]int{}, behave: behave}
}

func (f *fakeExporter) Export(ctx context.Context, td ptrace.Traces) error {
	f.mu.Lock()
	call := len(f.calls)
	f.calls = append(f.calls, time.Now())
	behave := f.behave
	f.mu.Unlock()
	if behave != nil {
		if err := behave(call, td); err != nil {
			return err
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	f.record(td)
	return nil
}

// record notes td as accepted.
func (f *fakeExporter) record(td ptrace.Traces) {
	size := (&ptrace.ProtoMarshaler{}).TracesSize(td)
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, id := range spanIDs(td) {
		f.got[id]++
	}
	f.batches = append(f.batches, td.SpanCount())
	f.maxBytes = max(f.maxBytes, size)
	f.last = ptrace.NewTraces()
	td.CopyTo(f.last)
}

func (f *fakeExporter) Close(context.Context) error {
	f.mu.Lock()
	f.closed = true
	f.mu.Unlock()
	return nil
}

func (f *fakeExporter) delivered() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[string]int, len(f.got))
	for k, v := range f.got {
		out[k] = v
	}
	return out
}

func (f *fakeExporter) callTimes() []time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Time(nil), f.calls...)
}

// duplicates counts deliveries of spans delivered before.
func (f *fakeExporter) duplicates() int {
	n := 0
	for _, c := range f.delivered() {
		n += c - 1
	}
	return n
}

// has reports whether every id was delivered at least once.
func (f *fakeExporter) has(ids []string) bool {
	got := f.delivered()
	for _, id := range ids {
		if got[id] == 0 {
			return false
		}
	}
	return true
}

func starter(e Exporter) StartFunc {
	return func(context.Context) (Exporter, error) { return e, nil }
}

// fastPolicy has short delays for tests.
func fastPolicy() Policy {
	return Policy{
		MaxSpans:        200,
		MaxDelay:        time.Millisecond,
		RetryInitial:    5 * time.Millisecond,
		RetryMax:        20 * time.Millisecond,
		BreakerFailures: 1000,
		BreakerCoolDown: time.Second,
		Timeout:         5 * time.Second,
		Lease:           5 * time.Second,
	}
}

func fastOptions(t *testing.T) Options {
	return Options{
		Logger:        testLogger(t),
		PollInterval:  5 * time.Millisecond,
		StatsInterval: 20 * time.Millisecond,
		TrimInterval:  20 * time.Millisecond,
		PruneInterval: 20 * time.Millisecond,
		StartBackoff:  5 * time.Millisecond,
	}
}

// run starts a dispatcher and stops it when the test ends.
func run(t *testing.T, s testStore, dests []Destination, opts Options) *Dispatcher {
	t.Helper()
	d := New(s, dests, opts)
	d.Start(context.Background())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := d.Stop(ctx); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	return d
}

// waitCursors waits until every named destination has its delivery cursor.
// A new destination's cursor starts at the end of the log, so spans written
// before it exists are not for it: tests write only after this.
func waitCursors(t *testing.T, s testStore, dests ...string) {
	t.Helper()
	waitFor(t, fmt.Sprintf("cursors of %v", dests), 30*time.Second, func() bool {
		rows, err := s.DB().Query(`SELECT destination FROM ` + gatewayTable(s, "gateway_cursors"))
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		have := map[string]bool{}
		for rows.Next() {
			var d string
			if err := rows.Scan(&d); err != nil {
				t.Fatal(err)
			}
			have[d] = true
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		for _, d := range dests {
			if !have[d] {
				return false
			}
		}
		return true
	})
}

func waitFor(t *testing.T, what string, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// logSink collects log lines, shown only when the test fails.
type logSink struct {
	mu    sync.Mutex
	lines []string
}

func (l *logSink) Write(p []byte) (int, error) {
	l.mu.Lock()
	l.lines = append(l.lines, string(p))
	l.mu.Unlock()
	return len(p), nil
}

func (l *logSink) count(level, substr string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, line := range l.lines {
		if strings.Contains(line, "level="+level) && strings.Contains(line, substr) {
			n++
		}
	}
	return n
}

var sinks sync.Map // *testing.T -> *logSink

func testLogger(t *testing.T) *slog.Logger {
	sink := &logSink{}
	sinks.Store(t, sink)
	t.Cleanup(func() {
		if t.Failed() {
			sink.mu.Lock()
			for _, l := range sink.lines {
				t.Log(strings.TrimSpace(l))
			}
			sink.mu.Unlock()
		}
	})
	return slog.New(slog.NewTextHandler(sink, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func sinkOf(t *testing.T) *logSink {
	v, _ := sinks.Load(t)
	return v.(*logSink)
}

// recorder is an Observer that keeps everything.
type recorder struct {
	mu       sync.Mutex
	counts   map[string]int // "method/dest" -> sum
	states   map[string][]State
	backlog  map[string]int64
	lag      map[string]time.Duration
	restarts map[string]uint64
	up       map[string]bool
}

func newRecorder() *recorder {
	return &recorder{counts: map[string]int{}, states: map[string][]State{}, backlog: map[string]int64{},
		lag: map[string]time.Duration{}, restarts: map[string]uint64{}, up: map[string]bool{}}
}

func (r *recorder) add(key string, n int) {
	r.mu.Lock()
	r.counts[key] += n
	r.mu.Unlock()
}

func (r *recorder) get(key string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.counts[key]
}

func (r *recorder) Exported(d string, n int)     { r.add("exported/"+d, n) }
func (r *recorder) Filtered(d string, n int)     { r.add("filtered/"+d, n) }
func (r *recorder) Retried(d string)             { r.add("retried/"+d, 1) }
func (r *recorder) DeadLettered(d string, n int) { r.add("deadlettered/"+d, n) }
func (r *recorder) ExportFailed(d string, permanent bool) {
	r.add(fmt.Sprintf("failed/%s/%t", d, permanent), 1)
}
func (r *recorder) Backlog(d string, n int64, lag time.Duration) {
	r.mu.Lock()
	r.backlog[d], r.lag[d] = n, lag
	r.mu.Unlock()
}
func (r *recorder) CircuitState(d string, s State) {
	r.mu.Lock()
	if l := r.states[d]; len(l) == 0 || l[len(l)-1] != s {
		r.states[d] = append(l, s)
	}
	r.mu.Unlock()
}
func (r *recorder) PluginUp(d string, up bool) {
	r.mu.Lock()
	r.up[d] = up
	r.mu.Unlock()
}
func (r *recorder) isUp(d string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.up[d]
}

func (r *recorder) PluginRestarts(d string, n uint64) {
	r.mu.Lock()
	r.restarts[d] = n
	r.mu.Unlock()
}

func (r *recorder) stateLog(d string) []State {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]State(nil), r.states[d]...)
}

// spanTD builds one span in its own resource, for route tests.
func spanTD(service string, traceID byte, attrs map[string]string) (ptrace.Traces, ptrace.Span) {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	if service != "" {
		rs.Resource().Attributes().PutStr("service.name", service)
	}
	sp := rs.ScopeSpans().AppendEmpty().Spans().AppendEmpty()
	sp.SetTraceID([16]byte{traceID, 1})
	sp.SetSpanID([8]byte{traceID, 2})
	sp.SetName("s")
	for k, v := range attrs {
		sp.Attributes().PutStr(k, v)
	}
	return td, sp
}

// gatewayTable names a gateway_ table as SQL against s.DB() must.
func gatewayTable(s testStore, name string) string {
	traces, _ := s.Tables()
	if i := strings.LastIndex(traces, "."); i >= 0 {
		return traces[:i+1] + `"` + name + `"`
	}
	return name
}
