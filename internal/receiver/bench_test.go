package receiver

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/kern-agents/trace-gateway/internal/model"
)

type discardSink struct{}

func (discardSink) Submit(context.Context, []model.Span) error { return nil }

// benchRequest is 100 spans with a dozen attributes each.
func benchRequest() ptrace.Traces {
	td := testTraces(1)
	spans := td.ResourceSpans().At(0).ScopeSpans().At(0).Spans()
	for i := range 99 {
		sp := spans.AppendEmpty()
		spans.At(0).CopyTo(sp)
		sp.SetSpanID(pcommon.SpanID{9, 9, 9, 9, 9, 9, byte(i), 1})
	}
	for i := range spans.Len() {
		a := spans.At(i).Attributes()
		a.PutStr("gen_ai.operation.name", "chat")
		a.PutStr("gen_ai.request.model", "gpt-4o")
		a.PutInt("gen_ai.usage.input_tokens", 1200)
		a.PutInt("gen_ai.usage.output_tokens", 230)
		a.PutStr("session.id", "session-1")
		a.PutStr("input.value", `[{"role":"user","content":"What is the weather in Paris today?"}]`)
		a.PutStr("output.value", "Sunny, 21°C.")
		a.PutDouble("gen_ai.request.temperature", 0.2)
	}
	return td
}

func benchmarkHTTP(b *testing.B, contentType string, body []byte, encoding string) {
	h := NewHTTPHandler(testOptions(), discardSink{})
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, TracesPath, bytes.NewReader(body))
		req.Header.Set("Content-Type", contentType)
		if encoding != "" {
			req.Header.Set("Content-Encoding", encoding)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
	}
	b.ReportMetric(float64(b.N*100)/b.Elapsed().Seconds(), "spans/s")
}

func BenchmarkHTTPProto(b *testing.B) {
	benchmarkHTTP(b, contentTypeProto, protoBody(b, benchRequest()), "")
}

func BenchmarkHTTPProtoGzip(b *testing.B) {
	benchmarkHTTP(b, contentTypeProto, gzipped(b, protoBody(b, benchRequest())), "gzip")
}

func BenchmarkHTTPJSON(b *testing.B) {
	benchmarkHTTP(b, contentTypeJSON, jsonBody(b, benchRequest()), "")
}
