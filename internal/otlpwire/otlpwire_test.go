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
