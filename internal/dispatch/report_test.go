package dispatch

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/kern-agents/trace-gateway/internal/store"
	"github.com/kern-agents/trace-gateway/plugins"
)

// TestWorkerReportsReachTheDatabase: the circuit state, consecutive
// failures, retries and last error a worker sees are in the database (for
// `gateway status`), and the replica shows as stopped once it stops.
func TestWorkerReportsReachTheDatabase(t *testing.T) {
	eachStore(t, func(t *testing.T, s testStore) {
		var fail atomic.Bool
		fail.Store(true)
		f := newFake(func(int, ptrace.Traces) error {
			if fail.Load() {
				return plugins.Retryable(errors.New("connection refused by vendor.example"), 0)
			}
			return nil
		})
		p := fastPolicy()
		p.BreakerFailures, p.BreakerCoolDown = 3, 300*time.Millisecond
		opts := fastOptions(t)
		opts.Owner = "replica-1"
		d := New(s, []Destination{{Name: "d", Start: starter(f), Policy: p}}, opts)
		d.Start(context.Background())
		stopped := false
		t.Cleanup(func() {
			if !stopped {
				_ = d.Stop(context.Background())
			}
		})
		report := func() store.WorkerReport {
			st, err := s.Status(context.Background(), "d")
			if err != nil {
				t.Fatal(err)
			}
			if len(st.Workers) != 1 {
				return store.WorkerReport{}
			}
			return st.Workers[0]
		}
		waitFor(t, "a first report", 10*time.Second, func() bool { return report().Owner == "replica-1" })
		if r := report(); !r.Live || r.Circuit != store.CircuitClosed || r.Retries != 0 || r.LastError != "" {
			t.Fatalf("first report = %+v; want live, closed, nothing failed", r)
		}
		ids := write(t, s, 10, 5, time.Now())
		waitFor(t, "the open circuit in the database", 10*time.Second, func() bool { return report().Circuit == store.CircuitOpen })
		// Every failure so far was retried (the probes after each cool-down
		// fail too), and nothing succeeded in between.
		r := report()
		if !r.Live || r.Failures < 3 || r.Retries != int64(r.Failures) ||
			!strings.Contains(r.LastError, "connection refused by vendor.example") || time.Since(r.LastErrorAt) > time.Minute {
			t.Fatalf("report with the circuit open = %+v; want at least 3 failures, as many retries, and the error", r)
		}
		fail.Store(false) // the next probe succeeds
		waitFor(t, "delivery", 10*time.Second, func() bool { return f.has(ids) })
		waitFor(t, "the closed circuit in the database", 10*time.Second, func() bool { return report().Circuit == store.CircuitClosed })
		r = report()
		if r.Failures != 0 || r.Retries < 3 || !strings.Contains(r.LastError, "connection refused") || !r.Live {
			t.Fatalf("report after recovery = %+v; want no failures, the retries and last error kept", r)
		}
		retries := r.Retries
		if err := d.Stop(context.Background()); err != nil {
			t.Fatal(err)
		}
		stopped = true
		if r := report(); r.Live || r.Owner != "replica-1" || r.Retries != retries {
			t.Fatalf("report after Stop = %+v; want the replica shown as stopped", r)
		}
	})
}
