package pluginhost

import (
	"context"
	"log/slog"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"
)

// A stop aimed at the gateway's whole process group (systemd's default
// KillMode=control-group, `timeout`, Ctrl-C) reaches the plugins too. A
// plugin built with plugins.Serve ignores SIGTERM and SIGINT while its host
// runs: it keeps exporting and is shut down by the host as usual.
func TestSDKPluginLeavesStopSignalsToTheHost(t *testing.T) {
	t.Parallel()
	out := filepath.Join(t.TempDir(), "out")
	spec, sink := testSpec(t, "signalled", bin("testplugin"), map[string]any{"out": out})
	d := start(t, spec)
	pid := d.Pid()

	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		if err := syscall.Kill(pid, sig); err != nil {
			t.Fatal(err)
		}
		// The plugin says when it has handled the signal.
		if _, ok := sink.awaitAttr("ignoring the signal", "signal", sig.String(), 30*time.Second); !ok {
			t.Fatalf("the plugin did not report ignoring %v", sig)
		}
	}
	if err := d.Export(context.Background(), makeTraces("after-signals")); err != nil {
		t.Fatalf("Export after SIGTERM and SIGINT: %v", err)
	}
	if d.Pid() != pid || d.Restarts() != 0 || !alive(pid) {
		t.Fatalf("pid %d -> %d, %d restarts: the plugin did not survive the signals", pid, d.Pid(), d.Restarts())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := d.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if got := readLines(t, out); !slices.Equal(got, []string{"after-signals", "#shutdown"}) {
		t.Fatalf("plugin wrote %v, want the batch and its shutdown", got)
	}
	noErrors(t, sink)
}

// A plugin that does end on SIGTERM (one not built with this SDK, or with an
// older one) ends before the host shuts it down: that is no error, and
// Close reports none.
func TestPluginEndedByStopSignalIsNoError(t *testing.T) {
	t.Parallel()
	// "malformed" serves with go-plugin alone, which ends on SIGTERM.
	spec, sink := testSpec(t, "old-sdk", bin("malformed"), nil)
	d, err := Start(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	pid := d.Pid()
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	rec, ok := sink.await("plugin process stopped by a signal from outside the gateway", 30*time.Second)
	if !ok {
		t.Fatal("the plugin's end by SIGTERM was not reported")
	}
	if rec.level != slog.LevelInfo {
		t.Errorf("its end was logged at %v, want INFO", rec.level)
	}
	waitGone(t, pid, 30*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := d.Close(ctx); err != nil {
		t.Fatalf("Close after the plugin ended: %v, want nil", err)
	}
	if _, ok := sink.find("plugin process had already ended at shutdown"); !ok {
		t.Error("Close did not say the plugin had already ended")
	}
	noErrors(t, sink)
}

func TestPluginExitLevel(t *testing.T) {
	cases := []struct {
		name    string
		exitErr string
		ending  bool
		want    slog.Level
	}{
		{"exit 0", "", false, slog.LevelDebug},
		{"killed by the host", "signal: killed", true, slog.LevelDebug},
		{"ended while the host closes it", "exit status 1", true, slog.LevelDebug},
		{"SIGTERM from outside", "signal: terminated", false, slog.LevelInfo},
		{"SIGINT from outside", "signal: interrupt", false, slog.LevelInfo},
		{"crash", "exit status 2", false, slog.LevelError},
		{"killed by someone else", "signal: killed", false, slog.LevelError},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var i instance
			i.ending.Store(c.ending)
			if got, msg := i.exitLevel(c.exitErr); got != c.want || msg == "" {
				t.Errorf("exitLevel(%q) = %v %q, want %v", c.exitErr, got, msg, c.want)
			}
		})
	}
}

// noErrors fails the test for every ERROR record in sink.
func noErrors(t *testing.T, sink *logSink) {
	t.Helper()
	for _, r := range sink.snapshot() {
		if r.level >= slog.LevelError {
			t.Errorf("logged at %v: %q %v", r.level, r.msg, r.attrs)
		}
	}
}
