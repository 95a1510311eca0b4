package postgres

import (
	"context"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/kern-agents/trace-gateway/internal/model"
	"github.com/kern-agents/trace-gateway/internal/store"
	"github.com/kern-agents/trace-gateway/internal/store/deliverytest"
)

func TestDeliveryLog(t *testing.T) {
	deliverytest.Run(t, func(t *testing.T) deliverytest.Store {
		return openStore(t, freshOptions(t)).(*Store)
	}, func(t *testing.T, s deliverytest.Store) { settle(t, s.(*Store)) })
}

// settle waits until every log row is older than the oldest writing
// transaction still open on the server, so that it can be claimed. Other
// tests (and other packages' tests) share the server, and any of their
// open transactions holds rows back for a moment.
func settle(t *testing.T, s *Store) {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var ok bool
		err := s.pool.QueryRow(ctx, `SELECT coalesce((SELECT tx_id < pg_snapshot_xmin(pg_current_snapshot())
			FROM `+s.dq.log+` ORDER BY tx_id DESC LIMIT 1), true)`).Scan(&ok)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("delivery-log rows still held back by an open transaction after 30s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func claimAll(t *testing.T, s *Store, dest string) []string {
	t.Helper()
	ctx := context.Background()
	var got []string
	for {
		c, _, err := s.Claim(ctx, dest, store.ClaimRequest{Owner: "t", Lease: time.Minute, MaxSpans: 1000})
		if err != nil {
			t.Fatalf("Claim: %v", err)
		}
		if c == nil {
			return got
		}
		ids, err := s.ClaimSpanIDs(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		// A fresh claim comes with its span ids, read in the same statement.
		if c.Attempts == 1 && !slices.EqualFunc(c.SpanIDs, ids, slices.Equal) {
			t.Fatalf("claim %d came with span ids %v, ClaimSpanIDs lists %v", c.ID, c.SpanIDs, ids)
		}
		got = append(got, slices.Concat(ids...)...)
		if err := s.Complete(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
}

// TestOutOfOrderCommitsAreNotSkipped holds a transaction open after it took
// a delivery-log id, lets a later Write (higher id) commit, and checks that
// the cursor does not move past the open transaction's row.
func TestOutOfOrderCommitsAreNotSkipped(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, freshOptions(t)).(*Store)
	if err := s.EnsureCursor(ctx, "d"); err != nil {
		t.Fatal(err)
	}
	spanIDs := func(spans []string) []string { s := slices.Clone(spans); sort.Strings(s); return s }

	t.Run("lower id commits later", func(t *testing.T) {
		slow, err := s.pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer slow.Rollback(ctx) //nolint:errcheck
		var slowID int64
		if err := slow.QueryRow(ctx, `INSERT INTO `+s.dq.log+` (span_count, span_ids)
			VALUES (1, ARRAY['00000000000000a1']) RETURNING id`).Scan(&slowID); err != nil {
			t.Fatal(err)
		}
		fast := deliverytest.Spans(10, 5, time.Now())
		if err := s.Write(ctx, fast); err != nil {
			t.Fatal(err)
		}
		var fastID int64
		if err := s.pool.QueryRow(ctx, `SELECT max(id) FROM `+s.dq.log).Scan(&fastID); err != nil {
			t.Fatal(err)
		}
		if fastID <= slowID {
			t.Fatalf("setup: committed row %d should have a higher id than the open one %d", fastID, slowID)
		}
		if got := claimAll(t, s, "d"); len(got) != 0 {
			t.Fatalf("claimed %d spans while an older transaction is open; an id cursor would now skip row %d", len(got), slowID)
		}
		if err := slow.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		settle(t, s)
		want := append([]string{"00000000000000a1"}, ids(fast)...)
		if got := claimAll(t, s, "d"); !slices.Equal(spanIDs(got), spanIDs(want)) {
			t.Fatalf("claimed %v after the commit, want %v", got, want)
		}
	})

	t.Run("older transaction takes a later id", func(t *testing.T) {
		slow, err := s.pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer slow.Rollback(ctx) //nolint:errcheck
		if _, err := slow.Exec(ctx, `SELECT pg_current_xact_id()`); err != nil {
			t.Fatal(err)
		}
		fast := deliverytest.Spans(10, 5, time.Now())
		if err := s.Write(ctx, fast); err != nil {
			t.Fatal(err)
		}
		if got := claimAll(t, s, "d"); len(got) != 0 {
			t.Fatalf("claimed %d spans while an older transaction is open", len(got))
		}
		if _, err := slow.Exec(ctx, `INSERT INTO `+s.dq.log+` (span_count, span_ids) VALUES (1, ARRAY['00000000000000a2'])`); err != nil {
			t.Fatal(err)
		}
		if err := slow.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		settle(t, s)
		want := append([]string{"00000000000000a2"}, ids(fast)...)
		if got := claimAll(t, s, "d"); !slices.Equal(spanIDs(got), spanIDs(want)) {
			t.Fatalf("claimed %v, want %v", got, want)
		}
	})

	t.Run("rolled back transaction", func(t *testing.T) {
		slow, err := s.pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := slow.Exec(ctx, `INSERT INTO `+s.dq.log+` (span_count, span_ids) VALUES (1, ARRAY['00000000000000a3'])`); err != nil {
			t.Fatal(err)
		}
		fast := deliverytest.Spans(5, 5, time.Now())
		if err := s.Write(ctx, fast); err != nil {
			t.Fatal(err)
		}
		if err := slow.Rollback(ctx); err != nil {
			t.Fatal(err)
		}
		settle(t, s)
		if got := claimAll(t, s, "d"); !slices.Equal(spanIDs(got), spanIDs(ids(fast))) {
			t.Fatalf("claimed %v, want %v", got, ids(fast))
		}
	})
}

func ids(spans []model.Span) []string {
	out := make([]string, len(spans))
	for i := range spans {
		out[i] = spans[i].SpanID
	}
	return out
}

// TestReplicasShareClaims runs claimers on two stores (two replicas' pools)
// over one schema while writers commit concurrently: every span is claimed
// exactly once.
func TestReplicasShareClaims(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	opts := freshOptions(t)
	a := openStore(t, opts).(*Store)
	b := openStore(t, opts).(*Store)
	if err := a.EnsureCursor(ctx, "d"); err != nil {
		t.Fatal(err)
	}
	if err := b.EnsureCursor(ctx, "d"); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var want, got []string
	var writers sync.WaitGroup
	for i := range 4 {
		w := []*Store{a, b}[i%2]
		writers.Go(func() {
			for range 20 {
				batch := deliverytest.Spans(15, 5, time.Now())
				if err := w.Write(ctx, batch); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				want = append(want, ids(batch)...)
				mu.Unlock()
			}
		})
	}
	stop := make(chan struct{})
	var claimers sync.WaitGroup
	perReplica := map[string]int{}
	for i, s := range []*Store{a, b, a, b} {
		owner := []string{"a", "b"}[i%2]
		claimers.Go(func() {
			for {
				c, _, err := s.Claim(ctx, "d", store.ClaimRequest{Owner: owner, Lease: time.Minute, MaxSpans: 30})
				if err != nil {
					t.Error(err)
					return
				}
				if c == nil {
					select {
					case <-stop:
						return
					case <-time.After(2 * time.Millisecond):
						continue
					}
				}
				rows, err := s.ClaimSpanIDs(ctx, c)
				spanIDs := slices.Concat(rows...)
				if err == nil {
					err = s.Complete(ctx, c)
				}
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				got = append(got, spanIDs...)
				perReplica[owner] += len(spanIDs)
				mu.Unlock()
			}
		})
	}
	writers.Wait()
	// Let the claimers catch up, then stop them and sweep what is left.
	deadline := time.Now().Add(20 * time.Second)
	for {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n >= len(want) || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	close(stop)
	claimers.Wait()
	settle(t, a)
	got = append(got, claimAll(t, a, "d")...)
	if len(got) != len(want) {
		t.Fatalf("claimed %d span ids, want %d exactly once", len(got), len(want))
	}
	sort.Strings(got)
	sort.Strings(want)
	if !slices.Equal(got, want) {
		t.Fatal("claimed ids differ from written ids")
	}
	if perReplica["a"] == 0 || perReplica["b"] == 0 {
		t.Errorf("work was not shared: %v", perReplica)
	}
}
