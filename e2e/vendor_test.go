package e2e

import (
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
)

// vendorMode is how the fake vendor answers.
type vendorMode int

const (
	vendorHealthy  vendorMode = iota // 200
	vendorRefuse                     // port closed: connection refused
	vendorDown503                    // 503
	vendor429                        // 429 with Retry-After
	vendorFlaky500                   // every third request 500, the others 200
	vendorSlow                       // 200 after 2s
)

func (m vendorMode) String() string {
	return [...]string{"healthy", "refusing connections", "503", "429", "500 one time in three", "slow"}[m]
}

// slowDelay is how long a slow vendor takes per request.
const slowDelay = 2 * time.Second

// fakeVendor is an OTLP/HTTP traces endpoint on loopback that records the
// span ids it accepted (with how often each came) and can misbehave.
type fakeVendor struct {
	t    *testing.T
	addr string
	srv  *http.Server

	mu         sync.Mutex
	ln         net.Listener
	conns      map[net.Conn]struct{}
	mode       vendorMode
	retryAfter int // seconds, for vendor429
	requests   int
	active     int                  // requests being handled
	answers    map[int]int          // status → count
	received   map[string]int       // span id → times accepted
	first      map[string]time.Time // span id → first accepted
	badBodies  int
	// With pickPoison set, the next export's first span becomes poison: from
	// then on the vendor answers 400 to every export that holds it, as
	// vendors reject a whole request for one invalid span.
	pickPoison bool
	poison     string
}

// newVendor starts a healthy fake vendor; it stops when the test ends.
func newVendor(t *testing.T) *fakeVendor {
	t.Helper()
	v := &fakeVendor{
		t:        t,
		conns:    map[net.Conn]struct{}{},
		answers:  map[int]int{},
		received: map[string]int{},
		first:    map[string]time.Time{},
	}
	v.srv = &http.Server{
		Handler:           v,
		ReadHeaderTimeout: 10 * time.Second,
		ConnState: func(c net.Conn, s http.ConnState) {
			v.mu.Lock()
			defer v.mu.Unlock()
			switch s {
			case http.StateNew:
				v.conns[c] = struct{}{}
			case http.StateClosed, http.StateHijacked:
				delete(v.conns, c)
			}
		},
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("fake vendor: %v", err)
	}
	v.addr = ln.Addr().String()
	v.serve(ln)
	t.Cleanup(func() { _ = v.srv.Close() })
	return v
}

func (v *fakeVendor) serve(ln net.Listener) {
	v.ln = ln
	go func() { _ = v.srv.Serve(ln) }()
}

// URL is the traces endpoint.
func (v *fakeVendor) URL() string { return "http://" + v.addr + "/v1/traces" }

// SetMode switches behaviour. Refusing closes the port and every open
// connection; leaving it listens on the same port again.
func (v *fakeVendor) SetMode(m vendorMode) {
	v.t.Helper()
	v.mu.Lock()
	old := v.mode
	v.mode = m
	if m == vendorRefuse && old != vendorRefuse {
		_ = v.ln.Close()
		for c := range v.conns {
			_ = c.Close()
		}
	}
	v.mu.Unlock()
	if old == vendorRefuse && m != vendorRefuse {
		var err error
		for range 50 { // the port was ours a moment ago; retry briefly
			var ln net.Listener
			if ln, err = net.Listen("tcp", v.addr); err == nil {
				v.mu.Lock()
				v.serve(ln)
				v.mu.Unlock()
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		v.t.Fatalf("fake vendor: listen again on %s: %v", v.addr, err)
	}
}

// Set429 answers 429 with Retry-After: secs.
func (v *fakeVendor) Set429(secs int) {
	v.mu.Lock()
	v.retryAfter = secs
	v.mu.Unlock()
	v.SetMode(vendor429)
}

// RefuseOneSpan makes the first span of the next export poison: every
// export holding it is answered 400 from then on.
func (v *fakeVendor) RefuseOneSpan() {
	v.mu.Lock()
	v.pickPoison = true
	v.mu.Unlock()
}

// Refused returns the span the vendor refuses, if any.
func (v *fakeVendor) Refused() map[string]bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.poison == "" {
		return nil
	}
	return map[string]bool{v.poison: true}
}

func (v *fakeVendor) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	v.mu.Lock()
	v.requests++
	v.active++
	n, mode, retryAfter := v.requests, v.mode, v.retryAfter
	v.mu.Unlock()
	defer func() {
		v.mu.Lock()
		v.active--
		v.mu.Unlock()
	}()
	status := http.StatusOK
	switch mode {
	case vendorDown503:
		status = http.StatusServiceUnavailable
	case vendor429:
		w.Header().Set("Retry-After", fmt.Sprint(retryAfter))
		status = http.StatusTooManyRequests
	case vendorFlaky500:
		if n%3 == 0 {
			status = http.StatusInternalServerError
		}
	case vendorSlow:
		select {
		case <-time.After(slowDelay):
		case <-r.Context().Done():
			return
		}
	}
	if status != http.StatusOK {
		_, _ = io.Copy(io.Discard, r.Body)
		v.count(status)
		http.Error(w, http.StatusText(status), status)
		return
	}
	ids, err := decodeExport(r)
	if errors.Is(err, errAborted) {
		// The sender went away mid-request (a killed gateway's plugin):
		// nothing was delivered, and nothing undecodable was sent.
		return
	}
	if err != nil {
		v.mu.Lock()
		v.badBodies++
		v.mu.Unlock()
		v.count(http.StatusBadRequest)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	now := time.Now()
	v.mu.Lock()
	if v.pickPoison && len(ids) > 0 {
		v.poison, v.pickPoison = ids[0], false
	}
	if v.poison != "" && slices.Contains(ids, v.poison) {
		v.answers[http.StatusBadRequest]++
		v.mu.Unlock()
		http.Error(w, "span "+v.poison+" is invalid", http.StatusBadRequest)
		return
	}
	for _, id := range ids {
		if v.received[id] == 0 {
			v.first[id] = now
		}
		v.received[id]++
	}
	v.answers[http.StatusOK]++
	v.mu.Unlock()
	body, _ := ptraceotlp.NewExportResponse().MarshalProto()
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(body)
}

func (v *fakeVendor) count(status int) {
	v.mu.Lock()
	v.answers[status]++
	v.mu.Unlock()
}

// errAborted is a request body that could not be read to its end: the
// sender's connection broke.
var errAborted = errors.New("request body not read to its end")

// decodeExport reads an OTLP/HTTP export (protobuf or JSON, maybe gzipped)
// and returns its span ids.
func decodeExport(r *http.Request) ([]string, error) {
	var body io.Reader = r.Body
	if strings.EqualFold(r.Header.Get("Content-Encoding"), "gzip") {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			return nil, err
		}
		body = zr
	}
	b, err := io.ReadAll(body)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errAborted, err)
	}
	req := ptraceotlp.NewExportRequest()
	switch ct := r.Header.Get("Content-Type"); {
	case strings.HasPrefix(ct, "application/x-protobuf"):
		err = req.UnmarshalProto(b)
	case strings.HasPrefix(ct, "application/json"):
		err = req.UnmarshalJSON(b)
	default:
		err = fmt.Errorf("content type %q", ct)
	}
	if err != nil {
		return nil, err
	}
	var ids []string
	for id := range spanIDs(req.Traces()) {
		ids = append(ids, id)
	}
	return ids, nil
}

// vendorFigures summarise what a vendor got.
type vendorFigures struct {
	Requests   int
	Answers    map[int]int
	Received   int // distinct span ids accepted
	Duplicates int // accepted copies beyond the first
	BadBodies  int
}

func (f vendorFigures) String() string {
	return fmt.Sprintf("%d requests %v, received %d distinct spans, %d duplicate copies", f.Requests, f.Answers, f.Received, f.Duplicates)
}

func (v *fakeVendor) Figures() vendorFigures {
	v.mu.Lock()
	defer v.mu.Unlock()
	f := vendorFigures{Requests: v.requests, Answers: map[int]int{}, Received: len(v.received), BadBodies: v.badBodies}
	for k, n := range v.answers {
		f.Answers[k] = n
	}
	for _, n := range v.received {
		f.Duplicates += n - 1
	}
	return f
}

// Missing counts the ids in want not received yet, leaving out the span
// the vendor refuses.
func (v *fakeVendor) Missing(want map[string]bool) int {
	v.mu.Lock()
	defer v.mu.Unlock()
	n := 0
	for id := range want {
		if v.received[id] == 0 && id != v.poison {
			n++
		}
	}
	return n
}

// FirstReceived returns a copy of the first-receipt times.
func (v *fakeVendor) FirstReceived() map[string]time.Time {
	v.mu.Lock()
	defer v.mu.Unlock()
	out := make(map[string]time.Time, len(v.first))
	for k, t := range v.first {
		out[k] = t
	}
	return out
}

// Active is how many requests the vendor is handling right now.
func (v *fakeVendor) Active() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.active
}

// Requests is how many requests arrived so far.
func (v *fakeVendor) Requests() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.requests
}

// Received returns a copy of the accepted span ids with their counts.
func (v *fakeVendor) Received() map[string]int {
	v.mu.Lock()
	defer v.mu.Unlock()
	out := make(map[string]int, len(v.received))
	for k, n := range v.received {
		out[k] = n
	}
	return out
}
