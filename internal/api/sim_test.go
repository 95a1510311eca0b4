package api

import (
	"fmt"
	"net/url"
	"slices"
	"sort"
	"testing"

	"github.com/kern-agents/trace-gateway/internal/api/apitest"
	"github.com/kern-agents/trace-gateway/internal/semantics"
	"github.com/kern-agents/trace-gateway/internal/sim"
)

// TestSimulatedRuns reads back simulated AgentOS runs, converted as the
// receiver converts them: every trace comes back whole as one tree, and
// filtering by user finds exactly that user's runs.
func TestSimulatedRuns(t *testing.T) {
	spans := apitest.Sim(t, sim.Options{Count: 30, ErrorRatio: 0.3, Seed: 5, Users: 4})
	type exp struct {
		spans int
		user  string
		start string
	}
	want := map[string]*exp{}
	for _, s := range spans {
		e := want[s.TraceID]
		if e == nil {
			e = &exp{}
			want[s.TraceID] = e
		}
		e.spans++
		if s.ParentSpanID == "" {
			e.user = semantics.RootIDs(attrsOf(s)).UserID
			e.start = s.StartTime
		}
	}
	for _, sd := range stores {
		t.Run(sd.name, func(t *testing.T) {
			st := sd.open(t)
			apitest.Load(t, st, spans)
			h := New(st, Options{})
			types, factTypes := map[string]int{}, map[string]int{}
			for id, e := range want {
				code, body := get(t, h, "/api/traces/"+id)
				if code != 200 {
					t.Fatalf("%s: %d %s", id, code, body)
				}
				d := decode[TraceDetail](t, body)
				if len(d.Spans) != 1 || d.Spans[0].Orphan || d.SpanCount != e.spans {
					t.Fatalf("%s: %d roots, %d spans, want 1 root and %d spans", id, len(d.Spans), d.SpanCount, e.spans)
				}
				n := 0
				var walk func(s *SpanNode)
				walk = func(s *SpanNode) {
					n++
					types[s.Type]++
					factTypes[fmt.Sprint(s.Facts[semantics.KeySpanType])]++
					if len(s.Resource) < 3 {
						t.Errorf("%s: span %s has no resource", id, s.SpanID)
					}
					for i, c := range s.Children {
						if *c.ParentSpanID != s.SpanID || c.Orphan || (i > 0 && c.StartTime < s.Children[i-1].StartTime) {
							t.Errorf("%s: child %s of %s misplaced", id, c.SpanID, s.SpanID)
						}
						walk(c)
					}
				}
				walk(d.Spans[0])
				if n != e.spans {
					t.Errorf("%s: tree holds %d spans, want %d", id, n, e.spans)
				}
			}
			for _, typ := range []string{"AGENT", "TEAM", "LLM", "TOOL", "GUARDRAIL", "RETRIEVER", "EMBEDDING"} {
				if types[typ] == 0 {
					t.Errorf("no %s span among %v", typ, types)
				}
			}
			for _, typ := range []string{"run", "llm", "tool", "pre_hook", "post_hook", "retrieval", "delegation", "embedding"} {
				if factTypes[typ] == 0 {
					t.Errorf("no span with facts of type %s among %v", typ, factTypes)
				}
			}

			user := want[spans[0].TraceID].user
			var wantIDs []string
			for id, e := range want {
				if e.user == user {
					wantIDs = append(wantIDs, id)
				}
			}
			sort.Slice(wantIDs, func(i, j int) bool {
				a, b := want[wantIDs[i]], want[wantIDs[j]]
				if a.start != b.start {
					return a.start > b.start
				}
				return wantIDs[i] > wantIDs[j]
			})
			got := pageAll(t, h, url.Values{"user_id": {user}, "limit": {"2"}})
			if !slices.Equal(got, wantIDs) {
				t.Errorf("user %s: got %v, want %v", user, got, wantIDs)
			}
		})
	}
}
