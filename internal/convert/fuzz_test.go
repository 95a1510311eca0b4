package convert

import (
	"fmt"
	"strings"

	"encoding/json"
	"github.com/kern-agents/trace-gateway/internal/model"
	"testing"

	"go.opentelemetry.io/collector/pdata/ptrace"
)

// FuzzFromOTLP feeds arbitrary protobuf to the converter: whatever pdata
// accepts must convert without panicking, every stored row must carry valid
// JSON, and ToOTLP must read every row back.
func FuzzFromOTLP(f *testing.F) {
	for _, td := range []ptrace.Traces{richTraces(), withDuplicateAttr(&testing.T{})} {
		b, err := (&ptrace.ProtoMarshaler{}).MarshalTraces(td)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		td, err := (&ptrace.ProtoUnmarshaler{}).UnmarshalTraces(data)
		if err != nil {
			return
		}
		spans, rej := FromOTLP(td, testNow, Limits{MaxAttrValueBytes: 64, MaxAttributes: 8})
		if len(spans)+len(rej) != td.SpanCount() {
			t.Fatalf("%d spans + %d rejections, want %d", len(spans), len(rej), td.SpanCount())
		}
		for _, s := range spans {
			if !json.Valid(s.Attributes) {
				t.Fatalf("invalid JSON stored: %q", s.Attributes)
			}
		}
		if _, err := ToOTLP(spans); err != nil {
			t.Fatalf("stored rows do not read back: %v", err)
		}
	})
}

// FuzzToOTLPAttributes feeds arbitrary attribute JSON (as a database could
// hold it) to ToOTLP: it may fail, never panic, and must accept what
// encoding/json reads as an object of plain attributes.
func FuzzToOTLPAttributes(f *testing.F) {
	spans, _ := FromOTLP(richTraces(), testNow, Limits{})
	for _, s := range spans {
		f.Add(s.Attributes)
	}
	f.Add([]byte(`{"a":"\u00e9\ud83d\ude00","b":[ {} , [] ,null, -0.5e-3 ]}`))
	f.Add([]byte(`{"a":`))
	f.Fuzz(func(t *testing.T, attrs []byte) {
		s := spans[0]
		s.Attributes = attrs
		_, err := ToOTLP([]model.Span{s})
		var m map[string]json.RawMessage
		if err != nil && json.Unmarshal(attrs, &m) == nil && m != nil {
			for k := range m {
				if strings.HasPrefix(k, "kern.") {
					return // the converter's keys have a shape to respect
				}
			}
			t.Fatalf("valid attributes object rejected: %v", err)
		}
	})
}

// FuzzEncodeOTLPMatchesToOTLP holds EncodeOTLP to MarshalTraces(ToOTLP) on
// arbitrary attribute JSON, alone and in the places the converter's keys
// take objects, and on whatever FromOTLP stores from arbitrary protobuf:
// the same error or the same bytes.
func FuzzEncodeOTLPMatchesToOTLP(f *testing.F) {
	for _, s := range fromOTLP(richTraces(), Limits{}) {
		f.Add(s.Attributes, []byte{})
	}
	f.Add([]byte(`{"a":"\u00e9\ud83d\ude00","b":[ {} , [] ,null, -0.5e-3 ],"a":1}`), []byte{})
	f.Add([]byte(`{"a":`), []byte{})
	f.Add([]byte(`[{"name":"e","time":"2025-01-02T03:04:05Z","attributes":{"a":1},"dropped_attributes_count":1}]`), []byte{})
	f.Add([]byte(`{"name":"s","version":"1","attributes":{"a":1},"links":2,"events":3}`), []byte{})
	for _, td := range []ptrace.Traces{richTraces(), withDuplicateAttr(&testing.T{}), limitedTraces()} {
		b, err := (&ptrace.ProtoMarshaler{}).MarshalTraces(td)
		if err != nil {
			f.Fatal(err)
		}
		f.Add([]byte(`{}`), b)
	}
	wraps := []string{
		`{"kern.resource":%s,"x":1}`,
		`{"kern.scope":{"name":"n","attributes":%s}}`,
		`{"kern.events":[{"name":"e","attributes":%s}],"kern.links":[{"trace_id":"` +
			strings.Repeat("ab", 16) + `","span_id":"` + strings.Repeat("cd", 8) + `","attributes":%[1]s}]}`,
		`{"v":[%s],"w":{"k":%[1]s}}`,
		`{"kern.events":%s,"kern.links":%[1]s,"kern.dropped":%[1]s}`,
		`{"kern.links":%s}`,
		`{"kern.dropped":%s,"kern.scope":%[1]s}`,
	}
	f.Fuzz(func(t *testing.T, attrs, pb []byte) {
		s, other := row(0, ""), row(1, `{"x":1}`)
		s.Attributes = attrs
		checkEncode(t, []model.Span{s, other})
		for _, wrap := range wraps {
			s.Attributes = fmt.Appendf(nil, wrap, attrs)
			checkEncode(t, []model.Span{s})
		}
		if len(pb) == 0 {
			return
		}
		td, err := (&ptrace.ProtoUnmarshaler{}).UnmarshalTraces(pb)
		if err != nil {
			return
		}
		spans, _ := FromOTLP(td, testNow, Limits{MaxAttrValueBytes: 200, MaxAttributes: 16})
		checkEncode(t, spans)
		s.Attributes = attrs
		checkEncode(t, append(spans, s))
	})
}
