package dispatch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/kern-agents/trace-gateway/internal/convert"
	"github.com/kern-agents/trace-gateway/internal/model"
	"github.com/kern-agents/trace-gateway/internal/store"
	"github.com/kern-agents/trace-gateway/plugins"
)

const (
	// claimBatches is how many export batches one claim holds at most, so a
	// claim round trip is amortised over a few exports while memory stays
	// bounded by the batch size.
	claimBatches = 4
	// maxRetryAfter caps the wait a destination may ask for.
	maxRetryAfter = time.Hour
	// maxReason bounds the reason stored with a dead letter.
	maxReason = 2000
	// releaseTimeout bounds handing a claim back at shutdown.
	releaseTimeout = 5 * time.Second
	// claimTimeout bounds one Claim call.
	claimTimeout = 30 * time.Second
	// recordProgress is how often a claim's progress is recorded between
	// its batches (keepLease records it too): a takeover after a crash
	// resends at most this much, and fast destinations do not write to the
	// database after every batch.
	recordProgress = time.Second
	// maxDrain bounds how long a destination being removed or restarted
	// may take to finish its claim before it is cut off.
	maxDrain = 10 * time.Second
)

// errDraining ends delivery when the worker is asked to stop.
var errDraining = errors.New("destination stopping")

// exportDeadline is the worker's own bound on one Export. The plugin host
// applies Timeout to each call itself and, when a plugin does not answer in
// time, kills and restarts it; it only does so when its deadline fires
// before the caller's, so the worker's is a little longer.
func exportDeadline(timeout time.Duration) time.Duration {
	return timeout + timeout/2 + time.Second
}

// cleanReason makes an error message storable: valid UTF-8 without NUL
// (PostgreSQL refuses both in text), at most maxReason bytes.
func cleanReason(s string) string {
	s = strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "")
	if len(s) <= maxReason {
		return s
	}
	cut := maxReason
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// worker delivers one destination's spans. It exports one batch at a time.
type worker struct {
	d     *Dispatcher
	name  string
	start StartFunc
	p     Policy
	log   *slog.Logger
	obs   Observer
	wake  chan struct{}

	// drain is closed to ask the worker to finish its claim and return;
	// cancel cuts it off; done is closed when run has returned.
	drain  chan struct{}
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex // guards exp, breaker and state against the stats reader and the reporter
	exp     Exporter
	breaker breaker
	state   workerState

	stateChanged chan struct{} // wakes the reporter (see report.go)

	// Spans this process committed since the last Claim, and when the
	// first of them was (unix ns, 0: none): see due.
	fresh      atomic.Int64
	firstFresh atomic.Int64
}

func newWorker(d *Dispatcher, dest Destination) *worker {
	p := dest.Policy.withDefaults()
	return &worker{
		d:       d,
		name:    dest.Name,
		start:   dest.Start,
		p:       p,
		log:     d.opts.Logger.With("destination", dest.Name),
		obs:     d.opts.Observer,
		wake:    make(chan struct{}, 1),
		drain:   make(chan struct{}),
		done:    make(chan struct{}),
		breaker: breaker{threshold: p.BreakerFailures, coolDown: p.BreakerCoolDown},

		stateChanged: make(chan struct{}, 1),
	}
}

// launch runs the worker in its own goroutine under a child of ctx.
func (w *worker) launch(ctx context.Context) {
	ctx, w.cancel = context.WithCancel(ctx)
	go func() {
		defer close(w.done)
		defer w.cancel()
		w.reporting(ctx, func() { w.run(ctx) })
	}()
}

// stop ends a running worker for good (destination removed or restarted
// with new settings): it finishes the claim in hand if the destination takes
// it within the grace period, else hands it back where it got to, then the
// plugin is closed. A failure to close is only logged: nothing is lost.
func (w *worker) stop(ctx context.Context) {
	close(w.drain)
	grace := time.NewTimer(min(exportDeadline(w.p.Timeout), maxDrain))
	defer grace.Stop()
	select {
	case <-w.done:
	case <-grace.C:
		w.log.Warn("destination did not finish its batch in time; handing the rest of its claim back")
		w.cancel()
	case <-ctx.Done():
		w.cancel()
	}
	select {
	case <-w.done:
	case <-ctx.Done():
		// Still reading the database; close the plugin once it is done,
		// without reporting on a destination that is gone.
		go func() {
			<-w.done
			w.mu.Lock()
			exp := w.exp
			w.exp = nil
			w.mu.Unlock()
			if exp != nil {
				cctx, cancel := context.WithTimeout(context.Background(), releaseTimeout)
				defer cancel()
				_ = exp.Close(cctx)
			}
		}()
		return
	}
	if err := w.close(ctx); err != nil {
		w.log.Warn("closing the destination's plugin failed", "err", err)
	}
	w.log.Info("destination stopped")
}

// draining reports whether the worker was asked to stop.
func (w *worker) draining() bool {
	select {
	case <-w.drain:
		return true
	default:
		return false
	}
}

// pause waits d; it reports false, early, when ctx ends or the worker is
// asked to stop.
func (w *worker) pause(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil && !w.draining()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-w.drain:
		return false
	case <-t.C:
		return true
	}
}

// interrupted is the error that ends a wait cut short by pause.
func (w *worker) interrupted(ctx context.Context) error {
	if err := context.Cause(ctx); err != nil {
		return err
	}
	return errDraining
}

func (w *worker) run(ctx context.Context) {
	for attempt := 1; ; attempt++ {
		err := w.d.log.EnsureCursor(ctx, w.name)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return
		}
		wait := backoff(attempt, w.d.opts.StartBackoff, w.d.opts.MaxStartBackoff)
		w.log.Warn("cannot set up the destination's delivery cursor; retrying", "err", err, "retry_in", wait)
		if !w.pause(ctx, wait) {
			return
		}
	}
	if !w.startExporter(ctx) {
		return
	}
	req := store.ClaimRequest{
		Owner:    w.d.opts.Owner,
		Lease:    w.p.Lease,
		MaxSpans: claimBatches * w.p.MaxSpans,
		MinSpans: w.p.MaxSpans,
		MaxDelay: w.p.MaxDelay,
	}
	failures := 0
	for ctx.Err() == nil && !w.draining() {
		// A claim is made whole even when Stop comes meanwhile (process
		// then hands it straight back): a commit cut off by cancellation
		// could leave a claim nobody releases until its lease expires.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), claimTimeout)
		spans, first := w.forgetWritten()
		c, wait, err := w.d.log.Claim(cctx, w.name, req)
		cancel()
		if c == nil && wait == 0 {
			w.unforget(spans, first)
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			failures++
			w.noteError(err)
			wait := backoff(failures, w.d.opts.StartBackoff, w.d.opts.MaxStartBackoff)
			w.log.Warn("reading the delivery log failed; retrying", "err", err, "retry_in", wait)
			w.pause(ctx, wait)
			continue
		}
		failures = 0
		if c == nil {
			w.idle(ctx, wait)
			continue
		}
		w.process(ctx, c)
		w.rest(ctx, c, req)
	}
}

// notify wakes the worker if it is idle.
func (w *worker) notify() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// written counts spans this process committed at now.
func (w *worker) written(spans int, now time.Time) {
	w.fresh.Add(int64(spans))
	w.firstFresh.CompareAndSwap(0, now.UnixNano())
}

// forgetWritten starts counting committed spans afresh before a Claim,
// which sees those committed so far, and returns what was counted.
func (w *worker) forgetWritten() (spans int, first int64) {
	return int(w.fresh.Swap(0)), w.firstFresh.Swap(0)
}

// unforget counts again spans a Claim did not see (their transactions
// were not yet older than every running one).
func (w *worker) unforget(spans int, first int64) {
	if first == 0 {
		return
	}
	w.fresh.Add(int64(spans))
	for {
		cur := w.firstFresh.Load()
		if cur != 0 && cur <= first || w.firstFresh.CompareAndSwap(cur, first) {
			return
		}
	}
}

// due is how long until this process's own writes since the last Claim
// are worth a Claim: now when they fill a whole claim (or nothing was
// counted: a bare Notify), else a poll interval (at most MaxDelay) after
// the first of them, the pace at which pending rows were always looked
// at. Every Notify used to cost each destination a Claim that mostly found
// too few spans: most of the fan-out's statements. Waiting for less than
// a whole claim would make smaller claims and more, smaller exports.
func (w *worker) due(now time.Time) time.Duration {
	first := w.firstFresh.Load()
	if first == 0 || w.fresh.Load() >= int64(claimBatches*w.p.MaxSpans) {
		return 0
	}
	return time.Unix(0, first).Add(min(w.p.MaxDelay, w.d.opts.PollInterval)).Sub(now)
}

// idle waits for work: until pending rows are due (wait > 0), or else
// until Notify or the next poll (rows other replicas wrote). A Notify
// ends the wait when this process's spans since the last Claim are due
// (see due), else moves it to when they will be: no poll is needed before
// a Claim that is coming anyway.
func (w *worker) idle(ctx context.Context, wait time.Duration) {
	polling := wait <= 0
	if polling {
		wait = w.d.opts.PollInterval
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.drain:
			return
		case <-t.C:
			return
		case <-w.wake:
		}
		d := w.due(time.Now())
		if d <= 0 {
			return
		}
		if polling || d < wait {
			polling, wait = false, d
			t.Reset(d)
		}
	}
}

// rest waits after a claim was delivered until the next one can be due:
// a claim short of MaxSpans took every row that was, and this process
// counts what it committed since. A full or taken-over claim may have
// more behind it, which is claimed at once.
func (w *worker) rest(ctx context.Context, c *store.Claim, req store.ClaimRequest) {
	if c.Attempts > 1 || c.Spans+req.MinSpans > req.MaxSpans {
		return
	}
	if d := w.due(time.Now()); d > 0 || w.firstFresh.Load() == 0 {
		w.idle(ctx, d)
	}
}

// startExporter starts the plugin, retrying with backoff until it starts or
// ctx ends. The first failure is logged as an error naming the
// destination; repeats of the same failure only at debug level.
func (w *worker) startExporter(ctx context.Context) bool {
	var last string
	for attempt := 1; ; attempt++ {
		exp, err := w.start(ctx)
		if err == nil {
			w.mu.Lock()
			w.exp = exp
			w.mu.Unlock()
			w.obs.PluginUp(w.name, true)
			if attempt > 1 {
				w.log.Info("destination plugin started", "attempts", attempt)
			}
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		w.noteError(fmt.Errorf("plugin failed to start: %w", err))
		wait := backoff(attempt, w.d.opts.StartBackoff, w.d.opts.MaxStartBackoff)
		switch {
		case attempt == 1:
			w.log.Error("destination plugin failed to start; its spans wait in the database while it is retried in the background",
				"err", err, "retry_in", wait)
		case err.Error() != last:
			w.log.Warn("destination plugin still failing to start", "attempt", attempt, "err", err, "retry_in", wait)
		default:
			w.log.Debug("destination plugin still failing to start", "attempt", attempt, "retry_in", wait)
		}
		last = err.Error()
		if !w.pause(ctx, wait) {
			return false
		}
	}
}

// process delivers one claim. It returns when the claim is completed, handed
// back (shutdown, database trouble) or lost to another replica.
func (w *worker) process(ctx context.Context, c *store.Claim) {
	cctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var done atomic.Int64
	done.Store(int64(c.Done))
	var keeper sync.WaitGroup
	keeper.Go(func() { w.keepLease(cctx, cancel, c, &done) })
	defer keeper.Wait()
	defer cancel(nil) // stops the keeper before waiting for it

	log := w.log.With("claim", c.ID)
	if c.Attempts > 1 {
		log.Info("resuming a claim another holder left", "attempt", c.Attempts, "spans", c.Spans, "done", c.Done)
	}
	rows := c.SpanIDs
	if rows == nil {
		var err error
		if rows, err = w.d.log.ClaimSpanIDs(cctx, c); err != nil {
			w.giveBack(cctx, c, int(done.Load()), err)
			return
		}
	}
	ids, pieces := layout(rows, c.Done, w.p.MaxSpans)
	recorded := time.Now()
	for len(pieces) > 0 {
		a, used, err := w.assemble(cctx, ids, pieces)
		if err == nil {
			err = w.send(cctx, a)
		}
		if err != nil {
			w.giveBack(cctx, c, int(done.Load()), err)
			return
		}
		pos := pieces[used-1].to
		pieces = pieces[used:]
		done.Store(int64(pos))
		if len(pieces) > 0 && time.Since(recorded) >= recordProgress {
			// Record progress, so a takeover does not resend what went.
			if err := w.d.log.Renew(cctx, c, pos, w.p.Lease); err != nil {
				w.giveBack(cctx, c, pos, err)
				return
			}
			recorded = time.Now()
		}
	}
	if err := w.d.log.Complete(cctx, c); err != nil {
		w.giveBack(cctx, c, len(ids), err)
		return
	}
	log.Debug("claim delivered", "spans", len(ids)-c.Done)
}

// giveBack ends work on a claim that could not be finished. After a lost
// lease there is nothing to do (the new holder continues); otherwise the
// claim is released so that this or another replica resumes it at done.
func (w *worker) giveBack(ctx context.Context, c *store.Claim, done int, err error) {
	if cause := context.Cause(ctx); errors.Is(cause, store.ErrLeaseLost) || errors.Is(err, store.ErrLeaseLost) {
		w.log.Warn("another replica took over this claim after its lease expired; it will deliver the rest",
			"claim", c.ID, "done", done)
		return
	}
	switch {
	case errors.Is(err, errDraining):
		w.log.Info("destination stopping; handing the rest of its claim back", "claim", c.ID, "done", done)
	case ctx.Err() == nil:
		w.log.Warn("delivery interrupted; handing the claim back", "claim", c.ID, "err", err)
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), releaseTimeout)
	defer cancel()
	if rerr := w.d.log.Release(rctx, c, done); rerr != nil && !errors.Is(rerr, store.ErrLeaseLost) {
		w.log.Warn("could not hand the claim back; it is resumed when its lease expires", "claim", c.ID, "err", rerr)
	}
	w.pause(ctx, w.d.opts.PollInterval) // do not spin on a failing database
}

// keepLease renews the claim's lease every third of its length until ctx
// ends; when the lease is lost it cancels the claim's work.
func (w *worker) keepLease(ctx context.Context, cancel context.CancelCauseFunc, c *store.Claim, done *atomic.Int64) {
	t := time.NewTicker(w.p.Lease / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := w.d.log.Renew(ctx, c, int(done.Load()), w.p.Lease)
		switch {
		case errors.Is(err, store.ErrLeaseLost):
			cancel(err)
			return
		case err != nil && ctx.Err() == nil:
			w.log.Warn("renewing the claim's lease failed", "claim", c.ID, "err", err)
		}
	}
}

// piece is a run [from, to) of a claim's span ids that makes one chunk.
type piece struct{ from, to int }

// layout joins a claim's rows and cuts them into pieces of at most size ids
// along row boundaries, skipping the first done ids (already delivered).
// Every destination claims whole rows, so pieces of the same rows are
// alike across destinations and their chunks are built once.
func layout(rows [][]string, done, size int) ([]string, []piece) {
	var ids []string
	var pieces []piece
	for _, row := range rows {
		start := len(ids)
		ids = append(ids, row...)
		for from := start; from < len(ids); from += size {
			if to := min(from+size, len(ids)); to > done {
				pieces = append(pieces, piece{from: max(from, done), to: to})
			}
		}
	}
	return ids, pieces
}

// batch is one export. Spans the route passes unchanged travel as the
// encoded chunks, in parts; spans the route filtered or redacted as pdata.
type batch struct {
	encoded bool
	parts   [][]byte // when encoded: encoded requests, together the batch
	ids     []string // when encoded: the span ids in parts
	td      ptrace.Traces
}

// joined is the batch of chunks sent as one request. The chunks are shared
// and read-only; they go to the exporter as they are, never copied into one.
func joined(chunks []chunk) batch {
	n := 0
	for _, ch := range chunks {
		n += len(ch.parts)
	}
	b := batch{encoded: true, parts: make([][]byte, 0, n)}
	for _, ch := range chunks {
		b.parts = append(b.parts, ch.parts...)
		b.ids = append(b.ids, ch.ids...)
	}
	return b
}

func (b batch) spans() int {
	if b.encoded {
		return len(b.ids)
	}
	return b.td.SpanCount()
}

// traces returns b's spans as pdata, decoding the parts of an encoded batch.
func (b batch) traces() (ptrace.Traces, error) {
	if !b.encoded {
		return b.td, nil
	}
	return (&ptrace.ProtoUnmarshaler{}).UnmarshalTraces(bytes.Join(b.parts, nil))
}

// spanIDs lists the batch's span ids, for dead letters.
func (b batch) spanIDs() []string {
	if b.encoded {
		return b.ids
	}
	return spanIDs(b.td)
}

// assembled is what one export round sends: chunks as they are when the
// route passes every span unchanged, else the routed spans as pdata.
type assembled struct {
	chunks []chunk
	td     ptrace.Traces
}

// assemble builds pieces into what one round exports, at most MaxSpans
// claimed ids (always at least one piece), and returns it with how many
// pieces it used.
func (w *worker) assemble(ctx context.Context, ids []string, pieces []piece) (assembled, int, error) {
	var a assembled
	encoded := w.p.Route.PassesAll()
	if !encoded {
		a.td = ptrace.NewTraces()
	}
	used, claimed, filtered := 0, 0, 0
	for used < len(pieces) {
		p := pieces[used]
		if used > 0 && claimed+p.to-p.from > w.p.MaxSpans {
			break
		}
		ch, td, err := w.chunk(ctx, ids[p.from:p.to], encoded)
		if err != nil {
			return a, 0, err
		}
		if encoded {
			a.chunks = append(a.chunks, ch)
		} else {
			in := td.SpanCount()
			filtered += in - w.p.Route.Apply(td)
			td.ResourceSpans().MoveAndAppendTo(a.td.ResourceSpans())
		}
		claimed += p.to - p.from
		used++
	}
	if filtered > 0 {
		w.obs.Filtered(w.name, filtered)
	}
	return a, used, nil
}

// chunk returns the chunk of ids, built here, by another destination or
// from the spans as they were written. td is the chunk as pdata, a private
// copy the caller may change; when encoded is set only the chunk's bytes
// are needed and td may be empty.
func (w *worker) chunk(ctx context.Context, ids []string, encoded bool) (chunk, ptrace.Traces, error) {
	ch, _, err := w.d.shared.do(ctx, ids, func() (chunk, bool, error) {
		// Only clean conversions are shared: a row that failed to convert
		// is dead-lettered by each destination for itself.
		return w.build(ctx, ids)
	})
	if err != nil || encoded {
		return ch, ptrace.Traces{}, err
	}
	td, err := (&ptrace.ProtoUnmarshaler{}).UnmarshalTraces(ch.payload())
	return ch, td, err
}

// build loads and encodes the spans of ids. clean reports that every loaded
// row converted; when one does not, the others are encoded row by row and
// the failing ones dead-lettered.
func (w *worker) build(ctx context.Context, ids []string) (ch chunk, clean bool, err error) {
	rows, err := w.d.log.Spans(ctx, ids)
	if err != nil {
		return chunk{}, false, err
	}
	if ch, err := encodeChunk(rows); err == nil {
		return ch, true, nil
	}
	td, err := w.convertEach(ctx, rows)
	if err != nil {
		return chunk{}, false, err
	}
	ch, err = newChunk(td)
	return ch, err == nil && td.SpanCount() == len(rows), err
}

// send delivers a in requests of at most MaxBytes each. Chunks are
// grouped as they are; only a chunk over MaxBytes on its own is decoded to
// be split.
func (w *worker) send(ctx context.Context, a assembled) error {
	if a.chunks == nil {
		return w.sendSpans(ctx, a.td)
	}
	var group []chunk
	size := 0
	flush := func() error {
		if len(group) == 0 {
			return nil
		}
		err := w.deliver(ctx, joined(group))
		group, size = nil, 0
		return err
	}
	for _, ch := range a.chunks {
		switch {
		case len(ch.ids) == 0:
			continue // its spans are gone (retention)
		case ch.size > w.p.MaxBytes:
			if err := flush(); err != nil {
				return err
			}
			td, err := (&ptrace.ProtoUnmarshaler{}).UnmarshalTraces(ch.payload())
			if err != nil {
				return fmt.Errorf("decoding spans this gateway encoded: %w", err)
			}
			if err := w.sendSpans(ctx, td); err != nil {
				return err
			}
			continue
		case size+ch.size > w.p.MaxBytes:
			if err := flush(); err != nil {
				return err
			}
		}
		group = append(group, ch)
		size += ch.size
	}
	return flush()
}

// sendSpans delivers td in parts of at most MaxBytes each.
func (w *worker) sendSpans(ctx context.Context, td ptrace.Traces) error {
	if td.SpanCount() == 0 {
		return nil
	}
	for _, part := range splitBytes(td, w.p.MaxBytes) {
		if err := w.deliver(ctx, batch{td: part}); err != nil {
			return err
		}
	}
	return nil
}

// convertEach rebuilds OTLP data from stored rows one by one. A row that
// cannot be converted (corrupt attributes) can never be sent: it is
// dead-lettered and the rest go on.
func (w *worker) convertEach(ctx context.Context, rows []model.Span) (ptrace.Traces, error) {
	td := ptrace.NewTraces()
	for i := range rows {
		one, err := convert.ToOTLP(rows[i : i+1])
		if err != nil {
			if err := w.recordDeadLetter(ctx, []string{rows[i].SpanID}, "stored span cannot be converted to OTLP: "+err.Error()); err != nil {
				return td, err
			}
			continue
		}
		one.ResourceSpans().MoveAndAppendTo(td.ResourceSpans())
	}
	return td, nil
}

// deliver exports b until the destination accepts it, refuses it for good
// (dead letter), or retries run out (dead letter). It returns an error only
// when ctx ends (shutdown, lost lease) or a dead letter cannot be recorded.
func (w *worker) deliver(ctx context.Context, b batch) error {
	refused, err := w.exportRetrying(ctx, b)
	if err != nil || refused == nil {
		return err
	}
	return w.settle(ctx, b, refused)
}

// settle dead-letters what the destination refused of b for good: the spans
// the refusal names when it names them (the rest was accepted), else what
// isolate finds.
func (w *worker) settle(ctx context.Context, b batch, refused error) error {
	if ids := refusedSpanIDs(refused); ids != nil {
		return w.recordDeadLetter(ctx, ids, refused.Error())
	}
	return w.isolate(ctx, b, refused)
}

// refusedSpanIDs returns the spans a refusal names as the only ones refused
// (see RefusedSpans), or nil.
func refusedSpanIDs(err error) []string {
	var some RefusedSpans
	if errors.As(err, &some) {
		return some.RefusedSpanIDs()
	}
	return nil
}

// isolate deals with a batch the destination refused for good. A refusal
// may concern a few spans (a vendor that rejects one malformed or oversized
// span rejects the whole request with it) or all of them (bad credentials,
// a wrong endpoint). The batch is halved: while one half is accepted and the
// other refused, the refused half is halved again, so that one bad span
// costs about 2·log2(n) more calls and only it is dead-lettered. When both
// halves are refused the refusal is taken to be about the whole, and both
// are dead-lettered without more calls.
func (w *worker) isolate(ctx context.Context, b batch, refused error) error {
	halves, ok := halve(b)
	if !ok {
		return w.recordDeadLetter(ctx, b.spanIDs(), refused.Error())
	}
	w.log.Info("destination refused a batch for good; halving it to find the spans it refuses",
		"spans", b.spans(), "err", refused)
	var refusals [2]error
	for i, h := range halves {
		r, err := w.exportRetrying(ctx, h)
		if err != nil {
			return err
		}
		refusals[i] = r
	}
	if refusals[0] != nil && refusals[1] != nil {
		var ids []string
		for i, h := range halves {
			named := refusedSpanIDs(refusals[i])
			if named == nil {
				named = h.spanIDs()
			}
			ids = append(ids, named...)
		}
		return w.recordDeadLetter(ctx, ids, refusals[0].Error())
	}
	for i, h := range halves {
		if refusals[i] != nil {
			return w.settle(ctx, h, refusals[i])
		}
	}
	return nil
}

// halve cuts b into two batches of half its spans each; ok is false when
// it holds fewer than two spans (or, encoded, does not decode: that cannot
// be halved either).
func halve(b batch) (halves [2]batch, ok bool) {
	td, err := b.traces()
	if err != nil || td.SpanCount() < 2 {
		return halves, false
	}
	parts := halveSpans(td)
	return [2]batch{{td: parts[0]}, {td: parts[1]}}, true
}

// exportRetrying exports b, retrying, until the destination accepts it
// (nil, nil), refuses it for good (the refusal, nil: the caller decides what
// to dead-letter), or retries run out (dead-lettered here). err is set only
// when ctx ends or a dead letter cannot be recorded.
func (w *worker) exportRetrying(ctx context.Context, b batch) (refused, err error) {
	n := b.spans()
	first := time.Now()
	for attempt := 0; ; {
		if wait := w.breakerWait(); wait > 0 {
			if !w.pause(ctx, wait) {
				return nil, w.interrupted(ctx)
			}
			continue
		}
		w.mu.Lock()
		exp := w.exp
		w.mu.Unlock()
		ectx, cancel := context.WithTimeout(ctx, exportDeadline(w.p.Timeout))
		err := export(ectx, exp, b)
		cancel()
		if err == nil {
			w.breakerSuccess()
			w.obs.Exported(w.name, n)
			if attempt > 0 {
				w.log.Info("destination accepted the batch again", "attempts", attempt+1, "after", time.Since(first).Round(time.Millisecond))
			}
			return nil, nil
		}
		if ctx.Err() != nil {
			return nil, context.Cause(ctx)
		}
		permanent := plugins.IsPermanent(err)
		w.obs.ExportFailed(w.name, permanent)
		w.noteError(err)
		if permanent {
			w.breakerSuccess() // it answered: the destination is up
			return err, nil
		}
		attempt++
		w.breakerFailure()
		wait := backoff(attempt, w.p.RetryInitial, w.p.RetryMax)
		if after, ok := plugins.RetryAfter(err); ok {
			wait = min(after, maxRetryAfter)
		}
		if w.p.RetryMaxElapsed > 0 && time.Since(first)+wait > w.p.RetryMaxElapsed {
			return nil, w.recordDeadLetter(ctx, b.spanIDs(), fmt.Sprintf("gave up after %d attempts in %s: %v",
				attempt, time.Since(first).Round(time.Millisecond), err))
		}
		w.obs.Retried(w.name)
		w.noteRetry()
		if attempt == 1 {
			w.log.Warn("export failed; retrying", "spans", n, "err", err, "retry_in", wait)
		} else {
			w.log.Debug("export failed again", "spans", n, "attempt", attempt, "err", err, "retry_in", wait)
		}
		if !w.pause(ctx, wait) {
			return nil, w.interrupted(ctx)
		}
	}
}

// export makes one Export call with b.
func export(ctx context.Context, exp Exporter, b batch) error {
	if !b.encoded {
		return exp.Export(ctx, b.td)
	}
	if ee, ok := exp.(EncodedExporter); ok {
		return ee.ExportEncoded(ctx, b.parts)
	}
	td, err := b.traces()
	if err != nil {
		return plugins.Permanent(fmt.Errorf("decoding a batch this gateway encoded: %w", err))
	}
	return exp.Export(ctx, td)
}

// recordDeadLetter stores spans the destination will never take, retrying
// while the database is unavailable: the claim must not move past spans
// that are neither delivered nor recorded.
func (w *worker) recordDeadLetter(ctx context.Context, ids []string, reason string) error {
	reason = cleanReason(reason)
	for attempt := 1; ; attempt++ {
		id, err := w.d.log.AddDeadLetter(ctx, store.DeadLetter{Destination: w.name, SpanIDs: ids, Reason: reason})
		if err == nil {
			w.obs.DeadLettered(w.name, len(ids))
			w.log.Error("destination refused spans for good; moved them to the dead letters (see `gateway deadletters list`)",
				"spans", len(ids), "dead_letter", id, "reason", reason)
			return nil
		}
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		wait := backoff(attempt, w.d.opts.StartBackoff, w.d.opts.MaxStartBackoff)
		w.log.Warn("recording a dead letter failed; retrying", "err", err, "retry_in", wait)
		if !sleep(ctx, wait) {
			return context.Cause(ctx)
		}
	}
}

func (w *worker) breakerWait() time.Duration {
	w.mu.Lock()
	before := w.breaker.state
	wait := w.breaker.wait(time.Now())
	after := w.breaker.state
	w.mu.Unlock()
	if before != after {
		w.obs.CircuitState(w.name, after)
		w.changed()
		w.log.Info("circuit breaker half-open: probing the destination with one batch")
	}
	return wait
}

func (w *worker) breakerSuccess() {
	w.mu.Lock()
	before, failures := w.breaker.state, w.breaker.failures
	w.breaker.success()
	w.mu.Unlock()
	if before != Closed || failures > 0 {
		w.changed()
	}
	if before != Closed {
		w.obs.CircuitState(w.name, Closed)
		w.log.Info("circuit breaker closed: the destination answers again")
	}
}

func (w *worker) breakerFailure() {
	w.mu.Lock()
	opened := w.breaker.failure(time.Now())
	failures := w.breaker.failures
	w.mu.Unlock()
	w.changed()
	if opened {
		w.obs.CircuitState(w.name, Open)
		w.log.Warn("circuit breaker open: pausing exports", "consecutive_failures", failures, "cool_down", w.p.BreakerCoolDown)
	}
}

// reportStats refreshes the destination's backlog and plugin metrics.
func (w *worker) reportStats(ctx context.Context) {
	if w.draining() {
		return // removed or being restarted: its series are dropped
	}
	if b, err := w.d.log.Backlog(ctx, w.name); err == nil {
		var lag time.Duration
		if !b.Oldest.IsZero() {
			lag = max(time.Since(b.Oldest), 0)
		}
		w.obs.Backlog(w.name, b.Spans, lag)
	} else if ctx.Err() == nil {
		w.log.Debug("reading the backlog failed", "err", err)
	}
	w.mu.Lock()
	exp, state := w.exp, w.breaker.state
	w.mu.Unlock()
	w.obs.CircuitState(w.name, state)
	up := exp != nil
	if p, ok := exp.(interface{ Pid() int }); ok && up {
		up = p.Pid() != 0
	}
	w.obs.PluginUp(w.name, up)
	if r, ok := exp.(Restarter); ok {
		w.obs.PluginRestarts(w.name, r.Restarts())
	}
}

// close shuts the plugin down; the worker goroutine has ended.
func (w *worker) close(ctx context.Context) error {
	w.mu.Lock()
	exp := w.exp
	w.exp = nil
	w.mu.Unlock()
	w.obs.PluginUp(w.name, false)
	if exp == nil {
		return nil
	}
	if err := exp.Close(ctx); err != nil {
		return fmt.Errorf("destination %q: %w", w.name, err)
	}
	return nil
}
