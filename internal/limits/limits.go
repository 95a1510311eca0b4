// Package limits holds the ingest bounds that are not the receivers' own:
// spans per request, gRPC connection and stream limits, and a cap on open
// connections per listener. Body size, attribute sizes and the write queue
// are bounded elsewhere (receiver.Options.MaxBodyBytes, convert.Limits,
// batcher.Options.MaxQueueSpans).
package limits

import (
	"fmt"
	"net"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"
	"golang.org/x/net/netutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"
)

// TooManySpansError reports a request over the spans-per-request limit.
// Receivers answer it with 413 / RESOURCE_EXHAUSTED without retry
// information: the same request will never pass, the sender must split it.
type TooManySpansError struct {
	Count, Max int
}

func (e *TooManySpansError) Error() string {
	return fmt.Sprintf("request holds %d spans, more than the %d allowed per request; export smaller batches", e.Count, e.Max)
}

// CheckSpans returns a *TooManySpansError when td holds more than max spans;
// max <= 0 disables the check.
func CheckSpans(td ptrace.Traces, max int) error {
	if max <= 0 {
		return nil
	}
	if n := td.SpanCount(); n > max {
		return &TooManySpansError{Count: n, Max: max}
	}
	return nil
}

// GRPC bounds the OTLP/gRPC server's connections. A zero field keeps
// grpc-go's own default (shown in parentheses).
type GRPC struct {
	// MaxConcurrentStreams per connection (unlimited).
	MaxConcurrentStreams uint32
	// ConnectionTimeout bounds the TLS/HTTP2 handshake of a new connection (120s).
	ConnectionTimeout time.Duration
	// MaxHeaderListSize bounds a request's metadata, in bytes (16 MiB).
	MaxHeaderListSize uint32
	// MaxConnectionIdle closes connections without calls for this long (never).
	MaxConnectionIdle time.Duration
	// MaxConnectionAge closes connections after this long, so that clients
	// reconnect and spread over replicas behind a load balancer (never).
	MaxConnectionAge time.Duration
	// MaxConnectionAgeGrace lets calls in flight finish after MaxConnectionAge (never).
	MaxConnectionAgeGrace time.Duration
	// KeepaliveTime: ping a silent client after this long (2h) ...
	KeepaliveTime time.Duration
	// KeepaliveTimeout: ... and close the connection if it does not answer (20s).
	KeepaliveTimeout time.Duration
	// MinPingInterval: clients pinging more often are disconnected (5m).
	MinPingInterval time.Duration
	// PermitPingWithoutStream allows client pings on idle connections (false).
	PermitPingWithoutStream bool
}

// DefaultGRPC returns the bounds the gateway uses unless configured.
func DefaultGRPC() GRPC {
	return GRPC{
		MaxConcurrentStreams:  100,
		ConnectionTimeout:     10 * time.Second,
		MaxHeaderListSize:     64 << 10,
		MaxConnectionIdle:     5 * time.Minute,
		MaxConnectionAge:      10 * time.Minute,
		MaxConnectionAgeGrace: 30 * time.Second,
		KeepaliveTime:         time.Minute,
		KeepaliveTimeout:      20 * time.Second,
		// grpc-go clients cannot ping more often than every 10s; allowing
		// that (and on idle connections) avoids GOAWAY churn with senders
		// that enable keepalive.
		MinPingInterval:         10 * time.Second,
		PermitPingWithoutStream: true,
	}
}

// GRPCServerOptions turns l into options for receiver.NewGRPCServer's extra
// arguments.
func GRPCServerOptions(l GRPC) []grpc.ServerOption {
	var opts []grpc.ServerOption
	if l.MaxConcurrentStreams > 0 {
		opts = append(opts, grpc.MaxConcurrentStreams(l.MaxConcurrentStreams))
	}
	if l.ConnectionTimeout > 0 {
		opts = append(opts, grpc.ConnectionTimeout(l.ConnectionTimeout))
	}
	if l.MaxHeaderListSize > 0 {
		opts = append(opts, grpc.MaxHeaderListSize(l.MaxHeaderListSize))
	}
	kp := keepalive.ServerParameters{
		MaxConnectionIdle:     l.MaxConnectionIdle,
		MaxConnectionAge:      l.MaxConnectionAge,
		MaxConnectionAgeGrace: l.MaxConnectionAgeGrace,
		Time:                  l.KeepaliveTime,
		Timeout:               l.KeepaliveTimeout,
	}
	if kp != (keepalive.ServerParameters{}) {
		// grpc-go treats zero fields here as its defaults.
		opts = append(opts, grpc.KeepaliveParams(kp))
	}
	if l.MinPingInterval > 0 || l.PermitPingWithoutStream {
		// A zero MinTime is grpc-go's default (5m) here too.
		opts = append(opts, grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{
			MinTime: l.MinPingInterval, PermitWithoutStream: l.PermitPingWithoutStream,
		}))
	}
	return opts
}

// Listener caps the connections ln has open at once at max (max <= 0: no
// cap). Beyond it new connections wait in the kernel's accept queue instead
// of costing the process memory and file descriptors.
func Listener(ln net.Listener, max int) net.Listener {
	if max <= 0 {
		return ln
	}
	return netutil.LimitListener(ln, max)
}
