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

// Field numbers on the paths from an ExportTraceServiceRequest to its
// attribute values (opentelemetry-proto common/v1, resource/v1, trace/v1).
const (
	fieldResource        protowire.Number = 1  // ResourceSpans.resource
	fieldResourceAttrs   protowire.Number = 1  // Resource.attributes
	fieldScope           protowire.Number = 1  // ScopeSpans.scope
	fieldScopeAttrs      protowire.Number = 3  // InstrumentationScope.attributes
	fieldSpanAttrs       protowire.Number = 9  // Span.attributes
	fieldSpanEvents      protowire.Number = 11 // Span.events
	fieldSpanLinks       protowire.Number = 13 // Span.links
	fieldEventAttrs      protowire.Number = 3  // Span.Event.attributes
	fieldLinkAttrs       protowire.Number = 4  // Span.Link.attributes
	fieldKeyValueValue   protowire.Number = 2  // KeyValue.value
	fieldAnyArray        protowire.Number = 5  // AnyValue.array_value
	fieldAnyKvlist       protowire.Number = 6  // AnyValue.kvlist_value
	fieldArrayValues     protowire.Number = 1  // ArrayValue.values
	fieldKeyValueListVal protowire.Number = 1  // KeyValueList.values
)

// TruncateDeepValues keeps at most keep arrays or kvlists nested in each
// other in every span, resource, scope, event and link attribute value of
// request, and empties the container one level further down. It returns
// request itself and false when there is nothing to cut.
//
// pdata refuses a whole request whose values nest deeper than its recursion
// limit of 100 messages (about 49 arrays or 33 kvlists); the converter
// stores containers past its own limit as null and lists them in
// kern.truncated, so cutting there first loses nothing. Only the levels
// above the cut are walked: what lies below is skipped as opaque bytes, so
// any depth that fits in the request costs bounded time and stack.
func TruncateDeepValues(request []byte, keep int) ([]byte, bool, error) {
	t := truncator{keep: keep}
	out, changed, err := rewrite(request, func(num protowire.Number, v []byte) ([]byte, bool, error) {
		if num != fieldResourceSpans {
			return v, false, nil
		}
		return t.resourceSpans(v)
	})
	if err != nil {
		return request, false, fmt.Errorf("decode export request: %w", err)
	}
	return out, changed, nil
}

type truncator struct{ keep int }

func (t truncator) resourceSpans(b []byte) ([]byte, bool, error) {
	return rewrite(b, func(num protowire.Number, v []byte) ([]byte, bool, error) {
		switch num {
		case fieldResource:
			return rewrite(v, t.attributes(fieldResourceAttrs))
		case fieldScopeSpans:
			return t.scopeSpans(v)
		}
		return v, false, nil
	})
}

func (t truncator) scopeSpans(b []byte) ([]byte, bool, error) {
	return rewrite(b, func(num protowire.Number, v []byte) ([]byte, bool, error) {
		switch num {
		case fieldScope:
			return rewrite(v, t.attributes(fieldScopeAttrs))
		case fieldSpans:
			return t.span(v)
		}
		return v, false, nil
	})
}

func (t truncator) span(b []byte) ([]byte, bool, error) {
	return rewrite(b, func(num protowire.Number, v []byte) ([]byte, bool, error) {
		switch num {
		case fieldSpanAttrs:
			return t.keyValue(v, 0)
		case fieldSpanEvents:
			return rewrite(v, t.attributes(fieldEventAttrs))
		case fieldSpanLinks:
			return rewrite(v, t.attributes(fieldLinkAttrs))
		}
		return v, false, nil
	})
}

// attributes rewrites the KeyValue fields num of a message.
func (t truncator) attributes(num protowire.Number) func(protowire.Number, []byte) ([]byte, bool, error) {
	return func(n protowire.Number, v []byte) ([]byte, bool, error) {
		if n != num {
			return v, false, nil
		}
		return t.keyValue(v, 0)
	}
}

func (t truncator) keyValue(b []byte, depth int) ([]byte, bool, error) {
	return rewrite(b, func(num protowire.Number, v []byte) ([]byte, bool, error) {
		if num != fieldKeyValueValue {
			return v, false, nil
		}
		return t.anyValue(v, depth)
	})
}

// anyValue rewrites an AnyValue holding the depth-th nested container (0
// for an attribute's own value): emptied from depth keep on.
func (t truncator) anyValue(b []byte, depth int) ([]byte, bool, error) {
	return rewrite(b, func(num protowire.Number, v []byte) ([]byte, bool, error) {
		if num != fieldAnyArray && num != fieldAnyKvlist {
			return v, false, nil
		}
		if depth >= t.keep {
			return v[:0], len(v) > 0, nil
		}
		return rewrite(v, func(n protowire.Number, e []byte) ([]byte, bool, error) {
			switch {
			case num == fieldAnyArray && n == fieldArrayValues:
				return t.anyValue(e, depth+1)
			case num == fieldAnyKvlist && n == fieldKeyValueListVal:
				return t.keyValue(e, depth+1)
			}
			return e, false, nil
		})
	})
}

// rewrite returns message b with each length-delimited field replaced by
// what fn returns for it; b itself (not a copy) when fn changed nothing.
func rewrite(b []byte, fn func(num protowire.Number, v []byte) ([]byte, bool, error)) ([]byte, bool, error) {
	var out []byte // nil until the first change
	rest := b
	for len(rest) > 0 {
		start := len(b) - len(rest)
		num, typ, l := protowire.ConsumeTag(rest)
		if l < 0 {
			return b, false, protowire.ParseError(l)
		}
		if typ != protowire.BytesType {
			n := protowire.ConsumeFieldValue(num, typ, rest[l:])
			if n < 0 {
				return b, false, protowire.ParseError(n)
			}
			rest = rest[l+n:]
			if out != nil {
				out = append(out, b[start:len(b)-len(rest)]...)
			}
			continue
		}
		v, n := protowire.ConsumeBytes(rest[l:])
		if n < 0 {
			return b, false, protowire.ParseError(n)
		}
		rest = rest[l+n:]
		nv, changed, err := fn(num, v)
		if err != nil {
			return b, false, err
		}
		switch {
		case changed && out == nil:
			out = append(make([]byte, 0, len(b)), b[:start]...)
			fallthrough
		case changed:
			out = protowire.AppendTag(out, num, protowire.BytesType)
			out = protowire.AppendBytes(out, nv)
		case out != nil:
			out = append(out, b[start:len(b)-len(rest)]...)
		}
	}
	if out == nil {
		return b, false, nil
	}
	return out, true, nil
}
