package dispatch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/kern-agents/trace-gateway/internal/config"
	"github.com/kern-agents/trace-gateway/internal/model"
	"github.com/kern-agents/trace-gateway/internal/store"
	"github.com/kern-agents/trace-gateway/internal/store/deliverytest"
	"github.com/kern-agents/trace-gateway/plugins"
)

func TestEverySpanReachesEveryDestination(t *testing.T) {
	eachStore(t, func(t *testing.T, s testStore) {
		a, b := newFake(nil), newFake(nil)
		obs := newRecorder()
		opts := fastOptions(t)
		opts.Observer = obs
		run(t, s, []Destination{
			{Name: "a", Start: starter(a), Policy: fastPolicy()},
			{Name: "b", Start: starter(b), Policy: fastPolicy()},
		}, opts)
		// Let the workers set their cursors, then write while they run.
		waitFor(t, "cursors", 30*time.Second, func() bool {
			return obs.isUp("a") && obs.isUp("b")
		})
		var ids []string
		for range 10 {
			ids = append(ids, write(t, s, 300, 6, time.Now())...)
		}
		waitFor(t, "delivery", 20*time.Second, func() bool { return a.has(ids) && b.has(ids) })
		for name, f := range map[string]*fakeExporter{"a": a, "b": b} {
			got := f.delivered()
			if len(got) != len(ids) {
				t.Errorf("%s got %d distinct spans, want %d", name, len(got), len(ids))
			}
			for id, n := range got {
				if n != 1 {
					t.Errorf("%s got span %s %d times; without failures each goes once", name, id, n)
					break
				}
			}
			for _, n := range f.batches {
				if n > fastPolicy().MaxSpans {
					t.Errorf("%s got a batch of %d spans, max is %d", name, n, fastPolicy().MaxSpans)
				}
			}
		}
		waitFor(t, "metrics", 30*time.Second, func() bool {
			obs.mu.Lock()
			defer obs.mu.Unlock()
			return obs.counts["exported/a"] == len(ids) && obs.backlog["a"] == 0 && obs.backlog["b"] == 0
		})
		// Delivered rows are trimmed from the log.
		waitFor(t, "trim", 30*time.Second, func() bool {
			var n int
			if err := s.DB().QueryRow(`SELECT count(*) FROM ` + gatewayTable(s, "gateway_delivery_log")).Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n == 0
		})
	})
}

// TestAtLeastOnceAcrossRestart stops the dispatcher mid-stream (cleanly,
// then as if the process died) and checks a new one delivers the rest.
func TestAtLeastOnceAcrossRestart(t *testing.T) {
	eachStore(t, func(t *testing.T, s testStore) {
		for _, crash := range []bool{false, true} {
			t.Run(fmt.Sprintf("crash=%t", crash), func(t *testing.T) {
				dest := fmt.Sprintf("d-%t", crash)
				slow := func(int, ptrace.Traces) error { time.Sleep(3 * time.Millisecond); return nil }
				first := newFake(slow)
				p := fastPolicy()
				p.MaxSpans = 50
				p.Lease = 1500 * time.Millisecond
				var log Log = s
				var held atomic.Int32
				var leased atomic.Int64
				if crash {
					log = noRelease{s, &held, &leased} // a dead process hands nothing back
				}
				d := New(log, []Destination{{Name: dest, Start: starter(first), Policy: p}}, fastOptions(t))
				d.Start(context.Background())
				waitCursors(t, s, dest)
				ids := write(t, s, 3000, 5, time.Now())
				waitFor(t, "some delivery", 10*time.Second, func() bool { return len(first.delivered()) >= 300 })
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				if err := d.Stop(ctx); err != nil {
					t.Fatal(err)
				}
				cancel()
				before := len(first.delivered())
				if before >= len(ids) {
					t.Fatalf("everything was delivered before the stop (%d); the test proves nothing", before)
				}

				second := newFake(nil)
				run(t, s, []Destination{{Name: dest, Start: starter(second), Policy: p}}, fastOptions(t))
				union := func() map[string]int {
					m := first.delivered()
					for id, n := range second.delivered() {
						m[id] += n
					}
					return m
				}
				waitFor(t, "the rest", 20*time.Second, func() bool {
					u := union()
					for _, id := range ids {
						if u[id] == 0 {
							return false
						}
					}
					return true
				})
				dups := 0
				for _, n := range union() {
					dups += n - 1
				}
				// At most the claim in flight at the stop goes twice: a claim
				// is a whole log row (write stores rows of 500) or up to
				// claimBatches batches of rows.
				if most := max(claimBatches*p.MaxSpans, 500); dups > most {
					t.Errorf("%d spans delivered twice; want at most one claim's worth (%d)", dups, most)
				}
				// Only a claim still held at the stop must wait for its lease
				// (a loaded machine may stop the worker between claims),
				// counted from when the dead holder last extended it.
				if crash && held.Load() > 0 && time.Since(time.Unix(0, leased.Load())) < p.Lease/2 {
					t.Errorf("a dead holder's claim was taken over before its lease could expire")
				}
				t.Logf("delivered %d before the stop, %d duplicates after", before, dups)
			})
		}
	})
}

// noRelease plays a process that died: claims it held at the stop are not
// handed back; held counts those with spans still to deliver. leased is when
// a lease was last taken or extended (unix nanoseconds).
type noRelease struct {
	Log
	held   *atomic.Int32
	leased *atomic.Int64
}

func (n noRelease) Release(_ context.Context, c *store.Claim, done int) error {
	if done < c.Spans {
		n.held.Add(1)
	}
	return nil
}

func (n noRelease) Claim(ctx context.Context, dest string, req store.ClaimRequest) (*store.Claim, time.Duration, error) {
	start := time.Now()
	c, wait, err := n.Log.Claim(ctx, dest, req)
	if c != nil {
		n.leased.Store(start.UnixNano())
	}
	return c, wait, err
}

func (n noRelease) Renew(ctx context.Context, c *store.Claim, done int, lease time.Duration) error {
	start := time.Now()
	err := n.Log.Renew(ctx, c, done, lease)
	if err == nil {
		n.leased.Store(start.UnixNano())
	}
	return err
}

func TestRoutingIsApplied(t *testing.T) {
	s := openSQLite(t)
	all, llmOnly := newFake(nil), newFake(nil)
	obs := newRecorder()
	opts := fastOptions(t)
	opts.Observer = obs
	p := fastPolicy()
	p.Route = Route{
		Include: config.Match{SpanTypes: []string{"llm"}},
		Redact:  []config.Redaction{{Key: "prompt", Action: config.RedactMask}},
	}
	run(t, s, []Destination{
		{Name: "all", Start: starter(all), Policy: fastPolicy()},
		{Name: "llm", Start: starter(llmOnly), Policy: p},
	}, opts)
	waitCursors(t, s, "all", "llm")
	now := time.Now()
	var spans []model.Span
	for i, typ := range []string{"llm", "tool", "llm", "run"} {
		sp := typedSpan(i, typ, now)
		spans = append(spans, sp)
	}
	if err := s.Write(context.Background(), spans); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "delivery", 10*time.Second, func() bool {
		return len(all.delivered()) == 4 && len(llmOnly.delivered()) == 2 && obs.get("filtered/llm") == 2
	})
	got := llmOnly.delivered()
	if got[spans[0].SpanID] != 1 || got[spans[2].SpanID] != 1 {
		t.Fatalf("llm destination got %v", got)
	}
	llmOnly.mu.Lock()
	last := llmOnly.last
	llmOnly.mu.Unlock()
	sp := last.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0)
	if v, _ := sp.Attributes().Get("prompt"); v.Str() != Masked {
		t.Fatalf("prompt reached the destination as %q", v.AsString())
	}
	all.mu.Lock()
	allLast := all.last
	all.mu.Unlock()
	if v, _ := allLast.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0).Attributes().Get("prompt"); v.Str() == Masked {
		t.Fatal("redaction of one destination leaked into another")
	}
}

// typedSpan is a stored span of a type: what the gateway stores for a
// sender that sent only the OpenInference span kind.
func typedSpan(i int, typ string, at time.Time) model.Span {
	kind := map[string]string{"llm": "LLM", "tool": "TOOL", "run": "AGENT"}[typ]
	return model.Span{
		SpanID: fmt.Sprintf("%016x", 0xabc000+i), TraceID: fmt.Sprintf("%032x", 0xdef000+i), Name: typ,
		SpanKind: "INTERNAL", StatusCode: model.StatusOK,
		StartTime: model.FormatTime(at), EndTime: model.FormatTime(at), CreatedAt: model.FormatTime(at),
		Attributes: []byte(`{"openinference.span.kind":"` + kind + `","prompt":"secret question","kern.resource":{"service.name":"agentos"}}`),
	}
}

func TestRetryAfterIsHonoured(t *testing.T) {
	s := openSQLite(t)
	f := newFake(func(call int, _ ptrace.Traces) error {
		if call == 0 {
			return plugins.Retryable(errors.New("429 slow down"), 400*time.Millisecond)
		}
		return nil
	})
	obs := newRecorder()
	opts := fastOptions(t)
	opts.Observer = obs
	run(t, s, []Destination{{Name: "d", Start: starter(f), Policy: fastPolicy()}}, opts)
	waitCursors(t, s, "d")
	ids := write(t, s, 10, 5, time.Now())
	waitFor(t, "delivery", 10*time.Second, func() bool { return f.has(ids) })
	calls := f.callTimes()
	if len(calls) != 2 {
		t.Fatalf("%d export calls, want 2", len(calls))
	}
	if gap := calls[1].Sub(calls[0]); gap < 400*time.Millisecond {
		t.Fatalf("retried after %s; the destination asked for 400ms (backoff alone is 5ms)", gap)
	}
	// The fake records a batch before the worker counts it.
	waitFor(t, "metrics", 30*time.Second, func() bool {
		return obs.get("retried/d") == 1 && obs.get("failed/d/false") == 1 && obs.get("exported/d") == 10
	})
}

func TestBackoffBetweenRetries(t *testing.T) {
	s := openSQLite(t)
	f := newFake(func(call int, _ ptrace.Traces) error {
		if call < 4 {
			return plugins.Retryable(errors.New("503"), 0)
		}
		return nil
	})
	p := fastPolicy()
	p.RetryInitial, p.RetryMax = 40*time.Millisecond, time.Second
	run(t, s, []Destination{{Name: "d", Start: starter(f), Policy: p}}, fastOptions(t))
	waitCursors(t, s, "d")
	ids := write(t, s, 5, 5, time.Now())
	waitFor(t, "delivery", 10*time.Second, func() bool { return f.has(ids) })
	calls := f.callTimes()
	for i := 1; i < len(calls); i++ {
		min := p.RetryInitial << (i - 1) / 2 // jitter keeps at least half
		if gap := calls[i].Sub(calls[i-1]); gap < min {
			t.Errorf("retry %d came after %s, want at least %s", i, gap, min)
		}
	}
}

func TestCircuitBreaker(t *testing.T) {
	s := openSQLite(t)
	var fail atomic.Bool
	fail.Store(true)
	f := newFake(func(call int, _ ptrace.Traces) error {
		if fail.Load() {
			return plugins.Retryable(errors.New("connection refused"), 0)
		}
		return nil
	})
	p := fastPolicy()
	p.BreakerFailures, p.BreakerCoolDown = 3, 300*time.Millisecond
	obs := newRecorder()
	opts := fastOptions(t)
	opts.Observer = obs
	run(t, s, []Destination{{Name: "d", Start: starter(f), Policy: p}}, opts)
	waitCursors(t, s, "d")
	ids := write(t, s, 10, 5, time.Now())

	waitFor(t, "open", 30*time.Second, func() bool { return slices.Contains(obs.stateLog("d"), Open) })
	calls := f.callTimes()
	if len(calls) != 3 {
		t.Fatalf("%d calls before the breaker opened, want 3", len(calls))
	}
	time.Sleep(200 * time.Millisecond)
	if n := len(f.callTimes()); n != 3 {
		t.Fatalf("%d calls while the breaker is open, want none after the 3rd", n)
	}
	// The probe after the cool-down fails: open again.
	waitFor(t, "probe", 30*time.Second, func() bool { return len(f.callTimes()) >= 4 })
	calls = f.callTimes()
	if gap := calls[3].Sub(calls[2]); gap < p.BreakerCoolDown {
		t.Fatalf("probe came %s after opening, before the %s cool-down", gap, p.BreakerCoolDown)
	}
	fail.Store(false)
	waitFor(t, "delivery", 30*time.Second, func() bool { return f.has(ids) })
	want := []State{Closed, Open, HalfOpen, Open, HalfOpen, Closed}
	if got := obs.stateLog("d"); !slices.Equal(got[len(got)-len(want)+1:], want[1:]) {
		t.Fatalf("circuit states %v, want ... %v", got, want)
	}
}

func TestPermanentErrorsAreDeadLetteredAndRequeued(t *testing.T) {
	eachStore(t, func(t *testing.T, s testStore) {
		var reject atomic.Bool
		reject.Store(true)
		f := newFake(func(_ int, td ptrace.Traces) error {
			if reject.Load() {
				// Vendors answer anything; NUL and broken UTF-8 must still store.
				return plugins.Permanent(errors.New("400 invalid payload \x00\xff\xfe"))
			}
			return nil
		})
		other := newFake(nil)
		obs := newRecorder()
		opts := fastOptions(t)
		opts.Observer = obs
		run(t, s, []Destination{
			{Name: "strict", Start: starter(f), Policy: fastPolicy()},
			{Name: "other", Start: starter(other), Policy: fastPolicy()},
		}, opts)
		waitCursors(t, s, "strict", "other")
		ids := write(t, s, 30, 5, time.Now())
		ctx := context.Background()
		var letters []store.DeadLetter
		waitFor(t, "dead letters", 10*time.Second, func() bool {
			letters, _ = s.DeadLetters(ctx, store.DeadLetterFilter{Destinations: []string{"strict"}})
			n := 0
			for _, l := range letters {
				n += len(l.SpanIDs)
			}
			return n == len(ids)
		})
		if !strings.Contains(letters[0].Reason, "400 invalid payload") {
			t.Fatalf("reason %q", letters[0].Reason)
		}
		// The metrics follow the dead-letter commit.
		waitFor(t, "dead-letter metrics", 30*time.Second, func() bool {
			return obs.get("deadlettered/strict") == len(ids) && obs.get("failed/strict/true") > 0
		})
		// Other destinations are not affected, and strict moves on.
		waitFor(t, "other", 10*time.Second, func() bool { return other.has(ids) })
		more := write(t, s, 5, 5, time.Now())
		waitFor(t, "strict moves on", 10*time.Second, func() bool {
			l, _ := s.DeadLetters(ctx, store.DeadLetterFilter{Destinations: []string{"strict"}})
			n := 0
			for _, x := range l {
				n += len(x.SpanIDs)
			}
			return n == len(ids)+len(more)
		})

		reject.Store(false)
		if letters, spans, err := s.Requeue(ctx, store.DeadLetterFilter{Destinations: []string{"strict"}}); err != nil || spans != len(ids)+len(more) {
			t.Fatalf("Requeue = %d, %d, %v", letters, spans, err)
		}
		waitFor(t, "requeued delivery", 10*time.Second, func() bool { return f.has(append(ids, more...)) })
		if n := len(other.delivered()); n != len(ids)+len(more) {
			t.Fatalf("other got %d spans; a requeue for strict must not reach it", n)
		}
	})
}

func TestRetriesGiveUpAfterMaxElapsed(t *testing.T) {
	s := openSQLite(t)
	f := newFake(func(int, ptrace.Traces) error { return plugins.Retryable(errors.New("timeout"), 0) })
	p := fastPolicy()
	p.RetryMaxElapsed = 150 * time.Millisecond
	run(t, s, []Destination{{Name: "d", Start: starter(f), Policy: p}}, fastOptions(t))
	waitCursors(t, s, "d")
	write(t, s, 5, 5, time.Now())
	var letters []store.DeadLetter
	waitFor(t, "dead letter", 30*time.Second, func() bool {
		letters, _ = s.DeadLetters(context.Background(), store.DeadLetterFilter{})
		return len(letters) == 1
	})
	if !strings.Contains(letters[0].Reason, "gave up after") || !strings.Contains(letters[0].Reason, "timeout") {
		t.Fatalf("reason %q", letters[0].Reason)
	}
	if n := len(f.callTimes()); n < 3 {
		t.Fatalf("%d attempts before giving up", n)
	}
}

func TestPluginThatFailsToStartIsRetriedInBackground(t *testing.T) {
	s := openSQLite(t)
	good := newFake(nil)
	late := newFake(nil)
	var attempts atomic.Int32
	release := make(chan struct{})
	lateStart := func(ctx context.Context) (Exporter, error) {
		n := attempts.Add(1)
		if n == 1 { // held until Start has returned: Start must not wait for it
			select {
			case <-release:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		if n <= 3 {
			return nil, errors.New("plugin binary ./langfuse-plugin does not exist")
		}
		return late, nil
	}
	opts := fastOptions(t)
	opts.StartBackoff, opts.MaxStartBackoff = 20*time.Millisecond, 40*time.Millisecond
	d := New(s, []Destination{
		{Name: "broken", Start: lateStart, Policy: fastPolicy()},
		{Name: "good", Start: starter(good), Policy: fastPolicy()},
	}, opts)
	started := make(chan struct{})
	go func() {
		d.Start(context.Background())
		close(started)
	}()
	select {
	case <-started:
	case <-time.After(time.Minute):
		t.Fatal("Start waited for plugins")
	}
	t.Cleanup(func() { _ = d.Stop(context.Background()) })
	waitCursors(t, s, "broken", "good")
	ids := write(t, s, 20, 5, time.Now())
	waitFor(t, "good delivers meanwhile", 30*time.Second, func() bool { return good.has(ids) })
	close(release)
	waitFor(t, "broken recovers", 30*time.Second, func() bool { return late.has(ids) })
	sink := sinkOf(t)
	if n := sink.count("ERROR", "destination=broken"); n != 1 {
		t.Fatalf("%d error lines for the broken plugin, want exactly one", n)
	}
	if sink.count("ERROR", "does not exist") != 1 {
		t.Fatal("the error does not say why")
	}
}

func TestReplay(t *testing.T) {
	eachStore(t, func(t *testing.T, s testStore) {
		a, b := newFake(nil), newFake(nil)
		run(t, s, []Destination{
			{Name: "a", Start: starter(a), Policy: fastPolicy()},
			{Name: "b", Start: starter(b), Policy: fastPolicy()},
		}, fastOptions(t))
		waitCursors(t, s, "a", "b")
		ids := write(t, s, 40, 10, time.Now())
		waitFor(t, "delivery", 10*time.Second, func() bool { return a.has(ids) && b.has(ids) })
		n, err := s.Replay(context.Background(), "a", store.ReplaySelection{Since: time.Now().Add(-time.Hour)})
		if err != nil || n != len(ids) {
			t.Fatalf("Replay = %d, %v", n, err)
		}
		waitFor(t, "replay", 10*time.Second, func() bool {
			for _, id := range ids {
				if a.delivered()[id] != 2 {
					return false
				}
			}
			return true
		})
		time.Sleep(50 * time.Millisecond)
		for id, n := range b.delivered() {
			if n != 1 {
				t.Fatalf("b got %s %d times; the replay was for a only", id, n)
			}
		}
	})
}

func TestRetention(t *testing.T) {
	eachStore(t, func(t *testing.T, s testStore) {
		old := write(t, s, 2500, 5, time.Now().Add(-3*time.Hour))
		write(t, s, 10, 5, time.Now())
		traces, spans := s.Tables()
		// Trace rows are stamped when written; age the old ones too.
		if _, err := s.DB().Exec(`UPDATE ` + traces + ` SET created_at = '` + model.FormatTime(time.Now().Add(-3*time.Hour)) + `'
			WHERE trace_id IN (SELECT trace_id FROM ` + spans + ` WHERE created_at < '` + model.FormatTime(time.Now().Add(-time.Hour)) + `')`); err != nil {
			t.Fatal(err)
		}
		opts := fastOptions(t)
		opts.Retention, opts.Pruner, opts.PruneBatch = time.Hour, s, 1000
		run(t, s, nil, opts)
		count := func(table string) int {
			var n int
			if err := s.DB().QueryRow(`SELECT count(*) FROM ` + table).Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n
		}
		waitFor(t, "retention", 10*time.Second, func() bool { return count(spans) == 10 && count(traces) == 2 })
		if len(old) != 2500 {
			t.Fatal(len(old))
		}
	})
}

// countingLog records the largest read the worker makes.
type countingLog struct {
	Log
	mu                  sync.Mutex
	maxLoad, maxClaimed int
	loaded              int // span ids loaded in all
	claims              int // Claim calls
}

func (c *countingLog) Claim(ctx context.Context, dest string, req store.ClaimRequest) (*store.Claim, time.Duration, error) {
	c.mu.Lock()
	c.claims++
	c.mu.Unlock()
	cl, wait, err := c.Log.Claim(ctx, dest, req)
	if cl != nil && cl.SpanIDs != nil {
		c.mu.Lock()
		c.maxClaimed = max(c.maxClaimed, len(slices.Concat(cl.SpanIDs...)))
		c.mu.Unlock()
	}
	return cl, wait, err
}

func (c *countingLog) Spans(ctx context.Context, ids []string) ([]model.Span, error) {
	c.mu.Lock()
	c.maxLoad = max(c.maxLoad, len(ids))
	c.loaded += len(ids)
	c.mu.Unlock()
	return c.Log.Spans(ctx, ids)
}

func (c *countingLog) ClaimSpanIDs(ctx context.Context, cl *store.Claim) ([][]string, error) {
	ids, err := c.Log.ClaimSpanIDs(ctx, cl)
	c.mu.Lock()
	c.maxClaimed = max(c.maxClaimed, len(slices.Concat(ids...)))
	c.mu.Unlock()
	return ids, err
}

// TestLargeBacklogIsReadInBoundedSteps builds a backlog of 200k spans
// before the destination starts, then checks the worker never holds more
// than one claim of span ids and one batch of spans.
func TestLargeBacklogIsReadInBoundedSteps(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 200k spans")
	}
	s := openSQLite(t)
	ctx := context.Background()
	if err := s.EnsureCursor(ctx, "d"); err != nil {
		t.Fatal(err)
	}
	total, rowSpans := 200_000, 2000
	if raceEnabled {
		total = 20_000
	}
	for i := 0; i < total; i += rowSpans {
		spans := manySpans(i, rowSpans)
		if err := s.Write(ctx, spans); err != nil {
			t.Fatal(err)
		}
	}
	if b, err := s.Backlog(ctx, "d"); err != nil || b.Spans != int64(total) {
		t.Fatalf("backlog %+v, %v", b, err)
	}
	var n atomic.Int64
	f := newFake(func(_ int, td ptrace.Traces) error { n.Add(int64(td.SpanCount())); return nil })
	f.got = nil // count only; the set of 200k ids is not the point here
	counted := &countingLog{Log: s}
	p := fastPolicy()
	p.MaxSpans = 1000
	d := New(counted, []Destination{{Name: "d", Start: starter(exportOnly{f}), Policy: p}}, fastOptions(t))
	d.Start(ctx)
	t.Cleanup(func() { _ = d.Stop(context.Background()) })
	waitFor(t, "backlog delivered", 60*time.Second, func() bool { return n.Load() >= int64(total) })
	counted.mu.Lock()
	defer counted.mu.Unlock()
	if counted.maxLoad > p.MaxSpans {
		t.Errorf("loaded %d spans at once, batch is %d", counted.maxLoad, p.MaxSpans)
	}
	if counted.maxClaimed > max(claimBatches*p.MaxSpans, rowSpans) {
		t.Errorf("held %d span ids at once", counted.maxClaimed)
	}
	if n.Load() != int64(total) {
		t.Errorf("exported %d spans, want %d", n.Load(), total)
	}
}

// exportOnly counts without recording ids.
type exportOnly struct{ f *fakeExporter }

func (e exportOnly) Export(ctx context.Context, td ptrace.Traces) error { return e.f.behave(0, td) }
func (e exportOnly) Close(context.Context) error                        { return nil }

func manySpans(offset, n int) []model.Span {
	now := model.FormatTime(time.Now())
	out := make([]model.Span, n)
	for i := range out {
		k := offset + i
		out[i] = model.Span{
			SpanID: fmt.Sprintf("%016x", k+1), TraceID: fmt.Sprintf("%032x", k/10+1), Name: "s", SpanKind: "INTERNAL",
			StatusCode: model.StatusOK, StartTime: now, EndTime: now, CreatedAt: now,
			Attributes: []byte(`{"openinference.span.kind":"LLM"}`),
		}
		if k%10 != 0 {
			out[i].ParentSpanID = fmt.Sprintf("%016x", k/10*10+1)
		}
	}
	return out
}

func TestBatchLimits(t *testing.T) {
	cases := []struct {
		name    string
		rowSize int // spans per log row (per Write)
		// wantFewer: exports must be fewer than rows (small rows grouped)
		wantFewer bool
	}{
		{"rows over the byte limit are split", 500, false},
		{"small rows are grouped up to the limits", 10, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := openSQLite(t)
			f := newFake(nil)
			p := fastPolicy()
			p.MaxSpans, p.MaxBytes = 100, 8<<10
			if err := s.EnsureCursor(context.Background(), "d"); err != nil {
				t.Fatal(err)
			}
			spans := deliverytest.Spans(1000, 10, time.Now())
			for i := 0; i < len(spans); i += tc.rowSize {
				if err := s.Write(context.Background(), spans[i:i+tc.rowSize]); err != nil {
					t.Fatal(err)
				}
			}
			run(t, s, []Destination{{Name: "d", Start: starter(f), Policy: p}}, fastOptions(t))
			var ids []string
			for _, sp := range spans {
				ids = append(ids, sp.SpanID)
			}
			waitFor(t, "delivery", 10*time.Second, func() bool { return f.has(ids) })
			f.mu.Lock()
			defer f.mu.Unlock()
			if f.maxBytes > p.MaxBytes {
				t.Errorf("largest export %d bytes, limit %d", f.maxBytes, p.MaxBytes)
			}
			for _, n := range f.batches {
				if n > p.MaxSpans {
					t.Errorf("export of %d spans, limit %d", n, p.MaxSpans)
				}
			}
			if len(f.batches) < 1000/p.MaxSpans {
				t.Errorf("%d exports for 1000 spans", len(f.batches))
			}
			if rows := 1000 / tc.rowSize; tc.wantFewer && len(f.batches) >= rows {
				t.Errorf("%d exports for %d log rows: small rows were not grouped", len(f.batches), rows)
			}
		})
	}
}

func TestMaxDelayWaitsForFullerBatches(t *testing.T) {
	s := openSQLite(t)
	f := newFake(nil)
	p := fastPolicy()
	// The two writes below are moments apart: well within one delay, even
	// on a busy machine.
	p.MaxSpans, p.MaxDelay = 100, 2*time.Second
	run(t, s, []Destination{{Name: "d", Start: starter(f), Policy: p}}, fastOptions(t))
	waitCursors(t, s, "d")
	start := time.Now()
	ids := write(t, s, 10, 5, start)
	ids = append(ids, write(t, s, 10, 5, time.Now())...)
	waitFor(t, "delivery", 30*time.Second, func() bool { return f.has(ids) })
	calls := f.callTimes()
	if len(calls) != 1 {
		t.Fatalf("%d exports; the 20 spans should wait for one batch", len(calls))
	}
	if d := calls[0].Sub(start); d < p.MaxDelay-50*time.Millisecond {
		t.Fatalf("exported after %s, before max_delay %s", d, p.MaxDelay)
	}
}

func TestFullBatchGoesAtOnce(t *testing.T) {
	s := openSQLite(t)
	f := newFake(nil)
	p := fastPolicy()
	// Only a full batch can go before an hour has passed.
	p.MaxSpans, p.MaxDelay = 100, time.Hour
	run(t, s, []Destination{{Name: "d", Start: starter(f), Policy: p}}, fastOptions(t))
	waitCursors(t, s, "d")
	full := write(t, s, 100, 5, time.Now())
	waitFor(t, "the full batch", 30*time.Second, func() bool { return f.has(full) })
}

func TestStopClosesPluginsAndReleasesClaims(t *testing.T) {
	s := openSQLite(t)
	block := make(chan struct{})
	f := newFake(func(int, ptrace.Traces) error { <-block; return nil })
	defer close(block)
	p := fastPolicy()
	d := New(s, []Destination{{Name: "d", Start: starter(exportCtx{f}), Policy: p}}, fastOptions(t))
	d.Start(context.Background())
	waitCursors(t, s, "d")
	write(t, s, 10, 5, time.Now())
	waitFor(t, "export in flight", 30*time.Second, func() bool { return len(f.callTimes()) == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := d.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if !f.closed {
		t.Fatal("plugin not closed")
	}
	// The claim was handed back: another owner takes it at once.
	c, _, err := s.Claim(context.Background(), "d", store.ClaimRequest{Owner: "next", Lease: time.Minute, MaxSpans: 100})
	if err != nil || c == nil || c.Attempts != 2 {
		t.Fatalf("Claim after Stop = %+v, %v; want the released claim", c, err)
	}
}

// exportCtx makes a blocking fake honour ctx, as the plugin host does.
type exportCtx struct{ f *fakeExporter }

func (e exportCtx) Export(ctx context.Context, td ptrace.Traces) error {
	done := make(chan error, 1)
	go func() { done <- e.f.Export(context.WithoutCancel(ctx), td) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return plugins.Retryable(ctx.Err(), 0)
	}
}
func (e exportCtx) Close(ctx context.Context) error { return e.f.Close(ctx) }

// encodedFake is a fakeExporter that also takes encoded batches, as the
// plugin host does.
type encodedFake struct {
	*fakeExporter
	encoded, decoded atomic.Int64 // spans received each way
}

func (e *encodedFake) ExportEncoded(ctx context.Context, parts [][]byte) error {
	td, err := (&ptrace.ProtoUnmarshaler{}).UnmarshalTraces(bytes.Join(parts, nil))
	if err != nil {
		return err
	}
	e.encoded.Add(int64(td.SpanCount()))
	return e.fakeExporter.Export(ctx, td)
}

func (e *encodedFake) Export(ctx context.Context, td ptrace.Traces) error {
	e.decoded.Add(int64(td.SpanCount()))
	return e.fakeExporter.Export(ctx, td)
}

// TestChunksBuiltOnceForAllDestinations: destinations that take spans as
// stored get them encoded once for all; one that redacts gets its own
// changed copy; every stored span is loaded from the database once.
func TestChunksBuiltOnceForAllDestinations(t *testing.T) {
	eachStore(t, func(t *testing.T, s testStore) {
		ctx := context.Background()
		for _, name := range []string{"a", "b", "redacted"} {
			if err := s.EnsureCursor(ctx, name); err != nil {
				t.Fatal(err)
			}
		}
		ids := write(t, s, 2000, 5, time.Now()) // four log rows of 500
		a, b := &encodedFake{fakeExporter: newFake(nil)}, &encodedFake{fakeExporter: newFake(nil)}
		red := newFake(nil)
		p := fastPolicy()
		rp := p
		rp.Route.Redact = []config.Redaction{{Key: "openinference.span.kind", Action: config.RedactMask}}
		counted := &countingLog{Log: s}
		d := New(counted, []Destination{
			{Name: "a", Start: starter(a), Policy: p},
			{Name: "b", Start: starter(b), Policy: p},
			{Name: "redacted", Start: starter(red), Policy: rp},
		}, fastOptions(t))
		d.Start(ctx)
		t.Cleanup(func() { _ = d.Stop(context.Background()) })
		waitFor(t, "every destination has every span", 30*time.Second, func() bool {
			return a.has(ids) && b.has(ids) && red.has(ids)
		})
		for name, e := range map[string]*encodedFake{"a": a, "b": b} {
			if e.encoded.Load() != int64(len(ids)) || e.decoded.Load() != 0 {
				t.Errorf("%s got %d spans encoded and %d as pdata; want all %d encoded", name, e.encoded.Load(), e.decoded.Load(), len(ids))
			}
		}
		red.mu.Lock()
		v, _ := red.last.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0).Attributes().Get("openinference.span.kind")
		red.mu.Unlock()
		if v.AsString() != Masked {
			t.Errorf("redacted destination got openinference.span.kind = %q", v.AsString())
		}
		a.mu.Lock()
		v, _ = a.last.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0).Attributes().Get("openinference.span.kind")
		a.mu.Unlock()
		if v.AsString() != "LLM" {
			t.Errorf("the redaction of one destination reached another: openinference.span.kind = %q", v.AsString())
		}
		counted.mu.Lock()
		defer counted.mu.Unlock()
		if counted.loaded != len(ids) {
			t.Errorf("loaded %d spans from the database for 3 destinations of %d spans; want each once", counted.loaded, len(ids))
		}
		if hits, misses := d.shared.stats(); hits != 2*misses {
			t.Errorf("chunk cache: %d hits, %d misses; want two hits per build", hits, misses)
		}
	})
}

// TestWrittenRowsAreSeeded: a row the batcher reports as written is built
// from the spans in memory; destinations do not read it back.
func TestWrittenRowsAreSeeded(t *testing.T) {
	eachStore(t, func(t *testing.T, s testStore) {
		ctx := context.Background()
		a, b := &encodedFake{fakeExporter: newFake(nil)}, newFake(nil)
		p := fastPolicy()
		rp := p
		rp.Route.Redact = []config.Redaction{{Key: "openinference.span.kind", Action: config.RedactDrop}}
		counted := &countingLog{Log: s}
		opts := fastOptions(t)
		opts.PollInterval = time.Hour // workers wake only when told
		d := New(counted, []Destination{
			{Name: "a", Start: starter(a), Policy: p},
			{Name: "redacted", Start: starter(b), Policy: rp},
		}, opts)
		d.Start(ctx)
		t.Cleanup(func() { _ = d.Stop(context.Background()) })
		waitFor(t, "both workers idle", 10*time.Second, func() bool {
			counted.mu.Lock()
			defer counted.mu.Unlock()
			return counted.claims >= 2
		})
		spans := deliverytest.Spans(450, 5, time.Now())
		logged, err := s.WriteLogged(ctx, spans)
		if err != nil || len(logged) != len(spans) {
			t.Fatalf("WriteLogged = %d ids, %v", len(logged), err)
		}
		d.SpansLogged(spans, logged)
		d.BatchWritten(len(spans), 0, nil)
		// PostgreSQL hands a row out only once every older transaction in
		// the database has ended; one still running (another test's) can
		// hold it back past that wake. Later batches would wake the
		// workers again: so does the wait.
		waitFor(t, "delivery", 30*time.Second, func() bool {
			d.Notify()
			return a.has(logged) && b.has(logged)
		})
		counted.mu.Lock()
		loaded := counted.loaded
		counted.mu.Unlock()
		if loaded != 0 {
			t.Errorf("destinations read %d spans back from the database; the row was written moments ago", loaded)
		}
		if a.encoded.Load() != int64(len(spans)) {
			t.Errorf("a got %d spans encoded, want %d", a.encoded.Load(), len(spans))
		}
		b.mu.Lock()
		_, kept := b.last.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0).Attributes().Get("openinference.span.kind")
		b.mu.Unlock()
		if kept {
			t.Error("the redacting destination got the attribute it drops")
		}
	})
}

// TestRefusedSpansAreIsolated: a destination that refuses every request
// holding one bad span gets every other span, and only the bad one is
// dead-lettered, for about 2·log2(batch) more calls, or for none when the
// refusal names the span; a destination that refuses everything costs two
// more calls per batch before the batch is dead-lettered whole.
func TestRefusedSpansAreIsolated(t *testing.T) {
	for _, tc := range []struct {
		name      string
		refuseAll bool
		named     bool // the refusal names the span and the rest is taken, as the plugin host's RefusedSpans
	}{
		{"one bad span", false, false},
		{"one bad span named", false, true},
		{"everything refused", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := openSQLite(t)
			var mu sync.Mutex
			var poison string
			var refusals int
			f := newFake(nil)
			f.behave = func(_ int, td ptrace.Traces) error {
				mu.Lock()
				defer mu.Unlock()
				ids := spanIDs(td)
				if poison == "" {
					poison = ids[len(ids)/3] // a span of the first batch
				}
				if !tc.refuseAll && !slices.Contains(ids, poison) {
					return nil
				}
				refusals++
				refusal := plugins.Permanent(errors.New("400 invalid span"))
				if tc.named {
					rest := ptrace.NewTraces()
					td.CopyTo(rest)
					rest.ResourceSpans().RemoveIf(func(rs ptrace.ResourceSpans) bool {
						rs.ScopeSpans().RemoveIf(func(ss ptrace.ScopeSpans) bool {
							ss.Spans().RemoveIf(func(sp ptrace.Span) bool { return sp.SpanID().String() == poison })
							return ss.Spans().Len() == 0
						})
						return rs.ScopeSpans().Len() == 0
					})
					f.record(rest)
					return namedRefusal{refusal, []string{poison}}
				}
				return refusal
			}
			run(t, s, []Destination{{Name: "d", Start: starter(f), Policy: fastPolicy()}}, fastOptions(t))
			waitCursors(t, s, "d")
			ids := write(t, s, 30, 5, time.Now())
			ctx := context.Background()
			var lettered []string
			var letters []store.DeadLetter
			waitFor(t, "delivery or dead letters", 10*time.Second, func() bool {
				letters, _ = s.DeadLetters(ctx, store.DeadLetterFilter{})
				lettered = nil
				for _, l := range letters {
					lettered = append(lettered, l.SpanIDs...)
				}
				return len(f.delivered())+len(lettered) == len(ids)
			})
			mu.Lock()
			defer mu.Unlock()
			if tc.refuseAll {
				if len(lettered) != len(ids) {
					t.Fatalf("%d of %d spans dead-lettered", len(lettered), len(ids))
				}
				if refusals > 3*len(letters) {
					t.Fatalf("%d refused calls for %d batches; want at most 3 each", refusals, len(letters))
				}
				return
			}
			if !slices.Equal(lettered, []string{poison}) || !strings.Contains(letters[0].Reason, "400 invalid span") {
				t.Fatalf("dead letters %v (%q), want only the bad span %s", lettered, letters[0].Reason, poison)
			}
			got := f.delivered()
			for _, id := range ids {
				if id != poison && got[id] == 0 {
					t.Fatalf("span %s was not delivered", id)
				}
			}
			switch {
			case tc.named && (refusals != 1 || f.duplicates() > 0):
				t.Fatalf("%d refused calls and %d duplicates; a named refusal needs no more calls", refusals, f.duplicates())
			case refusals > 1+2*8: // 1 + 2 per halving of at most MaxSpans (200 → 8 halvings)
				t.Fatalf("%d refused calls to isolate one span", refusals)
			}
		})
	}
}

// namedRefusal is a permanent error naming the only spans refused.
type namedRefusal struct {
	error
	ids []string
}

func (n namedRefusal) Unwrap() error            { return n.error }
func (n namedRefusal) RefusedSpanIDs() []string { return n.ids }
