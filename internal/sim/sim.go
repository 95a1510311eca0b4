// Package sim generates realistic AgentOS-shaped traces with the official
// OpenTelemetry Go SDK: agent and team runs with hooks, retrieval, LLM
// calls, tool calls (some failing), team delegation and member runs, written
// half in OTel GenAI semantic conventions and half in OpenInference so that
// the gateway's normalisation is exercised. It drives load tests
// (cmd/agentsim) and gives other packages' tests real OTLP without a
// network (Capture).
package sim

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// Options shape a simulation.
type Options struct {
	Rate        float64       // runs per second; 0 = as fast as possible
	Count       int           // runs to generate; 0 = until ctx is done or Duration passes
	Duration    time.Duration // stop after this long; 0 = no limit
	ErrorRatio  float64       // fraction (0..1) of tool calls that fail
	Users       int           // distinct users; default 20
	Sessions    int           // distinct sessions, each owned by one user; default 50
	Agents      int           // distinct agents, each with its own model; default 4
	Seed        int64         // same seed, same runs (ids of traces and spans stay random)
	Concurrency int           // runs generated in parallel; default 1
	// Spread places each run's end uniformly in [now-Spread, now] instead of
	// at the moment it is generated, e.g. 72h to fill several days.
	Spread time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

func (o Options) withDefaults() Options {
	if o.Users == 0 {
		o.Users = 20
	}
	if o.Sessions == 0 {
		o.Sessions = 50
	}
	if o.Agents == 0 {
		o.Agents = 4
	}
	if o.Concurrency == 0 {
		o.Concurrency = 1
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// Validate reports options that cannot be simulated.
func (o Options) Validate() error {
	var errs []error
	if o.Rate < 0 {
		errs = append(errs, fmt.Errorf("rate %v: must be >= 0", o.Rate))
	}
	if o.Count < 0 {
		errs = append(errs, fmt.Errorf("count %d: must be >= 0", o.Count))
	}
	if o.Duration < 0 || o.Spread < 0 {
		errs = append(errs, errors.New("duration and spread must be >= 0"))
	}
	if o.ErrorRatio < 0 || o.ErrorRatio > 1 {
		errs = append(errs, fmt.Errorf("error ratio %v: must be within 0..1", o.ErrorRatio))
	}
	if o.Users < 0 || o.Sessions < 0 || o.Agents < 0 || o.Concurrency < 0 {
		errs = append(errs, errors.New("users, sessions, agents and concurrency must be >= 0"))
	}
	return errors.Join(errs...)
}

// Stats counts what a simulation produced.
type Stats struct {
	Runs        int64 // runs (traces) generated
	Spans       int64 // spans ended, i.e. handed to the TracerProvider
	FailedTools int64 // tool spans that ended in ERROR
}

// Instrumentation scopes, as the real instrumentations name themselves.
const (
	scopeOpenInference = "openinference.instrumentation.agno"
	scopeGenAI         = "agno"
)

// Run generates runs into tp until Count runs are done, Duration has passed
// or ctx is done; a run that has started is always finished, so every trace
// is complete. Cancellation is a normal way to stop and returns no error.
// Spans are only handed to tp: call tp.ForceFlush or tp.Shutdown to be sure
// they were exported.
func Run(ctx context.Context, tp *sdktrace.TracerProvider, opts Options) (Stats, error) {
	if err := opts.Validate(); err != nil {
		return Stats{}, fmt.Errorf("simulation options: %w", err)
	}
	if tp == nil {
		return Stats{}, errors.New("simulation: nil TracerProvider")
	}
	opts = opts.withDefaults()
	if opts.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, opts.Duration)
		defer cancel()
	}
	w := newWorld(opts.Users, opts.Sessions, opts.Agents)
	tracers := map[convention]trace.Tracer{
		genAI:         tp.Tracer(scopeGenAI, trace.WithInstrumentationVersion("2.1.0")),
		openInference: tp.Tracer(scopeOpenInference, trace.WithInstrumentationVersion("0.1.18")),
	}

	var runs, spans, failed atomic.Int64
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range opts.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				// One generator per run index: the same seed gives the same
				// runs whatever the concurrency.
				r := rand.New(rand.NewPCG(splitmix64(uint64(opts.Seed)), splitmix64(uint64(i)+0x9e3779b97f4a7c15)))
				p := planRun(r, w, opts.ErrorRatio)
				end := opts.Now()
				if opts.Spread > 0 {
					end = end.Add(-time.Duration(r.Int64N(int64(opts.Spread))))
				}
				base := end.Add(-p.root.end)
				// A started run is finished even if ctx ends meanwhile.
				emit(context.WithoutCancel(ctx), tracers[p.conv], p.root, base)
				runs.Add(1)
				spans.Add(int64(p.spans))
				failed.Add(int64(p.failedTools))
			}
		}()
	}

	start := time.Now()
produce:
	for i := 0; opts.Count == 0 || i < opts.Count; i++ {
		if opts.Rate > 0 {
			due := start.Add(time.Duration(float64(i) / opts.Rate * float64(time.Second)))
			if wait := time.Until(due); wait > 0 {
				t := time.NewTimer(wait)
				select {
				case <-ctx.Done():
					t.Stop()
					break produce
				case <-t.C:
				}
			}
		}
		select {
		case <-ctx.Done():
			break produce
		case jobs <- i:
		}
	}
	close(jobs)
	wg.Wait()
	return Stats{Runs: runs.Load(), Spans: spans.Load(), FailedTools: failed.Load()}, nil
}

// splitmix64 scrambles seeds so that neighbouring run indexes give
// unrelated generators (PCG's first outputs for seeds 1, 2, 3... are not).
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// emit creates the planned spans with explicit timestamps, so a run of
// several seconds is generated in microseconds.
func emit(ctx context.Context, tr trace.Tracer, n *node, base time.Time) {
	ctx, sp := tr.Start(ctx, n.name,
		trace.WithTimestamp(base.Add(n.start)),
		trace.WithSpanKind(n.kind),
		trace.WithAttributes(n.attrs...))
	for _, c := range n.children {
		emit(ctx, tr, c, base)
	}
	end := base.Add(n.end)
	if f := n.fail; f != nil {
		// What Python's span.record_exception writes.
		sp.AddEvent("exception", trace.WithTimestamp(end), trace.WithAttributes(
			attribute.String("exception.type", f.typ),
			attribute.String("exception.message", f.message),
			attribute.String("exception.stacktrace", "Traceback (most recent call last):\n  File \"agno/tools/function.py\", line 612, in execute\n"+f.typ+": "+f.message),
			attribute.Bool("exception.escaped", false),
		))
		sp.SetStatus(codes.Error, f.message)
	} else {
		sp.SetStatus(codes.Ok, "")
	}
	sp.End(trace.WithTimestamp(end))
}
