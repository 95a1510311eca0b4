package facts

import (
	"encoding/json"
	"strings"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// The Put helpers add a vendor attribute unless the sender already set that
// key (the sender's own value wins) or the value is empty.

// PutStr adds key=value.
func PutStr(a pcommon.Map, key, value string) {
	if value != "" && vacant(a, key) {
		a.PutStr(key, value)
	}
}

// PutInt adds key=value when ok.
func PutInt(a pcommon.Map, key string, value int64, ok bool) {
	if ok && vacant(a, key) {
		a.PutInt(key, value)
	}
}

// PutDouble adds key=value when ok.
func PutDouble(a pcommon.Map, key string, value float64, ok bool) {
	if ok && vacant(a, key) {
		a.PutDouble(key, value)
	}
}

// vacant reports whether the sender left key unset.
func vacant(a pcommon.Map, key string) bool {
	_, exists := a.Get(key)
	return !exists
}

// IsJSON reports whether s is a JSON object or array (as opposed to plain
// text that happens to be a valid JSON scalar).
func IsJSON(s string) bool {
	t := strings.TrimSpace(s)
	return (strings.HasPrefix(t, "{") || strings.HasPrefix(t, "[")) && json.Valid([]byte(t))
}

// JSONValue renders s as a JSON document: objects and arrays as they are,
// anything else as a JSON string.
func JSONValue(s string) string {
	if IsJSON(s) {
		return strings.TrimSpace(s)
	}
	b, _ := json.Marshal(s)
	return string(b)
}

// MarshalJSON renders v as JSON text (for maps of scalars built by the
// mappings; it cannot fail for those).
func MarshalJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return ""
	}
	return string(b)
}

// EnsureExceptionEvent adds an OTel "exception" event (exception.type,
// exception.message) when the span has exception facts but no such event,
// so vendors that read exceptions from events (LangSmith, MLflow, Logfire,
// OpenInference) show it.
func EnsureExceptionEvent(span ptrace.Span, f Facts) {
	if f.ExceptionType == "" && f.ExceptionMessage == "" {
		return
	}
	for _, ev := range span.Events().All() {
		if ev.Name() == "exception" {
			return
		}
	}
	ev := span.Events().AppendEmpty()
	ev.SetName("exception")
	ev.SetTimestamp(span.EndTimestamp())
	if f.ExceptionType != "" {
		ev.Attributes().PutStr("exception.type", f.ExceptionType)
	}
	if f.ExceptionMessage != "" {
		ev.Attributes().PutStr("exception.message", f.ExceptionMessage)
	}
}
