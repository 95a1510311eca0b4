package auth

import (
	"context"
	"net"
	"sync"
	"testing"

	"go.opentelemetry.io/collector/pdata/ptrace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// tenantRecorder is an interceptor placed after auth that records the
// tenant each handler sees.
type tenantRecorder struct {
	mu   sync.Mutex
	seen []string
}

func (r *tenantRecorder) record(ctx context.Context) {
	tenant, ok := TenantFrom(ctx)
	if !ok {
		tenant = "<none>"
	}
	r.mu.Lock()
	r.seen = append(r.seen, tenant)
	r.mu.Unlock()
}

func (r *tenantRecorder) last() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.seen) == 0 {
		return ""
	}
	return r.seen[len(r.seen)-1]
}

// startHealth serves the gRPC health service (one unary and one streaming
// method) behind the authenticator.
func startHealth(t *testing.T, a *Authenticator) (*grpc.ClientConn, *tenantRecorder) {
	t.Helper()
	rec := &tenantRecorder{}
	opts := append(a.ServerOptions(),
		grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			rec.record(ctx)
			return h(ctx, req)
		}),
		grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			rec.record(ss.Context())
			return h(srv, ss)
		}),
	)
	srv := grpc.NewServer(opts...)
	healthpb.RegisterHealthServer(srv, health.NewServer())
	return ServeGRPC(t, srv), rec
}

// ServeGRPC is shared with the external receiver test.
func ServeGRPC(t *testing.T, srv *grpc.Server) *grpc.ClientConn {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

func TestGRPC(t *testing.T) {
	tests := []struct {
		name   string
		tokens []Token
		md     []string // key, value pairs
		tenant string   // "" means Unauthenticated expected
	}{
		{"disabled", nil, nil, "<none>"},
		{"missing metadata", testTokens, nil, ""},
		{"wrong scheme", testTokens, []string{"authorization", "Basic " + tokA}, ""},
		{"wrong token", testTokens, []string{"authorization", "Bearer nope"}, ""},
		{"prefix of a token", testTokens, []string{"authorization", "Bearer " + tokA[:8]}, ""},
		{"right token", testTokens, []string{"authorization", "Bearer " + tokA}, "team-a"},
		{"longer token", testTokens, []string{"authorization", "Bearer " + tokB}, "team-b"},
		{"x-api-key", testTokens, []string{"x-api-key", tokA2}, "team-a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn, rec := startHealth(t, New(tt.tokens))
			ctx := context.Background()
			if tt.md != nil {
				ctx = metadata.AppendToOutgoingContext(ctx, tt.md...)
			}
			client := healthpb.NewHealthClient(conn)

			_, err := client.Check(ctx, &healthpb.HealthCheckRequest{})
			checkGRPC(t, "unary", err, tt.tenant, rec)

			stream, err := client.Watch(ctx, &healthpb.HealthCheckRequest{})
			if err == nil {
				_, err = stream.Recv()
			}
			checkGRPC(t, "stream", err, tt.tenant, rec)
		})
	}
}

func checkGRPC(t *testing.T, kind string, err error, wantTenant string, rec *tenantRecorder) {
	t.Helper()
	if wantTenant == "" {
		if status.Code(err) != codes.Unauthenticated {
			t.Fatalf("%s: err = %v, want Unauthenticated", kind, err)
		}
		if msg := status.Convert(err).Message(); msg != status.Convert(errUnauthenticated).Message() {
			t.Errorf("%s: message %q differs from the one failure answer", kind, msg)
		}
		return
	}
	if err != nil {
		t.Fatalf("%s: %v", kind, err)
	}
	if got := rec.last(); got != wantTenant {
		t.Errorf("%s: handler saw tenant %q, want %q", kind, got, wantTenant)
	}
}

// OneSpan is shared with the external receiver test.
func OneSpan() ptrace.Traces {
	td := ptrace.NewTraces()
	sp := td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty().Spans().AppendEmpty()
	sp.SetName("s")
	sp.SetTraceID([16]byte{1})
	sp.SetSpanID([8]byte{1})
	return td
}
