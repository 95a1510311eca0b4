package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kern-agents/trace-gateway/internal/gwbuild"
)

// Stopping the gateway the way systemd's default KillMode=control-group,
// `timeout` or Ctrl-C in a terminal do sends SIGTERM to every process of its
// group, the plugins included. The plugins leave their lifecycle to the
// gateway: it drains, shuts them down and exits 0, logging no error;
// every acknowledged span is stored, and what the destinations had not got
// yet reaches them after a restart.
func TestStopSignalToTheProcessGroup(t *testing.T) {
	e2eOnly(t)
	t.Parallel()
	jsonl, cleanup, err := gwbuild.Build("./plugins/examples/jsonl")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cleanup)
	out := filepath.Join(t.TempDir(), "spans.jsonl")
	vendor := newVendor(t)
	db := sqliteDB(t)
	gw := newGateway(t, gatewayConfig{DB: db, Destinations: []destination{
		{Name: "vendor", Endpoint: vendor.URL(), Extra: destinationEngine},
		{Name: "file", Plugin: jsonl, Config: map[string]any{"path": out}, Extra: destinationEngine},
	}})
	load := startLoad(t, gw, loadOptions{HTTPSenders: 2, GRPCSenders: 1, Pause: 20 * time.Millisecond})
	load.waitAcked(1000, time.Minute)
	// Both plugins run (they start in the background): the signal must
	// reach them.
	for deadline := time.Now().Add(time.Minute); len(gw.Children()) < 2; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("plugin processes %v, want two", gw.Children())
		}
	}

	// SIGTERM to the group while spans stream in.
	if err := gw.TermGroup(time.Minute); err != nil {
		t.Errorf("exit after SIGTERM to the process group: %v, want status 0", err)
	}
	load.Abort()
	if !gw.GroupGone(time.Minute) {
		t.Error("processes of the gateway's group still run after it stopped")
	}
	for _, line := range gw.Logs() {
		if strings.Contains(line, "level=ERROR") {
			t.Errorf("logged an error: %s", line)
		}
	}
	if !gw.LogsContain("gateway stopped cleanly") {
		t.Error(`the gateway did not log "gateway stopped cleanly"`)
	}
	acked := load.Acked()
	figs := checkStored(t, readDB(t, db), acked, load.Sent())

	// Started again, it delivers everything to both destinations.
	gw.Restart()
	want := map[string]bool{}
	for id := range acked {
		want[id] = true
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		fileMissing := missingIn(t, out, want)
		vendorMissing := vendor.Missing(want)
		if fileMissing == 0 && vendorMissing == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the restart, of %d acknowledged spans the file misses %d and the vendor %d", len(want), fileMissing, vendorMissing)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := gw.Term(time.Minute); err != nil {
		t.Errorf("exit after SIGTERM: %v", err)
	}
	t.Logf("FIGURES %s: SIGTERM to the gateway's process group under load; %s", t.Name(), figs)
}

// missingIn counts the spans of want that the jsonl file at path lacks.
func missingIn(t *testing.T, path string, want map[string]bool) int {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, line := range strings.Split(string(data), "\n") {
		var l struct {
			SpanID string `json:"span_id"`
		}
		if json.Unmarshal([]byte(line), &l) == nil {
			have[l.SpanID] = true
		}
	}
	n := 0
	for id := range want {
		if !have[id] {
			n++
		}
	}
	return n
}
