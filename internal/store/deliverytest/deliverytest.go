// Package deliverytest is the conformance suite of store.DeliveryLog and
// store.Pruner, run by every store's tests against a real database.
package deliverytest

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/kern-agents/trace-gateway/internal/convert"
	"github.com/kern-agents/trace-gateway/internal/model"
	"github.com/kern-agents/trace-gateway/internal/store"
	"github.com/kern-agents/trace-gateway/internal/store/storetest"
)

// Store is what the suite needs of a store.
type Store interface {
	store.Store
	store.DeliveryLog
	store.Pruner
	store.LoggedWriter
}

// Open returns a fresh, empty store that is closed when the test ends.
type Open func(t *testing.T) Store

// Settle waits until every committed log row can be claimed. PostgreSQL
// holds rows back while an older writing transaction anywhere on the server
// is still open (see the postgres package); SQLite needs nothing (nil).
type Settle func(t *testing.T, s Store)

// harness is the store under test; its Write and WriteLogged wait for the
// row to settle, so the suite's assertions do not depend on unrelated
// transactions.
type harness struct {
	Store
	t      *testing.T
	settle Settle
}

func (h *harness) Write(ctx context.Context, spans []model.Span) error {
	if err := h.Store.Write(ctx, spans); err != nil {
		return err
	}
	h.wait()
	return nil
}

func (h *harness) WriteLogged(ctx context.Context, spans []model.Span) ([]string, error) {
	logged, err := h.Store.WriteLogged(ctx, spans)
	if err == nil {
		h.wait()
	}
	return logged, err
}

func (h *harness) wait() {
	if h.settle != nil {
		h.settle(h.t, h.Store)
	}
}

// Run runs every test of the suite.
func Run(t *testing.T, open Open, settle Settle) {
	tests := []struct {
		name string
		fn   func(*testing.T, Store)
	}{
		{"LogListsNewSpansOnly", testLogListsNewSpansOnly},
		{"WriteLoggedReportsTheRow", testWriteLoggedReportsTheRow},
		{"NewCursorStartsAtEnd", testNewCursorStartsAtEnd},
		{"ClaimsCoverEverySpanOnce", testClaimsCoverEverySpanOnce},
		{"ClaimWaitsForFullerBatch", testClaimWaitsForFullerBatch},
		{"ExpiredLeaseIsTakenOver", testExpiredLeaseIsTakenOver},
		{"ReleasedClaimIsTakenAtOnce", testReleasedClaimIsTakenAtOnce},
		{"Backlog", testBacklog},
		{"DeadLettersAndRequeue", testDeadLettersAndRequeue},
		{"Replay", testReplay},
		{"Trim", testTrim},
		{"Prune", testPrune},
		{"ConcurrentWritersAndClaimers", testConcurrentWritersAndClaimers},
		{"WorkerReports", testWorkerReports},
		{"Status", testStatus},
		{"Forget", testForget},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, &harness{Store: open(t), t: t, settle: settle}) })
	}
}

var seq struct {
	sync.Mutex
	r *rand.Rand
}

func init() { seq.r = rand.New(rand.NewSource(time.Now().UnixNano())) }

func hexID(n int) string {
	seq.Lock()
	defer seq.Unlock()
	const digits = "0123456789abcdef"
	b := make([]byte, 2*n)
	for i := range b {
		b[i] = digits[seq.r.Intn(16)]
	}
	return string(b)
}

// origin is the resource and scope of the spans Spans makes.
var origin = convert.NewOrigin([]byte(`{"service.name":"svc"}`), []byte(`{"name":"deliverytest","version":""}`))

// Spans makes n spans of traces with perTrace spans each, stored at
// created, as the converter makes them (the resource stored apart).
func Spans(n, perTrace int, created time.Time) []model.Span {
	out := make([]model.Span, 0, n)
	var trace, root string
	for i := range n {
		sp := model.Span{
			SpanID: hexID(8), Name: fmt.Sprintf("span-%d", i), SpanKind: "INTERNAL", StatusCode: model.StatusOK,
			StartTime: model.FormatTime(created), EndTime: model.FormatTime(created.Add(time.Millisecond)),
			DurationMS: 1, Attributes: []byte(`{"openinference.span.kind":"LLM","` + model.KeyResource + `":"` + origin.ID + `"}`),
			CreatedAt: model.FormatTime(created), Origin: origin,
		}
		if i%perTrace == 0 {
			trace, root = hexID(16), sp.SpanID
		} else {
			sp.ParentSpanID = root
		}
		sp.TraceID = trace
		out = append(out, sp)
	}
	return out
}

func ids(spans []model.Span) []string {
	out := make([]string, len(spans))
	for i := range spans {
		out[i] = spans[i].SpanID
	}
	return out
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	sort.Strings(s)
	return s
}

func write(t *testing.T, s Store, spans []model.Span) {
	t.Helper()
	if err := s.Write(context.Background(), spans); err != nil {
		t.Fatalf("Write: %v", err)
	}
}

func ensure(t *testing.T, s Store, dest string) {
	t.Helper()
	if err := s.EnsureCursor(context.Background(), dest); err != nil {
		t.Fatalf("EnsureCursor(%s): %v", dest, err)
	}
}

// req claims anything at once.
func req(owner string, maxSpans int) store.ClaimRequest {
	return store.ClaimRequest{Owner: owner, Lease: time.Minute, MaxSpans: maxSpans}
}

// drain claims and completes everything dest can claim now, returning the
// span ids in claim order.
func drain(t *testing.T, s Store, dest string, maxSpans int) []string {
	t.Helper()
	ctx := context.Background()
	if h, ok := s.(*harness); ok {
		h.wait() // rows added by Requeue or Replay
	}
	var got []string
	for {
		c, _, err := s.Claim(ctx, dest, req("drainer", maxSpans))
		if err != nil {
			t.Fatalf("Claim: %v", err)
		}
		if c == nil {
			return got
		}
		spanIDs, err := claimedIDs(ctx, s, c)
		if err != nil {
			t.Fatalf("ClaimSpanIDs: %v", err)
		}
		if len(spanIDs) != c.Spans {
			t.Fatalf("claim %d lists %d span ids, says %d", c.ID, len(spanIDs), c.Spans)
		}
		got = append(got, spanIDs...)
		if err := s.Complete(ctx, c); err != nil {
			t.Fatalf("Complete: %v", err)
		}
	}
}

// testWriteLoggedReportsTheRow: WriteLogged returns exactly the log row its
// write appended, in the row's order, and nothing for an all-duplicate write.
func testWriteLoggedReportsTheRow(t *testing.T, s Store) {
	ctx := context.Background()
	ensure(t, s, "d")
	now := time.Now()
	a, b := Spans(30, 5, now), Spans(20, 5, now)
	cases := []struct {
		name  string
		spans []model.Span
		want  []model.Span // the spans the row must list
	}{
		{"new spans", a, a},
		{"new and re-sent spans", append(slices.Clone(b), a[:10]...), b},
		{"only re-sent spans", a[10:20], nil},
	}
	for _, tc := range cases {
		logged, err := s.WriteLogged(ctx, tc.spans)
		if err != nil {
			t.Fatalf("%s: WriteLogged: %v", tc.name, err)
		}
		if !slices.Equal(sorted(logged), sorted(ids(tc.want))) {
			t.Fatalf("%s: logged %d ids, want the %d new ones", tc.name, len(logged), len(tc.want))
		}
		if len(tc.want) == 0 {
			continue
		}
		c, _, err := s.Claim(ctx, "d", req("o", 1))
		if err != nil || c == nil {
			t.Fatalf("%s: Claim = %v, %v", tc.name, c, err)
		}
		rows, err := s.ClaimSpanIDs(ctx, c)
		if err != nil || len(rows) != 1 || !slices.Equal(rows[0], logged) {
			t.Fatalf("%s: the log row lists %v (%v), WriteLogged said %v", tc.name, rows, err, logged)
		}
		if err := s.Complete(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
}

func testLogListsNewSpansOnly(t *testing.T, s Store) {
	ctx := context.Background()
	ensure(t, s, "d")
	now := time.Now()
	a := Spans(30, 5, now)
	b := Spans(20, 5, now)
	write(t, s, a)
	// b plus ten of a again (an SDK retrying) plus an in-batch duplicate.
	write(t, s, append(append(slices.Clone(b), a[:10]...), b[0]))
	write(t, s, a[10:20]) // nothing new: no log row
	var claims []*store.Claim
	for {
		c, _, err := s.Claim(ctx, "d", req("o", 1)) // one row per claim
		if err != nil {
			t.Fatal(err)
		}
		if c == nil {
			break
		}
		claims = append(claims, c)
	}
	if len(claims) != 2 {
		t.Fatalf("got %d log rows, want 2 (the all-duplicate write adds none)", len(claims))
	}
	for i, want := range [][]model.Span{a, b} {
		rows, err := s.ClaimSpanIDs(ctx, claims[i])
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) != 1 {
			t.Errorf("claim of one log row lists %d rows", len(rows))
		}
		got := slices.Concat(rows...)
		if !slices.Equal(sorted(got), sorted(ids(want))) {
			t.Errorf("row %d lists %d ids, want the %d new ones", i, len(got), len(want))
		}
	}
	loaded, err := s.Spans(ctx, ids(b[:3]))
	if err != nil {
		t.Fatal(err)
	}
	if len(loaded) != 3 {
		t.Fatalf("Spans loaded %d, want 3", len(loaded))
	}
	byID := map[string]model.Span{}
	for _, sp := range b {
		byID[sp.SpanID] = sp
	}
	for _, sp := range loaded {
		w := byID[sp.SpanID]
		if sp.TraceID != w.TraceID || sp.Name != w.Name || sp.ParentSpanID != w.ParentSpanID || sp.StartTime != w.StartTime || len(sp.Attributes) == 0 {
			t.Errorf("loaded span %+v differs from written %+v", sp, w)
		}
		if o := sp.Origin; o == nil || o.ID != origin.ID || !storetest.SameJSON(o.Resource, origin.Resource) || !storetest.SameJSON(o.Scope, origin.Scope) {
			t.Errorf("loaded span %s has Origin %+v, want %+v", sp.SpanID, o, origin)
		}
	}
	if got, err := s.Spans(ctx, []string{"0000000000000000"}); err != nil || len(got) != 0 {
		t.Errorf("Spans of an unknown id = %v, %v; want none", got, err)
	}
}

func testNewCursorStartsAtEnd(t *testing.T, s Store) {
	before := Spans(10, 5, time.Now())
	write(t, s, before)
	ensure(t, s, "late")
	ensure(t, s, "late") // idempotent: does not move the cursor
	after := Spans(10, 5, time.Now())
	write(t, s, after)
	ensure(t, s, "late")
	if got := drain(t, s, "late", 1000); !slices.Equal(sorted(got), sorted(ids(after))) {
		t.Fatalf("new destination got %d spans, want only the %d stored after it appeared", len(got), len(after))
	}
}

func testClaimsCoverEverySpanOnce(t *testing.T, s Store) {
	ensure(t, s, "a")
	ensure(t, s, "b")
	var want []string
	for range 12 {
		batch := Spans(25, 5, time.Now())
		write(t, s, batch)
		want = append(want, ids(batch)...)
	}
	ctx := context.Background()
	// MaxSpans 60 takes two rows of 25 per claim.
	c, _, err := s.Claim(ctx, "a", req("o", 60))
	if err != nil || c == nil {
		t.Fatalf("Claim = %v, %v", c, err)
	}
	if c.Spans != 50 || c.Attempts != 1 || c.Done != 0 || c.Owner != "o" || c.Destination != "a" {
		t.Fatalf("claim = %+v; want 50 spans, first attempt", c)
	}
	if err := s.Complete(ctx, c); err != nil {
		t.Fatal(err)
	}
	if err := s.Complete(ctx, c); !errors.Is(err, store.ErrLeaseLost) {
		t.Fatalf("second Complete = %v, want ErrLeaseLost", err)
	}
	first, _ := claimedIDs(ctx, s, c)
	gotA := append(first, drain(t, s, "a", 60)...)
	if !slices.Equal(sorted(gotA), sorted(want)) {
		t.Fatalf("destination a got %d spans, want %d each once", len(gotA), len(want))
	}
	// Destinations are independent.
	if gotB := drain(t, s, "b", 1000); !slices.Equal(sorted(gotB), sorted(want)) {
		t.Fatalf("destination b got %d spans, want %d", len(gotB), len(want))
	}
	// A row larger than MaxSpans is claimed whole, alone.
	big := Spans(40, 5, time.Now())
	write(t, s, big)
	c, _, err = s.Claim(ctx, "a", req("o", 10))
	if err != nil || c == nil || c.Spans != 40 {
		t.Fatalf("Claim of a large row = %+v, %v; want all 40 spans", c, err)
	}
}

func testClaimWaitsForFullerBatch(t *testing.T, s Store) {
	ctx := context.Background()
	ensure(t, s, "d")
	write(t, s, Spans(5, 5, time.Now()))
	r := store.ClaimRequest{Owner: "o", Lease: time.Minute, MaxSpans: 100, MinSpans: 20, MaxDelay: 400 * time.Millisecond}
	c, wait, err := s.Claim(ctx, "d", r)
	if err != nil || c != nil {
		t.Fatalf("Claim of 5 spans with MinSpans 20 = %+v, %v; want nothing yet", c, err)
	}
	if wait <= 0 || wait > r.MaxDelay {
		t.Fatalf("wait = %s, want in (0, %s]", wait, r.MaxDelay)
	}
	write(t, s, Spans(15, 5, time.Now()))
	c, _, err = s.Claim(ctx, "d", r)
	if err != nil || c == nil || c.Spans != 20 {
		t.Fatalf("Claim once 20 spans wait = %+v, %v; want them", c, err)
	}
	write(t, s, Spans(5, 5, time.Now()))
	time.Sleep(r.MaxDelay + 50*time.Millisecond)
	c, _, err = s.Claim(ctx, "d", r)
	if err != nil || c == nil || c.Spans != 5 {
		t.Fatalf("Claim after MaxDelay = %+v, %v; want the 5 spans", c, err)
	}
	if c, wait, err := s.Claim(ctx, "d", r); c != nil || wait != 0 || err != nil {
		t.Fatalf("Claim of an empty log = %+v, %s, %v; want nothing, no wait", c, wait, err)
	}
}

func testExpiredLeaseIsTakenOver(t *testing.T, s Store) {
	ctx := context.Background()
	ensure(t, s, "d")
	spans := Spans(30, 5, time.Now())
	write(t, s, spans)
	short := store.ClaimRequest{Owner: "dead", Lease: 300 * time.Millisecond, MaxSpans: 100}
	c, _, err := s.Claim(ctx, "d", short)
	if err != nil || c == nil {
		t.Fatalf("Claim = %v, %v", c, err)
	}
	if err := s.Renew(ctx, c, 12, 300*time.Millisecond); err != nil {
		t.Fatalf("Renew: %v", err)
	}
	// While the lease holds, nobody else gets it.
	if o, _, err := s.Claim(ctx, "d", req("other", 100)); err != nil || o != nil {
		t.Fatalf("Claim during the lease = %+v, %v; want nothing", o, err)
	}
	time.Sleep(400 * time.Millisecond)
	o, _, err := s.Claim(ctx, "d", req("other", 100))
	if err != nil || o == nil {
		t.Fatalf("Claim after the lease = %v, %v; want the expired claim", o, err)
	}
	if o.ID != c.ID || o.Owner != "other" || o.Attempts != 2 || o.Done != 12 || o.Spans != 30 || o.From != c.From || o.To != c.To {
		t.Fatalf("taken-over claim = %+v; want claim %d with done 12, attempt 2", o, c.ID)
	}
	if err := s.Renew(ctx, c, 20, time.Minute); !errors.Is(err, store.ErrLeaseLost) {
		t.Fatalf("old holder's Renew = %v, want ErrLeaseLost", err)
	}
	if err := s.Complete(ctx, c); !errors.Is(err, store.ErrLeaseLost) {
		t.Fatalf("old holder's Complete = %v, want ErrLeaseLost", err)
	}
	got, err := claimedIDs(ctx, s, o)
	if err != nil || !slices.Equal(sorted(got), sorted(ids(spans))) {
		t.Fatalf("taken-over claim lists %d ids (%v), want %d", len(got), err, len(spans))
	}
	if err := s.Complete(ctx, o); err != nil {
		t.Fatalf("new holder's Complete: %v", err)
	}
}

func testReleasedClaimIsTakenAtOnce(t *testing.T, s Store) {
	ctx := context.Background()
	ensure(t, s, "d")
	write(t, s, Spans(10, 5, time.Now()))
	c, _, err := s.Claim(ctx, "d", req("a", 100))
	if err != nil || c == nil {
		t.Fatal(c, err)
	}
	if err := s.Release(ctx, c, 4); err != nil {
		t.Fatalf("Release: %v", err)
	}
	o, _, err := s.Claim(ctx, "d", req("b", 100))
	if err != nil || o == nil || o.ID != c.ID || o.Done != 4 {
		t.Fatalf("Claim after Release = %+v, %v; want claim %d with done 4", o, err, c.ID)
	}
}

func testBacklog(t *testing.T, s Store) {
	ctx := context.Background()
	ensure(t, s, "d")
	if b, err := s.Backlog(ctx, "d"); err != nil || b.Spans != 0 || !b.Oldest.IsZero() {
		t.Fatalf("empty Backlog = %+v, %v", b, err)
	}
	start := time.Now()
	write(t, s, Spans(10, 5, start))
	write(t, s, Spans(20, 5, start))
	write(t, s, Spans(30, 5, start))
	b, err := s.Backlog(ctx, "d")
	if err != nil || b.Spans != 60 {
		t.Fatalf("Backlog = %+v, %v; want 60 spans", b, err)
	}
	if d := b.Oldest.Sub(start); d < -5*time.Second || d > 5*time.Second {
		t.Fatalf("Backlog oldest %s is far from the write at %s", b.Oldest, start)
	}
	c, _, err := s.Claim(ctx, "d", req("o", 10))
	if err != nil || c == nil {
		t.Fatal(c, err)
	}
	if err := s.Renew(ctx, c, 4, time.Minute); err != nil {
		t.Fatal(err)
	}
	if b, _ := s.Backlog(ctx, "d"); b.Spans != 56 {
		t.Fatalf("Backlog with 4 spans of a claim done = %d, want 56", b.Spans)
	}
	if err := s.Complete(ctx, c); err != nil {
		t.Fatal(err)
	}
	if b, _ := s.Backlog(ctx, "d"); b.Spans != 50 {
		t.Fatalf("Backlog after completing the claim = %d, want 50", b.Spans)
	}
	drain(t, s, "d", 1000)
	if b, _ := s.Backlog(ctx, "d"); b.Spans != 0 || !b.Oldest.IsZero() {
		t.Fatalf("Backlog after draining = %+v, want none", b)
	}
}

func testDeadLettersAndRequeue(t *testing.T, s Store) {
	ctx := context.Background()
	ensure(t, s, "a")
	ensure(t, s, "b")
	spans := Spans(9, 3, time.Now())
	write(t, s, spans)
	drain(t, s, "a", 100)
	drain(t, s, "b", 100)
	ida, err := s.AddDeadLetter(ctx, store.DeadLetter{Destination: "a", SpanIDs: ids(spans[:3]), Reason: "400 bad payload"})
	if err != nil {
		t.Fatal(err)
	}
	idb, err := s.AddDeadLetter(ctx, store.DeadLetter{Destination: "b", SpanIDs: ids(spans[3:5]), Reason: "401"})
	if err != nil {
		t.Fatal(err)
	}
	ida2, err := s.AddDeadLetter(ctx, store.DeadLetter{Destination: "a", SpanIDs: ids(spans[5:]), Reason: "413"})
	if err != nil {
		t.Fatal(err)
	}
	all, err := s.DeadLetters(ctx, store.DeadLetterFilter{})
	if err != nil || len(all) != 3 {
		t.Fatalf("DeadLetters = %d, %v; want 3", len(all), err)
	}
	if all[0].ID != ida || all[0].Destination != "a" || all[0].Reason != "400 bad payload" ||
		!slices.Equal(all[0].SpanIDs, ids(spans[:3])) || time.Since(all[0].CreatedAt) > time.Minute {
		t.Fatalf("first dead letter = %+v", all[0])
	}
	if onlyA, _ := s.DeadLetters(ctx, store.DeadLetterFilter{Destinations: []string{"a"}}); len(onlyA) != 2 {
		t.Fatalf("dead letters of a = %d, want 2", len(onlyA))
	}
	if one, _ := s.DeadLetters(ctx, store.DeadLetterFilter{IDs: []int64{idb}}); len(one) != 1 || one[0].Destination != "b" {
		t.Fatalf("dead letter by id = %+v", one)
	}
	if lim, _ := s.DeadLetters(ctx, store.DeadLetterFilter{Limit: 1}); len(lim) != 1 {
		t.Fatalf("limited list = %d, want 1", len(lim))
	}

	letters, n, err := s.Requeue(ctx, store.DeadLetterFilter{Destinations: []string{"a"}, IDs: []int64{ida, idb}})
	if err != nil || letters != 1 || n != 3 {
		t.Fatalf("Requeue(a, ids) = %d letters, %d spans, %v; want 1, 3", letters, n, err)
	}
	if got := drain(t, s, "b", 100); len(got) != 0 {
		t.Fatalf("destination b got %v from a's requeue", got)
	}
	if got := drain(t, s, "a", 100); !slices.Equal(sorted(got), sorted(ids(spans[:3]))) {
		t.Fatalf("destination a got %v after requeue, want %v", got, ids(spans[:3]))
	}
	rest, _ := s.DeadLetters(ctx, store.DeadLetterFilter{})
	if len(rest) != 2 || rest[0].ID != idb || rest[1].ID != ida2 {
		t.Fatalf("dead letters left = %+v", rest)
	}
	if letters, n, err := s.Requeue(ctx, store.DeadLetterFilter{}); err != nil || letters != 2 || n != 6 {
		t.Fatalf("Requeue(all) = %d, %d, %v; want 2, 6", letters, n, err)
	}
	if got := drain(t, s, "b", 100); !slices.Equal(sorted(got), sorted(ids(spans[3:5]))) {
		t.Fatalf("b after requeue got %v", got)
	}
	if rest, _ := s.DeadLetters(ctx, store.DeadLetterFilter{}); len(rest) != 0 {
		t.Fatalf("dead letters left after requeue of all: %d", len(rest))
	}
}

func testReplay(t *testing.T, s Store) {
	ctx := context.Background()
	ensure(t, s, "a")
	ensure(t, s, "b")
	old := Spans(10, 5, time.Now().Add(-3*time.Hour))
	recent := Spans(2500, 500, time.Now().Add(-time.Minute))
	write(t, s, old)
	write(t, s, recent)
	drain(t, s, "a", 10000)
	drain(t, s, "b", 10000)

	n, err := s.Replay(ctx, "a", store.ReplaySelection{Since: time.Now().Add(-2 * time.Hour)})
	if err != nil || n != len(recent) {
		t.Fatalf("Replay since 2h = %d, %v; want %d", n, err, len(recent))
	}
	if got := drain(t, s, "b", 10000); len(got) != 0 {
		t.Fatalf("b got %d spans of a's replay", len(got))
	}
	if got := drain(t, s, "a", 10000); !slices.Equal(sorted(got), sorted(ids(recent))) {
		t.Fatalf("a got %d spans from the replay, want the %d recent ones", len(got), len(recent))
	}
	n, err = s.Replay(ctx, "b", store.ReplaySelection{TraceID: old[0].TraceID})
	if err != nil || n != 5 {
		t.Fatalf("Replay of one trace = %d, %v; want 5", n, err)
	}
	if got := drain(t, s, "b", 10000); !slices.Equal(sorted(got), sorted(ids(old[:5]))) {
		t.Fatalf("b got %v, want the trace's spans", got)
	}
	if n, err := s.Replay(ctx, "b", store.ReplaySelection{TraceID: "ffffffffffffffffffffffffffffffff"}); err != nil || n != 0 {
		t.Fatalf("Replay of an unknown trace = %d, %v", n, err)
	}
}

func testTrim(t *testing.T, s Store) {
	ctx := context.Background()
	ensure(t, s, "a")
	ensure(t, s, "b")
	for range 10 {
		write(t, s, Spans(3, 3, time.Now()))
	}
	// a takes everything; b takes three rows and holds a claim on two more.
	drain(t, s, "a", 100)
	first, _, err := s.Claim(ctx, "b", req("b", 9))
	if err != nil || first == nil || first.Spans != 9 {
		t.Fatalf("Claim = %+v, %v; want three rows", first, err)
	}
	if err := s.Complete(ctx, first); err != nil {
		t.Fatal(err)
	}
	held, _, err := s.Claim(ctx, "b", req("b", 6))
	if err != nil || held == nil {
		t.Fatal(held, err)
	}
	if err := s.Release(ctx, held, 0); err != nil { // expired: still covered
		t.Fatal(err)
	}
	n, err := s.Trim(ctx, []string{"a", "b"}, 2)
	if err != nil || n != 2 {
		t.Fatalf("Trim limit 2 = %d, %v; want 2", n, err)
	}
	n, err = s.Trim(ctx, []string{"a", "b"}, 100)
	if err != nil || n != 1 {
		t.Fatalf("Trim = %d, %v; want the third row below b's claim", n, err)
	}
	// The claimed rows survive and can still be delivered.
	got := drain(t, s, "b", 100)
	if len(got) != 21 {
		t.Fatalf("b drained %d after trimming, want 21 (claim 6 + 15 unclaimed)", len(got))
	}
	if n, err := s.Trim(ctx, []string{"a", "b"}, 100); err != nil || n != 7 {
		t.Fatalf("Trim after b caught up = %d, %v; want 7", n, err)
	}
	// A destination that never had a cursor does not hold the log back.
	write(t, s, Spans(3, 3, time.Now()))
	drain(t, s, "a", 100)
	drain(t, s, "b", 100)
	if n, err := s.Trim(ctx, []string{"a", "b", "never-started"}, 100); err != nil || n != 1 {
		t.Fatalf("Trim with an unknown destination = %d, %v; want 1", n, err)
	}
	// A destination removed from the configuration does not hold the log
	// back, not even with a claim it handed back on its way out.
	ensure(t, s, "removed")
	write(t, s, Spans(3, 3, time.Now()))
	drain(t, s, "a", 100)
	drain(t, s, "b", 100)
	gone, _, err := s.Claim(ctx, "removed", req("removed", 9))
	if err != nil || gone == nil {
		t.Fatalf("Claim for the destination about to go = %+v, %v", gone, err)
	}
	if err := s.Release(ctx, gone, 0); err != nil {
		t.Fatal(err)
	}
	// While the claim is held (another replica may still run the
	// destination), it counts.
	held, _, err = s.Claim(ctx, "removed", req("removed", 9))
	if err != nil || held == nil {
		t.Fatalf("taking the handed-back claim = %+v, %v", held, err)
	}
	if n, err := s.Trim(ctx, []string{"a", "b"}, 100); err != nil || n != 0 {
		t.Fatalf("Trim under a claim someone holds = %d, %v; want 0", n, err)
	}
	if err := s.Release(ctx, held, 0); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Trim(ctx, []string{"a", "b"}, 100); err != nil || n != 1 {
		t.Fatalf("Trim past a removed destination's claim = %d, %v; want 1", n, err)
	}
	// Nothing configured: everything settled can go.
	write(t, s, Spans(3, 3, time.Now()))
	if n, err := s.Trim(ctx, nil, 100); err != nil || n != 1 {
		t.Fatalf("Trim without destinations = %d, %v; want 1", n, err)
	}
}

func countRows(t *testing.T, s Store, table string) int {
	t.Helper()
	var n int
	if err := s.DB().QueryRow(`SELECT count(*) FROM ` + table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func testPrune(t *testing.T, s Store) {
	ctx := context.Background()
	ensure(t, s, "d")
	old := time.Now().Add(-48 * time.Hour)
	oldSpans := Spans(25, 5, old) // 5 traces
	newSpans := Spans(10, 5, time.Now())
	write(t, s, oldSpans)
	write(t, s, newSpans)
	traces, spans := s.Tables()
	// Trace rows are stamped by the write; age them like their spans.
	var oldTraces []any
	for i := 0; i < len(oldSpans); i += 5 {
		oldTraces = append(oldTraces, oldSpans[i].TraceID)
	}
	ph := "?"
	if s.Dialect() == "postgres" {
		ph = "$1"
	}
	for _, id := range oldTraces {
		if _, err := s.DB().Exec(`UPDATE `+traces+` SET created_at = '`+model.FormatTime(old)+`' WHERE trace_id = `+ph, id); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.AddDeadLetter(ctx, store.DeadLetter{Destination: "d", SpanIDs: []string{"a"}, Reason: "x", CreatedAt: old}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddDeadLetter(ctx, store.DeadLetter{Destination: "d", SpanIDs: []string{"b"}, Reason: "y"}); err != nil {
		t.Fatal(err)
	}
	cutoff := time.Now().Add(-24 * time.Hour)
	var total store.Pruned
	rounds := 0
	for {
		p, err := s.Prune(ctx, cutoff, 10)
		if err != nil {
			t.Fatalf("Prune: %v", err)
		}
		if p.Spans > 10 || p.Traces > 10 || p.LogRows > 10 || p.DeadLetters > 10 {
			t.Fatalf("a round deleted more than the limit: %+v", p)
		}
		total.Spans += p.Spans
		total.Traces += p.Traces
		total.LogRows += p.LogRows
		total.DeadLetters += p.DeadLetters
		rounds++
		if p.Total() == 0 {
			break
		}
	}
	if rounds < 3 {
		t.Errorf("25 old spans pruned in %d rounds of 10; want batches", rounds)
	}
	if total.Spans != 25 || total.Traces != 5 || total.DeadLetters != 1 {
		t.Fatalf("pruned %+v; want 25 spans, 5 traces, 1 dead letter", total)
	}
	if n := countRows(t, s, spans); n != 10 {
		t.Fatalf("%d spans left, want the 10 recent", n)
	}
	if n := countRows(t, s, traces); n != 2 {
		t.Fatalf("%d traces left, want 2", n)
	}
	if dl, _ := s.DeadLetters(ctx, store.DeadLetterFilter{}); len(dl) != 1 || dl[0].Reason != "y" {
		t.Fatalf("dead letters left: %+v", dl)
	}
	// Log rows pointing at pruned spans still claim; the spans are just gone.
	got := drain(t, s, "d", 1000)
	loaded, err := s.Spans(ctx, got)
	if err != nil || len(loaded) != 10 {
		t.Fatalf("loaded %d spans of %d claimed ids (%v); want the 10 recent", len(loaded), len(got), err)
	}
	// A cutoff in the future removes the log rows too.
	p, err := s.Prune(ctx, time.Now().Add(time.Hour), 1000)
	if err != nil || p.LogRows != 2 {
		t.Fatalf("Prune of everything = %+v, %v; want the 2 log rows", p, err)
	}
}

// testConcurrentWritersAndClaimers checks that, with writes committing
// concurrently and claimers racing, every span is claimed exactly once.
func testConcurrentWritersAndClaimers(t *testing.T, s Store) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ensure(t, s, "d")
	const writers, batches, perBatch = 4, 25, 20
	var wg sync.WaitGroup
	var mu sync.Mutex
	var want []string
	for range writers {
		wg.Go(func() {
			for range batches {
				b := Spans(perBatch, 4, time.Now())
				if err := s.Write(ctx, b); err != nil {
					t.Errorf("Write: %v", err)
					return
				}
				mu.Lock()
				want = append(want, ids(b)...)
				mu.Unlock()
			}
		})
	}
	writing := make(chan struct{})
	go func() { wg.Wait(); close(writing) }()

	var got []string
	var claimers sync.WaitGroup
	for i := range 3 {
		claimers.Go(func() {
			done := false
			for {
				c, _, err := s.Claim(ctx, "d", req(fmt.Sprint("c", i), 50))
				if err != nil {
					t.Errorf("Claim: %v", err)
					return
				}
				if c == nil {
					if done {
						return
					}
					select {
					case <-writing:
						done = true // one more pass after the last write
					case <-time.After(5 * time.Millisecond):
					}
					continue
				}
				spanIDs, err := claimedIDs(ctx, s, c)
				if err != nil {
					t.Errorf("ClaimSpanIDs: %v", err)
					return
				}
				if err := s.Complete(ctx, c); err != nil {
					t.Errorf("Complete: %v", err)
					return
				}
				mu.Lock()
				got = append(got, spanIDs...)
				mu.Unlock()
			}
		})
	}
	claimers.Wait()
	if t.Failed() {
		return
	}
	// A claimer may see "nothing" while another holds the cursor lock; a
	// last drain picks up whatever that left.
	got = append(got, drain(t, s, "d", 1000)...)
	if len(got) != len(want) {
		t.Fatalf("claimed %d span ids, want %d (each exactly once)", len(got), len(want))
	}
	if !slices.Equal(sorted(got), sorted(want)) {
		t.Fatal("claimed span ids differ from the written ones")
	}
}

// claimedIDs is ClaimSpanIDs with the rows joined. A claim that came with
// its span ids must list what ClaimSpanIDs lists, row by row.
func claimedIDs(ctx context.Context, s Store, c *store.Claim) ([]string, error) {
	rows, err := s.ClaimSpanIDs(ctx, c)
	if err == nil && c.SpanIDs != nil && !slices.EqualFunc(c.SpanIDs, rows, slices.Equal) {
		return nil, fmt.Errorf("claim %d came with span ids %v, ClaimSpanIDs lists %v", c.ID, c.SpanIDs, rows)
	}
	return slices.Concat(rows...), err
}

// settled waits until rows added by Requeue or Replay can be claimed.
func settled(s Store) {
	if h, ok := s.(*harness); ok {
		h.wait()
	}
}

func status(t *testing.T, s Store, dest string) store.DestinationStatus {
	t.Helper()
	st, err := s.Status(context.Background(), dest)
	if err != nil {
		t.Fatalf("Status(%s): %v", dest, err)
	}
	return st
}

func known(t *testing.T, s Store) []string {
	t.Helper()
	names, err := s.KnownDestinations(context.Background())
	if err != nil {
		t.Fatalf("KnownDestinations: %v", err)
	}
	return names
}

func record(t *testing.T, s Store, r store.WorkerReport) {
	t.Helper()
	if err := s.RecordWorker(context.Background(), r); err != nil {
		t.Fatalf("RecordWorker(%s, %s): %v", r.Destination, r.Owner, err)
	}
}

// testWorkerReports: one report per destination and replica, replaced by
// the next; live while ValidFor holds; long-stopped ones cleaned up.
func testWorkerReports(t *testing.T, s Store) {
	errAt := time.Now().Add(-time.Minute).Truncate(time.Millisecond)
	record(t, s, store.WorkerReport{Destination: "d", Owner: "r1", Circuit: store.CircuitClosed, ValidFor: time.Minute})
	record(t, s, store.WorkerReport{Destination: "d", Owner: "r1", Circuit: store.CircuitOpen, Failures: 5, Retries: 7,
		LastError: "503 Service Unavailable: try later", LastErrorAt: errAt, ValidFor: time.Minute})
	time.Sleep(5 * time.Millisecond) // r2 is the newer report
	record(t, s, store.WorkerReport{Destination: "d", Owner: "r2", Circuit: store.CircuitClosed, ValidFor: 0})
	record(t, s, store.WorkerReport{Destination: "other", Owner: "r1", Circuit: store.CircuitHalfOpen, ValidFor: time.Minute})

	st := status(t, s, "d")
	if len(st.Workers) != 2 {
		t.Fatalf("reports of d = %+v; want one per replica", st.Workers)
	}
	r2, r1 := st.Workers[0], st.Workers[1]
	if r2.Owner != "r2" || r2.Live || r2.Circuit != store.CircuitClosed || r2.LastError != "" || !r2.LastErrorAt.IsZero() {
		t.Errorf("newest report = %+v; want r2, stopped (ValidFor 0), no error", r2)
	}
	if r1.Owner != "r1" || !r1.Live || r1.Circuit != store.CircuitOpen || r1.Failures != 5 || r1.Retries != 7 ||
		r1.LastError != "503 Service Unavailable: try later" || !r1.LastErrorAt.Equal(errAt) || r1.Destination != "d" {
		t.Errorf("r1's report = %+v; want the second one recorded, live", r1)
	}
	if d := time.Since(r1.UpdatedAt); d < -5*time.Second || d > time.Minute {
		t.Errorf("r1 updated at %s, far from now", r1.UpdatedAt)
	}
	if st := status(t, s, "other"); len(st.Workers) != 1 || st.Workers[0].Circuit != store.CircuitHalfOpen {
		t.Errorf("reports of other = %+v", st.Workers)
	}
	if got := known(t, s); !slices.Equal(got, []string{"d", "other"}) {
		t.Errorf("KnownDestinations = %v, want [d other]", got)
	}
	// A report that stopped holding longer than WorkerReportKeep ago goes
	// when another replica reports; a recent stopped one stays.
	record(t, s, store.WorkerReport{Destination: "d", Owner: "dead", Circuit: store.CircuitOpen,
		ValidFor: -store.WorkerReportKeep - time.Hour})
	if n := len(status(t, s, "d").Workers); n != 3 {
		t.Fatalf("%d reports, want 3 before the clean-up", n)
	}
	record(t, s, store.WorkerReport{Destination: "d", Owner: "r1", Circuit: store.CircuitClosed, ValidFor: time.Minute})
	st = status(t, s, "d")
	var owners []string
	for _, r := range st.Workers {
		owners = append(owners, r.Owner)
	}
	if slices.Sort(owners); !slices.Equal(owners, []string{"r1", "r2"}) {
		t.Fatalf("reports after the clean-up = %v; want r1 and r2", owners)
	}
}

// testStatus: backlog, queued replay and requeue work (in and outside
// claims, less what a claim recorded as done), claims and dead letters.
func testStatus(t *testing.T, s Store) {
	ctx := context.Background()
	if st := status(t, s, "d"); st.Started || st.Backlog.Spans != 0 || st.Queued != 0 || st.Claims != 0 ||
		st.DeadLetters != 0 || len(st.Workers) != 0 || st.Lag() != 0 {
		t.Fatalf("status of an unknown destination = %+v; want nothing", st)
	}
	ensure(t, s, "d")
	ensure(t, s, "other")
	start := time.Now()
	first := Spans(10, 5, start)
	write(t, s, first)
	write(t, s, Spans(20, 5, start))
	drain(t, s, "other", 1000)
	if n, err := s.Replay(ctx, "d", store.ReplaySelection{TraceID: first[0].TraceID}); err != nil || n != 5 {
		t.Fatalf("Replay = %d, %v", n, err)
	}
	settled(s)
	for _, n := range []int{3, 2} {
		if _, err := s.AddDeadLetter(ctx, store.DeadLetter{Destination: "d", SpanIDs: ids(first[:n]), Reason: "400"}); err != nil {
			t.Fatal(err)
		}
	}
	st := status(t, s, "d")
	if !st.Started || st.Backlog.Spans != 35 || st.Queued != 5 || st.Claims != 0 || st.Held != 0 ||
		st.DeadLetters != 2 || st.DeadLetterSpans != 5 {
		t.Fatalf("status = %+v; want 35 spans behind (5 of them replayed), 2 dead letters of 5 spans", st)
	}
	if lag := st.Lag(); lag < 0 || lag > time.Minute {
		t.Fatalf("lag = %s, want the age of the first write", lag)
	}
	if st := status(t, s, "other"); st.Backlog.Spans != 0 || st.Queued != 0 || st.DeadLetters != 0 || st.Lag() != 0 {
		t.Fatalf("status of the other destination = %+v; want nothing behind", st)
	}
	// One claim takes the three rows: 10 + 20 shared spans, then the 5
	// replayed; the claim's done counts them in that order.
	c, _, err := s.Claim(ctx, "d", req("o", 1000))
	if err != nil || c == nil || c.Spans != 35 {
		t.Fatalf("Claim = %+v, %v; want all 35 spans", c, err)
	}
	cases := []struct {
		done           int
		backlog, queue int64
	}{{0, 35, 5}, {30, 5, 5}, {32, 3, 3}}
	for _, tc := range cases {
		if err := s.Renew(ctx, c, tc.done, time.Minute); err != nil {
			t.Fatal(err)
		}
		st := status(t, s, "d")
		if st.Backlog.Spans != tc.backlog || st.Queued != tc.queue || st.Claims != 1 || st.Held != 1 {
			t.Errorf("done %d: status = %+v; want %d behind, %d queued, one claim held", tc.done, st, tc.backlog, tc.queue)
		}
	}
	if err := s.Release(ctx, c, 32); err != nil {
		t.Fatal(err)
	}
	if st := status(t, s, "d"); st.Claims != 1 || st.Held != 0 || st.Queued != 3 {
		t.Errorf("after Release: status = %+v; want one claim, none held, 3 queued", st)
	}
	if _, err := s.AddDeadLetter(ctx, store.DeadLetter{Destination: "gone", SpanIDs: []string{"a"}, Reason: "x"}); err != nil {
		t.Fatal(err)
	}
	if got := known(t, s); !slices.Equal(got, []string{"d", "gone", "other"}) {
		t.Errorf("KnownDestinations = %v; want every name with a cursor, claim, dead letter or report", got)
	}
}
