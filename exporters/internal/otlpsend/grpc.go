package otlpsend

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
)

// GRPCOptions configure an OTLP/gRPC sender.
type GRPCOptions struct {
	// Endpoint is host:port.
	Endpoint string
	// Insecure sends in plaintext (no TLS).
	Insecure bool
	// TLS overrides the default TLS settings (nil: system roots).
	TLS *tls.Config
	// Headers are sent as gRPC metadata with every call.
	Headers map[string]string
	// Compression is "gzip" or "none".
	Compression string
	// Timeout bounds one call.
	Timeout time.Duration
	// MaxRequestBytes: see HTTPOptions.
	MaxRequestBytes int
}

// GRPCSender sends OTLP/gRPC through otlptracegrpc.
type GRPCSender struct {
	host     string
	maxBytes int
	client   otlptrace.Client
}

var _ EncodedSender = (*GRPCSender)(nil)

// NewGRPC builds a sender. The connection is made lazily by the first call.
func NewGRPC(opts GRPCOptions) (*GRPCSender, error) {
	if opts.Endpoint == "" {
		return nil, fmt.Errorf("empty gRPC endpoint")
	}
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	grpcOpts := []otlptracegrpc.Option{
		otlptracegrpc.WithEndpoint(opts.Endpoint),
		otlptracegrpc.WithHeaders(copyHeaders(opts.Headers)),
		otlptracegrpc.WithTimeout(timeout),
		otlptracegrpc.WithRetry(otlptracegrpc.RetryConfig{Enabled: false}),
		otlptracegrpc.WithMaxRequestSize(0),
		otlptracegrpc.WithDialOption(
			grpc.WithUserAgent(UserAgent),
			grpc.WithUnaryInterceptor(recordStatus),
		),
	}
	// No compressor is the client's default; naming "none" only makes it
	// log a complaint.
	if opts.Compression == "gzip" {
		grpcOpts = append(grpcOpts, otlptracegrpc.WithCompressor("gzip"))
	}
	if opts.Insecure {
		grpcOpts = append(grpcOpts, otlptracegrpc.WithInsecure())
	} else {
		tlsCfg := opts.TLS
		if tlsCfg == nil {
			tlsCfg = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		grpcOpts = append(grpcOpts, otlptracegrpc.WithTLSCredentials(credentials.NewTLS(tlsCfg)))
	}
	client := otlptracegrpc.NewClient(grpcOpts...)
	if err := client.Start(context.Background()); err != nil {
		return nil, fmt.Errorf("start OTLP/gRPC client for %s: %w", opts.Endpoint, err)
	}
	return &GRPCSender{host: opts.Endpoint, maxBytes: opts.MaxRequestBytes, client: client}, nil
}

// recordStatus records the status the Export call itself returned; the
// otlptrace client joins it with partial-success notices, which hides the
// code from status.FromError.
func recordStatus(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	err := invoker(ctx, method, req, reply, cc, opts...)
	if o := outcomeFrom(ctx); o != nil {
		st := status.New(codes.OK, "")
		if err != nil {
			st, _ = status.FromError(err)
		}
		o.set(func(o *outcome) { o.answered, o.grpc = true, st })
	}
	return err
}

// Send implements Sender.
func (s *GRPCSender) Send(ctx context.Context, td ptrace.Traces) error {
	return sendSplitting(ctx, s.host, td, s.maxBytes, s.upload)
}

// SendEncoded implements EncodedSender.
func (s *GRPCSender) SendEncoded(ctx context.Context, request []byte) error {
	return sendEncoded(ctx, s.host, request, s.maxBytes, viaStructs(s.upload), s.upload)
}

func (s *GRPCSender) upload(ctx context.Context, rs []*tracepb.ResourceSpans) error {
	ctx, o := withOutcome(ctx)
	err := s.client.UploadTraces(ctx, rs)
	o.mu.Lock()
	st := o.grpc
	o.mu.Unlock()
	return logPartial(s.host, classifyGRPC(s.host, st, err), err)
}

// Shutdown implements Sender.
func (s *GRPCSender) Shutdown(ctx context.Context) error {
	return s.client.Stop(ctx)
}

func copyHeaders(h map[string]string) map[string]string {
	out := make(map[string]string, len(h))
	for k, v := range h {
		out[k] = v
	}
	return out
}

// GRPCTarget turns host:port or http(s)://host[:port] into a dial target and
// whether it is plaintext.
func GRPCTarget(endpoint string, insecure bool) (string, bool, error) {
	hostport := endpoint
	if strings.Contains(endpoint, "://") {
		u, err := url.Parse(endpoint)
		if err != nil {
			return "", false, fmt.Errorf("is not a valid URL: %v", err)
		}
		switch u.Scheme {
		case "http":
			insecure = true
		case "https":
		default:
			return "", false, fmt.Errorf("must be host:port or an http(s):// URL, got %q", endpoint)
		}
		if u.Path != "" && u.Path != "/" {
			return "", false, fmt.Errorf("a gRPC endpoint has no path, got %q", endpoint)
		}
		hostport = u.Host
		if u.Port() == "" {
			port := "443"
			if u.Scheme == "http" {
				port = "80"
			}
			hostport = net.JoinHostPort(u.Hostname(), port)
		}
	}
	host, port, err := net.SplitHostPort(hostport)
	if err != nil || host == "" {
		return "", false, fmt.Errorf("must be host:port, got %q", endpoint)
	}
	if n, err := strconv.Atoi(port); err != nil || n <= 0 || n > 65535 {
		return "", false, fmt.Errorf("has an invalid port in %q", endpoint)
	}
	return hostport, insecure, nil
}
