package sim

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// Protocols an Endpoint may use.
const (
	ProtocolGRPC = "grpc"
	ProtocolHTTP = "http"
)

// Endpoint says where and how to send OTLP.
type Endpoint struct {
	Protocol string // ProtocolGRPC or ProtocolHTTP
	// Address is host:port for gRPC, a URL (http://host:4318) or host:port
	// for HTTP; "" means DefaultAddress(Protocol).
	Address string
	Gzip    bool
	// Insecure forces plaintext. Loopback addresses and http:// URLs are
	// plaintext anyway; anything else uses TLS.
	Insecure bool
	Headers  map[string]string
	Timeout  time.Duration // per export; 0 = the exporter's default (10s)
	// NoRetry turns off the exporter's retries (by default it retries
	// transient failures for up to a minute).
	NoRetry bool
}

// DefaultAddress is the gateway's local OTLP listener for protocol.
func DefaultAddress(protocol string) string {
	if protocol == ProtocolHTTP {
		return "http://127.0.0.1:4318"
	}
	return "127.0.0.1:4317"
}

// NewExporter builds the OTLP span exporter for ep.
func NewExporter(ctx context.Context, ep Endpoint) (sdktrace.SpanExporter, error) {
	addr := ep.Address
	if addr == "" {
		addr = DefaultAddress(ep.Protocol)
	}
	hasScheme := strings.Contains(addr, "://")
	host := addr
	if hasScheme {
		u, err := url.Parse(addr)
		if err != nil {
			return nil, fmt.Errorf("endpoint %q: %w", addr, err)
		}
		host = u.Host
	}
	plaintext := ep.Insecure || isLoopback(host)

	switch ep.Protocol {
	case ProtocolGRPC, "":
		opts := []otlptracegrpc.Option{}
		if hasScheme {
			opts = append(opts, otlptracegrpc.WithEndpointURL(addr))
		} else {
			opts = append(opts, otlptracegrpc.WithEndpoint(addr))
		}
		if plaintext {
			opts = append(opts, otlptracegrpc.WithInsecure())
		}
		if ep.Gzip {
			opts = append(opts, otlptracegrpc.WithCompressor("gzip"))
		}
		if len(ep.Headers) > 0 {
			opts = append(opts, otlptracegrpc.WithHeaders(ep.Headers))
		}
		if ep.Timeout > 0 {
			opts = append(opts, otlptracegrpc.WithTimeout(ep.Timeout))
		}
		if ep.NoRetry {
			opts = append(opts, otlptracegrpc.WithRetry(otlptracegrpc.RetryConfig{Enabled: false}))
		}
		exp, err := otlptracegrpc.New(ctx, opts...)
		if err != nil {
			return nil, fmt.Errorf("otlp/grpc exporter for %s: %w", addr, err)
		}
		return exp, nil
	case ProtocolHTTP:
		opts := []otlptracehttp.Option{}
		if hasScheme {
			opts = append(opts, otlptracehttp.WithEndpointURL(addr))
			if u, _ := url.Parse(addr); u.Path == "" || u.Path == "/" {
				opts = append(opts, otlptracehttp.WithURLPath("/v1/traces"))
			}
		} else {
			opts = append(opts, otlptracehttp.WithEndpoint(addr))
		}
		if plaintext {
			opts = append(opts, otlptracehttp.WithInsecure())
		}
		if ep.Gzip {
			opts = append(opts, otlptracehttp.WithCompression(otlptracehttp.GzipCompression))
		}
		if len(ep.Headers) > 0 {
			opts = append(opts, otlptracehttp.WithHeaders(ep.Headers))
		}
		if ep.Timeout > 0 {
			opts = append(opts, otlptracehttp.WithTimeout(ep.Timeout))
		}
		if ep.NoRetry {
			opts = append(opts, otlptracehttp.WithRetry(otlptracehttp.RetryConfig{Enabled: false}))
		}
		exp, err := otlptracehttp.New(ctx, opts...)
		if err != nil {
			return nil, fmt.Errorf("otlp/http exporter for %s: %w", addr, err)
		}
		return exp, nil
	}
	return nil, fmt.Errorf("protocol %q: want %q or %q", ep.Protocol, ProtocolGRPC, ProtocolHTTP)
}

func isLoopback(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}

// Resource describes the simulated AgentOS process.
func Resource() *resource.Resource {
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(
		attribute.String("service.name", "agentos"),
		attribute.String("service.version", "2.1.0"),
		attribute.String("deployment.environment.name", "simulation"),
	))
	if err != nil {
		// Only a schema URL conflict can fail the merge; keep our attributes.
		return resource.NewSchemaless(attribute.String("service.name", "agentos"))
	}
	return res
}

// NewTracerProvider builds a TracerProvider that batches spans to ep. The
// batcher blocks instead of dropping when the queue is full, so a slow
// gateway slows the simulation down rather than losing spans. The counter
// reports what the exporter delivered.
func NewTracerProvider(ctx context.Context, ep Endpoint) (*sdktrace.TracerProvider, *ExportCounter, error) {
	exp, err := NewExporter(ctx, ep)
	if err != nil {
		return nil, nil, err
	}
	counter := &ExportCounter{next: exp}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithResource(Resource()),
		sdktrace.WithSampler(sdktrace.AlwaysSample()),
		sdktrace.WithBatcher(counter,
			sdktrace.WithBlocking(),
			sdktrace.WithMaxQueueSize(16384),
			sdktrace.WithMaxExportBatchSize(1024),
			sdktrace.WithBatchTimeout(500*time.Millisecond)),
	)
	return tp, counter, nil
}

// ExportCounter wraps a SpanExporter and counts the spans it exported and
// failed to export.
type ExportCounter struct {
	next     sdktrace.SpanExporter
	exported atomic.Int64
	failed   atomic.Int64
	mu       sync.Mutex
	lastErr  error
}

// ExportSpans implements sdktrace.SpanExporter.
func (c *ExportCounter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	err := c.next.ExportSpans(ctx, spans)
	if err != nil {
		c.failed.Add(int64(len(spans)))
		c.mu.Lock()
		c.lastErr = err
		c.mu.Unlock()
		return err
	}
	c.exported.Add(int64(len(spans)))
	return nil
}

// Shutdown implements sdktrace.SpanExporter.
func (c *ExportCounter) Shutdown(ctx context.Context) error { return c.next.Shutdown(ctx) }

// Exported is the number of spans the endpoint accepted.
func (c *ExportCounter) Exported() int64 { return c.exported.Load() }

// Failed is the number of spans whose export failed (after the exporter's
// own retries).
func (c *ExportCounter) Failed() int64 { return c.failed.Load() }

// LastError is the most recent export error, or nil.
func (c *ExportCounter) LastError() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastErr
}

var _ sdktrace.SpanExporter = (*ExportCounter)(nil)
