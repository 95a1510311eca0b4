// Package otlpwire reads span ids and counts straight off a protobuf OTLP
// ExportTraceServiceRequest, checking the wire format of every message on
// the way down to the spans but building nothing: for code that passes
// requests on and needs only to know what they hold.
package otlpwire

import (
	"fmt"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"google.golang.org/protobuf/encoding/protowire"
)

// Field numbers on the path from an ExportTraceServiceRequest to its span
// ids (opentelemetry-proto collector/trace/v1 and trace/v1).
const (
	fieldResourceSpans protowire.Number = 1 // ExportTraceServiceRequest.resource_spans
	fieldScopeSpans    protowire.Number = 2 // ResourceSpans.scope_spans
	fieldSpans         protowire.Number = 2 // ScopeSpans.spans
	fieldSpanID        protowire.Number = 2 // Span.span_id
)

// EachSpan calls fn with the encoded bytes of every span of request, in
// order. It fails on a request that is not well-formed protobuf down to the
// spans, or when fn fails.
func EachSpan(request []byte, fn func(span []byte) error) error {
	err := eachBytes(request, fieldResourceSpans, func(rs []byte) error {
		return eachBytes(rs, fieldScopeSpans, func(ss []byte) error {
			return eachBytes(ss, fieldSpans, fn)
		})
	})
	if err != nil {
		return fmt.Errorf("decode export request: %w", err)
	}
	return nil
}

// Count is how many spans request holds.
func Count(request []byte) (int, error) {
	n := 0
	err := EachSpan(request, func([]byte) error { n++; return nil })
	return n, err
}

// SpanIDs lists the span ids of request in order. A span without an id
// counts as the zero id, as in pdata.
func SpanIDs(request []byte) ([]pcommon.SpanID, error) {
	var ids []pcommon.SpanID
	err := EachSpan(request, func(sp []byte) error {
		var id pcommon.SpanID
		err := eachBytes(sp, fieldSpanID, func(v []byte) error {
			if len(v) != len(id) && len(v) != 0 {
				return fmt.Errorf("span id of %d bytes", len(v))
			}
			copy(id[:], v) // empty: the zero id
			return nil
		})
		ids = append(ids, id)
		return err
	})
	return ids, err
}

// eachBytes calls fn with every length-delimited field num of message b and
// skips the other fields.
func eachBytes(b []byte, num protowire.Number, fn func([]byte) error) error {
	for len(b) > 0 {
		n, typ, l := protowire.ConsumeTag(b)
		if l < 0 {
			return protowire.ParseError(l)
		}
		b = b[l:]
		if n == num && typ == protowire.BytesType {
			v, l := protowire.ConsumeBytes(b)
			if l < 0 {
				return protowire.ParseError(l)
			}
			if err := fn(v); err != nil {
				return err
			}
			b = b[l:]
			continue
		}
		if l = protowire.ConsumeFieldValue(n, typ, b); l < 0 {
			return protowire.ParseError(l)
		}
		b = b[l:]
	}
	return nil
}
