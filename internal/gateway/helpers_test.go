package gateway

import (
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/kern-agents/trace-gateway/internal/convert"
	"github.com/kern-agents/trace-gateway/internal/model"
	"github.com/kern-agents/trace-gateway/internal/store"
)

func toRows(t *testing.T, td ptrace.Traces) []model.Span {
	t.Helper()
	spans, rej := convert.FromOTLP(td, time.Now(), convert.Limits{})
	if len(rej) > 0 {
		t.Fatalf("rejected: %v", rej)
	}
	return spans
}

// nopCloser keeps a store open when the gateway closes it.
type nopCloser struct{ store.Store }

func (nopCloser) Close() error { return nil }
