package receiver

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/kern-agents/trace-gateway/internal/model"
)

// fakeSink stands in for the batcher: it records what it is given and
// answers with err (or panics when panicMsg is set).
type fakeSink struct {
	mu       sync.Mutex
	got      [][]model.Span
	err      error
	panicMsg string
}

func (f *fakeSink) Submit(_ context.Context, spans []model.Span) error {
	if f.panicMsg != "" {
		panic(f.panicMsg)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.got = append(f.got, spans)
	return f.err
}

func (f *fakeSink) spans() []model.Span {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []model.Span
	for _, b := range f.got {
		out = append(out, b...)
	}
	return out
}

func (f *fakeSink) calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.got)
}

func (f *fakeSink) names() []string {
	var out []string
	for _, s := range f.spans() {
		out = append(out, s.Name)
	}
	return out
}

var testNow = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

func testOptions() Options {
	return Options{
		Logger: slog.New(slog.DiscardHandler),
		Now:    func() time.Time { return testNow },
	}
}

// testTraces returns n valid spans named span0..span{n-1}.
func testTraces(n int) ptrace.Traces {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "agent-os")
	ss := rs.ScopeSpans().AppendEmpty()
	for i := range n {
		sp := ss.Spans().AppendEmpty()
		sp.SetTraceID(pcommon.TraceID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16})
		sp.SetSpanID(pcommon.SpanID{1, 2, 3, 4, 5, 6, 7, byte(i + 1)})
		sp.SetName("span" + string(rune('0'+i)))
		sp.SetStartTimestamp(pcommon.NewTimestampFromTime(testNow))
		sp.SetEndTimestamp(pcommon.NewTimestampFromTime(testNow.Add(time.Second)))
		sp.Attributes().PutInt("i", int64(i))
	}
	return td
}

func protoBody(t testing.TB, td ptrace.Traces) []byte {
	t.Helper()
	b, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func jsonBody(t testing.TB, td ptrace.Traces) []byte {
	t.Helper()
	b, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func gzipped(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func readAll(t testing.TB, r io.Reader) []byte {
	t.Helper()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func attrs(t testing.TB, s model.Span) map[string]any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(s.Attributes))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("span %s attributes %s: %v", s.SpanID, s.Attributes, err)
	}
	return m
}

// badIDsProto encodes a request pdata cannot decode: spans "ok1" and "ok2"
// are valid, "short" has a 15-byte trace id and "long" a 9-byte span id.
func badIDsProto(t testing.TB) []byte {
	t.Helper()
	tid := bytes.Repeat([]byte{0xab}, 16)
	sid := func(b byte) []byte { return []byte{1, 2, 3, 4, 5, 6, 7, b} }
	req := &coltrace.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{{
		ScopeSpans: []*tracepb.ScopeSpans{{Spans: []*tracepb.Span{
			{Name: "ok1", TraceId: tid, SpanId: sid(1)},
			{Name: "short", TraceId: tid[:15], SpanId: sid(2)},
			{Name: "long", TraceId: tid, SpanId: append(sid(3), 9)},
			{Name: "ok2", TraceId: tid, SpanId: sid(4), ParentSpanId: sid(1)},
		}}},
	}}}
	b, err := proto.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
