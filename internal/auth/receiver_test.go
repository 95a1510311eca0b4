package auth_test

// This test lives outside package auth because the receiver imports auth.

import (
	"context"
	"sync"
	"testing"

	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/kern-agents/trace-gateway/internal/auth"
	"github.com/kern-agents/trace-gateway/internal/model"
	"github.com/kern-agents/trace-gateway/internal/receiver"
)

const tokA = "token-a-0123456789abcdef"

// captureSink records what the receiver stores.
type captureSink struct {
	mu    sync.Mutex
	spans []model.Span
}

func (s *captureSink) Submit(_ context.Context, spans []model.Span) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.spans = append(s.spans, spans...)
	return nil
}

// TestOTLPReceiver runs the interceptors in front of the real OTLP/gRPC
// receiver (receiver.NewGRPCServer's extra options).
func TestOTLPReceiver(t *testing.T) {
	sink := &captureSink{}
	a := auth.New([]auth.Token{{Token: tokA, Tenant: "team-a"}})
	conn := auth.ServeGRPC(t, receiver.NewGRPCServer(receiver.Options{}, sink, a.ServerOptions()...))
	client := ptraceotlp.NewGRPCClient(conn)
	req := ptraceotlp.NewExportRequestFromTraces(auth.OneSpan())

	if _, err := client.Export(context.Background(), req); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("export without token: %v, want Unauthenticated", err)
	}
	if len(sink.spans) != 0 {
		t.Fatal("unauthenticated export reached the sink")
	}
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+tokA)
	if _, err := client.Export(ctx, req); err != nil {
		t.Fatalf("export with token: %v", err)
	}
	if len(sink.spans) != 1 {
		t.Fatalf("sink got %d spans, want 1", len(sink.spans))
	}
}
