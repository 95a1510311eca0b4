package receiver

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/kern-agents/trace-gateway/internal/batcher"
	"github.com/kern-agents/trace-gateway/internal/store"
)

type httpCase struct {
	name        string
	method      string // default POST
	path        string // default /v1/traces
	contentType string
	encoding    string
	body        []byte
	chunked     bool // send without Content-Length
	sinkErr     error
	sinkPanic   string
	opts        func(*Options)

	wantStatus int
	wantCT     string // response Content-Type prefix
	wantCode   codes.Code
	wantMsg    string // substring of the message
	wantRej    int64  // rejected_spans of a 200 answer
	wantNames  []string
	wantHeader map[string]string
}

func (c httpCase) run(t *testing.T) {
	sink := &fakeSink{err: c.sinkErr, panicMsg: c.sinkPanic}
	opts := testOptions()
	if c.opts != nil {
		c.opts(&opts)
	}
	h := NewHTTPHandler(opts, sink)
	method, path := c.method, c.path
	if method == "" {
		method = http.MethodPost
	}
	if path == "" {
		path = TracesPath
	}
	req := httptest.NewRequest(method, path, bytes.NewReader(c.body))
	if c.chunked {
		req.ContentLength = -1
	}
	if c.contentType != "" {
		req.Header.Set("Content-Type", c.contentType)
	}
	if c.encoding != "" {
		req.Header.Set("Content-Encoding", c.encoding)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	res := rec.Result()
	body := readAll(t, res.Body)

	if res.StatusCode != c.wantStatus {
		t.Fatalf("status %d, want %d; body %q", res.StatusCode, c.wantStatus, body)
	}
	if c.wantCT != "" && !strings.HasPrefix(res.Header.Get("Content-Type"), c.wantCT) {
		t.Errorf("Content-Type %q, want %q", res.Header.Get("Content-Type"), c.wantCT)
	}
	for k, v := range c.wantHeader {
		if got := res.Header.Get(k); got != v {
			t.Errorf("header %s = %q, want %q", k, got, v)
		}
	}
	if !slices.Equal(sink.names(), c.wantNames) {
		t.Errorf("sink got %v, want %v", sink.names(), c.wantNames)
	}

	var msg string
	switch {
	case res.StatusCode == http.StatusOK:
		resp := ptraceotlp.NewExportResponse()
		var err error
		if strings.HasPrefix(c.wantCT, contentTypeJSON) {
			err = resp.UnmarshalJSON(body)
		} else {
			err = resp.UnmarshalProto(body)
		}
		if err != nil {
			t.Fatalf("response %q: %v", body, err)
		}
		msg = resp.PartialSuccess().ErrorMessage()
		if got := resp.PartialSuccess().RejectedSpans(); got != c.wantRej {
			t.Errorf("rejected_spans %d, want %d", got, c.wantRej)
		}
	case c.wantCode != 0: // a google.rpc.Status body in the request's encoding
		var st status.Status
		var err error
		if strings.HasPrefix(c.wantCT, contentTypeJSON) {
			err = protojson.Unmarshal(body, &st)
		} else {
			err = proto.Unmarshal(body, &st)
		}
		if err != nil {
			t.Fatalf("error body %q is not a Status: %v", body, err)
		}
		if codes.Code(st.Code) != c.wantCode {
			t.Errorf("status code %v, want %v", codes.Code(st.Code), c.wantCode)
		}
		msg = st.Message
	default:
		msg = string(body)
	}
	if !strings.Contains(msg, c.wantMsg) {
		t.Errorf("message %q does not contain %q", msg, c.wantMsg)
	}
}

func TestHTTP(t *testing.T) {
	good := protoBody(t, testTraces(2))
	goodJSON := jsonBody(t, testTraces(2))
	mixed := testTraces(3)
	mixed.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(1).SetTraceID(pcommon.TraceID{})
	big := bytes.Repeat([]byte{0}, 2<<20)
	small := func(o *Options) { o.MaxBodyBytes = 1024 }

	cases := []httpCase{
		{name: "protobuf", contentType: "application/x-protobuf", body: good,
			wantStatus: 200, wantCT: contentTypeProto, wantNames: []string{"span0", "span1"}},
		{name: "json", contentType: "application/json", body: goodJSON,
			wantStatus: 200, wantCT: contentTypeJSON, wantNames: []string{"span0", "span1"}},
		{name: "json with charset", contentType: "application/json; charset=utf-8", body: goodJSON,
			wantStatus: 200, wantCT: contentTypeJSON, wantNames: []string{"span0", "span1"}},
		{name: "gzip protobuf", contentType: "application/x-protobuf", encoding: "gzip", body: gzipped(t, good),
			wantStatus: 200, wantCT: contentTypeProto, wantNames: []string{"span0", "span1"}},
		{name: "gzip json", contentType: "application/json", encoding: "GZIP", body: gzipped(t, goodJSON),
			wantStatus: 200, wantCT: contentTypeJSON, wantNames: []string{"span0", "span1"}},
		{name: "identity", contentType: "application/x-protobuf", encoding: "identity", body: good,
			wantStatus: 200, wantNames: []string{"span0", "span1"}},
		{name: "chunked", contentType: "application/x-protobuf", body: good, chunked: true,
			wantStatus: 200, wantNames: []string{"span0", "span1"}},
		{name: "empty request", contentType: "application/x-protobuf", body: nil, wantStatus: 200},

		{name: "partial success protobuf", contentType: "application/x-protobuf", body: protoBody(t, mixed),
			wantStatus: 200, wantCT: contentTypeProto, wantRej: 1, wantMsg: "1 span(s) rejected: span 0102030405060702 of trace 00000000000000000000000000000000: trace id is all zero",
			wantNames: []string{"span0", "span2"}},
		{name: "partial success json", contentType: "application/json", body: jsonBody(t, mixed),
			wantStatus: 200, wantCT: contentTypeJSON, wantRej: 1, wantMsg: "trace id is all zero", wantNames: []string{"span0", "span2"}},
		{name: "wrong-length ids json", contentType: "application/json",
			body: []byte(`{"resourceSpans":[{"scopeSpans":[{"spans":[
				{"traceId":"0102030405060708090a0b0c0d0e0f10","spanId":"0102030405060708","name":"ok","kind":"SPAN_KIND_SERVER"},
				{"traceId":"0102","spanId":"0102030405060709","name":"short"},
				{"traceId":"0102030405060708090a0b0c0d0e0f10","spanId":"010203040506070a0b","name":"long","kind":2}]}]}]}`),
			wantStatus: 200, wantCT: contentTypeJSON, wantRej: 2, wantMsg: `trace id has 2 bytes, want 16 (span "short")`, wantNames: []string{"ok"}},
		{name: "wrong-length ids protobuf", contentType: "application/x-protobuf", body: badIDsProto(t),
			wantStatus: 200, wantCT: contentTypeProto, wantRej: 2, wantMsg: `span id has 9 bytes, want 8 (span "long")`, wantNames: []string{"ok1", "ok2"}},
		{name: "wrong-length ids gzip", contentType: "application/x-protobuf", encoding: "gzip", body: gzipped(t, badIDsProto(t)),
			wantStatus: 200, wantCT: contentTypeProto, wantRej: 2, wantMsg: `trace id has 15 bytes, want 16 (span "short")`, wantNames: []string{"ok1", "ok2"}},
		{name: "everything rejected", contentType: "application/x-protobuf",
			body: protoBody(t, func() ptrace.Traces {
				td := testTraces(1)
				td.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0).SetSpanID(pcommon.SpanID{})
				return td
			}()),
			wantStatus: 200, wantRej: 1, wantMsg: "span id is all zero"},

		{name: "malformed protobuf", contentType: "application/x-protobuf", body: []byte("\x0a\xff\xff\xff"),
			wantStatus: 400, wantCT: contentTypeProto, wantCode: codes.InvalidArgument, wantMsg: "decode protobuf"},
		{name: "malformed json", contentType: "application/json", body: []byte(`{"resourceSpans": [`),
			wantStatus: 400, wantCT: contentTypeJSON, wantCode: codes.InvalidArgument, wantMsg: "decode JSON"},
		{name: "not gzip", contentType: "application/x-protobuf", encoding: "gzip", body: good,
			wantStatus: 400, wantCode: codes.InvalidArgument, wantMsg: "invalid gzip body"},
		{name: "truncated gzip", contentType: "application/json", encoding: "gzip", body: gzipped(t, goodJSON)[:40],
			wantStatus: 400, wantCT: contentTypeJSON, wantCode: codes.InvalidArgument, wantMsg: "invalid gzip body"},
		{name: "unsupported content type", contentType: "text/plain", body: good, wantStatus: 415, wantMsg: "unsupported content type"},
		{name: "missing content type", body: good, wantStatus: 415, wantMsg: "unsupported content type"},
		{name: "unsupported encoding", contentType: "application/x-protobuf", encoding: "br", body: good,
			wantStatus: 415, wantMsg: "unsupported content encoding"},
		{name: "too large", contentType: "application/x-protobuf", body: make([]byte, 1025), opts: small,
			wantStatus: 413, wantCode: codes.ResourceExhausted, wantMsg: "exceeds 1024 bytes"},
		{name: "too large chunked", contentType: "application/x-protobuf", body: make([]byte, 1025), chunked: true, opts: small,
			wantStatus: 413, wantCode: codes.ResourceExhausted, wantMsg: "exceeds 1024 bytes"},
		{name: "too large after gzip", contentType: "application/x-protobuf", encoding: "gzip", body: gzipped(t, make([]byte, 1025)), opts: small,
			wantStatus: 413, wantCode: codes.ResourceExhausted, wantMsg: "decompressed request body exceeds 1024 bytes"},
		{name: "gzip bomb", contentType: "application/x-protobuf", encoding: "gzip", body: gzipped(t, big),
			wantStatus: 413, wantCode: codes.ResourceExhausted, wantMsg: "expands more than 100 times"},
		{name: "wrong method", method: http.MethodGet, wantStatus: 405, wantHeader: map[string]string{"Allow": "POST"}},
		{name: "other path", path: "/v1/metrics", contentType: "application/x-protobuf", body: good, wantStatus: 404},

		{name: "queue full", contentType: "application/x-protobuf", body: good, sinkErr: batcher.ErrQueueFull,
			wantStatus: 429, wantCode: codes.ResourceExhausted, wantMsg: "queue is full", wantHeader: map[string]string{"Retry-After": "1"},
			wantNames: []string{"span0", "span1"}},
		{name: "database down", contentType: "application/json", body: goodJSON, sinkErr: fmt.Errorf("dial: %w", store.ErrUnavailable),
			opts:       func(o *Options) { o.RetryAfter = 2500e6 },
			wantStatus: 503, wantCT: contentTypeJSON, wantCode: codes.Unavailable, wantMsg: "unavailable", wantHeader: map[string]string{"Retry-After": "3"},
			wantNames: []string{"span0", "span1"}},
		{name: "shutting down", contentType: "application/x-protobuf", body: good, sinkErr: batcher.ErrClosed,
			wantStatus: 503, wantCode: codes.Unavailable, wantMsg: "shutting down", wantHeader: map[string]string{"Retry-After": "1"},
			wantNames: []string{"span0", "span1"}},
		{name: "write error", contentType: "application/x-protobuf", body: good,
			sinkErr:    errors.New(`insert: connect postgres://admin:hunter2@db/x failed`),
			wantStatus: 500, wantCode: codes.Internal, wantMsg: "storing spans failed", wantNames: []string{"span0", "span1"}},
		{name: "panic", contentType: "application/x-protobuf", body: good, sinkPanic: "boom",
			wantStatus: 500, wantCode: codes.Internal, wantMsg: "internal error"},
	}
	for _, c := range cases {
		t.Run(c.name, c.run)
	}
}

// TestHTTPErrorHidesSecrets checks that a store error's text never reaches
// the sender.
func TestHTTPErrorHidesSecrets(t *testing.T) {
	sink := &fakeSink{err: errors.New("password=hunter2 rejected")}
	h := NewHTTPHandler(testOptions(), sink)
	req := httptest.NewRequest(http.MethodPost, TracesPath, bytes.NewReader(protoBody(t, testTraces(1))))
	req.Header.Set("Content-Type", contentTypeProto)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if strings.Contains(rec.Body.String(), "hunter2") {
		t.Errorf("500 body leaks the store error: %q", rec.Body.String())
	}
}
