package e2e

import (
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/kern-agents/trace-gateway/internal/gwproc"
)

// dbTarget names a trace database the way the gateway's config does.
type dbTarget struct {
	Driver string // postgres | sqlite
	DSN    string
	Schema string // PostgreSQL only
}

// destination is one `destinations:` entry: the built-in otlp adapter
// sending to Endpoint, or Plugin with Config.
type destination struct {
	Name     string
	Endpoint string         // the fake vendor's traces URL
	Plugin   string         // a plugin binary instead of the otlp adapter
	Config   map[string]any // the plugin's config block (with Plugin)
	Extra    map[string]any // further keys of the destination entry (engine settings)
}

// gatewayConfig is what a test chooses; everything else is fixed.
type gatewayConfig struct {
	DB           dbTarget
	Ingest       map[string]any // ingest.* keys, e.g. max_queue_spans
	Destinations []destination
}

// gatewayProc is one gateway (a config file and fixed addresses) that can be
// started, killed and restarted as OS processes.
type gatewayProc struct {
	*gwproc.Gateway
	t *testing.T
	// Fixed across restarts, so senders keep their endpoints.
	OTLPHTTP, OTLPGRPC, HTTP string
}

// newGateway writes a config for cfg and starts a gateway on it, waiting
// until it is ready. It is stopped (if still running) when the test ends,
// and its config and logs are shown if the test failed.
func newGateway(t *testing.T, cfg gatewayConfig) *gatewayProc {
	t.Helper()
	g := &gatewayProc{
		t:        t,
		OTLPHTTP: gwproc.FreeAddr(t),
		OTLPGRPC: gwproc.FreeAddr(t),
		HTTP:     gwproc.FreeAddr(t),
	}
	storage := map[string]any{"driver": cfg.DB.Driver, "dsn": cfg.DB.DSN}
	if cfg.DB.Schema != "" {
		storage["schema"] = cfg.DB.Schema
	}
	doc := map[string]any{
		"server":  map[string]any{"otlp_http": g.OTLPHTTP, "otlp_grpc": g.OTLPGRPC, "http": g.HTTP},
		"storage": storage,
		"log":     map[string]any{"level": "info"},
	}
	if len(cfg.Ingest) > 0 {
		doc["ingest"] = cfg.Ingest
	}
	var dests []map[string]any
	for _, d := range cfg.Destinations {
		e := map[string]any{
			"name":   d.Name,
			"plugin": "otlp",
			"config": map[string]any{"endpoint": d.Endpoint, "compression": "none", "timeout": "5s"},
		}
		if d.Plugin != "" {
			e["plugin"], e["config"] = d.Plugin, d.Config
		}
		for k, v := range d.Extra {
			e[k] = v
		}
		dests = append(dests, e)
	}
	if len(dests) > 0 {
		doc["destinations"] = dests
	}
	b, err := yaml.Marshal(doc)
	if err != nil {
		t.Fatalf("gateway config: %v", err)
	}
	g.Gateway = gwproc.Start(t, gwproc.Options{Bin: gatewayBin, Config: b})
	return g
}

// pluginPids returns the gateway's children serving built-in adapter name
// (`gateway plugin NAME`).
func (g *gatewayProc) pluginPids(name string) []int { return g.PluginPids()[name] }

// mustMetric reads the sum of every sample of a counter or gauge from
// /metrics (a labelled metric nothing was counted for yet is absent: 0), and
// fails the test on error.
func (g *gatewayProc) mustMetric(name string) float64 {
	g.t.Helper()
	v, err := g.Metric(name)
	if err != nil {
		g.t.Fatalf("read %s: %v", name, err)
	}
	return v.Sum()
}
