package dispatch

import (
	"context"
	"sync"
	"time"

	"github.com/kern-agents/trace-gateway/internal/store"
)

// Each worker reports its destination's state (circuit, consecutive
// failures, retries, last error) to the database (store.WorkerReport), so
// that `gateway status` shows it whichever replica runs the destination.
// Reports are cheap: one row per destination and replica, written when the
// state changes, at most once per reportGap, and otherwise every
// ReportInterval to show the replica is still there.

// reportGap is the least time between two reports of one worker.
const reportGap = time.Second

// reportValidity is how long a report holds: a replica that stops
// reporting (killed) no longer counts after three missed intervals.
func reportValidity(interval time.Duration) time.Duration { return 3 * interval }

// workerState is what the worker reports beside its breaker; guarded by
// worker.mu.
type workerState struct {
	retries   int64
	lastErr   string
	lastErrAt time.Time
}

// changed asks the reporter to write the worker's state soon.
func (w *worker) changed() {
	select {
	case w.stateChanged <- struct{}{}:
	default: // a report is already due
	}
}

// noteError records err as the destination's latest failure.
func (w *worker) noteError(err error) {
	w.mu.Lock()
	w.state.lastErr, w.state.lastErrAt = cleanReason(err.Error()), time.Now()
	w.mu.Unlock()
	w.changed()
}

// noteRetry counts a retry scheduled.
func (w *worker) noteRetry() {
	w.mu.Lock()
	w.state.retries++
	w.mu.Unlock()
	w.changed()
}

// circuitNames are the breaker states as reports name them.
var circuitNames = map[State]string{Closed: store.CircuitClosed, HalfOpen: store.CircuitHalfOpen, Open: store.CircuitOpen}

// report is the worker's state as a report holding validFor.
func (w *worker) report(validFor time.Duration) store.WorkerReport {
	w.mu.Lock()
	defer w.mu.Unlock()
	return store.WorkerReport{
		Destination: w.name,
		Owner:       w.d.opts.Owner,
		Circuit:     circuitNames[w.breaker.state],
		Failures:    w.breaker.failures,
		Retries:     w.state.retries,
		LastError:   w.state.lastErr,
		LastErrorAt: w.state.lastErrAt,
		ValidFor:    validFor,
	}
}

// writeReport stores the worker's state. A failure is only logged at debug
// level: the database trouble shows in the worker's own errors, and the
// next report replaces this one.
func (w *worker) writeReport(ctx context.Context, validFor time.Duration) {
	ctx, cancel := context.WithTimeout(ctx, releaseTimeout)
	defer cancel()
	if err := w.d.log.RecordWorker(ctx, w.report(validFor)); err != nil && ctx.Err() == nil {
		w.log.Debug("recording the destination's state failed", "err", err)
	}
}

// reportLoop reports at once, then on every change (at most once per
// reportGap) and every ReportInterval, until ctx ends.
func (w *worker) reportLoop(ctx context.Context) {
	interval := w.d.opts.ReportInterval
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.stateChanged:
		case <-t.C:
		}
		w.writeReport(ctx, reportValidity(interval))
		t.Reset(interval)
		if !sleep(ctx, reportGap) {
			return
		}
	}
}

// reporting runs fn with the reporter beside it; when fn returns, the
// reporter stops and a last report marks this replica as no longer running
// the destination (keeping its last error).
func (w *worker) reporting(ctx context.Context, fn func()) {
	rctx, stop := context.WithCancel(ctx)
	var reporter sync.WaitGroup
	reporter.Go(func() { w.reportLoop(rctx) })
	fn()
	stop()
	reporter.Wait()
	w.writeReport(context.WithoutCancel(ctx), 0)
}
