package otlpsend

import (
	"context"
	"errors"
	"fmt"

	"go.opentelemetry.io/collector/pdata/ptrace"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/kern-agents/trace-gateway/plugins"
)

// Sender delivers batches to one destination.
type Sender interface {
	// Send delivers td. It returns nil, a plugins.Retryable or a
	// plugins.Permanent error.
	Send(ctx context.Context, td ptrace.Traces) error
	// Shutdown releases connections.
	Shutdown(ctx context.Context) error
}

// uploadFunc makes one attempt and classifies it (nil, plugins error or
// *errTooLarge).
type uploadFunc func(ctx context.Context, rs []*tracepb.ResourceSpans) error

// sendSplitting uploads td, halving it (recursively) when it is over
// maxBytes or when the destination answers that it is too large. The
// halves are sent one after the other; if a later half fails, the whole
// batch is retried by the host and the earlier half is sent again, which
// vendors absorb because span ids are stable (at-least-once delivery).
func sendSplitting(ctx context.Context, host string, td ptrace.Traces, maxBytes int, up uploadFunc) error {
	n := td.SpanCount()
	if n == 0 {
		return nil
	}
	rs, err := ToProto(td)
	if err != nil {
		return plugins.Permanent(err)
	}
	if maxBytes > 0 {
		if size := requestSize(rs); size > maxBytes {
			if n == 1 {
				return plugins.Permanent(fmt.Errorf("a single span encodes to %d bytes, over the %d bytes %s accepts per request", size, maxBytes, host))
			}
			return sendHalves(ctx, host, td, maxBytes, up)
		}
	}
	err = up(ctx, rs)
	var tooLarge *errTooLarge
	if !errors.As(err, &tooLarge) {
		return err
	}
	if n == 1 {
		return plugins.Permanent(fmt.Errorf("a single span is too large for the destination (%s)", tooLarge.detail))
	}
	return sendHalves(ctx, host, td, maxBytes, up)
}

func sendHalves(ctx context.Context, host string, td ptrace.Traces, maxBytes int, up uploadFunc) error {
	a, b := Split(td)
	if err := sendSplitting(ctx, host, a, maxBytes, up); err != nil {
		return err
	}
	return sendSplitting(ctx, host, b, maxBytes, up)
}
