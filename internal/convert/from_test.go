package convert

import (
	"bytes"
	"encoding/json"
	"math"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/kern-agents/trace-gateway/internal/model"
	"github.com/kern-agents/trace-gateway/internal/semantics"
)

var (
	testTrace  = pcommon.TraceID{0x0a, 0xf7, 0x65, 0x19, 0x16, 0xcd, 0x43, 0xdd, 0x84, 0x48, 0xeb, 0x21, 0x1c, 0x80, 0x31, 0x9c}
	testSpan   = pcommon.SpanID{0xb7, 0xad, 0x6b, 0x71, 0x69, 0x20, 0x33, 0x31}
	testParent = pcommon.SpanID{0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7}
	testNow    = time.Date(2025, 3, 4, 5, 6, 7, 890123000, time.UTC)
	testStart  = time.Date(2025, 3, 4, 5, 6, 0, 123456789, time.UTC)
)

// newSpan returns td with one resource, one scope and one span (ids set).
func newSpan() (ptrace.Traces, ptrace.Span) {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "agent-os")
	ss := rs.ScopeSpans().AppendEmpty()
	ss.Scope().SetName("agno")
	ss.Scope().SetVersion("1.2.3")
	sp := ss.Spans().AppendEmpty()
	sp.SetTraceID(testTrace)
	sp.SetSpanID(testSpan)
	sp.SetName("Agent.run")
	sp.SetStartTimestamp(pcommon.NewTimestampFromTime(testStart))
	sp.SetEndTimestamp(pcommon.NewTimestampFromTime(testStart.Add(1500*time.Millisecond + 700*time.Microsecond)))
	return td, sp
}

func convertOne(t *testing.T, td ptrace.Traces, lim Limits) model.Span {
	t.Helper()
	spans, rej := FromOTLP(td, testNow, lim)
	if len(rej) != 0 || len(spans) != 1 {
		t.Fatalf("got %d spans, rejections %v; want 1 span", len(spans), rej)
	}
	return spans[0]
}

// attrsOf decodes the attributes column keeping numbers exact.
func attrsOf(t *testing.T, s model.Span) map[string]any {
	t.Helper()
	if !json.Valid(s.Attributes) {
		t.Fatalf("attributes are not valid JSON: %s", s.Attributes)
	}
	if !utf8.Valid(s.Attributes) {
		t.Fatalf("attributes are not valid UTF-8: %q", s.Attributes)
	}
	dec := json.NewDecoder(bytes.NewReader(s.Attributes))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatal(err)
	}
	return m
}

// withoutAnnotations drops the span kind semantics.Annotate adds to every
// span (its other keys depend on the span and are tested there) and the
// origin reference, tested on its own.
func withoutAnnotations(m map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range m {
		if k == semantics.AttrSpanKind || k == model.KeyResource {
			continue
		}
		out[k] = v
	}
	return out
}

// rawMember returns the JSON text of one top-level member, as stored.
func rawMember(t *testing.T, s model.Span, key string) string {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(s.Attributes, &m); err != nil {
		t.Fatalf("attributes %s: %v", s.Attributes, err)
	}
	raw, ok := m[key]
	if !ok {
		t.Fatalf("attributes %s have no %q", s.Attributes, key)
	}
	return string(raw)
}

func TestFromOTLPColumns(t *testing.T) {
	td, sp := newSpan()
	sp.SetParentSpanID(testParent)
	sp.SetKind(ptrace.SpanKindClient)
	sp.Status().SetCode(ptrace.StatusCodeError)
	sp.Status().SetMessage("boom")

	got := convertOne(t, td, Limits{})
	want := model.Span{
		SpanID:        "b7ad6b7169203331",
		TraceID:       "0af7651916cd43dd8448eb211c80319c",
		ParentSpanID:  "00f067aa0ba902b7",
		Name:          "Agent.run",
		SpanKind:      "CLIENT",
		StatusCode:    "ERROR",
		StatusMessage: "boom",
		StartTime:     "2025-03-04T05:06:00.123456+00:00",
		EndTime:       "2025-03-04T05:06:01.624156+00:00",
		DurationMS:    1500,
		CreatedAt:     "2025-03-04T05:06:07.890123+00:00",
	}
	got.Attributes = nil
	if got.Origin == nil {
		t.Error("no origin for a span with a resource")
	}
	got.Origin = nil
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
}

func TestFromOTLPKindAndStatus(t *testing.T) {
	kinds := []struct {
		in   ptrace.SpanKind
		want string
	}{
		{ptrace.SpanKindUnspecified, "INTERNAL"},
		{ptrace.SpanKindInternal, "INTERNAL"},
		{ptrace.SpanKindServer, "SERVER"},
		{ptrace.SpanKindClient, "CLIENT"},
		{ptrace.SpanKindProducer, "PRODUCER"},
		{ptrace.SpanKindConsumer, "CONSUMER"},
		{ptrace.SpanKind(42), "INTERNAL"}, // as agno stores an unknown kind
	}
	for _, k := range kinds {
		td, sp := newSpan()
		sp.SetKind(k.in)
		if got := convertOne(t, td, Limits{}).SpanKind; got != k.want {
			t.Errorf("kind %d: got %q, want %q", k.in, got, k.want)
		}
	}
	codes := []struct {
		in   ptrace.StatusCode
		want string
	}{
		{ptrace.StatusCodeUnset, "UNSET"},
		{ptrace.StatusCodeOk, "OK"},
		{ptrace.StatusCodeError, "ERROR"},
		{ptrace.StatusCode(9), "UNSET"},
	}
	for _, c := range codes {
		td, sp := newSpan()
		sp.Status().SetCode(c.in)
		if got := convertOne(t, td, Limits{}).StatusCode; got != c.want {
			t.Errorf("status %d: got %q, want %q", c.in, got, c.want)
		}
	}
}

func TestFromOTLPTimes(t *testing.T) {
	tests := []struct {
		name       string
		start, end time.Time
		wantEnd    string
		wantMS     int64
	}{
		{"normal", testStart, testStart.Add(2 * time.Second), "2025-03-04T05:06:02.123456+00:00", 2000},
		{"sub-millisecond", testStart, testStart.Add(999 * time.Microsecond), "2025-03-04T05:06:00.124455+00:00", 0},
		{"end before start", testStart, testStart.Add(-time.Hour), "2025-03-04T04:06:00.123456+00:00", 0},
		{"equal", testStart, testStart, "2025-03-04T05:06:00.123456+00:00", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			td, sp := newSpan()
			sp.SetStartTimestamp(pcommon.NewTimestampFromTime(tt.start))
			sp.SetEndTimestamp(pcommon.NewTimestampFromTime(tt.end))
			got := convertOne(t, td, Limits{})
			if got.EndTime != tt.wantEnd || got.DurationMS != tt.wantMS {
				t.Errorf("end %q duration %d; want %q %d", got.EndTime, got.DurationMS, tt.wantEnd, tt.wantMS)
			}
		})
	}
}

func TestFromOTLPParent(t *testing.T) {
	tests := []struct {
		name   string
		parent pcommon.SpanID
		want   string
	}{
		{"none", pcommon.SpanID{}, ""},
		{"set", testParent, "00f067aa0ba902b7"},
		{"self is treated as none", testSpan, ""},
	}
	for _, tt := range tests {
		td, sp := newSpan()
		sp.SetParentSpanID(tt.parent)
		if got := convertOne(t, td, Limits{}).ParentSpanID; got != tt.want {
			t.Errorf("%s: parent %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestFromOTLPRejectsZeroIDs(t *testing.T) {
	td, good := newSpan()
	good.SetName("good")
	spans := td.ResourceSpans().At(0).ScopeSpans().At(0).Spans()

	zeroTrace := spans.AppendEmpty()
	zeroTrace.SetName("no-trace")
	zeroTrace.SetSpanID(pcommon.SpanID{1, 2, 3, 4, 5, 6, 7, 8})

	zeroSpan := spans.AppendEmpty()
	zeroSpan.SetName("no-span")
	zeroSpan.SetTraceID(testTrace)

	spans.AppendEmpty().SetName("nothing")

	got, rej := FromOTLP(td, testNow, Limits{})
	if len(got) != 1 || got[0].Name != "good" {
		t.Fatalf("stored %v, want only the good span", got)
	}
	want := []Rejection{
		{TraceID: strings.Repeat("0", 32), SpanID: "0102030405060708", Reason: `trace id is all zero (span "no-trace")`},
		{TraceID: "0af7651916cd43dd8448eb211c80319c", SpanID: strings.Repeat("0", 16), Reason: `span id is all zero (span "no-span")`},
		{TraceID: strings.Repeat("0", 32), SpanID: strings.Repeat("0", 16), Reason: `trace id and span id are all zero (span "nothing")`},
	}
	if len(rej) != len(want) {
		t.Fatalf("rejections %v, want %v", rej, want)
	}
	for i := range want {
		if rej[i] != want[i] {
			t.Errorf("rejection %d: got %+v, want %+v", i, rej[i], want[i])
		}
	}
}

func TestFromOTLPValueTypes(t *testing.T) {
	tests := []struct {
		name string
		set  func(v pcommon.Value)
		want string // the member's JSON exactly as stored
	}{
		{"string", func(v pcommon.Value) { v.SetStr("hi \"you\"\n") }, `"hi \"you\"\n"`},
		{"empty string", func(v pcommon.Value) { v.SetStr("") }, `""`},
		{"bool", func(v pcommon.Value) { v.SetBool(true) }, `true`},
		{"int max", func(v pcommon.Value) { v.SetInt(math.MaxInt64) }, `9223372036854775807`},
		{"int min", func(v pcommon.Value) { v.SetInt(math.MinInt64) }, `-9223372036854775808`},
		{"int above 2^53", func(v pcommon.Value) { v.SetInt(1<<53 + 1) }, `9007199254740993`},
		{"double", func(v pcommon.Value) { v.SetDouble(0.25) }, `0.25`},
		{"integral double", func(v pcommon.Value) { v.SetDouble(3) }, `3.0`},
		{"negative zero", func(v pcommon.Value) { v.SetDouble(math.Copysign(0, -1)) }, `-0.0`},
		{"huge double", func(v pcommon.Value) { v.SetDouble(1e300) }, `1e+300`},
		{"tiny double", func(v pcommon.Value) { v.SetDouble(1e-9) }, `1e-09`},
		{"NaN", func(v pcommon.Value) { v.SetDouble(math.NaN()) }, `"NaN"`},
		{"+Inf", func(v pcommon.Value) { v.SetDouble(math.Inf(1)) }, `"Infinity"`},
		{"-Inf", func(v pcommon.Value) { v.SetDouble(math.Inf(-1)) }, `"-Infinity"`},
		{"bytes", func(v pcommon.Value) { v.SetEmptyBytes().FromRaw([]byte{0, 1, 0xfe, 0xff}) }, `"AAH+/w=="`},
		{"empty", func(v pcommon.Value) {}, `null`},
		{"array", func(v pcommon.Value) {
			s := v.SetEmptySlice()
			s.AppendEmpty().SetStr("a")
			s.AppendEmpty().SetInt(1)
			s.AppendEmpty().SetDouble(1.5)
			s.AppendEmpty().SetEmptySlice().AppendEmpty().SetBool(false)
		}, `["a",1,1.5,[false]]`},
		{"kvlist", func(v pcommon.Value) {
			m := v.SetEmptyMap()
			m.PutStr("z", "last")
			m.PutInt("a", 7)
			m.PutEmptyMap("inner").PutStr("k", "v")
		}, `{"z":"last","a":7,"inner":{"k":"v"}}`},
		{"control and unicode", func(v pcommon.Value) { v.SetStr("\x01é😀") }, `"\u0001é😀"`},
		{"NUL and invalid UTF-8", func(v pcommon.Value) { v.SetStr("a\x00b\xffc") }, `"a\ufffdb\ufffdc"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			td, sp := newSpan()
			tt.set(sp.Attributes().PutEmpty("v"))
			got := rawMember(t, convertOne(t, td, Limits{}), "v")
			if got != tt.want {
				t.Errorf("stored %s, want %s", got, tt.want)
			}
		})
	}
}

func TestFromOTLPAddedKeys(t *testing.T) {
	td, sp := newSpan()
	rs := td.ResourceSpans().At(0)
	rs.Resource().Attributes().PutInt("pid", 42)
	sp.Attributes().PutStr("session.id", "sess-1")

	ev := sp.Events().AppendEmpty()
	ev.SetName("exception")
	ev.SetTimestamp(pcommon.NewTimestampFromTime(testStart.Add(time.Second)))
	ev.Attributes().PutStr("exception.type", "ValueError")
	ev.SetDroppedAttributesCount(2)

	ln := sp.Links().AppendEmpty()
	ln.SetTraceID(testTrace)
	ln.SetSpanID(testParent)
	ln.TraceState().FromRaw("k=v")
	ln.Attributes().PutBool("follows", true)

	sp.SetDroppedEventsCount(3)

	s := convertOne(t, td, Limits{})
	const res, scope = `{"service.name":"agent-os","pid":42}`, `{"name":"agno","version":"1.2.3"}`
	if s.Origin == nil || string(s.Origin.Resource) != res || string(s.Origin.Scope) != scope {
		t.Fatalf("origin = %+v, want resource %s and scope %s", s.Origin, res, scope)
	}
	checks := []struct{ key, want string }{
		{model.KeyEvents, `[{"name":"exception","time":"2025-03-04T05:06:01.123456+00:00","attributes":{"exception.type":"ValueError"},"dropped_attributes_count":2}]`},
		{model.KeyLinks, `[{"trace_id":"0af7651916cd43dd8448eb211c80319c","span_id":"00f067aa0ba902b7","trace_state":"k=v","attributes":{"follows":true}}]`},
		{model.KeyDropped, `{"events":3}`},
		{"session.id", `"sess-1"`},
		{semantics.AttrSpanKind, `"AGENT"`}, // "Agent.run" is an agno run
	}
	for _, c := range checks {
		if got := rawMember(t, s, c.key); got != c.want {
			t.Errorf("%s = %s, want %s", c.key, got, c.want)
		}
	}
	if _, ok := attrsOf(t, s)[model.KeyTruncated]; ok {
		t.Errorf("nothing was truncated but %s is present", model.KeyTruncated)
	}
	// The store adds the reference, and only where it is needed.
	if _, ok := attrsOf(t, s)[model.KeyResource]; ok {
		t.Errorf("the converter wrote %s", model.KeyResource)
	}
}

func TestFromOTLPOmitsEmptyParts(t *testing.T) {
	td := ptrace.NewTraces()
	sp := td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty().Spans().AppendEmpty()
	sp.SetTraceID(testTrace)
	sp.SetSpanID(testSpan)
	s := convertOne(t, td, Limits{})
	if m := withoutAnnotations(attrsOf(t, s)); len(m) != 0 {
		t.Errorf("attributes %s, want only annotations", s.Attributes)
	}
	if s.Name != "" {
		t.Errorf("name %q, want empty", s.Name)
	}
}

func TestFromOTLPDuplicateAndReservedKeys(t *testing.T) {
	s := convertOne(t, withDuplicateAttr(t), Limits{})
	if got := rawMember(t, s, "k"); got != `"first"` {
		t.Errorf("duplicate key kept %s, want the first value", got)
	}
	if got := rawMember(t, s, model.KeyDropped); got != `{"attributes":1}` {
		t.Errorf("dropped %s, want the duplicate counted", got)
	}

	td, sp := newSpan()
	sp.Attributes().PutStr(model.KeyEvents, "spoofed")
	sp.Attributes().PutStr("kern.custom", "sender's own")
	s = convertOne(t, td, Limits{})
	if strings.Contains(string(s.Attributes), "spoofed") {
		t.Errorf("reserved key from the sender was stored: %s", s.Attributes)
	}
	if got := rawMember(t, s, model.KeyDropped); got != `{"attributes":1}` {
		t.Errorf("dropped %s, want the reserved key counted", got)
	}
	if got := rawMember(t, s, "kern.custom"); got != `"sender's own"` {
		t.Errorf("kern.custom = %s, want the sender's value", got)
	}
	if n := strings.Count(string(s.Attributes), `"kern.custom"`); n != 1 {
		t.Errorf("kern.custom written %d times: %s", n, s.Attributes)
	}
}

// withDuplicateAttr builds a request whose span has attribute "k" twice, by
// encoding a span with keys "k" and "x" and renaming "x" to "k" in the bytes.
func withDuplicateAttr(t *testing.T) ptrace.Traces {
	t.Helper()
	td, sp := newSpan()
	sp.Attributes().PutStr("k", "first")
	sp.Attributes().PutStr("x", "second")
	b, err := (&ptrace.ProtoMarshaler{}).MarshalTraces(td)
	if err != nil {
		t.Fatal(err)
	}
	// Key "x" is encoded as: tag 0x0a, len 1, 'x'.
	i := bytes.Index(b, []byte{0x0a, 0x01, 'x'})
	if i < 0 {
		t.Fatal("encoded key not found")
	}
	b[i+2] = 'k'
	out, err := (&ptrace.ProtoUnmarshaler{}).UnmarshalTraces(b)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestFromOTLPTruncation(t *testing.T) {
	huge := strings.Repeat("x", 10<<20)
	td, sp := newSpan()
	sp.Attributes().PutStr("big", huge)
	sp.Attributes().PutEmptyBytes("blob").FromRaw(bytes.Repeat([]byte{0xab}, 100))
	sp.Attributes().PutStr("euro", strings.Repeat("€", 7)) // 21 bytes, 3 per rune
	sp.Attributes().PutStr("small", "ok")
	sp.Attributes().PutEmptySlice("list").AppendEmpty().SetStr(strings.Repeat("y", 20))
	ev := sp.Events().AppendEmpty()
	ev.Attributes().PutStr("stack", strings.Repeat("z", 30))
	td.ResourceSpans().At(0).Resource().Attributes().PutStr("long", strings.Repeat("r", 17))

	start := time.Now()
	s := convertOne(t, td, Limits{MaxAttrValueBytes: 16})
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("converting a 10 MB value took %v", d)
	}
	if len(s.Attributes) > 4096 {
		t.Errorf("attributes are %d bytes; the 10 MB value was not cut", len(s.Attributes))
	}
	m := attrsOf(t, s)
	checks := []struct{ key, want string }{
		{"big", strings.Repeat("x", 16) + "…[truncated " + strconv.Itoa(10<<20-16) + " bytes]"},
		{"blob", "q6urq6urq6urq6urq6urqw==…[truncated 84 bytes]"},
		{"euro", strings.Repeat("€", 5) + "…[truncated 6 bytes]"},
		{"small", "ok"},
	}
	for _, c := range checks {
		if got := m[c.key]; got != c.want {
			t.Errorf("%s = %q, want %q", c.key, got, c.want)
		}
	}
	if got := m["euro"].(string); !utf8.ValidString(got) {
		t.Errorf("cut inside a rune: %q", got)
	}
	if got, want := rawMember(t, s, model.KeyTruncated), `["kern.resource.long","big","blob","euro","list","kern.events.0.stack"]`; got != want {
		t.Errorf("%s = %s, want %s", model.KeyTruncated, got, want)
	}
}

func TestFromOTLPMaxAttributes(t *testing.T) {
	td, sp := newSpan()
	for i := range 10000 {
		sp.Attributes().PutInt("a"+strconv.Itoa(i), int64(i))
	}
	sp.SetDroppedAttributesCount(5)
	start := time.Now()
	s := convertOne(t, td, Limits{})
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("converting 10k attributes took %v", d)
	}
	m := attrsOf(t, s)
	n := 0
	for k := range m {
		if strings.HasPrefix(k, "a") {
			n++
		}
	}
	if n != DefaultMaxAttributes {
		t.Errorf("kept %d attributes, want %d", n, DefaultMaxAttributes)
	}
	if _, ok := m["a1023"]; !ok {
		t.Error("the first 1024 attributes should be kept")
	}
	if got, want := rawMember(t, s, model.KeyDropped), `{"attributes":`+strconv.Itoa(10000-1024+5)+`}`; got != want {
		t.Errorf("dropped %s, want %s", got, want)
	}
}

func TestFromOTLPNoLimits(t *testing.T) {
	td, sp := newSpan()
	sp.Attributes().PutStr("big", strings.Repeat("x", 100))
	for i := range 5 {
		sp.Attributes().PutInt("k"+strconv.Itoa(i), 1)
	}
	m := withoutAnnotations(attrsOf(t, convertOne(t, td, Limits{MaxAttrValueBytes: -1, MaxAttributes: -1})))
	if len(m["big"].(string)) != 100 || len(m) != 6 {
		t.Errorf("limits applied although disabled: %v", m)
	}
}

func TestFromOTLPDeepNesting(t *testing.T) {
	td, sp := newSpan()
	v := sp.Attributes().PutEmpty("deep")
	for range 200 {
		v = v.SetEmptySlice().AppendEmpty()
	}
	v.SetStr("bottom")
	s := convertOne(t, td, Limits{})
	if strings.Contains(string(s.Attributes), "bottom") {
		t.Error("value below the depth limit was stored")
	}
	if got := rawMember(t, s, model.KeyTruncated); got != `["deep"]` {
		t.Errorf("%s = %s, want [\"deep\"]", model.KeyTruncated, got)
	}
}

func TestFromOTLPSanitisesText(t *testing.T) {
	td, sp := newSpan()
	sp.SetName("bad\xffname\x00")
	sp.Status().SetMessage("\xc3")
	sp.Attributes().PutStr("k\x00\xfe", "v")
	s := convertOne(t, td, Limits{})
	if s.Name != "bad\uFFFDname\uFFFD" || s.StatusMessage != "\uFFFD" {
		t.Errorf("name %q message %q not sanitised", s.Name, s.StatusMessage)
	}
	if _, ok := attrsOf(t, s)["k\uFFFD\uFFFD"]; !ok {
		t.Errorf("key not sanitised: %s", s.Attributes)
	}
}

func TestFromOTLPManyResources(t *testing.T) {
	td := ptrace.NewTraces()
	for r := range 3 {
		rs := td.ResourceSpans().AppendEmpty()
		rs.Resource().Attributes().PutInt("r", int64(r))
		for sc := range 2 {
			ss := rs.ScopeSpans().AppendEmpty()
			ss.Scope().SetName("scope" + strconv.Itoa(sc))
			for i := range 4 {
				sp := ss.Spans().AppendEmpty()
				sp.SetTraceID(testTrace)
				sp.SetSpanID(pcommon.SpanID{byte(r), byte(sc), byte(i), 1})
			}
		}
	}
	spans, rej := FromOTLP(td, testNow, Limits{})
	if len(spans) != 24 || len(rej) != 0 {
		t.Fatalf("%d spans %d rejections", len(spans), len(rej))
	}
	ids := map[string]bool{}
	for _, s := range spans {
		r, sc := s.SpanID[1], s.SpanID[3]
		if s.Origin == nil || string(s.Origin.Resource) != `{"r":`+string(r)+`}` ||
			string(s.Origin.Scope) != `{"name":"scope`+string(sc)+`","version":""}` {
			t.Errorf("span %s origin %+v", s.SpanID, s.Origin)
			continue
		}
		if _, ok := attrsOf(t, s)[model.KeyResource]; ok {
			t.Errorf("span %s: the converter wrote %s", s.SpanID, model.KeyResource)
		}
		ids[s.Origin.ID] = true
	}
	if len(ids) != 6 {
		t.Errorf("%d distinct origins, want 6 (3 resources x 2 scopes)", len(ids))
	}
}

func withAnnotate(t *testing.T, f func(semantics.Info, map[string]any) []string) {
	t.Helper()
	old := annotateFunc
	annotateFunc = f
	t.Cleanup(func() { annotateFunc = old })
}

func TestFromOTLPAnnotations(t *testing.T) {
	var gotInfo semantics.Info
	withAnnotate(t, func(info semantics.Info, attrs map[string]any) []string {
		gotInfo = info
		attrs["b.added"] = int64(2)
		attrs["a.added"] = []any{"x", 1.5, math.NaN(), map[string]any{"z": true, "y": nil}}
		attrs["input.value"] = `{"replaced":true}` // the sender's, made readable
		attrs["not.reported"] = "a contract violation: must not be stored"
		attrs[model.KeyEvents] = "must not clobber the converter's key"
		return []string{"a.added", "b.added", "input.value", model.KeyEvents}
	})
	td, sp := newSpan()
	sp.SetParentSpanID(testParent)
	sp.Attributes().PutInt("input.value", 7)
	sp.Attributes().PutStr("session.id", "s")
	ev := sp.Events().AppendEmpty()
	ev.SetName("exception")
	ev.SetTimestamp(42)
	ev.Attributes().PutStr("exception.message", "bad")

	s := convertOne(t, td, Limits{})
	checks := []struct{ key, want string }{
		{"a.added", `["x",1.5,"NaN",{"y":null,"z":true}]`},
		{"b.added", `2`},
		{"input.value", `"{\"replaced\":true}"`},
		{"session.id", `"s"`},
	}
	for _, c := range checks {
		if got := rawMember(t, s, c.key); got != c.want {
			t.Errorf("%s = %s, want %s", c.key, got, c.want)
		}
	}
	if !strings.HasPrefix(rawMember(t, s, model.KeyEvents), `[{"name":"exception"`) {
		t.Errorf("converter's events were clobbered: %s", rawMember(t, s, model.KeyEvents))
	}
	for k, n := range map[string]int{"input.value": 1, model.KeyEvents: 1, "not.reported": 0} {
		if got := strings.Count(string(s.Attributes), `"`+k+`"`); got != n {
			t.Errorf("%s written %d times, want %d", k, got, n)
		}
	}
	if gotInfo.Name != "Agent.run" || gotInfo.ParentSpanID != "00f067aa0ba902b7" || gotInfo.Resource["service.name"] != "agent-os" ||
		len(gotInfo.Events) != 1 || gotInfo.Events[0].TimeUnix != 42 || gotInfo.Events[0].Attributes["exception.message"] != "bad" ||
		gotInfo.StartUnixNano != testStart.UnixNano() {
		t.Errorf("Annotate got info %+v", gotInfo)
	}
}

func TestFromOTLPAnnotatePanics(t *testing.T) {
	withAnnotate(t, func(_ semantics.Info, attrs map[string]any) []string {
		attrs["partial"] = true
		delete(attrs, "session.id")
		panic("classification bug")
	})
	td, sp := newSpan()
	sp.Attributes().PutStr("session.id", "s")
	s := convertOne(t, td, Limits{})
	if strings.Contains(string(s.Attributes), "partial") {
		t.Errorf("annotations of a panicking Annotate were stored: %s", s.Attributes)
	}
	if got := rawMember(t, s, "session.id"); got != `"s"` {
		t.Errorf("the sender's attributes were not stored as sent: %s", s.Attributes)
	}
}

func TestFromOTLPRootIDs(t *testing.T) {
	td, sp := newSpan()
	sp.Attributes().PutStr("agno.team.id", "team-1")
	sp.Attributes().PutStr("agno.session.id", "sess")
	child := td.ResourceSpans().At(0).ScopeSpans().At(0).Spans().AppendEmpty()
	child.SetTraceID(testTrace)
	child.SetSpanID(testParent)
	child.SetParentSpanID(testSpan)
	child.Attributes().PutStr("agno.agent.id", "researcher")
	spans, _ := FromOTLP(td, testNow, Limits{})
	if len(spans) != 2 {
		t.Fatalf("%d spans", len(spans))
	}
	if r := spans[0].Root; r == nil || *r != (model.TraceIDs{TeamID: "team-1", SessionID: "sess"}) {
		t.Errorf("root ids = %+v", r)
	}
	if spans[1].Root != nil {
		t.Errorf("a child span carries trace ids: %+v", spans[1].Root)
	}
}
