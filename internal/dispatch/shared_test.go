package dispatch

import (
	"fmt"
	"testing"

	"go.opentelemetry.io/collector/pdata/ptrace"
)

func chunk(names ...string) ptrace.Traces {
	td := ptrace.NewTraces()
	ss := td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty()
	for _, n := range names {
		ss.Spans().AppendEmpty().SetName(n)
	}
	return td
}

func TestSharedBatches(t *testing.T) {
	c := newSharedBatches(2)
	ids := []string{"a", "b"}
	src := chunk("a", "b")
	c.put(ids, src)
	src.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0).SetName("changed by the first destination")

	cases := []struct {
		name string
		ids  []string
		hit  bool
	}{
		{"same ids hit", []string{"a", "b"}, true},
		{"other order misses", []string{"b", "a"}, false},
		{"subset misses", []string{"a"}, false},
		{"ids that concatenate alike miss", []string{"ab"}, false},
	}
	for _, tc := range cases {
		got, ok := c.get(tc.ids)
		if ok != tc.hit {
			t.Fatalf("%s: hit=%v", tc.name, ok)
		}
		if ok {
			if n := got.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0).Name(); n != "a" {
				t.Fatalf("%s: master was changed through the producer's copy: %q", tc.name, n)
			}
			got.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0).SetName("changed by a consumer")
		}
	}
	again, _ := c.get(ids)
	if n := again.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0).Name(); n != "a" {
		t.Fatalf("master was changed through a consumer's copy: %q", n)
	}
	// Eviction keeps at most max entries, least recently used first.
	for i := range 3 {
		c.put([]string{fmt.Sprint(i)}, chunk("x"))
	}
	if _, ok := c.get(ids); ok {
		t.Fatal("oldest entry not evicted")
	}
	if c.order.Len() != 2 || len(c.byKey) != 2 {
		t.Fatalf("cache holds %d/%d entries, want 2", c.order.Len(), len(c.byKey))
	}
}
