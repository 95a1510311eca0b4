package otlpsend

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/klauspost/compress/gzip"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/kern-agents/trace-gateway/internal/otlpwire"
	"github.com/kern-agents/trace-gateway/plugins"
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
	// Classify, when set, reads a vendor's error answer before the rules
	// every adapter shares: it returns the plugins error to report for an
	// answer the vendor words its own way (a status it uses for more than
	// one thing), or nil to leave the answer to the shared rules.
	Classify func(Answer) error
}

// HTTPSender sends OTLP/HTTP through otlptracehttp.
type HTTPSender struct {
	host      string
	maxBytes  int
	client    otlptrace.Client
	transport *http.Transport

	// For posting encoded batches ourselves (see SendEncoded).
	url     string
	headers map[string]string
	gzip    bool
	json    bool
	timeout time.Duration
	http    *http.Client

	classify func(Answer) error
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
	hc := &http.Client{Timeout: timeout, Transport: recordingTransport{base: transport}}
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
		otlptracehttp.WithHTTPClient(hc),
	)
	if err := client.Start(context.Background()); err != nil {
		return nil, fmt.Errorf("start OTLP/HTTP client for %s: %w", u.Host, err)
	}
	return &HTTPSender{
		host: u.Host, maxBytes: opts.MaxRequestBytes, client: client, transport: transport,
		url: opts.URL, headers: headers, gzip: opts.Compression == "gzip", json: opts.JSON, timeout: timeout, http: hc,
		classify: opts.Classify,
	}, nil
}

// Send implements Sender.
func (s *HTTPSender) Send(ctx context.Context, td ptrace.Traces) error {
	return sendSplitting(ctx, s.host, td, s.maxBytes, s.upload)
}

// SendEncoded implements EncodedSender. For OTLP/HTTP protobuf the host's
// request already is the body, so it is posted as it is: the otlptrace
// client only takes structs, and decoding into them and encoding them again
// was most of an exporter's CPU. OTLP/JSON goes through the client.
func (s *HTTPSender) SendEncoded(ctx context.Context, request []byte) error {
	if s.json {
		return sendEncoded(ctx, s.host, request, s.maxBytes, viaStructs(s.upload), s.upload)
	}
	return sendEncoded(ctx, s.host, request, s.maxBytes, s.postEncoded, s.upload)
}

// postEncoded posts request as an OTLP/HTTP protobuf body, as the otlptrace
// client would (same headers, compression, timeout and transport), and
// classifies the answer like upload does.
func (s *HTTPSender) postEncoded(ctx context.Context, request []byte) error {
	// Checked, not decoded: the host only sends requests it encoded, but
	// garbage must be refused here rather than sent to a vendor.
	n, err := otlpwire.Count(request)
	if err != nil {
		return plugins.Permanent(fmt.Errorf("decoding batch: %w", err))
	}
	if n == 0 {
		return nil
	}
	ctx, o := withOutcome(ctx)
	err = s.post(ctx, request)
	return logPartial(s.host, classifyHTTP(s.host, o, err, s.classify), err)
}

func (s *HTTPSender) post(ctx context.Context, request []byte) error {
	body := request
	if s.gzip {
		var err error
		if body, err = gzipped(request); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	var bodies bodies
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bodies.open(body))
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	// The transport may still read the body after Do returned (it closes it
	// when done): request is borrowed (see Adapter.BorrowsRequests).
	defer bodies.wait()
	req.ContentLength = int64(len(body))
	req.GetBody = func() (io.ReadCloser, error) { return bodies.open(body), nil }
	for k, v := range s.headers {
		req.Header.Set(k, v)
	}
	req.Header.Set("Content-Type", "application/x-protobuf")
	if s.gzip {
		req.Header.Set("Content-Encoding", "gzip")
	}
	resp, err := s.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if resp.StatusCode < 200 || resp.StatusCode >= 300 {
		return fmt.Errorf("HTTP %d", resp.StatusCode) // classifyHTTP words it from the outcome
	}
	if err != nil {
		return fmt.Errorf("read response: %w", err)
	}
	return partialSuccess(resp.Header.Get("Content-Type"), answer)
}

// bodies are the request bodies made of one payload, so that the sender can
// wait until the transport closed every one of them and so is done reading
// the payload.
type bodies struct{ unclosed sync.WaitGroup }

// open returns a body reading b.
func (bs *bodies) open(b []byte) io.ReadCloser {
	bs.unclosed.Add(1)
	return &body{Reader: bytes.NewReader(b), done: bs.unclosed.Done}
}

// wait returns once every body opened was closed.
func (bs *bodies) wait() { bs.unclosed.Wait() }

type body struct {
	*bytes.Reader
	once sync.Once
	done func()
}

func (b *body) Close() error {
	b.once.Do(b.done)
	return nil
}

// gzipWriters are reused: a gzip.Writer allocates most of a megabyte.
var gzipWriters = sync.Pool{New: func() any { return gzip.NewWriter(io.Discard) }}

// gzipped compresses b at the default level, with klauspost/compress's
// gzip: for a batch of agent spans it takes half the CPU of the standard
// library's (2.7 vs 5.9 µs per span) for output a tenth larger, and every
// destination's plugin compresses every batch.
func gzipped(b []byte) ([]byte, error) {
	var buf bytes.Buffer
	buf.Grow(len(b) / 4)
	zw := gzipWriters.Get().(*gzip.Writer)
	defer gzipWriters.Put(zw)
	zw.Reset(&buf)
	if _, err := zw.Write(b); err != nil {
		return nil, fmt.Errorf("gzip request: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("gzip request: %w", err)
	}
	return buf.Bytes(), nil
}

// maxResponseBytes bounds how much of a success answer is read.
const maxResponseBytes = 1 << 20

// partialSuccess reports what an OTLP success answer says was rejected, as
// an error for logPartial to log; an empty answer is a plain success.
func partialSuccess(contentType string, answer []byte) error {
	if len(answer) == 0 {
		return nil
	}
	resp := ptraceotlp.NewExportResponse()
	var err error
	if strings.HasPrefix(contentType, "application/json") {
		err = resp.UnmarshalJSON(answer)
	} else {
		err = resp.UnmarshalProto(answer)
	}
	if err != nil {
		return fmt.Errorf("unreadable success response: %w", err)
	}
	ps := resp.PartialSuccess()
	if ps.RejectedSpans() == 0 && ps.ErrorMessage() == "" {
		return nil
	}
	return fmt.Errorf("OTLP partial success: %d spans rejected: %s", ps.RejectedSpans(), ps.ErrorMessage())
}

func (s *HTTPSender) upload(ctx context.Context, rs []*tracepb.ResourceSpans) error {
	ctx, o := withOutcome(ctx)
	err := s.client.UploadTraces(ctx, rs)
	return logPartial(s.host, classifyHTTP(s.host, o, err, s.classify), err)
}

// Shutdown implements Sender.
func (s *HTTPSender) Shutdown(ctx context.Context) error {
	err := s.client.Stop(ctx)
	s.transport.CloseIdleConnections()
	return err
}
