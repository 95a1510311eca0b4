package limits

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

func traces(perResource ...int) ptrace.Traces {
	td := ptrace.NewTraces()
	for _, n := range perResource {
		spans := td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty().Spans()
		for range n {
			spans.AppendEmpty()
		}
	}
	return td
}

func TestCheckSpans(t *testing.T) {
	tests := []struct {
		name string
		td   ptrace.Traces
		max  int
		want string // "" means allowed
	}{
		{"disabled", traces(5000), 0, ""},
		{"negative disables", traces(5000), -1, ""},
		{"under", traces(3, 4), 10, ""},
		{"exactly", traces(3, 7), 10, ""},
		{"over, across resources", traces(6, 5), 10, "request holds 11 spans, more than the 10 allowed"},
		{"empty", traces(), 1, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckSpans(tt.td, tt.max)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("CheckSpans = %v, want nil", err)
				}
				return
			}
			var tm *TooManySpansError
			if !errors.As(err, &tm) || tm.Max != tt.max || tm.Count != tt.td.SpanCount() {
				t.Fatalf("CheckSpans = %#v, want a TooManySpansError", err)
			}
			if !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("message %q, want prefix %q", err, tt.want)
			}
		})
	}
}

func TestGRPCServerOptionsZero(t *testing.T) {
	if n := len(GRPCServerOptions(GRPC{})); n != 0 {
		t.Fatalf("zero GRPC gave %d options, want none (grpc-go defaults)", n)
	}
	if n := len(GRPCServerOptions(DefaultGRPC())); n != 5 {
		t.Fatalf("DefaultGRPC gave %d options, want 5", n)
	}
}

// startHealth serves the gRPC health service with opts on loopback.
func startHealth(t *testing.T, opts []grpc.ServerOption) (addr string, hs *health.Server) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(opts...)
	hs = health.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	return ln.Addr().String(), hs
}

func dial(t *testing.T, addr string) healthpb.HealthClient {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return healthpb.NewHealthClient(conn)
}

// TestMaxConcurrentStreams: with one stream open on a connection limited to
// one, a second call on that connection waits.
func TestMaxConcurrentStreams(t *testing.T) {
	addr, _ := startHealth(t, GRPCServerOptions(GRPC{MaxConcurrentStreams: 1}))
	client := dial(t, addr)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	watch, err := client.Watch(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := watch.Recv(); err != nil {
		t.Fatal(err)
	}
	short, cancelShort := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancelShort()
	if _, err := client.Check(short, &healthpb.HealthCheckRequest{}); status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("second call with the stream limit reached: %v, want DeadlineExceeded", err)
	}
	cancel() // close the stream: the next call gets through
	ok, cancelOK := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancelOK()
	if _, err := client.Check(ok, &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatalf("call after the stream closed: %v", err)
	}
}

// TestMaxConnectionAge: a long stream is ended by the server once the
// connection is older than age + grace.
func TestMaxConnectionAge(t *testing.T) {
	addr, _ := startHealth(t, GRPCServerOptions(GRPC{
		MaxConnectionAge: 200 * time.Millisecond, MaxConnectionAgeGrace: 200 * time.Millisecond,
	}))
	client := dial(t, addr)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	watch, err := client.Watch(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for {
		if _, err = watch.Recv(); err != nil {
			break
		}
	}
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("stream ended with %v, want Unavailable from the closed connection", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("stream lasted %v", d)
	}
}

// TestConnectionTimeout: a client that opens TCP and says nothing is
// disconnected after the handshake timeout.
func TestConnectionTimeout(t *testing.T) {
	addr, _ := startHealth(t, GRPCServerOptions(GRPC{ConnectionTimeout: 200 * time.Millisecond}))
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	_, err = io.ReadAll(conn) // the server's preface, then EOF when it gives up
	if err != nil {
		t.Fatalf("read: %v, want the server to close the connection", err)
	}
	if d := time.Since(start); d > 4*time.Second {
		t.Fatalf("silent connection kept for %v", d)
	}
}

func TestMaxHeaderListSize(t *testing.T) {
	addr, _ := startHealth(t, GRPCServerOptions(GRPC{MaxHeaderListSize: 4 << 10}))
	client := dial(t, addr)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := client.Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatalf("small metadata: %v", err)
	}
	big := metadata.AppendToOutgoingContext(ctx, "x-big", strings.Repeat("a", 8<<10))
	if _, err := client.Check(big, &healthpb.HealthCheckRequest{}); err == nil {
		t.Fatal("8 KiB of metadata accepted with a 4 KiB limit")
	}
}

func TestListener(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if Listener(raw, 0) != raw {
		t.Fatal("max 0 must return the listener unchanged")
	}
	ln := Listener(raw, 1)
	defer ln.Close()
	var accepted atomic.Int32
	conns := make(chan net.Conn, 2)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			conns <- c
		}
	}()
	for range 2 {
		c, err := net.Dial("tcp", raw.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	first := <-conns
	time.Sleep(100 * time.Millisecond)
	if n := accepted.Load(); n != 1 {
		t.Fatalf("%d connections accepted with a cap of 1", n)
	}
	_ = first.Close()
	select {
	case c := <-conns:
		_ = c.Close()
	case <-time.After(5 * time.Second):
		t.Fatal("second connection not accepted after the first closed")
	}
}
