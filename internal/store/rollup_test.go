package store_test

import (
	"context"
	"encoding/json"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kern-agents/trace-gateway/internal/convert"
	"github.com/kern-agents/trace-gateway/internal/model"
	"github.com/kern-agents/trace-gateway/internal/semantics"
	"github.com/kern-agents/trace-gateway/internal/sim"
	"github.com/kern-agents/trace-gateway/internal/store"
	"github.com/kern-agents/trace-gateway/internal/store/postgres"
	"github.com/kern-agents/trace-gateway/internal/store/sqlite"
	"github.com/kern-agents/trace-gateway/internal/testdb"
)

type summarizingStore interface {
	store.Store
	store.Summarizer
}

// stores opens each driver on a fresh database.
func stores(t *testing.T) map[string]func(t *testing.T) summarizingStore {
	return map[string]func(t *testing.T) summarizingStore{
		"sqlite": func(t *testing.T) summarizingStore {
			st, err := sqlite.Open(context.Background(), store.Options{DSN: filepath.Join(t.TempDir(), "t.db")})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			return st
		},
		"postgres": func(t *testing.T) summarizingStore {
			dsn, schema := testdb.Postgres(t)
			st, err := postgres.Open(context.Background(), store.Options{DSN: dsn, Schema: schema})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			return st
		},
	}
}

// workload is simulated agent runs spread over 20 minutes, with resent
// spans, split into shuffled batches (children often before their root).
func workload(t *testing.T, r *rand.Rand) [][]model.Span {
	td, _, err := sim.CaptureTraces(context.Background(), sim.Options{Count: 120, Seed: 3, ErrorRatio: 0.2, Spread: 20 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	spans, rej := convert.FromOTLP(td, time.Now(), convert.Limits{})
	if len(rej) > 0 || len(spans) == 0 {
		t.Fatalf("%d spans, %d rejected", len(spans), len(rej))
	}
	for range len(spans) / 10 {
		spans = append(spans, spans[r.IntN(len(spans))]) // re-sent
	}
	r.Shuffle(len(spans), func(i, j int) { spans[i], spans[j] = spans[j], spans[i] })
	var batches [][]model.Span
	for len(spans) > 0 {
		n := min(len(spans), 1+r.IntN(80))
		batches = append(batches, spans[:n])
		spans = spans[n:]
	}
	return batches
}

// fromRows is the summary computed from the stored rows themselves.
func fromRows(t *testing.T, st store.Store, start, end time.Time) *store.Summary {
	t.Helper()
	traces, spans := st.Tables()
	db := st.DB()
	ph := func(n int) string {
		if st.Dialect() == "postgres" {
			return "$" + string(rune('0'+n))
		}
		return "?"
	}
	out := &store.Summary{}
	lo, hi := model.FormatTime(start), model.FormatTime(end)
	rows, err := db.Query(`SELECT status, duration_ms FROM `+traces+` WHERE start_time >= `+ph(1)+` AND start_time < `+ph(2), lo, hi)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var status string
		var d int64
		if err := rows.Scan(&status, &d); err != nil {
			t.Fatal(err)
		}
		out.Add(status, store.DurationBucket(d), 1)
	}
	rows.Close()
	rows, err = db.Query(`SELECT attributes FROM `+spans+` WHERE start_time >= `+ph(1)+` AND start_time < `+ph(2), lo, hi)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var raw []byte
		if err := rows.Scan(&raw); err != nil {
			t.Fatal(err)
		}
		var a map[string]any
		if err := json.Unmarshal(raw, &a); err != nil {
			t.Fatal(err)
		}
		if a[semantics.AttrSpanKind] != semantics.KindLLM {
			continue
		}
		u := model.Usage{Calls: 1}
		u.Model, _ = a[semantics.AttrModelName].(string)
		num := func(k string) (int64, bool) { f, ok := a[k].(float64); return int64(f), ok }
		u.Input, _ = num(semantics.AttrTokensPrompt)
		u.Output, _ = num(semantics.AttrTokensCompletion)
		if tot, ok := num(semantics.AttrTokensTotal); ok {
			u.Total = tot
		} else {
			u.Total = u.Input + u.Output
		}
		out.Models = store.MergeModels(out.Models, u)
	}
	slices.SortFunc(out.Models, func(a, b model.Usage) int { return strings.Compare(a.Model, b.Model) })
	return out
}

func TestSummarizeMatchesTheRows(t *testing.T) {
	for name, open := range stores(t) {
		t.Run(name, func(t *testing.T) {
			st := open(t)
			r := rand.New(rand.NewPCG(1, 2))
			batches := workload(t, r)
			// Two writers, as the gateway runs them.
			var wg sync.WaitGroup
			ch := make(chan []model.Span)
			errs := make(chan error, len(batches))
			for range 2 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for b := range ch {
						if err := st.Write(context.Background(), b); err != nil {
							errs <- err
						}
					}
				}()
			}
			for _, b := range batches {
				ch <- b
			}
			close(ch)
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}

			now := time.Now()
			windows := [][2]time.Time{
				{now.Add(-time.Hour), now.Add(time.Hour)},                                            // all, edges only partial
				{now.Add(-10*time.Minute - 17*time.Second), now.Add(-3*time.Minute + 5*time.Second)}, // partial minutes at both ends
				{now.Add(-5 * time.Minute).Truncate(time.Minute), now.Truncate(time.Minute)},         // whole minutes only
				{now.Add(-90 * time.Second), now.Add(-80 * time.Second)},                             // inside one minute
			}
			total := int64(0)
			for _, w := range windows {
				got, err := st.Summarize(context.Background(), w[0], w[1])
				if err != nil {
					t.Fatal(err)
				}
				want := fromRows(t, st, w[0], w[1])
				if got.Traces != want.Traces || got.Errors != want.Errors {
					t.Errorf("%v: %d traces %d errors, rows have %d and %d", w, got.Traces, got.Errors, want.Traces, want.Errors)
				}
				if !mapsEqual(got.Durations, want.Durations) {
					t.Errorf("%v: duration buckets differ from the rows'", w)
				}
				if !slices.Equal(got.Models, want.Models) {
					t.Errorf("%v: usage %+v, rows give %+v", w, got.Models, want.Models)
				}
				total += got.Traces
			}
			if total == 0 {
				t.Fatal("no trace in any window: the test proves nothing")
			}
		})
	}
}

func mapsEqual(a, b map[int]int64) bool {
	clean := func(m map[int]int64) map[int]int64 {
		out := map[int]int64{}
		for k, v := range m {
			if v != 0 {
				out[k] = v
			}
		}
		return out
	}
	ca, cb := clean(a), clean(b)
	if len(ca) != len(cb) {
		return false
	}
	for k, v := range ca {
		if cb[k] != v {
			return false
		}
	}
	return true
}

func TestPercentileIsWithinABucketOfTheExactOne(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	var durations []float64
	s := &store.Summary{}
	for range 5000 {
		d := int64(math.Exp(r.Float64() * 12)) // 1 ms .. 2.7 min, log-uniform
		durations = append(durations, float64(d))
		s.Add("OK", store.DurationBucket(d), 1)
	}
	sort.Float64s(durations)
	for _, p := range []float64{0, 0.5, 0.95, 0.99, 1} {
		pos := p * float64(len(durations)-1)
		lo := int(math.Floor(pos))
		exact := durations[lo]
		if lo+1 < len(durations) {
			exact += (pos - float64(lo)) * (durations[lo+1] - durations[lo])
		}
		got, ok := s.Percentile(p)
		if !ok || math.Abs(got-exact) > 0.011*exact+0.5 {
			t.Errorf("p%.0f = %.1f, exact %.1f", p*100, got, exact)
		}
	}
	if _, ok := (&store.Summary{}).Percentile(0.5); ok {
		t.Error("a percentile of no traces")
	}
}

func TestSummaryWindows(t *testing.T) {
	at := func(s string) time.Time { v, _ := time.Parse(time.RFC3339Nano, s); return v }
	tests := []struct {
		start, end string
		from, to   string
		edges      int
	}{
		{"2025-01-01T10:00:00Z", "2025-01-01T11:00:00Z", "2025-01-01T10:00", "2025-01-01T11:00", 0},
		{"2025-01-01T10:00:30Z", "2025-01-01T11:00:00Z", "2025-01-01T10:01", "2025-01-01T11:00", 1},
		{"2025-01-01T10:00:30Z", "2025-01-01T10:59:10Z", "2025-01-01T10:01", "2025-01-01T10:59", 2},
		{"2025-01-01T10:00:30Z", "2025-01-01T10:00:40Z", "", "", 1},
		{"2025-01-01T10:00:30Z", "2025-01-01T10:01:10Z", "", "", 1},
	}
	for _, tt := range tests {
		from, to, edges := store.SummaryWindows(at(tt.start), at(tt.end))
		if from != tt.from || to != tt.to || len(edges) != tt.edges {
			t.Errorf("%s..%s: %q..%q with %d edges, want %q..%q with %d", tt.start, tt.end, from, to, len(edges), tt.from, tt.to, tt.edges)
		}
	}
}

// TestRollupsAreBackfilledOnUpgrade: a database written before the rollups
// existed gets them filled when the gateway starts on it.
func TestRollupsAreBackfilledOnUpgrade(t *testing.T) {
	dsn, schema := testdb.Postgres(t)
	file := filepath.Join(t.TempDir(), "t.db")
	open := map[string]func() (summarizingStore, error){
		"sqlite": func() (summarizingStore, error) {
			return sqlite.Open(context.Background(), store.Options{DSN: file})
		},
		"postgres": func() (summarizingStore, error) {
			return postgres.Open(context.Background(), store.Options{DSN: dsn, Schema: schema})
		},
	}
	for name, o := range open {
		t.Run(name, func(t *testing.T) {
			st, err := o()
			if err != nil {
				t.Fatal(err)
			}
			for _, b := range workload(t, rand.New(rand.NewPCG(7, 8))) {
				if err := st.Write(context.Background(), b); err != nil {
					t.Fatal(err)
				}
			}
			now := time.Now()
			before, err := st.Summarize(context.Background(), now.Add(-time.Hour), now.Add(time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			prefix := ""
			if name == "postgres" {
				prefix = schema + "."
			}
			for _, table := range []string{store.RollupTracesTable, store.RollupModelsTable} {
				if _, err := st.DB().Exec(`DROP TABLE ` + prefix + table); err != nil {
					t.Fatal(err)
				}
			}
			st.Close()
			st, err = o()
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			after, err := st.Summarize(context.Background(), now.Add(-time.Hour), now.Add(time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			if before.Traces == 0 || after.Traces != before.Traces || after.Errors != before.Errors ||
				!mapsEqual(after.Durations, before.Durations) || !slices.Equal(after.Models, before.Models) {
				t.Errorf("after the backfill %d traces %d errors %+v, before %d %d %+v",
					after.Traces, after.Errors, after.Models, before.Traces, before.Errors, before.Models)
			}
		})
	}
}
