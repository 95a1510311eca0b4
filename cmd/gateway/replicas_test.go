package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/kern-agents/trace-gateway/internal/gwbuild"
	"github.com/kern-agents/trace-gateway/internal/gwproc"
	"github.com/kern-agents/trace-gateway/internal/otlpsink"
	"github.com/kern-agents/trace-gateway/internal/testdb"
)

// replica is one gateway process of the test.
type replica struct {
	*gwproc.Gateway
	out string // the jsonl file its destination writes
}

// build compiles the command at pkg (relative to the module root) for the
// test.
func build(t *testing.T, pkg string) string {
	t.Helper()
	bin, cleanup, err := gwbuild.Build(pkg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cleanup)
	return bin
}

// send posts n new spans (traces of 5) to the replica over OTLP/HTTP and
// returns their ids.
func (r *replica) send(t *testing.T, n int) []string {
	t.Helper()
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "agentos")
	ss := rs.ScopeSpans().AppendEmpty()
	now := time.Now()
	var ids []string
	var trace pcommon.TraceID
	var root pcommon.SpanID
	for i := range n {
		sp := ss.Spans().AppendEmpty()
		var id pcommon.SpanID
		_, _ = rand.Read(id[:])
		if i%5 == 0 {
			_, _ = rand.Read(trace[:])
			root = id
		} else {
			sp.SetParentSpanID(root)
		}
		sp.SetTraceID(trace)
		sp.SetSpanID(id)
		sp.SetName(fmt.Sprintf("op-%d", i))
		sp.SetStartTimestamp(pcommon.NewTimestampFromTime(now))
		sp.SetEndTimestamp(pcommon.NewTimestampFromTime(now.Add(time.Millisecond)))
		ids = append(ids, id.String())
	}
	body, err := (&ptrace.ProtoMarshaler{}).MarshalTraces(td)
	if err != nil {
		t.Fatal(err)
	}
	addr := r.Addrs().OTLPHTTP
	resp, err := http.Post("http://"+addr+"/v1/traces", "application/x-protobuf", bytes.NewReader(body))
	if err != nil {
		t.Fatalf("send to %s: %v", addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(resp.Body)
		t.Fatalf("send to %s: %s: %s", addr, resp.Status, msg)
	}
	return ids
}

// delivered counts span ids in a jsonl output file. A line cut short by a
// killed process is skipped when tolerant.
func delivered(t *testing.T, path string, tolerant bool, into map[string]int) int {
	t.Helper()
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(string(data), "\n") {
		if line == "" {
			continue
		}
		var l struct {
			SpanID string `json:"span_id"`
		}
		if err := json.Unmarshal([]byte(line), &l); err != nil || l.SpanID == "" {
			if tolerant {
				continue
			}
			t.Fatalf("%s: bad line %q", path, line)
		}
		into[l.SpanID]++
		n++
	}
	return n
}

// gate holds the requests of a fake vendor while it is shut, so that an
// export, and the claim it belongs to, stays in flight until the test has
// acted, however slow the machine.
type gate struct {
	mu   sync.Mutex
	open chan struct{} // closed while the gate is open
}

func newGate() *gate {
	g := &gate{open: make(chan struct{})}
	close(g.open)
	return g
}

// shut makes later requests wait for open.
func (g *gate) shut() {
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-g.open:
		g.open = make(chan struct{})
	default: // already shut
	}
}

// release lets every waiting and later request through.
func (g *gate) release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-g.open:
	default:
		close(g.open)
	}
}

// pass waits while the gate is shut (or until the sender gives up).
func (g *gate) pass(r *http.Request, _ ptrace.Traces) {
	g.mu.Lock()
	open := g.open
	g.mu.Unlock()
	select {
	case <-open:
	case <-r.Context().Done():
	}
}

// newGatedSink starts an OTLP/HTTP endpoint whose answers wait for g.
func newGatedSink(t *testing.T, g *gate) *otlpsink.Sink {
	t.Helper()
	s, err := otlpsink.New(otlpsink.WithHook(g.pass))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	t.Cleanup(g.release) // runs first: no handler waits on a closing server
	return s
}

// vendorCounts is how often the sink got each span, by hex span id.
func vendorCounts(s *otlpsink.Sink) map[string]int {
	out := map[string]int{}
	for id, n := range s.Deliveries() {
		out[id.String()] = n
	}
	return out
}

// TestReplicasShareFanoutAndSurviveSIGKILL runs three gateway processes on
// one PostgreSQL schema with two destinations: a jsonl plugin writing one
// file per replica, and the built-in otlp exporter sending to a fake vendor.
// In normal operation each span is delivered exactly once, by one of the
// replicas; after a replica is SIGKILLed while it holds a claim (the vendor
// holds its export until after the kill, so the claim cannot finish first),
// another takes the claim over once its lease expires and every span is
// still delivered.
func TestReplicasShareFanoutAndSurviveSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the gateway and runs three processes")
	}
	dsn, schema := testdb.Postgres(t)
	dir := t.TempDir()
	gatewayBin, jsonlBin := build(t, "./cmd/gateway"), build(t, "./plugins/examples/jsonl")
	vendorGate := newGate()
	sink := newGatedSink(t, vendorGate)

	var replicas []*replica
	for i := range 3 {
		out := filepath.Join(dir, fmt.Sprintf("out-%d.jsonl", i))
		cfg := fmt.Sprintf(`server:
  otlp_grpc: ""
  otlp_http: 127.0.0.1:0
  http: 127.0.0.1:0
storage:
  driver: postgres
  dsn: %q
  schema: %s
ingest:
  max_batch_delay: 5ms
log:
  level: debug
destinations:
  - name: sink
    plugin: %s
    config:
      path: %s
    batch: {max_spans: 50, max_delay: 20ms}
    retry: {initial: 50ms, max: 500ms}
    lease: 2s
  - name: vendor
    plugin: otlp
    config:
      endpoint: %s
      timeout: 5m
    batch: {max_spans: 50, max_delay: 20ms}
    retry: {initial: 50ms, max: 500ms}
    timeout: 5m
    lease: 2s
`, dsn, schema, jsonlBin, out, sink.URL())
		g := gwproc.Start(t, gwproc.Options{Bin: gatewayBin, Config: []byte(cfg), Name: fmt.Sprintf("replica-%d", i)})
		replicas = append(replicas, &replica{Gateway: g, out: out})
	}

	union := func() (map[string]int, []int) {
		m := map[string]int{}
		per := make([]int, len(replicas))
		for i, r := range replicas {
			per[i] = delivered(t, r.out, i == 0, m)
		}
		return m, per
	}
	waitAll := func(ids []string, within time.Duration) (map[string]int, []int) {
		t.Helper()
		deadline := time.Now().Add(within)
		for {
			m, per := union()
			vendor := vendorCounts(sink)
			missing := 0
			for _, id := range ids {
				if vendor[id] == 0 {
					missing++
				}
			}
			for _, id := range ids {
				if m[id] == 0 {
					missing++
				}
			}
			if missing == 0 {
				return m, per
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d of %d spans not delivered after %s (per replica %v)", missing, len(ids), within, per)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	// Normal operation: the replicas share the work, nothing goes twice.
	var ids []string
	for i := range 30 {
		ids = append(ids, replicas[i%3].send(t, 20)...)
	}
	got, per := waitAll(ids, 30*time.Second)
	for id, n := range got {
		if n != 1 {
			t.Fatalf("span %s delivered %d times in normal operation (per replica %v)", id, n, per)
		}
	}
	for id, n := range vendorCounts(sink) {
		if n != 1 {
			t.Fatalf("the vendor got span %s %d times in normal operation", id, n)
		}
	}
	sharing := 0
	for _, n := range per {
		if n > 0 {
			sharing++
		}
	}
	if sharing < 2 {
		t.Errorf("one replica did all the work: %v", per)
	}
	t.Logf("normal operation: %d spans, per replica %v", len(ids), per)

	// Kill replica 0 while it holds a vendor claim. The vendor holds every
	// export from now until after the kill, so the claim replica 0 takes
	// cannot finish (nor time out: the vendor's timeouts are long) before
	// the kill, whoever wins which race.
	db, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(context.Background())
	claimsTable := pgx.Identifier{schema, "gateway_claims"}.Sanitize()
	ownerLike := func(pid int) string { return fmt.Sprintf("%%-%d-%%", pid) }
	// claims counts the vendor claims a replica owns; live ones only when
	// their lease has not expired (nor been handed back).
	claims := func(pid int, live bool) int {
		q := `SELECT count(*) FROM ` + claimsTable + ` WHERE destination = 'vendor' AND owner LIKE $1`
		if live {
			q += ` AND lease_until > now()`
		}
		var n int
		if err := db.QueryRow(context.Background(), q, ownerLike(pid)).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	holds := func(pid int) int { return claims(pid, true) }
	// heldClaims lists the ids of the live vendor claims pid owns.
	heldClaims := func(pid int) []int64 {
		rows, err := db.Query(context.Background(), `SELECT id FROM `+claimsTable+
			` WHERE destination = 'vendor' AND owner LIKE $1 AND lease_until > now() ORDER BY id`, ownerLike(pid))
		if err != nil {
			t.Fatal(err)
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil {
			t.Fatal(err)
		}
		return ids
	}

	pid0 := replicas[0].Pid()
	vendorGate.shut()
	var stream []string
	var held []int64
	// Spans sent to replica 0 wake its worker at once; the others' workers
	// each get stuck on one claim at the gate, so replica 0 soon takes one.
	for deadline := time.Now().Add(2 * time.Minute); len(held) == 0; {
		if time.Now().After(deadline) {
			t.Fatal("replica 0 never took a vendor claim while spans streamed in")
		}
		stream = append(stream, replicas[0].send(t, 25)...)
		for next := time.Now().Add(time.Second); len(held) == 0 && time.Now().Before(next); time.Sleep(20 * time.Millisecond) {
			held = heldClaims(pid0)
		}
	}
	replicas[0].Kill()
	vendorGate.release()
	t.Logf("killed replica 0 holding vendor claims %v", held)
	// Keep sending to the survivors.
	for i := range 20 {
		stream = append(stream, replicas[1+i%2].send(t, 25)...)
	}
	all := append(ids, stream...)
	got, per = waitAll(all, 60*time.Second)
	// The dead replica's claim may cover spans the vendor already got; it
	// is still taken over (and delivered again) once its lease expires.
	deadline := time.Now().Add(60 * time.Second)
	for claims(pid0, false) > 0 {
		if time.Now().After(deadline) {
			t.Fatal("the killed replica's claim was never taken over")
		}
		time.Sleep(50 * time.Millisecond)
	}
	got, per = union()
	dups := 0
	for _, n := range got {
		dups += n - 1
	}
	vendorDups := 0
	for _, n := range vendorCounts(sink) {
		vendorDups += n - 1
	}
	// Only the claims the killed replica held can go twice: one per
	// destination, at most 4 batches of 50.
	if dups > 200 || vendorDups > 200 {
		t.Errorf("%d (jsonl) and %d (vendor) duplicate deliveries after the kill; want at most one claim (200) each", dups, vendorDups)
	}
	t.Logf("after SIGKILL: %d spans, per replica %v, duplicates: %d jsonl, %d vendor", len(all), per, dups, vendorDups)
	// A survivor resumed a claim the killed replica held.
	resumedRe := regexp.MustCompile(`resuming a claim another holder left.* claim=(\d+) `)
	resumed := false
	for _, r := range replicas[1:] {
		for _, l := range r.Logs() {
			if m := resumedRe.FindStringSubmatch(l + " "); m != nil && strings.Contains(l, "destination=vendor") &&
				slices.Contains(held, atoi64(m[1])) {
				resumed = true
				t.Log(l)
			}
		}
	}
	if !resumed {
		t.Errorf("no surviving replica logged resuming the killed replica's vendor claims %v", held)
	}

	// A replica stopped with SIGTERM drains, hands its claims back and
	// exits 0.
	r1 := replicas[1]
	if err := r1.Term(time.Minute); err != nil {
		t.Errorf("replica 1 after SIGTERM: %v, want exit status 0", err)
	}
	if n := holds(r1.Pid()); n != 0 {
		t.Errorf("replica 1 left %d claims behind after a clean stop", n)
	}
	if !r1.LogsContain("gateway stopped cleanly") {
		t.Error("replica 1 did not log a clean stop")
	}

	// The survivor's metrics show both destinations.
	resp, err := http.Get("http://" + replicas[2].Addrs().HTTP + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`kern_gateway_destination_spans_exported_total{destination="sink"}`,
		`kern_gateway_destination_spans_exported_total{destination="vendor"}`,
		`kern_gateway_destination_backlog_spans{destination="sink"}`,
		`kern_gateway_destination_circuit_state{destination="sink"} 0`,
		`kern_gateway_destination_plugin_up{destination="sink"} 1`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

func atoi64(s string) int64 {
	n, _ := strconv.ParseInt(s, 10, 64)
	return n
}
