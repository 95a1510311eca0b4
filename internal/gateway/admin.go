package gateway

import (
	"context"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
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
	r.MustRegister(m.received, m.rejected, m.stored, m.batchSize, m.batchDuration, m.batchErrors)
	return m
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

// adminHandler serves /metrics, /healthz, /readyz, the trace API and the
// trace explorer page.
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
	// The trace API under /api/ and the explorer page at /.
	mux.Handle("/", g.page)
	return mux
}
