package plugins

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	"github.com/kern-agents/trace-gateway/internal/plugincodec"
	"github.com/kern-agents/trace-gateway/plugins/pluginpb"
)

// The handshake. The host refuses a plugin whose ProtocolVersion differs, and
// Serve refuses to run unless the host set the magic cookie, so running a
// plugin binary by hand prints an explanation instead of hanging.
const (
	ProtocolVersion  = 1
	MagicCookieKey   = "KERN_GATEWAY_PLUGIN"
	MagicCookieValue = "7d1f0c52-exporter-v1"
)

// Environment variables the host sets for the plugin process. Plugin code
// never needs them; Serve reads them.
const (
	// EnvHostPID holds the gateway's process id: Serve exits when its parent
	// is no longer that process, so a killed gateway leaves no plugins behind.
	EnvHostPID = "KERN_GATEWAY_HOST_PID"
	// EnvLogLevel is the lowest level worth sending to the host (debug, info,
	// warn, error).
	EnvLogLevel = "KERN_GATEWAY_PLUGIN_LOG_LEVEL"
)

// Handshake is the go-plugin handshake shared by the gateway and plugins.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  ProtocolVersion,
	MagicCookieKey:   MagicCookieKey,
	MagicCookieValue: MagicCookieValue,
}

// pluginName is the go-plugin name the service is dispensed under.
const pluginName = "exporter"

// maxRecvBytes is the largest request the plugin accepts; the host splits
// batches to stay under it.
const maxRecvBytes = 4 << 20

// windowBytes is the plugin's HTTP/2 flow-control window, stream and
// connection: a whole batch and then some.
const windowBytes = 2 * maxRecvBytes

// readBufferBytes is how much the plugin reads from the host's socket at once.
const readBufferBytes = 256 << 10

// hostWatchInterval is how often a plugin checks that the gateway still runs.
const hostWatchInterval = 500 * time.Millisecond

// Serve runs exp as a gateway plugin. Call it from main; it returns when the
// gateway stops the plugin.
//
// Serve sets slog's default logger (and so the standard log package) to
// forward records to the gateway, which logs them with the destination's
// name. Anything printed to stdout or stderr after Serve starts is forwarded
// too. Do not print to stdout before calling Serve: the first line of stdout
// is the handshake.
//
// Calls into exp are serialised: Export is never called concurrently. When
// exp is also an EncodedExporter, Serve calls ExportEncoded instead of Export;
// when it is a BorrowingExporter, the memory of a request is reused for a
// later one once ExportEncoded returned.
//
// The gateway owns the plugin's lifecycle: while it runs, the plugin ignores
// SIGINT and SIGTERM, which a stop aimed at the whole process group
// (systemd's KillMode=control-group, `timeout`, Ctrl-C in a terminal) also
// sends to plugins; the gateway then drains through them and stops them
// itself. A plugin whose gateway is gone exits.
func Serve(exp Exporter) {
	if os.Getenv(MagicCookieKey) != MagicCookieValue {
		fmt.Fprintf(os.Stderr, "%s is a kern trace gateway exporter plugin: the gateway runs it.\n"+
			"Name it in a destination's `plugin:` setting instead of running it by hand.\n", os.Args[0])
		os.Exit(1)
	}
	// First, so that a stop signal arriving during start-up is ignored too.
	stopSignals := make(chan os.Signal, 1)
	signal.Notify(stopSignals, syscall.SIGINT, syscall.SIGTERM)
	// go-plugin replaces os.Stderr with a pipe once the handshake is done;
	// structured logs go to the real stderr, which the host parses.
	stderr := os.Stderr
	level := parseLevel(os.Getenv(EnvLogLevel))
	slog.SetDefault(slog.New(newLogHandler(stderr, level)))

	srv := newServer(exp)
	host := hostPID()
	var hostGone sync.Once
	orphaned := func() {
		hostGone.Do(func() {
			slog.Warn("gateway process is gone; plugin exiting")
			srv.shutdownWithin(3 * time.Second)
			os.Exit(1)
		})
	}
	go watchHost(host, hostWatchInterval, orphaned)
	go leaveStopToHost(stopSignals, host, orphaned)

	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: Handshake,
		VersionedPlugins: map[int]plugin.PluginSet{
			ProtocolVersion: {pluginName: &grpcPlugin{srv: srv}},
		},
		GRPCServer: func(opts []grpc.ServerOption) *grpc.Server {
			return grpc.NewServer(append(opts, grpc.MaxRecvMsgSize(maxRecvBytes), grpc.ForceServerCodecV2(plugincodec.Codec{Reuse: srv.reuse}),
				// The host sends one batch of up to maxRecvBytes at a time over a
				// local socket: a window that holds it whole spares the flow-control
				// round trips, and a larger read buffer most of the read calls.
				grpc.InitialWindowSize(windowBytes), grpc.InitialConnWindowSize(windowBytes),
				grpc.ReadBufferSize(readBufferBytes))...)
		},
		Logger: hclog.New(&hclog.LoggerOptions{
			Name:       "go-plugin",
			Output:     stderr,
			JSONFormat: true,
			Level:      hclog.Warn,
		}),
	})
	// The host closed the connection, normally after calling Shutdown; make
	// sure the exporter is flushed when it did not.
	srv.shutdownWithin(5 * time.Second)
}

// grpcPlugin is the plugin side of the go-plugin binding.
type grpcPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	srv *server
}

func (p *grpcPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	pluginpb.RegisterExporterServer(s, p.srv)
	return nil
}

func (p *grpcPlugin) GRPCClient(context.Context, *plugin.GRPCBroker, *grpc.ClientConn) (any, error) {
	return nil, errors.New("plugins: the client side lives in the gateway")
}

// server adapts an Exporter to the gRPC service.
type server struct {
	pluginpb.UnimplementedExporterServer
	exp Exporter
	// reuse holds the memory requests are received into when exp is a
	// BorrowingExporter; nil otherwise.
	reuse *plugincodec.Buffers

	sem      chan struct{} // holds one token: serialises calls into exp
	shutdown bool          // guarded by sem
}

func newServer(exp Exporter) *server {
	s := &server{exp: exp, sem: make(chan struct{}, 1)}
	if _, ok := exp.(BorrowingExporter); ok {
		s.reuse = plugincodec.NewBuffers()
	}
	return s
}

// lock waits for exclusive use of the exporter, or for ctx to end (the host
// gave up waiting, e.g. behind an Export that hangs).
func (s *server) lock(ctx context.Context) error {
	select {
	case s.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *server) unlock() { <-s.sem }

func (s *server) Configure(ctx context.Context, req *pluginpb.ConfigureRequest) (*pluginpb.ConfigureResponse, error) {
	cfg := structToMap(req.GetConfig())
	if err := s.lock(ctx); err != nil {
		return nil, status.FromContextError(err).Err()
	}
	defer s.unlock()
	err := guard("Configure", func() error { return s.exp.Configure(ctx, cfg) })
	if err == nil {
		return &pluginpb.ConfigureResponse{}, nil
	}
	var ce *ConfigError
	if errors.As(err, &ce) && len(ce.Fields) > 0 {
		resp := &pluginpb.ConfigureResponse{}
		for _, f := range ce.Fields {
			resp.FieldErrors = append(resp.FieldErrors, &pluginpb.FieldError{Field: f.Field, Message: f.Message})
		}
		return resp, nil
	}
	return &pluginpb.ConfigureResponse{Error: err.Error()}, nil
}

func (s *server) Export(ctx context.Context, req *pluginpb.ExportRequest) (*pluginpb.ExportResponse, error) {
	if enc, ok := s.exp.(EncodedExporter); ok {
		if s.reuse != nil {
			// Once the call returned, whatever way: exp is done with it.
			defer s.reuse.Release(req)
		}
		return s.exportLocked(ctx, "ExportEncoded", func() error { return enc.ExportEncoded(ctx, req.GetTraces()) })
	}
	// Decoded before waiting for the exporter: a batch that cannot be read
	// is answered at once.
	td, err := (&ptrace.ProtoUnmarshaler{}).UnmarshalTraces(req.GetTraces())
	if err != nil {
		return &pluginpb.ExportResponse{
			Result:  pluginpb.Result_RESULT_PERMANENT,
			Message: fmt.Sprintf("decoding batch: %v", err),
		}, nil
	}
	return s.exportLocked(ctx, "Export", func() error { return s.exp.Export(ctx, td) })
}

// exportLocked runs one export call (method names it in panic reports) with
// exclusive use of the exporter and maps its outcome to the response.
func (s *server) exportLocked(ctx context.Context, method string, export func() error) (*pluginpb.ExportResponse, error) {
	if err := s.lock(ctx); err != nil {
		return nil, status.FromContextError(err).Err()
	}
	defer s.unlock()
	return exportResponse(guard(method, export)), nil
}

// exportResponse maps an Exporter's error to a result code. Unmarked errors
// are retryable, as in the OpenTelemetry Collector: only the exporter knows
// a failure is final.
func exportResponse(err error) *pluginpb.ExportResponse {
	switch {
	case err == nil:
		return &pluginpb.ExportResponse{Result: pluginpb.Result_RESULT_ACCEPTED}
	case IsPermanent(err):
		return &pluginpb.ExportResponse{Result: pluginpb.Result_RESULT_PERMANENT, Message: causeMessage(err)}
	default:
		after, _ := RetryAfter(err)
		return &pluginpb.ExportResponse{
			Result:       pluginpb.Result_RESULT_RETRYABLE,
			Message:      causeMessage(err),
			RetryAfterMs: after.Milliseconds(),
		}
	}
}

// causeMessage drops the "permanent: "/"retryable: " prefix of an error that
// is itself a classification; the result code already says it.
func causeMessage(err error) string {
	switch e := err.(type) {
	case *PermanentError:
		return e.Err.Error()
	case *RetryableError:
		return e.Err.Error()
	}
	return err.Error()
}

func (s *server) Shutdown(ctx context.Context, _ *pluginpb.ShutdownRequest) (*pluginpb.ShutdownResponse, error) {
	if err := s.shutdownOnce(ctx); err != nil {
		return &pluginpb.ShutdownResponse{Error: err.Error()}, nil
	}
	return &pluginpb.ShutdownResponse{}, nil
}

func (s *server) Ping(context.Context, *pluginpb.PingRequest) (*pluginpb.PingResponse, error) {
	return &pluginpb.PingResponse{}, nil
}

func (s *server) shutdownOnce(ctx context.Context) error {
	if err := s.lock(ctx); err != nil {
		return fmt.Errorf("waiting for the running call to finish: %w", err)
	}
	defer s.unlock()
	if s.shutdown {
		return nil
	}
	s.shutdown = true
	return guard("Shutdown", func() error { return s.exp.Shutdown(ctx) })
}

// shutdownWithin shuts the exporter down unless that takes longer than d (an
// Export may be stuck, or Shutdown itself may hang).
func (s *server) shutdownWithin(d time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.shutdownOnce(ctx) }()
	select {
	case err := <-done:
		if err != nil {
			slog.Error("exporter shutdown failed", "error", err)
		}
	case <-ctx.Done():
		slog.Error("exporter shutdown timed out", "timeout", d)
	}
}

// guard turns a panic in exporter code into a permanent error, so one bad
// batch cannot take the plugin down, and logs the stack.
func guard(method string, f func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			slog.Error("exporter panicked", "method", method, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			err = Permanent(fmt.Errorf("%s panicked: %v", method, r))
		}
	}()
	return f()
}

// hostPID is the gateway's pid as the host announced it, else the current
// parent.
func hostPID() int {
	if v := os.Getenv(EnvHostPID); v != "" {
		if pid, err := strconv.Atoi(v); err == nil && pid > 0 {
			return pid
		}
	}
	return os.Getppid()
}

// leaveStopToHost receives SIGINT and SIGTERM (Serve subscribed sigs to
// them) and ignores them while the gateway, process host, still runs: the
// gateway calls Shutdown and then ends the plugin. Once the gateway is gone
// a signal calls gone at once instead of waiting for the watchdog.
func leaveStopToHost(sigs <-chan os.Signal, host int, gone func()) {
	for sig := range sigs {
		if host <= 1 || os.Getppid() != host {
			gone()
			return
		}
		slog.Debug("ignoring the signal: the gateway stops this plugin when it stops", "signal", sig.String())
	}
}

// watchHost calls gone once the process's parent is no longer pid: when the
// gateway dies, even by SIGKILL, its children are re-parented. go-plugin does
// not stop plugins whose host vanished.
func watchHost(pid int, every time.Duration, gone func()) {
	if pid <= 1 {
		return // no parent to watch
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for range t.C {
		if os.Getppid() != pid {
			gone()
			return
		}
	}
}
