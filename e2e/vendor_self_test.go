package e2e

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/kern-agents/trace-gateway/exporters/otlp"
	"github.com/kern-agents/trace-gateway/internal/sim"
	"github.com/kern-agents/trace-gateway/plugins"
)

// The fake vendor itself, driven by the otlp adapter the gateway's plugin
// runs, so that the fan-out scenarios rest on a vendor that behaves as
// described.
func TestFakeVendorModes(t *testing.T) {
	e2eOnly(t)
	t.Parallel()
	v := newVendor(t)
	exp := otlp.New()
	ctx := context.Background()
	if err := exp.Configure(ctx, map[string]any{"endpoint": v.URL(), "compression": "none", "timeout": "5s"}); err != nil {
		t.Fatal(err)
	}
	defer exp.Shutdown(ctx)
	td, stats, err := sim.CaptureTraces(ctx, sim.Options{Count: 3})
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for id := range spanIDs(td) {
		ids[id] = true
	}

	retryable := func(err error) bool {
		var r *plugins.RetryableError
		return errors.As(err, &r)
	}
	cases := []struct {
		mode      vendorMode
		check     func(error) bool
		wantCount int // times each span has been accepted after this step
	}{
		{vendorHealthy, func(err error) bool { return err == nil }, 1},
		{vendor429, func(err error) bool { d, ok := plugins.RetryAfter(err); return ok && d == 2*time.Second }, 1},
		{vendorDown503, retryable, 1},
		{vendorRefuse, retryable, 1},
		{vendorHealthy, func(err error) bool { return err == nil }, 2},
		{vendorSlow, func(err error) bool { return err == nil }, 3},
	}
	for _, tc := range cases {
		if tc.mode == vendor429 {
			v.Set429(2)
		} else {
			v.SetMode(tc.mode)
		}
		start := time.Now()
		err := exp.Export(ctx, td)
		if !tc.check(err) {
			t.Errorf("mode %v: Export = %v", tc.mode, err)
		}
		if tc.mode == vendorSlow && time.Since(start) < slowDelay {
			t.Errorf("slow vendor answered after %v", time.Since(start))
		}
		if got := v.Received(); len(got) != int(stats.Spans) || got[firstKey(ids)] != tc.wantCount {
			t.Errorf("mode %v: vendor holds %d spans (want %d), first one %d times (want %d)", tc.mode, len(got), stats.Spans, got[firstKey(ids)], tc.wantCount)
		}
	}
	if m := v.Missing(ids); m != 0 {
		t.Errorf("%d spans missing", m)
	}

	// One request in three fails.
	v.SetMode(vendorFlaky500)
	failed := 0
	for range 9 {
		if err := exp.Export(ctx, td); err != nil {
			if !retryable(err) {
				t.Errorf("flaky vendor: %v is not retryable", err)
			}
			failed++
		}
	}
	if failed != 3 {
		t.Errorf("flaky vendor failed %d of 9 exports, want 3", failed)
	}
	if f := v.Figures(); f.Duplicates != int(stats.Spans)*(3+6-1) {
		t.Errorf("duplicates = %d, want %d", f.Duplicates, int(stats.Spans)*8)
	}
}

func firstKey(m map[string]bool) string {
	for k := range m {
		return k
	}
	return ""
}
