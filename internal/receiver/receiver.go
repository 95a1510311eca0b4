// Package receiver accepts OTLP trace exports over HTTP (POST /v1/traces,
// protobuf or JSON) and gRPC (TraceService/Export), converts them to
// agno_spans rows and hands them to a Sink (the batcher), answering only
// once the Sink reports the spans committed.
//
// Both transports share one decode path (package otlpdecode), so spans with
// malformed ids are rejected through OTLP partial success while the rest of
// the request is stored, and attribute values nested too deep for pdata's
// protobuf decoder are cut as the converter cuts them in OTLP/JSON. Errors
// map to the OTLP status codes:
//
//	malformed body          400 Bad Request        INVALID_ARGUMENT
//	body too large          413                    RESOURCE_EXHAUSTED (gRPC's own limit)
//	queue full              429 + Retry-After      RESOURCE_EXHAUSTED + RetryInfo
//	database unavailable,   503 + Retry-After      UNAVAILABLE + RetryInfo
//	shutting down
//	other write errors      500                    INTERNAL
package receiver

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc/codes"

	"github.com/kern-agents/trace-gateway/internal/auth"
	"github.com/kern-agents/trace-gateway/internal/batcher"
	"github.com/kern-agents/trace-gateway/internal/convert"
	"github.com/kern-agents/trace-gateway/internal/limits"
	"github.com/kern-agents/trace-gateway/internal/model"
	"github.com/kern-agents/trace-gateway/internal/otlpdecode"
	"github.com/kern-agents/trace-gateway/internal/ratelimit"
	"github.com/kern-agents/trace-gateway/internal/store"
)

// retryAfter is the delay to suggest for f.
func (o Options) retryAfter(f failure) time.Duration {
	if f.retryAfter > 0 {
		return f.retryAfter
	}
	return o.RetryAfter
}

// Sink stores converted spans and returns once they are committed;
// *batcher.Batcher satisfies it.
type Sink interface {
	Submit(ctx context.Context, spans []model.Span) error
}

// Defaults for Options.
const (
	DefaultMaxBodyBytes          = 16 << 20
	DefaultMaxDecompressionRatio = 100
	DefaultRetryAfter            = time.Second
)

// Options configure both receivers; zero fields take the defaults.
type Options struct {
	// MaxBodyBytes caps a request body after decompression (HTTP) and the
	// gRPC receive message size. Default 16 MiB.
	MaxBodyBytes int64
	// MaxDecompressionRatio caps how much a gzip body may expand over its
	// compressed size (HTTP), once it is past 1 MiB. Default 100.
	MaxDecompressionRatio int
	// Limits bound attribute sizes per span (see package convert).
	Limits convert.Limits
	// RetryAfter is the delay suggested with 429/503 (RESOURCE_EXHAUSTED,
	// UNAVAILABLE). Default 1s.
	RetryAfter time.Duration
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Now stamps created_at; defaults to time.Now.
	Now func() time.Time
	// Observer counts spans for metrics; nil counts nothing.
	Observer Observer
	// MaxSpansPerRequest refuses larger requests (413 / RESOURCE_EXHAUSTED
	// without retry); 0 disables.
	MaxSpansPerRequest int
	// RateLimiter bounds spans per second per tenant (the tenant comes from
	// the request context, see package auth); nil disables.
	RateLimiter *ratelimit.Limiter
}

// Observer is told what happened to the spans of each request.
type Observer interface {
	// SpansReceived counts spans decoded from a request, by transport.
	SpansReceived(transport string, n int)
	// SpansRejected counts spans refused, by reason: invalid_span,
	// queue_full, unavailable, write_error.
	SpansRejected(reason string, n int)
}

type nopObserver struct{}

func (nopObserver) SpansReceived(string, int) {}
func (nopObserver) SpansRejected(string, int) {}

// observe reports one request's outcome.
func (o Options) observe(transport string, stored, rejected int, f *failure) {
	o.Observer.SpansReceived(transport, stored+rejected)
	if rejected > 0 {
		o.Observer.SpansRejected("invalid_span", rejected)
	}
	if f != nil && stored > 0 {
		o.Observer.SpansRejected(f.reason, stored)
	}
}

func (o Options) withDefaults() Options {
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if o.MaxDecompressionRatio <= 0 {
		o.MaxDecompressionRatio = DefaultMaxDecompressionRatio
	}
	if o.RetryAfter <= 0 {
		o.RetryAfter = DefaultRetryAfter
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Observer == nil {
		o.Observer = nopObserver{}
	}
	return o
}

// wireFormat is the encoding of a request and its response.
type wireFormat int

const (
	encProto wireFormat = iota
	encJSON
)

// refusal is a request refused before anything is stored (too many spans,
// rate limited); decode returns it as its error.
type refusal struct {
	f     failure
	spans int // in the refused request
}

func (r *refusal) Error() string { return r.f.message }

// decode turns a request body into rows plus the spans rejected on the way.
// The tenant of an authenticated request is stamped on every resource, and
// the request is checked against the spans-per-request and rate limits
// before it is converted (a *refusal then).
func (o Options) decode(ctx context.Context, enc wireFormat, body []byte) ([]model.Span, []convert.Rejection, error) {
	var (
		td       ptrace.Traces
		rejected []convert.Rejection
		err      error
	)
	if enc == encJSON {
		td, rejected, err = otlpdecode.JSON(body)
	} else {
		td, rejected, err = otlpdecode.Proto(body)
	}
	if err != nil {
		return nil, nil, err
	}
	tenant, _ := auth.TenantFrom(ctx)
	auth.StampTenant(td, tenant)
	if err := limits.CheckSpans(td, o.MaxSpansPerRequest); err != nil {
		return nil, nil, &refusal{failure{http.StatusRequestEntityTooLarge, codes.ResourceExhausted, err.Error(), false, "too_many_spans", 0}, td.SpanCount()}
	}
	if ok, wait := o.RateLimiter.Allow(tenant, td.SpanCount()); !ok {
		return nil, nil, &refusal{failure{http.StatusTooManyRequests, codes.ResourceExhausted,
			"span rate limit exceeded; retry later", true, "rate_limited", wait}, td.SpanCount()}
	}
	spans, more := convert.FromOTLP(td, o.Now(), o.Limits)
	return spans, append(rejected, more...), nil
}

// failure is how one error is reported on both transports.
type failure struct {
	httpStatus int
	code       codes.Code
	message    string        // safe to send: no database details
	retry      bool          // suggest Retry-After / RetryInfo
	reason     string        // metrics label
	retryAfter time.Duration // the delay to suggest; 0 means Options.RetryAfter
}

// classify maps a Sink error to the answer the sender gets.
func classify(err error) failure {
	switch {
	case errors.Is(err, batcher.ErrQueueFull):
		return failure{429, codes.ResourceExhausted, "ingest queue is full; retry later", true, "queue_full", 0}
	case errors.Is(err, store.ErrUnavailable):
		return failure{503, codes.Unavailable, "trace database unavailable; retry later", true, "unavailable", 0}
	case errors.Is(err, batcher.ErrClosed):
		return failure{503, codes.Unavailable, "gateway is shutting down; retry later", true, "shutting_down", 0}
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return failure{503, codes.Unavailable, "request ended before the spans were committed; retry", true, "cancelled", 0}
	}
	return failure{500, codes.Internal, "storing spans failed", false, "write_error", 0}
}

// maxReasons bounds the partial-success message.
const maxReasons = 5

// partialSuccess builds the export response; rejected may be empty.
func partialSuccess(rejected []convert.Rejection) ptraceotlp.ExportResponse {
	resp := ptraceotlp.NewExportResponse()
	if len(rejected) == 0 {
		return resp
	}
	var b strings.Builder
	b.WriteString(strconv.Itoa(len(rejected)))
	b.WriteString(" span(s) rejected: ")
	for i, r := range rejected {
		if i == maxReasons {
			b.WriteString("; and ")
			b.WriteString(strconv.Itoa(len(rejected) - maxReasons))
			b.WriteString(" more")
			break
		}
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(r.String())
	}
	ps := resp.PartialSuccess()
	ps.SetRejectedSpans(int64(len(rejected)))
	ps.SetErrorMessage(b.String())
	return resp
}
