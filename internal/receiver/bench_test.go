package receiver

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"

	"github.com/kern-agents/trace-gateway/internal/model"
	"github.com/kern-agents/trace-gateway/internal/procfs"
	"github.com/kern-agents/trace-gateway/internal/sim"
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

// simRequests is gatewaybench's load: simulated agent runs as the
// OpenTelemetry SDK exports them, cut into requests of about 500 spans.
var simRequests = sync.OnceValues(func() ([][]byte, error) {
	td, err := sim.Capture(context.Background(), sim.Options{Count: 400, Seed: 7, ErrorRatio: 0.1, Concurrency: 2})
	if err != nil {
		return nil, err
	}
	var reqs [][]byte
	req := ptrace.NewTraces()
	flush := func() error {
		b, err := ptraceotlp.NewExportRequestFromTraces(req).MarshalProto()
		reqs = append(reqs, b)
		req = ptrace.NewTraces()
		return err
	}
	rss := td.ResourceSpans()
	for i := range rss.Len() {
		rs := rss.At(i)
		for j := range rs.ScopeSpans().Len() {
			ss := rs.ScopeSpans().At(j)
			out := req.ResourceSpans().AppendEmpty()
			rs.Resource().CopyTo(out.Resource())
			outSS := out.ScopeSpans().AppendEmpty()
			ss.Scope().CopyTo(outSS.Scope())
			for k := range ss.Spans().Len() {
				ss.Spans().At(k).CopyTo(outSS.Spans().AppendEmpty())
				if req.SpanCount() == 500 {
					if err := flush(); err != nil {
						return nil, err
					}
					out = req.ResourceSpans().AppendEmpty()
					rs.Resource().CopyTo(out.Resource())
					outSS = out.ScopeSpans().AppendEmpty()
					ss.Scope().CopyTo(outSS.Scope())
				}
			}
		}
	}
	if req.SpanCount() > 0 {
		if err := flush(); err != nil {
			return nil, err
		}
	}
	return reqs, nil
})

// BenchmarkHTTPProtoSim is the receiver's share of the gateway's ingest CPU
// (read, decode, convert, annotate) on gatewaybench's load. cpu-ns/span is
// the process's user+system CPU time, garbage collection included, so it
// holds on a busy machine where ns/op does not.
func BenchmarkHTTPProtoSim(b *testing.B) {
	reqs, err := simRequests()
	if err != nil {
		b.Fatal(err)
	}
	spans := 0
	for _, body := range reqs {
		req := ptraceotlp.NewExportRequest()
		if err := req.UnmarshalProto(body); err != nil {
			b.Fatal(err)
		}
		spans += req.Traces().SpanCount()
	}
	h := NewHTTPHandler(testOptions(), discardSink{})
	b.ReportAllocs()
	cpu0 := processCPU(b)
	for b.Loop() {
		for _, body := range reqs {
			req := httptest.NewRequest(http.MethodPost, TracesPath, bytes.NewReader(body))
			req.Header.Set("Content-Type", contentTypeProto)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != http.StatusOK {
				b.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
		}
	}
	cpu := processCPU(b) - cpu0
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N*spans), "cpu-ns/span")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*spans), "ns/span")
}

// processCPU is the user+system CPU time the process has used.
func processCPU(b *testing.B) time.Duration {
	d, err := procfs.CPUTime(os.Getpid())
	if err != nil {
		b.Skipf("process CPU time: %v", err)
	}
	return d
}
