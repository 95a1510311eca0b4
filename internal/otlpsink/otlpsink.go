// Package otlpsink is a fake OTLP/HTTP trace destination for tests and load
// tools: it listens on 127.0.0.1, decodes protobuf export requests (plain or
// gzip), answers them like a vendor would and remembers which spans arrived,
// when each first arrived and how many arrived more than once.
package otlpsink

import (
	"compress/gzip"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"

	"github.com/kern-agents/trace-gateway/internal/otlpwire"
)

// Path is where the sink accepts export requests, the OTLP/HTTP default.
const Path = "/v1/traces"

// Hook sees every decoded request before its spans are recorded and the
// request is answered. It runs on the request's goroutine, so it can delay
// the answer (a slow vendor) or note what the request carried.
type Hook func(r *http.Request, td ptrace.Traces)

// Option adjusts a Sink made by New.
type Option func(*Sink)

// WithHook runs h for every decoded request.
func WithHook(h Hook) Option { return func(s *Sink) { s.hook = h } }

// Sink is a running fake OTLP/HTTP destination. Its methods are safe for
// concurrent use.
type Sink struct {
	srv    *http.Server
	addr   string
	hook   Hook
	closed atomic.Bool

	mu   sync.Mutex
	got  map[pcommon.SpanID]arrival
	dups int
}

// arrival is what the sink knows of one span id.
type arrival struct {
	first time.Time // when it first arrived
	n     int       // how often it arrived
}

// New starts a sink on a free loopback port.
func New(opts ...Option) (*Sink, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("otlp sink: listen: %w", err)
	}
	s := &Sink{addr: ln.Addr().String(), got: map[pcommon.SpanID]arrival{}}
	for _, o := range opts {
		o(s)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+Path, s.serve)
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

// BaseURL is the sink's root, http://127.0.0.1:port, for clients that add
// the path themselves.
func (s *Sink) BaseURL() string { return "http://" + s.addr }

// URL is the full endpoint export requests go to.
func (s *Sink) URL() string { return s.BaseURL() + Path }

// Close stops the server; later requests are refused, so a closed sink
// stands for a destination that is down.
func (s *Sink) Close() {
	s.closed.Store(true)
	_ = s.srv.Close()
}

// Closed reports whether Close was called.
func (s *Sink) Closed() bool { return s.closed.Load() }

func (s *Sink) serve(w http.ResponseWriter, r *http.Request) {
	b, err := readBody(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	ids, err := s.decode(r, b)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	now := time.Now()
	s.mu.Lock()
	for _, id := range ids {
		a, dup := s.got[id]
		if dup {
			s.dups++
		} else {
			a.first = now
		}
		a.n++
		s.got[id] = a
	}
	s.mu.Unlock()
	out, _ := ptraceotlp.NewExportResponse().MarshalProto()
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(out)
}

// readBody reads the (possibly gzipped) request body. A plain body with a
// declared length is read into one buffer of that size: growing a buffer
// for every multi-megabyte batch would make the fake vendor, not the sender,
// what a load test measures.
func readBody(r *http.Request) ([]byte, error) {
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			return nil, err
		}
		return io.ReadAll(zr)
	}
	if n := r.ContentLength; n > 0 && n <= maxBody {
		b := make([]byte, n)
		if _, err := io.ReadFull(r.Body, b); err != nil {
			return nil, err
		}
		return b, nil
	}
	return io.ReadAll(r.Body)
}

// maxBody bounds the buffer a declared Content-Length may reserve.
const maxBody = 256 << 20

// decode returns the span ids of an export request. Without a hook they are
// read straight off the wire: building the whole request would make the
// fake vendor, not the sender, what a load test measures.
func (s *Sink) decode(r *http.Request, b []byte) ([]pcommon.SpanID, error) {
	if s.hook == nil {
		return otlpwire.SpanIDs(b)
	}
	req := ptraceotlp.NewExportRequest()
	if err := req.UnmarshalProto(b); err != nil {
		return nil, err
	}
	s.hook(r, req.Traces())
	return SpanIDs(req.Traces()), nil
}

// Count is the number of distinct spans received.
func (s *Sink) Count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.got)
}

// Duplicates is the number of deliveries of a span that had arrived before.
func (s *Sink) Duplicates() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dups
}

// Deliveries returns how often each span id arrived (a copy).
func (s *Sink) Deliveries() map[pcommon.SpanID]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[pcommon.SpanID]int, len(s.got))
	for id, a := range s.got {
		out[id] = a.n
	}
	return out
}

// Received reports when span id first arrived, and whether it has.
func (s *Sink) Received(id pcommon.SpanID) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.got[id]
	if !ok {
		return time.Time{}, false
	}
	return a.first, true
}

// SpanIDs lists the span ids in td in order.
func SpanIDs(td ptrace.Traces) []pcommon.SpanID {
	out := make([]pcommon.SpanID, 0, td.SpanCount())
	rss := td.ResourceSpans()
	for i := range rss.Len() {
		sss := rss.At(i).ScopeSpans()
		for j := range sss.Len() {
			spans := sss.At(j).Spans()
			for k := range spans.Len() {
				out = append(out, spans.At(k).SpanID())
			}
		}
	}
	return out
}
