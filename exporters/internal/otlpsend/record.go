package otlpsend

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"google.golang.org/grpc/status"
)

// maxExcerpt bounds how much of a vendor's error body goes into an error
// message: enough to read the vendor's reason, never a whole HTML page.
const maxExcerpt = 512

// outcome is what one request got back, recorded beside the otlptrace
// client because its errors do not expose the status code or headers.
type outcome struct {
	mu         sync.Mutex
	answered   bool   // a response (HTTP) or a status (gRPC) came back
	status     int    // HTTP status code
	retryAfter string // HTTP Retry-After header
	excerpt    string // bounded, single-line start of an error body
	grpc       *status.Status
}

func (o *outcome) set(f func(*outcome)) {
	o.mu.Lock()
	defer o.mu.Unlock()
	f(o)
}

func (o *outcome) snapshot() (answered bool, status int, retryAfter, excerpt string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.answered, o.status, o.retryAfter, o.excerpt
}

type outcomeKey struct{}

func withOutcome(ctx context.Context) (context.Context, *outcome) {
	o := &outcome{}
	return context.WithValue(ctx, outcomeKey{}, o), o
}

func outcomeFrom(ctx context.Context) *outcome {
	o, _ := ctx.Value(outcomeKey{}).(*outcome)
	return o
}

// recordingTransport records each response's status, Retry-After and the
// start of an error body into the outcome carried by the request's context
// (the otlptrace client derives its request context from the caller's).
type recordingTransport struct{ base http.RoundTripper }

func (t recordingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	o := outcomeFrom(req.Context())
	if err != nil || o == nil {
		return resp, err
	}
	var excerpt string
	if resp.StatusCode >= 300 && resp.Body != nil {
		head := make([]byte, maxExcerpt)
		n, _ := io.ReadFull(resp.Body, head)
		head = head[:n]
		excerpt = cleanExcerpt(head)
		if n == maxExcerpt {
			excerpt += "…"
		}
		// Hand the client the whole body back: it reads it for its own error.
		resp.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(head), resp.Body), resp.Body}
	}
	o.set(func(o *outcome) {
		o.answered = true
		o.status = resp.StatusCode
		o.retryAfter = resp.Header.Get("Retry-After")
		o.excerpt = excerpt
	})
	return resp, nil
}

// cleanExcerpt turns the start of a body into one printable line.
func cleanExcerpt(b []byte) string {
	if len(b) > maxExcerpt {
		b = b[:maxExcerpt]
	}
	var sb strings.Builder
	space := false
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		b = b[size:]
		switch {
		case r == utf8.RuneError && size <= 1:
			r = '?'
		case unicode.IsSpace(r):
			if !space && sb.Len() > 0 {
				sb.WriteByte(' ')
			}
			space = true
			continue
		case !unicode.IsPrint(r):
			r = '?'
		}
		space = false
		sb.WriteRune(r)
	}
	return strings.TrimSpace(sb.String())
}
