package mlflow

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"strings"
	"sync"

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/kern-agents/trace-gateway/exporters/internal/otlpsend"
	"github.com/kern-agents/trace-gateway/plugins"
)

// MaxStoreAttempts bounds how often one batch is sent while MLflow answers
// that storing it failed: the first answer and the next ones until this
// many are retryable, the last is permanent.
const MaxStoreAttempts = 5

// What MLflow's POST /v1/traces answers (mlflow/server/otel_api.py).
const (
	// 422 for a span MLflow cannot convert: resending cannot help.
	cannotConvert = "Cannot convert OpenTelemetry span to MLflow span"
	// 422 for any exception raised while storing the spans, transient
	// database errors included (3.6 to 3.x add ": Trace <id>: <error>").
	storeFailed = "Failed to log OpenTelemetry spans"
)

// errStoreFailed is MLflow answering that storing the spans failed: a
// database error, maybe transient, maybe not. Attempts are counted per
// batch by storeRetries.
type errStoreFailed struct{ detail string }

func (e *errStoreFailed) Error() string { return e.detail }

// classify reads the answers MLflow words its own way; nil leaves the
// others to the rules every adapter shares.
func classify(a otlpsend.Answer) error {
	switch {
	case a.Status == 501:
		// The tracking store raised NotImplementedError: a file store.
		return plugins.Permanent(fmt.Errorf("the MLflow server cannot store spans: it needs a database-backed "+
			"tracking store (mlflow server --backend-store-uri sqlite:///mlflow.db, or a PostgreSQL or MySQL URI), "+
			"not a file store (%s)", a.Detail))
	case a.Status == 422 && strings.Contains(a.Excerpt, storeFailed):
		return plugins.Retryable(&errStoreFailed{detail: a.Detail}, 0)
	case a.Status == 422 && strings.Contains(a.Excerpt, cannotConvert):
		return plugins.Permanent(fmt.Errorf("MLflow cannot convert a span of the batch (%s)", a.Detail))
	case a.Status == 422 && strings.Contains(a.Excerpt, ExperimentHeader):
		// FastAPI's answer for a missing required header.
		return plugins.Permanent(fmt.Errorf("MLflow requires the %s header; check experiment_id and headers (%s)",
			ExperimentHeader, a.Detail))
	}
	return nil
}

// storeRetries is a Sender that turns MLflow's "failed to log spans" into a
// permanent refusal once the same batch has had it MaxStoreAttempts times,
// so that a span MLflow can never store ends as a dead letter instead of
// being retried forever; a transient database error passes with a retry.
// A batch is known by its span ids (the host resends a batch as it was).
type storeRetries struct {
	otlpsend.Sender

	seed     maphash.Seed
	mu       sync.Mutex
	failures map[uint64]int
}

// maxTracked bounds how many failing batches are remembered; past it the
// counts start again (a batch gets a few more attempts, never unbounded).
const maxTracked = 1024

func withStoreRetries(s otlpsend.Sender) *storeRetries {
	return &storeRetries{Sender: s, seed: maphash.MakeSeed(), failures: map[uint64]int{}}
}

// Send implements otlpsend.Sender.
func (s *storeRetries) Send(ctx context.Context, td ptrace.Traces) error {
	err := s.Sender.Send(ctx, td)
	var failed *errStoreFailed
	isFailure := errors.As(err, &failed)
	s.mu.Lock()
	defer s.mu.Unlock()
	if !isFailure {
		if err == nil && len(s.failures) > 0 {
			delete(s.failures, s.key(td))
		}
		return err
	}
	key := s.key(td)
	n := s.failures[key] + 1
	if n >= MaxStoreAttempts {
		delete(s.failures, key)
		return plugins.Permanent(fmt.Errorf("MLflow failed to store these spans %d times: %w", n, failed))
	}
	if len(s.failures) >= maxTracked {
		clear(s.failures)
	}
	s.failures[key] = n
	return err
}

// key identifies a batch by its trace and span ids, in order.
func (s *storeRetries) key(td ptrace.Traces) uint64 {
	var h maphash.Hash
	h.SetSeed(s.seed)
	for _, rs := range td.ResourceSpans().All() {
		for _, ss := range rs.ScopeSpans().All() {
			for _, span := range ss.Spans().All() {
				tid, sid := span.TraceID(), span.SpanID()
				_, _ = h.Write(tid[:])
				_, _ = h.Write(sid[:])
			}
		}
	}
	return h.Sum64()
}
