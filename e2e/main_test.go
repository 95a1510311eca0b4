package e2e

import (
	"os"
	"testing"

	"github.com/kern-agents/trace-gateway/internal/gwbuild"
)

// gatewayBin is the gateway binary built once for the whole run.
var gatewayBin string

func TestMain(m *testing.M) { os.Exit(gwbuild.Main(m, "./cmd/gateway", &gatewayBin)) }

// e2eOnly skips a test in -short mode.
func e2eOnly(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test; skipped with -short")
	}
}
