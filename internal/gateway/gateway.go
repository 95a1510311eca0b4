// Package gateway wires the parts together: store, batcher, OTLP receivers,
// the HTTP server for API/page/metrics/health, and the fan-out.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os/exec"
	"sync"
	"time"

	"google.golang.org/grpc"

	"github.com/kern-agents/trace-gateway/internal/api"
	"github.com/kern-agents/trace-gateway/internal/batcher"
	"github.com/kern-agents/trace-gateway/internal/config"
	"github.com/kern-agents/trace-gateway/internal/convert"
	"github.com/kern-agents/trace-gateway/internal/dispatch"
	"github.com/kern-agents/trace-gateway/internal/pluginhost"
	"github.com/kern-agents/trace-gateway/internal/receiver"
	"github.com/kern-agents/trace-gateway/internal/store"
	"github.com/kern-agents/trace-gateway/internal/store/postgres"
	"github.com/kern-agents/trace-gateway/internal/store/sqlite"
	"github.com/kern-agents/trace-gateway/internal/web"
)

// Options are process-level settings that are not part of the config file.
type Options struct {
	Logger  *slog.Logger
	Version string
	// ShutdownTimeout bounds the graceful drain (default 30s).
	ShutdownTimeout time.Duration
	// PluginCommand, when set, builds the command serving a built-in
	// exporter (default: this binary run as `gateway plugin NAME`).
	PluginCommand func(name string) *exec.Cmd
}

// Gateway is a running gateway.
type Gateway struct {
	cfg     *config.Config
	log     *slog.Logger
	store   store.Store
	batcher *batcher.Batcher
	metrics *Metrics
	page    http.Handler // trace explorer page + API
	fanout  *dispatch.Dispatcher

	grpcSrv  *grpc.Server
	otlpHTTP *http.Server
	httpSrv  *http.Server
	addrs    Addrs
	wg       sync.WaitGroup
	serveErr chan error
}

// Addrs are the bound listen addresses (useful with port 0).
type Addrs struct{ OTLPGRPC, OTLPHTTP, HTTP string }

// OpenStore opens the configured trace database.
func OpenStore(ctx context.Context, s config.Storage) (store.Store, error) {
	opts := store.Options{DSN: s.DSN, Schema: s.Schema, TracesTable: s.TracesTable, SpansTable: s.SpansTable}
	switch s.Driver {
	case "postgres":
		return postgres.Open(ctx, opts)
	case "sqlite":
		return sqlite.Open(ctx, opts)
	default:
		return nil, fmt.Errorf("storage.driver %q: unknown", s.Driver)
	}
}

// Start opens the store, binds every listener and starts serving.
func Start(ctx context.Context, cfg *config.Config, opts Options) (*Gateway, error) {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	st, err := OpenStore(ctx, cfg.Storage)
	if err != nil {
		return nil, fmt.Errorf("open %s trace database: %w", cfg.Storage.Driver, err)
	}
	g := &Gateway{cfg: cfg, log: log, store: st, serveErr: make(chan error, 3)}
	g.metrics = NewMetrics()
	var writeObserver batcher.Observer = g.metrics
	if g.fanout, err = newFanout(st, cfg, opts, log, g.metrics); err != nil {
		_ = st.Close()
		return nil, err
	}
	if g.fanout != nil {
		// A committed batch wakes idle fan-out workers.
		writeObserver = batchObservers{g.metrics, g.fanout}
	}
	g.batcher = batcher.New(st, batcher.Options{
		MaxBatchSpans: cfg.Ingest.MaxBatchSpans,
		MaxDelay:      cfg.Ingest.MaxBatchDelay.D(),
		MaxQueueSpans: cfg.Ingest.MaxQueueSpans,
		Writers:       cfg.Ingest.Writers,
		Observer:      writeObserver,
		Logger:        log,
	})
	ropts := receiver.Options{
		MaxBodyBytes: int64(cfg.Ingest.MaxRequestBytes),
		Limits: convert.Limits{
			MaxAttrValueBytes: int(cfg.Ingest.MaxAttrValueBytes),
			MaxAttributes:     cfg.Ingest.MaxAttributes,
		},
		Logger:   log,
		Observer: g.metrics,
	}
	page, err := web.New(api.New(st, api.Options{Logger: log}), web.Options{})
	if err != nil {
		_ = g.batcher.Close(ctx)
		_ = st.Close()
		return nil, fmt.Errorf("trace explorer: %w", err)
	}
	g.page = page
	// The fan-out starts before the receivers, so that every span they
	// accept is after each destination's starting point.
	if g.fanout != nil {
		g.fanout.Start(ctx)
	}
	if err := g.listen(cfg, ropts); err != nil {
		g.closeListeners()
		_ = g.batcher.Close(ctx)
		if g.fanout != nil {
			_ = g.fanout.Stop(ctx)
		}
		_ = st.Close()
		return nil, err
	}
	log.Info("gateway ready", "otlp_grpc", g.addrs.OTLPGRPC, "otlp_http", g.addrs.OTLPHTTP,
		"http", g.addrs.HTTP, "storage", cfg.Storage.Driver)
	return g, nil
}

func (g *Gateway) listen(cfg *config.Config, ropts receiver.Options) error {
	type server struct {
		addr  string
		slot  *string
		serve func(net.Listener) error
	}
	var servers []server
	if cfg.Server.OTLPGRPC != "" {
		g.grpcSrv = receiver.NewGRPCServer(ropts, g.batcher)
		servers = append(servers, server{cfg.Server.OTLPGRPC, &g.addrs.OTLPGRPC, g.grpcSrv.Serve})
	}
	if cfg.Server.OTLPHTTP != "" {
		g.otlpHTTP = newHTTPServer(receiver.NewHTTPHandler(ropts, g.batcher))
		servers = append(servers, server{cfg.Server.OTLPHTTP, &g.addrs.OTLPHTTP, g.otlpHTTP.Serve})
	}
	if cfg.Server.HTTP != "" {
		g.httpSrv = newHTTPServer(g.adminHandler())
		servers = append(servers, server{cfg.Server.HTTP, &g.addrs.HTTP, g.httpSrv.Serve})
	}
	lns := make([]net.Listener, 0, len(servers))
	for _, s := range servers {
		ln, err := net.Listen("tcp", s.addr)
		if err != nil {
			for _, l := range lns {
				_ = l.Close()
			}
			return fmt.Errorf("listen on %s: %w", s.addr, err)
		}
		lns = append(lns, ln)
		*s.slot = ln.Addr().String()
	}
	for i, s := range servers {
		ln, serve := lns[i], s.serve
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			if err := serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, grpc.ErrServerStopped) {
				g.serveErr <- fmt.Errorf("serve %s: %w", ln.Addr(), err)
			}
		}()
	}
	return nil
}

// newHTTPServer returns a server with slowloris-safe timeouts.
func newHTTPServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
	}
}

// Addrs returns the bound addresses.
func (g *Gateway) Addrs() Addrs { return g.addrs }

// Store returns the trace database.
func (g *Gateway) Store() store.Store { return g.store }

// Err reports a listener that stopped on its own.
func (g *Gateway) Err() <-chan error { return g.serveErr }

func (g *Gateway) closeListeners() {
	if g.grpcSrv != nil {
		g.grpcSrv.Stop()
	}
	for _, s := range []*http.Server{g.otlpHTTP, g.httpSrv} {
		if s != nil {
			_ = s.Close()
		}
	}
}

// Shutdown stops accepting, writes everything already accepted, then closes
// the store. Requests in flight get their answer.
func (g *Gateway) Shutdown(ctx context.Context) error {
	var errs []error
	// Stop the receivers first: in-flight requests finish (their spans are in
	// the batcher, which keeps writing until they are committed).
	var wg sync.WaitGroup
	if g.grpcSrv != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			done := make(chan struct{})
			go func() { g.grpcSrv.GracefulStop(); close(done) }()
			select {
			case <-done:
			case <-ctx.Done():
				g.grpcSrv.Stop()
			}
		}()
	}
	if g.otlpHTTP != nil {
		if err := g.otlpHTTP.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("stop OTLP/HTTP: %w", err))
		}
	}
	wg.Wait()
	if err := g.batcher.Close(ctx); err != nil {
		errs = append(errs, fmt.Errorf("drain write queue: %w", err))
	}
	// Undelivered spans stay in the database; the fan-out hands its claims
	// back and closes the plugins before the store goes.
	if g.fanout != nil {
		if err := g.fanout.Stop(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	if g.httpSrv != nil {
		if err := g.httpSrv.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("stop HTTP: %w", err))
		}
	}
	g.wg.Wait()
	if err := g.store.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close store: %w", err))
	}
	return errors.Join(errs...)
}

// Run starts the gateway and serves until ctx is cancelled, then drains.
func Run(ctx context.Context, cfg *config.Config, opts Options) error {
	g, err := Start(ctx, cfg, opts)
	if err != nil {
		return err
	}
	var runErr error
	select {
	case <-ctx.Done():
		g.log.Info("shutting down: draining accepted spans")
	case runErr = <-g.serveErr:
		g.log.Error("listener failed, shutting down", "err", runErr)
	}
	timeout := opts.ShutdownTimeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	sctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := g.Shutdown(sctx); err != nil {
		return errors.Join(runErr, err)
	}
	g.log.Info("gateway stopped cleanly")
	return runErr
}

// newFanout builds the dispatcher for cfg's destinations and retention
// (nil when the store has no delivery log).
func newFanout(st store.Store, cfg *config.Config, opts Options, log *slog.Logger, m *Metrics) (*dispatch.Dispatcher, error) {
	dl, ok := st.(store.DeliveryLog)
	if !ok {
		if len(cfg.Destinations) > 0 || cfg.Storage.Retention > 0 {
			return nil, fmt.Errorf("the %s store has no delivery log: destinations and retention need one", cfg.Storage.Driver)
		}
		return nil, nil
	}
	dests := make([]dispatch.Destination, 0, len(cfg.Destinations))
	for _, d := range cfg.Destinations {
		policy := dispatch.PolicyFromConfig(d)
		spec := pluginhost.Spec{
			Name:           d.Name,
			Plugin:         d.Plugin,
			SHA256:         d.SHA256,
			Config:         d.Config,
			Logger:         log,
			ExportTimeout:  policy.Timeout,
			BuiltinCommand: opts.PluginCommand,
		}
		dests = append(dests, dispatch.Destination{
			Name:   d.Name,
			Policy: policy,
			Start: func(ctx context.Context) (dispatch.Exporter, error) {
				p, err := pluginhost.Start(ctx, spec)
				if err != nil {
					return nil, err
				}
				return p, nil
			},
		})
	}
	pruner, _ := st.(store.Pruner)
	return dispatch.New(dl, dests, dispatch.Options{
		Logger:    log,
		Observer:  m,
		Retention: cfg.Storage.Retention.D(),
		Pruner:    pruner,
	}), nil
}

// batchObservers fans one batcher observation out to several observers.
type batchObservers []batcher.Observer

func (o batchObservers) BatchWritten(n int, d time.Duration, err error) {
	for _, x := range o {
		x.BatchWritten(n, d, err)
	}
}
