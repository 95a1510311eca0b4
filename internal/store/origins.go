package store

import (
	"bytes"
	"encoding/json"

	"github.com/kern-agents/trace-gateway/internal/model"
)

// UsualOrigins proposes each trace's usual origin (TraceResourcesTable)
// from a batch: the origin of the trace's root span when the batch holds
// it, else of the trace's first span; "" for spans without one. The store
// keeps the proposal of the first batch that stores the trace.
func UsualOrigins(batch []model.Span) map[string]string {
	out := make(map[string]string)
	rooted := make(map[string]bool) // the trace's proposal is its first root's
	for i := range batch {
		sp := &batch[i]
		if rooted[sp.TraceID] {
			continue
		}
		_, seen := out[sp.TraceID]
		if sp.ParentSpanID == "" {
			rooted[sp.TraceID] = true
		} else if seen {
			continue
		}
		out[sp.TraceID] = OriginID(sp)
	}
	return out
}

// OriginID is the id of the span's Origin, "" for none.
func OriginID(sp *model.Span) string {
	if sp.Origin == nil {
		return ""
	}
	return sp.Origin.ID
}

// StoredAttributes are the span's attributes as stored, given its trace's
// usual origin: with a kern.resource reference only when the span's origin
// is not the usual one. The converter leaves the reference out, so the
// usual case stores the attributes as they are; attributes that hold a
// kern.resource already (a row read back from a store, or one stored before
// origins were kept apart, with its resource inline) are kept as they are.
func StoredAttributes(sp *model.Span, usual string) []byte {
	id := OriginID(sp)
	a := sp.Attributes
	if id == usual || hasResourceKey(a) {
		return a
	}
	out := make([]byte, 0, len(a)+len(model.KeyResource)+len(id)+6)
	switch {
	case len(a) < 2 || a[len(a)-1] != '}':
		out = append(out, '{') // no attributes (or not an object: never from the converter)
	case len(a) == 2:
		out = append(out, a[:1]...)
	default:
		out = append(out, a[:len(a)-1]...)
		out = append(out, ',')
	}
	out = append(out, '"')
	out = append(out, model.KeyResource...)
	out = append(out, `":"`...)
	out = append(out, id...) // hex: nothing to escape
	out = append(out, `"}`...)
	return out
}

var resourceKey = []byte(`"` + model.KeyResource + `"`)

// hasResourceKey reports whether the attributes object has a top-level
// kern.resource member.
func hasResourceKey(a []byte) bool {
	if !bytes.Contains(a, resourceKey) {
		return false
	}
	var top map[string]json.RawMessage
	if json.Unmarshal(a, &top) != nil {
		return false
	}
	_, ok := top[model.KeyResource]
	return ok
}
