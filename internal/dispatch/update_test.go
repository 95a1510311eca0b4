package dispatch

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/kern-agents/trace-gateway/internal/store"
)

// removals records DestinationRemoved calls beside everything else.
type removals struct {
	*recorder
	mu   sync.Mutex
	gone []string
}

func (r *removals) DestinationRemoved(dest string) {
	r.mu.Lock()
	r.gone = append(r.gone, dest)
	r.mu.Unlock()
}

func (r *removals) removed() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.gone)
}

// TestUpdateAddsRemovesAndRestarts changes the destinations of a running
// dispatcher: the unchanged one never misses a span, the restarted one
// resumes where its predecessor stopped (here: nowhere, it was failing), the
// added one starts with the spans stored after it was added, the removed
// one gets nothing more and is closed.
func TestUpdateAddsRemovesAndRestarts(t *testing.T) {
	eachStore(t, func(t *testing.T, s testStore) {
		keep, gone, added := newFake(nil), newFake(nil), newFake(nil)
		down := newFake(func(int, ptrace.Traces) error { return errors.New("connection refused") })
		fixed := newFake(nil)
		obs := &removals{recorder: newRecorder()}
		opts := fastOptions(t)
		opts.Observer = obs
		p := fastPolicy()
		p.RetryInitial, p.RetryMax = 50*time.Millisecond, 200*time.Millisecond
		d := run(t, s, []Destination{
			{Name: "keep", Start: starter(keep), Policy: p},
			{Name: "gone", Start: starter(gone), Policy: p},
			{Name: "changed", Start: starter(down), Policy: p},
		}, opts)
		waitFor(t, "plugins up", 30*time.Second, func() bool {
			return obs.isUp("keep") && obs.isUp("gone") && obs.isUp("changed")
		})
		before := write(t, s, 300, 6, time.Now())
		waitFor(t, "first spans", 10*time.Second, func() bool { return keep.has(before) && gone.has(before) })
		waitFor(t, "changed failing", 30*time.Second, func() bool { return len(down.callTimes()) > 0 })

		began := time.Now()
		err := d.Update(context.Background(), []string{"gone", "changed"}, []Destination{
			{Name: "changed", Start: starter(fixed), Policy: p},
			{Name: "added", Start: starter(added), Policy: p},
		})
		if err != nil {
			t.Fatal(err)
		}
		// The failing one was waiting to retry: it hands its claim back at
		// once instead of waiting out the grace period.
		if grace := min(exportDeadline(p.Timeout), maxDrain); time.Since(began) >= grace {
			t.Fatalf("Update took %s, the grace period (%s) or more", time.Since(began), grace)
		}
		if got := d.Destinations(); !slices.Equal(sortedCopy(got), []string{"added", "changed", "keep"}) {
			t.Fatalf("destinations after update: %v", got)
		}
		if !gone.closed || !down.closed {
			t.Fatal("stopped destinations' plugins were not closed")
		}
		if got := obs.removed(); !slices.Equal(sortedCopy(got), []string{"changed", "gone"}) {
			t.Fatalf("observer told of removals %v", got)
		}
		goneBefore := len(gone.delivered())
		after := write(t, s, 300, 6, time.Now())
		all := append(slices.Clone(before), after...)
		waitFor(t, "delivery after update", 20*time.Second, func() bool {
			return keep.has(all) && fixed.has(all) && added.has(after)
		})
		// The restarted destination resumed from its cursor and claim: it
		// got what its failing predecessor never delivered.
		if len(fixed.delivered()) != len(all) {
			t.Fatalf("restarted destination got %d distinct spans, want %d", len(fixed.delivered()), len(all))
		}
		// The added one started at the end of the log.
		for _, id := range before {
			if added.delivered()[id] > 0 {
				t.Fatal("a destination added later received spans stored before it was added")
			}
		}
		time.Sleep(100 * time.Millisecond)
		if n := len(gone.delivered()); n != goneBefore {
			t.Fatalf("removed destination still received spans: %d, was %d", n, goneBefore)
		}
		// keep never missed a span and, without failures, got each once.
		for id, n := range keep.delivered() {
			if n != 1 {
				t.Fatalf("unchanged destination got %s %d times", id, n)
			}
		}
	})
}

// TestRemovedDestinationResumesWhenAddedBack: a removed destination's
// cursor stays, so adding it back delivers what was stored meanwhile (as
// long as those log rows were not trimmed).
func TestRemovedDestinationResumesWhenAddedBack(t *testing.T) {
	s := openSQLite(t)
	a, b1, b2 := newFake(nil), newFake(nil), newFake(nil)
	opts := fastOptions(t)
	opts.TrimInterval = time.Hour
	d := run(t, s, []Destination{
		{Name: "a", Start: starter(a), Policy: fastPolicy()},
		{Name: "b", Start: starter(b1), Policy: fastPolicy()},
	}, opts)
	waitCursors(t, s, "a", "b")
	first := write(t, s, 50, 5, time.Now())
	waitFor(t, "first", 10*time.Second, func() bool { return a.has(first) && b1.has(first) })
	if err := d.Update(context.Background(), []string{"b"}, nil); err != nil {
		t.Fatal(err)
	}
	meanwhile := write(t, s, 50, 5, time.Now())
	waitFor(t, "a meanwhile", 10*time.Second, func() bool { return a.has(meanwhile) })
	if err := d.Update(context.Background(), nil, []Destination{{Name: "b", Start: starter(b2), Policy: fastPolicy()}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "b resumes", 10*time.Second, func() bool { return b2.has(meanwhile) })
	for _, id := range first {
		if b2.delivered()[id] > 0 {
			t.Fatal("b was sent again what it had delivered before its removal")
		}
	}
}

// TestUpdateLetsTheBatchInFlightFinish: a destination removed while it
// exports finishes the claim and leaves nothing behind.
func TestUpdateLetsTheBatchInFlightFinish(t *testing.T) {
	s := openSQLite(t)
	release := make(chan struct{})
	var once sync.Once
	slow := newFake(func(call int, _ ptrace.Traces) error {
		if call == 0 {
			<-release
		}
		return nil
	})
	obs := newRecorder()
	opts := fastOptions(t)
	opts.Observer = obs
	d := run(t, s, []Destination{{Name: "slow", Start: starter(slow), Policy: fastPolicy()}}, opts)
	waitFor(t, "plugin up", 30*time.Second, func() bool { return obs.isUp("slow") })
	ids := write(t, s, 500, 5, time.Now()) // more than one batch: one claim of several
	waitFor(t, "export in flight", 30*time.Second, func() bool { return len(slow.callTimes()) == 1 })
	go func() {
		time.Sleep(200 * time.Millisecond)
		once.Do(func() { close(release) })
	}()
	if err := d.Update(context.Background(), []string{"slow"}, nil); err != nil {
		t.Fatal(err)
	}
	if !slow.has(ids) {
		t.Fatalf("removed destination did not finish its claim: %d of %d spans", len(slow.delivered()), len(ids))
	}
	var claims int
	if err := s.DB().QueryRow(`SELECT count(*) FROM gateway_claims WHERE destination = 'slow'`).Scan(&claims); err != nil {
		t.Fatal(err)
	}
	if claims != 0 {
		t.Fatalf("%d claims left behind", claims)
	}
}

// TestUpdateCutsOffAHungExport: an export that never returns is cancelled
// after the grace period and its claim handed back for the next holder.
func TestUpdateCutsOffAHungExport(t *testing.T) {
	s := openSQLite(t)
	block := make(chan struct{})
	defer close(block)
	hung := newFake(func(int, ptrace.Traces) error { <-block; return nil })
	p := fastPolicy()
	p.Timeout = 100 * time.Millisecond // grace: 1.5 × 100ms + 1s
	obs := newRecorder()
	opts := fastOptions(t)
	opts.Observer = obs
	d := run(t, s, []Destination{{Name: "hung", Start: starter(exportCtx{hung}), Policy: p}}, opts)
	waitFor(t, "plugin up", 30*time.Second, func() bool { return obs.isUp("hung") })
	write(t, s, 10, 5, time.Now())
	waitFor(t, "export in flight", 30*time.Second, func() bool { return len(hung.callTimes()) == 1 })
	began := time.Now()
	if err := d.Update(context.Background(), []string{"hung"}, nil); err != nil {
		t.Fatal(err)
	}
	// Without the grace period Update would wait for the hung export
	// forever; the upper bound only has to tell that apart.
	if took := time.Since(began); took < time.Second || took > time.Minute {
		t.Fatalf("Update took %s; want the grace period of about 1.15s", took)
	}
	c, _, err := s.Claim(context.Background(), "hung", store.ClaimRequest{Owner: "next", Lease: time.Minute, MaxSpans: 100})
	if err != nil || c == nil || c.Attempts != 2 {
		t.Fatalf("Claim after removal = %+v, %v; want the handed-back claim", c, err)
	}
}

func TestUpdateRefusals(t *testing.T) {
	s := openSQLite(t)
	a := newFake(nil)
	d := run(t, s, []Destination{{Name: "a", Start: starter(a), Policy: fastPolicy()}}, fastOptions(t))
	waitCursors(t, s, "a")
	for _, tc := range []struct {
		name   string
		remove []string
		add    []Destination
	}{
		{"remove unknown", []string{"nope"}, nil},
		{"add running", nil, []Destination{{Name: "a", Start: starter(newFake(nil))}}},
		{"add twice", nil, []Destination{{Name: "b", Start: starter(newFake(nil))}, {Name: "b", Start: starter(newFake(nil))}}},
		{"no start", nil, []Destination{{Name: "c"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := d.Update(context.Background(), tc.remove, tc.add); err == nil {
				t.Fatal("Update accepted")
			}
			if got := d.Destinations(); !slices.Equal(got, []string{"a"}) {
				t.Fatalf("a refused update changed the destinations: %v", got)
			}
		})
	}
	ids := write(t, s, 10, 5, time.Now())
	waitFor(t, "a still delivers", 30*time.Second, func() bool { return a.has(ids) })
	if a.closed {
		t.Fatal("a refused update closed a running plugin")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := d.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := d.Update(context.Background(), nil, []Destination{{Name: "late", Start: starter(newFake(nil))}}); err == nil {
		t.Fatal("Update after Stop accepted")
	}
}

// TestUpdateBeforeStart edits the list Start runs.
func TestUpdateBeforeStart(t *testing.T) {
	s := openSQLite(t)
	a, b := newFake(nil), newFake(nil)
	d := New(s, []Destination{{Name: "a", Start: starter(a), Policy: fastPolicy()}}, fastOptions(t))
	if err := d.Update(context.Background(), []string{"a"}, []Destination{{Name: "b", Start: starter(b), Policy: fastPolicy()}}); err != nil {
		t.Fatal(err)
	}
	d.Start(context.Background())
	t.Cleanup(func() { _ = d.Stop(context.Background()) })
	waitCursors(t, s, "b")
	ids := write(t, s, 10, 5, time.Now())
	waitFor(t, "b delivers", 30*time.Second, func() bool { return b.has(ids) })
	if len(a.delivered()) != 0 || len(a.callTimes()) != 0 {
		t.Fatal("a removed before Start ran")
	}
}

func sortedCopy(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return out
}
