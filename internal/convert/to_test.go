package convert

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/kern-agents/trace-gateway/internal/model"
	"github.com/kern-agents/trace-gateway/internal/semantics"
)

// richTraces exercises every field the stored row keeps. Times are whole
// microseconds: that is the stored precision.
func richTraces() ptrace.Traces {
	td := ptrace.NewTraces()
	for r := range 2 {
		rs := td.ResourceSpans().AppendEmpty()
		rs.Resource().Attributes().PutStr("service.name", []string{"agent-os", "tools"}[r])
		rs.Resource().Attributes().PutInt("pid", int64(100+r))
		for sc := range 2 {
			ss := rs.ScopeSpans().AppendEmpty()
			ss.Scope().SetName([]string{"agno", "openinference"}[sc])
			ss.Scope().SetVersion("1.0")
			if sc == 1 {
				ss.Scope().Attributes().PutBool("auto", true)
			}
			for i := range 3 {
				sp := ss.Spans().AppendEmpty()
				sp.SetTraceID(pcommon.TraceID{1, byte(r), 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16})
				sp.SetSpanID(pcommon.SpanID{byte(r), byte(sc), byte(i), 4, 5, 6, 7, 8})
				if i > 0 {
					sp.SetParentSpanID(pcommon.SpanID{byte(r), byte(sc), 0, 4, 5, 6, 7, 8})
				}
				sp.SetName("span " + string(rune('a'+i)))
				sp.SetKind(ptrace.SpanKind(i + 1))
				sp.Status().SetCode(ptrace.StatusCode(i))
				if i == 2 {
					sp.Status().SetMessage("failed")
				}
				start := time.Date(2025, 1, 2, 3, 4, 5, 6000*(i+1), time.UTC)
				sp.SetStartTimestamp(pcommon.NewTimestampFromTime(start))
				sp.SetEndTimestamp(pcommon.NewTimestampFromTime(start.Add(time.Duration(i) * time.Second)))
				a := sp.Attributes()
				a.PutStr("gen_ai.operation.name", "chat")
				a.PutInt("big", math.MaxInt64)
				a.PutInt("neg", -7)
				a.PutDouble("temp", 0.7)
				a.PutDouble("whole", 2)
				a.PutBool("ok", i%2 == 0)
				a.PutEmpty("nothing")
				l := a.PutEmptySlice("list")
				l.AppendEmpty().SetStr("x")
				l.AppendEmpty().SetInt(1)
				l.AppendEmpty().SetEmptyMap().PutDouble("y", 1.5)
				kv := a.PutEmptyMap("obj")
				kv.PutStr("b", "2")
				kv.PutStr("a", "1")
				kv.PutEmptySlice("empty")
				if i == 1 {
					ev := sp.Events().AppendEmpty()
					ev.SetName("exception")
					ev.SetTimestamp(pcommon.NewTimestampFromTime(start.Add(time.Millisecond)))
					ev.Attributes().PutStr("exception.type", "KeyError")
					ev.SetDroppedAttributesCount(1)
					sp.Events().AppendEmpty().SetName("bare")
					ln := sp.Links().AppendEmpty()
					ln.SetTraceID(pcommon.TraceID{9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9})
					ln.SetSpanID(pcommon.SpanID{8, 8, 8, 8, 8, 8, 8, 8})
					ln.TraceState().FromRaw("vendor=1")
					ln.Attributes().PutInt("n", 1)
					sp.SetDroppedAttributesCount(2)
					sp.SetDroppedEventsCount(3)
					sp.SetDroppedLinksCount(4)
				}
			}
		}
	}
	return td
}

// stripAnnotations removes the keys the gateway adds that stay span
// attributes (the span kind every span gets here, kern.truncated), so that a
// round trip can be compared with what was sent.
func stripAnnotations(td ptrace.Traces) {
	rss := td.ResourceSpans()
	for i := range rss.Len() {
		sss := rss.At(i).ScopeSpans()
		for j := range sss.Len() {
			sps := sss.At(j).Spans()
			for k := range sps.Len() {
				sps.At(k).Attributes().RemoveIf(func(k string, _ pcommon.Value) bool {
					return strings.HasPrefix(k, "kern.") || k == semantics.AttrSpanKind
				})
			}
		}
	}
}

func tracesJSON(t *testing.T, td ptrace.Traces) string {
	t.Helper()
	b, err := (&ptrace.JSONMarshaler{}).MarshalTraces(td)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestRoundTrip(t *testing.T) {
	want := richTraces()
	spans, rej := FromOTLP(want, testNow, Limits{})
	if len(rej) != 0 {
		t.Fatal(rej)
	}
	got, err := ToOTLP(spans)
	if err != nil {
		t.Fatal(err)
	}
	stripAnnotations(got)
	if g, w := tracesJSON(t, got), tracesJSON(t, want); g != w {
		t.Errorf("round trip differs\n got %s\nwant %s", g, w)
	}
}

// TestRoundTripLossy pins down the values JSON cannot carry as sent.
func TestRoundTripLossy(t *testing.T) {
	td, sp := newSpan()
	sp.Attributes().PutEmptyBytes("b").FromRaw([]byte("hi"))
	sp.Attributes().PutDouble("nan", math.NaN())
	sp.Attributes().PutDouble("inf", math.Inf(-1))
	sp.TraceState().FromRaw("k=v")
	sp.SetStartTimestamp(pcommon.Timestamp(1_700_000_000_123_456_789))

	spans, _ := FromOTLP(td, testNow, Limits{})
	got, err := ToOTLP(spans)
	if err != nil {
		t.Fatal(err)
	}
	out := got.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0)
	wantAttrs := map[string]any{"b": base64.StdEncoding.EncodeToString([]byte("hi")), "nan": "NaN", "inf": "-Infinity"}
	stripAnnotations(got)
	if g := out.Attributes().AsRaw(); !reflect.DeepEqual(g, wantAttrs) {
		t.Errorf("attributes %v, want %v", g, wantAttrs)
	}
	if ts := out.TraceState().AsRaw(); ts != "" {
		t.Errorf("trace state %q is not stored, got it back", ts)
	}
	if got := int64(out.StartTimestamp()); got != 1_700_000_000_123_456_000 {
		t.Errorf("start %d, want microsecond precision", got)
	}
}

// TestToOTLPNormalisedJSON reads attributes the way PostgreSQL's jsonb
// gives them back: keys reordered, whitespace added.
func TestToOTLPNormalisedJSON(t *testing.T) {
	want := richTraces()
	spans, _ := FromOTLP(want, testNow, Limits{})
	for i := range spans {
		dec := json.NewDecoder(bytes.NewReader(spans[i].Attributes))
		dec.UseNumber()
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			t.Fatal(err)
		}
		b, err := json.MarshalIndent(m, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		spans[i].Attributes = b
	}
	got, err := ToOTLP(spans)
	if err != nil {
		t.Fatal(err)
	}
	stripAnnotations(got)
	if g, w := got.ResourceSpans().Len(), want.ResourceSpans().Len(); g != w {
		t.Fatalf("%d resources, want %d", g, w)
	}
	for i := range want.ResourceSpans().Len() {
		wrs, grs := want.ResourceSpans().At(i), got.ResourceSpans().At(i)
		if !reflect.DeepEqual(grs.Resource().Attributes().AsRaw(), wrs.Resource().Attributes().AsRaw()) {
			t.Errorf("resource %d differs", i)
		}
		if g, w := grs.ScopeSpans().Len(), wrs.ScopeSpans().Len(); g != w {
			t.Fatalf("resource %d: %d scopes, want %d", i, g, w)
		}
		for j := range wrs.ScopeSpans().Len() {
			wsp, gsp := wrs.ScopeSpans().At(j).Spans(), grs.ScopeSpans().At(j).Spans()
			for k := range wsp.Len() {
				w, g := wsp.At(k), gsp.At(k)
				if !reflect.DeepEqual(g.Attributes().AsRaw(), w.Attributes().AsRaw()) {
					t.Errorf("span %v attributes\n got %v\nwant %v", w.SpanID(), g.Attributes().AsRaw(), w.Attributes().AsRaw())
				}
				if g.Events().Len() != w.Events().Len() || g.Links().Len() != w.Links().Len() || g.DroppedLinksCount() != w.DroppedLinksCount() {
					t.Errorf("span %v events/links differ", w.SpanID())
				}
			}
		}
	}
}

func TestToOTLPGrouping(t *testing.T) {
	mk := func(id byte, res, scope string) model.Span {
		attrs := `{"i":` + string('0'+rune(id))
		if res != "" {
			attrs += `,"kern.resource":` + res
		}
		if scope != "" {
			attrs += `,"kern.scope":` + scope
		}
		return model.Span{
			TraceID: strings.Repeat("ab", 16), SpanID: "000000000000000" + string('0'+rune(id)),
			StartTime: model.FormatTime(testStart), EndTime: model.FormatTime(testStart),
			Attributes: []byte(attrs + "}"),
		}
	}
	spans := []model.Span{
		mk(1, `{"service.name":"a"}`, `{"name":"s1","version":""}`),
		mk(2, `{"service.name":"b"}`, `{"name":"s1","version":""}`),
		mk(3, `{"service.name":"a"}`, `{"name":"s2","version":"2"}`),
		mk(4, `{"service.name":"a"}`, `{"name":"s1","version":""}`),
		mk(5, "", ""),
	}
	td, err := ToOTLP(spans)
	if err != nil {
		t.Fatal(err)
	}
	// Layout as "resource/scope:ids" in first-seen order.
	var layout []string
	rss := td.ResourceSpans()
	for i := range rss.Len() {
		svc := ""
		if v, ok := rss.At(i).Resource().Attributes().Get("service.name"); ok {
			svc = v.AsString()
		}
		sss := rss.At(i).ScopeSpans()
		for j := range sss.Len() {
			s := svc + "/" + sss.At(j).Scope().Name() + sss.At(j).Scope().Version() + ":"
			sps := sss.At(j).Spans()
			for k := range sps.Len() {
				v, _ := sps.At(k).Attributes().Get("i")
				s += v.AsString()
			}
			layout = append(layout, s)
		}
	}
	want := []string{"a/s1:14", "a/s22:3", "b/s1:2", "/:5"}
	if !reflect.DeepEqual(layout, want) {
		t.Errorf("layout %v, want %v", layout, want)
	}
}

func TestToOTLPErrors(t *testing.T) {
	good := model.Span{
		TraceID: strings.Repeat("ab", 16), SpanID: strings.Repeat("cd", 8),
		StartTime: model.FormatTime(testStart), EndTime: model.FormatTime(testStart),
		Attributes: []byte(`{}`),
	}
	tests := []struct {
		name string
		edit func(s *model.Span)
		want string
	}{
		{"bad json", func(s *model.Span) { s.Attributes = []byte(`{"a":`) }, "attributes"},
		{"not an object", func(s *model.Span) { s.Attributes = []byte(`[1]`) }, "attributes"},
		{"short trace id", func(s *model.Span) { s.TraceID = "abcd" }, "trace id"},
		{"bad span id", func(s *model.Span) { s.SpanID = strings.Repeat("zz", 8) }, "span id"},
		{"bad parent", func(s *model.Span) { s.ParentSpanID = "1" }, "parent span id"},
		{"bad start", func(s *model.Span) { s.StartTime = "yesterday" }, "start time"},
		{"bad events", func(s *model.Span) { s.Attributes = []byte(`{"kern.events":{}}`) }, "kern.events"},
		{"bad link id", func(s *model.Span) { s.Attributes = []byte(`{"kern.links":[{"trace_id":"x","span_id":"y"}]}`) }, "link trace id"},
		{"bad number", func(s *model.Span) { s.Attributes = []byte(`{"a":1}`); s.Attributes[5] = '-' }, "attribute"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := good
			tt.edit(&s)
			_, err := ToOTLP([]model.Span{good, s})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one mentioning %q", err, tt.want)
			}
		})
	}
	if _, err := ToOTLP([]model.Span{good}); err != nil {
		t.Errorf("good span: %v", err)
	}
}

func TestToOTLPNumbers(t *testing.T) {
	s := model.Span{
		TraceID: strings.Repeat("ab", 16), SpanID: strings.Repeat("cd", 8),
		StartTime: model.FormatTime(testStart), EndTime: model.FormatTime(testStart),
		// 1e+400 overflows float64; jsonb prints 1e300 as plain digits.
		Attributes: []byte(`{"i":9223372036854775807,"over":9223372036854775808,"f":1.0,"e":1e3,"long":1` + strings.Repeat("0", 300) + `}`),
	}
	td, err := ToOTLP([]model.Span{s})
	if err != nil {
		t.Fatal(err)
	}
	got := td.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0).Attributes()
	want := map[string]any{"i": int64(math.MaxInt64), "over": 9223372036854775808.0, "f": 1.0, "e": 1000.0, "long": 1e300}
	if !reflect.DeepEqual(got.AsRaw(), want) {
		t.Errorf("got %v, want %v", got.AsRaw(), want)
	}
	if v, _ := got.Get("i"); v.Type() != pcommon.ValueTypeInt {
		t.Errorf("i is %v, want Int", v.Type())
	}
	if v, _ := got.Get("f"); v.Type() != pcommon.ValueTypeDouble {
		t.Errorf("f is %v, want Double", v.Type())
	}
}

func TestToOTLPReaderSyntax(t *testing.T) {
	base := model.Span{
		TraceID: strings.Repeat("ab", 16), SpanID: strings.Repeat("cd", 8),
		StartTime: model.FormatTime(testStart), EndTime: model.FormatTime(testStart),
	}
	base.Attributes = []byte(" {\n \"esc\" : \"a\\\"b\\\\c\\u00e9\\ud83d\\ude00\\n\" ,\"k\\u0065y\":1,\n" +
		"\"nest\" : [ {} , [ ] , null , -0.5e-3 , { \"x\" : [ true , false ] } ] } ")
	td, err := ToOTLP([]model.Span{base})
	if err != nil {
		t.Fatal(err)
	}
	got := td.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0).Attributes().AsRaw()
	want := map[string]any{
		"esc":  "a\"b\\cé😀\n",
		"key":  int64(1),
		"nest": []any{map[string]any{}, []any{}, nil, -0.0005, map[string]any{"x": []any{true, false}}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %#v\nwant %#v", got, want)
	}
	notUTF8 := base
	notUTF8.Attributes = []byte("{\"a\":\"x\xffy\"}")
	if td, err := ToOTLP([]model.Span{notUTF8}); err != nil {
		t.Errorf("string that is not UTF-8: %v", err)
	} else if v, _ := td.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0).Attributes().Get("a"); v.Str() != "x\uFFFDy" {
		t.Errorf("string that is not UTF-8 read as %q, want x\uFFFDy", v.Str())
	}
	for _, bad := range []string{`{"a":}`, `{"a":1,}`, `{"a" 1}`, `{"a":[1 2]}`, `{"a":tru}`, `{"a":"x}`, `{"a":1}}`,
		`{"a":[1,]}`, `{"a":NaN}`, `{"a":+1}`, `{"a":0x10}`, `{"a":Inf}`, `{"a":1} x`, `{,"a":1}`} {
		s := base
		s.Attributes = []byte(bad)
		if _, err := ToOTLP([]model.Span{s}); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}
