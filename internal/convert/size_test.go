package convert

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/kern-agents/trace-gateway/internal/semantics"
	"github.com/kern-agents/trace-gateway/internal/sim"
	"github.com/kern-agents/trace-gateway/internal/store"
)

// maxStoredOverSent bounds what storing a span costs beyond what its sender
// sent: the keys AgentOS reads that the span lacked, nothing copied twice,
// and no reference to the resource where it is the trace's usual one. The
// bench workload stores 1.26x (it was 2.25x with the kern.* copies); the
// extra bytes are the OpenInference keys added to the spans of senders
// using only the GenAI conventions (docs/semantics.md).
const maxStoredOverSent = 1.27

// storedOverSent converts the bench workload (the simulated agent runs
// gatewaybench sends) and returns the bytes per span as stored and as sent,
// both in the stored JSON encoding. Sent: the span's attributes, events and
// links, plus each resource and scope once per request that carried them.
// Stored: the attributes column as the store writes it (with the resource
// references it adds), plus each distinct resource and scope once (the
// gateway_resources rows) and each trace's usual one (the
// gateway_trace_resources row).
func storedOverSent(t testing.TB) (stored, sent float64) {
	t.Helper()
	td, _, err := sim.CaptureTraces(context.Background(), sim.Options{Count: 300, Seed: 7, ErrorRatio: 0.1})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	spans, _ := FromOTLP(td, now, Limits{})

	bare := ptrace.NewTraces()
	td.CopyTo(bare)
	for _, rs := range bare.ResourceSpans().All() {
		rs.Resource().Attributes().Clear()
		for _, ss := range rs.ScopeSpans().All() {
			ss.Scope().SetName("")
			ss.Scope().SetVersion("")
			ss.Scope().Attributes().Clear()
		}
	}
	old := annotateFunc
	annotateFunc = func(semantics.Info, map[string]any) []string { return nil }
	plain, _ := FromOTLP(bare, now, Limits{})
	annotateFunc = old

	if len(spans) == 0 || len(spans) != len(plain) {
		t.Fatalf("%d spans stored, %d plain", len(spans), len(plain))
	}
	var s, p int
	origins := map[string]bool{}
	usual := store.UsualOrigins(spans)
	for id, o := range usual {
		s += len(id) + len(o)
	}
	for i := range spans {
		s += len(store.StoredAttributes(&spans[i], usual[spans[i].TraceID]))
		p += len(plain[i].Attributes)
		if o := spans[i].Origin; o != nil && !origins[o.ID] {
			origins[o.ID] = true
			s += len(o.ID) + len(o.Resource) + len(o.Scope)
		}
	}
	for _, rs := range td.ResourceSpans().All() {
		res, _ := json.Marshal(rs.Resource().Attributes().AsRaw())
		p += len(res)
		for _, ss := range rs.ScopeSpans().All() {
			p += len(`{"name":"","version":""}`) + len(ss.Scope().Name()) + len(ss.Scope().Version())
		}
	}
	return float64(s) / float64(len(spans)), float64(p) / float64(len(plain))
}

func TestStoredAttributesStayCloseToSent(t *testing.T) {
	stored, sent := storedOverSent(t)
	t.Logf("attributes per span: %.0f bytes stored, %.0f sent (%.3fx)", stored, sent, stored/sent)
	if stored/sent > maxStoredOverSent {
		t.Errorf("stored attributes are %.3fx what the sender sent, want <= %.2f", stored/sent, maxStoredOverSent)
	}
}

// BenchmarkStoredAttributeBytes reports the stored/sent figure for make
// bench (the conversion time is incidental).
func BenchmarkStoredAttributeBytes(b *testing.B) {
	var stored, sent float64
	for b.Loop() {
		stored, sent = storedOverSent(b)
	}
	b.ReportMetric(stored, "stored-B/span")
	b.ReportMetric(sent, "sent-B/span")
	b.ReportMetric(stored/sent, "stored/sent")
}
