package convert

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/kern-agents/trace-gateway/internal/sim"
)

// benchTraces is a typical agent request: one resource, 100 spans with a
// dozen attributes each, some with an event.
func benchTraces() ptrace.Traces {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	ra := rs.Resource().Attributes()
	ra.PutStr("service.name", "agent-os")
	ra.PutStr("service.version", "2.1.0")
	ra.PutStr("telemetry.sdk.language", "python")
	ra.PutStr("telemetry.sdk.name", "opentelemetry")
	ra.PutStr("host.name", "worker-7")
	ss := rs.ScopeSpans().AppendEmpty()
	ss.Scope().SetName("openinference.instrumentation.agno")
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 100 {
		sp := ss.Spans().AppendEmpty()
		sp.SetTraceID(pcommon.TraceID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, byte(i / 10)})
		sp.SetSpanID(pcommon.SpanID{1, 2, 3, 4, 5, 6, byte(i), 1})
		sp.SetParentSpanID(pcommon.SpanID{1, 2, 3, 4, 5, 6, byte(i), 2})
		sp.SetName("OpenAIChat.invoke")
		sp.SetKind(ptrace.SpanKindClient)
		sp.SetStartTimestamp(pcommon.NewTimestampFromTime(start))
		sp.SetEndTimestamp(pcommon.NewTimestampFromTime(start.Add(time.Duration(i) * time.Millisecond)))
		a := sp.Attributes()
		a.PutStr("openinference.span.kind", "LLM")
		a.PutStr("llm.model_name", "gpt-4o")
		a.PutStr("session.id", "session-"+strconv.Itoa(i%3))
		a.PutStr("user.id", "user-1")
		a.PutInt("llm.token_count.prompt", 1200)
		a.PutInt("llm.token_count.completion", 230)
		a.PutInt("llm.token_count.total", 1430)
		a.PutDouble("llm.invocation_parameters.temperature", 0.2)
		a.PutStr("input.value", `[{"role":"user","content":"What is the weather in Paris today? Please answer briefly."}]`)
		a.PutStr("output.value", "It is sunny and 21°C in Paris today.")
		a.PutStr("input.mime_type", "application/json")
		a.PutBool("llm.stream", false)
		if i%10 == 0 {
			ev := sp.Events().AppendEmpty()
			ev.SetName("exception")
			ev.Attributes().PutStr("exception.type", "TimeoutError")
			ev.Attributes().PutStr("exception.message", "upstream timed out")
		}
	}
	return td
}

func BenchmarkFromOTLP(b *testing.B) {
	td := benchTraces()
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		FromOTLP(td, now, Limits{})
	}
	b.ReportMetric(float64(b.N*td.SpanCount())/b.Elapsed().Seconds(), "spans/s")
}

func BenchmarkToOTLP(b *testing.B) {
	spans, _ := FromOTLP(benchTraces(), time.Now(), Limits{})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ToOTLP(spans); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(spans))/b.Elapsed().Seconds(), "spans/s")
}

// BenchmarkToOTLPMarshal is the fan-out path EncodeOTLP replaces: rebuild
// pdata, then marshal it.
func BenchmarkToOTLPMarshal(b *testing.B) {
	spans, _ := FromOTLP(benchTraces(), time.Now(), Limits{})
	b.ReportAllocs()
	for b.Loop() {
		td, err := ToOTLP(spans)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := (&ptrace.ProtoMarshaler{}).MarshalTraces(td); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(spans))/b.Elapsed().Seconds(), "spans/s")
}

func BenchmarkEncodeOTLP(b *testing.B) {
	spans, _ := FromOTLP(benchTraces(), time.Now(), Limits{})
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := EncodeOTLP(spans); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(spans))/b.Elapsed().Seconds(), "spans/s")
}

// simTraces is gatewaybench's workload: simulated agent runs (agno,
// OpenInference and GenAI conventions mixed) as the OpenTelemetry SDK
// exports them.
var simTraces = sync.OnceValues(func() (ptrace.Traces, error) {
	return sim.Capture(context.Background(), sim.Options{Count: 200, Seed: 7, ErrorRatio: 0.1, Concurrency: 2})
})

func BenchmarkFromOTLPSim(b *testing.B) {
	td, err := simTraces()
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		FromOTLP(td, now, Limits{})
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*td.SpanCount()), "ns/span")
}

// BenchmarkEncodeOTLPSim is the fan-out's encoding of gatewaybench's
// workload: stored rows back to OTLP protobuf.
func BenchmarkEncodeOTLPSim(b *testing.B) {
	td, err := simTraces()
	if err != nil {
		b.Fatal(err)
	}
	spans, _ := FromOTLP(td, time.Now(), Limits{})
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := EncodeOTLP(spans); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(spans)), "ns/span")
}
