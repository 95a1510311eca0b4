// Package gateway wires the parts together: store, batcher, OTLP receivers,
// the HTTP server for API/page/metrics/health, and the fan-out.
package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os/exec"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/kern-agents/trace-gateway/internal/api"
	"github.com/kern-agents/trace-gateway/internal/auth"
	"github.com/kern-agents/trace-gateway/internal/batcher"
	"github.com/kern-agents/trace-gateway/internal/config"
	"github.com/kern-agents/trace-gateway/internal/convert"
	"github.com/kern-agents/trace-gateway/internal/dispatch"
	"github.com/kern-agents/trace-gateway/internal/limits"
	"github.com/kern-agents/trace-gateway/internal/model"
	"github.com/kern-agents/trace-gateway/internal/pluginhost"
	"github.com/kern-agents/trace-gateway/internal/ratelimit"
	"github.com/kern-agents/trace-gateway/internal/receiver"
	"github.com/kern-agents/trace-gateway/internal/store"
	"github.com/kern-agents/trace-gateway/internal/store/postgres"
	"github.com/kern-agents/trace-gateway/internal/store/sqlite"
	"github.com/kern-agents/trace-gateway/internal/tlsreload"
	"github.com/kern-agents/trace-gateway/internal/web"
)

// Options are process-level settings that are not part of the config file.
type Options struct {
	Logger  *slog.Logger
	Version string
	// ShutdownTimeout bounds the graceful drain (default 30s).
	ShutdownTimeout time.Duration
	// Reload, when it delivers, makes Run re-read the config with
	// LoadConfig and apply what can change live (auth tokens, rate limits,
	// TLS files, destinations); other changes are logged as needing a
	// restart. LoadConfig also serves POST /-/reload on server.http.
	Reload     <-chan struct{}
	LoadConfig func() (*config.Config, error)
	// PluginCommand, when set, builds the command serving a built-in
	// exporter (default: this binary run as `gateway plugin NAME`).
	PluginCommand func(name string) *exec.Cmd
}

// Gateway is a running gateway.
type Gateway struct {
	cfg     *config.Config // as started: what cannot change live
	opts    Options
	log     *slog.Logger
	store   store.Store
	batcher *batcher.Batcher
	metrics *Metrics
	page    http.Handler // trace explorer page + API
	fanout  *dispatch.Dispatcher

	reloadMu sync.Mutex           // one reload at a time
	dests    []config.Destination // the destinations running now

	handoffMu sync.Mutex
	handoffs  []*handoff // plugins started ahead of their workers

	auth    *auth.Authenticator
	limiter *ratelimit.Limiter
	tls     *tlsreload.Reloader // nil without server.tls

	grpcSrv  *grpc.Server
	otlpHTTP *http.Server
	httpSrv  *http.Server
	pprofSrv *http.Server
	addrs    Addrs
	wg       sync.WaitGroup
	serveErr chan error
}

// Addrs are the bound listen addresses (useful with port 0).
type Addrs struct{ OTLPGRPC, OTLPHTTP, HTTP, Pprof string }

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
	g := &Gateway{cfg: cfg, opts: opts, log: log, store: st, serveErr: make(chan error, 3), dests: cfg.Destinations}
	g.metrics = NewMetrics()
	g.auth = auth.New(cfg.Server.Auth.AuthTokens(), auth.WithObserver(g.metrics.AuthRejected))
	g.limiter = ratelimit.New(rateLimits(cfg))
	if cfg.Server.TLS.CertFile != "" {
		g.tls, err = tlsreload.New(tlsreload.Options{
			CertFile: cfg.Server.TLS.CertFile, KeyFile: cfg.Server.TLS.KeyFile,
			ClientCAFile: cfg.Server.TLS.ClientCAFile, RequireClientCert: cfg.Server.TLS.RequireClientCert,
			Interval: cfg.Server.TLS.ReloadInterval.D(), Logger: log,
		})
		if err != nil {
			_ = st.Close()
			return nil, fmt.Errorf("server.tls: %w", err)
		}
		g.metrics.WatchCertificate(g.tls.Certificate)
	}
	var writeObserver batcher.Observer = g.metrics
	if g.fanout, g.handoffs, err = newFanout(ctx, st, cfg, opts, log, g.metrics); err != nil {
		g.closeTLS()
		_ = st.Close()
		return nil, err
	}
	if g.fanout != nil {
		// A committed batch wakes idle fan-out workers.
		writeObserver = batchObservers{g.metrics, g.fanout}
		g.metrics.WatchChunks(g.fanout.ChunkStats)
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
		Logger:             log,
		Observer:           g.metrics,
		MaxSpansPerRequest: cfg.Ingest.MaxSpansPerRequest,
		RateLimiter:        g.limiter,
	}
	// The API shares the OTLP tokens (g.auth, updated on reload): a
	// tenant's token reads its own tenant's traces, an admin token all.
	page, err := web.New(api.New(st, api.Options{Logger: log, Auth: g.auth}), web.Options{})
	if err != nil {
		_ = g.batcher.Close(ctx)
		closeHandoffs(ctx, g.handoffs)
		g.closeTLS()
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
		g.closeTLS()
		if g.fanout != nil {
			_ = g.fanout.Stop(ctx)
		}
		closeHandoffs(ctx, g.handoffs)
		_ = st.Close()
		return nil, err
	}
	log.Info("gateway ready", "otlp_grpc", g.addrs.OTLPGRPC, "otlp_http", g.addrs.OTLPHTTP,
		"http", g.addrs.HTTP, "storage", cfg.Storage.Driver,
		"auth", g.auth.Enabled(), "tls", g.tls != nil, "pprof", g.addrs.Pprof)
	return g, nil
}

// closeTLS stops watching the TLS files.
func (g *Gateway) closeTLS() {
	if g.tls != nil {
		_ = g.tls.Close()
	}
}

// rateLimits gives every tenant its own bucket: its override, or the default.
func rateLimits(cfg *config.Config) (ratelimit.Limit, map[string]ratelimit.Limit) {
	def := ratelimit.Limit{SpansPerSecond: cfg.Ingest.RateLimit.SpansPerSecond, Burst: cfg.Ingest.RateLimit.Burst}
	tenants := map[string]ratelimit.Limit{}
	for _, t := range cfg.Server.Auth.Tokens {
		tenants[t.Tenant] = ratelimit.Limit{} // the default, in a bucket of its own
	}
	for _, o := range cfg.Ingest.TenantRateLimits {
		tenants[o.Tenant] = ratelimit.Limit{SpansPerSecond: o.SpansPerSecond, Burst: o.Burst}
	}
	return def, tenants
}

func grpcLimits(c config.GRPCConn) limits.GRPC {
	l := limits.DefaultGRPC()
	l.MaxConcurrentStreams = uint32(c.MaxConcurrentStreams)
	l.MaxConnectionIdle = c.MaxConnectionIdle.D()
	l.MaxConnectionAge = c.MaxConnectionAge.D()
	l.MaxConnectionAgeGrace = c.MaxConnectionAgeGrace.D()
	l.KeepaliveTime = c.KeepaliveTime.D()
	l.KeepaliveTimeout = c.KeepaliveTimeout.D()
	return l
}

func (g *Gateway) listen(cfg *config.Config, ropts receiver.Options) error {
	type server struct {
		addr  string
		slot  *string
		tls   *tls.Config // wraps the listener (HTTP servers; gRPC has its own credentials)
		serve func(net.Listener) error
	}
	var otlpTLS, adminTLS *tls.Config
	if g.tls != nil {
		otlpTLS, adminTLS = g.tls.TLSConfig(), g.tls.TLSConfigWithoutClientCerts()
	}
	var servers []server
	if cfg.Server.OTLPGRPC != "" {
		gopts := append(g.auth.ServerOptions(), limits.GRPCServerOptions(grpcLimits(cfg.Server.GRPC))...)
		if otlpTLS != nil {
			gopts = append(gopts, grpc.Creds(credentials.NewTLS(otlpTLS)))
		}
		g.grpcSrv = receiver.NewGRPCServer(ropts, g.batcher, gopts...)
		servers = append(servers, server{cfg.Server.OTLPGRPC, &g.addrs.OTLPGRPC, nil, g.grpcSrv.Serve})
	}
	if cfg.Server.OTLPHTTP != "" {
		g.otlpHTTP = newHTTPServer(g.auth.HTTP(receiver.NewHTTPHandler(ropts, g.batcher)))
		servers = append(servers, server{cfg.Server.OTLPHTTP, &g.addrs.OTLPHTTP, otlpTLS, g.otlpHTTP.Serve})
	}
	if cfg.Server.HTTP != "" {
		g.httpSrv = newHTTPServer(g.adminHandler())
		servers = append(servers, server{cfg.Server.HTTP, &g.addrs.HTTP, adminTLS, g.httpSrv.Serve})
	}
	if cfg.Server.Pprof != "" {
		g.pprofSrv = newHTTPServer(pprofHandler())
		g.pprofSrv.WriteTimeout = 0 // profiles and traces stream for as long as asked
		servers = append(servers, server{cfg.Server.Pprof, &g.addrs.Pprof, nil, g.pprofSrv.Serve})
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
		*s.slot = ln.Addr().String()
		ln = limits.Listener(ln, cfg.Server.MaxConnections)
		if s.tls != nil {
			ln = tls.NewListener(ln, s.tls)
		}
		lns = append(lns, ln)
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

// pprofHandler serves net/http/pprof; it is only mounted on server.pprof.
func pprofHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
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
	for _, s := range []*http.Server{g.otlpHTTP, g.httpSrv, g.pprofSrv} {
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
	g.handoffMu.Lock()
	closeHandoffs(ctx, g.handoffs)
	g.handoffMu.Unlock()
	if g.httpSrv != nil {
		if err := g.httpSrv.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("stop HTTP: %w", err))
		}
	}
	if g.pprofSrv != nil {
		_ = g.pprofSrv.Close() // a profile in progress need not finish
	}
	g.wg.Wait()
	g.closeTLS()
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
wait:
	for {
		select {
		case <-ctx.Done():
			g.log.Info("shutting down: draining accepted spans")
			break wait
		case runErr = <-g.serveErr:
			g.log.Error("listener failed, shutting down", "err", runErr)
			break wait
		case <-opts.Reload:
			if opts.LoadConfig != nil {
				_, _ = g.reloadFromFile(ctx) // the outcome is logged
			}
		}
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
// (nil when the store has no delivery log). Every destination's plugin is
// started first: a plugin that refuses its config, or a plugin setting that
// names nothing runnable, fails the start with config.Errors located as
// `gateway validate` reports them, since no retry can fix either. A plugin
// that fails otherwise (crashed, timed out) is retried by its worker in the
// background while the gateway runs.
func newFanout(ctx context.Context, st store.Store, cfg *config.Config, opts Options, log *slog.Logger, m *Metrics) (*dispatch.Dispatcher, []*handoff, error) {
	dl, ok := st.(store.DeliveryLog)
	if !ok {
		if len(cfg.Destinations) > 0 || cfg.Storage.Retention > 0 {
			return nil, nil, fmt.Errorf("the %s store has no delivery log: destinations and retention need one", cfg.Storage.Driver)
		}
		return nil, nil, nil
	}
	started, errs := startPlugins(ctx, cfg.Destinations, opts, log)
	hs := make([]*handoff, len(started))
	var bad config.Errors
	for i, p := range started {
		hs[i] = newHandoff(p)
		var se *pluginhost.StartError
		if errors.As(errs[i], &se) && se.Permanent() {
			bad = append(bad, destinationErrors(cfg, i, errs[i])...)
		}
	}
	if len(bad) > 0 {
		closeHandoffs(ctx, hs)
		return nil, nil, fmt.Errorf("destinations cannot start: %w", bad)
	}
	dests := make([]dispatch.Destination, 0, len(cfg.Destinations))
	for i, d := range cfg.Destinations {
		dests = append(dests, fanoutDestination(d, opts, log, hs[i]))
	}
	pruner, _ := st.(store.Pruner)
	return dispatch.New(dl, dests, dispatch.Options{
		Logger:    log,
		Observer:  m,
		Retention: cfg.Storage.Retention.D(),
		Pruner:    pruner,
	}), hs, nil
}

// pluginSpec is how destination d's plugin is started.
func pluginSpec(d config.Destination, opts Options, log *slog.Logger) pluginhost.Spec {
	return pluginhost.Spec{
		Name:           d.Name,
		Plugin:         d.Plugin,
		SHA256:         d.SHA256,
		Config:         d.Config,
		Logger:         log,
		ExportTimeout:  dispatch.PolicyFromConfig(d).Timeout,
		BuiltinCommand: opts.PluginCommand,
	}
}

// fanoutDestination is d as the dispatcher runs it. started holds the
// plugin already running for d, if any (the gateway's start and a reload
// start plugins before they change anything); the first start takes it.
func fanoutDestination(d config.Destination, opts Options, log *slog.Logger, started *handoff) dispatch.Destination {
	spec := pluginSpec(d, opts, log)
	return dispatch.Destination{
		Name:   d.Name,
		Policy: dispatch.PolicyFromConfig(d),
		Start: func(ctx context.Context) (dispatch.Exporter, error) {
			if p := started.take(); p != nil {
				return p, nil
			}
			p, err := pluginhost.Start(ctx, spec)
			if err != nil {
				return nil, err
			}
			return p, nil
		},
	}
}

// batchObservers fans one batcher observation out to several observers.
type batchObservers []batcher.Observer

func (o batchObservers) BatchWritten(n int, d time.Duration, err error) {
	for _, x := range o {
		x.BatchWritten(n, d, err)
	}
}

// SpansLogged passes written delivery-log rows to the observers that want
// them (the fan-out builds their exports from memory).
func (o batchObservers) SpansLogged(spans []model.Span, ids []string) {
	for _, x := range o {
		if lo, ok := x.(batcher.LogObserver); ok {
			lo.SpansLogged(spans, ids)
		}
	}
}
