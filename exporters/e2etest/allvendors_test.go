package e2etest

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/kern-agents/trace-gateway/internal/gwproc"
	"github.com/kern-agents/trace-gateway/internal/sim"
)

// destinationEngine are the delivery settings of every destination here:
// short retries and breaker cool-down (defaults 30 s) so that a transient
// hiccup costs seconds, and a short batch delay so that delivery follows
// ingest closely.
var destinationEngine = map[string]any{
	"batch":           map[string]any{"max_delay": "100ms"},
	"retry":           map[string]any{"initial": "200ms", "max": "2s"},
	"circuit_breaker": map[string]any{"failures": 5, "cool_down": "2s"},
	"timeout":         "10s",
	"lease":           "5s",
}

// workload is the simulated AgentOS traffic: agent and team runs with
// hooks, retrieval, LLM calls, tool calls (half of them failing with an
// exception) and team delegation, in both OTel GenAI and OpenInference
// conventions. It is sent in rounds, each delivered before the next is
// sent, so that every destination gets several requests and resumes from
// its cursor. The seeds fix the shape of the runs; checkWorkload makes sure
// every kind of step is there.
var workload = []sim.Options{
	{Count: 6, ErrorRatio: 0.5, Seed: 20250611, Users: 3, Sessions: 4, Agents: 4},
	{Count: 6, ErrorRatio: 0.5, Seed: 20250612, Users: 3, Sessions: 4, Agents: 4},
}

// drainTimeout bounds the wait for every vendor to have every stored span.
const drainTimeout = 2 * time.Minute

// TestAllVendors runs one gateway with every built-in vendor destination at
// once and checks what each vendor's fake received against the database.
func TestAllVendors(t *testing.T) {
	e2eOnly(t)
	for _, tc := range []struct {
		name string
		db   func(*testing.T) database
	}{
		{"sqlite", sqliteDB},
		{"postgres", postgresDB},
	} {
		t.Run(tc.name, func(t *testing.T) { runAllVendors(t, tc.db(t)) })
	}
}

func runAllVendors(t *testing.T, db database) {
	var sec secrets
	vendors := newVendors(t, &sec)
	g := gwproc.Start(t, gwproc.Options{Bin: gatewayBin, Config: gatewayConfig(t, db, vendors), Env: sec.env})

	var stats sim.Stats
	var stored map[string]storedSpan
	var drained time.Duration
	for _, opts := range workload {
		round := sendWorkload(t, g.Addrs().OTLPHTTP, opts)
		stats.Runs += round.Runs
		stats.Spans += round.Spans
		stats.FailedTools += round.FailedTools
		var err error
		if stored, err = readStored(db); err != nil {
			t.Fatal(err)
		}
		// Every span was acknowledged, so every span is stored.
		if int64(len(stored)) != stats.Spans {
			t.Fatalf("the simulation sent %d spans (acknowledged) but %d are stored", stats.Spans, len(stored))
		}
		drained = waitDelivered(t, vendors, stored)
	}
	checkWorkload(t, stored)

	// One plugin process per destination.
	want := map[string]int{}
	for _, v := range vendors {
		want[v.plugin]++
	}
	got := map[string]int{}
	for name, pids := range g.PluginPids() {
		got[name] = len(pids)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("plugin processes by adapter: %v, want %v", got, want)
	}
	dead, err := g.Metric("kern_gateway_destination_spans_dead_lettered_total")
	if err != nil {
		t.Error(err)
	}
	for dest, n := range dead {
		if n > 0 {
			t.Errorf("destination %s dead-lettered %v spans", dest, n)
		}
	}

	for _, v := range vendors {
		t.Run(v.name, func(t *testing.T) {
			v.checkTransport(t, len(workload))
			v.checkSpans(t, stored)
			got, dups := v.spans()
			t.Logf("%d requests, %d distinct spans, %d duplicate copies", len(v.received()), len(got), dups)
		})
	}

	if err := g.Term(30 * time.Second); err != nil {
		t.Errorf("gateway exit after SIGTERM: %v", err)
	}
	if !g.GroupGone(30 * time.Second) {
		t.Error("plugin processes still run 30s after the gateway stopped")
	}
	t.Logf("%d runs, %d spans (%d failed tools) stored; all %d vendor fakes had every one of the last round %v after its ingest",
		stats.Runs, stats.Spans, stats.FailedTools, len(vendors), drained.Round(time.Millisecond))
}

// gatewayConfig is the gateway's YAML: ephemeral loopback listeners (OTLP
// over HTTP only), the database, and one destination per vendor.
func gatewayConfig(t *testing.T, db database, vendors []*vendor) []byte {
	t.Helper()
	var dests []map[string]any
	for _, v := range vendors {
		conf := map[string]any{"timeout": "5s"}
		for k, val := range v.config {
			conf[k] = val
		}
		d := map[string]any{"name": v.name, "plugin": v.plugin, "config": conf}
		for k, val := range destinationEngine {
			d[k] = val
		}
		dests = append(dests, d)
	}
	doc := map[string]any{
		"server":       map[string]any{"otlp_grpc": "", "otlp_http": "127.0.0.1:0", "http": "127.0.0.1:0"},
		"storage":      db.storage(),
		"log":          map[string]any{"level": "info"},
		"destinations": dests,
	}
	b, err := yaml.Marshal(doc)
	if err != nil {
		t.Fatalf("gateway config: %v", err)
	}
	if !strings.Contains(string(b), "${E2E_LANGFUSE_SECRET_KEY}") {
		t.Fatalf("the config should reference secrets as ${ENV}:\n%s", b)
	}
	return b
}

// sendWorkload runs the simulation against the gateway's OTLP/HTTP
// listener with the OpenTelemetry SDK's exporter, and fails unless the
// gateway acknowledged every span.
func sendWorkload(t *testing.T, otlpHTTP string, opts sim.Options) sim.Stats {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tp, sent, err := sim.NewTracerProvider(ctx, sim.Endpoint{Protocol: sim.ProtocolHTTP, Address: "http://" + otlpHTTP, Gzip: true})
	if err != nil {
		t.Fatal(err)
	}
	stats, err := sim.Run(ctx, tp, opts)
	if err != nil {
		t.Fatalf("simulation: %v", err)
	}
	if err := tp.Shutdown(ctx); err != nil {
		t.Fatalf("flush the simulation's spans: %v", err)
	}
	if sent.Failed() > 0 || sent.Exported() != stats.Spans {
		t.Fatalf("the gateway acknowledged %d of %d spans (%d failed; last error %v)", sent.Exported(), stats.Spans, sent.Failed(), sent.LastError())
	}
	return stats
}

// waitDelivered polls the fakes until every one has every stored span, and
// returns how long that took; after drainTimeout it fails naming the
// vendors still short.
func waitDelivered(t *testing.T, vendors []*vendor, stored map[string]storedSpan) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		short := map[string]int{}
		for _, v := range vendors {
			if n := v.missing(stored); n > 0 {
				short[v.name] = n
			}
		}
		if len(short) == 0 {
			return time.Since(start)
		}
		if time.Since(start) > drainTimeout {
			var parts []string
			for name, n := range short {
				parts = append(parts, fmt.Sprintf("%s misses %d", name, n))
			}
			sort.Strings(parts)
			t.Fatalf("%v after ingest, destinations still miss stored spans (of %d): %s", drainTimeout, len(stored), strings.Join(parts, ", "))
		}
		time.Sleep(100 * time.Millisecond)
	}
}
