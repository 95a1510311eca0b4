// Package pluginhost runs exporter plugins: one child process per
// destination, started through hashicorp/go-plugin over gRPC, configured once,
// then handed batches. The host treats plugins as untrusted: it bounds every
// call with a deadline, kills a plugin that hangs or misbehaves, restarts a
// dead one with exponential backoff on the next export, and hands the batch
// back as retryable so nothing is lost.
package pluginhost

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/kern-agents/trace-gateway/internal/builtin"
	"github.com/kern-agents/trace-gateway/internal/plugincodec"
	"github.com/kern-agents/trace-gateway/plugins"
	"github.com/kern-agents/trace-gateway/plugins/pluginpb"
)

// Defaults for the zero values of Spec.
const (
	DefaultStartTimeout      = 10 * time.Second
	DefaultConfigureTimeout  = 10 * time.Second
	DefaultExportTimeout     = 30 * time.Second
	DefaultRestartBackoff    = time.Second
	DefaultMaxRestartBackoff = 30 * time.Second
	// DefaultMaxMessageBytes is gRPC's default receive limit, which plugins
	// built with plugins.Serve enforce; it is also the largest allowed.
	DefaultMaxMessageBytes = 4 << 20
)

// ErrClosed is returned (as retryable) by Export after Close.
var ErrClosed = errors.New("plugin host closed")

// Spec describes one destination's plugin.
type Spec struct {
	// Name is the destination's name, used in errors and logs.
	Name string
	// Plugin is a built-in exporter name (e.g. "otlp") or the path of a
	// plugin binary. Anything containing a path separator is a path.
	Plugin string
	// SHA256, when set, is the hex SHA-256 the plugin binary must have.
	SHA256 string
	// Config is the destination's config block, handed to the plugin.
	Config map[string]any
	// Logger receives the plugin's logs; nil means slog.Default(). Every
	// record carries destination=<Name>.
	Logger *slog.Logger

	StartTimeout     time.Duration // handshake; default DefaultStartTimeout
	ConfigureTimeout time.Duration // Configure call; default DefaultConfigureTimeout
	ExportTimeout    time.Duration // one Export call; default DefaultExportTimeout
	// RestartBackoff is the wait before restarting a plugin after its first
	// failure; it doubles with each consecutive failure up to
	// MaxRestartBackoff.
	RestartBackoff    time.Duration
	MaxRestartBackoff time.Duration
	// MaxMessageBytes bounds one ExportRequest; batches are split to fit.
	// Default and maximum DefaultMaxMessageBytes.
	MaxMessageBytes int

	// BuiltinCommand builds the command that serves a built-in exporter.
	// nil re-executes the running binary as `<self> plugin NAME`, which the
	// gateway's main routes to builtin.Serve.
	BuiltinCommand func(name string) *exec.Cmd
}

// IsPath reports whether a destination's plugin setting names a binary
// rather than a built-in.
func IsPath(plugin string) bool {
	return strings.ContainsAny(plugin, `/\`) || strings.HasPrefix(plugin, ".")
}

func (s *Spec) validate() error {
	var errs []string
	if s.Name == "" {
		errs = append(errs, "name is empty")
	}
	if s.Plugin == "" {
		errs = append(errs, "plugin is empty")
	}
	if s.SHA256 != "" {
		if b, err := hex.DecodeString(s.SHA256); err != nil || len(b) != 32 {
			errs = append(errs, fmt.Sprintf("sha256 %q is not 64 hex digits", s.SHA256))
		}
		if !IsPath(s.Plugin) {
			errs = append(errs, "sha256 applies only to a plugin given by path, not to built-in "+s.Plugin)
		}
	}
	if s.MaxMessageBytes < 0 || s.MaxMessageBytes > DefaultMaxMessageBytes {
		errs = append(errs, fmt.Sprintf("max message size %d is outside 1..%d", s.MaxMessageBytes, DefaultMaxMessageBytes))
	}
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "; "))
	}
	return nil
}

func (s *Spec) withDefaults() {
	if s.Logger == nil {
		s.Logger = slog.Default()
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&s.StartTimeout, DefaultStartTimeout)
	def(&s.ConfigureTimeout, DefaultConfigureTimeout)
	def(&s.ExportTimeout, DefaultExportTimeout)
	def(&s.RestartBackoff, DefaultRestartBackoff)
	def(&s.MaxRestartBackoff, DefaultMaxRestartBackoff)
	if s.MaxMessageBytes == 0 {
		s.MaxMessageBytes = DefaultMaxMessageBytes
	}
}

// Destination is a running plugin for one destination. Its methods are safe
// for concurrent use.
type Destination struct {
	spec   Spec
	log    *slog.Logger
	newCmd func() *exec.Cmd
	config *structpb.Struct
	split  splitter

	restarts atomic.Uint64

	mu        sync.Mutex
	cur       *instance // nil when no process is running
	failures  int       // consecutive failures, for backoff
	nextStart time.Time
	lastFail  string
	starting  chan struct{} // non-nil while a restart is under way; closed when done
	closed    bool
}

// StartFailure says why a plugin did not start, and so whether another
// attempt can help.
type StartFailure int

const (
	// FailedToRun: the process exited or hung during start-up, or a call
	// failed; another attempt may succeed.
	FailedToRun StartFailure = iota
	// BadPlugin: the plugin setting names nothing that can serve: an
	// unknown built-in, a missing or non-executable binary, a sha256
	// mismatch, a program that is not a plugin of this protocol version.
	BadPlugin
	// ConfigRejected: the plugin ran and refused its config block (or the
	// block cannot be sent to it).
	ConfigRejected
)

// StartError is Start's error. Err wraps a *plugins.ConfigError when the
// plugin named the fields it rejects.
type StartError struct {
	Destination string // empty inside the host, which names it otherwise
	Kind        StartFailure
	Err         error
}

func (e *StartError) Error() string {
	if e.Destination == "" {
		return e.Err.Error()
	}
	return fmt.Sprintf("destination %q: %v", e.Destination, e.Err)
}

func (e *StartError) Unwrap() error { return e.Err }

// Permanent reports whether only a change of the configuration or of the
// plugin binary can fix the failure.
func (e *StartError) Permanent() bool { return e.Kind != FailedToRun }

// startError marks err with why a start failed.
func startError(kind StartFailure, err error) *StartError {
	return &StartError{Kind: kind, Err: err}
}

// Start launches and configures the plugin for spec. Its error is a
// *StartError naming the destination.
func Start(ctx context.Context, spec Spec) (*Destination, error) {
	fail := func(kind StartFailure, err error) (*Destination, error) {
		se := &StartError{Destination: spec.Name, Kind: kind, Err: err}
		if inner, ok := err.(*StartError); ok {
			se.Kind, se.Err = inner.Kind, inner.Err
		}
		return nil, se
	}
	if err := spec.validate(); err != nil {
		return fail(BadPlugin, err)
	}
	spec.withDefaults()
	d := &Destination{
		spec:  spec,
		log:   spec.Logger.With("destination", spec.Name),
		split: splitter{limit: spec.MaxMessageBytes},
	}
	var err error
	if d.newCmd, err = commandFor(&spec); err != nil {
		return fail(BadPlugin, err)
	}
	if d.config, err = configStruct(spec.Config); err != nil {
		return fail(ConfigRejected, err)
	}
	inst, err := d.launch(ctx)
	if err != nil {
		return fail(FailedToRun, err)
	}
	d.cur = inst
	return d, nil
}

// commandFor resolves spec.Plugin to a command factory, checking what can be
// checked before the first start.
func commandFor(spec *Spec) (func() *exec.Cmd, error) {
	if !IsPath(spec.Plugin) {
		name := spec.Plugin
		if spec.BuiltinCommand != nil {
			return func() *exec.Cmd { return spec.BuiltinCommand(name) }, nil
		}
		if _, ok := builtin.Lookup(name); !ok {
			return nil, fmt.Errorf("%w (a custom plugin is given by path, e.g. ./my-plugin)", builtin.UnknownError(name))
		}
		self, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("locating the gateway binary to serve built-in %q: %w", name, err)
		}
		return func() *exec.Cmd { return exec.Command(self, "plugin", name) }, nil
	}
	path, err := filepath.Abs(spec.Plugin)
	if err != nil {
		return nil, fmt.Errorf("plugin %q: %w", spec.Plugin, err)
	}
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("plugin binary %s does not exist", path)
	case err != nil:
		return nil, fmt.Errorf("plugin binary %s: %w", path, err)
	case fi.IsDir():
		return nil, fmt.Errorf("plugin binary %s is a directory", path)
	case fi.Mode().Perm()&0o111 == 0:
		return nil, fmt.Errorf("plugin binary %s is not executable (chmod +x it)", path)
	}
	return func() *exec.Cmd { return exec.Command(path) }, nil
}

// Name is the destination's name.
func (d *Destination) Name() string { return d.spec.Name }

// Restarts counts how many times the plugin process was restarted.
func (d *Destination) Restarts() uint64 { return d.restarts.Load() }

// Pid is the process id of the running plugin, or 0 when none runs.
func (d *Destination) Pid() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cur == nil {
		return 0
	}
	return d.cur.pid
}

// Export delivers td. It returns nil when every span was accepted, a
// *plugins.RetryableError when the batch should be retried (the plugin asked
// for it, hung, crashed or is restarting; After carries the wait), or a
// *plugins.PermanentError when retrying cannot help. Batches larger than the
// message limit are split; a span that cannot fit even alone is reported
// permanent while the rest is still delivered.
func (d *Destination) Export(ctx context.Context, td ptrace.Traces) error {
	if td.SpanCount() == 0 {
		return nil // nothing to deliver
	}
	parts, over := d.split.split(td)
	var permanent []error
	for _, part := range parts {
		err := d.exportPart(ctx, part)
		switch {
		case err == nil:
		case plugins.IsPermanent(err):
			permanent = append(permanent, err)
		default:
			// The whole batch comes back; parts already delivered will be
			// delivered again (at-least-once).
			return err
		}
	}
	if len(over) > 0 {
		err := plugins.Permanent(fmt.Errorf("destination %q: %s", d.spec.Name, describeOversize(over, d.spec.MaxMessageBytes)))
		if len(permanent) == 0 {
			// Everything else was delivered: only these spans are refused.
			ids := make([]string, len(over))
			for i, o := range over {
				ids[i] = o.spanID
			}
			return &RefusedSpans{IDs: ids, Err: err}
		}
		permanent = append(permanent, err)
	}
	switch len(permanent) {
	case 0:
		return nil
	case 1:
		return permanent[0]
	default:
		causes := make([]error, len(permanent))
		for i, err := range permanent {
			causes[i] = errors.Unwrap(err) // one "permanent:" prefix for all
		}
		return plugins.Permanent(errors.Join(causes...))
	}
}

// RefusedSpans is Export's permanent error when the destination refused only
// some spans of a batch, named by their hex ids, and took every other one.
type RefusedSpans struct {
	IDs []string
	Err error // a *plugins.PermanentError
}

func (e *RefusedSpans) Error() string { return e.Err.Error() }
func (e *RefusedSpans) Unwrap() error { return e.Err }

// RefusedSpanIDs lists the refused spans.
func (e *RefusedSpans) RefusedSpanIDs() []string { return e.IDs }

// ExportEncoded is Export for a batch already encoded as protobuf OTLP
// ExportTraceServiceRequests: the parts concatenated are the batch (the
// dispatcher encodes each chunk once for every destination that takes it
// unchanged, and sends several without joining them). A batch over the
// message limit is decoded and split as Export would.
func (d *Destination) ExportEncoded(ctx context.Context, parts [][]byte) error {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	if n == 0 {
		return nil
	}
	if requestSize(n) <= d.split.limit {
		return d.exportPayload(ctx, parts)
	}
	td, err := (&ptrace.ProtoUnmarshaler{}).UnmarshalTraces(bytes.Join(parts, nil))
	if err != nil {
		return plugins.Permanent(fmt.Errorf("destination %q: decoding batch: %w", d.spec.Name, err))
	}
	return d.Export(ctx, td)
}

func (d *Destination) exportPart(ctx context.Context, td ptrace.Traces) error {
	payload, err := (&ptrace.ProtoMarshaler{}).MarshalTraces(td)
	if err != nil {
		return plugins.Permanent(fmt.Errorf("destination %q: encoding batch: %w", d.spec.Name, err))
	}
	return d.exportPayload(ctx, [][]byte{payload})
}

// exportPayload makes one Export call with an encoded batch, in parts, that
// fits the message limit.
func (d *Destination) exportPayload(ctx context.Context, parts [][]byte) error {
	inst, err := d.running(ctx)
	if err != nil {
		return err
	}
	ectx, cancel := context.WithTimeout(ctx, d.spec.ExportTimeout)
	resp := new(pluginpb.ExportResponse)
	err = inst.conn.Invoke(ectx, pluginpb.Exporter_Export_FullMethodName, &plugincodec.ExportParts{Parts: parts}, resp,
		grpc.ForceCodecV2(plugincodec.Codec{}))
	cancel()
	if err != nil {
		return d.callFailed(ctx, ectx, inst, "export", d.spec.ExportTimeout, err)
	}
	d.answered(inst)
	switch resp.GetResult() {
	case pluginpb.Result_RESULT_ACCEPTED:
		return nil
	case pluginpb.Result_RESULT_RETRYABLE:
		after := time.Duration(max(resp.GetRetryAfterMs(), 0)) * time.Millisecond
		return plugins.Retryable(fmt.Errorf("destination %q: %s", d.spec.Name, orUnknown(resp.GetMessage())), after)
	case pluginpb.Result_RESULT_PERMANENT:
		return plugins.Permanent(fmt.Errorf("destination %q: %s", d.spec.Name, orUnknown(resp.GetMessage())))
	default:
		d.log.Warn("plugin gave a malformed export answer", "result", int32(resp.GetResult()))
		return plugins.Retryable(fmt.Errorf("destination %q: plugin gave a malformed export answer (result %d)", d.spec.Name, int32(resp.GetResult())), 0)
	}
}

func orUnknown(msg string) string {
	if msg == "" {
		return "plugin gave no reason"
	}
	return msg
}

// callFailed classifies a failed RPC. A deadline or a dead process means the
// plugin is killed and restarted later; the caller's own cancellation or a
// gRPC error from a live plugin leaves it running. Always retryable.
func (d *Destination) callFailed(ctx, callCtx context.Context, inst *instance, call string, timeout time.Duration, err error) error {
	code := status.Code(err)
	if cerr := callerEnded(ctx, callCtx, code); cerr != nil {
		return plugins.Retryable(fmt.Errorf("destination %q: %s abandoned: %w", d.spec.Name, call, cerr), 0)
	}
	var reason string
	switch {
	case code == codes.DeadlineExceeded:
		reason = fmt.Sprintf("plugin did not answer %s within %s; killed it", call, timeout)
	case code == codes.Unavailable || code == codes.Canceled || inst.client.Exited():
		reason = fmt.Sprintf("plugin process died during %s", call)
		if tail := inst.stderr.lastLines(); tail != "" {
			reason += "; its last output:\n" + tail
		}
	default:
		return plugins.Retryable(fmt.Errorf("destination %q: plugin failed %s: %s", d.spec.Name, call, status.Convert(err).Message()), 0)
	}
	after := d.failed(inst, reason)
	return plugins.Retryable(fmt.Errorf("destination %q: %s; restarting in %s", d.spec.Name, reason, after), after)
}

// callerEnded tells whether a failed call ended because of the caller's ctx
// rather than the plugin: ctx is done, or the call hit a deadline that was
// the caller's (gRPC may report DeadlineExceeded, from the server side,
// before ctx's own timer fires).
func callerEnded(ctx, callCtx context.Context, code codes.Code) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if code != codes.DeadlineExceeded {
		return nil
	}
	callerDL, ok := ctx.Deadline()
	callDL, _ := callCtx.Deadline()
	if ok && !callerDL.After(callDL) {
		return context.DeadlineExceeded
	}
	return nil
}

// backoff is the wait before the restart following n consecutive failures.
func (d *Destination) backoff(n int) time.Duration {
	b := d.spec.RestartBackoff
	for i := 1; i < n && b < d.spec.MaxRestartBackoff; i++ {
		b *= 2
	}
	return min(b, d.spec.MaxRestartBackoff)
}

// failed retires inst (if still current), kills it and schedules the next
// start. It returns the wait before that start.
func (d *Destination) failed(inst *instance, reason string) time.Duration {
	d.mu.Lock()
	var wait time.Duration
	if d.cur == inst {
		d.cur = nil
		d.failLocked(reason)
		wait = d.backoff(d.failures)
	} else {
		wait = max(time.Until(d.nextStart), 0)
	}
	d.mu.Unlock()
	d.log.Warn("plugin failed", "reason", reason, "restart_in", wait)
	inst.kill()
	return wait
}

func (d *Destination) failLocked(reason string) {
	d.failures++
	d.nextStart = time.Now().Add(d.backoff(d.failures))
	d.lastFail = reason
}

// answered records that inst gave a well-formed answer, which ends a run of
// failures.
func (d *Destination) answered(inst *instance) {
	d.mu.Lock()
	if d.cur == inst {
		d.failures = 0
	}
	d.mu.Unlock()
}

// running returns the live plugin, starting a new one when the last died and
// its backoff has passed. While waiting it returns a retryable error whose
// After is the time left. The lock is not held while a process starts, so
// Close and Pid never wait for a slow plugin.
func (d *Destination) running(ctx context.Context) (*instance, error) {
	d.mu.Lock()
	for d.starting != nil { // another caller is starting the plugin
		ch := d.starting
		d.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, plugins.Retryable(fmt.Errorf("destination %q: waiting for the plugin to start: %w", d.spec.Name, ctx.Err()), 0)
		}
		d.mu.Lock()
	}
	if d.closed {
		d.mu.Unlock()
		return nil, plugins.Retryable(fmt.Errorf("destination %q: %w", d.spec.Name, ErrClosed), 0)
	}
	if d.cur != nil {
		if !d.cur.client.Exited() {
			inst := d.cur
			d.mu.Unlock()
			return inst, nil
		}
		old := d.cur
		d.cur = nil
		d.failLocked("plugin process exited")
		d.log.Warn("plugin process exited between exports", "restart_in", d.backoff(d.failures))
		go old.kill() // reap and clean up without holding the lock
	}
	if wait := time.Until(d.nextStart); wait > 0 {
		lastFail := d.lastFail
		d.mu.Unlock()
		return nil, plugins.Retryable(fmt.Errorf("destination %q: plugin restarting in %s (%s)", d.spec.Name, wait.Round(time.Millisecond), lastFail), wait)
	}
	starting := make(chan struct{})
	d.starting = starting
	d.mu.Unlock()

	n := d.restarts.Add(1)
	d.log.Info("restarting plugin", "restarts", n, "after", d.lastFailure())
	inst, err := d.launch(ctx)

	// Waiters (and Close) wake only once the outcome is settled.
	defer close(starting)
	d.mu.Lock()
	d.starting = nil
	switch {
	case err != nil:
		d.failLocked(err.Error())
		wait := d.backoff(d.failures)
		d.mu.Unlock()
		return nil, plugins.Retryable(fmt.Errorf("destination %q: restarting plugin: %w", d.spec.Name, err), wait)
	case d.closed:
		d.mu.Unlock()
		inst.kill()
		return nil, plugins.Retryable(fmt.Errorf("destination %q: %w", d.spec.Name, ErrClosed), 0)
	}
	d.cur = inst
	d.mu.Unlock()
	return inst, nil
}

func (d *Destination) lastFailure() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.lastFail
}

// Ping checks that the plugin process is up and serving.
func (d *Destination) Ping(ctx context.Context) error {
	d.mu.Lock()
	inst, closed := d.cur, d.closed
	d.mu.Unlock()
	switch {
	case closed:
		return fmt.Errorf("destination %q: %w", d.spec.Name, ErrClosed)
	case inst == nil || inst.client.Exited():
		return fmt.Errorf("destination %q: plugin not running", d.spec.Name)
	}
	if _, err := inst.rpc.Ping(ctx, &pluginpb.PingRequest{}); err != nil {
		return fmt.Errorf("destination %q: ping: %w", d.spec.Name, err)
	}
	return nil
}

// Close asks the plugin to flush and exit, then stops the process; when ctx
// ends first the process is killed. Later Exports fail with ErrClosed.
func (d *Destination) Close(ctx context.Context) error {
	d.mu.Lock()
	d.closed = true
	starting := d.starting
	d.mu.Unlock()
	if starting != nil { // a restart under way kills its process when it sees closed
		select {
		case <-starting:
		case <-ctx.Done():
		}
	}
	d.mu.Lock()
	inst := d.cur
	d.cur = nil
	d.mu.Unlock()
	if inst == nil {
		return nil
	}
	var err error
	inst.ending.Store(true)
	resp, rpcErr := inst.rpc.Shutdown(ctx, &pluginpb.ShutdownRequest{})
	switch {
	case status.Code(rpcErr) == codes.Unavailable:
		// The process ended (or is ending) before it could be asked, e.g.
		// a stop signal sent to the gateway's whole process group reached
		// a plugin that does not leave its lifecycle to the host. Export
		// answers only once a batch is delivered: nothing is lost.
		d.log.Info("plugin process had already ended at shutdown", "reason", status.Convert(rpcErr).Message())
	// Not named after the destination: the dispatcher, which closes it,
	// names it (the error used to name it twice).
	case rpcErr != nil:
		err = fmt.Errorf("shutdown: %s", status.Convert(rpcErr).Message())
	case resp.GetError() != "":
		err = fmt.Errorf("shutdown: %s", resp.GetError())
	}
	stopped := make(chan struct{})
	go func() {
		inst.client.Kill() // closes the connection, waits up to 2s, then kills
		inst.removeSocketDir()
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-ctx.Done():
		inst.kill()
		<-stopped
	}
	return err
}
