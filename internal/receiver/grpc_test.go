package receiver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/encoding/gzip"
	"google.golang.org/grpc/status"

	"github.com/kern-agents/trace-gateway/internal/batcher"
	"github.com/kern-agents/trace-gateway/internal/store"
)

// startGRPC serves NewGRPCServer on a loopback port and returns a client
// connection to it.
func startGRPC(t *testing.T, opts Options, sink Sink, extra ...grpc.ServerOption) *grpc.ClientConn {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := NewGRPCServer(opts, sink, extra...)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// exportRaw sends body as an Export request without client-side encoding,
// so that malformed payloads reach the server.
func exportRaw(ctx context.Context, conn *grpc.ClientConn, body []byte, opts ...grpc.CallOption) (ptraceotlp.ExportResponse, error) {
	in, out := rawMessage(body), rawMessage(nil)
	opts = append(opts, grpc.ForceCodecV2(rawCodec{fallback: encoding.GetCodecV2("proto")}))
	if err := conn.Invoke(ctx, exportMethod, &in, &out, opts...); err != nil {
		return ptraceotlp.ExportResponse{}, err
	}
	resp := ptraceotlp.NewExportResponse()
	return resp, resp.UnmarshalProto(out)
}

func TestGRPC(t *testing.T) {
	good := protoBody(t, testTraces(2))
	tests := []struct {
		name      string
		body      []byte
		call      []grpc.CallOption
		opts      func(*Options)
		sinkErr   error
		sinkPanic string
		wantCode  codes.Code
		wantMsg   string
		wantRetry time.Duration
		wantRej   int64
		wantNames []string
	}{
		{name: "ok", body: good, wantNames: []string{"span0", "span1"}},
		{name: "gzip", body: good, call: []grpc.CallOption{grpc.UseCompressor(gzip.Name)}, wantNames: []string{"span0", "span1"}},
		{name: "empty", body: nil},
		{name: "wrong-length ids", body: badIDsProto(t), wantRej: 2, wantMsg: `trace id has 15 bytes, want 16 (span "short")`,
			wantNames: []string{"ok1", "ok2"}},
		{name: "wrong-length ids gzip", body: badIDsProto(t), call: []grpc.CallOption{grpc.UseCompressor(gzip.Name)},
			wantRej: 2, wantMsg: `span id has 9 bytes, want 8 (span "long")`, wantNames: []string{"ok1", "ok2"}},
		{name: "malformed", body: []byte("\x0a\xff\xff\xff"), wantCode: codes.InvalidArgument, wantMsg: "decode protobuf"},
		{name: "too large", body: good, opts: func(o *Options) { o.MaxBodyBytes = 16 }, wantCode: codes.ResourceExhausted, wantMsg: "larger than max"},
		{name: "too large after gzip", body: make([]byte, 4096), call: []grpc.CallOption{grpc.UseCompressor(gzip.Name)},
			opts: func(o *Options) { o.MaxBodyBytes = 1024 }, wantCode: codes.ResourceExhausted},
		{name: "queue full", body: good, sinkErr: batcher.ErrQueueFull, wantCode: codes.ResourceExhausted, wantMsg: "queue is full",
			wantRetry: time.Second, wantNames: []string{"span0", "span1"}},
		{name: "database down", body: good, sinkErr: fmt.Errorf("x: %w", store.ErrUnavailable), opts: func(o *Options) { o.RetryAfter = 5 * time.Second },
			wantCode: codes.Unavailable, wantMsg: "unavailable", wantRetry: 5 * time.Second, wantNames: []string{"span0", "span1"}},
		{name: "shutting down", body: good, sinkErr: batcher.ErrClosed, wantCode: codes.Unavailable, wantRetry: time.Second,
			wantNames: []string{"span0", "span1"}},
		{name: "write error", body: good, sinkErr: errors.New("password=hunter2"), wantCode: codes.Internal, wantMsg: "storing spans failed",
			wantNames: []string{"span0", "span1"}},
		{name: "panic", body: good, sinkPanic: "boom", wantCode: codes.Internal, wantMsg: "internal error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := testOptions()
			if tt.opts != nil {
				tt.opts(&opts)
			}
			sink := &fakeSink{err: tt.sinkErr, panicMsg: tt.sinkPanic}
			conn := startGRPC(t, opts, sink)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			resp, err := exportRaw(ctx, conn, tt.body, tt.call...)

			st, _ := status.FromError(err)
			if st.Code() != tt.wantCode {
				t.Fatalf("code %v (%v), want %v", st.Code(), err, tt.wantCode)
			}
			msg := st.Message()
			if err == nil {
				msg = resp.PartialSuccess().ErrorMessage()
				if got := resp.PartialSuccess().RejectedSpans(); got != tt.wantRej {
					t.Errorf("rejected_spans %d, want %d", got, tt.wantRej)
				}
			}
			if !strings.Contains(msg, tt.wantMsg) {
				t.Errorf("message %q does not contain %q", msg, tt.wantMsg)
			}
			if strings.Contains(msg, "hunter2") {
				t.Errorf("message leaks the store error: %q", msg)
			}
			var retry time.Duration
			for _, d := range st.Details() {
				if ri, ok := d.(*errdetails.RetryInfo); ok {
					retry = ri.GetRetryDelay().AsDuration()
				}
			}
			if retry != tt.wantRetry {
				t.Errorf("RetryInfo delay %v, want %v", retry, tt.wantRetry)
			}
			if !slices.Equal(sink.names(), tt.wantNames) {
				t.Errorf("sink got %v, want %v", sink.names(), tt.wantNames)
			}
		})
	}
}

// TestGRPCPdataClient checks interoperability with pdata's own client and
// that other services on the server still use the regular codec.
func TestGRPCPdataClient(t *testing.T) {
	sink := &fakeSink{}
	conn := startGRPC(t, testOptions(), sink)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := ptraceotlp.NewGRPCClient(conn).Export(ctx, ptraceotlp.NewExportRequestFromTraces(testTraces(3)))
	if err != nil {
		t.Fatal(err)
	}
	if resp.PartialSuccess().RejectedSpans() != 0 || len(sink.spans()) != 3 {
		t.Errorf("rejected %d, stored %d; want 0, 3", resp.PartialSuccess().RejectedSpans(), len(sink.spans()))
	}
	// An unknown method answers Unimplemented rather than crashing the codec.
	err = conn.Invoke(ctx, "/"+traceServiceName+"/Nope", &errdetails.RetryInfo{}, &errdetails.RetryInfo{})
	if status.Code(err) != codes.Unimplemented {
		t.Errorf("unknown method: %v", err)
	}
}

// TestGRPCInterceptor checks that server interceptors passed by the caller
// run around Export.
func TestGRPCInterceptor(t *testing.T) {
	deny := grpc.UnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		if info.FullMethod != exportMethod {
			t.Errorf("intercepted %s", info.FullMethod)
		}
		return nil, status.Error(codes.Unauthenticated, "no token")
	})
	sink := &fakeSink{}
	conn := startGRPC(t, testOptions(), sink, deny)
	_, err := exportRaw(context.Background(), conn, protoBody(t, testTraces(1)))
	if status.Code(err) != codes.Unauthenticated || sink.calls() != 0 {
		t.Errorf("err %v, sink calls %d; want Unauthenticated and nothing stored", err, sink.calls())
	}
}
