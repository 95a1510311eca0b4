package convert

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"testing"

	"go.opentelemetry.io/collector/pdata/ptrace"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/kern-agents/trace-gateway/internal/model"
)

// checkEncode holds EncodeOTLP to MarshalTraces(ToOTLP(spans)): the same
// error or the same bytes, and an order that names every span once.
func checkEncode(t *testing.T, spans []model.Span) {
	t.Helper()
	td, terr := ToOTLP(spans)
	got, order, eerr := EncodeOTLP(spans)
	if terr != nil || eerr != nil {
		if terr == nil || eerr == nil || terr.Error() != eerr.Error() {
			t.Fatalf("ToOTLP error: %v\nEncodeOTLP error: %v", terr, eerr)
		}
		return
	}
	want, err := (&ptrace.ProtoMarshaler{}).MarshalTraces(td)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		n := 0
		for n < len(got) && n < len(want) && got[n] == want[n] {
			n++
		}
		t.Fatalf("payload differs from byte %d (%d bytes, want %d)\n got %x\nwant %x", n, len(got), len(want), got, want)
	}
	checkOrder(t, spans, got, order, td)
	// Blocks smaller than most spans and a few spans to a block: the parts
	// must concatenate to the same payload, in the same order.
	for _, block := range []int{1, 300, 4 << 10} {
		parts, porder, err := encodeParts(spans, block)
		if err != nil {
			t.Fatalf("block %d: %v", block, err)
		}
		if joined := bytes.Join(parts, nil); !bytes.Equal(joined, want) {
			t.Fatalf("block %d: parts join to %d bytes that differ from the payload's %d", block, len(joined), len(want))
		}
		if !slices.Equal(porder, order) {
			t.Fatalf("block %d: order %v, want %v", block, porder, order)
		}
	}
}

// checkOrder decodes the payload and matches its spans with spans[order[i]].
// pdata refuses to decode values nested past its recursion limit, which
// the reader's depth limit allows: those payloads are read as td, the
// traces they were checked equal to.
func checkOrder(t *testing.T, spans []model.Span, payload []byte, order []int, td ptrace.Traces) {
	t.Helper()
	if len(order) != len(spans) {
		t.Fatalf("order has %d entries for %d spans", len(order), len(spans))
	}
	seen := make([]bool, len(spans))
	for _, i := range order {
		if i < 0 || i >= len(spans) || seen[i] {
			t.Fatalf("order %v is not a permutation", order)
		}
		seen[i] = true
	}
	if dec, err := (&ptrace.ProtoUnmarshaler{}).UnmarshalTraces(payload); err == nil {
		td = dec
	} else if !strings.Contains(err.Error(), "recursion depth") {
		t.Fatalf("payload does not decode: %v", err)
	}
	k := 0
	rss := td.ResourceSpans()
	for i := range rss.Len() {
		sss := rss.At(i).ScopeSpans()
		for j := range sss.Len() {
			sps := sss.At(j).Spans()
			for l := range sps.Len() {
				sp, s := sps.At(l), spans[order[k]]
				sid, tid := sp.SpanID(), sp.TraceID()
				if hex.EncodeToString(sid[:]) != strings.ToLower(s.SpanID) ||
					hex.EncodeToString(tid[:]) != strings.ToLower(s.TraceID) || sp.Name() != s.Name {
					t.Fatalf("payload span %d is %v/%v %q, order says row %d (%s/%s %q)",
						k, tid, sid, sp.Name(), order[k], s.TraceID, s.SpanID, s.Name)
				}
				k++
			}
		}
	}
	if k != len(spans) {
		t.Fatalf("payload holds %d spans, want %d", k, len(spans))
	}
}

// row is a valid stored span with the given attributes column.
func row(i int, attrs string) model.Span {
	return model.Span{
		TraceID:   strings.Repeat("ab", 16),
		SpanID:    fmt.Sprintf("%016x", 0x1000+i),
		Name:      fmt.Sprintf("span %d", i),
		SpanKind:  "INTERNAL",
		StartTime: model.FormatTime(testStart),
		EndTime:   model.FormatTime(testStart.Add(1500)),
		Attributes: func() []byte {
			if attrs == "<nil>" {
				return nil
			}
			return []byte(attrs)
		}(),
	}
}

// rows makes one row per attributes column.
func rows(attrs ...string) []model.Span {
	out := make([]model.Span, len(attrs))
	for i, a := range attrs {
		out[i] = row(i, a)
	}
	return out
}

func fromOTLP(td ptrace.Traces, lim Limits) []model.Span {
	spans, _ := FromOTLP(td, testNow, lim)
	return spans
}

// interleave alternates the rows of a and b.
func interleave(a, b []model.Span) []model.Span {
	var out []model.Span
	for i := 0; i < len(a) || i < len(b); i++ {
		if i < len(a) {
			out = append(out, a[i])
		}
		if i < len(b) {
			out = append(out, b[i])
		}
	}
	return out
}

// limitedTraces is cut by small limits: truncated values, dropped
// attributes, a lone surrogate-free multi-byte cut.
func limitedTraces() ptrace.Traces {
	td, sp := newSpan()
	sp.Attributes().PutStr("long", strings.Repeat("é", 40))
	sp.Attributes().PutEmptyBytes("blob").FromRaw(bytes.Repeat([]byte{0xab}, 40))
	for i := range 6 {
		sp.Attributes().PutInt(fmt.Sprintf("n%d", i), int64(i))
	}
	ev := sp.Events().AppendEmpty()
	ev.SetName("e")
	ev.Attributes().PutStr("msg", strings.Repeat("x", 100))
	sp.SetDroppedEventsCount(5)
	return td
}

// manyKeys is an object with n keys, then some of them again (every
// seventh, the first, the last); with similar, the keys differ only in the
// middle.
func manyKeys(n int, similar bool) string {
	key := func(i int) string {
		if similar {
			return fmt.Sprintf("llm.input_messages.%d.message.content", i)
		}
		return fmt.Sprintf("k%d", i)
	}
	var b strings.Builder
	b.WriteString("{")
	for i := range n {
		fmt.Fprintf(&b, "%q:%d,", key(i), i)
	}
	for i := 0; i < n; i += 7 {
		fmt.Fprintf(&b, "%q:\"again %d\",", key(i), i)
	}
	fmt.Fprintf(&b, "%q:null,%q:[true]}", key(0), key(n-1))
	return b.String()
}

func TestEncodeOTLPMatchesToOTLP(t *testing.T) {
	rich := fromOTLP(richTraces(), Limits{})
	bench := fromOTLP(benchTraces(), Limits{})
	reversed := slices.Clone(rich)
	slices.Reverse(reversed)

	kinds := rows("{}", "{}", "{}", "{}", "{}", "{}", "{}", "{}")
	for i, k := range []string{"INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER", "UNSPECIFIED", "", "bogus"} {
		kinds[i].SpanKind = k
		kinds[i].StatusCode = []string{model.StatusUnset, model.StatusOK, model.StatusError, "", "bogus"}[i%5]
		if i%2 == 1 {
			kinds[i].StatusMessage = "message " + k
		}
		if i%3 == 0 {
			kinds[i].ParentSpanID = "00f067aa0ba902b7"
		}
	}
	zeroIDs := rows(`{"kern.links":[{"trace_id":"` + strings.Repeat("0", 32) + `","span_id":"` + strings.Repeat("0", 16) + `"}]}`)
	zeroIDs[0].TraceID, zeroIDs[0].SpanID, zeroIDs[0].ParentSpanID = strings.Repeat("0", 32), strings.Repeat("0", 16), strings.Repeat("0", 16)
	epoch := rows(`{}`)
	epoch[0].StartTime, epoch[0].EndTime, epoch[0].Name = "1970-01-01T00:00:00Z", "1969-12-31T23:59:59.999999999Z", ""
	upper := rows(`{}`)
	upper[0].TraceID, upper[0].SpanID = strings.ToUpper(upper[0].TraceID), "ABCDEF0123456789"
	badUTF8 := rows(`{}`)
	badUTF8[0].Name, badUTF8[0].StatusMessage = "a\xffb", "\xfe"

	long := func(n int) string { return strings.Repeat("x", n) }
	esc := func(n int) string { return strings.Repeat(`\"`, n) }

	tests := []struct {
		name  string
		spans []model.Span
	}{
		{"no spans", nil},
		{"rich", rich},
		{"rich reversed", reversed},
		{"bench", bench},
		{"rich and bench interleaved", interleave(rich, bench)},
		{"duplicate attribute", fromOTLP(withDuplicateAttr(t), Limits{})},
		{"truncated and dropped", fromOTLP(limitedTraces(), Limits{MaxAttrValueBytes: 8, MaxAttributes: 3})},
		{"kinds, statuses, parents", kinds},
		{"zero ids", zeroIDs},
		{"epoch and negative times", epoch},
		{"upper-case ids", upper},
		{"columns not UTF-8", badUTF8},
		{"empty and null attributes", rows("<nil>", "", "null", " null ", "{}", " { } ", "\n{\n}\n")},
		{"strings", rows(
			`{"s":"","":"empty key","plain":"abc","esc":"a\"b\\c\/d\b\f\n\r\t","u":"\u00e9\u4E2D\u0000"}`,
			`{"pair":"\ud83d\ude00","lone high":"\ud83d x","lone low":"\ude00","high at end":"\ud83d","two highs":"\ud83d\ud83d\ude00"}`,
			"{\"bad\":\"x\xffy\",\"run\":\"\xff\xfe\xfd\",\"cut\":\"\xe2\x82\",\"bad key \xff\":1,\"esc+bad\":\"\\n\xff\"}",
			`{"k\u0065y":"escaped key","\ud83d\ude00":"emoji key"}`,
			`{"127":"`+long(127)+`","128":"`+long(128)+`","16383":"`+long(16383)+`","16384":"`+long(16384)+`"}`,
			`{"esc 130":"`+esc(65)+`","esc 200":"`+esc(100)+`","esc 9000":"`+esc(9000)+`","esc 70000":"`+esc(70000)+`"}`,
			`{"big":"`+long(3<<20)+`"}`,
		)},
		{"numbers", rows(
			`{"one":1,"one.0":1.0,"-0":-0,"-0.0":-0.0,"zero":0,"1e300":1e300,"1e400":1e400,"-1e400":-1e400,"1E2":1E2,"small":0.5e-3}`,
			`{"max":9223372036854775807,"over":9223372036854775808,"min":-9223372036854775808,"under":-9223372036854775809,"long":1`+strings.Repeat("0", 300)+`}`,
			`{"t":true,"f":false,"n":null,"neg":-7,"e-":1e-400}`,
		)},
		{"nested", rows(
			`{"a":[1,"x",true,null,1.5,[],{},[[[]]],{"k":[null,{"z":null}]}],"m":{"in":{"deeper":{"x":[1,2,3]}}},"e":[null,null]}`,
			`{"wide":{`+strings.Repeat(`"k":"`+long(20)+`",`, 0)+`"a":"`+long(200)+`","b":[`+strings.Repeat(`"`+long(30)+`",`, 9)+`"z"]}}`,
			`{"deep":`+strings.Repeat("[", 63)+strings.Repeat("]", 63)+`}`,
			`{"deepmap":`+strings.Repeat(`{"a":`, 63)+"1"+strings.Repeat("}", 63)+`}`,
		)},
		{"duplicate keys", rows(
			`{"a":1,"b":2,"a":"x"}`,
			`{"a":1,"a":2,"a":null}`,
			`{"a":"`+long(300)+`","b":[1],"c":{"x":1},"a":{"y":[1,2]},"b":"`+long(200)+`","d":1}`,
			`{"m":{"x":1,"y":[1,2],"x":{"z":null,"z":true}},"l":[{"q":1,"q":"`+long(150)+`"}]}`,
			`{"kern.resource":{"a":1},"x":1,"kern.resource":{"a":2,"a":3}}`,
			`{"":1,"":2}`,
			manyKeys(100, false),
			`{"m":`+manyKeys(100, false)+`,"n":[`+manyKeys(40, false)+`]}`,
			manyKeys(1000, true),
		)},
		{"events, links, dropped", rows(
			`{"kern.events":[{"name":"a","time":"2025-01-02T03:04:05.000006+00:00","attributes":{"k":"v","n":1},"dropped_attributes_count":2},{"name":""},{"time":""},{"attributes":null},{"attributes":{}},{}],"x":1}`,
			`{"kern.links":[{"trace_id":"`+strings.Repeat("12", 16)+`","span_id":"`+strings.Repeat("34", 8)+`","trace_state":"vendor=1,other=2","attributes":{"n":1},"dropped_attributes_count":3},{"trace_id":"`+strings.Repeat("12", 16)+`","span_id":"`+strings.Repeat("34", 8)+`"}]}`,
			`{"kern.dropped":{"attributes":1,"events":200,"links":70000}}`,
			`{"kern.dropped":{"links":1},"kern.events":null,"kern.links":null}`,
			`{"kern.dropped":{}, "kern.events":[], "kern.links":[]}`,
			`{"kern.events":[{"name":"big","attributes":{"s":"`+long(500)+`"}}],"kern.truncated":["s"]}`,
			`{"kern.dropped":null,"KERN.DROPPED":{"links":1},"kern.events":[{"NAME":"case","Dropped_Attributes_Count":1}]}`,
		)},
		{"resources and scopes", rows(
			`{"i":1,"kern.resource":{"service.name":"a"},"kern.scope":{"name":"s1","version":""}}`,
			`{"i":2,"kern.resource":{"service.name":"b"},"kern.scope":{"name":"s1","version":""}}`,
			`{"i":3,"kern.resource":{"service.name":"a"},"kern.scope":{"name":"s2","version":"2","attributes":{"auto":true}}}`,
			`{"i":4,"kern.resource":{"service.name":"a"},"kern.scope":{"name":"s1","version":""}}`,
			`{"i":5}`,
			`{"i":6,"kern.resource":null,"kern.scope":null}`,
			`{"i":7,"kern.resource":{},"kern.scope":{}}`,
			`{"i":8,"kern.resource":{ },"kern.scope":{"NAME":"upper","Version":"v","attributes":null}}`,
			`{"i":9,"kern.resource":{"service.name":"b"},"kern.scope":{"name":"s3","attributes":{"x":[1,{"y":"z"}]}}}`,
			`{"i":10,"kern.resource":{"service.name":"a"}}`,
			`{"kern.scope":{"name":"s1","version":""},"i":11,"kern.resource":{"service.name":"a"}}`,
			`{"i":12,"kern.resource":{"big":"`+long(400)+`"},"kern.scope":{"name":"`+long(200)+`"}}`,
		)},
		{"jsonb layout", rows(" {\n \"esc\" : \"a\\\"b\" ,\"k\":1,\n \"kern.resource\" : { \"x\" : [ true , false ] } ,\n\"nest\" : [ {} , [ ] , null , -0.5e-3 ] } ")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := ToOTLP(tt.spans); err != nil {
				t.Fatalf("case should convert: %v", err)
			}
			checkEncode(t, tt.spans)
		})
	}
}

func TestEncodeOTLPErrors(t *testing.T) {
	tests := []struct {
		name string
		edit func(s *model.Span)
	}{
		{"bad json", func(s *model.Span) { s.Attributes = []byte(`{"a":`) }},
		{"not an object", func(s *model.Span) { s.Attributes = []byte(`[1]`) }},
		{"trailing data", func(s *model.Span) { s.Attributes = []byte(`{"a":1} x`) }},
		{"trailing comma", func(s *model.Span) { s.Attributes = []byte(`{"a":[1,]}`) }},
		{"bad literal", func(s *model.Span) { s.Attributes = []byte(`{"a":tru}`) }},
		{"bad number", func(s *model.Span) { s.Attributes = []byte(`{"a":+1}`) }},
		{"bad escape", func(s *model.Span) { s.Attributes = []byte(`{"a":"\x"}`) }},
		{"bad escape in key", func(s *model.Span) { s.Attributes = []byte(`{"\u12":1}`) }},
		{"bad escape in skipped", func(s *model.Span) { s.Attributes = []byte(`{"kern.events":["\q"]}`) }},
		{"nested too deeply", func(s *model.Span) {
			s.Attributes = []byte(`{"a":` + strings.Repeat("[", 70) + strings.Repeat("]", 70) + `}`)
		}},
		{"short trace id", func(s *model.Span) { s.TraceID = "abcd" }},
		{"bad span id", func(s *model.Span) { s.SpanID = strings.Repeat("zz", 8) }},
		{"bad parent", func(s *model.Span) { s.ParentSpanID = "1" }},
		{"bad start", func(s *model.Span) { s.StartTime = "yesterday" }},
		{"bad end", func(s *model.Span) { s.EndTime = "2025-13-01T00:00:00Z" }},
		{"events not an array", func(s *model.Span) { s.Attributes = []byte(`{"kern.events":{}}`) }},
		{"event not an object", func(s *model.Span) { s.Attributes = []byte(`{"kern.events":[1]}`) }},
		{"event name not a string", func(s *model.Span) { s.Attributes = []byte(`{"kern.events":[{"name":5}]}`) }},
		{"bad event time", func(s *model.Span) { s.Attributes = []byte(`{"kern.events":[{"name":"e","time":"noon"}]}`) }},
		{"bad event attributes", func(s *model.Span) { s.Attributes = []byte(`{"kern.events":[{"attributes":[1]}]}`) }},
		{"bad link id", func(s *model.Span) { s.Attributes = []byte(`{"kern.links":[{"trace_id":"x","span_id":"y"}]}`) }},
		{"bad link span id", func(s *model.Span) {
			s.Attributes = []byte(`{"kern.links":[{"trace_id":"` + strings.Repeat("ab", 16) + `","span_id":"y"}]}`)
		}},
		{"bad link attributes", func(s *model.Span) {
			s.Attributes = []byte(`{"kern.links":[{"trace_id":"` + strings.Repeat("ab", 16) + `","span_id":"` + strings.Repeat("ab", 8) + `","attributes":{"a":}}]}`)
		}},
		{"negative dropped", func(s *model.Span) { s.Attributes = []byte(`{"kern.dropped":{"links":-1}}`) }},
		{"dropped not an object", func(s *model.Span) { s.Attributes = []byte(`{"kern.dropped":"3"}`) }},
		{"resource not an object", func(s *model.Span) { s.Attributes = []byte(`{"kern.resource":[1]}`) }},
		{"bad resource value", func(s *model.Span) { s.Attributes = []byte(`{"kern.resource":{"a":NaN}}`) }},
		{"scope not an object", func(s *model.Span) { s.Attributes = []byte(`{"kern.scope":"x"}`) }},
		{"bad scope attributes", func(s *model.Span) { s.Attributes = []byte(`{"kern.scope":{"attributes":"x"}}`) }},
		{"events and links both bad", func(s *model.Span) {
			s.Attributes = []byte(`{"kern.links":[1],"kern.events":[2],"kern.dropped":[3]}`)
		}},
		{"bad events and bad start", func(s *model.Span) { s.Attributes = []byte(`{"kern.events":1}`); s.StartTime = "x" }},
	}
	good := row(0, `{"a":1}`)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bad := row(1, `{}`)
			tt.edit(&bad)
			spans := []model.Span{good, bad, good}
			_, terr := ToOTLP(spans)
			if terr == nil {
				t.Fatal("ToOTLP accepted the row")
			}
			_, _, eerr := EncodeOTLP(spans)
			if eerr == nil || eerr.Error() != terr.Error() {
				t.Fatalf("EncodeOTLP error %v, want %v", eerr, terr)
			}
			if want := "span " + bad.SpanID + " of trace " + bad.TraceID + ": "; !strings.HasPrefix(eerr.Error(), want) {
				t.Errorf("error %q does not start with %q", eerr, want)
			}
		})
	}
}

// TestEncodeOTLPReuse runs encodings of different shapes one after the
// other, so that state left in pooled buffers would show.
func TestEncodeOTLPReuse(t *testing.T) {
	rich := fromOTLP(richTraces(), Limits{})
	bad := rows(`{"a":[1,{"b":`)
	for range 3 {
		for _, spans := range [][]model.Span{rich, bad, rich[:1], nil, fromOTLP(benchTraces(), Limits{})} {
			checkEncode(t, spans)
		}
	}
}

func TestCloseLen(t *testing.T) {
	for _, n := range []int{0, 1, 127, 128, 16383, 16384, 1 << 21} {
		for _, w := range []int{1, 2, 3} {
			body := bytes.Repeat([]byte{7}, n)
			b := append(append([]byte{9}, make([]byte, w)...), body...)
			got := closeLen(b, 1, w)
			want := append(protowire.AppendVarint([]byte{9}, uint64(n)), body...)
			if !bytes.Equal(got, want) {
				t.Errorf("n=%d w=%d: wrong encoding", n, w)
			}
		}
	}
}
