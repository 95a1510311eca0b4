package otlpsend

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/kern-agents/trace-gateway/exporters/internal/fixture"
	"github.com/kern-agents/trace-gateway/exporters/internal/otlptest"
	"github.com/kern-agents/trace-gateway/plugins"
)

// garbage is not a protobuf message: its varint never ends.
var garbage = []byte{0xff, 0xff, 0xff}

// encodeBatch encodes td as the host does for ExportRequest.traces.
func encodeBatch(t testing.TB, td ptrace.Traces) []byte {
	t.Helper()
	b, err := (&ptrace.ProtoMarshaler{}).MarshalTraces(td)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// httpAdapter is an OTLP/HTTP adapter whose config block is
// {"target": base URL of a fake}; opts presets the other settings.
func httpAdapter(opts HTTPOptions, mapper Mapper) *Adapter {
	return NewAdapter(func(raw map[string]any) (Sender, Mapper, error) {
		opts.URL = fmt.Sprint(raw["target"]) + "/v1/traces"
		s, err := NewHTTP(opts)
		if err != nil {
			return nil, nil, err
		}
		return s, mapper, nil
	})
}

// grpcAdapter is httpAdapter for OTLP/gRPC in plaintext: the target is the
// fake's host:port.
func grpcAdapter(opts GRPCOptions, mapper Mapper) *Adapter {
	return NewAdapter(func(raw map[string]any) (Sender, Mapper, error) {
		opts.Endpoint, opts.Insecure = fmt.Sprint(raw["target"]), true
		s, err := NewGRPC(opts)
		if err != nil {
			return nil, nil, err
		}
		return s, mapper, nil
	})
}

// configured configures a for the fake at target; it is shut down when the
// test ends.
func configured(t testing.TB, a *Adapter, target string) *Adapter {
	t.Helper()
	otlptest.Configure(t, a, map[string]any{"target": target})
	return a
}

// viaEncoded exports every batch through ExportEncoded, encoded as the host
// sends it, so the shared vendor suites exercise the encoded path.
type viaEncoded struct{ *Adapter }

func (v viaEncoded) Export(ctx context.Context, td ptrace.Traces) error {
	b, err := (&ptrace.ProtoMarshaler{}).MarshalTraces(td)
	if err != nil {
		return err
	}
	return v.ExportEncoded(ctx, b)
}

func TestEncodedHTTPErrorSuite(t *testing.T) {
	otlptest.RunHTTPErrorSuite(t, func() plugins.Exporter { return viaEncoded{httpAdapter(HTTPOptions{}, nil)} },
		func(base string) map[string]any { return map[string]any{"target": base} })
}

func TestEncodedGRPCErrorSuite(t *testing.T) {
	otlptest.RunGRPCErrorSuite(t, func() plugins.Exporter { return viaEncoded{grpcAdapter(GRPCOptions{}, nil)} },
		func(addr string) map[string]any { return map[string]any{"target": addr} })
}

// mapTag is a vendor mapping that tags the first resource.
func mapTag(td ptrace.Traces) ptrace.Traces {
	out := ptrace.NewTraces()
	td.CopyTo(out)
	out.ResourceSpans().At(0).Resource().Attributes().PutStr("mapped", "yes")
	return out
}

func TestExportEncodedDelivers(t *testing.T) {
	for _, tt := range []struct {
		name   string
		grpc   bool
		http   HTTPOptions
		mapper Mapper
	}{
		{name: "http/protobuf", http: HTTPOptions{Compression: "gzip"}},
		{name: "http/json", http: HTTPOptions{JSON: true}},
		{name: "grpc", grpc: true},
		{name: "http with a mapper", mapper: mapTag},
		{name: "grpc with a mapper", grpc: true, mapper: mapTag},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var received func() []ptrace.Traces
			var a *Adapter
			if tt.grpc {
				srv := otlptest.NewGRPC(t)
				a = configured(t, grpcAdapter(GRPCOptions{}, tt.mapper), srv.Addr)
				received = func() []ptrace.Traces { return grpcTraces(srv.Requests()) }
			} else {
				srv := otlptest.NewHTTP(t)
				a = configured(t, httpAdapter(tt.http, tt.mapper), srv.URL)
				received = func() []ptrace.Traces { return httpTraces(srv.Requests()) }
			}
			if err := a.ExportEncoded(context.Background(), encodeBatch(t, fixture.AgentRun())); err != nil {
				t.Fatalf("ExportEncoded: %v", err)
			}
			got := received()
			if len(got) != 1 {
				t.Fatalf("want 1 request, got %d", len(got))
			}
			want := fixture.AgentRun()
			if tt.mapper != nil {
				want = tt.mapper(want)
			}
			if !otlptest.Same(got[0], want) {
				t.Fatal("received spans differ from the ones sent")
			}
		})
	}
}

func httpTraces(reqs []otlptest.Request) []ptrace.Traces {
	out := make([]ptrace.Traces, len(reqs))
	for i, r := range reqs {
		out[i] = r.Traces
	}
	return out
}

func grpcTraces(reqs []otlptest.GRPCRequest) []ptrace.Traces {
	out := make([]ptrace.Traces, len(reqs))
	for i, r := range reqs {
		out[i] = r.Traces
	}
	return out
}

// TestExportEncodedAnswersLikeExport sends the same batch both ways to a
// fake giving the same answer: the errors must be the same, word for word.
func TestExportEncodedAnswersLikeExport(t *testing.T) {
	retryInfo := func(c codes.Code, msg string, d time.Duration) *status.Status {
		st, err := status.New(c, msg).WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(d)})
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	for _, tt := range []struct {
		name  string
		reply otlptest.Reply // HTTP answer, when st is nil
		st    *status.Status // gRPC answer
		want  class
		after time.Duration
	}{
		{name: "http 200", reply: otlptest.OK(), want: isNil},
		{name: "http 429 with Retry-After", reply: otlptest.Reply{Status: 429, Header: map[string]string{"Retry-After": "7"}, Body: []byte("slow down")}, want: isRetryable, after: 7 * time.Second},
		{name: "http 500", reply: otlptest.Reply{Status: 500, Body: []byte("database is down")}, want: isRetryable},
		{name: "http 400", reply: otlptest.Reply{Status: 400, Body: []byte("bad span")}, want: isPermanent},
		{name: "http 401", reply: otlptest.Reply{Status: 401}, want: isPermanent},
		{name: "grpc OK", st: status.New(codes.OK, ""), want: isNil},
		{name: "grpc ResourceExhausted with RetryInfo", st: retryInfo(codes.ResourceExhausted, "rate limited", 3*time.Second), want: isRetryable, after: 3 * time.Second},
		{name: "grpc Unavailable", st: status.New(codes.Unavailable, "try later"), want: isRetryable},
		{name: "grpc InvalidArgument", st: status.New(codes.InvalidArgument, "span has no name"), want: isPermanent},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var a *Adapter
			var received func() []ptrace.Traces
			if tt.st != nil {
				srv := otlptest.NewGRPC(t)
				srv.SetResponder(func(otlptest.GRPCRequest) error { return tt.st.Err() })
				a = configured(t, grpcAdapter(GRPCOptions{}, nil), srv.Addr)
				received = func() []ptrace.Traces { return grpcTraces(srv.Requests()) }
			} else {
				srv := otlptest.NewHTTP(t)
				srv.SetResponder(func(otlptest.Request) otlptest.Reply { return tt.reply })
				a = configured(t, httpAdapter(HTTPOptions{}, nil), srv.URL)
				received = func() []ptrace.Traces { return httpTraces(srv.Requests()) }
			}
			ctx := context.Background()
			td := fixture.Many(3)
			byTD := a.Export(ctx, td)
			encoded := a.ExportEncoded(ctx, encodeBatch(t, td))
			for path, err := range map[string]error{"Export": byTD, "ExportEncoded": encoded} {
				if c := classOf(err); c != tt.want {
					t.Fatalf("%s: class %d, want %d (%v)", path, c, tt.want, err)
				}
				if after, _ := plugins.RetryAfter(err); after != tt.after {
					t.Fatalf("%s: after %v, want %v", path, after, tt.after)
				}
			}
			if fmt.Sprint(byTD) != fmt.Sprint(encoded) {
				t.Fatalf("answers differ:\n Export:        %v\n ExportEncoded: %v", byTD, encoded)
			}
			got := received()
			if len(got) != 2 || !otlptest.Same(got[0], td) || !otlptest.Same(got[1], td) {
				t.Fatalf("want the batch twice, as sent; got %d requests", len(got))
			}
		})
	}
}

// TestVendorClassifyOnBothPaths checks that HTTPOptions.Classify reads the
// answers to both send paths.
func TestVendorClassifyOnBothPaths(t *testing.T) {
	srv := otlptest.NewHTTP(t)
	srv.SetResponder(func(otlptest.Request) otlptest.Reply {
		return otlptest.Reply{Status: 422, Body: []byte(`{"detail":"store busy"}`)}
	})
	classify := func(a Answer) error {
		if a.Status == 422 && strings.Contains(a.Excerpt, "store busy") {
			return plugins.Retryable(errors.New(a.Detail), 0)
		}
		return nil
	}
	a := configured(t, httpAdapter(HTTPOptions{Classify: classify}, nil), srv.URL)
	td := fixture.Many(2)
	for path, err := range map[string]error{
		"Export": a.Export(context.Background(), td), "ExportEncoded": a.ExportEncoded(context.Background(), encodeBatch(t, td)),
	} {
		if classOf(err) != isRetryable || !strings.Contains(err.Error(), "store busy") {
			t.Errorf("%s: %v, want the vendor's retryable reading", path, err)
		}
	}
	if n := len(srv.Requests()); n != 2 {
		t.Fatalf("%d requests, want 2", n)
	}
}

func TestExportEncodedSplits(t *testing.T) {
	// limit lets two of fixture.Many's spans through in one request, not
	// three (see TestSendSplittingByMaxBytes).
	limit := len(encodeBatch(t, fixture.Many(2))) + 10
	tooLargeOver2 := func(r otlptest.Request) otlptest.Reply {
		if r.Traces.SpanCount() > 2 {
			return otlptest.Reply{Status: 413, Body: []byte("payload too large")}
		}
		return otlptest.OK()
	}
	for _, tt := range []struct {
		name     string
		maxBytes int
		respond  func(otlptest.Request) otlptest.Reply
		spans    int
		requests []int // spans per request, in order
		wantErr  class
	}{
		// The whole batch is tried once; then the halves, each halved again
		// while refused.
		{name: "413 halves the batch", respond: tooLargeOver2, spans: 7, requests: []int{7, 3, 1, 2, 4, 2, 2}},
		{name: "413 for one span is permanent", respond: func(otlptest.Request) otlptest.Reply { return otlptest.Reply{Status: 413} },
			spans: 3, requests: []int{3, 1}, wantErr: isPermanent},
		{name: "over MaxRequestBytes is split before sending", maxBytes: limit, spans: 8, requests: []int{2, 2, 2, 2}},
		{name: "under MaxRequestBytes goes whole", maxBytes: limit, spans: 2, requests: []int{2}},
		{name: "one span over MaxRequestBytes is permanent, unsent", maxBytes: 10, spans: 1, wantErr: isPermanent},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := otlptest.NewHTTP(t)
			if tt.respond != nil {
				srv.SetResponder(tt.respond)
			}
			a := configured(t, httpAdapter(HTTPOptions{MaxRequestBytes: tt.maxBytes}, nil), srv.URL)
			err := a.ExportEncoded(context.Background(), encodeBatch(t, fixture.Many(tt.spans)))
			if c := classOf(err); c != tt.wantErr {
				t.Fatalf("class %d, want %d (%v)", c, tt.wantErr, err)
			}
			reqs := srv.Requests()
			var counts []int
			for _, r := range reqs {
				counts = append(counts, r.Traces.SpanCount())
				if size := len(encodeBatch(t, r.Traces)); tt.maxBytes > 0 && size > tt.maxBytes {
					t.Errorf("a request of %d bytes went over the %d limit", size, tt.maxBytes)
				}
			}
			if fmt.Sprint(counts) != fmt.Sprint(tt.requests) {
				t.Fatalf("spans per request %v, want %v", counts, tt.requests)
			}
			if tt.wantErr == isNil {
				otlptest.ExpectAcceptedOnce(t, reqs, tt.spans, func(r otlptest.Request) bool { return r.Traces.SpanCount() <= 2 })
			}
		})
	}
}

func TestExportEncodedGarbageIsPermanent(t *testing.T) {
	for _, tt := range []struct {
		name     string
		maxBytes int
		mapper   Mapper
	}{
		{name: "sent as is"},
		{name: "over MaxRequestBytes", maxBytes: 1},
		{name: "for a mapper", mapper: mapTag},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := otlptest.NewHTTP(t)
			a := configured(t, httpAdapter(HTTPOptions{MaxRequestBytes: tt.maxBytes}, tt.mapper), srv.URL)
			err := a.ExportEncoded(context.Background(), garbage)
			otlptest.ExpectPermanent(t, err)
			otlptest.ExpectMessage(t, err, "decoding batch")
			if n := len(srv.Requests()); n != 0 {
				t.Fatalf("%d requests sent for bytes that do not decode", n)
			}
		})
	}
}

// fakeEncodedSender is a fakeSender that also takes encoded batches.
type fakeEncodedSender struct {
	fakeSender
	encoded [][]byte
}

func (f *fakeEncodedSender) SendEncoded(_ context.Context, request []byte) error {
	f.encoded = append(f.encoded, request)
	return nil
}

func TestAdapterExportEncodedChoosesThePath(t *testing.T) {
	request := encodeBatch(t, fixture.Many(3))
	for _, tt := range []struct {
		name        string
		encodedSend bool // the sender is an EncodedSender
		mapper      Mapper
		wantEncoded bool // the bytes went to SendEncoded, else decoded to Send
	}{
		{name: "no mapper, encoded sender: bytes as sent", encodedSend: true, wantEncoded: true},
		{name: "mapper, encoded sender: decoded and mapped", encodedSend: true, mapper: mapTag},
		{name: "no mapper, plain sender: decoded", encodedSend: false},
		{name: "mapper, plain sender: decoded and mapped", mapper: mapTag},
	} {
		t.Run(tt.name, func(t *testing.T) {
			plain := &fakeEncodedSender{}
			var sender Sender = &plain.fakeSender
			if tt.encodedSend {
				sender = plain
			}
			a := NewAdapter(func(map[string]any) (Sender, Mapper, error) { return sender, tt.mapper, nil })
			ctx := context.Background()
			var r *plugins.RetryableError
			if err := a.ExportEncoded(ctx, request); !errors.As(err, &r) {
				t.Fatalf("before Configure: %v, want retryable", err)
			}
			if err := a.Configure(ctx, nil); err != nil {
				t.Fatal(err)
			}
			if err := a.ExportEncoded(ctx, request); err != nil {
				t.Fatal(err)
			}
			if tt.wantEncoded {
				if len(plain.encoded) != 1 || !bytes.Equal(plain.encoded[0], request) || len(plain.sent) != 0 {
					t.Fatalf("SendEncoded got %d requests (as sent: %v), Send %d batches; want the bytes once to SendEncoded",
						len(plain.encoded), len(plain.encoded) == 1 && bytes.Equal(plain.encoded[0], request), len(plain.sent))
				}
				return
			}
			if len(plain.sent) != 1 || len(plain.encoded) != 0 {
				t.Fatalf("Send got %d batches, SendEncoded %d; want one decoded batch to Send", len(plain.sent), len(plain.encoded))
			}
			want := fixture.Many(3)
			if tt.mapper != nil {
				want = tt.mapper(want)
			}
			if !otlptest.Same(plain.sent[0], want) {
				t.Fatal("Send got a batch other than the request, mapped as configured")
			}
		})
	}
}

// TestPostedRequestMatchesClient: an encoded batch posted as it is reaches
// the vendor exactly as the otlptrace client would send it: same method,
// path, content type and encoding, user agent, vendor headers and spans.
func TestPostedRequestMatchesClient(t *testing.T) {
	for _, compression := range []string{"none", "gzip"} {
		t.Run(compression, func(t *testing.T) {
			srv := otlptest.NewHTTP(t)
			a := configured(t, httpAdapter(HTTPOptions{Compression: compression, Headers: map[string]string{"X-Api-Key": "k"}}, nil), srv.URL)
			td := fixture.AgentRun()
			if err := a.Export(context.Background(), td); err != nil {
				t.Fatalf("Export: %v", err)
			}
			if err := a.ExportEncoded(context.Background(), encodeBatch(t, td)); err != nil {
				t.Fatalf("ExportEncoded: %v", err)
			}
			reqs := srv.Requests()
			if len(reqs) != 2 {
				t.Fatalf("%d requests, want 2", len(reqs))
			}
			client, posted := reqs[0], reqs[1]
			for _, h := range []string{"Content-Type", "Content-Encoding", "User-Agent", "X-Api-Key"} {
				if got, want := posted.Header.Get(h), client.Header.Get(h); got != want {
					t.Errorf("%s: posted %q, client sent %q", h, got, want)
				}
			}
			if posted.Method != client.Method || posted.Path != client.Path {
				t.Errorf("posted %s %s, client sent %s %s", posted.Method, posted.Path, client.Method, client.Path)
			}
			if posted.DecodeErr != nil || !otlptest.Same(posted.Traces, td) {
				t.Errorf("posted spans differ from the batch (%v)", posted.DecodeErr)
			}
		})
	}
}

// TestPostedBodyIsDoneWith: ExportEncoded returns only once the transport
// closed the body it read the request from, even when the vendor answered
// before reading it, so the plugin may receive the next batch into the same
// memory (plugins.BorrowingExporter). Run with -race: a transport still
// sending the request while it is overwritten is a data race.
func TestPostedBodyIsDoneWith(t *testing.T) {
	for _, tc := range []struct {
		name      string
		status    int
		readFirst bool
	}{
		{"accepted", http.StatusOK, true},
		{"refused unread", http.StatusServiceUnavailable, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var lengths []int64
			var mu sync.Mutex
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				lengths = append(lengths, r.ContentLength)
				mu.Unlock()
				if tc.readFirst {
					_, _ = io.Copy(io.Discard, r.Body)
				}
				// An answer with a body is handed to the client at once,
				// while it may still be sending the request.
				w.WriteHeader(tc.status)
				_, _ = w.Write([]byte("busy"))
				w.(http.Flusher).Flush()
			}))
			defer srv.Close()
			a := configured(t, httpAdapter(HTTPOptions{Compression: "none"}, nil), srv.URL)
			td := ptrace.NewTraces()
			td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty().Spans().AppendEmpty().
				Attributes().PutStr("big", strings.Repeat("x", 8<<20))
			request := encodeBatch(t, td)
			err := a.ExportEncoded(context.Background(), request)
			if (err == nil) != (tc.status == http.StatusOK) {
				t.Fatalf("ExportEncoded = %v for HTTP %d", err, tc.status)
			}
			for i := range request {
				request[i] = 0 // the next batch arriving
			}
			mu.Lock()
			defer mu.Unlock()
			if len(lengths) != 1 || lengths[0] != int64(len(request)) {
				t.Fatalf("Content-Length %v, want one request of %d", lengths, len(request))
			}
		})
	}
}
