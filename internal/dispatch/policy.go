package dispatch

import (
	"time"

	"github.com/kern-agents/trace-gateway/internal/config"
)

// Policy is how one destination is fed: routing, batching, retries, the
// circuit breaker and the claim lease.
type Policy struct {
	Route Route

	MaxSpans int           // spans per export
	MaxBytes int           // encoded OTLP bytes per export
	MaxDelay time.Duration // how long stored spans wait for a fuller batch

	RetryInitial    time.Duration
	RetryMax        time.Duration
	RetryMaxElapsed time.Duration // 0: retry until the destination accepts

	BreakerFailures int
	BreakerCoolDown time.Duration

	Timeout time.Duration // one Export call (the plugin host restarts a plugin that overruns it)
	Lease   time.Duration // claim lease; another replica takes over after it
}

// PolicyFromConfig builds a destination's policy from its (validated)
// configuration, defaults filled.
func PolicyFromConfig(d config.Destination) Policy {
	d = d.WithDefaults()
	p := Policy{
		Route: Route{
			Include:  d.Filter.Include,
			Exclude:  d.Filter.Exclude,
			Sampling: 1,
			Redact:   d.Redact,
		},
		MaxSpans:        d.Batch.MaxSpans,
		MaxBytes:        int(d.Batch.MaxBytes),
		MaxDelay:        d.Batch.MaxDelay.D(),
		RetryInitial:    d.Retry.Initial.D(),
		RetryMax:        d.Retry.Max.D(),
		RetryMaxElapsed: d.Retry.MaxElapsed.D(),
		BreakerFailures: d.Breaker.Failures,
		BreakerCoolDown: d.Breaker.CoolDown.D(),
		Timeout:         d.Timeout.D(),
		Lease:           d.Lease.D(),
	}
	if d.Sampling != nil {
		p.Route.Sampling = *d.Sampling
	}
	return p
}

// withDefaults fills zero fields, for policies built in code.
func (p Policy) withDefaults() Policy {
	def := PolicyFromConfig(config.Destination{})
	if p.Route.Sampling == 0 {
		p.Route.Sampling = 1
	}
	setInt := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	setDur := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	setInt(&p.MaxSpans, def.MaxSpans)
	setInt(&p.MaxBytes, def.MaxBytes)
	setDur(&p.MaxDelay, def.MaxDelay)
	setDur(&p.RetryInitial, def.RetryInitial)
	setDur(&p.RetryMax, max(def.RetryMax, p.RetryInitial))
	setInt(&p.BreakerFailures, def.BreakerFailures)
	setDur(&p.BreakerCoolDown, def.BreakerCoolDown)
	setDur(&p.Timeout, def.Timeout)
	setDur(&p.Lease, def.Lease)
	return p
}
