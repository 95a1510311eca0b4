package pluginhost

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kern-agents/trace-gateway/plugins"
	"github.com/kern-agents/trace-gateway/plugins/pluginpb"
)

// pluginName is the go-plugin name the Exporter service is dispensed under;
// it must match the plugins package.
const pluginName = "exporter"

// instance is one running plugin process.
type instance struct {
	client *plugin.Client
	rpc    pluginpb.ExporterClient
	conn   grpc.ClientConnInterface // for Export calls made with plugincodec.ExportParts
	proc   *os.Process
	pid    int
	stderr *stderrLogger
	// ending is set once the host ends the process itself (Close, a kill):
	// its exit is then expected, not news.
	ending atomic.Bool
	// sockDir is the private directory of the plugin's socket, removed
	// once the process is gone (see transportSecurity).
	sockDir string
}

// removeSocketDir removes the plugin's socket directory; the process is gone.
func (i *instance) removeSocketDir() {
	if i.sockDir != "" {
		_ = os.RemoveAll(i.sockDir)
	}
}

// kill stops the process at once (it may be hung or hostile) and lets
// go-plugin reap it and close its connection.
func (i *instance) kill() {
	i.ending.Store(true)
	if i.proc != nil {
		_ = i.proc.Kill() // os.Process is pidfd-backed: safe after exit
	}
	i.client.Kill()
	i.removeSocketDir()
}

// hostPlugin is the host side of the go-plugin binding.
type hostPlugin struct{ plugin.NetRPCUnsupportedPlugin }

func (hostPlugin) GRPCServer(*plugin.GRPCBroker, *grpc.Server) error {
	return errors.New("pluginhost: the gateway does not serve exporters")
}

func (hostPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return c, nil
}

// writeBufferBytes is how much the host writes to a plugin's socket at once.
const writeBufferBytes = 256 << 10

// pluginEnv is a plugin's environment: inherited then ours (later entries
// win). A plugin forwards one batch at a time, so unless GOMAXPROCS is set
// it runs on one processor: with several plugins beside the gateway, Go's
// idle processors spinning for work cost more CPU than they save.
func pluginEnv(inherited []string, ours ...string) []string {
	env := append(inherited, ours...)
	if !slices.ContainsFunc(env, func(kv string) bool { return strings.HasPrefix(kv, "GOMAXPROCS=") }) {
		env = append(env, "GOMAXPROCS=1")
	}
	return env
}

// transportSecurity keeps the host↔plugin connection to the gateway that
// started the plugin, and returns the directory to remove once the plugin is
// gone ("" when none). Where go-plugin uses a Unix socket, the plugin creates
// it in a directory of its own that only the gateway's user can enter (mode
// 0700), so the operating system already keeps every other user out; mutual
// TLS on top would only encrypt a copy between two processes of one user,
// and it was the largest cost of the hop (about 40% of a plugin's CPU and a
// fifth of the host's per batch in BenchmarkExportEncodedOTLP). Where it
// uses TCP on loopback (Windows), any local user could connect, so it keeps
// go-plugin's automatic mutual TLS.
func transportSecurity(cfg *plugin.ClientConfig) (string, error) {
	if runtime.GOOS == "windows" {
		cfg.AutoMTLS = true
		return "", nil
	}
	dir, err := newSocketDir()
	if err != nil {
		return "", err
	}
	cfg.Cmd.Env = append(cfg.Cmd.Env, plugin.EnvUnixSocketDir+"="+dir)
	return dir, nil
}

// launch starts one plugin process, completes the handshake and configures
// it. On error nothing is left running.
func (d *Destination) launch(ctx context.Context) (*instance, error) {
	cmd := d.newCmd()
	// The plugin inherits the gateway's environment; our variables come last
	// so an inherited value cannot override them (go-plugin would append the
	// host environment after ours, hence SkipHostEnv below).
	cmd.Env = pluginEnv(append(os.Environ(), cmd.Env...),
		plugins.EnvHostPID+"="+strconv.Itoa(os.Getpid()),
		plugins.EnvLogLevel+"="+d.logLevel(ctx),
	)
	stderr := &stderrLogger{log: d.log}
	inst := &instance{stderr: stderr}

	startTimeout := d.spec.StartTimeout
	if dl, ok := ctx.Deadline(); ok {
		startTimeout = min(startTimeout, max(time.Until(dl), time.Millisecond))
	}
	cfg := &plugin.ClientConfig{
		HandshakeConfig: plugins.Handshake,
		VersionedPlugins: map[int]plugin.PluginSet{
			plugins.ProtocolVersion: {pluginName: hostPlugin{}},
		},
		Cmd:              cmd,
		SkipHostEnv:      true,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		StartTimeout:     startTimeout,
		Logger:           &hclogAdapter{l: d.log.With("component", "go-plugin"), exited: inst.exitLevel},
		Stderr:           &lineWriter{fn: stderr.line},
		SyncStdout:       streamLogger(d.log, "stdout"),
		SyncStderr:       streamLogger(d.log, "stderr"),
		// Batches of up to 4 MiB go out one at a time over a local socket:
		// written in large pieces, they take a fraction of the calls.
		GRPCDialOptions: []grpc.DialOption{grpc.WithWriteBufferSize(writeBufferBytes)},
	}
	sockDir, err := transportSecurity(cfg)
	if err != nil {
		return nil, err
	}
	inst.sockDir = sockDir
	if d.spec.SHA256 != "" {
		sum, _ := hex.DecodeString(d.spec.SHA256) // validated in Start
		cfg.SecureConfig = &plugin.SecureConfig{Checksum: sum, Hash: sha256.New()}
	}
	client := plugin.NewClient(cfg)

	rpcClient, err := client.Client()
	if err != nil {
		client.Kill()
		inst.removeSocketDir()
		return nil, d.explainStart(cmd, err, stderr)
	}
	raw, err := rpcClient.Dispense(pluginName)
	if err != nil {
		client.Kill()
		inst.removeSocketDir()
		return nil, startError(BadPlugin, fmt.Errorf("plugin %s: %w", d.spec.Plugin, err))
	}
	conn := raw.(*grpc.ClientConn)
	inst.client = client
	inst.rpc = pluginpb.NewExporterClient(conn)
	inst.conn = conn
	inst.proc = cmd.Process
	if cmd.Process != nil {
		inst.pid = cmd.Process.Pid
	}
	if err := d.configure(ctx, inst); err != nil {
		inst.kill()
		return nil, err
	}
	d.log.Debug("plugin started", "plugin", d.spec.Plugin, "pid", inst.pid)
	return inst, nil
}

// exitLevel is how go-plugin's "plugin process exited" (error: how it
// ended, "" for status 0) is logged. An end the host caused is routine. One
// by SIGTERM or SIGINT came from outside the gateway, typically a stop sent
// to its whole process group (which plugins built with this SDK ignore): the
// gateway is stopping too, or restarts the plugin on its next export. Any
// other end is a crash.
func (i *instance) exitLevel(exitErr string) (slog.Level, string) {
	switch {
	case exitErr == "" || i.ending.Load():
		return slog.LevelDebug, "plugin process exited"
	case exitErr == "signal: terminated" || exitErr == "signal: interrupt":
		return slog.LevelInfo, "plugin process stopped by a signal from outside the gateway"
	default:
		return slog.LevelError, "plugin process exited"
	}
}

// configure hands the plugin its config block.
func (d *Destination) configure(ctx context.Context, inst *instance) error {
	cctx, cancel := context.WithTimeout(ctx, d.spec.ConfigureTimeout)
	defer cancel()
	resp, err := inst.rpc.Configure(cctx, &pluginpb.ConfigureRequest{Config: d.config})
	if err != nil {
		switch cerr := callerEnded(ctx, cctx, status.Code(err)); {
		case cerr != nil:
			return fmt.Errorf("configuring plugin: %w", cerr)
		case status.Code(err) == codes.DeadlineExceeded:
			return fmt.Errorf("plugin %s did not answer Configure within %s", d.spec.Plugin, d.spec.ConfigureTimeout)
		case status.Code(err) == codes.Unimplemented:
			return startError(BadPlugin, fmt.Errorf("plugin %s does not implement the kern.gateway.plugin.v1.Exporter service: %s", d.spec.Plugin, status.Convert(err).Message()))
		default:
			return fmt.Errorf("plugin %s failed Configure: %s", d.spec.Plugin, status.Convert(err).Message())
		}
	}
	if fe := resp.GetFieldErrors(); len(fe) > 0 {
		ce := &plugins.ConfigError{}
		for _, f := range fe {
			ce.Fields = append(ce.Fields, plugins.FieldError{Field: orDefault(f.GetField(), "(config)"), Message: orDefault(f.GetMessage(), "invalid")})
		}
		return startError(ConfigRejected, ce)
	}
	if msg := resp.GetError(); msg != "" {
		return startError(ConfigRejected, fmt.Errorf("plugin %s rejected its config: %s", d.spec.Plugin, msg))
	}
	return nil
}

func orDefault(s, def string) string {
	if strings.TrimSpace(s) == "" {
		return def
	}
	return s
}

// logLevel tells the plugin the lowest level the host will keep.
func (d *Destination) logLevel(ctx context.Context) string {
	if d.log.Enabled(ctx, slog.LevelDebug) {
		return "debug"
	}
	return "info"
}

// explainStart turns go-plugin's start-up errors into one message that says
// what went wrong and what to do.
func (d *Destination) explainStart(cmd *exec.Cmd, err error, stderr *stderrLogger) error {
	what := "plugin " + d.spec.Plugin
	if !IsPath(d.spec.Plugin) {
		what = "built-in plugin " + d.spec.Plugin
	}
	msg := err.Error()
	var hint string
	kind := FailedToRun
	switch {
	case errors.Is(err, plugin.ErrChecksumsDoNotMatch):
		got := "unknown"
		if sum, herr := fileSHA256(cmd.Path); herr == nil {
			got = sum
		}
		return startError(BadPlugin, fmt.Errorf("%s: sha256 mismatch: config pins %s, the binary has %s", what, strings.ToLower(d.spec.SHA256), got))
	case errors.Is(err, exec.ErrNotFound), errors.Is(err, os.ErrNotExist):
		return startError(BadPlugin, fmt.Errorf("%s: binary not found: %w", what, err))
	case errors.Is(err, os.ErrPermission):
		return startError(BadPlugin, fmt.Errorf("%s: cannot execute: %w", what, err))
	case strings.Contains(msg, "exited before we could connect"),
		strings.Contains(msg, "Failed to read any lines from plugin's stdout"):
		hint = "the plugin exited during start-up, before the handshake"
	case strings.Contains(msg, "Unrecognized remote plugin message"):
		first, _, _ := strings.Cut(strings.TrimPrefix(msg, "Unrecognized remote plugin message: "), "\n")
		return startError(BadPlugin, fmt.Errorf("%s: handshake failed: the first line on its stdout was %q, not the go-plugin handshake; "+
			"a plugin must not print to stdout before plugins.Serve (or it is not a kern gateway plugin)", what, first))
	case strings.Contains(msg, "incompatible API version"):
		return startError(BadPlugin, fmt.Errorf("%s: speaks a different plugin protocol (%s); this gateway speaks version %d: rebuild the plugin against a matching SDK", what, msg, plugins.ProtocolVersion))
	case strings.Contains(msg, "timeout while waiting for plugin to start"):
		hint = fmt.Sprintf("no handshake within %s", d.spec.StartTimeout)
	case strings.Contains(msg, "unsupported plugin protocol"):
		hint, kind = "the plugin does not serve gRPC; build it with plugins.Serve", BadPlugin
	default:
		hint = msg
	}
	out := what + ": " + hint
	if tail := stderr.lastLines(); tail != "" {
		out += "; its last output:\n" + tail
	}
	return startError(kind, errors.New(out))
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
