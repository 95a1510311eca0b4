package receiver

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/kern-agents/trace-gateway/internal/auth"
	"github.com/kern-agents/trace-gateway/internal/ratelimit"
)

const guardToken = "team-a-token-0123456789"

// countingObserver records rejections by reason.
type countingObserver struct{ rejected map[string]int }

func (o *countingObserver) SpansReceived(string, int) {}
func (o *countingObserver) SpansRejected(reason string, n int) {
	o.rejected[reason] += n
}

func TestGuardHTTP(t *testing.T) {
	a := auth.New([]auth.Token{{Token: guardToken, Tenant: "team-a"}})
	tests := []struct {
		name       string
		opts       func(*Options)
		token      string
		spans      int
		wantStatus int
		wantRetry  string
		wantReason string
	}{
		{"no token", nil, "", 2, 401, "", ""},
		{"stored with tenant", nil, guardToken, 2, 200, "", ""},
		{"too many spans", func(o *Options) { o.MaxSpansPerRequest = 3 }, guardToken, 4, 413, "", "too_many_spans"},
		{"at the span limit", func(o *Options) { o.MaxSpansPerRequest = 3 }, guardToken, 3, 200, "", ""},
		{"rate limited", func(o *Options) {
			o.RateLimiter = ratelimit.New(ratelimit.Limit{}, map[string]ratelimit.Limit{"team-a": {SpansPerSecond: 0.5, Burst: 1}})
			o.RateLimiter.Allow("team-a", 1) // empty the bucket: the next span is 2s away
		}, guardToken, 1, 429, "2", "rate_limited"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sink := &fakeSink{}
			obs := &countingObserver{rejected: map[string]int{}}
			opts := testOptions()
			opts.Observer = obs
			if tt.opts != nil {
				tt.opts(&opts)
			}
			h := a.HTTP(NewHTTPHandler(opts, sink))
			req := httptest.NewRequest(http.MethodPost, TracesPath, bytes.NewReader(protoBody(t, testTraces(tt.spans))))
			req.Header.Set("Content-Type", contentTypeProto)
			if tt.token != "" {
				req.Header.Set("Authorization", "Bearer "+tt.token)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tt.wantStatus {
				t.Fatalf("status %d, want %d: %s", rec.Code, tt.wantStatus, rec.Body)
			}
			if got := rec.Header().Get("Retry-After"); got != tt.wantRetry {
				t.Errorf("Retry-After %q, want %q", got, tt.wantRetry)
			}
			if tt.wantReason != "" && obs.rejected[tt.wantReason] != tt.spans {
				t.Errorf("rejected %v, want %d under %s", obs.rejected, tt.spans, tt.wantReason)
			}
			if tt.wantStatus != 200 {
				if sink.calls() != 0 {
					t.Fatal("refused request reached the sink")
				}
				return
			}
			for _, s := range sink.spans() {
				if s.Origin == nil || s.Origin.Tenant != "team-a" || !strings.Contains(string(s.Origin.Resource), `"`+auth.TenantAttribute+`":"team-a"`) {
					t.Errorf("span %s: origin %+v, want tenant team-a", s.Name, s.Origin)
				}
			}
		})
	}
}

func TestGuardGRPC(t *testing.T) {
	a := auth.New([]auth.Token{{Token: guardToken, Tenant: "team-a"}})
	opts := testOptions()
	opts.MaxSpansPerRequest = 3
	opts.RateLimiter = ratelimit.New(ratelimit.Limit{}, map[string]ratelimit.Limit{"team-a": {SpansPerSecond: 1, Burst: 3}})
	sink := &fakeSink{}
	conn := startGRPC(t, opts, sink, a.ServerOptions()...)
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+guardToken)

	if _, err := exportRaw(context.Background(), conn, protoBody(t, testTraces(1))); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("without token: %v", err)
	}
	if _, err := exportRaw(ctx, conn, protoBody(t, testTraces(4))); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("too many spans: %v", err)
	} else if len(status.Convert(err).Details()) != 0 {
		t.Fatal("too many spans must not suggest a retry")
	}
	if _, err := exportRaw(ctx, conn, protoBody(t, testTraces(3))); err != nil {
		t.Fatalf("within limits: %v", err)
	}
	_, err := exportRaw(ctx, conn, protoBody(t, testTraces(1)))
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("over the rate: %v", err)
	}
	var retry *errdetails.RetryInfo
	for _, d := range status.Convert(err).Details() {
		if r, ok := d.(*errdetails.RetryInfo); ok {
			retry = r
		}
	}
	if retry == nil || retry.RetryDelay.AsDuration() <= 0 {
		t.Fatalf("rate limited without RetryInfo: %v", status.Convert(err).Details())
	}
	if o := sink.spans()[0].Origin; o == nil || o.Tenant != "team-a" {
		t.Fatalf("stored origin %+v, want tenant team-a", o)
	}
}
