package otlpsend

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/kern-agents/trace-gateway/exporters/internal/fixture"
	"github.com/kern-agents/trace-gateway/plugins"
)

type class int

const (
	isNil class = iota
	isRetryable
	isPermanent
	isTooLarge
)

func classOf(err error) class {
	var tl *errTooLarge
	var r *plugins.RetryableError
	switch {
	case err == nil:
		return isNil
	case errors.As(err, &tl):
		return isTooLarge
	case plugins.IsPermanent(err):
		return isPermanent
	case errors.As(err, &r):
		return isRetryable
	}
	return -1
}

func TestClassifyHTTP(t *testing.T) {
	netErr := errors.New("connection refused")
	tests := []struct {
		name       string
		answered   bool
		status     int
		retryAfter string
		excerpt    string
		err        error
		want       class
		after      time.Duration
		mention    string
	}{
		{name: "no response", err: netErr, want: isRetryable, mention: "connection refused"},
		{name: "no response, no error", want: isNil},
		{name: "200", answered: true, status: 200, want: isNil},
		{name: "200 with partial success", answered: true, status: 200, err: errors.New("2 spans rejected"), want: isNil},
		{name: "204", answered: true, status: 204, want: isNil},
		{name: "429 seconds", answered: true, status: 429, retryAfter: "12", want: isRetryable, after: 12 * time.Second},
		{name: "429 garbage Retry-After", answered: true, status: 429, retryAfter: "soon", want: isRetryable},
		{name: "503", answered: true, status: 503, retryAfter: "1", want: isRetryable, after: time.Second},
		{name: "502", answered: true, status: 502, want: isRetryable},
		{name: "500", answered: true, status: 500, excerpt: "oops", want: isRetryable, mention: "oops"},
		{name: "408", answered: true, status: 408, want: isRetryable},
		{name: "401", answered: true, status: 401, want: isPermanent, mention: "check credentials (HTTP 401 Unauthorized from example.com"},
		{name: "403", answered: true, status: 403, want: isPermanent, mention: "check credentials"},
		{name: "413", answered: true, status: 413, want: isTooLarge},
		{name: "400", answered: true, status: 400, excerpt: "bad span", want: isPermanent, mention: "HTTP 400 Bad Request from example.com: bad span"},
		{name: "404", answered: true, status: 404, want: isPermanent},
		{name: "302", answered: true, status: 302, want: isPermanent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := &outcome{answered: tt.answered, status: tt.status, retryAfter: tt.retryAfter, excerpt: tt.excerpt}
			got := classifyHTTP("example.com", o, tt.err, nil)
			if c := classOf(got); c != tt.want {
				t.Fatalf("class %d, want %d (%v)", c, tt.want, got)
			}
			if after, _ := plugins.RetryAfter(got); after != tt.after {
				t.Fatalf("after %v, want %v", after, tt.after)
			}
			if tt.mention != "" && !strings.Contains(got.Error(), tt.mention) {
				t.Fatalf("%q does not mention %q", got, tt.mention)
			}
		})
	}
}

// TestClassifyHTTPByVendor checks the vendor's hook: it sees every error
// answer first, what it returns wins, and nil leaves the shared rules.
func TestClassifyHTTPByVendor(t *testing.T) {
	var seen []Answer
	vendor := func(a Answer) error {
		seen = append(seen, a)
		if a.Status == 422 && strings.Contains(a.Excerpt, "busy") {
			return plugins.Retryable(errors.New("vendor says busy: "+a.Detail), 0)
		}
		return nil
	}
	for _, tt := range []struct {
		name    string
		o       *outcome
		want    class
		mention string
		asked   bool
	}{
		{name: "vendor's own reading wins", o: &outcome{answered: true, status: 422, excerpt: "store busy"}, want: isRetryable,
			mention: "vendor says busy: HTTP 422 Unprocessable Entity from example.com: store busy", asked: true},
		{name: "nil leaves the shared rules", o: &outcome{answered: true, status: 422, excerpt: "bad span"}, want: isPermanent, asked: true},
		{name: "413 still splits when the vendor passes", o: &outcome{answered: true, status: 413}, want: isTooLarge, asked: true},
		{name: "not asked about a success", o: &outcome{answered: true, status: 200}, want: isNil},
		{name: "not asked without an answer", o: &outcome{}, want: isRetryable},
	} {
		t.Run(tt.name, func(t *testing.T) {
			seen = nil
			got := classifyHTTP("example.com", tt.o, errors.New("no answer"), vendor)
			if c := classOf(got); c != tt.want {
				t.Fatalf("class %d, want %d (%v)", c, tt.want, got)
			}
			if tt.mention != "" && !strings.Contains(got.Error(), tt.mention) {
				t.Fatalf("%q does not mention %q", got, tt.mention)
			}
			if asked := len(seen) == 1; asked != tt.asked {
				t.Fatalf("vendor asked %d times, want asked=%v", len(seen), tt.asked)
			}
			if tt.asked && (seen[0].Status != tt.o.status || seen[0].Excerpt != tt.o.excerpt) {
				t.Fatalf("vendor saw %+v", seen[0])
			}
		})
	}
}

func TestClassifyGRPC(t *testing.T) {
	withRetry := func(c codes.Code, d time.Duration) *status.Status {
		st, err := status.New(c, "throttled").WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(d)})
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	tests := []struct {
		name  string
		st    *status.Status
		err   error
		want  class
		after time.Duration
	}{
		{name: "never answered", err: errors.New("dial"), want: isRetryable},
		{name: "OK", st: status.New(codes.OK, ""), want: isNil},
		{name: "OK with partial success", st: status.New(codes.OK, ""), err: errors.New("partial"), want: isNil},
		{name: "Unavailable", st: status.New(codes.Unavailable, "down"), want: isRetryable},
		{name: "Unavailable with RetryInfo", st: withRetry(codes.Unavailable, 2*time.Second), want: isRetryable, after: 2 * time.Second},
		{name: "ResourceExhausted with RetryInfo", st: withRetry(codes.ResourceExhausted, 5*time.Second), want: isRetryable, after: 5 * time.Second},
		{name: "ResourceExhausted quota", st: status.New(codes.ResourceExhausted, "quota exceeded"), want: isRetryable},
		{name: "message too large", st: status.New(codes.ResourceExhausted, "grpc: received message larger than max (5000 vs. 4194304)"), want: isTooLarge},
		{name: "DeadlineExceeded", st: status.New(codes.DeadlineExceeded, ""), want: isRetryable},
		{name: "Unauthenticated", st: status.New(codes.Unauthenticated, "bad key"), want: isPermanent},
		{name: "PermissionDenied", st: status.New(codes.PermissionDenied, "no"), want: isPermanent},
		{name: "InvalidArgument", st: status.New(codes.InvalidArgument, "bad"), want: isPermanent},
		{name: "Unimplemented", st: status.New(codes.Unimplemented, "no trace service"), want: isPermanent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := classifyGRPC("otlp.example.com:443", tt.st, tt.err)
			if c := classOf(got); c != tt.want {
				t.Fatalf("class %d, want %d (%v)", c, tt.want, got)
			}
			if after, _ := plugins.RetryAfter(got); after != tt.after {
				t.Fatalf("after %v, want %v", after, tt.after)
			}
		})
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := map[string]time.Duration{
		"":          0,
		"0":         0,
		"-3":        0,
		"30":        30 * time.Second,
		" 5 ":       5 * time.Second,
		"999999999": 24 * time.Hour,
		"later":     0,
		now.Add(90 * time.Second).Format(http.TimeFormat): 90 * time.Second,
		now.Add(-time.Minute).Format(http.TimeFormat):     0,
	}
	for in, want := range tests {
		if got := parseRetryAfter(in, now); got != want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestCleanExcerpt(t *testing.T) {
	tests := map[string]string{
		"  plain  ":                        "plain",
		"line1\n\n  line2\tend":            "line1 line2 end",
		"bell\x07 and \xff bad utf8":       "bell? and ? bad utf8",
		strings.Repeat("a", maxExcerpt+50): strings.Repeat("a", maxExcerpt),
	}
	for in, want := range tests {
		if got := cleanExcerpt([]byte(in)); got != want {
			t.Errorf("cleanExcerpt(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSplit(t *testing.T) {
	td := fixture.Many(7)
	a, b := Split(td)
	if a.SpanCount() != 3 || b.SpanCount() != 4 {
		t.Fatalf("split 7 into %d + %d, want 3 + 4", a.SpanCount(), b.SpanCount())
	}
	if td.SpanCount() != 7 {
		t.Fatal("Split modified its input")
	}
	seen := map[string]bool{}
	for _, half := range []ptrace.Traces{a, b} {
		for _, rs := range half.ResourceSpans().All() {
			if rs.ScopeSpans().Len() == 0 {
				t.Fatal("empty resource kept")
			}
			svc, _ := rs.Resource().Attributes().Get("service.name")
			for _, ss := range rs.ScopeSpans().All() {
				if ss.Spans().Len() == 0 {
					t.Fatal("empty scope kept")
				}
				for _, s := range ss.Spans().All() {
					seen[s.Name()] = true
					// Each span keeps the resource and scope it had.
					orig, _ := fixture.Find(td, s.Name())
					if orig.SpanID() != s.SpanID() || svc.Str() == "" || ss.Scope().Name() == "" {
						t.Fatalf("span %s lost its identity or context", s.Name())
					}
				}
			}
		}
	}
	if len(seen) != 7 {
		t.Fatalf("halves hold %d distinct spans, want 7", len(seen))
	}
	one, rest := Split(fixture.Many(1))
	if one.SpanCount() != 0 || rest.SpanCount() != 1 {
		t.Fatalf("split 1 into %d + %d", one.SpanCount(), rest.SpanCount())
	}
}

func TestToProto(t *testing.T) {
	rs, err := ToProto(fixture.AgentRun())
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 1 || len(rs[0].ScopeSpans) != 1 || len(rs[0].ScopeSpans[0].Spans) != 9 {
		t.Fatalf("unexpected shape: %v", rs)
	}
	if got := rs[0].ScopeSpans[0].Spans[0].Name; got != fixture.TeamRun {
		t.Fatalf("first span %q", got)
	}
	if got := rs[0].Resource.Attributes[0].GetValue().GetStringValue(); got != "agentos" {
		t.Fatalf("resource attribute %q", got)
	}
}

func TestSendSplittingByMaxBytes(t *testing.T) {
	td := fixture.Many(8)
	rs, _ := ToProto(fixture.Many(2))
	limit := requestSize(rs) + 10 // two spans fit, three do not

	var batches []int
	up := func(_ context.Context, rs []*tracepb.ResourceSpans) error {
		n := 0
		for _, r := range rs {
			for _, ss := range r.ScopeSpans {
				n += len(ss.Spans)
			}
		}
		if requestSize(rs) > limit {
			t.Fatalf("uploaded %d bytes over the %d limit", requestSize(rs), limit)
		}
		batches = append(batches, n)
		return nil
	}
	if err := sendSplitting(context.Background(), "h", td, limit, up); err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, n := range batches {
		total += n
	}
	if total != 8 || len(batches) != 4 {
		t.Fatalf("batches %v, want four of two spans", batches)
	}

	calls := 0
	err := sendSplitting(context.Background(), "h", fixture.Many(1), 10, func(context.Context, []*tracepb.ResourceSpans) error {
		calls++
		return nil
	})
	if !plugins.IsPermanent(err) || calls != 0 {
		t.Fatalf("a single span over the limit: err %v after %d calls; want permanent without sending", err, calls)
	}
	if err := sendSplitting(context.Background(), "h", ptrace.NewTraces(), 0, nil); err != nil {
		t.Fatalf("empty batch: %v", err)
	}
}

type fakeSender struct {
	sent     []ptrace.Traces
	shutdown int
}

func (f *fakeSender) Send(_ context.Context, td ptrace.Traces) error {
	f.sent = append(f.sent, td)
	return nil
}

func (f *fakeSender) Shutdown(context.Context) error { f.shutdown++; return nil }

func TestAdapter(t *testing.T) {
	var senders []*fakeSender
	a := NewAdapter(func(raw map[string]any) (Sender, Mapper, error) {
		if raw["bad"] != nil {
			ce := &plugins.ConfigError{}
			ce.Add("bad", "is bad")
			return nil, nil, ce
		}
		s := &fakeSender{}
		senders = append(senders, s)
		return s, func(td ptrace.Traces) ptrace.Traces {
			out := ptrace.NewTraces()
			td.CopyTo(out)
			out.ResourceSpans().At(0).Resource().Attributes().PutStr("mapped", "yes")
			return out
		}, nil
	})
	ctx := context.Background()
	var r *plugins.RetryableError
	if err := a.Export(ctx, fixture.Many(1)); !errors.As(err, &r) {
		t.Fatalf("export before configure: %v", err)
	}
	var ce *plugins.ConfigError
	if err := a.Configure(ctx, map[string]any{"bad": true}); !errors.As(err, &ce) {
		t.Fatalf("bad config: %v", err)
	}
	if err := a.Configure(ctx, nil); err != nil {
		t.Fatal(err)
	}
	in := fixture.Many(1)
	if err := a.Export(ctx, in); err != nil {
		t.Fatal(err)
	}
	if _, ok := senders[0].sent[0].ResourceSpans().At(0).Resource().Attributes().Get("mapped"); !ok {
		t.Fatal("mapper not applied")
	}
	if _, ok := in.ResourceSpans().At(0).Resource().Attributes().Get("mapped"); ok {
		t.Fatal("input modified")
	}
	// Reconfiguring replaces and shuts down the old sender.
	if err := a.Configure(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if senders[0].shutdown != 1 || len(senders) != 2 {
		t.Fatalf("old sender shut down %d times; %d senders", senders[0].shutdown, len(senders))
	}
	if err := a.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := a.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if senders[1].shutdown != 1 {
		t.Fatalf("sender shut down %d times, want 1", senders[1].shutdown)
	}
}

func TestGRPCTarget(t *testing.T) {
	tests := []struct {
		in       string
		insecure bool
		want     string
		plain    bool
		bad      bool
	}{
		{in: "collector:4317", want: "collector:4317"},
		{in: "collector:4317", insecure: true, want: "collector:4317", plain: true},
		{in: "https://otlp.arize.com", want: "otlp.arize.com:443"},
		{in: "http://127.0.0.1:4317", want: "127.0.0.1:4317", plain: true},
		{in: "http://collector", want: "collector:80", plain: true},
		{in: "[::1]:4317", want: "[::1]:4317"},
		{in: "collector", bad: true},
		{in: "collector:0", bad: true},
		{in: "collector:http", bad: true},
		{in: "grpc://collector:4317", bad: true},
		{in: "https://c:4317/v1/traces", bad: true},
	}
	for _, tt := range tests {
		got, plain, err := GRPCTarget(tt.in, tt.insecure)
		if tt.bad {
			if err == nil {
				t.Errorf("GRPCTarget(%q) accepted", tt.in)
			}
			continue
		}
		if err != nil || got != tt.want || plain != tt.plain {
			t.Errorf("GRPCTarget(%q) = %q, %v, %v; want %q, %v", tt.in, got, plain, err, tt.want, tt.plain)
		}
	}
}
