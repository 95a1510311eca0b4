package dispatch

import (
	"math/rand/v2"
	"time"
)

// State is a circuit breaker's state; the values are what the
// kern_gateway_destination_circuit_state metric reports.
type State int

// Circuit breaker states.
const (
	Closed   State = 0 // exports flow
	HalfOpen State = 1 // cool-down over: the next export is a probe
	Open     State = 2 // too many consecutive failures: no exports until the cool-down ends
)

func (s State) String() string {
	switch s {
	case Closed:
		return "closed"
	case HalfOpen:
		return "half-open"
	default:
		return "open"
	}
}

// breaker is one destination's circuit breaker. A worker exports one batch
// at a time, so the half-open probe is simply the next export; the breaker
// needs no lock of its own (the worker's mutex guards reads from metrics).
type breaker struct {
	threshold int
	coolDown  time.Duration

	state    State
	failures int // consecutive
	openedAt time.Time
}

// wait returns how long exports must still wait; when the cool-down is over
// the breaker goes half-open and wait returns 0.
func (b *breaker) wait(now time.Time) time.Duration {
	if b.state != Open {
		return 0
	}
	if left := b.openedAt.Add(b.coolDown).Sub(now); left > 0 {
		return left
	}
	b.state = HalfOpen
	return 0
}

// success records an export the destination answered (accepted, or refused
// for good: either way it is up).
func (b *breaker) success() {
	b.state, b.failures = Closed, 0
}

// failure records a failed export; it reports whether the breaker opened.
func (b *breaker) failure(now time.Time) bool {
	b.failures++
	if b.state == HalfOpen || (b.state == Closed && b.failures >= b.threshold) {
		b.state, b.openedAt = Open, now
		return true
	}
	return false
}

// backoff is the wait before retry n (1-based): Initial doubled n-1 times,
// capped at Max, then jittered to between half and all of it so that
// replicas retrying the same outage spread out.
func backoff(n int, initial, maxWait time.Duration) time.Duration {
	d := initial
	for i := 1; i < n && d < maxWait; i++ {
		d *= 2
	}
	d = min(d, maxWait)
	half := d / 2
	return half + rand.N(half+1)
}
