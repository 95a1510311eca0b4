// Package spaninfo describes an OTLP span the way package semantics reads
// one, for the code that holds spans as pdata: the fan-out's routing and
// redaction and the vendor mappings, which compute a span's facts when they
// need them (the gateway stores none).
package spaninfo

import (
	"maps"
	"slices"
	"strings"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/kern-agents/trace-gateway/internal/model"
	"github.com/kern-agents/trace-gateway/internal/semantics"
)

// Info is what semantics reads about sp besides its attributes. resource
// is the span's resource attributes (nil when the caller needs no id that
// the resource could stand in for).
func Info(sp ptrace.Span, resource map[string]any) semantics.Info {
	info := semantics.Info{
		Name:          sp.Name(),
		Kind:          strings.ToUpper(sp.Kind().String()),
		StatusMessage: sp.Status().Message(),
		StartUnixNano: int64(sp.StartTimestamp()),
		EndUnixNano:   int64(sp.EndTimestamp()),
		Resource:      resource,
	}
	switch sp.Status().Code() {
	case ptrace.StatusCodeError:
		info.StatusCode = model.StatusError
	case ptrace.StatusCodeOk:
		info.StatusCode = model.StatusOK
	default:
		info.StatusCode = model.StatusUnset
	}
	if !sp.ParentSpanID().IsEmpty() {
		info.ParentSpanID = sp.ParentSpanID().String()
	}
	// Only "exception" events are read (the exception's type and message).
	for _, ev := range sp.Events().All() {
		if ev.Name() == "exception" {
			info.Events = append(info.Events, semantics.Event{Name: ev.Name(), TimeUnix: int64(ev.Timestamp()), Attributes: ev.Attributes().AsRaw()})
		}
	}
	return info
}

// Derive returns the value the gateway stores under key, one of the keys
// semantics.Annotate adds, for a span with info and attrs but without key:
// the value it derives from the span's other attributes. ok is false when
// it derives none.
func Derive(info semantics.Info, attrs map[string]any, key string) (v any, ok bool) {
	c := maps.Clone(attrs)
	delete(c, key)
	if !slices.Contains(semantics.Annotate(info, c), key) {
		return nil, false
	}
	v, ok = c[key]
	return v, ok && v != nil
}

// Derived reports whether sp holds under key what the gateway derives from
// its other attributes: a value the gateway stored for AgentOS (or one the
// sender sent the same), not a sender's own.
func Derived(sp ptrace.Span, key string) bool {
	cur, ok := sp.Attributes().Get(key)
	if !ok {
		return false
	}
	v, ok := Derive(Info(sp, nil), sp.Attributes().AsRaw(), key)
	return ok && Same(cur, v)
}

// Same reports whether a stored value is v, compared as text (numbers
// travel through JSON on their way from the sender to an exporter).
func Same(cur pcommon.Value, v any) bool {
	if s, ok := v.(string); ok {
		return cur.Type() == pcommon.ValueTypeStr && cur.Str() == s
	}
	w := pcommon.NewValueEmpty()
	if err := w.FromRaw(v); err != nil {
		return false
	}
	return cur.AsString() == w.AsString()
}
