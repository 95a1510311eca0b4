package deliverytest

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kern-agents/trace-gateway/internal/store"
)

// testForget: a destination removed from the configuration that handed work
// back is forgotten whole; it is refused while a replica still runs it;
// afterwards trimming goes past everything it held and the name starts
// afresh.
func testForget(t *testing.T, s Store) {
	ctx := context.Background()
	ensure(t, s, "a") // still configured
	ensure(t, s, "x") // about to be removed
	first := Spans(3, 3, time.Now())
	write(t, s, first)
	write(t, s, Spans(3, 3, time.Now()))
	write(t, s, Spans(3, 3, time.Now()))
	drain(t, s, "a", 100)
	// x's replica takes the first row and gets one span out before it is
	// stopped, handing the claim back.
	c, _, err := s.Claim(ctx, "x", req("r1", 3))
	if err != nil || c == nil || c.Spans != 3 {
		t.Fatalf("Claim = %+v, %v", c, err)
	}
	if err := s.Release(ctx, c, 1); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Replay(ctx, "x", store.ReplaySelection{TraceID: first[0].TraceID}); err != nil || n != 3 {
		t.Fatalf("Replay = %d, %v", n, err)
	}
	settled(s)
	if _, err := s.AddDeadLetter(ctx, store.DeadLetter{Destination: "x", SpanIDs: ids(first[:2]), Reason: "400"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddDeadLetter(ctx, store.DeadLetter{Destination: "a", SpanIDs: ids(first[:1]), Reason: "400"}); err != nil {
		t.Fatal(err)
	}
	before := status(t, s, "x")
	if before.Backlog.Spans != 11 || before.Claims != 1 || before.DeadLetters != 1 {
		t.Fatalf("x's status = %+v; want 11 spans behind (2 of the claim, 6 shared, 3 replayed), one claim, one dead letter", before)
	}

	// Refused while a replica still runs x: a live report, or a claim
	// under lease.
	record(t, s, store.WorkerReport{Destination: "x", Owner: "r1", Circuit: store.CircuitClosed, ValidFor: time.Minute})
	if _, err := s.Forget(ctx, "x"); !errors.Is(err, store.ErrDestinationRunning) || !strings.Contains(err.Error(), "r1") {
		t.Fatalf("Forget with a live report = %v; want ErrDestinationRunning naming r1", err)
	}
	record(t, s, store.WorkerReport{Destination: "x", Owner: "r1", Circuit: store.CircuitClosed, LastError: "timeout"})
	held, _, err := s.Claim(ctx, "x", req("r2", 3))
	if err != nil || held == nil || held.ID != c.ID {
		t.Fatalf("taking the handed-back claim = %+v, %v", held, err)
	}
	if _, err := s.Forget(ctx, "x"); !errors.Is(err, store.ErrDestinationRunning) || !strings.Contains(err.Error(), "r2") {
		t.Fatalf("Forget with a held claim = %v; want ErrDestinationRunning naming r2", err)
	}
	// The held claim pins trimming, as it must while a replica works on it.
	if n, err := s.Trim(ctx, []string{"a"}, 100); err != nil || n != 0 {
		t.Fatalf("Trim under x's held claim = %d, %v; want 0", n, err)
	}
	if err := s.Release(ctx, held, 1); err != nil {
		t.Fatal(err)
	}
	if st := status(t, s, "x"); st.Backlog.Spans != before.Backlog.Spans || st.Claims != 1 {
		t.Fatalf("refused Forgets changed x: %+v", st)
	}

	f, err := s.Forget(ctx, "x")
	if err != nil {
		t.Fatalf("Forget: %v", err)
	}
	want := store.Forgotten{Cursor: true, Spans: 11, Claims: 1, DeadLetters: 1, DeadLetterSpans: 2, Reports: 1}
	if f != want {
		t.Fatalf("Forget = %+v, want %+v", f, want)
	}
	if st := status(t, s, "x"); st.Started || st.Backlog.Spans != 0 || st.Claims != 0 || st.DeadLetters != 0 || len(st.Workers) != 0 {
		t.Fatalf("status after Forget = %+v; want nothing", st)
	}
	if got := known(t, s); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("KnownDestinations after Forget = %v, want [a]", got)
	}
	if dl, _ := s.DeadLetters(ctx, store.DeadLetterFilter{}); len(dl) != 1 || dl[0].Destination != "a" {
		t.Fatalf("dead letters after Forget = %+v; want only a's", dl)
	}
	// Trimming goes past everything x held: the three shared rows go.
	if n, err := s.Trim(ctx, []string{"a"}, 100); err != nil || n != 3 {
		t.Fatalf("Trim after Forget = %d, %v; want the 3 rows", n, err)
	}
	// The name starts afresh: from the end of the log, nothing handed back.
	write(t, s, Spans(3, 3, time.Now()))
	ensure(t, s, "x")
	later := Spans(4, 2, time.Now())
	write(t, s, later)
	if got := drain(t, s, "x", 100); !slices.Equal(sorted(got), sorted(ids(later))) {
		t.Fatalf("x after Forget and coming back got %d spans, want only the %d stored since", len(got), len(later))
	}
	if f, err := s.Forget(ctx, "never-known"); err != nil || !f.Nothing() {
		t.Fatalf("Forget of an unknown name = %+v, %v; want nothing dropped", f, err)
	}
}
