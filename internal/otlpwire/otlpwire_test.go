package otlpwire

import (
	"fmt"
	"slices"
	"testing"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

func encode(t *testing.T, td ptrace.Traces) []byte {
	t.Helper()
	b, err := (&ptrace.ProtoMarshaler{}).MarshalTraces(td)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// pdataIDs lists td's span ids the slow way.
func pdataIDs(td ptrace.Traces) []pcommon.SpanID {
	var out []pcommon.SpanID
	for _, rs := range td.ResourceSpans().All() {
		for _, ss := range rs.ScopeSpans().All() {
			for _, sp := range ss.Spans().All() {
				out = append(out, sp.SpanID())
			}
		}
	}
	return out
}

// TestSpanIDs: reading ids off the wire agrees with a full decode, on a
// request with several resources, scopes and attributes, and refuses a
// broken one.
func TestSpanIDs(t *testing.T) {
	td := ptrace.NewTraces()
	var want []pcommon.SpanID
	for r := range 3 {
		rs := td.ResourceSpans().AppendEmpty()
		rs.Resource().Attributes().PutStr("service.name", fmt.Sprint("svc", r))
		for sc := range 2 {
			ss := rs.ScopeSpans().AppendEmpty()
			ss.Scope().SetName("scope")
			for k := range 4 {
				sp := ss.Spans().AppendEmpty()
				id := pcommon.SpanID{byte(r), byte(sc), byte(k), 9}
				sp.SetSpanID(id)
				sp.SetTraceID(pcommon.TraceID{7})
				sp.SetParentSpanID(pcommon.SpanID{5})
				sp.SetName("op")
				sp.Attributes().PutStr("input.value", "x")
				sp.Events().AppendEmpty().SetName("e")
				want = append(want, id)
			}
		}
	}
	td.ResourceSpans().At(0).ScopeSpans().At(0).Spans().AppendEmpty().SetName("no id")
	want = append(want[:4], append([]pcommon.SpanID{{}}, want[4:]...)...)
	b := encode(t, td)

	got, err := SpanIDs(b)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) || !slices.Equal(got, pdataIDs(td)) {
		t.Fatalf("WireSpanIDs = %v\nwant          %v", got, want)
	}
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"truncated", b[:len(b)-3]},
		{"garbage", []byte{0xff, 0xff, 0xff}},
		// resource_spans { scope_spans { spans { span_id: 3 bytes } } }
		{"span id of 3 bytes", []byte{0x0a, 0x09, 0x12, 0x07, 0x12, 0x05, 0x12, 0x03, 1, 2, 3}},
	} {
		if _, err := SpanIDs(tc.b); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
}

func TestCount(t *testing.T) {
	td := ptrace.NewTraces()
	for range 3 {
		ss := td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty()
		ss.Spans().AppendEmpty()
		ss.Spans().AppendEmpty()
	}
	cases := []struct {
		name    string
		b       []byte
		want    int
		wantErr bool
	}{
		{"six spans", encode(t, td), 6, false},
		{"empty request", nil, 0, false},
		{"garbage", []byte{0xff, 0xff, 0xff}, 0, true},
	}
	for _, tc := range cases {
		n, err := Count(tc.b)
		if (err != nil) != tc.wantErr || (err == nil && n != tc.want) {
			t.Errorf("%s: Count = %d, %v; want %d (error %v)", tc.name, n, err, tc.want, tc.wantErr)
		}
	}
}

// nest fills v with depth containers nested in each other around a string
// leaf: arrays, maps (under key "k") or both in turn. The container at depth
// cutAt is left empty, as TruncateDeepValues leaves it (-1: none).
func nest(v pcommon.Value, depth int, kind string, cutAt int) {
	for i := range depth {
		isMap := kind == "maps" || (kind == "mixed" && i%2 == 1)
		if i == cutAt {
			if isMap {
				v.SetEmptyMap()
			} else {
				v.SetEmptySlice()
			}
			return
		}
		if isMap {
			v = v.SetEmptyMap().PutEmpty("k")
		} else {
			v = v.SetEmptySlice().AppendEmpty()
		}
	}
	v.SetStr("leaf")
}

// deepTraces holds a value nested depth deep in each kind of attribute map
// a request carries (resource, scope, span, event, link), beside shallow
// values and other spans that must come through unchanged.
func deepTraces(depth int, kind string, cutAt int) ptrace.Traces {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "svc")
	nest(rs.Resource().Attributes().PutEmpty("deep"), depth, kind, cutAt)
	rs.SetSchemaUrl("https://example.com/schema")
	ss := rs.ScopeSpans().AppendEmpty()
	ss.Scope().SetName("lib")
	nest(ss.Scope().Attributes().PutEmpty("deep"), depth, kind, cutAt)
	for i := range 3 {
		sp := ss.Spans().AppendEmpty()
		sp.SetTraceID(pcommon.TraceID{1})
		sp.SetSpanID(pcommon.SpanID{byte(i + 1)})
		sp.SetName(fmt.Sprint("span", i))
		sp.Attributes().PutInt("i", int64(i))
		sp.Attributes().PutEmptySlice("shallow").AppendEmpty().SetEmptyMap().PutStr("a", "b")
		if i != 1 {
			continue
		}
		nest(sp.Attributes().PutEmpty("deep"), depth, kind, cutAt)
		ev := sp.Events().AppendEmpty()
		ev.SetName("ev")
		nest(ev.Attributes().PutEmpty("deep"), depth, kind, cutAt)
		l := sp.Links().AppendEmpty()
		l.SetTraceID(pcommon.TraceID{2})
		l.SetSpanID(pcommon.SpanID{2})
		nest(l.Attributes().PutEmpty("deep"), depth, kind, cutAt)
	}
	return td
}

// TestTruncateDeepValues: values nesting more than keep containers are cut
// to an empty container at depth keep, everything else is kept byte for byte,
// and pdata (whose recursion limit refuses the deep originals) decodes the
// result.
func TestTruncateDeepValues(t *testing.T) {
	const convertKeep = 31 // convert.MaxNesting, as the receiver uses it
	cases := []struct {
		depth, keep int
		kind        string
	}{
		{depth: 3, keep: 4, kind: "arrays"},
		{depth: 4, keep: 4, kind: "maps"},
		{depth: 5, keep: 4, kind: "arrays"},
		{depth: 9, keep: 4, kind: "mixed"},
		{depth: 3, keep: 2, kind: "maps"},
		{depth: 32, keep: convertKeep, kind: "arrays"},
		{depth: 50, keep: convertKeep, kind: "arrays"},
		{depth: 50, keep: convertKeep, kind: "maps"},
		{depth: 200, keep: convertKeep, kind: "mixed"},
		{depth: 20000, keep: convertKeep, kind: "arrays"},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%s/%d/keep%d", tc.kind, tc.depth, tc.keep), func(t *testing.T) {
			in := encode(t, deepTraces(tc.depth, tc.kind, -1))
			got, changed, err := TruncateDeepValues(in, tc.keep)
			if err != nil {
				t.Fatal(err)
			}
			if wantChanged := tc.depth > tc.keep; changed != wantChanged {
				t.Fatalf("changed = %v, want %v", changed, wantChanged)
			}
			if !changed && &got[0] != &in[0] {
				t.Error("an unchanged request was copied")
			}
			td, err := (&ptrace.ProtoUnmarshaler{}).UnmarshalTraces(got)
			if err != nil {
				t.Fatalf("pdata refuses the result: %v", err)
			}
			want := deepTraces(tc.depth, tc.kind, tc.keep)
			gotJSON, _ := (&ptrace.JSONMarshaler{}).MarshalTraces(td)
			wantJSON, _ := (&ptrace.JSONMarshaler{}).MarshalTraces(want)
			if string(gotJSON) != string(wantJSON) {
				t.Fatalf("got  %.2000s\nwant %.2000s", gotJSON, wantJSON)
			}
		})
	}
	// pdata's limit is what makes the cut necessary.
	if _, err := (&ptrace.ProtoUnmarshaler{}).UnmarshalTraces(encode(t, deepTraces(50, "arrays", -1))); err == nil {
		t.Error("pdata accepts 50 nested arrays; TruncateDeepValues may no longer be needed")
	}
}

func TestTruncateDeepValuesMalformed(t *testing.T) {
	b := encode(t, deepTraces(40, "arrays", -1))
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"truncated", b[:len(b)-3]},
		{"garbage", []byte{0xff, 0xff, 0xff}},
		// resource_spans { scope_spans { spans { attributes { value { array_value: length 5 past the end } } } } }
		{"bad length below a span", []byte{0x0a, 0x0a, 0x12, 0x08, 0x12, 0x06, 0x4a, 0x04, 0x12, 0x02, 0x2a, 0x05}},
	} {
		out, changed, err := TruncateDeepValues(tc.b, 0)
		if err == nil || changed || string(out) != string(tc.b) {
			t.Errorf("%s: %v, changed %v; want an error and the input back", tc.name, err, changed)
		}
	}
}
