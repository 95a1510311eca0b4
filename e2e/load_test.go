package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/kern-agents/trace-gateway/internal/sim"
)

// loadOptions shape the continuous load.
type loadOptions struct {
	HTTPSenders, GRPCSenders int
	// TracesPerRequest is how many simulated agent runs (~11 spans each)
	// one export request carries; default 4.
	TracesPerRequest int
	// Pause is each sender's wait after an acknowledged request; default 10ms.
	Pause time.Duration
	// MaxRetryWait caps an honoured Retry-After / RetryInfo; default 2s.
	MaxRetryWait time.Duration
	// GiveUpAfter bounds how long one request is retried; default 90s.
	GiveUpAfter time.Duration
}

func (o loadOptions) withDefaults() loadOptions {
	if o.TracesPerRequest == 0 {
		o.TracesPerRequest = 4
	}
	if o.Pause == 0 {
		o.Pause = 10 * time.Millisecond
	}
	if o.MaxRetryWait == 0 {
		o.MaxRetryWait = 2 * time.Second
	}
	if o.GiveUpAfter == 0 {
		o.GiveUpAfter = 90 * time.Second
	}
	return o
}

// outcome of one export attempt, as the sender sees it.
type outcome int

const (
	outOK         outcome = iota // 200 / OK: the spans are acknowledged
	outRetry                     // 429/503, RESOURCE_EXHAUSTED/UNAVAILABLE answered by the gateway
	outTransport                 // no answer: refused, reset, EOF, timeout
	outUnexpected                // any other answer (400, 500, INTERNAL, rejected spans)
)

// attempt is one export try.
type attempt struct {
	transport  string // http | grpc
	start, end time.Time
	outcome    outcome
	code       string // HTTP status or gRPC code, or the transport error
}

// loadGen sends simulated agent runs continuously from several senders over
// OTLP/HTTP and OTLP/gRPC, retrying like an OTLP exporter, and records which
// span ids the gateway acknowledged.
type loadGen struct {
	t    *testing.T
	opts loadOptions

	httpURL  string
	http     *http.Client
	grpcConn *grpc.ClientConn

	stopping chan struct{} // closed by Stop: no new requests
	abort    chan struct{} // closed by Abort: give up retrying
	wg       sync.WaitGroup
	inflight atomic.Int64

	mu           sync.Mutex
	sent         map[string]string    // span id → trace id, every span put in a request
	acked        map[string]time.Time // span id → when its request was answered 200/OK
	ackedSpans   []ackedSpan          // in ack order
	attempts     []attempt
	httpStatus   map[int]int
	grpcCode     map[codes.Code]int
	transportErr int
	retryHinted  int // retry answers carrying Retry-After / RetryInfo
	retryBare    int // retry answers without
	gaveUp       int // requests abandoned unacknowledged
	unexpected   []string
	open         map[int64]time.Time // attempts in flight → start
	nextID       int64
}

type ackedSpan struct {
	id string
	at time.Time
}

// startLoad starts the senders against g.
func startLoad(t *testing.T, g *gatewayProc, opts loadOptions) *loadGen {
	t.Helper()
	opts = opts.withDefaults()
	l := &loadGen{
		t:          t,
		opts:       opts,
		httpURL:    "http://" + g.OTLPHTTP + "/v1/traces",
		http:       &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}},
		stopping:   make(chan struct{}),
		abort:      make(chan struct{}),
		sent:       map[string]string{},
		acked:      map[string]time.Time{},
		httpStatus: map[int]int{},
		grpcCode:   map[codes.Code]int{},
		open:       map[int64]time.Time{},
	}
	if opts.GRPCSenders > 0 {
		conn, err := grpc.NewClient(g.OTLPGRPC,
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			// Reconnect quickly after a gateway restart.
			grpc.WithConnectParams(grpc.ConnectParams{
				Backoff:           backoff.Config{BaseDelay: 50 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 500 * time.Millisecond},
				MinConnectTimeout: 2 * time.Second,
			}))
		if err != nil {
			t.Fatalf("gRPC client: %v", err)
		}
		l.grpcConn = conn
	}
	t.Cleanup(func() {
		l.Abort()
		if l.grpcConn != nil {
			l.grpcConn.Close()
		}
		l.http.CloseIdleConnections()
	})
	for i := range opts.HTTPSenders {
		l.wg.Add(1)
		go l.sender("http", uint64(i))
	}
	for i := range opts.GRPCSenders {
		l.wg.Add(1)
		go l.sender("grpc", uint64(1000+i))
	}
	return l
}

// Stop lets every sender finish (retrying) its current request, then
// returns; after timeout the rest give up.
func (l *loadGen) Stop(timeout time.Duration) {
	select {
	case <-l.stopping:
	default:
		close(l.stopping)
	}
	done := make(chan struct{})
	go func() { l.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(timeout):
		l.Abort()
	}
}

// Abort makes every sender give up at once and waits for them.
func (l *loadGen) Abort() {
	select {
	case <-l.stopping:
	default:
		close(l.stopping)
	}
	select {
	case <-l.abort:
	default:
		close(l.abort)
	}
	l.wg.Wait()
}

func (l *loadGen) sender(transport string, seed uint64) {
	defer l.wg.Done()
	r := rand.New(rand.NewPCG(seed, uint64(time.Now().UnixNano())))
	for {
		select {
		case <-l.stopping:
			return
		default:
		}
		td, _, err := sim.CaptureTraces(context.Background(), sim.Options{
			Count: l.opts.TracesPerRequest, Seed: r.Int64(), ErrorRatio: 0.1, Users: 5, Sessions: 10,
		})
		if err != nil {
			l.t.Errorf("simulate: %v", err)
			return
		}
		ids := spanIDs(td)
		l.mu.Lock()
		for id, trace := range ids {
			l.sent[id] = trace
		}
		l.mu.Unlock()
		if !l.deliver(transport, td, ids) {
			return
		}
		select {
		case <-l.stopping:
			return
		case <-time.After(l.opts.Pause):
		}
	}
}

// deliver retries one request until it is acknowledged or given up; false
// means the sender must end.
func (l *loadGen) deliver(transport string, td ptrace.Traces, ids map[string]string) bool {
	req := ptraceotlp.NewExportRequestFromTraces(td)
	body, err := req.MarshalProto()
	if err != nil {
		l.t.Errorf("encode request: %v", err)
		return false
	}
	giveUp := time.Now().Add(l.opts.GiveUpAfter)
	for {
		var a attempt
		var wait time.Duration
		id := l.begin()
		if transport == "http" {
			a, wait = l.sendHTTP(body)
		} else {
			a, wait = l.sendGRPC(req)
		}
		l.finish(id, a, ids)
		if a.outcome == outOK {
			return true
		}
		if time.Now().After(giveUp) {
			l.mu.Lock()
			l.gaveUp++
			l.mu.Unlock()
			return true
		}
		select {
		case <-l.abort:
			l.mu.Lock()
			l.gaveUp++
			l.mu.Unlock()
			return false
		case <-time.After(min(wait, l.opts.MaxRetryWait)):
		}
	}
}

func (l *loadGen) begin() int64 {
	l.inflight.Add(1)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.nextID++
	l.open[l.nextID] = time.Now()
	return l.nextID
}

func (l *loadGen) finish(id int64, a attempt, ids map[string]string) {
	l.inflight.Add(-1)
	l.mu.Lock()
	defer l.mu.Unlock()
	a.start = l.open[id]
	delete(l.open, id)
	l.attempts = append(l.attempts, a)
	switch a.outcome {
	case outOK:
		for sid := range ids {
			if _, dup := l.acked[sid]; !dup {
				l.acked[sid] = a.end
				l.ackedSpans = append(l.ackedSpans, ackedSpan{sid, a.end})
			}
		}
	case outTransport:
		l.transportErr++
	case outUnexpected:
		if len(l.unexpected) < 20 {
			l.unexpected = append(l.unexpected, a.transport+": "+a.code)
		}
	}
}

// abortCtx is cancelled by Abort.
func (l *loadGen) abortCtx(timeout time.Duration) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	go func() {
		select {
		case <-l.abort:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

func (l *loadGen) sendHTTP(body []byte) (attempt, time.Duration) {
	a := attempt{transport: "http"}
	ctx, cancel := l.abortCtx(30 * time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, l.httpURL, bytes.NewReader(body))
	if err != nil {
		panic(err)
	}
	req.Header.Set("Content-Type", "application/x-protobuf")
	resp, err := l.http.Do(req)
	a.end = time.Now()
	if err != nil {
		a.outcome, a.code = outTransport, err.Error()
		return a, 100 * time.Millisecond
	}
	defer resp.Body.Close()
	msg, err := io.ReadAll(resp.Body)
	a.end = time.Now()
	a.code = strconv.Itoa(resp.StatusCode)
	l.mu.Lock()
	l.httpStatus[resp.StatusCode]++
	l.mu.Unlock()
	switch resp.StatusCode {
	case http.StatusOK:
		if err != nil {
			// The status line said 200, but the answer was cut: count it as
			// acknowledged anyway (the gateway committed before answering).
			a.outcome = outOK
			return a, 0
		}
		er := ptraceotlp.NewExportResponse()
		if err := er.UnmarshalProto(msg); err != nil {
			a.outcome, a.code = outUnexpected, "200 with an undecodable body: "+err.Error()
			return a, 0
		}
		if n := er.PartialSuccess().RejectedSpans(); n > 0 {
			a.outcome, a.code = outUnexpected, fmt.Sprintf("200 rejecting %d spans: %s", n, er.PartialSuccess().ErrorMessage())
			return a, 0
		}
		a.outcome = outOK
		return a, 0
	case http.StatusTooManyRequests, http.StatusServiceUnavailable:
		a.outcome = outRetry
		wait := 200 * time.Millisecond
		l.mu.Lock()
		if secs, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && secs > 0 {
			l.retryHinted++
			wait = time.Duration(secs) * time.Second
		} else {
			l.retryBare++
		}
		l.mu.Unlock()
		return a, wait
	default:
		a.outcome, a.code = outUnexpected, fmt.Sprintf("%d %s", resp.StatusCode, strings.TrimSpace(string(msg)))
		return a, 200 * time.Millisecond
	}
}

func (l *loadGen) sendGRPC(req ptraceotlp.ExportRequest) (attempt, time.Duration) {
	a := attempt{transport: "grpc"}
	ctx, cancel := l.abortCtx(30 * time.Second)
	defer cancel()
	resp, err := ptraceotlp.NewGRPCClient(l.grpcConn).Export(ctx, req)
	a.end = time.Now()
	st := status.Convert(err)
	a.code = st.Code().String()
	var hint time.Duration
	hinted := false
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			hinted, hint = true, ri.GetRetryDelay().AsDuration()
		}
	}
	// A gateway's refusal carries RetryInfo; UNAVAILABLE without it comes
	// from the client's transport (no connection).
	answered := err == nil || hinted || (st.Code() != codes.Unavailable && st.Code() != codes.DeadlineExceeded && st.Code() != codes.Canceled)
	if answered {
		l.mu.Lock()
		l.grpcCode[st.Code()]++
		l.mu.Unlock()
	}
	switch {
	case err == nil:
		if n := resp.PartialSuccess().RejectedSpans(); n > 0 {
			a.outcome, a.code = outUnexpected, fmt.Sprintf("OK rejecting %d spans: %s", n, resp.PartialSuccess().ErrorMessage())
			return a, 0
		}
		a.outcome = outOK
		return a, 0
	case !answered:
		a.outcome, a.code = outTransport, st.Code().String()+": "+st.Message()
		return a, 100 * time.Millisecond
	case st.Code() == codes.ResourceExhausted || st.Code() == codes.Unavailable:
		a.outcome = outRetry
		l.mu.Lock()
		if hinted {
			l.retryHinted++
		} else {
			l.retryBare++
		}
		l.mu.Unlock()
		if hint <= 0 {
			hint = 200 * time.Millisecond
		}
		return a, hint
	default:
		a.outcome, a.code = outUnexpected, st.Code().String()+": "+st.Message()
		return a, 200 * time.Millisecond
	}
}

// spanIDs maps each span id of td to its trace id.
func spanIDs(td ptrace.Traces) map[string]string {
	out := map[string]string{}
	rss := td.ResourceSpans()
	for i := range rss.Len() {
		sss := rss.At(i).ScopeSpans()
		for j := range sss.Len() {
			spans := sss.At(j).Spans()
			for k := range spans.Len() {
				sp := spans.At(k)
				out[sp.SpanID().String()] = sp.TraceID().String()
			}
		}
	}
	return out
}

// loadReport is a snapshot of what the senders saw.
type loadReport struct {
	Sent, Acked  int
	HTTPStatus   map[int]int
	GRPCCode     map[codes.Code]int
	TransportErr int
	RetryHinted  int
	RetryBare    int
	GaveUp       int
	Unexpected   []string
}

func (r loadReport) String() string {
	var hs []string
	for c, n := range r.HTTPStatus {
		hs = append(hs, fmt.Sprintf("%d×%d", c, n))
	}
	sort.Strings(hs)
	var gs []string
	for c, n := range r.GRPCCode {
		gs = append(gs, fmt.Sprintf("%s×%d", c, n))
	}
	sort.Strings(gs)
	return fmt.Sprintf("sent %d spans, acknowledged %d; HTTP answers [%s]; gRPC answers [%s]; no answer %d; retry hints %d (without %d); given up %d",
		r.Sent, r.Acked, strings.Join(hs, " "), strings.Join(gs, " "), r.TransportErr, r.RetryHinted, r.RetryBare, r.GaveUp)
}

func (l *loadGen) Report() loadReport {
	l.mu.Lock()
	defer l.mu.Unlock()
	r := loadReport{
		Sent: len(l.sent), Acked: len(l.acked), HTTPStatus: map[int]int{}, GRPCCode: map[codes.Code]int{},
		TransportErr: l.transportErr, RetryHinted: l.retryHinted, RetryBare: l.retryBare, GaveUp: l.gaveUp,
		Unexpected: append([]string(nil), l.unexpected...),
	}
	for k, v := range l.httpStatus {
		r.HTTPStatus[k] = v
	}
	for k, v := range l.grpcCode {
		r.GRPCCode[k] = v
	}
	return r
}

// Acked returns a copy of the acknowledged span ids with their ack times.
func (l *loadGen) Acked() map[string]time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string]time.Time, len(l.acked))
	for k, v := range l.acked {
		out[k] = v
	}
	return out
}

// Sent returns a copy of every span id put in a request (→ trace id).
func (l *loadGen) Sent() map[string]string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string]string, len(l.sent))
	for k, v := range l.sent {
		out[k] = v
	}
	return out
}

// AckedCount is how many spans are acknowledged so far.
func (l *loadGen) AckedCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.acked)
}

// AckedBetween counts spans acknowledged within [from, to).
func (l *loadGen) AckedBetween(from, to time.Time) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, a := range l.ackedSpans {
		if !a.at.Before(from) && a.at.Before(to) {
			n++
		}
	}
	return n
}

// Attempts returns a copy of every finished attempt.
func (l *loadGen) Attempts() []attempt {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]attempt(nil), l.attempts...)
}

// OldestInFlightStart is when the longest-running attempt began (zero when
// none is in flight).
func (l *loadGen) OldestInFlightStart() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	var oldest time.Time
	for _, s := range l.open {
		if oldest.IsZero() || s.Before(oldest) {
			oldest = s
		}
	}
	return oldest
}

// waitAcked waits until at least n spans are acknowledged in total.
func (l *loadGen) waitAcked(n int, timeout time.Duration) {
	l.t.Helper()
	deadline := time.Now().Add(timeout)
	for l.AckedCount() < n {
		if time.Now().After(deadline) {
			l.t.Fatalf("only %d spans acknowledged after %v, want %d; %s", l.AckedCount(), timeout, n, l.Report())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// firstAckAfter is the first acknowledgement at or after t (zero if none).
func (l *loadGen) firstAckAfter(t time.Time) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, a := range l.ackedSpans {
		if !a.at.Before(t) {
			return a.at
		}
	}
	return time.Time{}
}

// ackLatency is the p50 and p95 time from first try to 200/OK of attempts
// that started within [from, to).
func (l *loadGen) ackLatency(from, to time.Time) (p50, p95 time.Duration) {
	l.mu.Lock()
	var ds []time.Duration
	for _, a := range l.attempts {
		if a.outcome == outOK && !a.start.Before(from) && a.start.Before(to) {
			ds = append(ds, a.end.Sub(a.start))
		}
	}
	l.mu.Unlock()
	if len(ds) == 0 {
		return 0, 0
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	q := func(p float64) time.Duration { return ds[min(len(ds)-1, int(p*float64(len(ds))))] }
	return q(0.5), q(0.95)
}
