// Package otlptest holds the local fakes of vendor OTLP endpoints that the
// adapter tests run against (HTTP and gRPC, loopback only), and the error
// handling suite every adapter must pass.
package otlptest

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
)

// Request is one request the fake received, decoded.
type Request struct {
	Method, Path    string
	Header          http.Header
	ContentType     string
	ContentEncoding string
	// Traces is the decoded body; DecodeErr says why decoding failed.
	Traces    ptrace.Traces
	DecodeErr error
	// Refused is the status of the refusal when the request failed one of
	// the fake's rules (0 when it passed them all).
	Refused int
}

// Reply is what the fake answers.
type Reply struct {
	Status int
	Header map[string]string
	Body   []byte
}

// HTTPServer is a fake OTLP/HTTP endpoint on 127.0.0.1. SetResponder sets
// how it answers decoded requests; Requests returns the requests received.
type HTTPServer struct {
	recorder[Request, Reply]
	URL string

	rules []Rule
	srv   *httptest.Server
}

// Rule is a check a real vendor endpoint makes before it takes the spans
// (content type, a required header): for a request that fails it, it
// returns the vendor's refusal and true.
type Rule func(Request) (Reply, bool)

// NewHTTP starts a fake that accepts everything (200, empty protobuf
// ExportTraceServiceResponse) until SetResponder says otherwise. A request
// failing one of rules gets that rule's refusal; other bodies that do not
// decode as OTLP are answered 400.
func NewHTTP(t testing.TB, rules ...Rule) *HTTPServer {
	t.Helper()
	s := &HTTPServer{rules: rules}
	s.respond = func(Request) Reply { return OK() }
	s.srv = httptest.NewServer(http.HandlerFunc(s.handle))
	s.URL = s.srv.URL
	t.Cleanup(s.srv.Close)
	return s
}

// OK is an OTLP success reply.
func OK() Reply {
	body, _ := ptraceotlp.NewExportResponse().MarshalProto()
	return Reply{Status: http.StatusOK, Header: map[string]string{"Content-Type": "application/x-protobuf"}, Body: body}
}

func (s *HTTPServer) handle(w http.ResponseWriter, r *http.Request) {
	req := Request{
		Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(),
		ContentType: r.Header.Get("Content-Type"), ContentEncoding: r.Header.Get("Content-Encoding"),
	}
	req.Traces, req.DecodeErr = decode(r)
	for _, rule := range s.rules {
		if reply, refused := rule(req); refused {
			req.Refused = reply.Status
			s.record(req)
			write(w, reply)
			return
		}
	}
	respond := s.record(req)
	if req.DecodeErr != nil {
		http.Error(w, req.DecodeErr.Error(), http.StatusBadRequest)
		return
	}
	write(w, respond(req))
}

func write(w http.ResponseWriter, reply Reply) {
	for k, v := range reply.Header {
		w.Header().Set(k, v)
	}
	w.WriteHeader(reply.Status)
	_, _ = w.Write(reply.Body)
}

func decode(r *http.Request) (ptrace.Traces, error) {
	var body io.Reader = io.LimitReader(r.Body, 64<<20)
	switch r.Header.Get("Content-Encoding") {
	case "", "identity":
	case "gzip":
		zr, err := gzip.NewReader(body)
		if err != nil {
			return ptrace.Traces{}, fmt.Errorf("gzip: %w", err)
		}
		body = zr
	default:
		return ptrace.Traces{}, fmt.Errorf("unsupported Content-Encoding %q", r.Header.Get("Content-Encoding"))
	}
	raw, err := io.ReadAll(body)
	if err != nil {
		return ptrace.Traces{}, fmt.Errorf("read body: %w", err)
	}
	req := ptraceotlp.NewExportRequest()
	switch mediaType(r.Header.Get("Content-Type")) {
	case "application/x-protobuf":
		err = req.UnmarshalProto(raw)
	case "application/json":
		err = req.UnmarshalJSON(raw)
	default:
		return ptrace.Traces{}, fmt.Errorf("unsupported Content-Type %q", r.Header.Get("Content-Type"))
	}
	if err != nil {
		return ptrace.Traces{}, fmt.Errorf("decode OTLP body: %w", err)
	}
	return req.Traces(), nil
}

// Same reports whether two batches encode identically.
func Same(a, b ptrace.Traces) bool {
	x, err1 := ptraceotlp.NewExportRequestFromTraces(a).MarshalProto()
	y, err2 := ptraceotlp.NewExportRequestFromTraces(b).MarshalProto()
	return err1 == nil && err2 == nil && bytes.Equal(x, y)
}

// Handler exposes the fake's handler, to serve it from another server (TLS).
func (s *HTTPServer) Handler() http.Handler { return http.HandlerFunc(s.handle) }
