package storetest

import (
	"slices"
	"strings"
	"testing"

	"github.com/kern-agents/trace-gateway/internal/model"
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
