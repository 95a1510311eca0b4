package auth

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// errUnauthenticated is the one answer to every failed gRPC call.
var errUnauthenticated = status.Error(codes.Unauthenticated,
	"unauthenticated: send a valid token as metadata 'authorization: Bearer <token>'")

// grpcAuth authenticates the metadata of an incoming call.
func (a *Authenticator) grpcAuth(ctx context.Context) (context.Context, error) {
	if !a.Enabled() {
		return ctx, nil
	}
	md, _ := metadata.FromIncomingContext(ctx)
	cred := Credential(first(md, "authorization"), first(md, "x-api-key"))
	tenant, ok := a.Authenticate(cred)
	if !ok {
		a.reject("grpc", cred)
		return nil, errUnauthenticated
	}
	return WithTenant(ctx, tenant), nil
}

func first(md metadata.MD, key string) string {
	if v := md.Get(key); len(v) > 0 {
		return v[0]
	}
	return ""
}

// UnaryInterceptor rejects unauthenticated unary calls with
// codes.Unauthenticated and puts the tenant into the handler's context.
func (a *Authenticator) UnaryInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		ctx, err := a.grpcAuth(ctx)
		if err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
}

// StreamInterceptor is UnaryInterceptor for streaming calls.
func (a *Authenticator) StreamInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		ctx, err := a.grpcAuth(ss.Context())
		if err != nil {
			return err
		}
		return handler(srv, &tenantStream{ServerStream: ss, ctx: ctx})
	}
}

// ServerOptions returns both interceptors as options for grpc.NewServer
// (chained, so other interceptors may be added too).
func (a *Authenticator) ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(a.UnaryInterceptor()),
		grpc.ChainStreamInterceptor(a.StreamInterceptor()),
	}
}

// tenantStream overrides the stream's context with the authenticated one.
type tenantStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *tenantStream) Context() context.Context { return s.ctx }
