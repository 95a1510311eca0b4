package storetest

import (
	"database/sql"
	"fmt"
	"math/rand"
	"slices"
	"strings"
	"testing"

	"github.com/kern-agents/trace-gateway/internal/model"
	"github.com/kern-agents/trace-gateway/internal/store"
)

// The reference itself against the hand-written expectations.
func TestExpectedTraceRules(t *testing.T) {
	for _, tc := range ruleCases() {
		t.Run(tc.name, func(t *testing.T) {
			var all []model.Span
			for _, b := range tc.batches {
				all = append(all, b...)
			}
			want := tc.want
			want.TraceID = all[0].TraceID
			if got := ExpectedTrace(all); got != want {
				t.Errorf("\n got  %+v\n want %+v", got, want)
			}
		})
	}
}

// The stores' Go half (store.DeriveTraces and store.Merge) against the
// reference, on random traces cut into random batches merged in random
// order, with each root's ids as the converter hands them over (Root) and
// as a store reads them back (from the stored attributes).
func TestDeriveAndMergeFollowTheReference(t *testing.T) {
	for seed := range int64(20) {
		r := rand.New(rand.NewSource(seed))
		for _, spans := range randomTraces(r, genOptions{traces: 20, maxSpans: 12}) {
			want := ExpectedTrace(spans)
			want.DurationMS = 0
			for _, readBack := range []bool{false, true} {
				batch := slices.Clone(spans)
				if readBack {
					for i := range batch {
						batch[i].Root = nil
					}
				}
				r.Shuffle(len(batch), func(i, j int) { batch[i], batch[j] = batch[j], batch[i] })
				var rows []store.TraceRow
				for len(batch) > 0 {
					n := 1 + r.Intn(len(batch))
					rows = append(rows, store.DeriveTraces(batch[:n])...)
					batch = batch[n:]
				}
				r.Shuffle(len(rows), func(i, j int) { rows[i], rows[j] = rows[j], rows[i] })
				merged := rows[0]
				for _, row := range rows[1:] {
					merged = store.Merge(merged, row)
				}
				if got := fromStoreRow(merged); got != want {
					t.Fatalf("seed %d, read back %v:\n got  %+v\n want %+v", seed, readBack, got, want)
				}
			}
		}
	}
}

func fromStoreRow(r store.TraceRow) TraceRow {
	out := TraceRow{TraceID: r.TraceID, Name: r.Name, Status: r.Status, StartTime: r.StartTime, EndTime: r.EndTime}
	dst := out.idFields()
	for i, f := range r.IDs.Fields() {
		if *f != "" {
			*dst[i] = sql.NullString{String: *f, Valid: true}
		}
	}
	return out
}

// The reference itself on what senders put under id keys.
func TestExpectedTraceIDValues(t *testing.T) {
	for _, tc := range []struct {
		value any
		want  string // "" for NULL
	}{
		{"abc", "abc"},
		{" abc ", "abc"},
		{"", ""},
		{"   ", ""},
		{int64(42), "42"},
		{int64(0), ""},
		{int64(1)<<62 + 1, "4611686018427387905"},
		{3.0, "3"},
		{2.5, ""},
		{0.0, ""},
		{true, ""},
		{nil, ""},
		{[]any{"a"}, ""},
		{map[string]any{"id": "a"}, ""},
		{strings.Repeat("x", 256), strings.Repeat("x", 256)},
		{strings.Repeat("x", 257), ""},
	} {
		t.Run(fmt.Sprint(tc.value), func(t *testing.T) {
			root := model.Span{TraceID: "t", SpanID: "s", Name: "run", Attributes: mustJSON(map[string]any{"agno.run.id": tc.value})}
			if got := ExpectedTrace([]model.Span{root}).RunID; got.String != tc.want || got.Valid != (tc.want != "") {
				t.Errorf("run_id = %+v, want %q", got, tc.want)
			}
		})
	}
}

func TestSameJSON(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want bool
	}{
		{`{"a":1,"b":[true,null]}`, `{"b": [true, null], "a": 1}`, true},
		{`{"n":1e300}`, `{"n":1` + strings.Repeat("0", 300) + `}`, true},
		{`{"n":1e3}`, `{"n":1000.0}`, true},
		{`{"n":9007199254740993}`, `{"n":9007199254740992}`, false},
		{`{"n":1.5}`, `{"n":1.50}`, true},
		{`{"a":"x"}`, `{"a":"y"}`, false},
		{``, ``, true},
		{``, `{}`, false},
	} {
		if got := SameJSON([]byte(tc.a), []byte(tc.b)); got != tc.want {
			t.Errorf("SameJSON(%s, %s) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
	}
}

func TestSplitIdent(t *testing.T) {
	for in, want := range map[string][]string{
		`agno_spans`:               {"agno_spans"},
		`"agno"."agno_spans"`:      {"agno", "agno_spans"},
		`"a.b"."odd ""name"""`:     {"a.b", `odd "name"`},
		`public."MixedCase_table"`: {"public", "MixedCase_table"},
	} {
		if got := splitIdent(in); !slices.Equal(got, want) {
			t.Errorf("splitIdent(%s) = %q, want %q", in, got, want)
		}
	}
}

func TestBenchBatchIsNewEachTime(t *testing.T) {
	b := NewBenchBatch(1000)
	first, rows := b.Next()
	if len(first) != 990 || len(rows) != 90 {
		t.Fatalf("batch of %d spans, %d traces; want 990, 90", len(first), len(rows))
	}
	seen := map[string]bool{}
	for _, sp := range first {
		seen[sp.SpanID] = true
	}
	firstTrace := rows[0]
	second, _ := b.Next()
	for _, sp := range second {
		if seen[sp.SpanID] {
			t.Fatalf("span id %s repeated across batches", sp.SpanID)
		}
	}
	var mine []model.Span
	for _, sp := range second {
		if sp.TraceID == second[0].TraceID {
			mine = append(mine, sp)
		}
	}
	got := ExpectedTrace(mine)
	got.TraceID = firstTrace.TraceID
	if got != firstTrace {
		t.Errorf("trace rows differ between batches:\n %+v\n %+v", got, firstTrace)
	}
}
