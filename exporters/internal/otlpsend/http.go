package otlpsend

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
)

// UserAgent identifies the gateway to vendors.
const UserAgent = "kern-trace-gateway"

// HTTPOptions configure an OTLP/HTTP sender.
type HTTPOptions struct {
	// URL is the full traces URL, e.g. https://cloud.langfuse.com/api/public/otel/v1/traces.
	URL string
	// Headers are sent with every request (auth, vendor routing).
	Headers map[string]string
	// Compression is "gzip" or "none".
	Compression string
	// JSON sends OTLP/JSON instead of protobuf.
	JSON bool
	// Timeout bounds one request.
	Timeout time.Duration
	// TLS overrides the default TLS settings (nil: system roots).
	TLS *tls.Config
	// MaxRequestBytes splits batches whose encoded (uncompressed) request
	// would exceed it. 0: no limit of our own; the vendor's 413 still splits.
	MaxRequestBytes int
}

// HTTPSender sends OTLP/HTTP through otlptracehttp.
type HTTPSender struct {
	host      string
	maxBytes  int
	client    otlptrace.Client
	transport *http.Transport
}

var _ EncodedSender = (*HTTPSender)(nil)

// NewHTTP builds a sender. It does not contact the destination.
func NewHTTP(opts HTTPOptions) (*HTTPSender, error) {
	u, err := url.Parse(opts.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("invalid traces URL %q", opts.URL)
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	if opts.TLS != nil {
		transport.TLSClientConfig = opts.TLS
	}
	headers := map[string]string{"User-Agent": UserAgent}
	for k, v := range opts.Headers {
		headers[k] = v
	}
	compression := otlptracehttp.NoCompression
	if opts.Compression == "gzip" {
		compression = otlptracehttp.GzipCompression
	}
	encoding := otlptracehttp.EncodingProtobuf
	if opts.JSON {
		encoding = otlptracehttp.EncodingJSON
	}
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	// Every option is set explicitly so OTEL_EXPORTER_OTLP_* variables in
	// the gateway's environment never leak into a destination.
	client := otlptracehttp.NewClient(
		otlptracehttp.WithEndpointURL(opts.URL),
		otlptracehttp.WithHeaders(headers),
		otlptracehttp.WithCompression(compression),
		otlptracehttp.WithEncoding(encoding),
		otlptracehttp.WithTimeout(timeout),
		// The gateway's delivery engine owns retries and backoff.
		otlptracehttp.WithRetry(otlptracehttp.RetryConfig{Enabled: false}),
		// Our own MaxRequestBytes splitting replaces the client's refusal.
		otlptracehttp.WithMaxRequestSize(0),
		otlptracehttp.WithHTTPClient(&http.Client{
			Timeout:   timeout,
			Transport: recordingTransport{base: transport},
		}),
	)
	if err := client.Start(context.Background()); err != nil {
		return nil, fmt.Errorf("start OTLP/HTTP client for %s: %w", u.Host, err)
	}
	return &HTTPSender{host: u.Host, maxBytes: opts.MaxRequestBytes, client: client, transport: transport}, nil
}

// Send implements Sender.
func (s *HTTPSender) Send(ctx context.Context, td ptrace.Traces) error {
	return sendSplitting(ctx, s.host, td, s.maxBytes, s.upload)
}

// SendEncoded implements EncodedSender.
func (s *HTTPSender) SendEncoded(ctx context.Context, request []byte) error {
	return sendEncoded(ctx, s.host, request, s.maxBytes, s.upload)
}

func (s *HTTPSender) upload(ctx context.Context, rs []*tracepb.ResourceSpans) error {
	ctx, o := withOutcome(ctx)
	err := s.client.UploadTraces(ctx, rs)
	return logPartial(s.host, classifyHTTP(s.host, o, err), err)
}

// Shutdown implements Sender.
func (s *HTTPSender) Shutdown(ctx context.Context) error {
	err := s.client.Stop(ctx)
	s.transport.CloseIdleConnections()
	return err
}
