package otlpsend

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kern-agents/trace-gateway/plugins"
)

// errTooLarge means the destination refused the payload for its size; the
// sender splits the batch and sends the halves.
type errTooLarge struct{ detail string }

func (e *errTooLarge) Error() string { return e.detail }

// Answer is a destination's error answer to one request (a status of 300
// or more), as HTTPOptions.Classify sees it.
type Answer struct {
	Status int
	// Excerpt is the start of the body as one printable line (at most 512
	// bytes), where vendors put their reason.
	Excerpt string
	// Detail words the answer for an error message:
	// "HTTP 422 Unprocessable Entity from <host>: <excerpt>".
	Detail string
}

// classifyHTTP turns one HTTP attempt into nil, a retryable or permanent
// plugins error, or *errTooLarge. host names the destination in messages;
// vendor, when not nil, classifies error answers first (see
// HTTPOptions.Classify).
func classifyHTTP(host string, o *outcome, err error, vendor func(Answer) error) error {
	answered, code, retryAfter, excerpt := o.snapshot()
	if !answered {
		if err == nil {
			return nil
		}
		// No response: connection refused, reset, TLS failure, timeout, a
		// reply that was not HTTP. The next attempt may well get through.
		return plugins.Retryable(fmt.Errorf("send to %s: %w", host, err), 0)
	}
	if code >= 200 && code < 300 {
		// The destination took the batch. An error here is a partial-success
		// notice or an unreadable success body: nothing a resend would fix.
		return nil
	}
	detail := fmt.Sprintf("HTTP %d %s from %s", code, http.StatusText(code), host)
	if excerpt != "" {
		detail += ": " + excerpt
	}
	if vendor != nil {
		if err := vendor(Answer{Status: code, Excerpt: excerpt, Detail: detail}); err != nil {
			return err
		}
	}
	switch {
	case code == http.StatusRequestEntityTooLarge:
		return &errTooLarge{detail: detail}
	case code == http.StatusUnauthorized || code == http.StatusForbidden:
		return plugins.Permanent(fmt.Errorf("check credentials (%s)", detail))
	case code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable:
		return plugins.Retryable(errors.New(detail), parseRetryAfter(retryAfter, time.Now()))
	case code == http.StatusRequestTimeout || code >= 500:
		return plugins.Retryable(errors.New(detail), parseRetryAfter(retryAfter, time.Now()))
	default:
		return plugins.Permanent(errors.New(detail))
	}
}

// parseRetryAfter reads a Retry-After value: delay-seconds or an HTTP date.
// Anything else (or a time in the past) yields 0, letting the host choose.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		const maxSecs = int64(24 * time.Hour / time.Second)
		return time.Duration(min(secs, maxSecs)) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now).Round(time.Second)
	}
	return 0
}

// classifyGRPC turns one gRPC attempt into nil, a plugins error, or
// *errTooLarge. st is the status the RPC itself returned (recorded by an
// interceptor); nil means the call never produced one.
func classifyGRPC(host string, st *status.Status, err error) error {
	if st == nil {
		if err == nil {
			return nil
		}
		return plugins.Retryable(fmt.Errorf("send to %s: %w", host, err), 0)
	}
	if st.Code() == codes.OK {
		return nil // a partial-success notice at most; see classifyHTTP
	}
	detail := fmt.Sprintf("gRPC %s from %s: %s", st.Code(), host, boundMessage(st.Message()))
	var retryDelay time.Duration
	hasRetryInfo := false
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			hasRetryInfo = true
			retryDelay = ri.GetRetryDelay().AsDuration()
		}
	}
	switch st.Code() {
	case codes.Unauthenticated, codes.PermissionDenied:
		return plugins.Permanent(fmt.Errorf("check credentials (%s)", detail))
	case codes.ResourceExhausted:
		if !hasRetryInfo && isMessageTooLarge(st.Message()) {
			return &errTooLarge{detail: detail}
		}
		return plugins.Retryable(errors.New(detail), retryDelay)
	case codes.Unavailable, codes.DeadlineExceeded, codes.Aborted, codes.Canceled,
		codes.OutOfRange, codes.DataLoss, codes.Internal, codes.Unknown:
		return plugins.Retryable(errors.New(detail), retryDelay)
	default:
		return plugins.Permanent(errors.New(detail))
	}
}

// isMessageTooLarge recognises grpc-go's (and most servers') wording for a
// message over the receiver's limit.
func isMessageTooLarge(msg string) bool {
	m := strings.ToLower(msg)
	return strings.Contains(m, "larger than max") || strings.Contains(m, "message too large") ||
		strings.Contains(m, "too large")
}

func boundMessage(s string) string {
	return cleanExcerpt([]byte(s))
}
