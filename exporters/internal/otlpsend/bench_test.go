package otlpsend

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// benchSpans is the batch size of BenchmarkExportPaths: a full chunk as the
// host sends it.
const benchSpans = 512

// benchBatch is n LLM spans with ten attributes each, one of them a 1 KB
// prompt, as agent frameworks record them.
func benchBatch(n int) ptrace.Traces {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "agentos")
	rs.Resource().Attributes().PutStr("telemetry.sdk.language", "python")
	ss := rs.ScopeSpans().AppendEmpty()
	ss.Scope().SetName("openinference.instrumentation.agno")
	start := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	prompt := strings.Repeat("Plan a day in Lisbon with a tram ride. ", 27)[:1024]
	for i := range n {
		s := ss.Spans().AppendEmpty()
		s.SetTraceID(pcommon.TraceID([16]byte{0x4b, 0xf9, byte(i / 64)}))
		s.SetSpanID(pcommon.SpanID([8]byte{0xa0, byte(i >> 8), byte(i)}))
		s.SetParentSpanID(pcommon.SpanID([8]byte{0xa0, 0xff, byte(i / 64)}))
		s.SetName("OpenAIChat.invoke")
		s.SetKind(ptrace.SpanKindClient)
		s.SetStartTimestamp(pcommon.NewTimestampFromTime(start.Add(time.Duration(i) * time.Millisecond)))
		s.SetEndTimestamp(pcommon.NewTimestampFromTime(start.Add(time.Duration(i)*time.Millisecond + 900*time.Millisecond)))
		s.Status().SetCode(ptrace.StatusCodeOk)
		a := s.Attributes()
		a.PutStr("openinference.span.kind", "LLM")
		a.PutStr("input.value", prompt)
		a.PutStr("output.value", "Take tram 28 from Martim Moniz, then walk to the castle.")
		a.PutStr("llm.model_name", "gpt-4o-mini")
		a.PutStr("llm.provider", "openai")
		a.PutInt("llm.token_count.prompt", 240)
		a.PutInt("llm.token_count.completion", 45)
		a.PutDouble("llm.invocation_parameters.temperature", 0.2)
		a.PutStr("session.id", fmt.Sprintf("session-%d", i%8))
		a.PutStr("user.id", "user-7")
	}
	return td
}

// BenchmarkExportPaths compares a batch's trip through the plugin: Export
// (after the decode into pdata that Serve makes for it) against
// ExportEncoded, to an OTLP/HTTP endpoint on loopback that discards the body.
func BenchmarkExportPaths(b *testing.B) {
	request := encodeBatch(b, benchBatch(benchSpans))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.WriteHeader(http.StatusOK)
	}))
	b.Cleanup(srv.Close)

	paths := []struct {
		name   string
		export func(context.Context, *Adapter) error
	}{
		{"Export", func(ctx context.Context, a *Adapter) error {
			td, err := (&ptrace.ProtoUnmarshaler{}).UnmarshalTraces(request)
			if err != nil {
				return err
			}
			return a.Export(ctx, td)
		}},
		{"ExportEncoded", func(ctx context.Context, a *Adapter) error { return a.ExportEncoded(ctx, request) }},
	}
	for _, compression := range []string{"none", "gzip"} {
		for _, p := range paths {
			b.Run(p.name+"/"+compression, func(b *testing.B) {
				a := configured(b, httpAdapter(HTTPOptions{Compression: compression}, nil), srv.URL)
				ctx := context.Background()
				b.SetBytes(int64(len(request)))
				b.ReportAllocs()
				batches := 0
				for b.Loop() {
					if err := p.export(ctx, a); err != nil {
						b.Fatal(err)
					}
					batches++
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(batches*benchSpans), "ns/span")
			})
		}
	}
}
