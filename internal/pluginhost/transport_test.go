//go:build !windows

package pluginhost

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// The plugin's socket must be reachable by the gateway's user only: without
// mutual TLS on a Unix socket, the directory holding it is what keeps other
// users out, and it goes away with the plugin.
func TestPluginSocketIsPrivate(t *testing.T) {
	t.Parallel()
	out := filepath.Join(t.TempDir(), "out")
	spec, _ := testSpec(t, "private", "echo", map[string]any{"out": out})
	spec.BuiltinCommand = builtinCommand
	d, err := Start(context.Background(), spec)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	d.mu.Lock()
	addr := d.cur.client.ReattachConfig().Addr
	d.mu.Unlock()
	if addr.Network() != "unix" {
		t.Fatalf("plugin listens on %s %s, want a Unix socket", addr.Network(), addr)
	}
	dir := filepath.Dir(addr.String())
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o700 {
		t.Fatalf("socket directory %s has mode %v, want 0700", dir, perm)
	}
	if err := d.Export(context.Background(), makeTraces("a")); err != nil {
		t.Fatalf("Export: %v", err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("socket directory %s still there after Close (stat: %v)", dir, err)
	}
}
