// Command gatewaybench measures the gateway end to end against a raw
// PostgreSQL COPY of the same rows, in one run on the same table definition,
// and prints both figures and their ratio (`make bench` runs it).
//
// End to end: OTLP/HTTP protobuf requests of 11-span agent-run traces from
// several concurrent senders into a gateway process (started from the given
// binary), counted when every request was answered 200 — which the gateway
// only sends once the spans are committed. Raw: the same rows, already
// converted, written with pgx CopyFrom into a fresh copy of the tables.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"

	"github.com/kern-agents/trace-gateway/internal/convert"
	"github.com/kern-agents/trace-gateway/internal/gwbuild"
	"github.com/kern-agents/trace-gateway/internal/model"
	"github.com/kern-agents/trace-gateway/internal/otlpsink"
	"github.com/kern-agents/trace-gateway/internal/procfs"
	"github.com/kern-agents/trace-gateway/internal/sim"
	"github.com/kern-agents/trace-gateway/internal/store"
	"github.com/kern-agents/trace-gateway/internal/store/postgres"
	"github.com/kern-agents/trace-gateway/internal/store/storetest"
)

func main() {
	var (
		dsn     = flag.String("dsn", envOr("TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"), "PostgreSQL DSN")
		gwBin   = flag.String("gateway", "bin/gateway", "gateway binary")
		runs    = flag.Int("runs", 6000, "agent runs (11-span traces) to send")
		perReq  = flag.Int("traces-per-request", 46, "traces per OTLP request (46 × 11 spans ≈ the OTel SDK default export batch of 512 spans)")
		senders = flag.Int("senders", 4, "concurrent senders")
		dBatch  = flag.Int("dest-batch", 2048, "batch.max_spans of each destination (the gateway's default)")
		dDelay  = flag.String("dest-delay", "500ms", "batch.max_delay of each destination")
		sinks   = flag.Int("sinks", 5, "fake OTLP/HTTP destinations for the fan-out comparison (0 skips it)")
		rounds  = flag.Int("rounds", 5, "alternating no-destination / fan-out rounds of the comparison")
		dComp   = flag.String("dest-compression", "none", "compression of each destination: none (the sinks are on loopback) or gzip (the otlp adapter's default, for links to a vendor)")
		writers = flag.Int("writers", 2, "ingest.writers of the gateway")
		batch   = flag.Int("batch", 512, "ingest.max_batch_spans of the gateway")
	)
	flag.Parse()
	destBatch, destDelay, destCompression = *dBatch, *dDelay, *dComp
	ingest = fmt.Sprintf("ingest:\n  writers: %d\n  max_batch_spans: %d\n", *writers, *batch)
	if err := run(*dsn, *gwBin, *runs, *perReq, *senders, *sinks, max(*rounds, 1)); err != nil {
		log.Fatal(err)
	}
}

// ingest is the gateway config's ingest section.
var ingest string

// Batch settings of the fan-out destinations.
var (
	destBatch       = 2048
	destDelay       = "500ms"
	destCompression = "none"
)

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func run(dsn, gwBin string, runs, perReq, senders, sinks, rounds int) error {
	ctx := context.Background()
	fmt.Printf("generating %d agent runs with the OpenTelemetry SDK...\n", runs)
	td, stats, err := sim.CaptureTraces(ctx, sim.Options{Count: runs, Seed: 7, ErrorRatio: 0.1, Concurrency: 2})
	if err != nil {
		return err
	}
	reqs, err := splitRequests(td, perReq)
	if err != nil {
		return err
	}
	fmt.Printf("%d spans in %d traces, %d requests of ~%d traces\n", stats.Spans, stats.Runs, len(reqs), perReq)

	tag := strconv.FormatInt(time.Now().UnixNano()%1e9, 36)
	schemas := []string{"bench_raw_" + tag}
	defer func() { dropSchemas(ctx, dsn, schemas...) }()
	schema := func(name string) string {
		s := "bench_" + name + "_" + tag
		schemas = append(schemas, s)
		return s
	}
	want := int(stats.Spans)

	rawRate, err := rawCopy(ctx, dsn, schemas[0], td)
	if err != nil {
		return fmt.Errorf("raw COPY: %w", err)
	}
	gw, err := endToEnd(ctx, dsn, schema("gw"), gwBin, reqs, senders, want, nil)
	if err != nil {
		return fmt.Errorf("end to end: %w", err)
	}
	fmt.Println()
	fmt.Printf("raw pgx COPY (same rows, same tables):   %10.0f spans/s\n", rawRate)
	fmt.Printf("gateway end to end (OTLP/HTTP → commit): %10.0f spans/s  (%d senders)\n", gw.rate, senders)
	fmt.Printf("ratio gateway / raw COPY:                %10.2f\n", gw.rate/rawRate)
	fmt.Printf("gateway peak RSS:                        %10.1f MiB\n", mib(gw.peakRSS))
	if sinks == 0 {
		return nil
	}

	fmt.Printf("\n== fan-out: %d healthy OTLP destinations vs none, %d alternating rounds\n", sinks, rounds)
	// Each round runs the gateway without destinations and then with them,
	// back to back, so both see the same machine; the ratio is taken per
	// round and the median reported.
	var ratios, cpuPerDest []float64
	var fo gwResult
	for r := range rounds {
		base := gw
		if r > 0 {
			if base, err = endToEnd(ctx, dsn, schema(fmt.Sprint("gw", r)), gwBin, reqs, senders, want, nil); err != nil {
				return fmt.Errorf("end to end, round %d: %w", r+1, err)
			}
		}
		healthy := make([]*otlpsink.Sink, sinks)
		for i := range healthy {
			if healthy[i], err = otlpsink.New(); err != nil {
				return err
			}
			defer healthy[i].Close()
		}
		if fo, err = endToEnd(ctx, dsn, schema(fmt.Sprint("fanout", r)), gwBin, reqs, senders, want, healthy); err != nil {
			return fmt.Errorf("fan-out run, round %d: %w", r+1, err)
		}
		ratios = append(ratios, fo.rate/base.rate)
		perDest := float64(fo.cpu-base.cpu) / float64(want*sinks) / 1e3
		cpuPerDest = append(cpuPerDest, perDest)
		fmt.Printf("round %d: no destinations %8.0f spans/s, %d destinations %8.0f spans/s, ratio %.2f, lag p50 / p99 %.0f / %.0f ms, peak RSS %.1f MiB (%d duplicates)\n",
			r+1, base.rate, sinks, fo.rate, fo.rate/base.rate, ms(fo.lagP50), ms(fo.lagP99), mib(fo.peakRSS), fo.duplicates)
		fmt.Printf("         gateway+plugins CPU: %.1f µs/span without destinations, %.2f µs more per span per destination (%.2f of it in the plugin)\n",
			float64(base.cpu)/float64(want)/1e3, perDest, float64(fo.pluginCPU)/float64(want*sinks)/1e3)
		fmt.Printf("         while ingesting without destinations: %s\n", base.window)
		fmt.Printf("         while ingesting with %d destinations:    %s\n", sinks, fo.window)
	}
	fmt.Printf("ratio with / without destinations:       %10.2f  (median of %d rounds; every destination got every span each round)\n", median(ratios), rounds)
	fmt.Printf("fan-out CPU in gateway+plugins:          %10.2f µs per span per destination (median; the database's and fake vendors' CPU not included)\n", median(cpuPerDest))

	fmt.Printf("\n== one destination down for the whole run, one healthy\n")
	down, err := otlpsink.New()
	if err != nil {
		return err
	}
	down.Close() // a closed port: connection refused for the whole run
	one, err := otlpsink.New()
	if err != nil {
		return err
	}
	defer one.Close()
	dn, err := endToEnd(ctx, dsn, schema("down"), gwBin, reqs, senders, want, []*otlpsink.Sink{one, down})
	if err != nil {
		return fmt.Errorf("destination-down run: %w", err)
	}
	fmt.Printf("gateway end to end:                      %10.0f spans/s (ratio to no destinations %.2f)\n", dn.rate, dn.rate/gw.rate)
	fmt.Printf("healthy destination lag p99:             %10.0f ms\n", ms(dn.lagP99))
	fmt.Printf("gateway peak RSS with a dead destination: %9.1f MiB\n", mib(dn.peakRSS))
	return nil
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func mib(b int64) float64        { return float64(b) / (1 << 20) }
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// splitRequests cuts td into protobuf ExportTraceServiceRequests of perReq
// traces each (a trace is never split, like an SDK batch of whole runs).
func splitRequests(td ptrace.Traces, perReq int) ([][]byte, error) {
	var out [][]byte
	cur := ptrace.NewTraces()
	traces := map[string]bool{}
	scopes := map[[2]int]ptrace.ScopeSpans{} // keeps the SDK's grouping by resource and scope
	flush := func() error {
		if cur.SpanCount() == 0 {
			return nil
		}
		b, err := ptraceotlp.NewExportRequestFromTraces(cur).MarshalProto()
		if err != nil {
			return err
		}
		out = append(out, b)
		cur, traces, scopes = ptrace.NewTraces(), map[string]bool{}, map[[2]int]ptrace.ScopeSpans{}
		return nil
	}
	rss := td.ResourceSpans()
	for i := 0; i < rss.Len(); i++ {
		rs := rss.At(i)
		for j := 0; j < rs.ScopeSpans().Len(); j++ {
			ss := rs.ScopeSpans().At(j)
			for k := 0; k < ss.Spans().Len(); k++ {
				sp := ss.Spans().At(k)
				id := sp.TraceID().String()
				if !traces[id] && len(traces) >= perReq {
					if err := flush(); err != nil {
						return nil, err
					}
				}
				traces[id] = true
				nss, ok := scopes[[2]int{i, j}]
				if !ok {
					nrs := cur.ResourceSpans().AppendEmpty()
					rs.Resource().CopyTo(nrs.Resource())
					nss = nrs.ScopeSpans().AppendEmpty()
					ss.Scope().CopyTo(nss.Scope())
					scopes[[2]int{i, j}] = nss
				}
				sp.CopyTo(nss.Spans().AppendEmpty())
			}
		}
	}
	return out, flush()
}

func rawCopy(ctx context.Context, dsn, schema string, td ptrace.Traces) (float64, error) {
	st, err := postgres.Open(ctx, store.Options{DSN: dsn, Schema: schema})
	if err != nil {
		return 0, err
	}
	st.Close()
	spans, _ := convert.FromOTLP(td, time.Now(), convert.Limits{})
	byTrace := map[string][]model.Span{}
	for _, s := range spans {
		byTrace[s.TraceID] = append(byTrace[s.TraceID], s)
	}
	var traceRows, spanRows [][]any
	for id, ss := range byTrace {
		t := storetest.ExpectedTrace(ss)
		traceRows = append(traceRows, []any{id, t.Name, t.Status, t.StartTime, t.EndTime, t.DurationMS,
			t.RunID, t.SessionID, t.UserID, t.AgentID, t.TeamID, t.WorkflowID, model.FormatTime(time.Now())})
	}
	for _, s := range spans {
		spanRows = append(spanRows, []any{s.SpanID, s.TraceID, nullable(s.ParentSpanID), s.Name, s.SpanKind,
			s.StatusCode, nullable(s.StatusMessage), s.StartTime, s.EndTime, s.DurationMS, string(s.Attributes), s.CreatedAt})
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return 0, err
	}
	defer conn.Close(ctx)
	start := time.Now()
	if _, err := conn.CopyFrom(ctx, pgx.Identifier{schema, "agno_traces"},
		[]string{"trace_id", "name", "status", "start_time", "end_time", "duration_ms", "run_id", "session_id", "user_id", "agent_id", "team_id", "workflow_id", "created_at"},
		pgx.CopyFromRows(traceRows)); err != nil {
		return 0, err
	}
	if _, err := conn.CopyFrom(ctx, pgx.Identifier{schema, "agno_spans"},
		[]string{"span_id", "trace_id", "parent_span_id", "name", "span_kind", "status_code", "status_message", "start_time", "end_time", "duration_ms", "attributes", "created_at"},
		pgx.CopyFromRows(spanRows)); err != nil {
		return 0, err
	}
	return float64(len(spans)) / time.Since(start).Seconds(), nil
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

type gwResult struct {
	rate    float64
	peakRSS int64
	// cpu is the user+system time of the gateway and its plugins over the
	// whole run (ingest and delivery), read when it exits.
	cpu            time.Duration
	pluginCPU      time.Duration // the part of cpu spent in plugin processes
	lagP50, lagP99 time.Duration
	duplicates     int
	window         cpuUse // per span, while the senders ran
}

// cpuUse is where the machine's CPU time went: in all, in the gateway and
// its plugins, and in this process (the senders and the fake vendors). The
// rest is mostly PostgreSQL.
type cpuUse struct {
	machine, idle, gateway, bench time.Duration
}

// readCPU reads the CPU time used so far by the machine, the gateway
// processes procs and this process.
func readCPU(procs []int) cpuUse {
	var u cpuUse
	u.machine, u.idle, _ = procfs.MachineCPU()
	for _, pid := range procs {
		c, _ := procfs.CPUTime(pid)
		u.gateway += c
	}
	u.bench, _ = procfs.CPUTime(os.Getpid())
	return u
}

func (u cpuUse) since(b cpuUse) cpuUse {
	return cpuUse{u.machine - b.machine, u.idle - b.idle, u.gateway - b.gateway, u.bench - b.bench}
}

func (u cpuUse) perSpan(n int) cpuUse {
	d := time.Duration(max(n, 1))
	return cpuUse{u.machine / d, u.idle / d, u.gateway / d, u.bench / d}
}

func (u cpuUse) String() string {
	us := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
	return fmt.Sprintf("machine %.0f µs/span busy, %.0f idle (gateway+plugins %.0f, load generator+fake vendors %.1f, database and the rest %.0f)",
		us(u.machine), us(u.idle), us(u.gateway), us(u.bench), us(u.machine-u.gateway-u.bench))
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// endToEnd starts a gateway with one `otlp` destination per sink, sends
// every request, and when sinks are given waits until each open sink has
// every span, measuring delivery lag from each request's 200 to receipt.
func endToEnd(ctx context.Context, dsn, schema, gwBin string, reqs [][]byte, senders, wantSpans int, sinks []*otlpsink.Sink) (gwResult, error) {
	otlpAddr, err := freeAddr()
	if err != nil {
		return gwResult{}, err
	}
	httpAddr, err := freeAddr()
	if err != nil {
		return gwResult{}, err
	}
	dir, err := os.MkdirTemp("", "gwbench")
	if err != nil {
		return gwResult{}, err
	}
	defer os.RemoveAll(dir)
	dests := "destinations: []\n"
	if len(sinks) > 0 {
		dests = "destinations:\n"
		for i, sk := range sinks {
			dests += fmt.Sprintf("  - name: sink-%d\n    plugin: otlp\n    config: {endpoint: %q, compression: %s}\n    retry: {initial: 200ms, max: 2s}\n    batch: {max_spans: %d, max_delay: %s}\n", i, sk.URL(), destCompression, destBatch, destDelay)
		}
	}
	cfg := fmt.Sprintf(`server:
  otlp_grpc: ""
  otlp_http: %s
  http: %s
  pprof: %s
storage:
  driver: postgres
  dsn: %q
  schema: %s
log:
  level: warn
%s%s`, otlpAddr, httpAddr, os.Getenv("GATEWAYBENCH_PPROF"), dsn, schema, ingest, dests)
	cfgPath := filepath.Join(dir, "gw.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return gwResult{}, err
	}
	cmd := exec.Command(gwBin, "run", "--config", cfgPath)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Start(); err != nil {
		return gwResult{}, err
	}
	stopped := false
	defer func() {
		if !stopped {
			_ = cmd.Process.Signal(os.Interrupt)
			_ = cmd.Wait()
		}
	}()
	if err := waitReady("http://" + httpAddr + "/readyz"); err != nil {
		return gwResult{}, err
	}

	// Which spans each request carries, to measure delivery lag.
	reqSpans := make([][]pcommon.SpanID, len(reqs))
	for i, b := range reqs {
		req := ptraceotlp.NewExportRequest()
		if err := req.UnmarshalProto(b); err != nil {
			return gwResult{}, err
		}
		reqSpans[i] = otlpsink.SpanIDs(req.Traces())
	}
	acked := make([]time.Time, len(reqs))

	url := "http://" + otlpAddr + "/v1/traces"
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: senders}}
	var next atomic.Int64
	var wg sync.WaitGroup
	errc := make(chan error, senders)
	procs := []int{cmd.Process.Pid}
	for _, pids := range gwbuild.PluginChildren(cmd.Process.Pid) {
		procs = append(procs, pids...)
	}
	before := readCPU(procs)
	start := time.Now()
	for range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(reqs) {
					return
				}
				if err := send(client, url, reqs[i]); err != nil {
					errc <- err
					return
				}
				acked[i] = time.Now()
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	window := readCPU(procs).since(before)
	close(errc)
	if err := <-errc; err != nil {
		return gwResult{}, err
	}

	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		return gwResult{}, err
	}
	defer pool.Close()
	var n int
	if err := pool.QueryRow(ctx, fmt.Sprintf(`SELECT count(*) FROM %s.agno_spans`, pgx.Identifier{schema}.Sanitize())).Scan(&n); err != nil {
		return gwResult{}, err
	}
	if n != wantSpans {
		return gwResult{}, fmt.Errorf("stored %d spans, sent %d", n, wantSpans)
	}
	res := gwResult{rate: float64(n) / elapsed.Seconds(), window: window.perSpan(n)}

	// Wait for every open sink to hold every span.
	var open []*otlpsink.Sink
	for _, sk := range sinks {
		if !sk.Closed() {
			open = append(open, sk)
		}
	}
	deadline := time.Now().Add(3 * time.Minute)
	for _, sk := range open {
		for sk.Count() < wantSpans {
			if time.Now().After(deadline) {
				return gwResult{}, fmt.Errorf("%s received %d of %d spans after 3 minutes", sk.URL(), sk.Count(), wantSpans)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	var lags []time.Duration
	for _, sk := range open {
		for i, ids := range reqSpans {
			for _, id := range ids {
				at, _ := sk.Received(id)
				lags = append(lags, at.Sub(acked[i]))
			}
		}
		res.duplicates += sk.Duplicates()
	}
	if len(lags) > 0 {
		sort.Slice(lags, func(a, b int) bool { return lags[a] < lags[b] })
		res.lagP50 = lags[len(lags)/2]
		res.lagP99 = lags[len(lags)*99/100]
	}
	// Shutdown adds little: the gateway's own CPU time is read just before.
	res.peakRSS, _ = procfs.StatusBytes(cmd.Process.Pid, "VmHWM")
	own, _ := procfs.CPUTime(cmd.Process.Pid)
	stopped = true
	_ = cmd.Process.Signal(os.Interrupt)
	if err := cmd.Wait(); err != nil {
		return gwResult{}, fmt.Errorf("gateway exit: %w", err)
	}
	// wait4 reports the gateway's usage including the plugin processes it
	// waited for.
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		res.cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		res.pluginCPU = max(res.cpu-own, 0)
	}
	return res, nil
}

// send posts one request, retrying on 429/503 as an OTLP exporter would.
func send(c *http.Client, url string, body []byte) error {
	for attempt := 0; ; attempt++ {
		resp, err := c.Post(url, "application/x-protobuf", bytes.NewReader(body))
		if err != nil {
			return err
		}
		msg, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		switch {
		case resp.StatusCode == http.StatusOK:
			return nil
		case (resp.StatusCode == 429 || resp.StatusCode == 503) && attempt < 100:
			time.Sleep(50 * time.Millisecond)
		default:
			return fmt.Errorf("HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(msg)))
		}
	}
}

func waitReady(url string) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return errors.New("gateway did not become ready within 30s")
}

func dropSchemas(ctx context.Context, dsn string, schemas ...string) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return
	}
	defer conn.Close(ctx)
	for _, s := range schemas {
		_, _ = conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{s}.Sanitize()+" CASCADE")
	}
}
