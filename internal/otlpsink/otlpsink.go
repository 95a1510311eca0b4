// Package otlpsink is a fake OTLP/HTTP trace destination for tests and load
// tools: it listens on 127.0.0.1, decodes protobuf export requests (plain or
// gzip), answers them like a vendor would and remembers which spans arrived,
// when each first arrived and how many arrived more than once.
package otlpsink

import (
	"bytes"
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
	start  time.Time // arrival times are kept relative to it (monotonic)
	hook   Hook
	closed atomic.Bool

	mu sync.Mutex
	// pending holds the requests not yet indexed into got. Answering a
	// request only appends its ids here; they are indexed when first asked
	// about, so the fake vendor costs a load test's machine little while
	// the test measures.
	pending []request
	got     map[pcommon.SpanID]arrival
	dups    int
}

// request is one accepted request's span ids and when it arrived.
type request struct {
	at  time.Duration // after the sink's start
	ids []pcommon.SpanID
}

// arrival is what the sink knows of one span id. It holds no pointers (a
// time.Time does), so the garbage collector never scans the map: a load
// test's sinks hold millions of arrivals.
type arrival struct {
	first time.Duration // when it first arrived, after the sink's start
	n     int           // how often it arrived
}

// New starts a sink on a free loopback port.
func New(opts ...Option) (*Sink, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("otlp sink: listen: %w", err)
	}
	s := &Sink{addr: ln.Addr().String(), start: time.Now(), got: map[pcommon.SpanID]arrival{}}
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
	var buf *[]byte
	if s.hook == nil {
		buf = bodies.Get().(*[]byte)
		defer bodies.Put(buf)
	} else {
		buf = new([]byte) // a hook may keep what it is given
	}
	b, err := readBody(r, buf)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	ids, err := s.decode(r, b)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	at := time.Since(s.start)
	s.mu.Lock()
	s.pending = append(s.pending, request{at: at, ids: ids})
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(emptyResponse)
}

// emptyResponse is an ExportTraceServiceResponse of full success.
var emptyResponse, _ = ptraceotlp.NewExportResponse().MarshalProto()

// bodies recycles request buffers when there is no hook (span ids are copied
// out of the body; nothing else keeps it): a fresh multi-megabyte buffer per
// batch would make the fake vendor's allocations, not the sender, what a
// load test measures.
var bodies = sync.Pool{New: func() any { return new([]byte) }}

// readBody reads the (possibly gzipped) request body into *buf, which it
// grows as needed. A plain body with a declared length is read in one go:
// growing a buffer step by step for every multi-megabyte batch would make
// the fake vendor, not the sender, what a load test measures.
func readBody(r *http.Request, buf *[]byte) ([]byte, error) {
	var src io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			return nil, err
		}
		src = zr
	} else if n := r.ContentLength; n > 0 && n <= maxBody {
		if int64(cap(*buf)) < n {
			*buf = make([]byte, n)
		}
		b := (*buf)[:n]
		if _, err := io.ReadFull(r.Body, b); err != nil {
			return nil, err
		}
		return b, nil
	}
	bb := bytes.NewBuffer((*buf)[:0])
	_, err := bb.ReadFrom(src)
	*buf = bb.Bytes()
	return bb.Bytes(), err
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

// index folds the pending requests into got; the caller holds mu.
func (s *Sink) index() {
	for _, r := range s.pending {
		for _, id := range r.ids {
			a, dup := s.got[id]
			if dup {
				s.dups++
				a.first = min(a.first, r.at) // concurrent requests may queue out of order
			} else {
				a.first = r.at
			}
			a.n++
			s.got[id] = a
		}
	}
	clear(s.pending)
	s.pending = s.pending[:0]
}

// Count is the number of distinct spans received.
func (s *Sink) Count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.index()
	return len(s.got)
}

// Duplicates is the number of deliveries of a span that had arrived before.
func (s *Sink) Duplicates() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.index()
	return s.dups
}

// Deliveries returns how often each span id arrived (a copy).
func (s *Sink) Deliveries() map[pcommon.SpanID]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.index()
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
	s.index()
	a, ok := s.got[id]
	if !ok {
		return time.Time{}, false
	}
	return s.start.Add(a.first), true
}

// Arrival is when one span id first arrived at a sink.
type Arrival struct {
	ID    pcommon.SpanID
	First time.Time
}

// Arrivals lists every distinct span received with its first arrival, in
// no particular order: a load test's whole delivery record in one call
// (another process may want it), where Received asks about one id.
func (s *Sink) Arrivals() []Arrival {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.index()
	out := make([]Arrival, 0, len(s.got))
	for id, a := range s.got {
		out = append(out, Arrival{ID: id, First: s.start.Add(a.first)})
	}
	return out
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
