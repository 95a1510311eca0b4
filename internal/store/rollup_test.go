package store_test

import (
	"bytes"
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
	// Two tenants, as an authenticated gateway stamps them: their
	// resources differ, so do their origins.
	origins := map[string]*model.Origin{}
	for i := range spans {
		sp := &spans[i]
		tenant := tenantOf(sp.TraceID)
		o := origins[tenant]
		if o == nil {
			o = convert.NewOrigin(append([]byte(`{"kern.tenant":"`+tenant+`",`), sp.Origin.Resource[1:]...), sp.Origin.Scope)
			o.Tenant = tenant
			origins[tenant] = o
		}
		sp.Attributes = bytes.ReplaceAll(sp.Attributes, []byte(sp.Origin.ID), []byte(o.ID))
		sp.Origin = o
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

// tenantOf is the tenant the workload gives a trace.
func tenantOf(traceID string) string {
	if traceID[0] < '8' {
		return "tenant-a"
	}
	return "tenant-b"
}

// fromRows is the summary computed from the stored rows themselves, of one
// tenant or (nil) all.
func fromRows(t *testing.T, st store.Store, start, end time.Time, tenant *string) *store.Summary {
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
	mine := func(traceID string) bool { return tenant == nil || tenantOf(traceID) == *tenant }
	rows, err := db.Query(`SELECT trace_id, status, duration_ms FROM `+traces+` WHERE start_time >= `+ph(1)+` AND start_time < `+ph(2), lo, hi)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id, status string
		var d int64
		if err := rows.Scan(&id, &status, &d); err != nil {
			t.Fatal(err)
		}
		if mine(id) {
			out.Add(status, store.DurationBucket(d), 1)
		}
	}
	rows.Close()
	rows, err = db.Query(`SELECT trace_id, attributes FROM `+spans+` WHERE start_time >= `+ph(1)+` AND start_time < `+ph(2), lo, hi)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var raw []byte
		if err := rows.Scan(&id, &raw); err != nil {
			t.Fatal(err)
		}
		if !mine(id) {
			continue
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
			a, b, none := "tenant-a", "tenant-b", "nobody"
			total := map[string]int64{}
			for _, tenant := range []*string{nil, &a, &b, &none} {
				for _, w := range windows {
					got, err := st.Summarize(context.Background(), w[0], w[1], tenant)
					if err != nil {
						t.Fatal(err)
					}
					want := fromRows(t, st, w[0], w[1], tenant)
					if got.Traces != want.Traces || got.Errors != want.Errors {
						t.Errorf("%v %v: %d traces %d errors, rows have %d and %d", w, tenant, got.Traces, got.Errors, want.Traces, want.Errors)
					}
					if !mapsEqual(got.Durations, want.Durations) {
						t.Errorf("%v %v: duration buckets differ from the rows'", w, tenant)
					}
					if !slices.Equal(got.Models, want.Models) {
						t.Errorf("%v %v: usage %+v, rows give %+v", w, tenant, got.Models, want.Models)
					}
					if tenant != nil {
						total[*tenant] += got.Traces
					}
				}
			}
			if total[a] == 0 || total[b] == 0 || total[none] != 0 {
				t.Fatalf("traces seen per tenant: %v; the test proves nothing", total)
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
			before, err := st.Summarize(context.Background(), now.Add(-time.Hour), now.Add(time.Hour), nil)
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
			after, err := st.Summarize(context.Background(), now.Add(-time.Hour), now.Add(time.Hour), nil)
			if err != nil {
				t.Fatal(err)
			}
			if before.Traces == 0 || after.Traces != before.Traces || after.Errors != before.Errors ||
				!mapsEqual(after.Durations, before.Durations) || !slices.Equal(after.Models, before.Models) {
				t.Errorf("after the backfill %d traces %d errors %+v, before %d %d %+v",
					after.Traces, after.Errors, after.Models, before.Traces, before.Errors, before.Models)
			}
			a := "tenant-a"
			afterA, err := st.Summarize(context.Background(), now.Add(-time.Hour), now.Add(time.Hour), &a)
			if err != nil {
				t.Fatal(err)
			}
			if want := fromRows(t, st, now.Add(-time.Hour), now.Add(time.Hour), &a); afterA.Traces == 0 ||
				afterA.Traces != want.Traces || !slices.Equal(afterA.Models, want.Models) {
				t.Errorf("backfilled tenant-a: %d traces %+v, rows give %d %+v", afterA.Traces, afterA.Models, want.Traces, want.Models)
			}
		})
	}
}
