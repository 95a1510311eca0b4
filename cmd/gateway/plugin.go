package main

import (
	"fmt"
	"io"

	"github.com/kern-agents/trace-gateway/exporters/arize"
	"github.com/kern-agents/trace-gateway/exporters/langfuse"
	"github.com/kern-agents/trace-gateway/exporters/langsmith"
	"github.com/kern-agents/trace-gateway/exporters/logfire"
	"github.com/kern-agents/trace-gateway/exporters/mlflow"
	"github.com/kern-agents/trace-gateway/exporters/otlp"
	"github.com/kern-agents/trace-gateway/internal/builtin"
)

// The built-in adapters. Each still runs out of process: the host re-executes
// this binary as `gateway plugin NAME`.
func init() {
	builtin.Register("langfuse", langfuse.New)
	builtin.Register("langsmith", langsmith.New)
	builtin.Register("arize", arize.New)
	builtin.Register("phoenix", arize.NewPhoenix)
	builtin.Register("logfire", logfire.New)
	builtin.Register("mlflow", mlflow.New)
	builtin.Register("otlp", otlp.New)
}

// cmdPlugin serves a built-in adapter as a plugin process. It is started by
// the gateway itself, never by hand.
func cmdPlugin(args []string, stderr io.Writer) int {
	if len(args) != 1 {
		fmt.Fprintf(stderr, "usage: gateway plugin NAME (one of %v); started by the gateway, not by hand\n", builtin.Names())
		return 2
	}
	if err := builtin.Serve(args[0]); err != nil {
		fmt.Fprintln(stderr, "gateway plugin:", err)
		return 1
	}
	return 0
}
