package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kern-agents/trace-gateway/internal/config"
	"github.com/kern-agents/trace-gateway/internal/gwbuild"
)

// parseConfig writes text to a file and loads it, so that errors carry
// its lines.
func parseConfig(t *testing.T, text string) *config.Config {
	t.Helper()
	path := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// pluginChildren counts this process's children running the test binary
// as a plugin (pluginCommand).
func pluginChildren() int {
	self, _ := os.Executable()
	n := 0
	for _, p := range gwbuild.Procs() {
		if p.PPid == os.Getpid() && len(p.Args) > 0 && (p.Args[0] == os.Args[0] || p.Args[0] == self) {
			n++
		}
	}
	return n
}

// exitingPlugin is a "plugin" that exits before the handshake: a start
// failure another attempt might not have (FailedToRun).
func exitingPlugin(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "crashes")
	if err := os.WriteFile(path, []byte("#!/bin/sh\necho 'cannot reach the license server' >&2\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

const destinationsYAML = `server: {otlp_grpc: "127.0.0.1:0", otlp_http: "127.0.0.1:0", http: "127.0.0.1:0"}
storage: {driver: sqlite, dsn: "file:%s"}
destinations:
  - name: good
    plugin: otlp
    config:
      endpoint: http://127.0.0.1:9/v1/traces
  - name: no-endpoint
    plugin: otlp
    config:
      protocol: grpc
  - name: bad-field
    plugin: otlp
    config:
      endpoint: http://127.0.0.1:9/v1/traces
      tls:
        insecure: true
  - name: no-binary
    plugin: ./no-such-plugin
%s`

// TestCheckDestinations: every destination's plugin is started and asked
// to take its config; each rejection is located at the field, the config
// block or the plugin setting, and no plugin is left running.
func TestCheckDestinations(t *testing.T) {
	crash := exitingPlugin(t)
	cfg := parseConfig(t, fmt.Sprintf(destinationsYAML, filepath.Join(t.TempDir(), "t.db"),
		"  - name: crashes\n    plugin: "+crash+"\n"))
	err := CheckDestinations(context.Background(), cfg, Options{PluginCommand: pluginCommand})
	var located config.Errors
	if !errors.As(err, &located) {
		t.Fatalf("error %v, want config.Errors", err)
	}
	want := []string{
		cfg.File + ":10: destinations[1] (no-endpoint): config.endpoint: is required",
		cfg.File + ":17: destinations[2] (bad-field): config.tls.insecure: applies to grpc only",
		cfg.File + ":19: destinations[3] (no-binary): plugin binary ",
		cfg.File + ":21: destinations[4] (crashes): plugin " + crash + ": the plugin exited during start-up",
	}
	if len(located) != len(want) {
		t.Fatalf("%d problems, want %d:\n%v", len(located), len(want), err)
	}
	for i, w := range want {
		if !strings.HasPrefix(located[i].Error(), w) {
			t.Errorf("problem %d:\n%s\nwant it to start with\n%s", i, located[i], w)
		}
	}
	if !strings.Contains(err.Error(), "cannot reach the license server") {
		t.Errorf("the crashed plugin's last output is not shown:\n%v", err)
	}
	waitUntil(t, "no plugin process left", 10*time.Second, func() bool { return pluginChildren() == 0 })

	good := parseConfig(t, fmt.Sprintf(destinationsYAML[:strings.Index(destinationsYAML, "  - name: no-endpoint")], filepath.Join(t.TempDir(), "t.db")))
	if err := CheckDestinations(context.Background(), good, Options{PluginCommand: pluginCommand}); err != nil {
		t.Fatalf("a good destination: %v", err)
	}
	waitUntil(t, "no plugin process left", 10*time.Second, func() bool { return pluginChildren() == 0 })
}

// TestStartFailsOnRejectedConfig: a destination whose plugin rejects its
// config, or that names no runnable plugin, stops the gateway's start with
// the located errors instead of being retried in the background forever;
// a plugin that merely crashed at start does not (its worker retries it).
func TestStartFailsOnRejectedConfig(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg := parseConfig(t, fmt.Sprintf(destinationsYAML, filepath.Join(t.TempDir(), "t.db"), ""))
	_, err := Start(context.Background(), cfg, Options{Logger: log, PluginCommand: pluginCommand})
	var located config.Errors
	if !errors.As(err, &located) || len(located) != 3 {
		t.Fatalf("Start: %v; want the three bad destinations located", err)
	}
	for i, w := range []string{"destinations[1] (no-endpoint)", "destinations[2] (bad-field)", "destinations[3] (no-binary)"} {
		if !strings.Contains(located[i].Error(), w) {
			t.Errorf("problem %d: %s, want %s", i, located[i], w)
		}
	}
	waitUntil(t, "the good destination's plugin closed", 10*time.Second, func() bool { return pluginChildren() == 0 })

	crashOnly := parseConfig(t, fmt.Sprintf(destinationsYAML[:strings.Index(destinationsYAML, "  - name: no-endpoint")],
		filepath.Join(t.TempDir(), "t.db"))+"  - name: crashes\n    plugin: "+exitingPlugin(t)+"\n")
	g, err := Start(context.Background(), crashOnly, Options{Logger: log, PluginCommand: pluginCommand})
	if err != nil {
		t.Fatalf("a plugin that crashed at start stopped the gateway: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := g.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "plugins closed at shutdown", 10*time.Second, func() bool { return pluginChildren() == 0 })
}
