package receiver

import (
	"context"
	"errors"
	"runtime/debug"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	_ "google.golang.org/grpc/encoding/gzip" // registers the gzip decompressor
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

// The OTLP trace service, as in
// opentelemetry/proto/collector/trace/v1/trace_service.proto.
const (
	traceServiceName = "opentelemetry.proto.collector.trace.v1.TraceService"
	exportMethod     = "/" + traceServiceName + "/Export"
)

// rawMessage carries an undecoded request or an encoded response through
// gRPC, so that Export can use the same lenient decoder as OTLP/HTTP:
// pdata's own gRPC service would fail a whole request on one malformed id.
type rawMessage []byte

// rawCodec passes rawMessage through untouched and hands every other type
// (health checks, reflection, ...) to the regular proto codec.
type rawCodec struct{ fallback encoding.CodecV2 }

func (c rawCodec) Name() string { return "proto" }

func (c rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	if m, ok := v.(*rawMessage); ok {
		return mem.BufferSlice{mem.SliceBuffer(*m)}, nil
	}
	return c.fallback.Marshal(v)
}

func (c rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	if m, ok := v.(*rawMessage); ok {
		*m = data.Materialize()
		return nil
	}
	return c.fallback.Unmarshal(data, v)
}

type grpcReceiver struct {
	opts Options
	sink Sink
}

var traceServiceDesc = grpc.ServiceDesc{
	ServiceName: traceServiceName,
	HandlerType: (*any)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "Export",
		Handler: func(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
			in := new(rawMessage)
			if err := dec(in); err != nil {
				return nil, err
			}
			g := srv.(*grpcReceiver)
			if interceptor == nil {
				return g.export(ctx, in)
			}
			info := &grpc.UnaryServerInfo{Server: srv, FullMethod: exportMethod}
			return interceptor(ctx, in, info, func(ctx context.Context, req any) (any, error) {
				return g.export(ctx, req.(*rawMessage))
			})
		},
	}},
	Metadata: "opentelemetry/proto/collector/trace/v1/trace_service.proto",
}

// NewGRPCServer returns a gRPC server with the OTLP TraceService
// registered: gzip accepted, messages capped at opts.MaxBodyBytes (after
// decompression). extra options (TLS, interceptors, keepalive) are applied
// after these; other services may be registered on the result.
func NewGRPCServer(opts Options, sink Sink, extra ...grpc.ServerOption) *grpc.Server {
	opts = opts.withDefaults()
	base := []grpc.ServerOption{
		grpc.ForceServerCodecV2(rawCodec{fallback: encoding.GetCodecV2("proto")}),
		grpc.MaxRecvMsgSize(int(opts.MaxBodyBytes)),
	}
	s := grpc.NewServer(append(base, extra...)...)
	s.RegisterService(&traceServiceDesc, &grpcReceiver{opts: opts, sink: sink})
	return s
}

// status is f as a gRPC status, with RetryInfo when f suggests a retry.
func (g *grpcReceiver) status(f failure) *status.Status {
	st := status.New(f.code, f.message)
	if f.retry {
		if withInfo, err := st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(g.opts.retryAfter(f))}); err == nil {
			st = withInfo
		}
	}
	return st
}

func (g *grpcReceiver) export(ctx context.Context, in *rawMessage) (_ any, err error) {
	defer func() {
		// Last line of defence: a bug must cost one request, not the process.
		if p := recover(); p != nil {
			g.opts.Logger.Error("panic while handling OTLP/gRPC export", "panic", p, "stack", string(debug.Stack()))
			err = status.Error(codes.Internal, "internal error")
		}
	}()
	spans, rejected, err := g.opts.decode(ctx, encProto, *in)
	var ref *refusal
	if errors.As(err, &ref) {
		g.opts.Observer.SpansRejected(ref.f.reason, ref.spans)
		return nil, g.status(ref.f).Err()
	}
	if err != nil {
		g.opts.Logger.Debug("malformed OTLP/gRPC export", "err", err)
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	if len(spans) > 0 {
		if err := g.sink.Submit(ctx, spans); err != nil {
			f := classify(err)
			g.opts.observe("grpc", len(spans), len(rejected), &f)
			logFailure(ctx, g.opts.Logger, "OTLP/gRPC", len(spans), f, err)
			return nil, g.status(f).Err()
		}
	}
	g.opts.observe("grpc", len(spans), len(rejected), nil)
	body, err := partialSuccess(rejected).MarshalProto()
	if err != nil {
		return nil, status.Error(codes.Internal, "encode response")
	}
	out := rawMessage(body)
	return &out, nil
}
