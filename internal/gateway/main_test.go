package gateway

import (
	"fmt"
	"os"
	"os/exec"
	"testing"

	"github.com/kern-agents/trace-gateway/exporters/otlp"
	"github.com/kern-agents/trace-gateway/internal/builtin"
)

// pluginEnv makes the test binary serve a built-in exporter instead of
// running tests, the way `gateway plugin NAME` does.
const pluginEnv = "KERN_GATEWAY_TEST_PLUGIN"

func TestMain(m *testing.M) {
	if name := os.Getenv(pluginEnv); name != "" {
		builtin.Register("otlp", otlp.New)
		if err := builtin.Serve(name); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// pluginCommand runs built-ins from the test binary (Options.PluginCommand).
func pluginCommand(name string) *exec.Cmd {
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), pluginEnv+"="+name)
	return cmd
}
