package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kern-agents/trace-gateway/internal/config"
	"github.com/kern-agents/trace-gateway/internal/sim"
	"github.com/kern-agents/trace-gateway/internal/testdb"
)

// testConfig returns a valid config on loopback ports chosen by the kernel.
func testConfig(t *testing.T, driver string) *config.Config {
	t.Helper()
	cfg := config.Defaults()
	cfg.File = "test.yaml"
	cfg.Server = config.Server{OTLPGRPC: "127.0.0.1:0", OTLPHTTP: "127.0.0.1:0", HTTP: "127.0.0.1:0"}
	cfg.Storage.Driver = driver
	switch driver {
	case "sqlite":
		cfg.Storage.DSN = "file:" + filepath.Join(t.TempDir(), "traces.db")
	case "postgres":
		cfg.Storage.DSN, cfg.Storage.Schema = testdb.Postgres(t)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return &cfg
}

func startGateway(t *testing.T, cfg *config.Config) *Gateway {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	g, err := Start(ctx, cfg, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = g.Shutdown(ctx)
	})
	return g
}

func count(t *testing.T, g *Gateway, table string) int {
	t.Helper()
	traces, spans := g.Store().Tables()
	name := map[string]string{"traces": traces, "spans": spans}[table]
	var n int
	if err := g.Store().DB().QueryRow("SELECT count(*) FROM " + name).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestSDKSendersAreStored sends agent runs with the official OpenTelemetry Go
// SDK (otlptracegrpc and otlptracehttp) and checks that every exported span
// is committed, in both stores.
func TestSDKSendersAreStored(t *testing.T) {
	for _, driver := range []string{"sqlite", "postgres"} {
		for _, proto := range []string{sim.ProtocolGRPC, sim.ProtocolHTTP} {
			t.Run(driver+"/"+proto, func(t *testing.T) {
				g := startGateway(t, testConfig(t, driver))
				addr := g.Addrs().OTLPGRPC
				if proto == sim.ProtocolHTTP {
					addr = "http://" + g.Addrs().OTLPHTTP
				}
				ctx := context.Background()
				tp, counter, err := sim.NewTracerProvider(ctx, sim.Endpoint{Protocol: proto, Address: addr, Gzip: proto == sim.ProtocolHTTP, NoRetry: true})
				if err != nil {
					t.Fatal(err)
				}
				stats, err := sim.Run(ctx, tp, sim.Options{Count: 15, Seed: 3, ErrorRatio: 0.3})
				if err != nil {
					t.Fatal(err)
				}
				if err := tp.Shutdown(ctx); err != nil {
					t.Fatalf("SDK export: %v", err)
				}
				if counter.Failed() != 0 || counter.Exported() != stats.Spans {
					t.Fatalf("SDK exported %d of %d spans (%d failed: %v)", counter.Exported(), stats.Spans, counter.Failed(), counter.LastError())
				}
				// A 200/OK means committed: no waiting needed.
				if got := count(t, g, "spans"); int64(got) != stats.Spans {
					t.Fatalf("stored %d spans, SDK exported %d", got, stats.Spans)
				}
				if got := count(t, g, "traces"); int64(got) != stats.Runs {
					t.Fatalf("stored %d traces, simulated %d runs", got, stats.Runs)
				}
				seedQuery(t, g)
				metricsShow(t, g, fmt.Sprintf("kern_gateway_spans_stored_total %d", stats.Spans))
			})
		}
	}
}

// seedQuery runs DESIGN.md's example query verbatim.
func seedQuery(t *testing.T, g *Gateway) {
	t.Helper()
	db := g.Store().DB()
	ctx := context.Background()
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if g.Store().Dialect() == "postgres" {
		if _, err := conn.ExecContext(ctx, "SET search_path TO "+g.cfg.Storage.Schema); err != nil {
			t.Fatal(err)
		}
	}
	rows, err := conn.QueryContext(ctx, `SELECT name, AVG(duration_ms) AS avg_ms, COUNT(*) AS calls
FROM agno_spans GROUP BY name ORDER BY avg_ms DESC LIMIT 10;`)
	if err != nil {
		t.Fatalf("seed query: %v", err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var name string
		var avg float64
		var calls int
		if err := rows.Scan(&name, &avg, &calls); err != nil {
			t.Fatal(err)
		}
		if name == "" || calls <= 0 || avg < 0 {
			t.Fatalf("implausible seed query row: %q %v %d", name, avg, calls)
		}
		n++
	}
	if n != 10 {
		t.Fatalf("seed query returned %d rows, want 10", n)
	}
}

func metricsShow(t *testing.T, g *Gateway, want string) {
	t.Helper()
	body := get(t, "http://"+g.Addrs().HTTP+"/metrics", 200)
	if !strings.Contains(body, want) {
		t.Fatalf("/metrics lacks %q", want)
	}
}

func get(t *testing.T, url string, wantStatus int) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != wantStatus {
		t.Fatalf("GET %s: %d %s, want %d", url, resp.StatusCode, b, wantStatus)
	}
	return string(b)
}

func TestHealthAndReadiness(t *testing.T) {
	g := startGateway(t, testConfig(t, "sqlite"))
	get(t, "http://"+g.Addrs().HTTP+"/healthz", 200)
	get(t, "http://"+g.Addrs().HTTP+"/readyz", 200)
}

// TestShutdownDrains checks that spans accepted while the gateway shuts down
// are committed before Shutdown returns.
func TestShutdownDrains(t *testing.T) {
	cfg := testConfig(t, "sqlite")
	cfg.Ingest.MaxBatchDelay = config.Duration(time.Hour) // spans stay queued until Shutdown
	cfg.Ingest.MaxBatchSpans = 100000
	cfg.Ingest.MaxQueueSpans = 100000
	ctx := context.Background()
	g, err := Start(ctx, cfg, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	td, stats, err := sim.CaptureTraces(ctx, sim.Options{Count: 5, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	spans := toRows(t, td)
	done := make(chan error, 1)
	go func() { done <- g.batcher.Submit(ctx, spans) }()
	// Shut down once the submit is queued (its batch is not due for an hour).
	for deadline := time.Now().Add(30 * time.Second); g.batcher.Queued() < len(spans); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d spans queued after 30s", g.batcher.Queued(), len(spans))
		}
	}
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	// Keep the store open after Shutdown to count.
	st := g.store
	g.store = nopCloser{st}
	if err := g.Shutdown(sctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("accepted submit failed during shutdown: %v", err)
	}
	var n int64
	_, spansTable := st.Tables()
	if err := st.DB().QueryRow("SELECT count(*) FROM " + spansTable).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != stats.Spans {
		t.Fatalf("after shutdown %d of %d accepted spans are stored", n, stats.Spans)
	}
	_ = st.Close()
}

// TestExplorerServed checks the API and the page are mounted on server.http
// and read what the receivers stored.
func TestExplorerServed(t *testing.T) {
	g := startGateway(t, testConfig(t, "sqlite"))
	ctx := context.Background()
	td, stats, err := sim.CaptureTraces(ctx, sim.Options{Count: 3, Seed: 9})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.batcher.Submit(ctx, toRows(t, td)); err != nil {
		t.Fatal(err)
	}
	base := "http://" + g.Addrs().HTTP
	if page := get(t, base+"/", 200); !strings.Contains(strings.ToLower(page), "<html") {
		t.Fatalf("/ is not the explorer page: %.200s", page)
	}
	var list struct {
		Traces []struct {
			TraceID string `json:"trace_id"`
		} `json:"traces"`
	}
	if err := json.Unmarshal([]byte(get(t, base+"/api/traces?limit=10", 200)), &list); err != nil {
		t.Fatal(err)
	}
	if int64(len(list.Traces)) != stats.Runs {
		t.Fatalf("/api/traces listed %d traces, stored %d", len(list.Traces), stats.Runs)
	}
	get(t, base+"/api/traces/"+list.Traces[0].TraceID, 200)
	get(t, base+"/api/traces?limit=oops", 400)
}
