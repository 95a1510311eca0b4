package main

import (
	"context"
	"encoding/json"
	"fmt"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"

	"github.com/kern-agents/trace-gateway/internal/otlpsink"
	"github.com/kern-agents/trace-gateway/internal/sim"
)

// load is what the senders send, the same for every side of every round.
type load struct {
	reqs   [][]byte           // OTLP/HTTP protobuf request bodies
	ids    [][]pcommon.SpanID // the spans of each request, for delivery lag
	spans  int
	traces int
	// attrs holds each span's attributes as the sender sent them, as a
	// JSON object, by hex span id: what the raw COPY stores.
	attrs map[string]string
}

// generate simulates agent runs with the OpenTelemetry SDK until at least
// wantSpans spans (whole traces) and cuts them into requests of perReq
// traces.
func generate(ctx context.Context, wantSpans, perReq int) (*load, error) {
	// Runs average about 11.5 spans; a tenth more runs than 11-span ones
	// would need always suffices, and the surplus is cut off below.
	runs := wantSpans/11 + wantSpans/110 + 1
	td, _, err := sim.CaptureTraces(ctx, sim.Options{Count: runs, Seed: 7, ErrorRatio: 0.1, Concurrency: 2})
	if err != nil {
		return nil, fmt.Errorf("generate spans: %w", err)
	}
	traces := groupTraces(td, wantSpans)
	l := &load{attrs: map[string]string{}, traces: len(traces)}
	for start := 0; start < len(traces); start += perReq {
		req := buildRequest(traces[start:min(start+perReq, len(traces))])
		b, err := ptraceotlp.NewExportRequestFromTraces(req).MarshalProto()
		if err != nil {
			return nil, fmt.Errorf("encode request: %w", err)
		}
		l.reqs = append(l.reqs, b)
		l.ids = append(l.ids, otlpsink.SpanIDs(req))
	}
	for _, tr := range traces {
		for _, s := range tr {
			b, err := json.Marshal(s.span.Attributes().AsRaw())
			if err != nil {
				return nil, fmt.Errorf("span %s attributes: %w", s.span.SpanID(), err)
			}
			l.attrs[s.span.SpanID().String()] = string(b)
			l.spans++
		}
	}
	if l.spans < wantSpans {
		return nil, fmt.Errorf("generated %d spans, want %d", l.spans, wantSpans)
	}
	return l, nil
}

// placed is one span with the resource and scope it came with.
type placed struct {
	res   pcommon.Resource
	scope pcommon.InstrumentationScope
	span  ptrace.Span
}

// groupTraces collects td's spans by trace in order of first appearance
// and keeps the first traces that hold at least want spans together.
func groupTraces(td ptrace.Traces, want int) [][]placed {
	byID := map[pcommon.TraceID]int{}
	var out [][]placed
	rss := td.ResourceSpans()
	for i := range rss.Len() {
		rs := rss.At(i)
		for j := range rs.ScopeSpans().Len() {
			ss := rs.ScopeSpans().At(j)
			for k := range ss.Spans().Len() {
				sp := ss.Spans().At(k)
				n, ok := byID[sp.TraceID()]
				if !ok {
					n = len(out)
					byID[sp.TraceID()] = n
					out = append(out, nil)
				}
				out[n] = append(out[n], placed{rs.Resource(), ss.Scope(), sp})
			}
		}
	}
	total := 0
	for n, tr := range out {
		if total += len(tr); total >= want {
			return out[:n+1]
		}
	}
	return out
}

// buildRequest puts whole traces into one request, grouped by scope like
// an SDK's batch. Every simulated span has the same resource (sim.Resource),
// so the request carries it once.
func buildRequest(traces [][]placed) ptrace.Traces {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	scopes := map[[2]string]ptrace.SpanSlice{}
	for n, tr := range traces {
		for i, p := range tr {
			if n == 0 && i == 0 {
				p.res.CopyTo(rs.Resource())
			}
			k := [2]string{p.scope.Name(), p.scope.Version()}
			spans, ok := scopes[k]
			if !ok {
				ss := rs.ScopeSpans().AppendEmpty()
				p.scope.CopyTo(ss.Scope())
				spans = ss.Spans()
				scopes[k] = spans
			}
			p.span.CopyTo(spans.AppendEmpty())
		}
	}
	return td
}
