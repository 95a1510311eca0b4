package apitest

import (
	"context"
	"testing"
	"time"

	"github.com/kern-agents/trace-gateway/internal/convert"
	"github.com/kern-agents/trace-gateway/internal/model"
	"github.com/kern-agents/trace-gateway/internal/sim"
)

// Sim runs the agent simulator and converts its OTLP the way the receiver
// does, giving the rows the gateway would store for those runs.
func Sim(t testing.TB, opts sim.Options) []model.Span {
	t.Helper()
	td, err := sim.Capture(context.Background(), opts)
	if err != nil {
		t.Fatalf("simulate runs: %v", err)
	}
	spans, rejected := convert.FromOTLP(td, time.Now(), convert.Limits{})
	if len(rejected) > 0 {
		t.Fatalf("converter rejected %d simulated spans, first: %+v", len(rejected), rejected[0])
	}
	return spans
}
