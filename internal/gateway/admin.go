package gateway

import (
	"context"
	"crypto/x509"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/kern-agents/trace-gateway/internal/dispatch"
)

// Metrics are the gateway's own Prometheus metrics.
type Metrics struct {
	Registry      *prometheus.Registry
	received      *prometheus.CounterVec
	rejected      *prometheus.CounterVec
	stored        prometheus.Counter
	batchSize     prometheus.Histogram
	batchDuration prometheus.Histogram
	batchErrors   prometheus.Counter

	// Fan-out, by destination.
	exported     *prometheus.CounterVec
	filtered     *prometheus.CounterVec
	exportFails  *prometheus.CounterVec
	retries      *prometheus.CounterVec
	deadLettered *prometheus.CounterVec
	backlog      *prometheus.GaugeVec
	lag          *prometheus.GaugeVec
	circuit      *prometheus.GaugeVec
	pluginUp     *prometheus.GaugeVec
	restarts     *prometheus.CounterVec
	mu           sync.Mutex
	lastRestarts map[string]uint64
	authRejected *prometheus.CounterVec
}

// NewMetrics registers the ingest metrics on a fresh registry.
func NewMetrics() *Metrics {
	r := prometheus.NewRegistry()
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := &Metrics{
		Registry: r,
		received: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kern_gateway_spans_received_total", Help: "Spans received, by transport.",
		}, []string{"transport"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kern_gateway_spans_rejected_total", Help: "Spans rejected, by reason.",
		}, []string{"reason"}),
		stored: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kern_gateway_spans_stored_total", Help: "Spans committed to the trace database.",
		}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "kern_gateway_write_batch_spans", Help: "Spans per write transaction.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 8),
		}),
		batchDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "kern_gateway_write_batch_seconds", Help: "Duration of write transactions.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2.5, 12),
		}),
		batchErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kern_gateway_write_batch_errors_total", Help: "Write transactions that failed.",
		}),
	}
	m.authRejected = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kern_gateway_auth_failures_total", Help: "Requests refused for a missing or unknown token, by transport and reason.",
	}, []string{"transport", "reason"})
	r.MustRegister(m.received, m.rejected, m.stored, m.batchSize, m.batchDuration, m.batchErrors, m.authRejected)

	dest := []string{"destination"}
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, append(dest, labels...))
	}
	gauge := func(name, help string) *prometheus.GaugeVec {
		return prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, dest)
	}
	m.exported = counter("kern_gateway_destination_spans_exported_total", "Spans the destination accepted.")
	m.filtered = counter("kern_gateway_destination_spans_filtered_total", "Spans the destination's filter or sampling did not send.")
	m.exportFails = counter("kern_gateway_destination_export_failures_total", "Export calls that failed, by kind (retryable or permanent).", "kind")
	m.retries = counter("kern_gateway_destination_export_retries_total", "Export calls scheduled again after a retryable failure.")
	m.deadLettered = counter("kern_gateway_destination_spans_dead_lettered_total", "Spans given up on and stored as dead letters.")
	m.backlog = gauge("kern_gateway_destination_backlog_spans", "Stored spans not yet delivered to the destination.")
	m.lag = gauge("kern_gateway_destination_lag_seconds", "Age of the oldest span not yet delivered to the destination (0 when none).")
	m.circuit = gauge("kern_gateway_destination_circuit_state", "Circuit breaker state: 0 closed, 1 half-open, 2 open.")
	m.pluginUp = gauge("kern_gateway_destination_plugin_up", "1 while the destination's plugin process runs.")
	m.restarts = counter("kern_gateway_destination_plugin_restarts_total", "Restarts of the destination's plugin process.")
	m.lastRestarts = map[string]uint64{}
	r.MustRegister(m.exported, m.filtered, m.exportFails, m.retries, m.deadLettered,
		m.backlog, m.lag, m.circuit, m.pluginUp, m.restarts)
	return m
}

var _ dispatch.Observer = (*Metrics)(nil)

// Exported implements dispatch.Observer.
func (m *Metrics) Exported(dest string, n int) { m.exported.WithLabelValues(dest).Add(float64(n)) }

// Filtered implements dispatch.Observer.
func (m *Metrics) Filtered(dest string, n int) { m.filtered.WithLabelValues(dest).Add(float64(n)) }

// ExportFailed implements dispatch.Observer.
func (m *Metrics) ExportFailed(dest string, permanent bool) {
	kind := "retryable"
	if permanent {
		kind = "permanent"
	}
	m.exportFails.WithLabelValues(dest, kind).Inc()
}

// Retried implements dispatch.Observer.
func (m *Metrics) Retried(dest string) { m.retries.WithLabelValues(dest).Inc() }

// DeadLettered implements dispatch.Observer.
func (m *Metrics) DeadLettered(dest string, n int) {
	m.deadLettered.WithLabelValues(dest).Add(float64(n))
}

// Backlog implements dispatch.Observer.
func (m *Metrics) Backlog(dest string, spans int64, lag time.Duration) {
	m.backlog.WithLabelValues(dest).Set(float64(spans))
	m.lag.WithLabelValues(dest).Set(lag.Seconds())
}

// CircuitState implements dispatch.Observer.
func (m *Metrics) CircuitState(dest string, s dispatch.State) {
	m.circuit.WithLabelValues(dest).Set(float64(s))
}

// PluginUp implements dispatch.Observer.
func (m *Metrics) PluginUp(dest string, up bool) {
	v := 0.0
	if up {
		v = 1
	}
	m.pluginUp.WithLabelValues(dest).Set(v)
}

// PluginRestarts implements dispatch.Observer: total is the plugin host's
// running count, turned into counter increments.
func (m *Metrics) PluginRestarts(dest string, total uint64) {
	m.mu.Lock()
	last, seen := m.lastRestarts[dest]
	m.lastRestarts[dest] = total
	m.mu.Unlock()
	switch {
	case !seen:
		m.restarts.WithLabelValues(dest).Add(float64(total))
	case total > last:
		m.restarts.WithLabelValues(dest).Add(float64(total - last))
	}
}

// DestinationRemoved implements dispatch.DestinationRemover: a removed
// destination's gauges go (its counters stay, as counters do), and a
// restarted one counts plugin restarts afresh.
func (m *Metrics) DestinationRemoved(dest string) {
	for _, g := range []*prometheus.GaugeVec{m.backlog, m.lag, m.circuit, m.pluginUp} {
		g.DeleteLabelValues(dest)
	}
	m.mu.Lock()
	delete(m.lastRestarts, dest)
	m.mu.Unlock()
}

var _ dispatch.DestinationRemover = (*Metrics)(nil)

// WatchChunks exports where the fan-out's chunks came from.
func (m *Metrics) WatchChunks(stats func() (memory, database uint64)) {
	for _, from := range []string{"memory", "database"} {
		m.Registry.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name:        "kern_gateway_fanout_chunks_total",
			Help:        "Export chunks destinations used, by where they came from: memory (built once for all, or from the spans just written) or database (read back by the destination).",
			ConstLabels: prometheus.Labels{"from": from},
		}, func() float64 {
			mem, db := stats()
			if from == "memory" {
				return float64(mem)
			}
			return float64(db)
		}))
	}
}

// AuthRejected counts a request refused by authentication (auth.Observer).
func (m *Metrics) AuthRejected(transport, reason string) {
	m.authRejected.WithLabelValues(transport, reason).Inc()
}

// WatchCertificate exports the expiry of the served TLS certificate.
func (m *Metrics) WatchCertificate(current func() *x509.Certificate) {
	m.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "kern_gateway_tls_certificate_expiry_timestamp_seconds",
		Help: "NotAfter of the TLS certificate in service, as a Unix time.",
	}, func() float64 { return float64(current().NotAfter.Unix()) }))
}

// SpansReceived counts spans decoded from a request.
func (m *Metrics) SpansReceived(transport string, n int) {
	m.received.WithLabelValues(transport).Add(float64(n))
}

// SpansRejected counts spans refused, by reason.
func (m *Metrics) SpansRejected(reason string, n int) {
	m.rejected.WithLabelValues(reason).Add(float64(n))
}

// BatchWritten records one write transaction.
func (m *Metrics) BatchWritten(n int, d time.Duration, err error) {
	m.batchDuration.Observe(d.Seconds())
	if err != nil {
		m.batchErrors.Inc()
		return
	}
	m.batchSize.Observe(float64(n))
	m.stored.Add(float64(n))
}

// adminHandler serves /metrics, /healthz, /readyz, POST /-/reload, the
// trace API and the trace explorer page.
func (g *Gateway) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(g.metrics.Registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if err := g.store.Ping(ctx); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("trace database not answering\n"))
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	// Reloads the config file like SIGHUP; behind the OTLP tokens when
	// there are any.
	mux.Handle("POST /-/reload", g.auth.AdminHTTP(http.HandlerFunc(g.serveReload)))
	mux.HandleFunc("/-/reload", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "use POST", http.StatusMethodNotAllowed)
	})
	// The trace API under /api/ (behind the same tokens) and the explorer
	// page at / (which asks for a token when the API wants one).
	mux.Handle("/", g.page)
	return mux
}
