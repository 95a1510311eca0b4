package ratelimit

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// clock is a manual time source.
type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

func newTest(def Limit, tenants map[string]Limit) (*Limiter, *clock) {
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	l := &Limiter{now: c.now}
	l.Update(def, tenants)
	return l, c
}

// step is one call in a scripted scenario.
type step struct {
	advance   time.Duration // before the call
	tenant    string
	n         int
	ok        bool
	wantRetry time.Duration // checked when !ok, to the millisecond
}

func TestAllow(t *testing.T) {
	ten := Limit{SpansPerSecond: 10, Burst: 10}
	tests := []struct {
		name    string
		def     Limit
		tenants map[string]Limit
		steps   []step
	}{
		{"burst then wait", Limit{}, map[string]Limit{"a": ten}, []step{
			{0, "a", 10, true, 0},
			{0, "a", 1, false, 100 * time.Millisecond},
			{50 * time.Millisecond, "a", 1, false, 50 * time.Millisecond},
			{50 * time.Millisecond, "a", 1, true, 0},
		}},
		{"a refused request charges nothing", Limit{}, map[string]Limit{"a": ten}, []step{
			{0, "a", 8, true, 0},
			{0, "a", 5, false, 300 * time.Millisecond},
			{0, "a", 2, true, 0},
		}},
		{"larger than burst goes into debt", Limit{}, map[string]Limit{"a": ten}, []step{
			{0, "a", 25, true, 0}, // bucket 10 → -15
			{0, "a", 1, false, 1600 * time.Millisecond},
			{time.Second, "a", 1, false, 600 * time.Millisecond},
			{600 * time.Millisecond, "a", 1, true, 0},
		}},
		{"larger than burst needs a full bucket", Limit{}, map[string]Limit{"a": ten}, []step{
			{0, "a", 5, true, 0},
			{0, "a", 50, false, 500 * time.Millisecond},
			{500 * time.Millisecond, "a", 50, true, 0},
		}},
		{"tenants are isolated", Limit{}, map[string]Limit{"a": ten, "b": ten}, []step{
			{0, "a", 10, true, 0},
			{0, "a", 1, false, 100 * time.Millisecond},
			{0, "b", 10, true, 0},
		}},
		{"unlisted tenants share the default bucket", ten, map[string]Limit{"a": {SpansPerSecond: 1000}}, []step{
			{0, "x", 6, true, 0},
			{0, "y", 4, true, 0},
			{0, "", 1, false, 100 * time.Millisecond},
			{0, "a", 500, true, 0},
		}},
		{"zero limit in the map means the default, in its own bucket", ten, map[string]Limit{"a": {}}, []step{
			{0, "a", 10, true, 0},
			{0, "a", 1, false, 100 * time.Millisecond},
			{0, "other", 10, true, 0},
		}},
		{"unlimited default", Limit{}, map[string]Limit{"a": {SpansPerSecond: 1, Burst: 1}}, []step{
			{0, "x", 1_000_000, true, 0},
			{0, "x", 1_000_000, true, 0},
			{0, "a", 1, true, 0},
			{0, "a", 1, false, time.Second},
		}},
		{"burst defaults to one second of spans", Limit{}, map[string]Limit{"a": {SpansPerSecond: 2.5}}, []step{
			{0, "a", 3, true, 0},
			{0, "a", 1, false, 400 * time.Millisecond},
		}},
		{"zero spans always pass", Limit{}, map[string]Limit{"a": ten}, []step{
			{0, "a", 10, true, 0},
			{0, "a", 0, true, 0},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, c := newTest(tt.def, tt.tenants)
			for i, s := range tt.steps {
				c.advance(s.advance)
				ok, retry := l.Allow(s.tenant, s.n)
				if ok != s.ok {
					t.Fatalf("step %d: Allow(%q, %d) = %v, want %v", i, s.tenant, s.n, ok, s.ok)
				}
				if ok && retry != 0 {
					t.Errorf("step %d: admitted with retryAfter %v", i, retry)
				}
				if !ok && retry.Round(time.Millisecond) != s.wantRetry {
					t.Errorf("step %d: retryAfter %v, want %v", i, retry, s.wantRetry)
				}
			}
		})
	}
}

// TestLongRunRate sends mixed-size requests as fast as they are admitted
// over a simulated minute; the admitted total must stay within rate×time +
// burst, and come close to it.
func TestLongRunRate(t *testing.T) {
	const rps, burst = 1000.0, 500
	l, c := newTest(Limit{}, map[string]Limit{"a": {SpansPerSecond: rps, Burst: burst}})
	sizes := []int{1, 50, 499, 500, 501, 2000, 7}
	admitted := 0
	start := c.t
	for i := 0; c.t.Sub(start) < time.Minute; i++ {
		n := sizes[i%len(sizes)]
		ok, retry := l.Allow("a", n)
		if ok {
			admitted += n
			continue
		}
		c.advance(retry)
	}
	elapsed := c.t.Sub(start).Seconds()
	// A request admitted at the end may overdraw by up to its size.
	maxAllowed := rps*elapsed + burst + 2000
	if float64(admitted) > maxAllowed {
		t.Fatalf("admitted %d spans in %.1fs, more than %.0f", admitted, elapsed, maxAllowed)
	}
	if float64(admitted) < rps*elapsed*0.95 {
		t.Fatalf("admitted %d spans in %.1fs, far below the rate", admitted, elapsed)
	}
}

func TestUpdate(t *testing.T) {
	ten := Limit{SpansPerSecond: 10, Burst: 10}
	l, c := newTest(Limit{}, map[string]Limit{"a": ten, "gone": ten})
	if ok, _ := l.Allow("a", 10); !ok {
		t.Fatal("first request refused")
	}
	if ok, _ := l.Allow("gone", 10); !ok {
		t.Fatal("first request refused")
	}

	// A reload with the same limits must not refill the bucket.
	l.Update(Limit{}, map[string]Limit{"a": ten, "new": ten})
	if ok, _ := l.Allow("a", 1); ok {
		t.Fatal("reload refilled an empty bucket")
	}
	if ok, _ := l.Allow("new", 10); !ok {
		t.Fatal("a tenant added on reload must start with a full bucket")
	}
	// A removed tenant falls back to the default (unlimited here).
	if ok, _ := l.Allow("gone", 100); !ok {
		t.Fatal("removed tenant not on the default limit")
	}

	// Raising the rate applies from now on.
	l.Update(Limit{}, map[string]Limit{"a": {SpansPerSecond: 100, Burst: 100}})
	c.advance(100 * time.Millisecond)
	if ok, _ := l.Allow("a", 10); !ok {
		t.Fatal("raised rate not applied")
	}
	// Making a tenant unlimited.
	l.Update(Limit{}, map[string]Limit{"a": {SpansPerSecond: 0}})
	if ok, _ := l.Allow("a", 1_000_000); !ok {
		t.Fatal("unlimited tenant refused")
	}
	// ... and limited again.
	l.Update(Limit{}, map[string]Limit{"a": {SpansPerSecond: 1, Burst: 1}})
	if ok, _ := l.Allow("a", 1); !ok {
		t.Fatal("re-limited tenant must start full")
	}
	if ok, _ := l.Allow("a", 1); ok {
		t.Fatal("re-limited tenant not limited")
	}
}

func TestNilLimiter(t *testing.T) {
	var l *Limiter
	if ok, retry := l.Allow("a", 1_000_000); !ok || retry != 0 {
		t.Fatalf("nil Limiter: %v, %v", ok, retry)
	}
}

// TestConcurrent hammers one bucket from many goroutines with the real
// clock (run with -race): the admitted total respects the limit.
func TestConcurrent(t *testing.T) {
	const rps, burst = 1000, 100
	l := New(Limit{}, map[string]Limit{"a": {SpansPerSecond: rps, Burst: burst}, "b": {}})
	var admitted atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 2000; i++ {
				if ok, _ := l.Allow("a", 3); ok {
					admitted.Add(3)
				}
				l.Allow("b", 1)
			}
		}()
	}
	for i := 0; i < 20; i++ {
		l.Update(Limit{}, map[string]Limit{"a": {SpansPerSecond: rps, Burst: burst}, "b": {}})
	}
	wg.Wait()
	elapsed := time.Since(start).Seconds()
	if got, limit := admitted.Load(), int64(rps*elapsed)+burst+3; got > limit {
		t.Fatalf("admitted %d spans in %.3fs; limit %d", got, elapsed, limit)
	}
	if admitted.Load() < burst-3 {
		t.Fatalf("admitted only %d spans; the burst alone allows %d", admitted.Load(), burst)
	}
}
