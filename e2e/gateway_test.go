package e2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/kern-agents/trace-gateway/internal/gwbuild"
)

// dbTarget names a trace database the way the gateway's config does.
type dbTarget struct {
	Driver string // postgres | sqlite
	DSN    string
	Schema string // PostgreSQL only
}

// destination is one `destinations:` entry using the built-in otlp adapter.
type destination struct {
	Name     string
	Endpoint string         // the fake vendor's traces URL
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
	t       *testing.T
	cfgPath string
	// Fixed across restarts, so senders keep their endpoints.
	OTLPHTTP, OTLPGRPC, HTTP string

	logs *logBuffer

	mu     sync.Mutex
	cmd    *exec.Cmd
	done   chan struct{} // closed when the current process has exited
	exit   error         // its Wait error
	starts int
}

// freePort returns a loopback address that was free a moment ago.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// newGateway writes a config for cfg and starts a gateway on it, waiting
// until /readyz answers. It is killed (if still running) when the test ends,
// and its logs are shown if the test failed.
func newGateway(t *testing.T, cfg gatewayConfig) *gatewayProc {
	t.Helper()
	g := &gatewayProc{
		t:        t,
		OTLPHTTP: freePort(t),
		OTLPGRPC: freePort(t),
		HTTP:     freePort(t),
		logs:     &logBuffer{max: 512 << 10},
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
	g.cfgPath = filepath.Join(t.TempDir(), "gateway.yaml")
	if err := os.WriteFile(g.cfgPath, b, 0o600); err != nil {
		t.Fatalf("write gateway config: %v", err)
	}
	t.Cleanup(func() {
		if g.running() {
			g.Kill()
		}
		if t.Failed() {
			t.Logf("gateway config:\n%s", b)
			t.Logf("gateway logs (last %d bytes):\n%s", g.logs.max, g.logs.String())
		}
	})
	g.Start()
	return g
}

// Start starts a gateway process and waits until it is ready.
func (g *gatewayProc) Start() {
	g.t.Helper()
	g.mu.Lock()
	if g.cmd != nil && !closed(g.done) {
		g.mu.Unlock()
		g.t.Fatal("gateway already running")
	}
	g.starts++
	n := g.starts
	cmd := exec.Command(gatewayBin, "run", "--config", g.cfgPath)
	w := g.logs.prefixed(fmt.Sprintf("[gw#%d] ", n))
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		g.mu.Unlock()
		g.t.Fatalf("start gateway: %v", err)
	}
	done := make(chan struct{})
	g.cmd, g.done = cmd, done
	g.mu.Unlock()
	go func() {
		err := cmd.Wait()
		g.mu.Lock()
		g.exit = err
		g.mu.Unlock()
		close(done)
	}()
	if err := g.waitReady(60 * time.Second); err != nil {
		g.t.Fatalf("gateway #%d: %v", n, err)
	}
}

func closed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

func (g *gatewayProc) running() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.cmd != nil && !closed(g.done)
}

// Pid is the current process's id.
func (g *gatewayProc) Pid() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.cmd.Process.Pid
}

func (g *gatewayProc) waitReady(timeout time.Duration) error {
	g.mu.Lock()
	done := g.done
	g.mu.Unlock()
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		select {
		case <-done:
			return fmt.Errorf("exited before it was ready: %v", g.exitErr())
		default:
		}
		resp, err := client.Get("http://" + g.HTTP + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("not ready within %v", timeout)
}

func (g *gatewayProc) exitErr() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.exit
}

// Kill sends SIGKILL to the gateway and to its plugin processes (which a real
// crash would orphan; here they would only linger) and waits for the exit.
func (g *gatewayProc) Kill() {
	g.t.Helper()
	pid := g.Pid()
	children := childPids(pid)
	_ = syscall.Kill(pid, syscall.SIGKILL)
	if err := g.wait(30 * time.Second); err != nil {
		g.t.Fatalf("gateway after SIGKILL: %v", err)
	}
	for _, c := range children {
		_ = syscall.Kill(c, syscall.SIGKILL)
	}
}

// Term sends SIGTERM and waits for the exit; it returns the exit error
// (nil for status 0).
func (g *gatewayProc) Term(timeout time.Duration) error {
	g.t.Helper()
	_ = syscall.Kill(g.Pid(), syscall.SIGTERM)
	if err := g.wait(timeout); err != nil {
		g.t.Fatalf("gateway after SIGTERM: %v", err)
	}
	return g.exitErr()
}

func (g *gatewayProc) wait(timeout time.Duration) error {
	g.mu.Lock()
	done := g.done
	g.mu.Unlock()
	select {
	case <-done:
		return nil
	case <-time.After(timeout):
		return fmt.Errorf("still running after %v", timeout)
	}
}

// childPids lists the processes whose parent is pid (from /proc).
func childPids(pid int) []int {
	var out []int
	for _, p := range gwbuild.Procs() {
		if p.PPid == pid {
			out = append(out, p.Pid)
		}
	}
	return out
}

// pluginPids returns the gateway's children serving built-in adapter name
// (`gateway plugin NAME`).
func (g *gatewayProc) pluginPids(name string) []int {
	return gwbuild.PluginChildren(g.Pid())[name]
}

// metric reads the sum of every sample of a counter or gauge from /metrics
// (a labelled metric nothing was counted for yet is absent: 0).
func (g *gatewayProc) metric(name string) (float64, error) {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + g.HTTP + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	sum := 0.0
	for _, line := range strings.Split(string(b), "\n") {
		rest, ok := strings.CutPrefix(line, name)
		if !ok || rest == "" || (rest[0] != ' ' && rest[0] != '{') {
			continue
		}
		f := strings.Fields(rest[strings.LastIndexByte(rest, '}')+1:])
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			return 0, fmt.Errorf("metric %s: %q: %w", name, line, err)
		}
		sum += v
	}
	return sum, nil
}

// mustMetric is metric that fails the test on error.
func (g *gatewayProc) mustMetric(name string) float64 {
	g.t.Helper()
	v, err := g.metric(name)
	if err != nil {
		g.t.Fatalf("read %s: %v", name, err)
	}
	return v
}

// logBuffer keeps the last max bytes written to it.
type logBuffer struct {
	mu  sync.Mutex
	buf []byte
	max int
}

type prefixWriter struct {
	b      *logBuffer
	prefix string
}

func (b *logBuffer) prefixed(p string) *prefixWriter { return &prefixWriter{b: b, prefix: p} }

func (w *prefixWriter) Write(p []byte) (int, error) {
	w.b.mu.Lock()
	defer w.b.mu.Unlock()
	for _, line := range strings.SplitAfter(string(p), "\n") {
		if line == "" {
			continue
		}
		w.b.buf = append(w.b.buf, w.prefix...)
		w.b.buf = append(w.b.buf, line...)
	}
	if over := len(w.b.buf) - w.b.max; over > 0 {
		w.b.buf = append(w.b.buf[:0], w.b.buf[over:]...)
	}
	return len(p), nil
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}

// Contains reports whether the logs hold s.
func (b *logBuffer) Contains(s string) bool { return strings.Contains(b.String(), s) }
