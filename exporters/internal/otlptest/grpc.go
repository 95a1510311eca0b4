package otlptest

import (
	"context"
	"net"
	"sync/atomic"
	"testing"

	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/stats"
	"google.golang.org/protobuf/proto"
)

// GRPCRequest is one Export call the fake received.
type GRPCRequest struct {
	Metadata    metadata.MD
	Compression string // the grpc-encoding the client used ("" for none)
	Traces      ptrace.Traces
}

// GRPCServer is a fake OTLP/gRPC endpoint on 127.0.0.1. SetResponder
// sets how it answers (nil error: OK); Requests returns the calls received.
type GRPCServer struct {
	coltracepb.UnimplementedTraceServiceServer
	recorder[GRPCRequest, error]
	Addr string

	rejected atomic.Int64
}

// SetPartialSuccess makes successful calls report n rejected spans.
func (s *GRPCServer) SetPartialSuccess(n int64) { s.rejected.Store(n) }

// NewGRPC starts a fake that accepts everything until SetResponder says
// otherwise. opts are passed to grpc.NewServer (e.g. grpc.MaxRecvMsgSize).
func NewGRPC(t testing.TB, opts ...grpc.ServerOption) *GRPCServer {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	s := &GRPCServer{Addr: lis.Addr().String()}
	s.respond = func(GRPCRequest) error { return nil }
	srv := grpc.NewServer(append(opts, grpc.StatsHandler(compressionRecorder{}))...)
	coltracepb.RegisterTraceServiceServer(srv, s)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return s
}

// Export implements the OTLP trace service.
func (s *GRPCServer) Export(ctx context.Context, in *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	req := GRPCRequest{Metadata: md}
	if c, ok := ctx.Value(compressionKey{}).(*string); ok {
		req.Compression = *c
	}
	raw, err := proto.Marshal(in)
	if err != nil {
		return nil, err
	}
	pr := ptraceotlp.NewExportRequest()
	if err := pr.UnmarshalProto(raw); err != nil {
		return nil, err
	}
	req.Traces = pr.Traces()
	if err := s.record(req)(req); err != nil {
		return nil, err
	}
	resp := &coltracepb.ExportTraceServiceResponse{}
	if rejected := s.rejected.Load(); rejected > 0 {
		resp.PartialSuccess = &coltracepb.ExportTracePartialSuccess{RejectedSpans: rejected, ErrorMessage: "some spans rejected"}
	}
	return resp, nil
}

type compressionKey struct{}

// compressionRecorder notes each call's grpc-encoding where the handler can
// read it.
type compressionRecorder struct{}

func (compressionRecorder) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context {
	return context.WithValue(ctx, compressionKey{}, new(string))
}

func (compressionRecorder) HandleRPC(ctx context.Context, s stats.RPCStats) {
	if h, ok := s.(*stats.InHeader); ok {
		if c, ok := ctx.Value(compressionKey{}).(*string); ok {
			*c = h.Compression
		}
	}
}

func (compressionRecorder) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context {
	return ctx
}

func (compressionRecorder) HandleConn(context.Context, stats.ConnStats) {}

// protoSize is the encoded size of an Export request carrying td.
func protoSize(td ptrace.Traces) (int, error) {
	b, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
	return len(b), err
}
