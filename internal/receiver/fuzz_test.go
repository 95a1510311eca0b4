package receiver

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/kern-agents/trace-gateway/internal/convert"
)

// fuzzDecode checks the invariants of the HTTP/gRPC decode path on any
// input: no panic, and every row it produces is storable.
func fuzzDecode(t *testing.T, enc wireFormat, body []byte) {
	spans, rejected, err := Options{Now: func() time.Time { return testNow }, Limits: convert.Limits{MaxAttrValueBytes: 128, MaxAttributes: 16}}.withDefaults().decode(context.Background(), enc, body)
	if err != nil {
		if len(spans) != 0 || len(rejected) != 0 {
			t.Fatalf("error %v with %d spans, %d rejections", err, len(spans), len(rejected))
		}
		return
	}
	for _, s := range spans {
		if len(s.TraceID) != 32 || len(s.SpanID) != 16 || (s.ParentSpanID != "" && len(s.ParentSpanID) != 16) {
			t.Fatalf("bad ids in stored row: %+v", s)
		}
		if !json.Valid(s.Attributes) {
			t.Fatalf("invalid attributes JSON: %q", s.Attributes)
		}
	}
	_ = partialSuccess(rejected)
}

func FuzzDecodeProto(f *testing.F) {
	f.Add(protoBody(f, testTraces(2)))
	f.Add(badIDsProto(f))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, body []byte) { fuzzDecode(t, encProto, body) })
}

func FuzzDecodeJSON(f *testing.F) {
	f.Add(jsonBody(f, testTraces(2)))
	f.Add([]byte(`{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"0102","spanId":"0102030405060708","kind":"SPAN_KIND_SERVER",
		"links":[{"traceId":"01","spanId":"02"}],"attributes":[{"key":"k","value":{"intValue":"9007199254740993"}}]}]}]}]}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, body []byte) { fuzzDecode(t, encJSON, body) })
}
