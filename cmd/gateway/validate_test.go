package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kern-agents/trace-gateway/internal/gwbuild"
)

// TestValidateConfiguresPlugins runs the built gateway and the example jsonl
// plugin: `gateway validate` starts every destination's plugin (a custom one
// by path and built-ins), reports each config it rejects as file:line, and
// stops them; `gateway run` refuses to start on the same config with the
// same lines instead of retrying the destination forever.
func TestValidateConfiguresPlugins(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the gateway and the jsonl plugin")
	}
	dir := t.TempDir()
	gatewayBin := build(t, "./cmd/gateway")
	// Where config.example.yaml expects it, relative to the working directory.
	plugin, err := os.ReadFile(build(t, "./plugins/examples/jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bin", "jsonl-plugin"), plugin, 0o755); err != nil {
		t.Fatal(err)
	}
	example, err := filepath.Abs("../../config.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	gateway := func(args ...string) (code int, stdout, stderr string) {
		t.Helper()
		// The deadline only stops a hang from blocking the suite.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, gatewayBin, args...)
		cmd.Dir = dir
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		if ctx.Err() != nil {
			t.Fatalf("gateway %v did not end: %s", args, errb.String())
		}
		var exit *exec.ExitError
		switch {
		case err == nil:
		case errors.As(err, &exit):
			code = exit.ExitCode()
		default:
			t.Fatal(err)
		}
		return code, out.String(), errb.String()
	}

	// The example config passes, and its jsonl plugin really ran Configure:
	// it opens its output file there.
	if code, out, errs := gateway("validate", "--config", example); code != 0 || !strings.Contains(out, ": ok") {
		t.Fatalf("example config: exit %d\n%s%s", code, out, errs)
	}
	if _, err := os.Stat(filepath.Join(dir, "kern-spans.jsonl")); err != nil {
		t.Errorf("the jsonl plugin was not configured: %v", err)
	}

	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte(`storage: {driver: sqlite, dsn: "file:`+filepath.Join(dir, "t.db")+`"}
server: {otlp_grpc: "127.0.0.1:0", otlp_http: "127.0.0.1:0", http: "127.0.0.1:0"}
destinations:
  - name: jsonl-no-path
    plugin: ./bin/jsonl-plugin
    config: {}
  - name: otlp-ok
    plugin: otlp
    config:
      endpoint: http://127.0.0.1:9/v1/traces
  - name: langfuse-no-keys
    plugin: langfuse
    config:
      host: https://cloud.langfuse.com
      public_key: pk-lf-1
`), 0o600); err != nil {
		t.Fatal(err)
	}
	want := []string{
		bad + ":6: destinations[0] (jsonl-no-path): config.path: is required",
		bad + ":13: destinations[2] (langfuse-no-keys): config.secret_key: ",
	}
	code, out, errs := gateway("validate", "--config", bad)
	if code != 1 || out != "" {
		t.Fatalf("validate: exit %d, stdout %q; want 1 and nothing", code, out)
	}
	lines := strings.Split(strings.TrimSpace(errs), "\n")
	if len(lines) != len(want) {
		t.Fatalf("validate said:\n%s\nwant %d lines", errs, len(want))
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], w) {
			t.Errorf("line %d: %s\nwant it to start with %s", i, lines[i], w)
		}
	}
	noPluginsLeft(t, filepath.Join(dir, "bin"))

	code, _, errs = gateway("run", "--config", bad)
	if code != 1 {
		t.Fatalf("run: exit %d, want 1\n%s", code, errs)
	}
	for _, w := range want {
		if !strings.Contains(errs, w) {
			t.Errorf("run did not say %q:\n%s", w, errs)
		}
	}
	if strings.Contains(errs, "gateway ready") {
		t.Errorf("run became ready with destinations it cannot configure:\n%s", errs)
	}
	noPluginsLeft(t, filepath.Join(dir, "bin"))
}

// noPluginsLeft waits until no process runs a binary from binDir.
func noPluginsLeft(t *testing.T, binDir string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var left []string
		for _, p := range gwbuild.Procs() {
			if len(p.Args) > 0 && strings.HasPrefix(p.Args[0], binDir+string(filepath.Separator)) {
				left = append(left, strings.Join(p.Args, " "))
			}
		}
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("plugin processes left running: %v", left)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
