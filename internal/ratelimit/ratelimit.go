// Package ratelimit bounds how many spans per second each tenant may send,
// with a token bucket per tenant (golang.org/x/time/rate).
//
// A request of n spans is admitted when the tenant's bucket holds
// min(n, burst) tokens, and is then charged all n: a request larger than the
// burst is not refused forever, it drives the bucket into debt that later
// requests wait out, so the long-run rate holds whatever the request sizes.
//
// Memory is bounded: buckets exist only for the tenants given to New or
// Update (they come from the configuration); every other tenant, including
// the empty one of unauthenticated requests, shares one fallback bucket.
package ratelimit

import (
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Limit is a sustained rate with a burst. A zero or negative rate means
// unlimited; a zero burst means one second's worth of spans.
type Limit struct {
	SpansPerSecond float64
	Burst          int
}

// IsZero reports whether l is the zero Limit (in New's map: "use the default").
func (l Limit) IsZero() bool { return l == Limit{} }

func (l Limit) unlimited() bool { return l.SpansPerSecond <= 0 }

func (l Limit) burst() int {
	if l.Burst > 0 {
		return l.Burst
	}
	return max(1, int(math.Ceil(l.SpansPerSecond)))
}

// Limiter holds one bucket per configured tenant. It is safe for concurrent
// use; a nil *Limiter admits everything.
type Limiter struct {
	mu       sync.RWMutex // guards the maps, not the buckets
	buckets  map[string]*bucket
	fallback *bucket
	now      func() time.Time
}

type bucket struct {
	mu    sync.Mutex // makes check-then-charge atomic
	limit Limit
	lim   *rate.Limiter // nil when unlimited
}

// New returns a Limiter where each tenant in tenants has its own bucket with
// its Limit (a zero Limit means def), and all other tenants share one bucket
// limited by def.
func New(def Limit, tenants map[string]Limit) *Limiter {
	l := &Limiter{now: time.Now}
	l.Update(def, tenants)
	return l
}

// Update applies new limits (config reload). Buckets of tenants that remain
// keep their current fill, so a reload does not hand out a fresh burst.
func (l *Limiter) Update(def Limit, tenants map[string]Limit) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	old := l.buckets
	l.buckets = make(map[string]*bucket, len(tenants))
	for t, lim := range tenants {
		if lim.IsZero() {
			lim = def
		}
		l.buckets[t] = reuse(old[t], lim, now)
	}
	l.fallback = reuse(l.fallback, def, now)
}

// reuse retunes b to lim, or makes a new bucket when there is none.
func reuse(b *bucket, lim Limit, now time.Time) *bucket {
	if b == nil {
		b = &bucket{}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.limit = lim
	switch {
	case lim.unlimited():
		b.lim = nil
	case b.lim == nil:
		b.lim = rate.NewLimiter(rate.Limit(lim.SpansPerSecond), lim.burst())
		// NewLimiter starts full, as a fresh bucket should.
	default:
		b.lim.SetLimitAt(now, rate.Limit(lim.SpansPerSecond))
		b.lim.SetBurstAt(now, lim.burst())
	}
	return b
}

// Allow charges n spans to tenant's bucket. When the bucket cannot take
// them now it charges nothing and returns false with how long until it can.
func (l *Limiter) Allow(tenant string, n int) (ok bool, retryAfter time.Duration) {
	if l == nil || n <= 0 {
		return true, 0
	}
	l.mu.RLock()
	b, found := l.buckets[tenant]
	if !found {
		b = l.fallback
	}
	l.mu.RUnlock()
	return b.allow(l.now(), n)
}

func (b *bucket) allow(now time.Time, n int) (bool, time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.lim == nil {
		return true, 0
	}
	burst := b.lim.Burst()
	need := float64(min(n, burst))
	if have := b.lim.TokensAt(now); have < need {
		wait := time.Duration(math.Ceil((need - have) / float64(b.lim.Limit()) * float64(time.Second)))
		return false, max(wait, time.Millisecond)
	}
	// Charge n in chunks of at most burst (the most one reservation may
	// take); all but the first drive the bucket into debt.
	for left := n; left > 0; left -= burst {
		b.lim.ReserveN(now, min(left, burst))
	}
	return true, 0
}
