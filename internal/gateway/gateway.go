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
	"sync"
	"time"

	"google.golang.org/grpc"

	"github.com/kern-agents/trace-gateway/internal/api"
	"github.com/kern-agents/trace-gateway/internal/batcher"
	"github.com/kern-agents/trace-gateway/internal/config"
	"github.com/kern-agents/trace-gateway/internal/convert"
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
}

// Gateway is a running gateway.
type Gateway struct {
	cfg     *config.Config
	log     *slog.Logger
	store   store.Store
	batcher *batcher.Batcher
	metrics *Metrics
	page    http.Handler // trace explorer page + API

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
	g.batcher = batcher.New(st, batcher.Options{
		MaxBatchSpans: cfg.Ingest.MaxBatchSpans,
		MaxDelay:      cfg.Ingest.MaxBatchDelay.D(),
		MaxQueueSpans: cfg.Ingest.MaxQueueSpans,
		Writers:       cfg.Ingest.Writers,
		Observer:      g.metrics,
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
	if err := g.listen(cfg, ropts); err != nil {
		g.closeListeners()
		_ = g.batcher.Close(ctx)
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
