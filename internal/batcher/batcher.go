// Package batcher groups the spans of many concurrent export requests into
// large store writes. A sender's request is answered only after its spans
// are committed, so Submit blocks until the batch holding them is written.
//
// Batches are written by Writers goroutines and commit as a group: a batch
// goes to the first free writer, and while every writer is busy it keeps
// taking the requests that arrive, up to MaxBatchSpans. So under load
// batches grow with the backlog, and when a writer is free a request is
// written at once (or after MaxDelay, when set, to wait for company).
// Requests are never split across batches. The queue of accepted
// but unwritten spans is bounded by MaxQueueSpans; beyond it Submit fails at
// once with ErrQueueFull so that receivers can push back (HTTP 429, gRPC
// RESOURCE_EXHAUSTED) instead of buffering without bound.
package batcher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kern-agents/trace-gateway/internal/model"
	"github.com/kern-agents/trace-gateway/internal/store"
)

var (
	// ErrQueueFull means the write queue has no room; retry later.
	ErrQueueFull = errors.New("ingest queue full")
	// ErrClosed means the batcher is shutting down and accepts no more spans.
	ErrClosed = errors.New("ingest batcher closed")
)

// Writer stores one batch in one transaction; store.Store satisfies it.
type Writer interface {
	Write(ctx context.Context, spans []model.Span) error
}

// Observer is told about every store write, for metrics.
type Observer interface {
	// BatchWritten reports one Write call: how many spans, how long it
	// took and its error.
	BatchWritten(spans int, d time.Duration, err error)
}

// LogObserver is an Observer that also wants, after each write that appended
// a delivery-log row, the spans written and the row's span ids (reported
// when the Writer is a store.LoggedWriter). It must not modify spans and
// may keep them.
type LogObserver interface {
	SpansLogged(spans []model.Span, ids []string)
}

// Defaults for Options.
const (
	DefaultMaxBatchSpans = 2048
	DefaultWriters       = 2
	DefaultMaxQueueSpans = 100_000
	DefaultWriteTimeout  = 30 * time.Second
)

// Options tune batching; zero fields take the defaults.
type Options struct {
	MaxBatchSpans int           // a batch holds at most this many spans, unless one request has more (default 2048)
	MaxDelay      time.Duration // while a writer is free, wait this long for more requests (default 0: none)
	Writers       int           // concurrent store writes (default 2)
	MaxQueueSpans int           // accepted but unwritten spans before ErrQueueFull (default 100k)
	WriteTimeout  time.Duration // bound on one Write call (default 30s)
	Observer      Observer      // optional
	Logger        *slog.Logger  // optional; slog.Default() when nil
}

func (o Options) withDefaults() Options {
	if o.MaxBatchSpans <= 0 {
		o.MaxBatchSpans = DefaultMaxBatchSpans
	}
	if o.Writers <= 0 {
		o.Writers = DefaultWriters
	}
	if o.MaxQueueSpans <= 0 {
		o.MaxQueueSpans = DefaultMaxQueueSpans
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = DefaultWriteTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// request states.
const (
	statePending int32 = iota
	stateTaken
	stateAbandoned
)

type request struct {
	spans    []model.Span
	done     chan error // buffered: writers never block on it
	state    atomic.Int32
	enqueued time.Time
}

// Batcher batches spans across requests; see the package comment.
type Batcher struct {
	w    Writer
	opts Options

	mu      sync.Mutex
	pending []*request
	queued  int // spans accepted and not finished (pending + in flight)
	closed  bool

	wake      chan struct{} // cap 1: "pending changed"
	closing   chan struct{} // closed by Close
	closeOnce sync.Once
	batches   chan []*request
	done      chan struct{} // closed when every goroutine has exited

	// ctx bounds the writes; cancelled when Close gives up waiting.
	ctx    context.Context
	cancel context.CancelFunc
}

// New starts a batcher writing to w. Call Close to stop it.
func New(w Writer, opts Options) *Batcher {
	opts = opts.withDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	b := &Batcher{
		w:       w,
		opts:    opts,
		wake:    make(chan struct{}, 1),
		closing: make(chan struct{}),
		batches: make(chan []*request),
		done:    make(chan struct{}),
		ctx:     ctx,
		cancel:  cancel,
	}
	var writers sync.WaitGroup
	for range opts.Writers {
		writers.Go(func() {
			for batch := range b.batches {
				b.write(batch)
			}
		})
	}
	go b.dispatch()
	go func() {
		writers.Wait()
		close(b.done)
	}()
	return b
}

// Submit queues spans and waits until they are committed. It returns nil
// once they are, the store's error if the write failed (errors wrapping
// store.ErrUnavailable included), ErrQueueFull at once when there is no
// room, ErrClosed after Close, or ctx's error if ctx ends first (the spans
// may then still be written: writes are idempotent on span_id, so a retry by
// the sender is harmless).
func (b *Batcher) Submit(ctx context.Context, spans []model.Span) error {
	if len(spans) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	r := &request{spans: spans, done: make(chan error, 1), enqueued: time.Now()}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return ErrClosed
	}
	// A request larger than the whole queue is still taken when the queue
	// is empty; otherwise it could never be stored.
	if b.queued > 0 && b.queued+len(spans) > b.opts.MaxQueueSpans {
		b.mu.Unlock()
		return ErrQueueFull
	}
	b.queued += len(spans)
	b.pending = append(b.pending, r)
	b.mu.Unlock()
	select {
	case b.wake <- struct{}{}:
	default:
	}

	select {
	case err := <-r.done:
		return err
	case <-ctx.Done():
		// If still queued, the dispatcher drops it; if already in a batch,
		// it is written anyway.
		r.state.CompareAndSwap(statePending, stateAbandoned)
		return ctx.Err()
	}
}

// Queued returns how many spans are accepted but not yet written.
func (b *Batcher) Queued() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.queued
}

// Close stops accepting spans (Submit returns ErrClosed), writes everything
// already accepted and returns. If ctx ends first, in-flight writes are
// cancelled, requests not yet written fail with ErrClosed, and ctx's error is
// returned.
func (b *Batcher) Close(ctx context.Context) error {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	b.closeOnce.Do(func() { close(b.closing) })
	select {
	case <-b.done:
		return nil
	case <-ctx.Done():
		b.cancel()
		<-b.done
		return ctx.Err()
	}
}

// dispatch moves pending requests into batches and hands full or due
// batches to the writers.
func (b *Batcher) dispatch() {
	defer close(b.batches)
	var (
		cur    []*request
		curN   int
		oldest time.Time
		timer  = time.NewTimer(time.Hour)
	)
	timer.Stop()
	for {
		if b.ctx.Err() != nil {
			b.failAll(cur)
			return
		}
		b.mu.Lock()
		for len(b.pending) > 0 {
			r := b.pending[0]
			if curN > 0 && curN+len(r.spans) > b.opts.MaxBatchSpans {
				break
			}
			b.pending[0] = nil
			b.pending = b.pending[1:]
			if !r.state.CompareAndSwap(statePending, stateTaken) {
				b.queued -= len(r.spans) // abandoned by its submitter
				continue
			}
			if curN == 0 {
				oldest = r.enqueued
			}
			cur = append(cur, r)
			curN += len(r.spans)
		}
		if len(b.pending) == 0 {
			b.pending = nil // let the array go
		}
		more, closed := len(b.pending) > 0, b.closed
		b.mu.Unlock()

		full := more || curN >= b.opts.MaxBatchSpans
		if curN > 0 && (full || closed || time.Since(oldest) >= b.opts.MaxDelay) {
			// Group commit (package comment): until a writer takes it, a
			// batch with room keeps taking the requests that arrive.
			var grow <-chan struct{}
			if !full && !closed {
				grow = b.wake
			}
			select {
			case b.batches <- cur:
				cur, curN = nil, 0
			case <-grow:
			case <-b.ctx.Done():
				b.failAll(cur)
				return
			}
			continue
		}
		if curN == 0 && closed && !more {
			return
		}
		var due <-chan time.Time
		if curN > 0 {
			timer.Reset(time.Until(oldest.Add(b.opts.MaxDelay)))
			due = timer.C
		}
		select {
		case <-b.wake:
		case <-due:
		case <-b.closing:
		case <-b.ctx.Done():
		}
		timer.Stop()
	}
}

// failAll ends cur and every pending request with ErrClosed.
func (b *Batcher) failAll(cur []*request) {
	b.mu.Lock()
	all := append(cur, b.pending...)
	b.pending = nil
	for _, r := range all {
		b.queued -= len(r.spans)
	}
	b.mu.Unlock()
	for _, r := range all {
		r.done <- ErrClosed
	}
}

func (b *Batcher) write(batch []*request) {
	n := 0
	for _, r := range batch {
		n += len(r.spans)
	}
	spans := batch[0].spans
	if len(batch) > 1 {
		spans = make([]model.Span, 0, n)
		for _, r := range batch {
			spans = append(spans, r.spans...)
		}
	}
	errs := make([]error, len(batch))
	err := b.writeOnce(spans)
	if err != nil && len(batch) > 1 && isolatable(err) && b.ctx.Err() == nil {
		// One bad request must not fail the others: write each alone once.
		b.opts.Logger.Warn("batch write failed; retrying its requests one by one",
			"requests", len(batch), "spans", n, "err", err)
		for i, r := range batch {
			errs[i] = b.writeOnce(r.spans)
		}
	} else {
		for i := range errs {
			errs[i] = err
		}
	}
	// Release the room before answering, so that a submitter that got its
	// answer sees the queue without its spans.
	b.mu.Lock()
	b.queued -= n
	b.mu.Unlock()
	for i, r := range batch {
		r.done <- errs[i]
	}
}

// isolatable reports whether retrying a failed batch request by request can
// help: not when the database is down or the write timed out.
func isolatable(err error) bool {
	return !errors.Is(err, store.ErrUnavailable) &&
		!errors.Is(err, context.DeadlineExceeded) &&
		!errors.Is(err, context.Canceled)
}

func (b *Batcher) writeOnce(spans []model.Span) (err error) {
	ctx, cancel := context.WithTimeout(b.ctx, b.opts.WriteTimeout)
	defer cancel()
	start := time.Now()
	defer func() {
		// A bug in a store must fail its batch, not the whole process.
		if r := recover(); r != nil {
			b.opts.Logger.Error("store write panicked", "panic", r, "stack", string(debug.Stack()))
			err = fmt.Errorf("store write panicked: %v", r)
		}
		if b.opts.Observer != nil {
			b.opts.Observer.BatchWritten(len(spans), time.Since(start), err)
		}
	}()
	lw, logs := b.w.(store.LoggedWriter)
	lo, wants := b.opts.Observer.(LogObserver)
	if !logs || !wants {
		return b.w.Write(ctx, spans)
	}
	logged, err := lw.WriteLogged(ctx, spans)
	if err == nil && len(logged) > 0 {
		lo.SpansLogged(spans, logged)
	}
	return err
}
