// Command agentsim sends realistic AgentOS-shaped traces (agent and team
// runs with hooks, retrieval, LLM and tool calls, delegation) to an OTLP
// endpoint, for load tests and demos of the trace gateway.
//
//	agentsim -protocol grpc -endpoint 127.0.0.1:4317 -rate 50 -duration 1m -error-ratio 0.05
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"go.opentelemetry.io/otel"

	"github.com/kern-agents/trace-gateway/internal/sim"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// run is main without the process: it returns the exit code (0 ok, 1 some
// spans were not delivered, 2 bad usage).
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("agentsim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		endpoint    = fs.String("endpoint", "", "OTLP endpoint (default 127.0.0.1:4317 for grpc, http://127.0.0.1:4318 for http)")
		protocol    = fs.String("protocol", sim.ProtocolGRPC, "OTLP protocol: grpc or http")
		gzip        = fs.Bool("gzip", true, "gzip-compress exports")
		insecure    = fs.Bool("insecure", false, "plaintext even for non-loopback endpoints")
		rate        = fs.Float64("rate", 0, "runs per second (0 = as fast as possible)")
		count       = fs.Int("count", 0, "runs to send (0 = until interrupted or -duration)")
		duration    = fs.Duration("duration", 0, "stop after this long (0 = no limit)")
		errorRatio  = fs.Float64("error-ratio", 0.05, "fraction of tool calls that fail (0..1)")
		users       = fs.Int("users", 20, "distinct users")
		sessions    = fs.Int("sessions", 50, "distinct sessions")
		agents      = fs.Int("agents", 4, "distinct agents")
		seed        = fs.Int64("seed", 1, "random seed (same seed, same runs)")
		concurrency = fs.Int("concurrency", 1, "runs generated in parallel")
		spread      = fs.Duration("spread", 0, "spread run end times over this much past time (e.g. 72h)")
		verbose     = fs.Bool("v", false, "debug logging")
	)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	if fs.NArg() > 0 {
		log.Error("unexpected arguments", "args", fs.Args())
		return 2
	}
	opts := sim.Options{
		Rate: *rate, Count: *count, Duration: *duration, ErrorRatio: *errorRatio,
		Users: *users, Sessions: *sessions, Agents: *agents, Seed: *seed,
		Concurrency: *concurrency, Spread: *spread,
	}
	if err := opts.Validate(); err != nil {
		log.Error("invalid flags", "err", err)
		return 2
	}
	if *users <= 0 || *sessions <= 0 || *agents <= 0 || *concurrency <= 0 {
		log.Error("invalid flags: -users, -sessions, -agents and -concurrency must be positive")
		return 2
	}
	addr := *endpoint
	if addr == "" {
		addr = sim.DefaultAddress(*protocol)
	}

	// Export errors surface through the SDK's global handler.
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		log.Warn("export failed", "err", err)
	}))
	tp, counter, err := sim.NewTracerProvider(ctx, sim.Endpoint{
		Protocol: *protocol, Address: addr, Gzip: *gzip, Insecure: *insecure,
	})
	if err != nil {
		log.Error("cannot build exporter", "err", err)
		return 2
	}
	log.Info("sending runs", "protocol", *protocol, "endpoint", addr, "rate", *rate,
		"count", *count, "duration", *duration, "error_ratio", *errorRatio)

	start := time.Now()
	stats, runErr := sim.Run(ctx, tp, opts)
	// Flush with a fresh deadline: on SIGINT ctx is already done.
	flushCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := tp.Shutdown(flushCtx); err != nil {
		log.Warn("flush incomplete", "err", err)
	}
	elapsed := time.Since(start)
	if runErr != nil {
		log.Error("simulation failed", "err", runErr)
	}

	fmt.Fprintf(stdout, "runs=%d spans=%d sent=%d failed=%d failed_tools=%d elapsed=%s runs_per_s=%.1f spans_per_s=%.1f\n",
		stats.Runs, stats.Spans, counter.Exported(), counter.Failed(), stats.FailedTools,
		elapsed.Round(time.Millisecond), float64(stats.Runs)/elapsed.Seconds(), float64(counter.Exported())/elapsed.Seconds())
	if runErr != nil || counter.Failed() > 0 || counter.Exported() < stats.Spans {
		if err := counter.LastError(); err != nil {
			log.Error("not every span was delivered", "last_err", err)
		}
		return 1
	}
	return 0
}
