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

// EncodedSender is a Sender that can also deliver a batch as the host
// encoded it (a protobuf OTLP ExportTraceServiceRequest), without the
// round trip through pdata.
type EncodedSender interface {
	Sender
	// SendEncoded delivers request and answers as Send does; bytes that are
	// not an OTLP request yield a plugins.Permanent error.
	SendEncoded(ctx context.Context, request []byte) error
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
	if tooLarge, ok := asTooLarge(err); ok {
		return halveRefused(ctx, host, td, tooLarge, maxBytes, up)
	}
	return err
}

// encodedUploadFunc makes one attempt with an encoded request, classified
// like uploadFunc.
type encodedUploadFunc func(ctx context.Context, request []byte) error

// viaStructs makes an encodedUploadFunc of up: the request is decoded once,
// into the structs the otlptrace clients upload.
func viaStructs(up uploadFunc) encodedUploadFunc {
	return func(ctx context.Context, request []byte) error {
		rs, err := decodeRequest(request)
		if err != nil {
			return err
		}
		if spanCount(rs) == 0 {
			return nil
		}
		return up(ctx, rs)
	}
}

// sendEncoded is sendSplitting for a batch as the host encoded it: upEnc
// sends it whole and its encoded length stands for its size. Only a batch
// that must be split is decoded into pdata, which splitting works on, and
// its halves go through up.
func sendEncoded(ctx context.Context, host string, request []byte, maxBytes int, upEnc encodedUploadFunc, up uploadFunc) error {
	if maxBytes > 0 && len(request) > maxBytes {
		td, err := decodeTraces(request)
		if err != nil {
			return err
		}
		return sendSplitting(ctx, host, td, maxBytes, up)
	}
	err := upEnc(ctx, request)
	tooLarge, ok := asTooLarge(err)
	if !ok {
		return err
	}
	td, err := decodeTraces(request)
	if err != nil {
		return err
	}
	return halveRefused(ctx, host, td, tooLarge, maxBytes, up)
}

// asTooLarge reports whether err is the destination refusing a request for
// its size.
func asTooLarge(err error) (*errTooLarge, bool) {
	var tooLarge *errTooLarge
	ok := errors.As(err, &tooLarge)
	return tooLarge, ok
}

// halveRefused sends the halves of td after the destination refused it as
// too large; a single span cannot be split, so that is final.
func halveRefused(ctx context.Context, host string, td ptrace.Traces, tooLarge *errTooLarge, maxBytes int, up uploadFunc) error {
	if td.SpanCount() == 1 {
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
