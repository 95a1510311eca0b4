package pluginhost

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/kern-agents/trace-gateway/plugins"
)

func TestExportDeliversSpans(t *testing.T) {
	t.Parallel()
	out := filepath.Join(t.TempDir(), "out")
	spec, _ := testSpec(t, "good", bin("testplugin"), map[string]any{"out": out})
	d := start(t, spec)

	want := numbered("span", 25)
	if err := d.Export(context.Background(), makeTraces(want...)); err != nil {
		t.Fatalf("Export: %v", err)
	}
	if got := readLines(t, out); !slices.Equal(got, want) {
		t.Fatalf("plugin received %v, want %v", got, want)
	}
	if err := d.Ping(context.Background()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	if d.Restarts() != 0 {
		t.Fatalf("Restarts = %d, want 0", d.Restarts())
	}
}

// TestCloseReportsShutdownError: a plugin's failed shutdown reaches Close's
// caller with the plugin's reason, and without the destination's name,
// which the dispatcher that closes it adds.
func TestCloseReportsShutdownError(t *testing.T) {
	t.Parallel()
	out := filepath.Join(t.TempDir(), "missing", "out") // the plugin cannot write its shutdown mark
	spec, _ := testSpec(t, "good", bin("testplugin"), map[string]any{"out": out})
	d := start(t, spec)
	err := d.Close(context.Background())
	if err == nil || !strings.Contains(err.Error(), "shutdown: ") || !strings.Contains(err.Error(), "no such file") {
		t.Fatalf("Close: %v, want the plugin's shutdown error", err)
	}
	if strings.Contains(err.Error(), fmt.Sprintf("destination %q", spec.Name)) {
		t.Errorf("Close: %v names the destination, which its caller does", err)
	}
}

func TestConfigArrivesWithYAMLTypes(t *testing.T) {
	t.Parallel()
	out := filepath.Join(t.TempDir(), "out")
	spec, sink := testSpec(t, "typed", bin("testplugin"), map[string]any{
		"out":     out,
		"port":    4318,
		"ratio":   0.25,
		"enabled": true,
		"headers": map[string]any{"x-team": "kern"},
		"list":    []any{"a", 2},
		"nothing": nil,
	})
	start(t, spec)
	rec, ok := sink.await("configured", 30*time.Second)
	if !ok {
		t.Fatal("plugin did not log its config")
	}
	cfg, _ := rec.attrs["config"].(string)
	for _, want := range []string{`"port":4318`, `"ratio":0.25`, `"enabled":true`,
		`"headers":map[string]interface {}{"x-team":"kern"}`, `"list":[]interface {}{"a", 2}`, `"nothing":interface {}(nil)`} {
		if !strings.Contains(cfg, want) {
			t.Errorf("plugin saw config %s; missing %s", cfg, want)
		}
	}
}

func TestExportResultsAreFaithful(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name      string
		cfg       map[string]any
		permanent bool
		after     time.Duration
		contains  string
	}{
		{"retryable with delay", map[string]any{"result": "retryable", "retry_after_ms": 1500}, false, 1500 * time.Millisecond, "vendor throttled us"},
		{"retryable without delay", map[string]any{"result": "retryable"}, false, 0, "vendor throttled us"},
		{"permanent", map[string]any{"result": "permanent"}, true, 0, "vendor rejected the payload"},
		{"panic becomes permanent", map[string]any{"panic_on": "bad-span"}, true, 0, "panicked: boom on bad-span"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.cfg["out"] = filepath.Join(t.TempDir(), "out")
			spec, _ := testSpec(t, "results", bin("testplugin"), tc.cfg)
			d := start(t, spec)
			pid := d.Pid()

			err := d.Export(context.Background(), makeTraces("ok-span", "bad-span"))
			if err == nil {
				t.Fatal("Export succeeded, want an error")
			}
			if got := plugins.IsPermanent(err); got != tc.permanent {
				t.Fatalf("IsPermanent = %v, want %v (err: %v)", got, tc.permanent, err)
			}
			after, _ := plugins.RetryAfter(err)
			if after != tc.after {
				t.Fatalf("RetryAfter = %s, want %s", after, tc.after)
			}
			if !strings.Contains(err.Error(), tc.contains) || !strings.Contains(err.Error(), `destination "results"`) {
				t.Fatalf("error %q should name the destination and contain %q", err, tc.contains)
			}
			// The plugin answered properly: it keeps running.
			if d.Pid() != pid || d.Restarts() != 0 || d.Ping(context.Background()) != nil {
				t.Fatalf("plugin was restarted after a well-formed answer (pid %d -> %d)", pid, d.Pid())
			}
		})
	}
}

// startFailure is one plugin that must not start.
type startFailure struct {
	name     string
	spec     func(t *testing.T) Spec
	contains []string
	kind     StartFailure // whether another attempt could help
}

func startFailures() []startFailure {
	plain := func(plugin string, cfg map[string]any) func(t *testing.T) Spec {
		return func(t *testing.T) Spec {
			if cfg == nil {
				cfg = map[string]any{"out": filepath.Join(t.TempDir(), "out")}
			}
			s, _ := testSpec(t, "bad-dest", plugin, cfg)
			return s
		}
	}
	return []startFailure{
		{"path does not exist", plain("./no/such/plugin", nil), []string{"does not exist"}, BadPlugin},
		{"path is a directory", func(t *testing.T) Spec { return plain(t.TempDir(), nil)(t) }, []string{"is a directory"}, BadPlugin},
		{"not executable", func(t *testing.T) Spec {
			p := filepath.Join(t.TempDir(), "plugin")
			if err := os.WriteFile(p, []byte("#!/bin/sh\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			return plain(p, nil)(t)
		}, []string{"not executable"}, BadPlugin},
		{"checksum mismatch", func(t *testing.T) Spec {
			s := plain(bin("testplugin"), nil)(t)
			s.SHA256 = strings.Repeat("ab", 32)
			return s
		}, []string{"sha256 mismatch", strings.Repeat("ab", 32)}, BadPlugin},
		{"malformed checksum", func(t *testing.T) Spec {
			s := plain(bin("testplugin"), nil)(t)
			s.SHA256 = "xyz"
			return s
		}, []string{"not 64 hex digits"}, BadPlugin},
		{"wrong protocol version", plain(bin("wrong-version"), nil), []string{"different plugin protocol", "Plugin version: 2", "speaks version 1"}, BadPlugin},
		{"garbage on stdout before the handshake", plain(bin("garbage-stdout"), nil), []string{"handshake failed", "hello from a chatty init"}, BadPlugin},
		{"exits at once", plain(bin("exit-at-once"), nil), []string{"exited during start-up", "license file missing"}, FailedToRun},
		{"not a plugin at all", plain("/bin/true", nil), []string{"/bin/true"}, FailedToRun},
		{"hangs in configure", func(t *testing.T) Spec {
			s := plain(bin("testplugin"), map[string]any{"hang_configure": true})(t)
			s.ConfigureTimeout = 300 * time.Millisecond
			return s
		}, []string{"did not answer Configure within 300ms"}, FailedToRun},
		{"rejects its config", plain(bin("testplugin"), map[string]any{"reject": true}), []string{"invalid config", "endpoint: is required", "tls.ca_file: file /nope.pem does not exist"}, ConfigRejected},
		{"config error without fields", plain(bin("testplugin"), map[string]any{}), []string{"rejected its config: out is required"}, ConfigRejected},
		{"serves no exporter", plain(bin("no-service"), nil), []string{"does not implement the kern.gateway.plugin.v1.Exporter service"}, BadPlugin},
		{"unknown built-in", plain("no-such-vendor", nil), []string{`unknown built-in exporter "no-such-vendor"`}, BadPlugin},
		{"unpassable config", plain(bin("testplugin"), map[string]any{"big": uint64(1) << 60}), []string{"config field big", "too large"}, ConfigRejected},
	}
}

func TestStartFailuresAreClearAndContained(t *testing.T) {
	t.Parallel()
	// A healthy destination runs alongside the broken ones throughout.
	out := filepath.Join(t.TempDir(), "out")
	goodSpec, _ := testSpec(t, "healthy", bin("testplugin"), map[string]any{"out": out})
	good := start(t, goodSpec)

	t.Run("each", func(t *testing.T) {
		for _, tc := range startFailures() {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				spec := tc.spec(t)
				d, err := Start(context.Background(), spec)
				if err == nil {
					_ = d.Close(context.Background())
					t.Fatal("Start succeeded, want an error")
				}
				msg := err.Error()
				for _, want := range append([]string{`destination "bad-dest"`}, tc.contains...) {
					if !strings.Contains(msg, want) {
						t.Errorf("error %q does not contain %q", msg, want)
					}
				}
				if strings.Count(msg, `destination "bad-dest"`) != 1 {
					t.Errorf("error names the destination more than once: %q", msg)
				}
				var se *StartError
				if !errors.As(err, &se) || se.Destination != "bad-dest" || se.Kind != tc.kind {
					t.Errorf("error %#v, want a *StartError of kind %d", err, tc.kind)
				}
			})
		}
	})

	if err := good.Export(context.Background(), makeTraces("still-fine")); err != nil {
		t.Fatalf("healthy destination failed after the others: %v", err)
	}
	if got := readLines(t, out); !slices.Equal(got, []string{"still-fine"}) {
		t.Fatalf("healthy destination wrote %v", got)
	}
}

func TestRejectedConfigIsAConfigError(t *testing.T) {
	t.Parallel()
	spec, _ := testSpec(t, "strict", bin("testplugin"), map[string]any{"reject": true})
	_, err := Start(context.Background(), spec)
	var ce *plugins.ConfigError
	if !errors.As(err, &ce) {
		t.Fatalf("error %v is not a *plugins.ConfigError", err)
	}
	want := []plugins.FieldError{{Field: "endpoint", Message: "is required"}, {Field: "tls.ca_file", Message: "file /nope.pem does not exist"}}
	if !slices.Equal(ce.Fields, want) {
		t.Fatalf("fields = %v, want %v", ce.Fields, want)
	}
}

func TestChecksumPinAccepted(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(bin("testplugin"))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	spec, _ := testSpec(t, "pinned", bin("testplugin"), map[string]any{"out": filepath.Join(t.TempDir(), "out")})
	spec.SHA256 = strings.ToUpper(hex.EncodeToString(sum[:]))
	d := start(t, spec)
	if err := d.Export(context.Background(), makeTraces("x")); err != nil {
		t.Fatal(err)
	}
}

func TestHungExportIsKilledAndRestarted(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	spec, _ := testSpec(t, "hangs", bin("testplugin"), map[string]any{"out": out, "block_once": filepath.Join(dir, "marker")})
	spec.ExportTimeout = 300 * time.Millisecond
	d := start(t, spec)
	oldPid := d.Pid()

	batch := makeTraces(numbered("hang", 5)...)
	began := time.Now()
	err := d.Export(context.Background(), batch)
	if err == nil || plugins.IsPermanent(err) {
		t.Fatalf("Export = %v, want a retryable error", err)
	}
	// The plugin hangs for good: only the deadline ends the call.
	if took := time.Since(began); took > 30*time.Second {
		t.Fatalf("Export took %s despite a 300ms deadline", took)
	}
	if !strings.Contains(err.Error(), "did not answer export within 300ms") {
		t.Fatalf("error %q does not explain the hang", err)
	}
	after, ok := plugins.RetryAfter(err)
	if !ok || after != spec.RestartBackoff {
		t.Fatalf("RetryAfter = %s, %v; want the restart backoff %s", after, ok, spec.RestartBackoff)
	}
	waitGone(t, oldPid, 30*time.Second)

	time.Sleep(after)
	if err := d.Export(context.Background(), batch); err != nil {
		t.Fatalf("Export after restart: %v", err)
	}
	if d.Restarts() != 1 || d.Pid() == oldPid || d.Pid() == 0 {
		t.Fatalf("Restarts = %d, pid %d -> %d; want one restart and a new process", d.Restarts(), oldPid, d.Pid())
	}
	if got := readLines(t, out); !slices.Equal(got, spanNames(batch)) {
		t.Fatalf("after the retry the plugin has %v", got)
	}
}

func TestPluginKilledMidExportLosesNothing(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	out, marker := filepath.Join(dir, "out"), filepath.Join(dir, "marker")
	spec, _ := testSpec(t, "crashes", bin("testplugin"), map[string]any{"out": out, "block_once": marker})
	d := start(t, spec)
	pid := d.Pid()

	batch := makeTraces(numbered("crash", 40)...)
	errc := make(chan error, 1)
	go func() { errc <- d.Export(context.Background(), batch) }()

	// Wait until the plugin is inside Export, then kill it.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(marker); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("plugin never entered Export")
		}
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}

	err := <-errc
	if err == nil || plugins.IsPermanent(err) {
		t.Fatalf("Export = %v, want retryable", err)
	}
	if !strings.Contains(err.Error(), "died during export") || !strings.Contains(err.Error(), `destination "crashes"`) {
		t.Fatalf("error %q does not explain the crash", err)
	}
	after, _ := plugins.RetryAfter(err)
	time.Sleep(after)

	// The caller retries the same batch; every span arrives exactly once.
	if err := d.Export(context.Background(), batch); err != nil {
		t.Fatalf("retry: %v", err)
	}
	if got := readLines(t, out); !slices.Equal(sorted(got), sorted(spanNames(batch))) {
		t.Fatalf("plugin has %d spans after the retry, want %d", len(got), batch.SpanCount())
	}
	if d.Restarts() != 1 {
		t.Fatalf("Restarts = %d, want 1", d.Restarts())
	}
}

func TestCrashBetweenExportsIsNoticed(t *testing.T) {
	t.Parallel()
	out := filepath.Join(t.TempDir(), "out")
	spec, _ := testSpec(t, "idle-crash", bin("testplugin"), map[string]any{"out": out})
	spec.RestartBackoff = time.Millisecond
	d := start(t, spec)
	pid := d.Pid()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitGone(t, pid, 30*time.Second)
	// go-plugin notices the exit asynchronously; the export either restarts
	// the plugin at once or asks to be retried after the backoff.
	var err error
	for range 50 {
		if err = d.Export(context.Background(), makeTraces("after-crash")); err == nil {
			break
		}
		if plugins.IsPermanent(err) {
			t.Fatalf("permanent error after a crash: %v", err)
		}
		after, _ := plugins.RetryAfter(err)
		time.Sleep(max(after, 10*time.Millisecond))
	}
	if err != nil {
		t.Fatalf("never recovered: %v", err)
	}
	if d.Restarts() != 1 || d.Pid() == pid {
		t.Fatalf("Restarts = %d, pid %d -> %d", d.Restarts(), pid, d.Pid())
	}
	if got := readLines(t, out); !slices.Equal(got, []string{"after-crash"}) {
		t.Fatalf("plugin has %v", got)
	}
}

func TestRestartBackoffGrows(t *testing.T) {
	t.Parallel()
	spec, _ := testSpec(t, "flaps", bin("testplugin"), map[string]any{"out": filepath.Join(t.TempDir(), "out"), "exit_in_export": true})
	// Long enough that the immediate re-export below always falls inside
	// the backoff, even on a loaded machine.
	spec.RestartBackoff = 150 * time.Millisecond
	spec.MaxRestartBackoff = 400 * time.Millisecond
	d := start(t, spec)

	// Each export kills the plugin; the wait before the next start doubles
	// up to the cap.
	want := []time.Duration{150, 300, 400}
	for i, w := range want {
		w *= time.Millisecond
		err := d.Export(context.Background(), makeTraces("x"))
		if err == nil || plugins.IsPermanent(err) {
			t.Fatalf("export %d: %v, want retryable", i, err)
		}
		if after, _ := plugins.RetryAfter(err); after != w {
			t.Fatalf("export %d: RetryAfter = %s, want %s (%v)", i, after, w, err)
		}
		// Exporting before the backoff passed does not start a process.
		restarts := d.Restarts()
		if err := d.Export(context.Background(), makeTraces("x")); err == nil || !strings.Contains(err.Error(), "restarting in") {
			t.Fatalf("export during backoff: %v", err)
		}
		if d.Restarts() != restarts {
			t.Fatal("a process was started during the backoff")
		}
		time.Sleep(w)
	}
	if got := d.Restarts(); got != uint64(len(want)-1) {
		t.Fatalf("Restarts = %d, want %d", got, len(want)-1)
	}
}

func TestMalformedAnswerIsRetryable(t *testing.T) {
	t.Parallel()
	spec, _ := testSpec(t, "odd", bin("malformed"), nil)
	d := start(t, spec)
	err := d.Export(context.Background(), makeTraces("x"))
	if err == nil || plugins.IsPermanent(err) || !strings.Contains(err.Error(), "malformed export answer (result 99)") {
		t.Fatalf("Export = %v, want a retryable malformed-answer error", err)
	}
	if d.Restarts() != 0 {
		t.Fatal("a live plugin that answered oddly was restarted")
	}
}

func TestLargeBatchesAreSplit(t *testing.T) {
	t.Parallel()
	out := filepath.Join(t.TempDir(), "out")
	spec, _ := testSpec(t, "small-messages", bin("testplugin"), map[string]any{"out": out})
	spec.MaxMessageBytes = 2048
	d := start(t, spec)

	batch := makeTraces(numbered("split", 200)...)
	huge := batch.ResourceSpans().At(0).ScopeSpans().At(0).Spans().AppendEmpty()
	huge.SetName("huge")
	huge.SetSpanID(pcommon.SpanID{0xab, 0xcd, 1})
	huge.Attributes().PutStr("payload", strings.Repeat("x", 4096))

	err := d.Export(context.Background(), batch)
	if !plugins.IsPermanent(err) {
		t.Fatalf("Export = %v, want a permanent error for the oversize span", err)
	}
	if !strings.Contains(err.Error(), `"huge"`) || !strings.Contains(err.Error(), "1 span(s) exceed the 2048-byte message limit") {
		t.Fatalf("error %q does not name the oversize span", err)
	}
	// The rest went, so the error names the only span refused.
	var refused *RefusedSpans
	if !errors.As(err, &refused) || !slices.Equal(refused.IDs, []string{huge.SpanID().String()}) {
		t.Fatalf("Export = %#v, want RefusedSpans naming span %s", err, huge.SpanID())
	}
	want := numbered("split", 200)
	if got := readLines(t, out); !slices.Equal(got, want) {
		t.Fatalf("plugin got %d spans, want the %d that fit", len(got), len(want))
	}
}

// TestExportEncoded: an encoded batch, in one part or several, that fits
// goes as it is; one over the message limit is decoded and split like any
// other; bytes that are not a request are refused for good.
func TestExportEncoded(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name      string
		spans     []int  // spans of each part
		payload   []byte // when set, sent instead of the spans
		permanent bool
	}{
		{"fits", []int{3}, nil, false},
		{"parts that fit together", []int{2, 0, 3}, nil, false},
		{"over the limit", []int{200}, nil, false},
		{"parts over the limit together", []int{60, 60, 60}, nil, false},
		{"not a request", nil, []byte{0xff, 0xff, 0xff}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			out := filepath.Join(t.TempDir(), "out")
			spec, _ := testSpec(t, "encoded", bin("testplugin"), map[string]any{"out": out})
			spec.MaxMessageBytes = 2048
			d := start(t, spec)
			var want []string
			parts := [][]byte{tc.payload}
			if tc.payload == nil {
				parts = nil
				for i, n := range tc.spans {
					names := numbered(fmt.Sprintf("enc%d", i), n)
					want = append(want, names...)
					part, err := (&ptrace.ProtoMarshaler{}).MarshalTraces(makeTraces(names...))
					if err != nil {
						t.Fatal(err)
					}
					parts = append(parts, part)
				}
			}
			err := d.ExportEncoded(context.Background(), parts)
			if tc.permanent {
				if !plugins.IsPermanent(err) {
					t.Fatalf("ExportEncoded = %v, want a permanent error", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ExportEncoded: %v", err)
			}
			if got := readLines(t, out); !slices.Equal(got, want) {
				t.Fatalf("plugin got %d spans %v, want %d", len(got), got, len(want))
			}
		})
	}
}

func TestPluginOutputIsLogged(t *testing.T) {
	t.Parallel()
	out := filepath.Join(t.TempDir(), "out")
	spec, sink := testSpec(t, "chatty", bin("testplugin"), map[string]any{"out": out, "noisy": true})
	d := start(t, spec)
	if err := d.Export(context.Background(), makeTraces("a", "b")); err != nil {
		t.Fatalf("Export with a noisy plugin: %v", err)
	}
	if got := readLines(t, out); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("plugin wrote %v", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := d.Close(ctx); err != nil { // flushes the streams
		t.Fatal(err)
	}

	cases := []struct {
		msg    string
		attrs  map[string]any
		minLvl string
	}{
		{"stdout junk during export", map[string]any{"stream": "stdout"}, "INFO"},
		{"stderr junk during export", map[string]any{"stream": "stderr"}, "INFO"},
		{"raw line on fd 2 during export", map[string]any{"stream": "stderr"}, "INFO"},
		// A line that would crash go-plugin's own parser is logged verbatim.
		{`{"@message": 5, "@level": "error"}`, map[string]any{"stream": "stderr"}, "INFO"},
		{"structured during export", map[string]any{"answer": float64(42)}, "WARN"},
	}
	for _, tc := range cases {
		rec, ok := sink.await(tc.msg, 30*time.Second)
		if !ok {
			t.Errorf("no log record %q", tc.msg)
			continue
		}
		if rec.attrs["destination"] != "chatty" {
			t.Errorf("record %q has destination %v", tc.msg, rec.attrs["destination"])
		}
		if rec.level.String() != tc.minLvl {
			t.Errorf("record %q at %s, want %s", tc.msg, rec.level, tc.minLvl)
		}
		for k, v := range tc.attrs {
			if rec.attrs[k] != v {
				t.Errorf("record %q: %s = %v, want %v", tc.msg, k, rec.attrs[k], v)
			}
		}
	}
}

func TestCloseShutsDownGracefully(t *testing.T) {
	t.Parallel()
	out := filepath.Join(t.TempDir(), "out")
	spec, _ := testSpec(t, "closing", bin("testplugin"), map[string]any{"out": out})
	d, err := Start(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	pid := d.Pid()
	if err := d.Export(context.Background(), makeTraces("one")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := d.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if alive(pid) {
		t.Fatalf("plugin %d still running after Close", pid)
	}
	if got := readLines(t, out); !slices.Equal(got, []string{"one", "#shutdown"}) {
		t.Fatalf("plugin wrote %v; want its Shutdown to have run", got)
	}
	err = d.Export(context.Background(), makeTraces("late"))
	if !errors.Is(err, ErrClosed) || plugins.IsPermanent(err) {
		t.Fatalf("Export after Close = %v, want retryable ErrClosed", err)
	}
	if err := d.Close(ctx); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestCloseKillsAHungPluginWhenCtxEnds(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	marker := filepath.Join(dir, "marker")
	spec, _ := testSpec(t, "stuck", bin("testplugin"), map[string]any{"out": filepath.Join(dir, "out"), "block_once": marker})
	spec.ExportTimeout = time.Minute
	d, err := Start(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	pid := d.Pid()
	go func() { _ = d.Export(context.Background(), makeTraces("x")) }()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(marker); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("plugin never entered Export")
		}
	}
	// Shutdown waits for the stuck Export (calls are serialised); Close must
	// still return soon after its deadline.
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	began := time.Now()
	_ = d.Close(ctx)
	if took := time.Since(began); took > 30*time.Second { // the export would take a minute
		t.Fatalf("Close took %s", took)
	}
	waitGone(t, pid, 30*time.Second)
}

func TestBuiltinRunsAsChildProcess(t *testing.T) {
	t.Parallel()
	out := filepath.Join(t.TempDir(), "out")
	spec, _ := testSpec(t, "builtin-echo", "echo", map[string]any{"out": out})
	spec.BuiltinCommand = builtinCommand
	d := start(t, spec)
	if d.Pid() == os.Getpid() || d.Pid() == 0 {
		t.Fatalf("built-in not in its own process (pid %d)", d.Pid())
	}
	if err := d.Export(context.Background(), makeTraces("p", "q")); err != nil {
		t.Fatal(err)
	}
	if got := readLines(t, out); !slices.Equal(got, []string{"p", "q"}) {
		t.Fatalf("built-in wrote %v", got)
	}

	// An unknown name fails start-up with the registry's message.
	bad := spec
	bad.Plugin = "nope"
	_, err := Start(context.Background(), bad)
	if err == nil || !strings.Contains(err.Error(), `unknown built-in exporter "nope"`) {
		t.Fatalf("Start(unknown built-in) = %v", err)
	}
}

func TestPluginExitsWhenHostIsKilled(t *testing.T) {
	t.Parallel()
	host := exec.Command(os.Args[0])
	host.Env = append(os.Environ(),
		roleEnv+"=host",
		"PLUGINHOST_TEST_PLUGIN="+bin("testplugin"),
		"PLUGINHOST_TEST_OUT="+filepath.Join(t.TempDir(), "out"),
	)
	stdout, err := host.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := host.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "pid ") {
		_ = host.Process.Kill()
		_ = host.Wait()
		t.Fatalf("host said %q, %v", line, err)
	}
	var pluginPid int
	if err := json.Unmarshal([]byte(strings.TrimSpace(strings.TrimPrefix(line, "pid "))), &pluginPid); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if alive(pluginPid) {
			_ = syscall.Kill(pluginPid, syscall.SIGKILL)
		}
	})
	if !alive(pluginPid) {
		t.Fatalf("plugin %d not running while its host is", pluginPid)
	}

	_ = host.Process.Signal(syscall.SIGKILL)
	_ = host.Wait()
	waitGone(t, pluginPid, 30*time.Second)
}

func TestExportAbandonedByCaller(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	spec, _ := testSpec(t, "impatient", bin("testplugin"), map[string]any{"out": filepath.Join(dir, "out"), "block_once": filepath.Join(dir, "m")})
	d := start(t, spec)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	err := d.Export(ctx, makeTraces("x"))
	if err == nil || plugins.IsPermanent(err) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Export = %v, want retryable deadline error", err)
	}
	// The caller's own deadline is not the plugin's fault: no restart.
	if d.Restarts() != 0 || d.Pid() == 0 {
		t.Fatal("plugin restarted after the caller gave up")
	}
	// Its Export still runs, so a graceful shutdown cannot finish; Close
	// kills it when its deadline ends.
	pid := d.Pid()
	cctx, ccancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer ccancel()
	if err := d.Close(cctx); err == nil {
		t.Fatal("Close of a plugin stuck in Export reported a clean shutdown")
	}
	waitGone(t, pid, 30*time.Second)
}

func TestJSONLExamplePlugin(t *testing.T) {
	t.Parallel()
	out := filepath.Join(t.TempDir(), "spans.jsonl")
	spec, _ := testSpec(t, "local-jsonl", bin("jsonl"), map[string]any{"path": out})
	d := start(t, spec)

	batch := makeTraces("agent.run", "llm.chat", "tool.search")
	ev := batch.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(1).Events().AppendEmpty()
	ev.SetName("gen_ai.choice")
	ev.Attributes().PutStr("finish_reason", "stop")
	if err := d.Export(context.Background(), batch); err != nil {
		t.Fatalf("Export: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := d.Close(ctx); err != nil {
		t.Fatal(err)
	}

	lines := readLines(t, out)
	if len(lines) != 3 {
		t.Fatalf("file has %d lines, want 3:\n%s", len(lines), strings.Join(lines, "\n"))
	}
	spans := batch.ResourceSpans().At(0).ScopeSpans().At(0).Spans()
	for i, l := range lines {
		var got struct {
			TraceID    string         `json:"trace_id"`
			SpanID     string         `json:"span_id"`
			Name       string         `json:"name"`
			Kind       string         `json:"kind"`
			StartTime  time.Time      `json:"start_time"`
			EndTime    time.Time      `json:"end_time"`
			Attributes map[string]any `json:"attributes"`
			Resource   map[string]any `json:"resource"`
			Scope      string         `json:"scope"`
			Events     []struct {
				Name       string         `json:"name"`
				Attributes map[string]any `json:"attributes"`
			} `json:"events"`
		}
		if err := json.Unmarshal([]byte(l), &got); err != nil {
			t.Fatalf("line %d is not JSON: %v\n%s", i, err, l)
		}
		sp := spans.At(i)
		if got.Name != sp.Name() || got.SpanID != sp.SpanID().String() || got.TraceID != sp.TraceID().String() {
			t.Errorf("line %d = %s/%s/%s, want %s/%s/%s", i, got.Name, got.TraceID, got.SpanID, sp.Name(), sp.TraceID(), sp.SpanID())
		}
		if got.Kind != "Internal" || got.Scope != "kern.test" || got.Resource["service.name"] != "agent-os" {
			t.Errorf("line %d: kind %q scope %q resource %v", i, got.Kind, got.Scope, got.Resource)
		}
		if !got.StartTime.Equal(sp.StartTimestamp().AsTime()) || !got.EndTime.Equal(sp.EndTimestamp().AsTime()) {
			t.Errorf("line %d: times %s..%s", i, got.StartTime, got.EndTime)
		}
		if got.Attributes["gen_ai.operation.name"] != "chat" || got.Attributes["gen_ai.usage.input_tokens"] != float64(10*i) {
			t.Errorf("line %d: attributes %v", i, got.Attributes)
		}
		if wantEvents := sp.Events().Len(); len(got.Events) != wantEvents {
			t.Errorf("line %d: %d events, want %d", i, len(got.Events), wantEvents)
		}
	}

	// Its config validation reaches the user through the host.
	bad, _ := testSpec(t, "local-jsonl", bin("jsonl"), map[string]any{"path": 7, "colour": "red"})
	_, err := Start(context.Background(), bad)
	var ce *plugins.ConfigError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "path: must be a non-empty string") || !strings.Contains(err.Error(), "colour: unknown field") {
		t.Fatalf("Start with a bad config = %v", err)
	}
}

func TestConcurrentExportsShareOneRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	spec, _ := testSpec(t, "busy", bin("testplugin"), map[string]any{"out": out, "block_once": filepath.Join(dir, "m")})
	spec.ExportTimeout = 300 * time.Millisecond
	d := start(t, spec)
	err := d.Export(context.Background(), makeTraces("lost-to-hang"))
	after, _ := plugins.RetryAfter(err)
	if err == nil || after == 0 {
		t.Fatalf("Export = %v, want retryable with a backoff", err)
	}
	time.Sleep(after)

	const workers = 8
	var wg sync.WaitGroup
	errs := make([]error, workers)
	for i := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = d.Export(context.Background(), makeTraces(fmt.Sprintf("w%d", i)))
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("worker %d: %v", i, err)
		}
	}
	if d.Restarts() != 1 {
		t.Fatalf("Restarts = %d, want one restart shared by all workers", d.Restarts())
	}
	if got := readLines(t, out); len(got) != workers {
		t.Fatalf("plugin has %v", got)
	}
}

func TestInheritedHostPIDIsOverridden(t *testing.T) {
	// A stale value in the gateway's own environment (say, it was itself
	// started by a plugin host) must not reach the plugin: the plugin would
	// think its host is gone and exit.
	t.Setenv(plugins.EnvHostPID, "999999")
	out := filepath.Join(t.TempDir(), "out")
	spec, _ := testSpec(t, "env", bin("testplugin"), map[string]any{"out": out})
	d := start(t, spec)
	time.Sleep(1200 * time.Millisecond) // a few of the plugin's parent checks
	if err := d.Export(context.Background(), makeTraces("still-here")); err != nil {
		t.Fatalf("Export: %v", err)
	}
	if d.Restarts() != 0 {
		t.Fatal("plugin exited because of an inherited host pid")
	}
}

func TestPermanentPartsAreReportedTogether(t *testing.T) {
	t.Parallel()
	spec, _ := testSpec(t, "rejects", bin("testplugin"), map[string]any{"out": filepath.Join(t.TempDir(), "out"), "result": "permanent"})
	spec.MaxMessageBytes = 2048
	d := start(t, spec)
	err := d.Export(context.Background(), makeTraces(numbered("p", 100)...))
	if !plugins.IsPermanent(err) {
		t.Fatalf("Export = %v, want permanent", err)
	}
	msg := err.Error()
	if n := strings.Count(msg, "vendor rejected the payload"); n < 2 {
		t.Fatalf("error reports %d rejected parts, want one per part: %q", n, msg)
	}
	if strings.Count(msg, "permanent: ") != 1 {
		t.Fatalf("classification repeated in %q", msg)
	}
}
