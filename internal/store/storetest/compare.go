package storetest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/big"
	"reflect"
	"strconv"

	"github.com/kern-agents/trace-gateway/internal/model"
)

// SameJSON reports whether a and b hold the same JSON value. Numbers compare
// by exact value (integers beyond 2^53 too), not by spelling, because
// PostgreSQL's jsonb re-renders them; key order and spacing do not matter.
// Two empty inputs are equal (both stored as NULL).
func SameJSON(a, b []byte) bool {
	if len(a) == 0 || len(b) == 0 {
		return len(a) == len(b)
	}
	va, err1 := decodeJSON(a)
	vb, err2 := decodeJSON(b)
	return err1 == nil && err2 == nil && reflect.DeepEqual(va, vb)
}

func decodeJSON(b []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	return normalize(v), nil
}

func normalize(v any) any {
	switch x := v.(type) {
	case json.Number:
		// The exact value, however it is spelled: 1e3, 1000 and 1000.0
		// are the same number.
		if r, ok := new(big.Rat).SetString(x.String()); ok {
			return r.RatString()
		}
		return x.String()
	case []any:
		for i := range x {
			x[i] = normalize(x[i])
		}
	case map[string]any:
		for k := range x {
			x[k] = normalize(x[k])
		}
	}
	return v
}

var spanFieldNames = []string{"span_id", "trace_id", "parent_span_id", "name", "span_kind",
	"status_code", "status_message", "start_time", "end_time", "duration_ms", "created_at"}

func spanFields(s model.Span) []string {
	return []string{s.SpanID, s.TraceID, s.ParentSpanID, s.Name, s.SpanKind, s.StatusCode,
		s.StatusMessage, s.StartTime, s.EndTime, strconv.FormatInt(s.DurationMS, 10), s.CreatedAt}
}

// SpanDiff describes how got differs from want; "" when they are the same row.
func SpanDiff(want, got model.Span) string {
	w, g := spanFields(want), spanFields(got)
	for i := range w {
		if w[i] != g[i] {
			return fmt.Sprintf("span %s: %s = %q, want %q", want.SpanID, spanFieldNames[i], g[i], w[i])
		}
	}
	if !SameJSON(want.Attributes, got.Attributes) {
		return fmt.Sprintf("span %s: attributes = %s, want %s", want.SpanID, got.Attributes, want.Attributes)
	}
	return ""
}
