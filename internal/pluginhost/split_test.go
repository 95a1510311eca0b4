package pluginhost

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"go.opentelemetry.io/collector/pdata/ptrace"
	"google.golang.org/protobuf/proto"

	"github.com/kern-agents/trace-gateway/plugins/pluginpb"
)

func TestRequestSize(t *testing.T) {
	for _, n := range []int{1, 127, 128, 16383, 16384, 2097151, 2097152, 4 << 20} {
		want := proto.Size(&pluginpb.ExportRequest{Traces: make([]byte, n)})
		if got := requestSize(n); got != want {
			t.Errorf("requestSize(%d) = %d, want %d", n, got, want)
		}
	}
}

// multiResource builds r resources × s scopes × n spans, each span carrying
// pad bytes of attribute.
func multiResource(r, s, n, pad int) ptrace.Traces {
	td := ptrace.NewTraces()
	for i := range r {
		rs := td.ResourceSpans().AppendEmpty()
		rs.Resource().Attributes().PutStr("service.name", fmt.Sprintf("svc-%d", i))
		rs.SetSchemaUrl("https://opentelemetry.io/schemas/1.26.0")
		for j := range s {
			ss := rs.ScopeSpans().AppendEmpty()
			ss.Scope().SetName(fmt.Sprintf("scope-%d", j))
			for k := range n {
				sp := ss.Spans().AppendEmpty()
				sp.SetName(fmt.Sprintf("r%d-s%d-span%d", i, j, k))
				sp.Attributes().PutStr("pad", strings.Repeat("p", pad))
			}
		}
	}
	return td
}

// spanHome maps each span name to its resource and scope, to check the
// split kept every span's context.
func spanHome(td ptrace.Traces) map[string]string {
	home := map[string]string{}
	rss := td.ResourceSpans()
	for i := 0; i < rss.Len(); i++ {
		rs := rss.At(i)
		svc, _ := rs.Resource().Attributes().Get("service.name")
		for j := 0; j < rs.ScopeSpans().Len(); j++ {
			ss := rs.ScopeSpans().At(j)
			for k := 0; k < ss.Spans().Len(); k++ {
				home[ss.Spans().At(k).Name()] = svc.Str() + "/" + ss.Scope().Name() + "/" + rs.SchemaUrl()
			}
		}
	}
	return home
}

func TestSplit(t *testing.T) {
	cases := []struct {
		name      string
		td        ptrace.Traces
		limit     int
		wantParts int // 0: more than one
		oversize  []string
	}{
		{"fits whole", multiResource(2, 2, 5, 10), DefaultMaxMessageBytes, 1, nil},
		{"by resource", multiResource(8, 1, 3, 100), 1200, 0, nil},
		{"by scope", multiResource(1, 8, 3, 100), 1200, 0, nil},
		{"by span", multiResource(1, 1, 64, 100), 1200, 0, nil},
		{"mixed", multiResource(3, 3, 7, 50), 900, 0, nil},
		{"one span too big", func() ptrace.Traces {
			td := multiResource(1, 1, 10, 10)
			sp := td.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(4)
			sp.Attributes().PutStr("pad", strings.Repeat("x", 5000))
			return td
		}(), 1000, 0, []string{"r0-s0-span4"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := splitter{limit: tc.limit}
			parts, over := s.split(tc.td)
			if tc.wantParts > 0 && len(parts) != tc.wantParts {
				t.Fatalf("%d parts, want %d", len(parts), tc.wantParts)
			}
			if tc.wantParts == 0 && len(parts) < 2 {
				t.Fatalf("%d parts, want a split", len(parts))
			}
			got := map[string]string{}
			for i, p := range parts {
				if size := requestSize(s.sizer.TracesSize(p)); size > tc.limit {
					t.Errorf("part %d is %d bytes, over the %d limit", i, size, tc.limit)
				}
				for k, v := range spanHome(p) {
					if _, dup := got[k]; dup {
						t.Errorf("span %s sent twice", k)
					}
					got[k] = v
				}
			}
			var overNames []string
			for _, o := range over {
				overNames = append(overNames, o.name)
				if o.size <= tc.limit {
					t.Errorf("span %s reported oversize at %d bytes", o.name, o.size)
				}
			}
			if !slices.Equal(overNames, tc.oversize) {
				t.Fatalf("oversize = %v, want %v", overNames, tc.oversize)
			}
			want := spanHome(tc.td)
			for _, name := range tc.oversize {
				delete(want, name)
			}
			if len(got) != len(want) {
				t.Fatalf("%d spans after the split, want %d", len(got), len(want))
			}
			for k, v := range want {
				if got[k] != v {
					t.Errorf("span %s lives in %q after the split, want %q", k, got[k], v)
				}
			}
		})
	}
}

func TestDescribeOversize(t *testing.T) {
	over := []oversizeSpan{
		{traceID: "t1", spanID: "s1", name: "a", size: 10},
		{traceID: "t1", spanID: "s2", name: "b", size: 11},
		{traceID: "t2", spanID: "s3", name: "c", size: 12},
		{traceID: "t2", spanID: "s4", name: "d", size: 13},
	}
	got := describeOversize(over, 9)
	for _, want := range []string{"4 span(s) exceed the 9-byte", `span s1 "a" of trace t1 (10 bytes)`, `span s3 "c"`, "and 1 more"} {
		if !strings.Contains(got, want) {
			t.Errorf("%q does not contain %q", got, want)
		}
	}
	if strings.Contains(got, `"d"`) {
		t.Errorf("%q lists more than three spans", got)
	}
}
