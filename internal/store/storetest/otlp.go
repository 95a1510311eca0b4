package storetest

import (
	"encoding/hex"
	"fmt"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/kern-agents/trace-gateway/internal/convert"
	"github.com/kern-agents/trace-gateway/internal/model"
)

// Sent is one ResourceSpans/ScopeSpans of an OTLP export as a sender makes
// it: a resource, an instrumentation scope and their spans.
type Sent struct {
	Resource     map[string]any
	Scope        string
	ScopeVersion string
	Spans        []SentSpan
}

// SentSpan is one OTLP span as an SDK sends it. Ids are lowercase hex; an
// empty ParentID makes a root. Attribute values are what
// pcommon.Map.FromRaw takes: string, int64/int, float64, bool, []byte, []any,
// map[string]any.
type SentSpan struct {
	TraceID, SpanID, ParentID string
	Name                      string
	Kind                      ptrace.SpanKind
	Start, End                time.Time
	Status                    ptrace.StatusCode
	Message                   string
	Attrs                     map[string]any
	Events                    []SentEvent
}

// SentEvent is a span event.
type SentEvent struct {
	Name  string
	Time  time.Time
	Attrs map[string]any
}

// OTLP builds the export holding sent, in order.
func OTLP(sent ...Sent) ptrace.Traces {
	td := ptrace.NewTraces()
	for _, s := range sent {
		rs := td.ResourceSpans().AppendEmpty()
		mustFromRaw(rs.Resource().Attributes(), s.Resource)
		ss := rs.ScopeSpans().AppendEmpty()
		ss.Scope().SetName(s.Scope)
		ss.Scope().SetVersion(s.ScopeVersion)
		for _, sp := range s.Spans {
			putSpan(ss.Spans().AppendEmpty(), sp)
		}
	}
	return td
}

func putSpan(out ptrace.Span, sp SentSpan) {
	out.SetTraceID(pcommon.TraceID(mustHex(sp.TraceID, 16)))
	out.SetSpanID(pcommon.SpanID(mustHex(sp.SpanID, 8)))
	if sp.ParentID != "" {
		out.SetParentSpanID(pcommon.SpanID(mustHex(sp.ParentID, 8)))
	}
	out.SetName(sp.Name)
	out.SetKind(sp.Kind)
	out.SetStartTimestamp(pcommon.NewTimestampFromTime(sp.Start))
	out.SetEndTimestamp(pcommon.NewTimestampFromTime(sp.End))
	out.Status().SetCode(sp.Status)
	out.Status().SetMessage(sp.Message)
	mustFromRaw(out.Attributes(), sp.Attrs)
	for _, ev := range sp.Events {
		e := out.Events().AppendEmpty()
		e.SetName(ev.Name)
		e.SetTimestamp(pcommon.NewTimestampFromTime(ev.Time))
		mustFromRaw(e.Attributes(), ev.Attrs)
	}
}

func mustFromRaw(m pcommon.Map, raw map[string]any) {
	if len(raw) == 0 {
		return
	}
	if err := m.FromRaw(raw); err != nil {
		panic(fmt.Sprintf("storetest: attributes %v: %v", raw, err))
	}
}

func mustHex(s string, n int) []byte {
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != n {
		panic(fmt.Sprintf("storetest: id %q is not %d bytes of hex", s, n))
	}
	return b
}

// Stored converts sent with the gateway's converter (convert.FromOTLP) into
// the rows the gateway stores, created at now. A span the converter rejects
// is a bug in the caller: it panics.
func Stored(now time.Time, sent ...Sent) []model.Span {
	spans, rejected := convert.FromOTLP(OTLP(sent...), now, convert.Limits{})
	if len(rejected) > 0 {
		panic(fmt.Sprintf("storetest: converter rejected %v", rejected))
	}
	return spans
}
