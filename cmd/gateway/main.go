// Command gateway is the kern trace gateway: it receives OTLP traces from
// AgentOS and any OpenTelemetry SDK, stores them in AgentOS's agno_traces /
// agno_spans tables and fans them out to exporter plugins.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/kern-agents/trace-gateway/internal/config"
	"github.com/kern-agents/trace-gateway/internal/gateway"
	"github.com/kern-agents/trace-gateway/internal/logging"
	"github.com/kern-agents/trace-gateway/internal/redact"
)

// Set by the linker (see Makefile).
var (
	version = "dev"
	commit  = "unknown"
)

const usage = `usage: gateway <command> [flags]

commands:
  run       --config FILE   start the gateway (the default command)
  validate  --config FILE [--no-plugins]
                            check a config file and each destination's plugin config;
                            exit 0 or list every error with file:line
  query     --config FILE SQL   run one SQL query against the trace database
  deadletters list|requeue --config FILE [--destination NAME] [--id N,...]
                            show spans destinations refused; make them deliverable again
  replay    --config FILE --destination NAME (--since 2h | --trace ID)
                            send stored spans to one destination again
  status    --config FILE [--destination NAME] [--json]
                            per destination: backlog, lag, circuit, retries, dead letters,
                            last error, queued replay/requeue work (from the database)
  destinations forget NAME --config FILE [--yes]
                            drop what the database keeps for a destination removed from the config
  config print --config FILE    print the effective configuration, secrets masked
  version                   print the version
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	cmd := "run"
	if len(args) > 0 && args[0] != "" && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "run":
		tuneGC()
		return cmdRun(args, stderr)
	case "validate":
		return cmdValidate(args, stdout, stderr)
	case "version":
		fmt.Fprintf(stdout, "kern trace gateway %s (commit %s)\n", version, commit)
		return 0
	case "query":
		return cmdQuery(args, stdout, stderr)
	case "config":
		return cmdConfig(args, stdout, stderr)
	case "plugin":
		return cmdPlugin(args, stderr)
	case "deadletters":
		return cmdDeadLetters(args, stdout, stderr)
	case "replay":
		return cmdReplay(args, stdout, stderr)
	case "status":
		return cmdStatus(args, stdout, stderr)
	case "destinations":
		return cmdDestinations(args, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "gateway: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
}

func configFlag(name string, args []string, stderr io.Writer) (string, bool) {
	return configFlags(name, args, stderr, nil)
}

// configFlags parses --config and the flags extra defines.
func configFlags(name string, args []string, stderr io.Writer, extra func(*flag.FlagSet)) (string, bool) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "config.yaml", "path to the YAML config file")
	if extra != nil {
		extra(fs)
	}
	if err := fs.Parse(args); err != nil {
		return "", false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "gateway %s: unexpected arguments %v\n", name, fs.Args())
		return "", false
	}
	return *path, true
}

// cmdConfig implements `gateway config print`: the configuration as the
// gateway sees it (defaults filled in, ${ENV} expanded), secrets masked.
func cmdConfig(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "print" {
		fmt.Fprintln(stderr, "usage: gateway config print --config FILE")
		return 2
	}
	path, ok := configFlag("config print", args[1:], stderr)
	if !ok {
		return 2
	}
	cfg, err := config.Load(path)
	if err != nil {
		fmt.Fprintln(stderr, redact.String(err.Error()))
		return 1
	}
	out, err := redact.YAML(cfg)
	if err != nil {
		fmt.Fprintln(stderr, "gateway config print:", err)
		return 1
	}
	_, _ = stdout.Write(out)
	return 0
}

// cmdValidate checks the file, then starts each destination's plugin, hands
// it its config block and stops it, so that a block the plugin rejects is
// caught here (systemd's ExecStartPre) rather than when the gateway runs.
func cmdValidate(args []string, stdout, stderr io.Writer) int {
	var fileOnly bool
	path, ok := configFlags("validate", args, stderr, func(fs *flag.FlagSet) {
		fs.BoolVar(&fileOnly, "no-plugins", false, "check the file only; do not start the destinations' plugins")
	})
	if !ok {
		return 2
	}
	cfg, err := config.Load(path)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if !fileOnly {
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
		defer stop()
		if err := gateway.CheckDestinations(ctx, cfg, gateway.Options{}); err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
	}
	fmt.Fprintf(stdout, "%s: ok\n", path)
	return 0
}

func cmdRun(args []string, stderr io.Writer) int {
	path, ok := configFlag("run", args, stderr)
	if !ok {
		return 2
	}
	cfg, err := config.Load(path)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	logger := logging.New(stderr, cfg.Log.Level, cfg.Log.Format)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	// SIGHUP re-reads the config: tokens, rate limits, TLS files and destinations change live (systemctl reload).
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	reload := make(chan struct{}, 1)
	go func() {
		for range hup {
			select {
			case reload <- struct{}{}:
			default: // one pending reload is enough
			}
		}
	}()
	logger.Info("starting kern trace gateway", "version", version, "config", path)
	opts := gateway.Options{Logger: logger, Version: version, Reload: reload,
		LoadConfig: func() (*config.Config, error) { return config.Load(path) }}
	if err := gateway.Run(ctx, cfg, opts); err != nil && !errors.Is(err, context.Canceled) {
		var located config.Errors
		if errors.As(err, &located) {
			// Destinations whose plugin refused its config: the same
			// file:line lines as `gateway validate`.
			fmt.Fprintln(stderr, located)
			logger.Error("gateway not started: fix the destinations above", "problems", len(located))
			return 1
		}
		logger.Error("gateway stopped", "err", err)
		return 1
	}
	return 0
}
