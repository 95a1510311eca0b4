package otlptest

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/kern-agents/trace-gateway/exporters/internal/facts"
	"github.com/kern-agents/trace-gateway/exporters/internal/fixture"
	"github.com/kern-agents/trace-gateway/plugins"
)

// ConfigFor is the config block that sends to a fake endpoint: given its
// base URL (scheme://host:port) for HTTP, its host:port for gRPC.
type ConfigFor func(target string) map[string]any

// RunHTTPErrorSuite checks how an HTTP adapter (made by newExporter)
// translates what a vendor answers: throttling, outages, bad credentials,
// payloads too large, rejected payloads and garbage. The fakes enforce the
// vendor's rules (see NewHTTP), which the adapter's requests must pass.
func RunHTTPErrorSuite(t *testing.T, newExporter func() plugins.Exporter, config ConfigFor, rules ...Rule) {
	t.Helper()
	export := exportTo(newExporter, config)
	replyOnce := func(t *testing.T, reply Reply) (*HTTPServer, error) {
		t.Helper()
		srv := NewHTTP(t, rules...)
		srv.SetResponder(func(Request) Reply { return reply })
		return srv, export(t, srv.URL, fixture.Many(3))
	}

	t.Run("429 with Retry-After seconds is retryable after that delay", func(t *testing.T) {
		_, err := replyOnce(t, Reply{Status: 429, Header: map[string]string{"Retry-After": "7"}, Body: []byte("slow down")})
		ExpectRetryable(t, err, 7*time.Second)
		ExpectMessage(t, err, "429", "slow down")
	})
	t.Run("503 with an HTTP-date Retry-After is retryable after about that delay", func(t *testing.T) {
		when := time.Now().Add(30 * time.Second).UTC().Format(http.TimeFormat)
		_, err := replyOnce(t, Reply{Status: 503, Header: map[string]string{"Retry-After": when}})
		after, ok := plugins.RetryAfter(err)
		if !ok || after < 25*time.Second || after > 31*time.Second {
			t.Fatalf("want retryable after ~30s, got %v (after %v, %v)", err, after, ok)
		}
	})
	t.Run("503 without Retry-After is retryable, host decides the delay", func(t *testing.T) {
		_, err := replyOnce(t, Reply{Status: 503})
		ExpectRetryable(t, err, 0)
	})
	t.Run("500 is retryable and carries the body excerpt", func(t *testing.T) {
		_, err := replyOnce(t, Reply{Status: 500, Body: []byte("database is down")})
		ExpectRetryable(t, err, 0)
		ExpectMessage(t, err, "500", "database is down")
	})
	for _, code := range []int{401, 403} {
		t.Run(fmt.Sprintf("%d is permanent and names credentials", code), func(t *testing.T) {
			_, err := replyOnce(t, Reply{Status: code, Body: []byte(`{"message":"Invalid credentials"}`)})
			ExpectPermanent(t, err)
			ExpectMessage(t, err, "check credentials", fmt.Sprint(code), "Invalid credentials", "127.0.0.1")
		})
	}
	t.Run("400 is permanent with a bounded vendor message", func(t *testing.T) {
		page := "<html><body>" + strings.Repeat("bad span attribute ", 10000) + "</body></html>"
		_, err := replyOnce(t, Reply{Status: 400, Body: []byte(page)})
		ExpectPermanent(t, err)
		ExpectMessage(t, err, "400", "bad span attribute")
		if n := len(err.Error()); n > 1000 {
			t.Fatalf("error message is %d bytes; want it bounded", n)
		}
	})
	t.Run("413 splits the batch until every span is accepted", func(t *testing.T) {
		srv := NewHTTP(t, rules...)
		srv.SetResponder(func(r Request) Reply {
			if r.Traces.SpanCount() > 2 {
				return Reply{Status: 413, Body: []byte("payload too large")}
			}
			return OK()
		})
		if err := export(t, srv.URL, fixture.Many(7)); err != nil {
			t.Fatalf("export: %v", err)
		}
		ExpectAcceptedOnce(t, srv.Requests(), 7, func(r Request) bool { return r.Traces.SpanCount() <= 2 })
	})
	t.Run("413 for a single span is permanent", func(t *testing.T) {
		srv := NewHTTP(t, rules...)
		srv.SetResponder(func(Request) Reply { return Reply{Status: 413} })
		err := export(t, srv.URL, fixture.Many(3))
		ExpectPermanent(t, err)
		ExpectMessage(t, err, "413")
		if n := len(srv.Requests()); n != 2 { // [3] refused, then its first half [1] refused: stop
			t.Fatalf("want 2 requests before giving up, got %d", n)
		}
	})
	t.Run("partial success is success", func(t *testing.T) {
		resp := ptraceotlp.NewExportResponse()
		resp.PartialSuccess().SetRejectedSpans(1)
		resp.PartialSuccess().SetErrorMessage("span 3 rejected")
		body, err := resp.MarshalProto()
		if err != nil {
			t.Fatal(err)
		}
		_, err = replyOnce(t, Reply{Status: 200, Header: map[string]string{"Content-Type": "application/x-protobuf"}, Body: body})
		if err != nil {
			t.Fatalf("want nil for a partial success (resending cannot help), got %v", err)
		}
	})
	t.Run("garbage success body is still success", func(t *testing.T) {
		_, err := replyOnce(t, Reply{Status: 200, Header: map[string]string{"Content-Type": "application/x-protobuf"}, Body: []byte("\x00\xffnot protobuf")})
		if err != nil {
			t.Fatalf("want nil for a 200 with an unreadable body, got %v", err)
		}
	})
	t.Run("a reply that is not HTTP is retryable", func(t *testing.T) {
		addr := garbageServer(t)
		err := export(t, "http://"+addr, fixture.Many(1))
		ExpectRetryable(t, err, 0)
	})
	t.Run("nobody listening is retryable", func(t *testing.T) {
		err := export(t, "http://"+closedAddr(t), fixture.Many(1))
		ExpectRetryable(t, err, 0)
	})
}

// RunGRPCErrorSuite is RunHTTPErrorSuite for gRPC status codes; the fake
// endpoint is plaintext.
func RunGRPCErrorSuite(t *testing.T, newExporter func() plugins.Exporter, config ConfigFor) {
	t.Helper()
	export := exportTo(newExporter, config)
	answer := func(t *testing.T, st *status.Status) error {
		t.Helper()
		srv := NewGRPC(t)
		srv.SetResponder(func(GRPCRequest) error { return st.Err() })
		return export(t, srv.Addr, fixture.Many(3))
	}

	t.Run("ResourceExhausted with RetryInfo is retryable after that delay", func(t *testing.T) {
		st, err := status.New(codes.ResourceExhausted, "rate limited").
			WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(3 * time.Second)})
		if err != nil {
			t.Fatal(err)
		}
		err = answer(t, st)
		ExpectRetryable(t, err, 3*time.Second)
		ExpectMessage(t, err, "ResourceExhausted", "rate limited")
	})
	t.Run("partial success is success", func(t *testing.T) {
		srv := NewGRPC(t)
		srv.SetPartialSuccess(2)
		if err := export(t, srv.Addr, fixture.Many(3)); err != nil {
			t.Fatalf("want nil for a partial success, got %v", err)
		}
	})
	t.Run("Unavailable is retryable", func(t *testing.T) {
		ExpectRetryable(t, answer(t, status.New(codes.Unavailable, "try later")), 0)
	})
	t.Run("Internal is retryable", func(t *testing.T) {
		ExpectRetryable(t, answer(t, status.New(codes.Internal, "boom")), 0)
	})
	for _, c := range []codes.Code{codes.Unauthenticated, codes.PermissionDenied} {
		t.Run(c.String()+" is permanent and names credentials", func(t *testing.T) {
			err := answer(t, status.New(c, "invalid api key"))
			ExpectPermanent(t, err)
			ExpectMessage(t, err, "check credentials", c.String(), "invalid api key")
		})
	}
	t.Run("InvalidArgument is permanent with the vendor message", func(t *testing.T) {
		err := answer(t, status.New(codes.InvalidArgument, "span has no name"))
		ExpectPermanent(t, err)
		ExpectMessage(t, err, "span has no name")
	})
	t.Run("messages over the server limit are split until every span is accepted", func(t *testing.T) {
		one := fixture.Many(1)
		rs, err := protoSize(one)
		if err != nil {
			t.Fatal(err)
		}
		// Room for two small spans but not four.
		srv := NewGRPC(t, grpc.MaxRecvMsgSize(rs*2+rs/2))
		if err := export(t, srv.Addr, fixture.Many(9)); err != nil {
			t.Fatalf("export: %v", err)
		}
		var batches []ptrace.Traces
		for _, r := range srv.Requests() {
			batches = append(batches, r.Traces)
		}
		expectEachOnce(t, batches, 9)
	})
	t.Run("nobody listening is retryable", func(t *testing.T) {
		ExpectRetryable(t, export(t, closedAddr(t), fixture.Many(1)), 0)
	})
}

// exportTo returns a function that exports a batch through an exporter
// configured for the given fake endpoint, shut down when the test ends.
func exportTo(newExporter func() plugins.Exporter, config ConfigFor) func(t *testing.T, target string, td ptrace.Traces) error {
	return func(t *testing.T, target string, td ptrace.Traces) error {
		t.Helper()
		return export(Configure(t, newExporter(), config(target)), td)
	}
}

// ExpectRetryable fails unless err is retryable with exactly the given
// delay (0: none requested).
func ExpectRetryable(t testing.TB, err error, after time.Duration) {
	t.Helper()
	var r *plugins.RetryableError
	if !errors.As(err, &r) {
		t.Fatalf("want a retryable error, got %v", err)
	}
	if r.After != after {
		t.Fatalf("want retry after %v, got %v (%v)", after, r.After, err)
	}
}

// ExpectPermanent fails unless err is permanent.
func ExpectPermanent(t testing.TB, err error) {
	t.Helper()
	if !plugins.IsPermanent(err) {
		t.Fatalf("want a permanent error, got %v", err)
	}
}

// ExpectMessage fails unless err's text contains every part.
func ExpectMessage(t testing.TB, err error, parts ...string) {
	t.Helper()
	for _, p := range parts {
		if err == nil || !strings.Contains(err.Error(), p) {
			t.Fatalf("want error mentioning %q, got %v", p, err)
		}
	}
}

// ExpectAcceptedOnce fails unless the requests accepted (per accepted) carry
// spans 1..n of fixture.Many exactly once each.
func ExpectAcceptedOnce(t testing.TB, reqs []Request, n int, accepted func(Request) bool) {
	t.Helper()
	var batches []ptrace.Traces
	for _, r := range reqs {
		if accepted(r) {
			batches = append(batches, r.Traces)
		}
	}
	expectEachOnce(t, batches, n)
}

// expectEachOnce fails unless batches carry spans 1..n of fixture.Many,
// each exactly once, and no other span.
func expectEachOnce(t testing.TB, batches []ptrace.Traces, n int) {
	t.Helper()
	seen := map[pcommon.SpanID]int{}
	for _, td := range batches {
		facts.Each(td, func(_ pcommon.Resource, s ptrace.Span) { seen[s.SpanID()]++ })
	}
	for i := 1; i <= n; i++ {
		if seen[fixture.SpanID(i)] != 1 {
			t.Fatalf("span %d arrived %d times; want once (%d requests)", i, seen[fixture.SpanID(i)], len(batches))
		}
	}
	if len(seen) != n {
		t.Fatalf("%d distinct spans arrived, want %d", len(seen), n)
	}
}

// garbageServer answers every connection with bytes that are not HTTP.
func garbageServer(t testing.TB) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lis.Close() })
	go func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write([]byte("\x16\x03garbage that is not a response\r\n\r\n"))
			_ = c.Close()
		}
	}()
	return lis.Addr().String()
}

// closedAddr is a loopback address nothing listens on.
func closedAddr(t testing.TB) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	_ = lis.Close()
	return addr
}
