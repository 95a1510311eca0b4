package pluginhost

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/kern-agents/trace-gateway/exporters/otlp"
	"github.com/kern-agents/trace-gateway/internal/builtin"
	"github.com/kern-agents/trace-gateway/plugins"
)

// The test binary doubles as a gateway host (to be SIGKILLed) and as a
// built-in plugin; this variable picks the role in a child process.
const roleEnv = "PLUGINHOST_TEST_ROLE"

// binDir holds the plugins built once for the whole run.
var binDir string

// Names the testplugin binary is linked under; each picks a behaviour.
var testPluginNames = []string{"garbage-stdout", "exit-at-once", "wrong-version", "malformed", "no-service"}

func TestMain(m *testing.M) {
	switch os.Getenv(roleEnv) {
	case "host":
		runHost()
		return
	case "builtin":
		runBuiltin()
		return
	}
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "pluginhost-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	// One go build for both binaries; the build cache makes reruns cheap.
	build := exec.Command("go", "build", "-o", dir+string(filepath.Separator),
		"./testdata/testplugin", "../../plugins/examples/jsonl")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building test plugins: %v\n%s", err, out)
		return 1
	}
	for _, name := range testPluginNames {
		if err := os.Symlink("testplugin", filepath.Join(dir, name)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	binDir = dir

	code := m.Run()

	// Every plugin process a test started must be gone (and reaped).
	if kids := childPids(); len(kids) > 0 {
		fmt.Fprintf(os.Stderr, "leaked child processes: %v\n", kids)
		for _, pid := range kids {
			if p, err := os.FindProcess(pid); err == nil {
				_ = p.Kill()
			}
		}
		code = 1
	}
	return code
}

func bin(name string) string { return filepath.Join(binDir, name) }

// runHost is a minimal gateway: it starts one destination, reports the
// plugin's pid and waits to be killed.
func runHost() {
	d, err := Start(context.Background(), Spec{
		Name:   "orphan-check",
		Plugin: os.Getenv("PLUGINHOST_TEST_PLUGIN"),
		Config: map[string]any{"out": os.Getenv("PLUGINHOST_TEST_OUT")},
	})
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	fmt.Printf("pid %d\n", d.Pid())
	select {}
}

// builtinCommand runs this test binary as the built-in plugin name, as the
// gateway runs itself as `gateway plugin NAME`.
func builtinCommand(name string) *exec.Cmd {
	cmd := exec.Command(os.Args[0])
	cmd.Env = []string{roleEnv + "=builtin", "PLUGINHOST_TEST_BUILTIN=" + name}
	return cmd
}

// runBuiltin serves a built-in exporter, as `gateway plugin NAME` does.
func runBuiltin() {
	builtin.Register("echo", func() plugins.Exporter { return &echoExporter{} })
	builtin.Register("otlp", otlp.New)
	if err := builtin.Serve(os.Getenv("PLUGINHOST_TEST_BUILTIN")); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
}

// echoExporter appends span names to the file "out".
type echoExporter struct{ out string }

func (e *echoExporter) Configure(_ context.Context, cfg map[string]any) error {
	e.out, _ = cfg["out"].(string)
	if e.out == "" {
		return &plugins.ConfigError{Fields: []plugins.FieldError{{Field: "out", Message: "is required"}}}
	}
	return nil
}

func (e *echoExporter) Export(_ context.Context, td ptrace.Traces) error {
	f, err := os.OpenFile(e.out, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	for _, n := range spanNames(td) {
		fmt.Fprintln(f, n)
	}
	return nil
}

func (e *echoExporter) Shutdown(context.Context) error { return nil }

// childPids lists the processes whose parent is this one.
func childPids() []int {
	entries, _ := os.ReadDir("/proc")
	self := os.Getpid()
	var kids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if _, ppid, ok := procStat(pid); ok && ppid == self {
			kids = append(kids, pid)
		}
	}
	return kids
}

// procStat reads a process's state letter and parent pid.
func procStat(pid int) (state string, ppid int, ok bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", 0, false
	}
	// pid (comm) state ppid ...; comm may contain spaces.
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) < 2 {
		return "", 0, false
	}
	ppid, _ = strconv.Atoi(fields[1])
	return fields[0], ppid, true
}

// alive reports whether pid is a running (not zombie) process.
func alive(pid int) bool {
	state, _, ok := procStat(pid)
	return ok && state != "Z" && state != "X"
}

func waitGone(t *testing.T, pid int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for alive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("process %d still running after %s", pid, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// logSink records log records for assertions and prints them only when the
// test fails (plugins may log after a test ends, which t.Log forbids).
type logSink struct {
	mu      sync.Mutex
	records []logRecord
}

type logRecord struct {
	level slog.Level
	msg   string
	attrs map[string]any
}

type sinkHandler struct {
	sink  *logSink
	attrs []slog.Attr
}

func (h *sinkHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *sinkHandler) Handle(_ context.Context, r slog.Record) error {
	rec := logRecord{level: r.Level, msg: r.Message, attrs: map[string]any{}}
	for _, a := range h.attrs {
		rec.attrs[a.Key] = a.Value.Any()
	}
	r.Attrs(func(a slog.Attr) bool {
		rec.attrs[a.Key] = a.Value.Any()
		return true
	})
	h.sink.mu.Lock()
	h.sink.records = append(h.sink.records, rec)
	h.sink.mu.Unlock()
	return nil
}

func (h *sinkHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &sinkHandler{sink: h.sink, attrs: append(slices.Clone(h.attrs), as...)}
}

func (h *sinkHandler) WithGroup(string) slog.Handler { return h }

func (s *logSink) snapshot() []logRecord {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.records)
}

// find returns the first record whose message contains substr.
func (s *logSink) find(substr string) (logRecord, bool) {
	for _, r := range s.snapshot() {
		if strings.Contains(r.msg, substr) {
			return r, true
		}
	}
	return logRecord{}, false
}

// await waits for a record whose message contains substr; plugin output
// arrives asynchronously.
func (s *logSink) await(substr string, within time.Duration) (logRecord, bool) {
	for deadline := time.Now().Add(within); ; time.Sleep(10 * time.Millisecond) {
		if r, ok := s.find(substr); ok || time.Now().After(deadline) {
			return r, ok
		}
	}
}

// awaitAttr is await for a record that also has attribute key = value.
func (s *logSink) awaitAttr(substr, key string, value any, within time.Duration) (logRecord, bool) {
	for deadline := time.Now().Add(within); ; time.Sleep(10 * time.Millisecond) {
		for _, r := range s.snapshot() {
			if strings.Contains(r.msg, substr) && r.attrs[key] == value {
				return r, true
			}
		}
		if time.Now().After(deadline) {
			return logRecord{}, false
		}
	}
}

func newSink(t testing.TB) (*logSink, *slog.Logger) {
	sink := &logSink{}
	t.Cleanup(func() {
		if t.Failed() {
			for _, r := range sink.snapshot() {
				t.Logf("log %s %q %v", r.level, r.msg, r.attrs)
			}
		}
	})
	return sink, slog.New(&sinkHandler{sink: sink})
}

// testSpec is a Spec with short timeouts and backoff for tests.
func testSpec(t testing.TB, name, plugin string, cfg map[string]any) (Spec, *logSink) {
	sink, logger := newSink(t)
	return Spec{
		Name:              name,
		Plugin:            plugin,
		Config:            cfg,
		Logger:            logger,
		StartTimeout:      20 * time.Second,
		ConfigureTimeout:  5 * time.Second,
		ExportTimeout:     5 * time.Second,
		RestartBackoff:    10 * time.Millisecond,
		MaxRestartBackoff: 80 * time.Millisecond,
	}, sink
}

// start starts a destination that is closed when the test ends.
func start(t testing.TB, spec Spec) *Destination {
	t.Helper()
	d, err := Start(context.Background(), spec)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = d.Close(ctx)
	})
	return d
}

// makeTraces builds one resource and scope holding spans with these names.
func makeTraces(names ...string) ptrace.Traces {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "agent-os")
	ss := rs.ScopeSpans().AppendEmpty()
	ss.Scope().SetName("kern.test")
	now := time.Now()
	for i, n := range names {
		sp := ss.Spans().AppendEmpty()
		sp.SetName(n)
		sp.SetTraceID(pcommon.TraceID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16})
		sp.SetSpanID(pcommon.SpanID{0xa, 0xb, byte(i >> 16), byte(i >> 8), byte(i), 1, 2, 3})
		sp.SetKind(ptrace.SpanKindInternal)
		sp.SetStartTimestamp(pcommon.NewTimestampFromTime(now))
		sp.SetEndTimestamp(pcommon.NewTimestampFromTime(now.Add(time.Duration(i+1) * time.Millisecond)))
		sp.Attributes().PutStr("gen_ai.operation.name", "chat")
		sp.Attributes().PutInt("gen_ai.usage.input_tokens", int64(10*i))
	}
	return td
}

func spanNames(td ptrace.Traces) []string {
	var names []string
	rss := td.ResourceSpans()
	for i := 0; i < rss.Len(); i++ {
		sss := rss.At(i).ScopeSpans()
		for j := 0; j < sss.Len(); j++ {
			spans := sss.At(j).Spans()
			for k := 0; k < spans.Len(); k++ {
				names = append(names, spans.At(k).Name())
			}
		}
	}
	return names
}

func numbered(prefix string, n int) []string {
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("%s-%03d", prefix, i)
	}
	return names
}

// readLines returns the non-empty lines of a file (none if it is missing).
func readLines(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if sc.Text() != "" {
			lines = append(lines, sc.Text())
		}
	}
	return lines
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}
