// Package gwproc runs the gateway binary as an OS process for end-to-end
// tests: it writes the config to a file, starts `gateway run` in a process
// group of its own, waits until the gateway is ready, keeps what it logs,
// and stops it the ways an operator or a crash does (SIGTERM to the gateway,
// SIGTERM to its whole process group, SIGKILL).
package gwproc

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
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

// DefaultReadyTimeout bounds the wait for a started gateway to be ready.
// It is generous: on a busy machine starting the gateway and its plugins
// can take long, and a gateway that is ready returns at once.
const DefaultReadyTimeout = 2 * time.Minute

// maxLogBytes is how much of its logs a gateway keeps (the oldest lines go
// first).
const maxLogBytes = 4 << 20

// Options say how to run a gateway.
type Options struct {
	// Bin is the gateway binary (see gwbuild.Main).
	Bin string
	// Config is the YAML config file's content.
	Config []byte
	// Env is added to the inherited environment.
	Env []string
	// Name labels the gateway in the logs shown when the test fails
	// (default "gateway").
	Name string
	// ReadyTimeout bounds the wait for readiness (default
	// DefaultReadyTimeout).
	ReadyTimeout time.Duration
}

// Addrs are the listen addresses the gateway reported when ready (empty
// for a disabled listener).
type Addrs struct{ OTLPGRPC, OTLPHTTP, HTTP string }

// Gateway is a gateway that runs, or ran, as an OS process. Its methods
// are safe for concurrent use.
type Gateway struct {
	t       testing.TB
	opts    Options
	cfgPath string

	mu     sync.Mutex
	cmd    *exec.Cmd
	addrs  Addrs
	exited chan struct{} // closed when the current process has exited and its output is read
	exit   error         // the current process's Wait error
	starts int
	logs   []string
	size   int // bytes in logs
}

// Start writes opts.Config to a file and starts a gateway on it, waiting
// until it is ready. When the test ends a gateway still running is stopped
// (SIGTERM, then SIGKILL to its group), and on failure its config and logs
// are shown.
func Start(t testing.TB, opts Options) *Gateway {
	t.Helper()
	if opts.Name == "" {
		opts.Name = "gateway"
	}
	if opts.ReadyTimeout <= 0 {
		opts.ReadyTimeout = DefaultReadyTimeout
	}
	g := &Gateway{t: t, opts: opts, cfgPath: filepath.Join(t.TempDir(), opts.Name+".yaml")}
	if err := os.WriteFile(g.cfgPath, opts.Config, 0o600); err != nil {
		t.Fatalf("write %s config: %v", opts.Name, err)
	}
	t.Cleanup(func() {
		if g.Running() {
			_ = g.stop(syscall.SIGTERM, false, 30*time.Second)
		}
		// Whatever is left of the group (plugins of a gateway that had to
		// be killed) goes too.
		g.killGroup()
		if t.Failed() {
			t.Logf("%s config (%s):\n%s", opts.Name, g.cfgPath, opts.Config)
			t.Logf("%s logs:\n%s", opts.Name, g.LogText())
		}
	})
	g.Restart()
	return g
}

// Restart starts the gateway again on the same config, after it exited or
// was stopped, and waits until it is ready.
func (g *Gateway) Restart() {
	g.t.Helper()
	if g.Running() {
		g.t.Fatalf("%s is already running", g.opts.Name)
	}
	if err := g.start(); err != nil {
		g.t.Fatalf("%s: %v", g.opts.Name, err)
	}
	if err := g.waitReady(); err != nil {
		g.t.Fatalf("%s: %v", g.opts.Name, err)
	}
}

func (g *Gateway) start() error {
	r, w, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("start: %w", err)
	}
	cmd := exec.Command(g.opts.Bin, "run", "--config", g.cfgPath)
	cmd.Env = append(os.Environ(), g.opts.Env...)
	cmd.Stdout, cmd.Stderr = w, w
	// Its own process group: the test can signal the gateway with its
	// plugins, as systemd or a terminal does, and sweep up leftovers.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	err = cmd.Start()
	_ = w.Close() // the child has its copy
	if err != nil {
		_ = r.Close()
		return fmt.Errorf("start %s: %w", g.opts.Bin, err)
	}
	exited := make(chan struct{})
	g.mu.Lock()
	g.starts++
	prefix := fmt.Sprintf("[%s#%d] ", g.opts.Name, g.starts)
	g.cmd, g.exited, g.exit, g.addrs = cmd, exited, nil, Addrs{}
	g.mu.Unlock()

	read := make(chan struct{})
	go func() {
		defer close(read)
		defer r.Close()
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		for sc.Scan() {
			g.logLine(prefix, sc.Text())
		}
		_, _ = io.Copy(io.Discard, r) // a line too long for the scanner
	}()
	go func() {
		err := cmd.Wait()
		<-read // every line is in the logs once Exited is closed
		g.mu.Lock()
		g.exit = err
		g.mu.Unlock()
		close(exited)
	}()
	return nil
}

// logLine keeps one line of output, and the addresses from the ready line.
func (g *Gateway) logLine(prefix, line string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if a, ok := ReadyAddrs(line); ok && g.addrs == (Addrs{}) {
		g.addrs = a
	}
	g.logs = append(g.logs, prefix+line)
	g.size += len(prefix) + len(line)
	for g.size > maxLogBytes && len(g.logs) > 1 {
		g.size -= len(g.logs[0])
		g.logs = g.logs[1:]
	}
}

// waitReady waits for the ready line, then (with an HTTP listener) for
// /readyz to answer 200.
func (g *Gateway) waitReady() error {
	exited := g.Exited()
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(g.opts.ReadyTimeout)
	for {
		select {
		case <-exited:
			return fmt.Errorf("exited before it was ready: %v", g.ExitErr())
		default:
		}
		if a := g.Addrs(); a != (Addrs{}) {
			if a.HTTP == "" {
				return nil
			}
			resp, err := client.Get("http://" + a.HTTP + "/readyz")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					return nil
				}
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready within %v", g.opts.ReadyTimeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// readyRe finds the listen addresses in the gateway's "gateway ready" log
// line; with port 0 listeners only the log says where they are.
var readyRe = regexp.MustCompile(`gateway ready.* otlp_grpc=(\S*) otlp_http=(\S*) http=(\S*)`)

// ReadyAddrs returns the listen addresses when line is the gateway's ready
// line (text log format).
func ReadyAddrs(line string) (Addrs, bool) {
	m := readyRe.FindStringSubmatch(line)
	if m == nil {
		return Addrs{}, false
	}
	unquote := func(s string) string {
		if u, err := strconv.Unquote(s); err == nil {
			return u
		}
		return s
	}
	return Addrs{OTLPGRPC: unquote(m[1]), OTLPHTTP: unquote(m[2]), HTTP: unquote(m[3])}, true
}

// Addrs are the addresses the running gateway reported.
func (g *Gateway) Addrs() Addrs {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.addrs
}

// ConfigPath is the config file the gateway runs on.
func (g *Gateway) ConfigPath() string { return g.cfgPath }

// Pid is the current (or last) process's id; it is also its process
// group's id.
func (g *Gateway) Pid() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.cmd.Process.Pid
}

// Exited is closed once the current process has exited.
func (g *Gateway) Exited() <-chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.exited
}

// Running reports whether the current process still runs.
func (g *Gateway) Running() bool {
	g.mu.Lock()
	exited := g.exited
	g.mu.Unlock()
	if exited == nil {
		return false
	}
	select {
	case <-exited:
		return false
	default:
		return true
	}
}

// ExitErr is the last process's exit error (nil for status 0, or while it
// runs).
func (g *Gateway) ExitErr() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.exit
}

// Term sends SIGTERM to the gateway process alone and waits up to timeout
// for it to exit. It returns the exit error (nil for status 0); a gateway
// still running after timeout is killed with its group and the test fails.
func (g *Gateway) Term(timeout time.Duration) error {
	g.t.Helper()
	return g.stop(syscall.SIGTERM, false, timeout)
}

// TermGroup is Term for the gateway's whole process group (its plugins
// too), as systemd's KillMode=control-group, `timeout` or a terminal's
// Ctrl-C do.
func (g *Gateway) TermGroup(timeout time.Duration) error {
	g.t.Helper()
	return g.stop(syscall.SIGTERM, true, timeout)
}

// Kill sends SIGKILL to the gateway and its plugins (which a real crash
// would orphan until they notice; here they would only linger) and waits
// for the exit.
func (g *Gateway) Kill() {
	g.t.Helper()
	if err := g.stop(syscall.SIGKILL, true, time.Minute); err != nil && !isSignalled(err, syscall.SIGKILL) {
		g.t.Errorf("%s after SIGKILL: %v", g.opts.Name, err)
	}
}

func isSignalled(err error, sig syscall.Signal) bool {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == sig
}

func (g *Gateway) stop(sig syscall.Signal, group bool, timeout time.Duration) error {
	g.t.Helper()
	pid := g.Pid()
	if group {
		pid = -pid
	}
	_ = syscall.Kill(pid, sig)
	select {
	case <-g.Exited():
		return g.ExitErr()
	case <-time.After(timeout):
		g.killGroup()
		<-g.Exited()
		g.t.Errorf("%s still ran %v after %v; killed", g.opts.Name, timeout, sig)
		return fmt.Errorf("still running %v after %v; killed", timeout, sig)
	}
}

// killGroup sends SIGKILL to whatever is left of the gateway's group.
func (g *Gateway) killGroup() {
	g.mu.Lock()
	cmd := g.cmd
	g.mu.Unlock()
	if cmd != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
}

// GroupGone waits up to timeout until no process of the gateway's group
// (the gateway and the plugins it started) is left.
func (g *Gateway) GroupGone(timeout time.Duration) bool {
	pgid := g.Pid()
	deadline := time.Now().Add(timeout)
	for {
		if err := syscall.Kill(-pgid, 0); errors.Is(err, syscall.ESRCH) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// PluginPids returns, per built-in adapter, the pids of the gateway's
// children serving it.
func (g *Gateway) PluginPids() map[string][]int { return gwbuild.PluginChildren(g.Pid()) }

// Children lists the pids of the gateway's child processes.
func (g *Gateway) Children() []int {
	pid := g.Pid()
	var out []int
	for _, p := range gwbuild.Procs() {
		if p.PPid == pid {
			out = append(out, p.Pid)
		}
	}
	return out
}

// Logs returns the lines the gateway (and its plugins, through it) wrote,
// across restarts, each prefixed with "[name#start] ".
func (g *Gateway) Logs() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.logs...)
}

// LogText is Logs as one text.
func (g *Gateway) LogText() string { return strings.Join(g.Logs(), "\n") }

// LogsContain reports whether a line of the logs holds s.
func (g *Gateway) LogsContain(s string) bool { return strings.Contains(g.LogText(), s) }

// Samples are the values of one metric by their destination label ("" for
// samples without one).
type Samples map[string]float64

// Sum is the total over every sample.
func (s Samples) Sum() float64 {
	var n float64
	for _, v := range s {
		n += v
	}
	return n
}

var destinationLabel = regexp.MustCompile(`destination="([^"]*)"`)

// Metric reads a counter or gauge from /metrics (a labelled metric nothing
// was counted for yet has no samples).
func (g *Gateway) Metric(name string) (Samples, error) {
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get("http://" + g.Addrs().HTTP + "/metrics")
	if err != nil {
		return nil, fmt.Errorf("read /metrics: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("read /metrics: %w", err)
	}
	return parseMetric(string(b), name)
}

// parseMetric picks metric name's samples out of a Prometheus text
// exposition.
func parseMetric(text, name string) (Samples, error) {
	out := Samples{}
	for _, line := range strings.Split(text, "\n") {
		rest, ok := strings.CutPrefix(line, name)
		if !ok || rest == "" || (rest[0] != ' ' && rest[0] != '{') {
			continue
		}
		dest := ""
		if m := destinationLabel.FindStringSubmatch(rest); m != nil {
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

// FreeAddr returns a loopback address that was free a moment ago, for a
// gateway that must keep its addresses across restarts.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
