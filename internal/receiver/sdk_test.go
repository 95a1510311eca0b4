package receiver

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/kern-agents/trace-gateway/internal/model"
)

// emit records a parent and a child span through a real SDK pipeline and
// returns their span contexts.
func emit(t *testing.T, exp sdktrace.SpanExporter) (parent, child trace.SpanContext) {
	t.Helper()
	res := resource.NewSchemaless(attribute.String("service.name", "agent-os"))
	tp := sdktrace.NewTracerProvider(sdktrace.WithResource(res), sdktrace.WithSyncer(exp))
	tr := tp.Tracer("agno", trace.WithInstrumentationVersion("1.4.0"))

	ctx, p := tr.Start(context.Background(), "Agent.run", trace.WithSpanKind(trace.SpanKindServer))
	p.SetAttributes(attribute.String("session.id", "s-1"), attribute.Int64("big", 1<<53+1))
	_, c := tr.Start(ctx, "tool.call", trace.WithSpanKind(trace.SpanKindClient))
	c.SetAttributes(
		attribute.StringSlice("args", []string{"a", "b"}),
		attribute.Float64("score", 0.5),
		attribute.Bool("cached", false),
	)
	c.AddEvent("exception", trace.WithAttributes(attribute.String("exception.type", "ValueError")))
	c.SetStatus(otelcodes.Error, "tool failed")
	c.End()
	p.End()

	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tp.Shutdown(shutdownCtx); err != nil {
		t.Fatalf("SDK export failed: %v", err)
	}
	return p.SpanContext(), c.SpanContext()
}

func checkDelivered(t *testing.T, sink *fakeSink, parent, child trace.SpanContext) {
	t.Helper()
	byID := map[string]model.Span{}
	for _, s := range sink.spans() {
		byID[s.SpanID] = s
	}
	if len(byID) != 2 {
		t.Fatalf("sink got %d spans, want 2", len(byID))
	}
	p, ok := byID[parent.SpanID().String()]
	if !ok {
		t.Fatal("parent span missing")
	}
	c, ok := byID[child.SpanID().String()]
	if !ok {
		t.Fatal("child span missing")
	}
	if p.TraceID != parent.TraceID().String() || c.TraceID != p.TraceID {
		t.Errorf("trace ids %s / %s, want %s", p.TraceID, c.TraceID, parent.TraceID())
	}
	if p.ParentSpanID != "" || c.ParentSpanID != p.SpanID {
		t.Errorf("parents %q / %q", p.ParentSpanID, c.ParentSpanID)
	}
	if p.Name != "Agent.run" || p.SpanKind != "SERVER" || c.SpanKind != "CLIENT" {
		t.Errorf("names/kinds %s %s %s", p.Name, p.SpanKind, c.SpanKind)
	}
	if c.StatusCode != model.StatusError || c.StatusMessage != "tool failed" {
		t.Errorf("child status %s %q", c.StatusCode, c.StatusMessage)
	}
	if p.StartTime > c.StartTime || p.EndTime < c.EndTime || p.CreatedAt != model.FormatTime(testNow) {
		t.Errorf("times: parent %s..%s child %s..%s created %s", p.StartTime, p.EndTime, c.StartTime, c.EndTime, p.CreatedAt)
	}

	pa, ca := attrs(t, p), attrs(t, c)
	if pa["session.id"] != "s-1" || pa["big"].(interface{ String() string }).String() != "9007199254740993" {
		t.Errorf("parent attributes %s", p.Attributes)
	}
	if p.Origin == nil || !strings.Contains(string(p.Origin.Resource), `"service.name":"agent-os"`) ||
		!strings.Contains(string(p.Origin.Scope), `"name":"agno","version":"1.4.0"`) || c.Origin == nil || c.Origin.ID != p.Origin.ID {
		t.Errorf("origins %+v and %+v, want the same for both", p.Origin, c.Origin)
	}
	if _, ok := pa[model.KeyResource]; ok { // the store adds it, only where needed
		t.Errorf("parent attributes %s reference the origin", p.Attributes)
	}
	for _, want := range []string{`"args":["a","b"]`, `"score":0.5`, `"cached":false`, `"exception.type":"ValueError"`} {
		if !strings.Contains(string(c.Attributes), want) {
			t.Errorf("child attributes %s lack %s", c.Attributes, want)
		}
	}
	if evs, _ := ca[model.KeyEvents].([]any); len(evs) != 1 {
		t.Errorf("child events %v", ca[model.KeyEvents])
	}
}

func TestSDKExporterHTTP(t *testing.T) {
	for _, compression := range []otlptracehttp.Compression{otlptracehttp.NoCompression, otlptracehttp.GzipCompression} {
		sink := &fakeSink{}
		srv := httptest.NewServer(NewHTTPHandler(testOptions(), sink))
		exp, err := otlptracehttp.New(context.Background(),
			otlptracehttp.WithEndpoint(strings.TrimPrefix(srv.URL, "http://")),
			otlptracehttp.WithInsecure(),
			otlptracehttp.WithCompression(compression),
		)
		if err != nil {
			t.Fatal(err)
		}
		parent, child := emit(t, exp)
		checkDelivered(t, sink, parent, child)
		srv.Close()
	}
}

func TestSDKExporterGRPC(t *testing.T) {
	for _, compressor := range []string{"", "gzip"} {
		sink := &fakeSink{}
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := NewGRPCServer(testOptions(), sink)
		go func() { _ = srv.Serve(lis) }()
		opts := []otlptracegrpc.Option{otlptracegrpc.WithEndpoint(lis.Addr().String()), otlptracegrpc.WithInsecure()}
		if compressor != "" {
			opts = append(opts, otlptracegrpc.WithCompressor(compressor))
		}
		exp, err := otlptracegrpc.New(context.Background(), opts...)
		if err != nil {
			t.Fatal(err)
		}
		parent, child := emit(t, exp)
		checkDelivered(t, sink, parent, child)
		srv.Stop()
	}
}

// TestSDKExporterHTTPBackpressure checks that the SDK sees 429 with
// Retry-After and retries until the gateway accepts.
func TestSDKExporterHTTPBackpressure(t *testing.T) {
	sink := &fakeSink{}
	h := NewHTTPHandler(testOptions(), sink)
	var refused atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if refused.CompareAndSwap(0, 1) {
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		h.ServeHTTP(w, r)
	}))
	defer srv.Close()
	exp, err := otlptracehttp.New(context.Background(),
		otlptracehttp.WithEndpoint(strings.TrimPrefix(srv.URL, "http://")),
		otlptracehttp.WithInsecure(),
		otlptracehttp.WithRetry(otlptracehttp.RetryConfig{Enabled: true, InitialInterval: time.Millisecond, MaxInterval: 10 * time.Millisecond, MaxElapsedTime: 5 * time.Second}),
	)
	if err != nil {
		t.Fatal(err)
	}
	parent, child := emit(t, exp)
	checkDelivered(t, sink, parent, child)
	if refused.Load() != 1 {
		t.Errorf("the 429 was not exercised")
	}
}
