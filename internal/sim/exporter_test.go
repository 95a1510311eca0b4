package sim

import (
	"context"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	_ "google.golang.org/grpc/encoding/gzip"

	"github.com/kern-agents/trace-gateway/internal/otlpsink"
)

// countingGzip wraps gRPC's gzip codec to count messages the server
// decompressed: gRPC does not expose the request's grpc-encoding header.
type countingGzip struct {
	encoding.Compressor
	decompressed atomic.Int64
}

func (c *countingGzip) Decompress(r io.Reader) (io.Reader, error) {
	c.decompressed.Add(1)
	return c.Compressor.Decompress(r)
}

var grpcGzip = func() *countingGzip {
	c := &countingGzip{Compressor: encoding.GetCompressor("gzip")}
	encoding.RegisterCompressor(c)
	return c
}()

// otlpSink is a minimal OTLP/gRPC receiver counting spans; over HTTP it
// hears from an otlpsink.Sink's hook.
type otlpSink struct {
	ptraceotlp.UnimplementedGRPCServer
	spans   atomic.Int64
	mu      sync.Mutex
	encs    map[string]bool // content/grpc encodings seen
	service map[string]bool
}

func newSink() *otlpSink { return &otlpSink{encs: map[string]bool{}, service: map[string]bool{}} }

func (s *otlpSink) record(td ptrace.Traces, enc string) {
	s.spans.Add(int64(td.SpanCount()))
	s.mu.Lock()
	defer s.mu.Unlock()
	s.encs[enc] = true
	for i := 0; i < td.ResourceSpans().Len(); i++ {
		if v, ok := td.ResourceSpans().At(i).Resource().Attributes().Get("service.name"); ok {
			s.service[v.Str()] = true
		}
	}
}

func (s *otlpSink) Export(_ context.Context, req ptraceotlp.ExportRequest) (ptraceotlp.ExportResponse, error) {
	s.record(req.Traces(), "grpc")
	return ptraceotlp.NewExportResponse(), nil
}

func TestExportOverGRPCAndHTTP(t *testing.T) {
	for _, tc := range []struct {
		protocol string
		gzip     bool
		wantEnc  string
	}{
		{ProtocolGRPC, true, "grpc"},
		{ProtocolGRPC, false, "grpc"},
		{ProtocolHTTP, true, "gzip"},
		{ProtocolHTTP, false, ""},
	} {
		t.Run(tc.protocol, func(t *testing.T) {
			sink := newSink()
			var addr string
			switch tc.protocol {
			case ProtocolGRPC:
				lis, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				srv := grpc.NewServer()
				ptraceotlp.RegisterGRPCServer(srv, sink)
				go func() { _ = srv.Serve(lis) }()
				t.Cleanup(srv.Stop)
				addr = lis.Addr().String()
			case ProtocolHTTP:
				srv, err := otlpsink.New(otlpsink.WithHook(func(r *http.Request, td ptrace.Traces) {
					sink.record(td, r.Header.Get("Content-Encoding"))
				}))
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(srv.Close)
				addr = srv.BaseURL()
			}

			gzipBefore := grpcGzip.decompressed.Load()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			tp, counter, err := NewTracerProvider(ctx, Endpoint{Protocol: tc.protocol, Address: addr, Gzip: tc.gzip})
			if err != nil {
				t.Fatal(err)
			}
			stats, err := Run(ctx, tp, Options{Count: 5, ErrorRatio: 0.5, Seed: 3, Concurrency: 2})
			if err != nil {
				t.Fatal(err)
			}
			if err := tp.Shutdown(ctx); err != nil {
				t.Fatal(err)
			}
			if got := sink.spans.Load(); got != stats.Spans || got == 0 {
				t.Errorf("receiver got %d spans, simulation ended %d", got, stats.Spans)
			}
			if counter.Exported() != stats.Spans || counter.Failed() != 0 || counter.LastError() != nil {
				t.Errorf("counter: exported %d failed %d (%v), want %d exported", counter.Exported(), counter.Failed(), counter.LastError(), stats.Spans)
			}
			if !sink.encs[tc.wantEnc] || len(sink.encs) != 1 {
				t.Errorf("encodings seen %v, want only %q", sink.encs, tc.wantEnc)
			}
			if tc.protocol == ProtocolGRPC {
				if n := grpcGzip.decompressed.Load() - gzipBefore; (n > 0) != tc.gzip {
					t.Errorf("gzip %v, but the server decompressed %d messages", tc.gzip, n)
				}
			}
			if !sink.service["agentos"] {
				t.Errorf("service.name not sent: %v", sink.service)
			}
		})
	}
}

func TestExportFailuresAreCounted(t *testing.T) {
	// A listener that is closed at once: nothing answers on this port.
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := "http://" + lis.Addr().String()
	lis.Close()

	ctx := context.Background()
	tp, counter, err := NewTracerProvider(ctx, Endpoint{Protocol: ProtocolHTTP, Address: addr, Timeout: 500 * time.Millisecond, NoRetry: true})
	if err != nil {
		t.Fatal(err)
	}
	stats, err := Run(ctx, tp, Options{Count: 1})
	if err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_ = tp.Shutdown(sctx)
	if counter.Exported() != 0 || counter.Failed() != stats.Spans || counter.LastError() == nil {
		t.Errorf("exported %d, failed %d of %d, last error %v", counter.Exported(), counter.Failed(), stats.Spans, counter.LastError())
	}
}

func TestNewExporterRejectsUnknownProtocol(t *testing.T) {
	if _, err := NewExporter(context.Background(), Endpoint{Protocol: "udp"}); err == nil {
		t.Error("want an error for protocol udp")
	}
}

func TestIsLoopback(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:4317": true, "localhost:4318": true, "[::1]:4317": true, "127.0.0.2": true,
		"collector.example.com:4317": false, "10.0.0.1:4317": false,
	} {
		if got := isLoopback(addr); got != want {
			t.Errorf("isLoopback(%q) = %v, want %v", addr, got, want)
		}
	}
}
