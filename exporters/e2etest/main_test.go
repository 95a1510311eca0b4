package e2etest

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// gatewayBin is the gateway binary built once for the whole run.
var gatewayBin string

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if testing.Short() {
		// Every test skips itself; building would only cost time.
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "e2etest-gateway-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2etest: temp dir:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	gatewayBin = filepath.Join(dir, "gateway")
	cmd := exec.Command("go", "build", "-o", gatewayBin, "github.com/kern-agents/trace-gateway/cmd/gateway")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2etest: build the gateway: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

// e2eOnly skips a test in -short mode.
func e2eOnly(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test; skipped with -short")
	}
}
