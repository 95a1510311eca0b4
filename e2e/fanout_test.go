package e2e

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kern-agents/trace-gateway/internal/store"
)

// Faults on the fan-out path: destinations served by the built-in otlp
// adapter, sending to fake vendors on loopback.

// destinationEngine are the delivery settings every destination in these
// tests gets, shorter than the defaults so that the suite runs in minutes:
// retries back off to 2 s at most and the circuit breaker probes again after
// 2 s (defaults 30 s each), so a recovered vendor is reached within seconds;
// a claim's lease is 5 s (default 30 s), so after a crash the restarted
// gateway takes over the dead one's claim within seconds.
var destinationEngine = map[string]any{
	"retry":           map[string]any{"initial": "200ms", "max": "2s"},
	"circuit_breaker": map[string]any{"failures": 5, "cool_down": "2s"},
	"lease":           "5s",
}

// fanout is one gateway with destinations, its database and its load.
type fanout struct {
	db      dbTarget
	gw      *gatewayProc
	load    *loadGen
	vendors map[string]*fakeVendor
	names   []string
	started time.Time
}

func startFanout(t *testing.T, db dbTarget, vendors map[string]*fakeVendor, lo loadOptions) *fanout {
	t.Helper()
	f := &fanout{db: db, vendors: vendors}
	var dests []destination
	for name := range vendors {
		f.names = append(f.names, name)
	}
	slices.Sort(f.names)
	for _, name := range f.names {
		dests = append(dests, destination{Name: name, Endpoint: vendors[name].URL(), Extra: destinationEngine})
	}
	f.gw = newGateway(t, gatewayConfig{DB: db, Destinations: dests})
	f.started = time.Now()
	f.load = startLoad(t, f.gw, lo)
	return f
}

// fanoutFigures are one scenario's counts.
type fanoutFigures struct {
	Load    loadReport
	Store   storeFigures
	Vendors map[string]vendorFigures
	Drain   time.Duration // from the end of the load until every vendor had everything
}

func (f fanoutFigures) String() string {
	s := fmt.Sprintf("%s; %s; delivery drained %v after the load stopped", f.Load, f.Store, f.Drain.Round(time.Millisecond))
	names := make([]string, 0, len(f.Vendors))
	for n := range f.Vendors {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		s += fmt.Sprintf("; vendor %s: %s", n, f.Vendors[n])
	}
	return s
}

// finish stops the load, waits (at most drain) until every vendor has
// received every stored span, stops the gateway and checks the database.
func (f *fanout) finish(t *testing.T, drain time.Duration) fanoutFigures {
	t.Helper()
	f.load.Stop(2 * time.Minute)
	stopped := time.Now()
	rep := f.load.Report()
	checkLoad(t, rep)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := openStore(ctx, f.db)
	if err != nil {
		t.Fatalf("open the trace database: %v", err)
	}
	stored, err := storedIDs(ctx, st)
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(drain)
	for {
		missing := map[string]int{}
		for _, n := range f.names {
			if m := f.vendors[n].Missing(stored); m > 0 {
				missing[n] = m
			}
		}
		if len(missing) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("%v after the load stopped, destinations still miss stored spans: %v (of %d)", drain, missing, len(stored))
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	drained := time.Since(stopped)
	refused := 0 // spans a vendor refuses for good: they alone may be dead letters
	for _, n := range f.names {
		refused += len(f.vendors[n].Refused())
	}
	if n := f.gw.mustMetric("kern_gateway_destination_spans_dead_lettered_total"); n != float64(refused) {
		t.Errorf("%v spans were dead-lettered; the vendors refuse %d for good, every other fault here is transient", n, refused)
	}
	if n := f.gw.mustMetric("kern_gateway_fanout_chunks_total"); n == 0 {
		t.Error("kern_gateway_fanout_chunks_total counts no chunk after every span was delivered")
	}
	// One plugin process per destination, and none left after a clean stop.
	plugins := f.gw.pluginPids("otlp")
	if len(plugins) != len(f.names) {
		t.Errorf("%d destinations but plugin processes %v", len(f.names), plugins)
	}
	if err := f.gw.Term(time.Minute); err != nil {
		t.Errorf("gateway exit after SIGTERM: %v", err)
	}
	for _, pid := range plugins {
		deadline := time.Now().Add(10 * time.Second)
		for syscall.Kill(pid, 0) == nil && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if syscall.Kill(pid, 0) == nil {
			t.Errorf("plugin process %d still runs after the gateway stopped", pid)
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	figs := fanoutFigures{Load: rep, Vendors: map[string]vendorFigures{}, Drain: drained}
	figs.Store = checkStored(t, readDB(t, f.db), f.load.Acked(), f.load.Sent())
	for _, n := range f.names {
		v := f.vendors[n]
		figs.Vendors[n] = v.Figures()
		foreign := 0
		for id := range v.Received() {
			if !stored[id] {
				foreign++
			}
		}
		if foreign > 0 {
			t.Errorf("vendor %s received %d spans that are not stored", n, foreign)
		}
		if b := v.Figures().BadBodies; b > 0 {
			t.Errorf("vendor %s got %d undecodable exports", n, b)
		}
	}
	return figs
}

// fanoutLoad is a moderate continuous load: the point is the fan-out, and
// several scenarios share two cores.
var fanoutLoad = loadOptions{HTTPSenders: 2, GRPCSenders: 1, TracesPerRequest: 3, Pause: 50 * time.Millisecond}

// (a) The vendor is down (connection refused) for 30 s, then back.
func TestFanOutVendorDown(t *testing.T) {
	e2eOnly(t)
	t.Parallel()
	v := newVendor(t)
	f := startFanout(t, postgresDB(t), map[string]*fakeVendor{"vendor": v}, fanoutLoad)
	f.load.waitAcked(500, time.Minute)
	v.SetMode(vendorRefuse)
	downAt := f.load.AckedCount()
	time.Sleep(30 * time.Second)
	during := f.load.AckedCount() - downAt
	failed := f.gw.mustMetric("kern_gateway_destination_export_failures_total")
	backlog := f.gw.mustMetric("kern_gateway_destination_backlog_spans")
	v.SetMode(vendorHealthy)
	time.Sleep(2 * time.Second)
	figs := f.finish(t, 90*time.Second)
	if during == 0 {
		t.Error("ingest stopped while the vendor was down")
	}
	if failed == 0 {
		t.Error("no export failed while the vendor refused connections; the outage was not exercised")
	}
	t.Logf("FIGURES %s: vendor refused connections 30s, %d spans acknowledged meanwhile, %v failed exports and a backlog of %v spans (metrics, sampled every 5s) at its end; %s",
		t.Name(), during, failed, backlog, figs)
}

// (b) The vendor answers 429 with Retry-After for a while: the gateway waits
// as told and delivers everything afterwards.
func TestFanOutVendorRateLimited(t *testing.T) {
	e2eOnly(t)
	t.Parallel()
	v := newVendor(t)
	f := startFanout(t, postgresDB(t), map[string]*fakeVendor{"vendor": v}, fanoutLoad)
	f.load.waitAcked(500, time.Minute)
	const retryAfter, period = 2, 8 * time.Second
	v.Set429(retryAfter)
	// The window is counted from the first 429 the gateway met, however
	// long a busy machine takes to make that export.
	first := v.Requests()
	deadline := time.Now().Add(time.Minute)
	for v.Requests() == first && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if v.Requests() == first {
		t.Fatal("no export reached the vendor in a minute of answering 429")
	}
	before := v.Requests()
	time.Sleep(period)
	limited := v.Requests() - before
	v.SetMode(vendorHealthy)
	figs := f.finish(t, 60*time.Second)
	// One worker per destination honouring Retry-After: 2 makes about
	// period/2 attempts; allow twice that for timing slack.
	if maxTries := 2 * (int(period/time.Second)/retryAfter + 1); limited > maxTries {
		t.Errorf("%d exports in %v of 429 with Retry-After: %d; honouring it allows about %d", limited, period, retryAfter, maxTries)
	}
	t.Logf("FIGURES %s: %d exports during %v of 429 (Retry-After: %d); %s", t.Name(), limited, period, retryAfter, figs)
}

// (c) The vendor fails one request in three with 500.
func TestFanOutVendorFlaky(t *testing.T) {
	e2eOnly(t)
	t.Parallel()
	v := newVendor(t)
	v.SetMode(vendorFlaky500)
	f := startFanout(t, postgresDB(t), map[string]*fakeVendor{"vendor": v}, fanoutLoad)
	f.load.waitAcked(500, time.Minute)
	time.Sleep(8 * time.Second)
	figs := f.finish(t, 60*time.Second)
	if figs.Vendors["vendor"].Answers[500] == 0 {
		t.Error("the vendor never answered 500; the scenario did not happen")
	}
	t.Logf("FIGURES %s: %s", t.Name(), figs)
}

// (c2) The vendor answers 400 to every export that holds one invalid span,
// as vendors reject a whole request for one bad span: the gateway halves the
// refused batches until that span alone is a dead letter; the vendor gets
// every other span and the other destination everything.
func TestFanOutVendorRefusesOneSpan(t *testing.T) {
	e2eOnly(t)
	t.Parallel()
	picky, other := newVendor(t), newVendor(t)
	db := postgresDB(t)
	f := startFanout(t, db, map[string]*fakeVendor{"picky": picky, "other": other}, fanoutLoad)
	f.load.waitAcked(500, time.Minute)
	picky.RefuseOneSpan()
	time.Sleep(8 * time.Second)
	figs := f.finish(t, 60*time.Second)
	poison := picky.Refused()
	if len(poison) != 1 {
		t.Fatal("the vendor never refused a span; the scenario did not happen")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := openStore(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	letters, err := st.(store.DeliveryLog).DeadLetters(ctx, store.DeadLetterFilter{})
	if err != nil {
		t.Fatal(err)
	}
	dead := map[string]bool{}
	for _, l := range letters {
		if l.Destination != "picky" || !strings.Contains(l.Reason, "400") {
			t.Errorf("dead letter for %q: %q", l.Destination, l.Reason)
		}
		for _, id := range l.SpanIDs {
			dead[id] = true
		}
	}
	if !maps.Equal(dead, poison) {
		t.Errorf("dead letters hold %v, want only the refused span %v", dead, poison)
	}
	for id := range poison {
		if other.Received()[id] == 0 {
			t.Errorf("the other destination did not get span %s", id)
		}
	}
	t.Logf("FIGURES %s: %d exports answered 400 while isolating one span; %s", t.Name(), figs.Vendors["picky"].Answers[400], figs)
}

// lagStats are delivery lags (acknowledgement → first receipt) of one vendor.
type lagStats struct {
	N             int
	P50, P95, Max time.Duration
}

func (l lagStats) String() string {
	return fmt.Sprintf("%d spans, lag p50 %v p95 %v max %v", l.N, l.P50.Round(time.Millisecond), l.P95.Round(time.Millisecond), l.Max.Round(time.Millisecond))
}

func deliveryLag(acked map[string]time.Time, first map[string]time.Time) lagStats {
	var lags []time.Duration
	for id, at := range acked {
		if got, ok := first[id]; ok {
			lags = append(lags, max(got.Sub(at), 0))
		}
	}
	if len(lags) == 0 {
		return lagStats{}
	}
	slices.Sort(lags)
	q := func(p float64) time.Duration { return lags[min(len(lags)-1, int(p*float64(len(lags))))] }
	return lagStats{N: len(lags), P50: q(0.5), P95: q(0.95), Max: lags[len(lags)-1]}
}

// (d) One vendor is slow (2 s per export) beside a healthy one. A second
// gateway with two healthy vendors runs at the same time under the same
// paced load, so that the machine's noise hits both alike. Neither the
// healthy vendor's delivery lag nor ingest may suffer from the slow
// neighbour.
//
// Bounds are loose on purpose (shared, noisy two-core machine), yet far
// below what a blocking neighbour would cause (every batch of the healthy
// vendor waiting out 2 s exports, and acknowledgements waiting for them):
//   - healthy vendor's p95 delivery lag (acknowledgement → first receipt)
//     at most the baseline's + 1 s;
//   - ingest rate at least 70% of the baseline's;
//   - p95 acknowledgement latency at most 2× the baseline's + 250 ms.
func TestFanOutSlowVendorIsolated(t *testing.T) {
	e2eOnly(t)
	t.Parallel()
	slow, healthy := newVendor(t), newVendor(t)
	slow.SetMode(vendorSlow)
	base1, base2 := newVendor(t), newVendor(t)
	// ~150 spans/s: below what the slow vendor can take (one export of at
	// most 512 spans per 2 s), so that it too drains in bounded time.
	lo := loadOptions{HTTPSenders: 1, GRPCSenders: 1, TracesPerRequest: 2, Pause: 250 * time.Millisecond}
	mixed := startFanout(t, postgresDB(t), map[string]*fakeVendor{"healthy": healthy, "slow": slow}, lo)
	baseline := startFanout(t, postgresDB(t), map[string]*fakeVendor{"healthy": base1, "other": base2}, lo)
	from := baseline.started.Add(time.Second) // both running and warm
	time.Sleep(13 * time.Second)
	to := time.Now()
	rate := func(f *fanout) float64 { return float64(f.load.AckedBetween(from, to)) / to.Sub(from).Seconds() }
	mixedRate, baseRate := rate(mixed), rate(baseline)
	_, mixedAck := mixed.load.ackLatency(from, to)
	_, baseAck := baseline.load.ackLatency(from, to)

	baseFigs := baseline.finish(t, 60*time.Second)
	mixedFigs := mixed.finish(t, 3*time.Minute) // the slow vendor catches up at its pace
	mixedLag := deliveryLag(mixed.load.Acked(), healthy.FirstReceived())
	baseLag := deliveryLag(baseline.load.Acked(), base1.FirstReceived())
	slowLag := deliveryLag(mixed.load.Acked(), slow.FirstReceived())

	if limit := baseLag.P95 + time.Second; mixedLag.P95 > limit {
		t.Errorf("healthy vendor beside a slow one: p95 delivery lag %v, over the bound %v (baseline p95 %v)", mixedLag.P95, limit, baseLag.P95)
	}
	if mixedRate < 0.7*baseRate {
		t.Errorf("ingest rate beside a slow vendor %.0f spans/s, under 70%% of the baseline's %.0f", mixedRate, baseRate)
	}
	if limit := 2*baseAck + 250*time.Millisecond; mixedAck > limit {
		t.Errorf("p95 acknowledgement latency beside a slow vendor %v, over the bound %v (baseline %v)", mixedAck, limit, baseAck)
	}
	t.Logf("FIGURES %s: ingest %.0f spans/s (p95 ack %v) with a slow vendor vs %.0f spans/s (p95 ack %v) baseline; delivery: healthy vendor beside the slow one %s; baseline vendor %s; slow vendor %s; with slow: %s; baseline: %s",
		t.Name(), mixedRate, mixedAck.Round(time.Millisecond), baseRate, baseAck.Round(time.Millisecond), mixedLag, baseLag, slowLag, mixedFigs, baseFigs)
}

// (e) The destination's plugin process is killed with SIGKILL in the middle
// of an export: the host restarts it and the batch is delivered anyway.
func TestFanOutPluginKilled(t *testing.T) {
	e2eOnly(t)
	t.Parallel()
	v := newVendor(t)
	f := startFanout(t, postgresDB(t), map[string]*fakeVendor{"vendor": v}, fanoutLoad)
	f.load.waitAcked(500, time.Minute)
	// Hold exports at the vendor so that the kill lands mid-export.
	v.SetMode(vendorSlow)
	deadline := time.Now().Add(30 * time.Second)
	for v.Active() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no export reached the vendor within 30s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	pids := f.gw.pluginPids("otlp")
	if len(pids) != 1 {
		t.Fatalf("want one `gateway plugin otlp` child of the gateway, found %v", pids)
	}
	if err := syscall.Kill(pids[0], syscall.SIGKILL); err != nil {
		t.Fatalf("kill plugin %d: %v", pids[0], err)
	}
	v.SetMode(vendorHealthy)
	time.Sleep(3 * time.Second)
	var restarted []int
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if restarted = f.gw.pluginPids("otlp"); len(restarted) == 1 && restarted[0] != pids[0] {
			break
		}
	}
	if len(restarted) != 1 || restarted[0] == pids[0] {
		t.Errorf("plugin not restarted after SIGKILL: killed %d, now %v", pids[0], restarted)
	}
	// The plugin metrics are refreshed every few seconds.
	var restarts float64
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
		if restarts = f.gw.mustMetric("kern_gateway_destination_plugin_restarts_total"); restarts >= 1 {
			break
		}
	}
	if restarts < 1 {
		t.Errorf("kern_gateway_destination_plugin_restarts_total = %v after the plugin was killed and restarted, want >= 1", restarts)
	}
	figs := f.finish(t, 60*time.Second)
	t.Logf("FIGURES %s: plugin %d killed mid-export, restarted as %v (restarts metric %v); %s", t.Name(), pids[0], restarted, restarts, figs)
}

// (f) The gateway is killed with SIGKILL mid-stream and restarted: every
// destination still receives every stored span (delivery resumes from the
// committed log).
func TestFanOutGatewayKilled(t *testing.T) {
	e2eOnly(t)
	t.Parallel()
	for _, tc := range databases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a, b := newVendor(t), newVendor(t)
			f := startFanout(t, tc.db(t), map[string]*fakeVendor{"a": a, "b": b}, fanoutLoad)
			f.load.waitAcked(1000, time.Minute)
			// Hold a's exports at the vendor so that the crash lands while
			// a batch is on its way: that claim must be taken over once
			// its lease expires, and resent.
			a.SetMode(vendorSlow)
			deadline := time.Now().Add(30 * time.Second)
			for a.Active() == 0 {
				if time.Now().After(deadline) {
					t.Fatal("no export reached vendor a within 30s")
				}
				time.Sleep(5 * time.Millisecond)
			}
			f.gw.Kill()
			a.SetMode(vendorHealthy)
			time.Sleep(time.Second)
			f.gw.Restart()
			f.load.waitAcked(f.load.AckedCount()+1000, time.Minute)
			figs := f.finish(t, 90*time.Second)
			t.Logf("FIGURES %s: gateway killed during an export to a; %s", t.Name(), figs)
		})
	}
}
