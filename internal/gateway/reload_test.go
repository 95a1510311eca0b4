package gateway

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"

	"github.com/kern-agents/trace-gateway/internal/config"
	"github.com/kern-agents/trace-gateway/internal/otlpsink"
)

// otlpSink is a fake OTLP/HTTP destination. It records, per span id, the
// X-Generation header of each delivery (the header is set in the
// destination's config, so it shows which settings delivered a span).
type otlpSink struct {
	*otlpsink.Sink
	mu  sync.Mutex
	got map[string][]string // span id -> generation of each delivery
}

func newOTLPSink(t *testing.T) *otlpSink {
	t.Helper()
	s := &otlpSink{got: map[string][]string{}}
	sk, err := otlpsink.New(otlpsink.WithHook(func(r *http.Request, td ptrace.Traces) {
		gen := r.Header.Get("X-Generation")
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, id := range otlpsink.SpanIDs(td) {
			s.got[id.String()] = append(s.got[id.String()], gen)
		}
	}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sk.Close)
	s.Sink = sk
	return s
}

// deliveries returns a copy of what arrived.
func (s *otlpSink) deliveries() map[string][]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string][]string, len(s.got))
	for k, v := range s.got {
		out[k] = slices.Clone(v)
	}
	return out
}

// missing counts the ids that have not arrived.
func (s *otlpSink) missing(ids []string) int {
	got := s.deliveries()
	n := 0
	for _, id := range ids {
		if len(got[id]) == 0 {
			n++
		}
	}
	return n
}

// sent is one request of the load generator.
type sent struct {
	began time.Time
	ids   []string
	ok    bool // answered 200: the gateway committed the spans
}

// loadGen posts OTLP/HTTP requests of fresh spans continuously from a few
// senders and records what was acknowledged.
type loadGen struct {
	url    string
	token  string
	mu     sync.Mutex
	reqs   []sent
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func startLoad(t *testing.T, otlpHTTP, token string, senders int) *loadGen {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	l := &loadGen{url: "http://" + otlpHTTP + "/v1/traces", token: token, cancel: cancel}
	client := &http.Client{Timeout: 30 * time.Second}
	for range senders {
		l.wg.Go(func() {
			for ctx.Err() == nil {
				body, ids := spanRequest(t, 20)
				req, _ := http.NewRequest(http.MethodPost, l.url, bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/x-protobuf")
				if l.token != "" {
					req.Header.Set("Authorization", "Bearer "+l.token)
				}
				s := sent{began: time.Now(), ids: ids}
				resp, err := client.Do(req)
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					s.ok = resp.StatusCode == http.StatusOK
				}
				l.mu.Lock()
				l.reqs = append(l.reqs, s)
				l.mu.Unlock()
				time.Sleep(2 * time.Millisecond)
			}
		})
	}
	return l
}

// stop ends the load and returns every request made.
func (l *loadGen) stop() []sent {
	l.cancel()
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.reqs)
}

// acked lists the acknowledged span ids of requests begun after since (all
// of them for the zero time).
func acked(reqs []sent, since time.Time) []string {
	var ids []string
	for _, r := range reqs {
		if r.ok && !r.began.Before(since) {
			ids = append(ids, r.ids...)
		}
	}
	return ids
}

// spanRequest encodes n new spans (traces of 5) as an OTLP request.
func spanRequest(t *testing.T, n int) ([]byte, []string) {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "agentos")
	ss := rs.ScopeSpans().AppendEmpty()
	now := time.Now()
	ids := make([]string, 0, n)
	var trace pcommon.TraceID
	for i := range n {
		if i%5 == 0 {
			_, _ = rand.Read(trace[:])
		}
		var id pcommon.SpanID
		_, _ = rand.Read(id[:])
		sp := ss.Spans().AppendEmpty()
		sp.SetTraceID(trace)
		sp.SetSpanID(id)
		sp.SetName(fmt.Sprintf("op-%d", i))
		sp.SetStartTimestamp(pcommon.NewTimestampFromTime(now))
		sp.SetEndTimestamp(pcommon.NewTimestampFromTime(now.Add(time.Millisecond)))
		ids = append(ids, id.String())
	}
	b, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
	if err != nil {
		t.Error(err)
	}
	return b, ids
}

// sinkDest is an otlp destination delivering to sink, fast to retry.
func sinkDest(name string, sink *otlpSink, generation string) config.Destination {
	return config.Destination{
		Name:   name,
		Plugin: "otlp",
		Config: map[string]any{"endpoint": sink.URL(), "compression": "none",
			"headers": map[string]any{"X-Generation": generation}},
		Batch: config.Batch{MaxDelay: config.Duration(20 * time.Millisecond)},
		Retry: config.Retry{Initial: config.Duration(50 * time.Millisecond), Max: config.Duration(500 * time.Millisecond)},
	}
}

func startWithPlugins(t *testing.T, cfg *config.Config, opts Options) *Gateway {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	opts.PluginCommand = pluginCommand
	if opts.Logger == nil {
		opts.Logger = testLog(t)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	g, err := Start(ctx, cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := g.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return g
}

// testLog keeps the gateway's log and shows it when the test fails.
func testLog(t *testing.T) *slog.Logger {
	var mu sync.Mutex
	var buf bytes.Buffer
	t.Cleanup(func() {
		if t.Failed() {
			mu.Lock()
			t.Log("gateway log:\n" + buf.String())
			mu.Unlock()
		}
	})
	return slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return buf.Write(p)
	}), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// storedIDs lists every stored span id.
func storedIDs(t *testing.T, g *Gateway) map[string]bool {
	t.Helper()
	_, spans := g.Store().Tables()
	rows, err := g.Store().DB().Query("SELECT span_id FROM " + spans)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		out[id] = true
	}
	return out
}

func waitUntil(t *testing.T, what string, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestReloadDestinationsUnderLoad reloads while a load generator sends
// continuously: one destination is added, one removed, one changed, one
// left alone; then an invalid configuration (a destination whose plugin
// rejects its config) is refused. No acknowledged span may be lost.
func TestReloadDestinationsUnderLoad(t *testing.T) {
	for _, driver := range []string{"sqlite", "postgres"} {
		t.Run(driver, func(t *testing.T) {
			keepSink, goneSink, changedSink, addedSink := newOTLPSink(t), newOTLPSink(t), newOTLPSink(t), newOTLPSink(t)
			cfg := testConfig(t, driver)
			cfg.Destinations = []config.Destination{
				sinkDest("keep", keepSink, "1"),
				sinkDest("gone", goneSink, "1"),
				sinkDest("changed", changedSink, "1"),
			}
			g := startWithPlugins(t, cfg, Options{})
			load := startLoad(t, g.Addrs().OTLPHTTP, "", 2)
			waitUntil(t, "first deliveries", 2*time.Minute, func() bool {
				return len(keepSink.deliveries()) > 1000 && len(goneSink.deliveries()) > 1000 && len(changedSink.deliveries()) > 1000
			})

			next := *cfg
			changed := sinkDest("changed", changedSink, "2")
			changed.Batch.MaxSpans = 64
			next.Destinations = []config.Destination{
				sinkDest("keep", keepSink, "1"),
				changed,
				sinkDest("added", addedSink, "1"),
			}
			ctx := context.Background()
			res, err := g.Reload(ctx, &next)
			reloaded := time.Now()
			if err != nil {
				t.Fatalf("valid reload: %v", err)
			}
			if !slices.Equal(res.DestinationsAdded, []string{"added"}) || !slices.Equal(res.DestinationsRemoved, []string{"gone"}) ||
				!slices.Equal(res.DestinationsChanged, []string{"changed"}) || len(res.RestartRequired) != 0 {
				t.Fatalf("reload result %+v", res)
			}
			waitUntil(t, "deliveries after the reload", 2*time.Minute, func() bool {
				return addedSink.missing(acked(load.snapshot(), reloaded)) == 0 && len(addedSink.deliveries()) > 1000
			})

			// Invalid: a new destination's plugin and the changed one's new
			// settings are refused by the plugin; the file also drops "keep"
			// and sets a token. Nothing of it applies.
			bad := next
			bad.Server.Auth.Tokens = []config.AuthToken{{Token: tokenA, Tenant: "team-a"}}
			badChanged := sinkDest("changed", changedSink, "3")
			badChanged.Config["endpoint"] = "not a url"
			bad.Destinations = []config.Destination{
				badChanged,
				sinkDest("added", addedSink, "1"),
				{Name: "broken", Plugin: "otlp", Config: map[string]any{"endpont": "http://127.0.0.1:1"}},
			}
			_, err = g.Reload(ctx, &bad)
			refused := time.Now()
			if !errors.Is(err, ErrReloadRefused) || !strings.Contains(err.Error(), `"broken"`) || !strings.Contains(err.Error(), `"changed"`) {
				t.Fatalf("invalid reload: %v; want a refusal naming both destinations", err)
			}
			if got := sortedNames(g.fanout.Destinations()); !slices.Equal(got, []string{"added", "changed", "keep"}) {
				t.Fatalf("destinations after a refused reload: %v", got)
			}
			// Keep sending under the kept config: a second at least, and
			// until some spans sent after the refusal are acknowledged.
			waitUntil(t, "spans acknowledged after the refused reload", 2*time.Minute, func() bool {
				return time.Since(refused) >= time.Second && len(acked(load.snapshot(), refused)) > 0
			})
			reqs := load.stop()

			all := acked(reqs, time.Time{})
			if len(all) == 0 {
				t.Fatal("nothing acknowledged")
			}
			for _, r := range reqs {
				if !r.ok {
					t.Fatalf("a request was refused during the reloads (%d of %d ok)", len(acked(reqs, time.Time{}))/20, len(reqs))
				}
			}
			stored := storedIDs(t, g)
			for _, id := range all {
				if !stored[id] {
					t.Fatalf("acknowledged span %s not stored", id)
				}
			}
			if len(stored) != len(all) {
				t.Fatalf("stored %d spans, acknowledged %d", len(stored), len(all))
			}
			after := acked(reqs, reloaded)
			waitUntil(t, "every destination catching up", 2*time.Minute, func() bool {
				return keepSink.missing(all) == 0 && changedSink.missing(all) == 0 && addedSink.missing(after) == 0
			})
			// The unchanged destination never saw a duplicate: its worker ran
			// through both reloads.
			for id, gens := range keepSink.deliveries() {
				if len(gens) != 1 {
					t.Fatalf("unchanged destination got %s %d times", id, len(gens))
				}
			}
			// Spans sent after the reload went out with the new settings only,
			// also after the refused reload.
			if n := len(acked(reqs, refused)); n == 0 {
				t.Fatal("nothing sent after the refused reload")
			}
			got := changedSink.deliveries()
			for _, id := range after {
				for _, gen := range got[id] {
					if gen != "2" {
						t.Fatalf("span %s sent after the reload was delivered with generation %q", id, gen)
					}
				}
			}
			gone := goneSink.deliveries()
			for _, id := range after {
				if len(gone[id]) > 0 {
					t.Fatalf("removed destination received span %s sent after the reload", id)
				}
			}
			// A removed destination's gauges are dropped; its cursor stays.
			if body := get(t, "http://"+g.Addrs().HTTP+"/metrics", 200); strings.Contains(body, `kern_gateway_destination_plugin_up{destination="gone"}`) {
				t.Fatal("removed destination still has a plugin_up series")
			}
			var cursors int
			table := "gateway_cursors"
			if g.Store().Dialect() == "postgres" {
				table = g.cfg.Storage.Schema + ".gateway_cursors"
			}
			if err := g.Store().DB().QueryRow("SELECT count(*) FROM " + table + " WHERE destination = 'gone'").Scan(&cursors); err != nil {
				t.Fatal(err)
			}
			if cursors != 1 {
				t.Fatalf("removed destination's cursor: %d rows", cursors)
			}
			t.Logf("%d spans acknowledged (%d after the reload), %d requests", len(all), len(after), len(reqs))
		})
	}
}

// snapshot returns the requests made so far.
func (l *loadGen) snapshot() []sent {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.reqs)
}

func sortedNames(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return out
}

// TestReloadEndpointAndAPITokens drives POST /-/reload from a config file:
// it is behind the tokens, reports what changed, refuses a broken file
// while the gateway keeps serving, and the API follows the token changes.
func TestReloadEndpointAndAPITokens(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "gw.yaml")
	db := "file:" + filepath.Join(dir, "traces.db")
	write := func(tokens string, extra string) {
		t.Helper()
		src := fmt.Sprintf(`server:
  otlp_grpc: ""
  otlp_http: 127.0.0.1:0
  http: 127.0.0.1:0
  auth:
    tokens:
%sstorage:
  driver: sqlite
  dsn: %q
%s`, tokens, db, extra)
		if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	const tokenOps = "token-ops-admin-0123456789"
	tokenLine := func(tok, tenant string) string {
		return fmt.Sprintf("      - {token: %s, tenant: %s}\n      - {token: %s, tenant: ops, admin: true}\n", tok, tenant, tokenOps)
	}
	write(tokenLine(tokenA, "team-a"), "")
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	g := startWithPlugins(t, cfg, Options{LoadConfig: func() (*config.Config, error) { return config.Load(path) }})
	base := "http://" + g.Addrs().HTTP

	do := func(method, url, token string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, url, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, tc := range []struct {
		name, method, path, token string
		want                      int
	}{
		{"API without token", "GET", "/api/traces", "", 401},
		{"API with a wrong token", "GET", "/api/traces", tokenB, 401},
		{"API with the token", "GET", "/api/traces", tokenA, 200},
		{"summary with the token", "GET", "/api/summary", tokenA, 200},
		{"page without token", "GET", "/", "", 200},
		{"healthz", "GET", "/healthz", "", 200},
		{"readyz", "GET", "/readyz", "", 200},
		{"metrics", "GET", "/metrics", "", 200},
		{"reload without token", "POST", "/-/reload", "", 401},
		{"reload with a wrong token", "POST", "/-/reload", tokenB, 401},
		{"reload with a tenant's token", "POST", "/-/reload", tokenA, 403},
		{"reload is POST only", "GET", "/-/reload", tokenOps, 405},
	} {
		if code, body := do(tc.method, base+tc.path, tc.token); code != tc.want {
			t.Errorf("%s: %d %.200s, want %d", tc.name, code, body, tc.want)
		}
	}

	// Unchanged file: nothing to do.
	code, body := do("POST", base+"/-/reload", tokenOps)
	var res ReloadResult
	if code != 200 || json.Unmarshal([]byte(body), &res) != nil || len(res.RestartRequired)+len(res.DestinationsAdded) != 0 {
		t.Fatalf("reload of the same file: %d %s", code, body)
	}

	// A broken file is refused with its file:line; the old tokens stay.
	write(tokenLine(tokenB, "team-b"), "ingest:\n  writers: -3\n")
	code, body = do("POST", base+"/-/reload", tokenOps)
	if code != 422 || !strings.Contains(body, "gw.yaml:") || !strings.Contains(body, "writers") {
		t.Fatalf("broken file: %d %s", code, body)
	}
	if code, _ := do("GET", base+"/api/traces", tokenA); code != 200 {
		t.Fatalf("old token refused after a failed reload: %d", code)
	}
	if code := postSpans(t, g, tokenA); code != 200 {
		t.Fatalf("OTLP after a failed reload: %d", code)
	}

	// New token, and a setting that needs a restart.
	write(tokenLine(tokenB, "team-b"), "ingest:\n  writers: 3\n")
	code, body = do("POST", base+"/-/reload", tokenOps)
	if code != 200 {
		t.Fatalf("reload: %d %s", code, body)
	}
	res = ReloadResult{}
	if err := json.Unmarshal([]byte(body), &res); err != nil || !slices.Equal(res.RestartRequired, []string{"ingest.writers"}) {
		t.Fatalf("reload result %s (%v)", body, err)
	}
	if code, _ := do("GET", base+"/api/traces", tokenA); code != 401 {
		t.Fatalf("API accepts the removed token: %d", code)
	}
	if code, body := do("GET", base+"/api/traces", tokenB); code != 200 || !strings.Contains(body, `"traces"`) {
		t.Fatalf("API refuses the new token: %d %s", code, body)
	}
	if code := postSpans(t, g, tokenB); code != 200 {
		t.Fatalf("OTLP with the new token: %d", code)
	}

	// No tokens at all: the API is open again.
	write("", "")
	if code, body := do("POST", base+"/-/reload", tokenOps); code != 200 {
		t.Fatalf("reload to no tokens: %d %s", code, body)
	}
	if code, _ := do("GET", base+"/api/traces", ""); code != 200 {
		t.Fatalf("API without tokens configured: %d", code)
	}
}

func postSpans(t *testing.T, g *Gateway, token string) int {
	t.Helper()
	body, _ := spanRequest(t, 5)
	req, _ := http.NewRequest(http.MethodPost, "http://"+g.Addrs().OTLPHTTP+"/v1/traces", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestRestartRequired(t *testing.T) {
	base := config.Defaults()
	for _, tc := range []struct {
		name   string
		change func(c *config.Config)
		want   []string
	}{
		{"nothing", func(*config.Config) {}, nil},
		{"live settings only", func(c *config.Config) {
			c.Server.Auth.Tokens = []config.AuthToken{{Token: tokenA, Tenant: "a"}}
			c.Ingest.RateLimit.SpansPerSecond = 10
			c.Ingest.TenantRateLimits = []config.TenantRateLimit{{Tenant: "a", SpansPerSecond: 1}}
			c.Destinations = []config.Destination{{Name: "x", Plugin: "otlp"}}
		}, nil},
		{"listeners and storage", func(c *config.Config) {
			c.Server.OTLPHTTP = "127.0.0.1:9999"
			c.Server.TLS.CertFile = "/x.crt"
			c.Storage.DSN = "file:other.db"
			c.Storage.Retention = config.Duration(time.Hour)
		}, []string{"server.otlp_http", "server.tls.cert_file", "storage.dsn", "storage.retention"}},
		{"ingest and log", func(c *config.Config) {
			c.Ingest.MaxQueueSpans = 7
			c.Server.GRPC.MaxConnectionAge = config.Duration(time.Second)
			c.Log.Level = "debug"
		}, []string{"server.grpc.max_connection_age", "ingest.max_queue_spans", "log.level"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			next := base
			tc.change(&next)
			if got := restartRequired(&base, &next); !slices.Equal(got, tc.want) {
				t.Fatalf("restartRequired = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestDiffDestinations(t *testing.T) {
	a := config.Destination{Name: "a", Plugin: "otlp", Config: map[string]any{"endpoint": "http://x"}}
	b := config.Destination{Name: "b", Plugin: "langfuse"}
	a2 := a
	a2.Config = map[string]any{"endpoint": "http://y"}
	b2 := b
	b2.Batch.MaxSpans = 10
	c := config.Destination{Name: "c", Plugin: "otlp"}
	for _, tc := range []struct {
		name                    string
		old, next               []config.Destination
		added, removed, changed []string
	}{
		{"same", []config.Destination{a, b}, []config.Destination{b, a}, nil, nil, nil},
		{"config and routing changes", []config.Destination{a, b}, []config.Destination{a2, b2}, nil, nil, []string{"a", "b"}},
		{"add and remove", []config.Destination{a, b}, []config.Destination{b, c}, []string{"c"}, []string{"a"}, nil},
		{"from none", nil, []config.Destination{a}, []string{"a"}, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			added, removed, changed := diffDestinations(tc.old, tc.next)
			if !slices.Equal(names(added), tc.added) || !slices.Equal(removed, tc.removed) || !slices.Equal(names(changed), tc.changed) {
				t.Fatalf("diff = +%v -%v ~%v, want +%v -%v ~%v", names(added), removed, names(changed), tc.added, tc.removed, tc.changed)
			}
		})
	}
}

// recordHandler keeps log records' messages and attributes.
type recordHandler struct {
	mu   *sync.Mutex
	recs *[]map[string]string
}

func (h recordHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h recordHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h recordHandler) WithGroup(string) slog.Handler            { return h }
func (h recordHandler) Handle(_ context.Context, r slog.Record) error {
	m := map[string]string{"msg": r.Message}
	r.Attrs(func(a slog.Attr) bool { m[a.Key] = a.Value.String(); return true })
	h.mu.Lock()
	*h.recs = append(*h.recs, m)
	h.mu.Unlock()
	return nil
}

// TestRunReloadsFromFile drives Run as cmd/gateway does on SIGHUP: the
// file gains a destination, which then receives the spans sent after it.
func TestRunReloadsFromFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "gw.yaml")
	first, second := newOTLPSink(t), newOTLPSink(t)
	write := func(sinks ...*otlpSink) {
		t.Helper()
		var dests strings.Builder
		for i, s := range sinks {
			fmt.Fprintf(&dests, "  - {name: d%d, plugin: otlp, config: {endpoint: %q}, batch: {max_delay: 20ms}}\n", i, s.URL())
		}
		src := fmt.Sprintf("server: {otlp_grpc: \"\", otlp_http: \"127.0.0.1:0\", http: \"127.0.0.1:0\"}\nstorage: {driver: sqlite, dsn: %q}\ndestinations:\n%s",
			"file:"+filepath.Join(dir, "traces.db"), dests.String())
		if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(first)
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var recs []map[string]string
	find := func(msg string) map[string]string {
		mu.Lock()
		defer mu.Unlock()
		for _, r := range recs {
			if r["msg"] == msg {
				return r
			}
		}
		return nil
	}
	reload := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, cfg, Options{Logger: slog.New(recordHandler{&mu, &recs}), Reload: reload,
			LoadConfig: func() (*config.Config, error) { return config.Load(path) }, PluginCommand: pluginCommand})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	waitUntil(t, "gateway ready", 2*time.Minute, func() bool { return find("gateway ready") != nil })
	otlpHTTP := find("gateway ready")["otlp_http"]
	send := func() []string {
		t.Helper()
		body, ids := spanRequest(t, 10)
		resp, err := http.Post("http://"+otlpHTTP+"/v1/traces", "application/x-protobuf", bytes.NewReader(body))
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("send: %v %v", resp, err)
		}
		resp.Body.Close()
		return ids
	}
	before := send()
	waitUntil(t, "first destination", 2*time.Minute, func() bool { return first.missing(before) == 0 })

	write(first, second)
	reload <- struct{}{}
	waitUntil(t, "reload", 2*time.Minute, func() bool { return find("configuration reloaded") != nil })
	if r := find("configuration reloaded"); r["added"] != "[d1]" {
		t.Fatalf("reload log %v", r)
	}
	after := send()
	waitUntil(t, "both destinations", 2*time.Minute, func() bool { return first.missing(after) == 0 && second.missing(after) == 0 })
	if second.missing(before) != len(before) {
		t.Fatal("the added destination received spans stored before it was added")
	}
}
