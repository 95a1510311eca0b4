package e2etest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kern-agents/trace-gateway/internal/gwbuild"
)

// gatewayProc is one gateway process started from a generated config. It
// runs in its own process group so that the test can be sure its plugin
// processes are gone too.
type gatewayProc struct {
	cmd      *exec.Cmd
	otlpHTTP string // addresses it reported when ready
	http     string

	mu     sync.Mutex
	logs   []string
	exited chan struct{}
	exit   error
}

// startGateway writes config to a file and runs `gateway run` on it with env
// added to the environment, waiting until it logs that it is ready. It is
// stopped when the test ends; its logs are shown if the test failed.
func startGateway(t *testing.T, config []byte, env []string) *gatewayProc {
	t.Helper()
	path := filepath.Join(t.TempDir(), "gateway.yaml")
	if err := os.WriteFile(path, config, 0o600); err != nil {
		t.Fatalf("write gateway config: %v", err)
	}
	g := &gatewayProc{cmd: exec.Command(gatewayBin, "run", "--config", path), exited: make(chan struct{})}
	g.cmd.Env = append(os.Environ(), env...)
	g.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	pr, pw := io.Pipe()
	g.cmd.Stdout, g.cmd.Stderr = pw, pw
	if err := g.cmd.Start(); err != nil {
		t.Fatalf("start gateway: %v", err)
	}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			g.mu.Lock()
			g.logs = append(g.logs, line)
			if o, h, ok := gwbuild.ReadyAddrs(line); ok && g.otlpHTTP == "" {
				g.otlpHTTP, g.http = o, h
				close(ready)
			}
			g.mu.Unlock()
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	go func() {
		err := g.cmd.Wait()
		_ = pw.Close()
		g.mu.Lock()
		g.exit = err
		g.mu.Unlock()
		close(g.exited)
	}()
	t.Cleanup(func() {
		if g.running() {
			_ = g.stop(15 * time.Second)
		}
		// Whatever is left of the group (plugins of a gateway that had to
		// be killed) goes too.
		_ = syscall.Kill(-g.cmd.Process.Pid, syscall.SIGKILL)
		if t.Failed() {
			t.Logf("gateway config:\n%s", config)
			t.Logf("gateway logs:\n%s", g.Logs())
		}
	})
	select {
	case <-ready:
	case <-g.exited:
		t.Fatalf("gateway exited before it was ready: %v", g.exitErr())
	case <-time.After(60 * time.Second):
		t.Fatal("gateway not ready within 60s")
	}
	return g
}

func (g *gatewayProc) running() bool {
	select {
	case <-g.exited:
		return false
	default:
		return true
	}
}

func (g *gatewayProc) exitErr() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.exit
}

// Logs returns everything the gateway (and its plugins, through it) logged.
func (g *gatewayProc) Logs() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return strings.Join(g.logs, "\n")
}

// stop sends SIGTERM and waits for the exit, killing the process group when
// it takes longer than timeout. It returns the exit error (nil for status 0).
func (g *gatewayProc) stop(timeout time.Duration) error {
	_ = g.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-g.exited:
		return g.exitErr()
	case <-time.After(timeout):
		_ = syscall.Kill(-g.cmd.Process.Pid, syscall.SIGKILL)
		<-g.exited
		return fmt.Errorf("still running %v after SIGTERM; killed", timeout)
	}
}

// groupGone waits up to timeout until no process of the gateway's group
// (the gateway and the plugins it started) is left.
func (g *gatewayProc) groupGone(timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		if err := syscall.Kill(-g.cmd.Process.Pid, 0); errors.Is(err, syscall.ESRCH) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// pluginProcs counts the gateway's child processes per built-in adapter
// they serve (`gateway plugin NAME`), from /proc.
func (g *gatewayProc) pluginProcs() map[string]int {
	out := map[string]int{}
	for name, pids := range gwbuild.PluginChildren(g.cmd.Process.Pid) {
		out[name] = len(pids)
	}
	return out
}

// metric returns the samples of a metric on /metrics by their destination
// label ("" for samples without one).
func (g *gatewayProc) metric(name string) (map[string]float64, error) {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + g.http + "/metrics")
	if err != nil {
		return nil, fmt.Errorf("read /metrics: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("read /metrics: %w", err)
	}
	labelRe := regexp.MustCompile(`destination="([^"]*)"`)
	out := map[string]float64{}
	for _, line := range strings.Split(string(b), "\n") {
		rest, ok := strings.CutPrefix(line, name)
		if !ok || rest == "" || (rest[0] != ' ' && rest[0] != '{') {
			continue
		}
		dest := ""
		if m := labelRe.FindStringSubmatch(rest); m != nil {
			dest = m[1]
		}
		f := strings.Fields(rest[strings.LastIndexByte(rest, '}')+1:])
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			return nil, fmt.Errorf("metric %s: %q: %w", name, line, err)
		}
		out[dest] += v
	}
	return out, nil
}
