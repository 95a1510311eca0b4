package batcher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kern-agents/trace-gateway/internal/model"
	"github.com/kern-agents/trace-gateway/internal/store"
)

// fakeStore records committed batches. fail, when set, decides a batch's
// error; gate, when set, holds every Write until it is closed (or the
// write's context ends).
type fakeStore struct {
	mu       sync.Mutex
	batches  [][]model.Span
	calls    int
	inFlight int
	maxIn    int
	fail     func(spans []model.Span) error
	gate     chan struct{}
	started  chan struct{} // receives once per Write call, if set
}

func (f *fakeStore) Write(ctx context.Context, spans []model.Span) error {
	f.mu.Lock()
	f.calls++
	f.inFlight++
	f.maxIn = max(f.maxIn, f.inFlight)
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.inFlight--
		f.mu.Unlock()
	}()
	if f.started != nil {
		f.started <- struct{}{}
	}
	if f.gate != nil {
		select {
		case <-f.gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if f.fail != nil {
		if err := f.fail(spans); err != nil {
			return err
		}
	}
	f.mu.Lock()
	f.batches = append(f.batches, slices.Clone(spans))
	f.mu.Unlock()
	return nil
}

func (f *fakeStore) callCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

// waitStarted waits until a Write call has begun.
func (f *fakeStore) waitStarted(t *testing.T) {
	t.Helper()
	select {
	case <-f.started:
	case <-time.After(5 * time.Second):
		t.Fatal("write did not start")
	}
}

func (f *fakeStore) written() (ids []string, sizes []int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, b := range f.batches {
		sizes = append(sizes, len(b))
		for _, s := range b {
			ids = append(ids, s.SpanID)
		}
	}
	return ids, sizes
}

type observer struct {
	mu    sync.Mutex
	spans int
	errs  int
}

func (o *observer) BatchWritten(n int, _ time.Duration, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.spans += n
	if err != nil {
		o.errs++
	}
}

var seq atomic.Int64

// spans makes n spans with unique ids, the first named prefix.
func spans(n int, prefix string) []model.Span {
	out := make([]model.Span, n)
	for i := range out {
		out[i].SpanID = prefix + strconv.FormatInt(seq.Add(1), 10)
	}
	return out
}

func newBatcher(t *testing.T, w Writer, opts Options) *Batcher {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	b := New(w, opts)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := b.Close(ctx); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return b
}

// submitAsync runs Submit in a goroutine and returns its result channel.
func submitAsync(b *Batcher, ctx context.Context, s []model.Span) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- b.Submit(ctx, s) }()
	return ch
}

func waitQueued(t *testing.T, b *Batcher, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for b.Queued() != n {
		if time.Now().After(deadline) {
			t.Fatalf("queued %d, want %d", b.Queued(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

func recv(t *testing.T, ch <-chan error) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(5 * time.Second):
		t.Fatal("Submit did not return")
		return nil
	}
}

func TestSubmitBlocksUntilCommitted(t *testing.T) {
	fs := &fakeStore{gate: make(chan struct{})}
	b := newBatcher(t, fs, Options{MaxDelay: time.Millisecond})
	res := submitAsync(b, context.Background(), spans(3, "a"))
	waitQueued(t, b, 3)
	select {
	case err := <-res:
		t.Fatalf("Submit returned %v before the write committed", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(fs.gate)
	if err := recv(t, res); err != nil {
		t.Fatal(err)
	}
	if ids, _ := fs.written(); len(ids) != 3 {
		t.Errorf("wrote %d spans, want 3", len(ids))
	}
	if b.Queued() != 0 {
		t.Errorf("queued %d after the write", b.Queued())
	}
}

func TestSizeFlush(t *testing.T) {
	fs := &fakeStore{}
	b := newBatcher(t, fs, Options{MaxBatchSpans: 10, MaxDelay: time.Hour, Writers: 1})
	var res []<-chan error
	for range 5 {
		res = append(res, submitAsync(b, context.Background(), spans(2, "s")))
	}
	for _, r := range res {
		if err := recv(t, r); err != nil {
			t.Fatal(err)
		}
	}
	if _, sizes := fs.written(); !slices.Equal(sizes, []int{10}) {
		t.Errorf("batch sizes %v, want one batch of 10", sizes)
	}
}

func TestBatchesDoNotSplitRequests(t *testing.T) {
	fs := &fakeStore{gate: make(chan struct{})}
	b := newBatcher(t, fs, Options{MaxBatchSpans: 10, MaxDelay: 20 * time.Millisecond, Writers: 1})
	// Hold the writer with a first batch so that the rest queue up.
	first := submitAsync(b, context.Background(), spans(10, "f"))
	waitQueued(t, b, 10)
	var res []<-chan error
	for _, n := range []int{6, 6, 25, 3} {
		res = append(res, submitAsync(b, context.Background(), spans(n, "r")))
		waitQueued(t, b, 10+sumUpTo(len(res), []int{6, 6, 25, 3}))
	}
	close(fs.gate)
	for _, r := range append(res, first) {
		if err := recv(t, r); err != nil {
			t.Fatal(err)
		}
	}
	// 6+6 > 10 so they go apart; the 25-span request is a batch of its own.
	_, sizes := fs.written()
	if !slices.Equal(sizes, []int{10, 6, 6, 25, 3}) {
		t.Errorf("batch sizes %v, want [10 6 6 25 3]", sizes)
	}
}

func sumUpTo(n int, xs []int) int {
	s := 0
	for _, x := range xs[:n] {
		s += x
	}
	return s
}

// TestGroupCommit: while every writer is busy, the next batch keeps taking
// the requests that arrive, even past MaxDelay, and goes whole to the
// writer that frees up first.
func TestGroupCommit(t *testing.T) {
	fs := &fakeStore{gate: make(chan struct{}), started: make(chan struct{}, 8)}
	b := newBatcher(t, fs, Options{MaxBatchSpans: 100, MaxDelay: time.Millisecond, Writers: 1})
	res := []<-chan error{submitAsync(b, context.Background(), spans(1, "a"))}
	fs.waitStarted(t)
	for i, n := range []int{2, 3, 4} {
		res = append(res, submitAsync(b, context.Background(), spans(n, "g")))
		// Each request is taken into the waiting batch, which is due
		// already, before the next one comes.
		waitQueued(t, b, 1+sumUpTo(i+1, []int{2, 3, 4}))
		waitTaken(t, b)
		time.Sleep(2 * time.Millisecond)
	}
	close(fs.gate)
	for _, r := range res {
		if err := recv(t, r); err != nil {
			t.Fatal(err)
		}
	}
	if _, sizes := fs.written(); !slices.Equal(sizes, []int{1, 9}) {
		t.Errorf("batch sizes %v, want [1 9]: the three requests that came while the writer was busy in one batch", sizes)
	}
}

// TestNoDelayWritesAtOnce: with MaxDelay 0 a lone request is written as soon
// as a writer is free, not when a batch fills up.
func TestNoDelayWritesAtOnce(t *testing.T) {
	fs := &fakeStore{started: make(chan struct{}, 8)}
	b := newBatcher(t, fs, Options{MaxBatchSpans: 1000, Writers: 1})
	if err := recv(t, submitAsync(b, context.Background(), spans(1, "n"))); err != nil {
		t.Fatal(err)
	}
	if _, sizes := fs.written(); !slices.Equal(sizes, []int{1}) {
		t.Errorf("batch sizes %v, want [1]", sizes)
	}
}

// waitTaken waits until the dispatcher has taken every pending request into
// a batch.
func waitTaken(t *testing.T, b *Batcher) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		b.mu.Lock()
		n := len(b.pending)
		b.mu.Unlock()
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d requests still pending", n)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestTimeFlush(t *testing.T) {
	fs := &fakeStore{}
	b := newBatcher(t, fs, Options{MaxBatchSpans: 1000, MaxDelay: 40 * time.Millisecond})
	start := time.Now()
	if err := b.Submit(context.Background(), spans(1, "t")); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 40*time.Millisecond || d > 2*time.Second {
		t.Errorf("a lone span was written after %v, want about MaxDelay (40ms)", d)
	}
}

func TestManyConcurrentSubmitters(t *testing.T) {
	fs := &fakeStore{}
	obs := &observer{}
	b := newBatcher(t, fs, Options{MaxBatchSpans: 100, MaxDelay: 2 * time.Millisecond, Writers: 3, Observer: obs})
	var wg sync.WaitGroup
	var want sync.Map
	errs := make(chan error, 1000)
	for g := range 40 {
		wg.Go(func() {
			for i := range 15 {
				s := spans(1+(g*7+i*13)%40, "c")
				for _, x := range s {
					want.Store(x.SpanID, true)
				}
				if err := b.Submit(context.Background(), s); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	ids, sizes := fs.written()
	seen := map[string]bool{}
	for _, id := range ids {
		if seen[id] {
			t.Fatalf("span %s written twice", id)
		}
		seen[id] = true
		if _, ok := want.Load(id); !ok {
			t.Fatalf("unknown span %s written", id)
		}
	}
	n := 0
	want.Range(func(k, _ any) bool {
		n++
		if !seen[k.(string)] {
			t.Errorf("span %s never written", k)
		}
		return true
	})
	for _, s := range sizes {
		if s > 100 {
			t.Errorf("batch of %d spans exceeds MaxBatchSpans", s)
		}
	}
	if len(sizes) >= 600 {
		t.Errorf("%d batches for 600 requests: nothing was batched", len(sizes))
	}
	if obs.spans != n || obs.errs != 0 {
		t.Errorf("observer saw %d spans, %d errors; want %d, 0", obs.spans, obs.errs, n)
	}
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fs.maxIn > 3 {
		t.Errorf("%d concurrent writes, want at most 3", fs.maxIn)
	}
}

func TestWritersRunConcurrently(t *testing.T) {
	fs := &fakeStore{gate: make(chan struct{}), started: make(chan struct{}, 10)}
	b := newBatcher(t, fs, Options{MaxBatchSpans: 1, MaxDelay: time.Millisecond, Writers: 3})
	var res []<-chan error
	for range 3 {
		res = append(res, submitAsync(b, context.Background(), spans(1, "w")))
	}
	for range 3 {
		select {
		case <-fs.started:
		case <-time.After(5 * time.Second):
			t.Fatal("three writes did not start concurrently")
		}
	}
	close(fs.gate)
	for _, r := range res {
		if err := recv(t, r); err != nil {
			t.Fatal(err)
		}
	}
}

func TestQueueFull(t *testing.T) {
	fs := &fakeStore{gate: make(chan struct{})}
	b := newBatcher(t, fs, Options{MaxQueueSpans: 10, MaxDelay: time.Millisecond, Writers: 1})
	a := submitAsync(b, context.Background(), spans(6, "a"))
	waitQueued(t, b, 6)
	c := submitAsync(b, context.Background(), spans(4, "c"))
	waitQueued(t, b, 10)

	start := time.Now()
	if err := b.Submit(context.Background(), spans(1, "x")); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("Submit on a full queue: %v, want ErrQueueFull", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("ErrQueueFull took %v; it must be immediate", d)
	}
	close(fs.gate)
	for _, r := range []<-chan error{a, c} {
		if err := recv(t, r); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Submit(context.Background(), spans(1, "y")); err != nil {
		t.Errorf("Submit after the queue drained: %v", err)
	}
}

func TestOversizedRequestOnEmptyQueue(t *testing.T) {
	fs := &fakeStore{}
	b := newBatcher(t, fs, Options{MaxQueueSpans: 10, MaxBatchSpans: 5, MaxDelay: time.Millisecond})
	if err := b.Submit(context.Background(), spans(25, "big")); err != nil {
		t.Fatalf("a request larger than the queue was refused on an empty queue: %v", err)
	}
	if _, sizes := fs.written(); !slices.Equal(sizes, []int{25}) {
		t.Errorf("sizes %v, want the request written whole", sizes)
	}
}

func TestCloseDrains(t *testing.T) {
	fs := &fakeStore{}
	b := New(fs, Options{MaxBatchSpans: 1000, MaxDelay: time.Hour})
	var res []<-chan error
	for range 5 {
		res = append(res, submitAsync(b, context.Background(), spans(3, "d")))
	}
	waitQueued(t, b, 15)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := b.Close(ctx); err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if err := recv(t, r); err != nil {
			t.Errorf("accepted request failed on close: %v", err)
		}
	}
	if ids, _ := fs.written(); len(ids) != 15 {
		t.Errorf("close wrote %d spans, want 15", len(ids))
	}
	if err := b.Submit(context.Background(), spans(1, "late")); !errors.Is(err, ErrClosed) {
		t.Errorf("Submit after Close: %v, want ErrClosed", err)
	}
	if err := b.Close(ctx); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestCloseGivesUp(t *testing.T) {
	fs := &fakeStore{gate: make(chan struct{})} // never opened
	b := New(fs, Options{MaxDelay: time.Millisecond, Writers: 1})
	stuck := submitAsync(b, context.Background(), spans(1, "stuck"))
	waitQueued(t, b, 1)
	queued := submitAsync(b, context.Background(), spans(1, "queued"))
	waitQueued(t, b, 2)

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := b.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Close: %v, want the context's error", err)
	}
	if err := recv(t, stuck); !errors.Is(err, context.Canceled) {
		t.Errorf("in-flight request: %v, want the cancelled write's error", err)
	}
	if err := recv(t, queued); err == nil {
		t.Error("a request that was never written reported success")
	}
}

func TestErrorIsolatesBadRequest(t *testing.T) {
	errBad := errors.New("value too long for column")
	fs := &fakeStore{gate: make(chan struct{}), started: make(chan struct{}, 10), fail: func(s []model.Span) error {
		for _, x := range s {
			if x.SpanID[:3] == "bad" {
				return fmt.Errorf("write batch: %w", errBad)
			}
		}
		return nil
	}}
	obs := &observer{}
	// Batches flush only when full (6 spans), so their make-up is fixed.
	b := newBatcher(t, fs, Options{MaxBatchSpans: 6, MaxDelay: time.Hour, Writers: 1, Observer: obs})
	hold := submitAsync(b, context.Background(), spans(6, "hold"))
	fs.waitStarted(t)
	good1 := submitAsync(b, context.Background(), spans(2, "ok"))
	waitQueued(t, b, 8)
	bad := submitAsync(b, context.Background(), spans(2, "bad"))
	waitQueued(t, b, 10)
	good2 := submitAsync(b, context.Background(), spans(2, "ok"))
	waitQueued(t, b, 12)
	close(fs.gate)

	if err := recv(t, hold); err != nil {
		t.Error(err)
	}
	for _, r := range []<-chan error{good1, good2} {
		if err := recv(t, r); err != nil {
			t.Errorf("good request failed with its batch: %v", err)
		}
	}
	if err := recv(t, bad); !errors.Is(err, errBad) {
		t.Errorf("bad request: %v, want the store's error", err)
	}
	if ids, _ := fs.written(); len(ids) != 10 {
		t.Errorf("wrote %d spans, want the 10 good ones", len(ids))
	}
	// hold; the failed batch of 6; then each of its requests alone.
	obs.mu.Lock()
	defer obs.mu.Unlock()
	if fs.callCount() != 5 || obs.errs != 2 {
		t.Errorf("%d writes, %d errors; want 5 writes, 2 errors", fs.callCount(), obs.errs)
	}
}

func TestUnavailablePassesThrough(t *testing.T) {
	down := fmt.Errorf("connect: %w", store.ErrUnavailable)
	fs := &fakeStore{gate: make(chan struct{}), started: make(chan struct{}, 10), fail: func([]model.Span) error { return down }}
	b := newBatcher(t, fs, Options{MaxBatchSpans: 2, MaxDelay: time.Hour, Writers: 1})
	// Occupy the writer, then queue two requests that form one full batch.
	first := submitAsync(b, context.Background(), spans(2, "a"))
	fs.waitStarted(t)
	r1 := submitAsync(b, context.Background(), spans(1, "b"))
	r2 := submitAsync(b, context.Background(), spans(1, "c"))
	waitQueued(t, b, 4)
	close(fs.gate)
	for _, r := range []<-chan error{first, r1, r2} {
		if err := recv(t, r); !errors.Is(err, store.ErrUnavailable) {
			t.Errorf("got %v, want an error wrapping store.ErrUnavailable", err)
		}
	}
	if n := fs.callCount(); n != 2 {
		t.Errorf("%d writes; an unavailable database must not be retried request by request", n)
	}
}

func TestSubmitContext(t *testing.T) {
	fs := &fakeStore{gate: make(chan struct{})}
	b := newBatcher(t, fs, Options{MaxDelay: time.Millisecond, Writers: 1})
	defer close(fs.gate)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := b.Submit(ctx, spans(1, "x")); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: %v", err)
	}
	if b.Queued() != 0 {
		t.Error("a cancelled submit was queued")
	}

	ctx, cancel = context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := b.Submit(ctx, spans(1, "y")); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("deadline: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Submit ignored its context for %v", d)
	}
	if err := b.Submit(context.Background(), nil); err != nil {
		t.Errorf("empty submit: %v", err)
	}
}

func TestAbandonedRequestIsNotWritten(t *testing.T) {
	fs := &fakeStore{gate: make(chan struct{})}
	b := newBatcher(t, fs, Options{MaxBatchSpans: 1, MaxDelay: time.Millisecond, Writers: 1})
	hold := submitAsync(b, context.Background(), spans(1, "hold"))
	waitQueued(t, b, 1)
	// The dispatcher now holds "next" as its batch; "gone" stays pending.
	next := submitAsync(b, context.Background(), spans(1, "next"))
	waitQueued(t, b, 2)
	ctx, cancel := context.WithCancel(context.Background())
	gone := submitAsync(b, ctx, spans(1, "gone"))
	waitQueued(t, b, 3)
	cancel()
	if err := recv(t, gone); !errors.Is(err, context.Canceled) {
		t.Fatalf("abandoned submit: %v", err)
	}
	close(fs.gate)
	for _, r := range []<-chan error{hold, next} {
		if err := recv(t, r); err != nil {
			t.Fatal(err)
		}
	}
	waitQueued(t, b, 0)
	ids, _ := fs.written()
	for _, id := range ids {
		if id[:4] == "gone" {
			t.Error("a request abandoned before it was batched was written")
		}
	}
}

func TestWriterPanicFailsBatchOnly(t *testing.T) {
	calls := atomic.Int32{}
	fs := &fakeStore{fail: func([]model.Span) error {
		if calls.Add(1) == 1 {
			panic("driver bug")
		}
		return nil
	}}
	b := newBatcher(t, fs, Options{MaxDelay: time.Millisecond})
	if err := b.Submit(context.Background(), spans(1, "p")); err == nil {
		t.Error("a panicking write reported success")
	}
	if err := b.Submit(context.Background(), spans(1, "q")); err != nil {
		t.Errorf("the batcher did not survive a panicking write: %v", err)
	}
}

// loggingStore is a fakeStore that reports the delivery-log row of each
// write: every span but those named "dup".
type loggingStore struct{ fakeStore }

func (l *loggingStore) WriteLogged(ctx context.Context, spans []model.Span) ([]string, error) {
	if err := l.Write(ctx, spans); err != nil {
		return nil, err
	}
	var ids []string
	for _, s := range spans {
		if s.Name != "dup" {
			ids = append(ids, s.SpanID)
		}
	}
	return ids, nil
}

// logObserver records SpansLogged calls and the order of observations.
type logObserver struct {
	observer
	events []string
	logged [][]string
}

func (o *logObserver) BatchWritten(n int, d time.Duration, err error) {
	o.observer.BatchWritten(n, d, err)
	o.mu.Lock()
	o.events = append(o.events, "written")
	o.mu.Unlock()
}

func (o *logObserver) SpansLogged(spans []model.Span, ids []string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.events = append(o.events, "logged")
	o.logged = append(o.logged, ids)
}

// TestLoggedRowsAreReported: with a store that reports its delivery-log
// rows, a LogObserver hears of each row before the write is reported (the
// fan-out announces its builds before waking its workers), and of none for
// a write that logged nothing or failed.
func TestLoggedRowsAreReported(t *testing.T) {
	cases := []struct {
		name       string
		spans      []model.Span
		fail       bool
		wantLogged []string
		wantEvents []string
	}{
		{"new spans", []model.Span{{SpanID: "a"}, {SpanID: "b"}}, false, []string{"a", "b"}, []string{"logged", "written"}},
		{"some already stored", []model.Span{{SpanID: "c"}, {SpanID: "d", Name: "dup"}}, false, []string{"c"}, []string{"logged", "written"}},
		{"all already stored", []model.Span{{SpanID: "e", Name: "dup"}}, false, nil, []string{"written"}},
		{"failed write", []model.Span{{SpanID: "f"}}, true, nil, []string{"written"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ls := &loggingStore{}
			if tc.fail {
				ls.fail = func([]model.Span) error { return errors.New("disk full") }
			}
			obs := &logObserver{}
			b := newBatcher(t, ls, Options{Observer: obs})
			err := b.Submit(context.Background(), tc.spans)
			if (err != nil) != tc.fail {
				t.Fatalf("Submit = %v", err)
			}
			obs.mu.Lock()
			defer obs.mu.Unlock()
			if !slices.Equal(obs.events, tc.wantEvents) {
				t.Errorf("events %v, want %v", obs.events, tc.wantEvents)
			}
			var got []string
			if len(obs.logged) > 0 {
				got = obs.logged[0]
			}
			if !slices.Equal(got, tc.wantLogged) {
				t.Errorf("logged %v, want %v", got, tc.wantLogged)
			}
		})
	}
}
