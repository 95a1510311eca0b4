// Package dispatch is the durable fan-out: it delivers every stored span to
// every destination that wants it, at least once, each destination in
// isolation.
//
// The database is the queue. Each store Write appends a delivery-log row
// listing the spans it added, in the same transaction (see
// store.DeliveryLog). Per destination, a worker claims the next committed
// rows after its cursor (bounded: one claim holds a few batches of span ids,
// whatever the backlog), loads those spans, applies the destination's
// route (filter, per-trace sampling, redaction), cuts batches by span count
// and encoded size, and exports them through the destination's plugin.
// Retryable failures back off exponentially with jitter (or as long as the
// destination asked); consecutive failures open a circuit breaker; permanent
// failures go to the dead-letter table. The claim is deleted only once every
// span in it was accepted or dead-lettered, so a crash, a restart or a
// killed replica loses nothing: its claim's lease expires and any replica
// takes it over, resuming after the last batch it recorded as delivered.
//
// A destination's problems stay its own: a plugin that fails to start is
// retried in the background, a destination that is down for a day only
// lets its backlog grow in the database, and neither touches ingest or the
// other destinations.
package dispatch

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/kern-agents/trace-gateway/internal/store"
)

// Exporter delivers batches to one destination; *pluginhost.Destination is
// one. Export returns nil when the destination accepted every span,
// plugins.Permanent errors when it never will, anything else to be retried
// (plugins.RetryAfter gives the wait the destination asked for).
type Exporter interface {
	Export(ctx context.Context, td ptrace.Traces) error
	Close(ctx context.Context) error
}

// EncodedExporter is implemented by exporters that can take a batch already
// encoded as protobuf OTLP ExportTraceServiceRequests, in parts that
// concatenated are the batch: spans every destination sends unchanged are
// encoded once for all of them, and never copied per destination.
type EncodedExporter interface {
	ExportEncoded(ctx context.Context, parts [][]byte) error
}

// RefusedSpans is implemented by an exporter's permanent error that names
// the only spans of the batch the destination refused; it took the rest.
// Other permanent errors leave the worker to find the refused spans itself.
type RefusedSpans interface {
	RefusedSpanIDs() []string
}

// Restarter is implemented by exporters that restart a plugin process; the
// count is reported as a metric.
type Restarter interface{ Restarts() uint64 }

// StartFunc starts a destination's exporter (its plugin process).
type StartFunc func(ctx context.Context) (Exporter, error)

// Destination is one fan-out target.
type Destination struct {
	Name   string
	Start  StartFunc
	Policy Policy
}

// Observer receives the fan-out's measurements, for metrics. Every method
// must be cheap and safe for concurrent use.
type Observer interface {
	Exported(dest string, spans int)          // spans the destination accepted
	Filtered(dest string, spans int)          // spans the route did not send
	ExportFailed(dest string, permanent bool) // one failed Export call
	Retried(dest string)                      // one retry scheduled
	DeadLettered(dest string, spans int)      // spans given up on
	Backlog(dest string, spans int64, lag time.Duration)
	CircuitState(dest string, s State)
	PluginUp(dest string, up bool)
	PluginRestarts(dest string, total uint64)
}

// Log is the delivery log the dispatcher works from; the stores implement
// it.
type Log interface {
	store.DeliveryLog
}

// Options tune the dispatcher; zero fields take the defaults.
type Options struct {
	Logger   *slog.Logger
	Observer Observer
	// Owner names this replica in claims (default host-pid-random).
	Owner string
	// PollInterval is how often an idle worker looks for new rows
	// (default 250ms); Notify wakes it sooner.
	PollInterval time.Duration
	// StatsInterval is how often backlog and plugin metrics are refreshed
	// (default 5s).
	StatsInterval time.Duration
	// TrimInterval is how often delivered log rows are deleted (default 30s).
	TrimInterval time.Duration
	// ReportInterval is how often a worker reports its destination's state
	// to the database when nothing changed (default 30s); see report.go.
	ReportInterval time.Duration
	// Retention, when positive, deletes spans, traces, log rows and dead
	// letters older than it through Pruner every PruneInterval (default 1m),
	// PruneBatch rows per statement (default 1000).
	Retention     time.Duration
	Pruner        store.Pruner
	PruneInterval time.Duration
	PruneBatch    int
	// StartBackoff and MaxStartBackoff pace retries of a plugin that failed
	// to start (default 1s doubling to 1m).
	StartBackoff    time.Duration
	MaxStartBackoff time.Duration
}

func (o *Options) withDefaults() {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Observer == nil {
		o.Observer = nopObserver{}
	}
	if o.Owner == "" {
		o.Owner = replicaID()
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.PollInterval, 250*time.Millisecond)
	def(&o.StatsInterval, 5*time.Second)
	def(&o.TrimInterval, 30*time.Second)
	def(&o.ReportInterval, 30*time.Second)
	def(&o.PruneInterval, time.Minute)
	def(&o.StartBackoff, time.Second)
	def(&o.MaxStartBackoff, time.Minute)
	if o.PruneBatch <= 0 {
		o.PruneBatch = 1000
	}
}

// replicaID names this process in claims: readable, and unique even when
// two replicas share a host and a pid namespace.
func replicaID() string {
	host, _ := os.Hostname()
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}

// DestinationRemover is implemented by observers that keep per-destination
// state (gauges, counters of plugin restarts): the dispatcher calls it when
// a destination's worker stops for good or is restarted with new settings.
type DestinationRemover interface{ DestinationRemoved(dest string) }

// Dispatcher runs one worker per destination plus the housekeeping (stats,
// log trimming, retention). Destinations can be added, removed and
// restarted while it runs (Update).
type Dispatcher struct {
	log  Log
	opts Options

	update  sync.Mutex // serialises Update and Stop
	mu      sync.Mutex // guards workers, ctx and stopped
	workers []*worker
	ctx     context.Context // parent of the workers' contexts, set by Start
	stopped bool

	cancel    context.CancelFunc
	housework sync.WaitGroup

	shared *sharedChunks // chunks built once, for every destination
	seeds  chan seedRow  // rows just written, for the seeder
}

// New prepares a dispatcher; Start runs it.
func New(log Log, dests []Destination, opts Options) *Dispatcher {
	opts.withDefaults()
	d := &Dispatcher{log: log, opts: opts}
	d.shared = newSharedChunks(sharedChunkBytes)
	d.seeds = make(chan seedRow, seedQueue)
	for _, dest := range dests {
		d.workers = append(d.workers, newWorker(d, dest))
	}
	return d
}

// snapshot returns the running workers.
func (d *Dispatcher) snapshot() []*worker {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.workers)
}

// ChunkStats reports how many chunks workers took from memory (built by
// another destination or from the spans just written) and how many they
// loaded from the database themselves. A growing share of the latter means
// destinations fall behind the newest writes.
func (d *Dispatcher) ChunkStats() (memory, database uint64) { return d.shared.stats() }

// Owner is the replica id this dispatcher claims work under.
func (d *Dispatcher) Owner() string { return d.opts.Owner }

// cursorSetupTimeout bounds Start's wait for the destinations' cursors.
const cursorSetupTimeout = 5 * time.Second

// Start launches the workers and housekeeping. Before returning it gives
// every new destination its cursor (briefly: a worker retries what fails),
// so spans accepted after Start are never behind a destination's starting
// point. Plugins start in the background: a destination that cannot start
// never delays ingest or the others.
func (d *Dispatcher) Start(ctx context.Context) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ctx != nil || d.stopped {
		return
	}
	setup, cancel := context.WithTimeout(ctx, cursorSetupTimeout)
	for _, w := range d.workers {
		if err := d.log.EnsureCursor(setup, w.name); err != nil {
			w.log.Debug("setting up the delivery cursor failed; the worker retries", "err", err)
		}
	}
	cancel()
	d.ctx, d.cancel = context.WithCancel(context.WithoutCancel(ctx))
	for _, w := range d.workers {
		w.launch(d.ctx)
	}
	d.housework.Go(func() { d.housekeeping(d.ctx) })
	d.housework.Go(func() { d.seeder(d.ctx) })
}

// Stop stops the workers, hands their claims back (so a restart or another
// replica resumes at once) and closes the plugins. It returns when all is
// done or ctx ends.
func (d *Dispatcher) Stop(ctx context.Context) error {
	d.update.Lock() // an Update in progress finishes first (bounded by its grace)
	defer d.update.Unlock()
	d.mu.Lock()
	d.stopped = true
	workers := slices.Clone(d.workers)
	started := d.cancel != nil
	d.mu.Unlock()
	if !started {
		return nil
	}
	d.cancel()
	done := make(chan struct{})
	go func() {
		d.housework.Wait()
		for _, w := range workers {
			<-w.done
		}
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		return fmt.Errorf("stop fan-out: %w", ctx.Err())
	}
	var errs []error
	for _, w := range workers {
		if err := w.close(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Update changes the running destinations: the workers named in remove stop
// (see below), then the destinations in add start. A name in both is
// restarted with its new settings and resumes from its cursor, so it neither
// skips nor repeats spans beyond the batch that was in flight. A name only in
// add that has no cursor yet starts with the spans stored from now on (as at
// Start); one that had a cursor (a destination removed earlier and added
// back) resumes from it.
//
// A stopping worker finishes the claim it is exporting when the destination
// accepts it within a grace period (min(1.5×timeout+1s, 10s), or until ctx
// ends), otherwise it hands the claim back where it got to; then its plugin
// is closed. Cursors, claims handed back and dead letters stay in the
// database.
//
// Update refuses, changing nothing, when a name in remove is not running, a
// name in add would run twice, or the new destinations' cursors cannot be set
// up. Before Start it only edits the list Start will run.
func (d *Dispatcher) Update(ctx context.Context, remove []string, add []Destination) error {
	d.update.Lock()
	defer d.update.Unlock()
	d.mu.Lock()
	stopped, running, started := d.stopped, map[string]bool{}, d.ctx != nil
	for _, w := range d.workers {
		running[w.name] = true
	}
	d.mu.Unlock()
	if stopped {
		return errors.New("fan-out stopped")
	}
	for _, name := range remove {
		if !running[name] {
			return fmt.Errorf("destination %q is not running", name)
		}
		delete(running, name)
	}
	for _, dest := range add {
		if dest.Name == "" || dest.Start == nil {
			return fmt.Errorf("destination %q: a name and a start function are required", dest.Name)
		}
		if running[dest.Name] {
			return fmt.Errorf("destination %q would run twice", dest.Name)
		}
		running[dest.Name] = true
	}
	// Cursors first: when one cannot be set up nothing has changed yet.
	if started {
		for _, dest := range add {
			if err := d.log.EnsureCursor(ctx, dest.Name); err != nil {
				return fmt.Errorf("set up the delivery cursor of destination %q: %w", dest.Name, err)
			}
		}
	}
	// The list is edited under mu, but workers stop outside it: Notify
	// (on the ingest path) must never wait for a stopping worker.
	var stopping []*worker
	d.mu.Lock()
	d.workers = slices.DeleteFunc(d.workers, func(w *worker) bool {
		if slices.Contains(remove, w.name) {
			stopping = append(stopping, w)
			return true
		}
		return false
	})
	d.mu.Unlock()
	if started {
		var wg sync.WaitGroup
		for _, w := range stopping {
			wg.Go(func() { w.stop(ctx) })
		}
		wg.Wait()
	}
	if r, ok := d.opts.Observer.(DestinationRemover); ok {
		for _, w := range stopping {
			r.DestinationRemoved(w.name)
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, dest := range add {
		w := newWorker(d, dest)
		d.workers = append(d.workers, w)
		if d.ctx != nil {
			w.launch(d.ctx)
		}
	}
	return nil
}

// Notify tells idle workers that new spans were committed.
func (d *Dispatcher) Notify() {
	for _, w := range d.snapshot() {
		w.notify()
	}
}

// BatchWritten lets the dispatcher observe the batcher's writes (it is a
// batcher.Observer): a committed batch wakes idle workers, which count the
// spans so as not to ask the database for a batch that cannot be due yet.
func (d *Dispatcher) BatchWritten(spans int, _ time.Duration, err error) {
	if err != nil {
		return
	}
	now := time.Now()
	for _, w := range d.snapshot() {
		w.written(spans, now)
		w.notify()
	}
}

// Destinations lists the running destinations' names.
func (d *Dispatcher) Destinations() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	names := make([]string, len(d.workers))
	for i, w := range d.workers {
		names[i] = w.name
	}
	return names
}

func (d *Dispatcher) housekeeping(ctx context.Context) {
	stats := time.NewTicker(d.opts.StatsInterval)
	defer stats.Stop()
	trim := time.NewTicker(d.opts.TrimInterval)
	defer trim.Stop()
	var prune <-chan time.Time
	if d.opts.Retention > 0 && d.opts.Pruner != nil {
		t := time.NewTicker(d.opts.PruneInterval)
		defer t.Stop()
		prune = t.C
		d.prune(ctx)
	}
	d.refreshStats(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case <-stats.C:
			d.refreshStats(ctx)
		case <-trim.C:
			d.trim(ctx)
		case <-prune:
			d.prune(ctx)
		}
	}
}

func (d *Dispatcher) refreshStats(ctx context.Context) {
	for _, w := range d.snapshot() {
		w.reportStats(ctx)
	}
}

// maxRounds bounds one trim or prune pass, so a huge backlog is worked off
// over several ticks instead of in one long burst.
const maxRounds = 200

// trim deletes log rows every destination has claimed, in small statements.
func (d *Dispatcher) trim(ctx context.Context) {
	const batch = 1000
	// Not while Update runs: a destination being restarted is briefly off
	// the list, and the claim it hands back must survive until its
	// successor takes it. The next tick trims.
	if !d.update.TryLock() {
		return
	}
	defer d.update.Unlock()
	dests := d.Destinations()
	var total int64
	for range maxRounds {
		n, err := d.log.Trim(ctx, dests, batch)
		if err != nil {
			if ctx.Err() == nil {
				d.opts.Logger.Warn("trimming the delivery log failed; will retry", "err", err)
			}
			return
		}
		total += n
		if n < batch {
			break
		}
	}
	if total > 0 {
		d.opts.Logger.Debug("trimmed delivery log", "rows", total)
	}
}

// prune enforces retention in statements of PruneBatch rows, pausing
// between them so ingest never waits long for the database.
func (d *Dispatcher) prune(ctx context.Context) {
	cutoff := time.Now().Add(-d.opts.Retention)
	var total store.Pruned
	for range maxRounds {
		p, err := d.opts.Pruner.Prune(ctx, cutoff, d.opts.PruneBatch)
		if err != nil {
			if ctx.Err() == nil {
				d.opts.Logger.Warn("retention: pruning failed; will retry", "err", err)
			}
			return
		}
		total.Spans += p.Spans
		total.Traces += p.Traces
		total.LogRows += p.LogRows
		total.DeadLetters += p.DeadLetters
		limit := int64(d.opts.PruneBatch)
		if p.Spans < limit && p.Traces < limit && p.LogRows < limit && p.DeadLetters < limit {
			break
		}
		if !sleep(ctx, 10*time.Millisecond) {
			return
		}
	}
	if total.Total() > 0 {
		d.opts.Logger.Info("retention: deleted old data", "before", cutoff.UTC().Format(time.RFC3339),
			"spans", total.Spans, "traces", total.Traces, "log_rows", total.LogRows, "dead_letters", total.DeadLetters)
	}
}

// sleep waits d or until ctx ends; it reports whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

type nopObserver struct{}

func (nopObserver) Exported(string, int)                 {}
func (nopObserver) Filtered(string, int)                 {}
func (nopObserver) ExportFailed(string, bool)            {}
func (nopObserver) Retried(string)                       {}
func (nopObserver) DeadLettered(string, int)             {}
func (nopObserver) Backlog(string, int64, time.Duration) {}
func (nopObserver) CircuitState(string, State)           {}
func (nopObserver) PluginUp(string, bool)                {}
func (nopObserver) PluginRestarts(string, uint64)        {}
