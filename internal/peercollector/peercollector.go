// Package peercollector builds and configures the OpenTelemetry Collector
// that `make bench` measures the gateway's fan-out against: the
// Collector's own builder (ocb) compiles a distribution of just the otlp
// receiver, the batch processor and the otlphttp exporter, at one pinned
// version, from the Go module proxy. The binary is cached, so only the
// first run needs the network.
package peercollector

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Version is the Collector release of the builder, the receiver, the
// processor and the exporters; ProvidersVersion is the confmap provider
// release that shipped with it (the Collector's stable modules are
// numbered 1.x).
const (
	Version          = "0.165.0"
	ProvidersVersion = "1.71.0"
)

const (
	distName = "otelcol-bench"
	builder  = "go.opentelemetry.io/collector/cmd/builder"
)

// BuilderConfig is the builder's manifest for a distribution written to
// outDir.
func BuilderConfig(outDir string) string {
	m := map[string]any{
		"dist": map[string]any{
			"name":        distName,
			"description": "OpenTelemetry Collector for the gateway's fan-out benchmark",
			"output_path": outDir,
			"version":     Version,
		},
		"receivers":  []any{gomod("receiver/otlpreceiver", Version)},
		"processors": []any{gomod("processor/batchprocessor", Version)},
		"exporters":  []any{gomod("exporter/otlphttpexporter", Version)},
		// env is the confmap's default scheme: the Collector refuses to
		// start without it.
		"providers": []any{
			gomod("confmap/provider/envprovider", ProvidersVersion),
			gomod("confmap/provider/fileprovider", ProvidersVersion),
		},
	}
	return mustYAML(m)
}

func gomod(path, version string) map[string]any {
	return map[string]any{"gomod": "go.opentelemetry.io/collector/" + path + " v" + version}
}

func mustYAML(v any) string {
	b, err := yaml.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("peercollector: marshal %T: %v", v, err)) // maps of strings always marshal
	}
	return string(b)
}

// CacheDir is where Build keeps the binary by default: the user's cache
// directory ($XDG_CACHE_HOME, else ~/.cache), by version and manifest (a
// changed component list builds anew).
func CacheDir() (string, error) {
	dir, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("collector cache directory: %w", err)
	}
	sum := sha256.Sum256([]byte(BuilderConfig("")))
	return filepath.Join(dir, "kern-trace-gateway", fmt.Sprintf("otelcol-v%s-%x", Version, sum[:4])), nil
}

// Cached returns the binary in cacheDir when it is there and runs.
func Cached(ctx context.Context, cacheDir string) (string, bool) {
	bin := filepath.Join(cacheDir, distName)
	out, err := exec.CommandContext(ctx, bin, "--version").Output()
	if err != nil || !strings.Contains(string(out), Version) {
		return "", false
	}
	return bin, true
}

// Build returns the cached Collector binary in cacheDir, building it first
// when it is missing (go run of the builder; minutes and the module proxy
// the first time). Progress lines go to progress; the builder's own output
// is shown only when it fails.
func Build(ctx context.Context, cacheDir string, progress io.Writer) (string, error) {
	if bin, ok := Cached(ctx, cacheDir); ok {
		return bin, nil
	}
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return "", fmt.Errorf("collector cache: %w", err)
	}
	// Built beside the cache entry and renamed into it, so a build that is
	// interrupted, or two at once, never leave a broken binary behind.
	work, err := os.MkdirTemp(cacheDir, "build-")
	if err != nil {
		return "", fmt.Errorf("collector build directory: %w", err)
	}
	defer os.RemoveAll(work)
	manifest := filepath.Join(work, "builder.yaml")
	if err := os.WriteFile(manifest, []byte(BuilderConfig(filepath.Join(work, "dist"))), 0o644); err != nil {
		return "", fmt.Errorf("collector build manifest: %w", err)
	}
	fmt.Fprintf(progress, "building the OpenTelemetry Collector v%s with its builder from the Go module proxy (first run only, a few minutes; cached in %s)\n", Version, cacheDir)
	cmd := exec.CommandContext(ctx, "go", "run", builder+"@v"+Version, "--config", manifest)
	cmd.Dir = work
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("collector builder v%s: %w\n%s", Version, err, tail(out.String(), 40))
	}
	bin := filepath.Join(cacheDir, distName)
	if err := os.Rename(filepath.Join(work, "dist", distName), bin); err != nil {
		return "", fmt.Errorf("collector build: %w", err)
	}
	if _, ok := Cached(ctx, cacheDir); !ok {
		return "", errors.New("collector build: the built binary does not report version " + Version)
	}
	return bin, nil
}

// tail is the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(len(lines)-n, 0):], "\n")
}

// Config is a Collector configuration: an OTLP/HTTP receiver on listen
// (host:port), the batch processor with its defaults, and one otlphttp
// exporter per sink URL (full URLs of /v1/traces endpoints) without
// compression, with the exporters' default in-memory queue and retries;
// nothing persisted, no telemetry port.
func Config(listen string, sinkURLs []string) string {
	exporters := map[string]any{}
	var names []any
	for i, u := range sinkURLs {
		name := fmt.Sprintf("otlp_http/sink%d", i) // "otlphttp" is a deprecated alias
		exporters[name] = map[string]any{"traces_endpoint": u, "compression": "none"}
		names = append(names, name)
	}
	return mustYAML(map[string]any{
		"receivers": map[string]any{"otlp": map[string]any{
			"protocols": map[string]any{"http": map[string]any{"endpoint": listen}},
		}},
		"processors": map[string]any{"batch": map[string]any{}},
		"exporters":  exporters,
		"service": map[string]any{
			"telemetry": map[string]any{
				"logs":    map[string]any{"level": "warn"},
				"metrics": map[string]any{"level": "none"},
			},
			"pipelines": map[string]any{"traces": map[string]any{
				"receivers":  []any{"otlp"},
				"processors": []any{"batch"},
				"exporters":  names,
			}},
		},
	})
}

// Process is a running Collector.
type Process struct {
	cmd  *exec.Cmd
	dir  string
	done chan struct{} // closed when it exited
	err  error         // its exit, once done is closed
}

// Start runs bin with Config(listen, sinkURLs) and returns once the
// receiver accepts connections. Its output goes to out.
func Start(bin, listen string, sinkURLs []string, out io.Writer) (*Process, error) {
	dir, err := os.MkdirTemp("", "otelcol-")
	if err != nil {
		return nil, fmt.Errorf("collector: %w", err)
	}
	cfg := filepath.Join(dir, "otelcol.yaml")
	if err := os.WriteFile(cfg, []byte(Config(listen, sinkURLs)), 0o600); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("collector: %w", err)
	}
	cmd := exec.Command(bin, "--config", cfg)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("collector: %w", err)
	}
	p := &Process{cmd: cmd, dir: dir, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	deadline := time.Now().Add(time.Minute)
	for {
		if c, err := net.DialTimeout("tcp", listen, time.Second); err == nil {
			c.Close()
			return p, nil
		}
		select {
		case <-p.done:
			os.RemoveAll(dir)
			return nil, fmt.Errorf("collector exited before listening on %s: %v", listen, p.err)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.Stop()
			return nil, fmt.Errorf("collector not listening on %s after a minute", listen)
		}
	}
}

// Pid is the Collector's process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Stop interrupts the Collector and waits until it exited.
func (p *Process) Stop() {
	select {
	case <-p.done:
	default:
		_ = p.cmd.Process.Signal(os.Interrupt)
		<-p.done
	}
	os.RemoveAll(p.dir)
}
