package otlpdecode

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/kern-agents/trace-gateway/internal/convert"
)

var (
	goodTrace = bytes.Repeat([]byte{0xab}, 16)
	goodSpan  = bytes.Repeat([]byte{0xcd}, 8)
)

func pbSpan(name string, tid, sid, parent []byte) *tracepb.Span {
	return &tracepb.Span{
		Name: name, TraceId: tid, SpanId: sid, ParentSpanId: parent,
		Kind:              tracepb.Span_SPAN_KIND_SERVER,
		StartTimeUnixNano: 1_700_000_000_000_000_000,
		EndTimeUnixNano:   1_700_000_001_000_000_000,
		Attributes: []*commonpb.KeyValue{{
			Key: "n", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: 1<<53 + 1}},
		}},
	}
}

func pbRequest(spans ...*tracepb.Span) *coltrace.ExportTraceServiceRequest {
	return &coltrace.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{{
		Resource: &resourcepb.Resource{Attributes: []*commonpb.KeyValue{{
			Key: "service.name", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: "svc"}},
		}}},
		ScopeSpans: []*tracepb.ScopeSpans{{Scope: &commonpb.InstrumentationScope{Name: "lib"}, Spans: spans}},
	}}}
}

func marshal(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func spanNames(td ptrace.Traces) []string {
	var names []string
	rss := td.ResourceSpans()
	for i := range rss.Len() {
		sss := rss.At(i).ScopeSpans()
		for j := range sss.Len() {
			sps := sss.At(j).Spans()
			for k := range sps.Len() {
				names = append(names, sps.At(k).Name())
			}
		}
	}
	return names
}

// TestPdataFailsWholeRequest documents why this package exists: one span
// with a wrong-length id makes pdata reject every span of the request.
func TestPdataFailsWholeRequest(t *testing.T) {
	body := marshal(t, pbRequest(pbSpan("good", goodTrace, goodSpan, nil), pbSpan("bad", goodTrace[:15], goodSpan, nil)))
	if err := ptraceotlp.NewExportRequest().UnmarshalProto(body); err == nil {
		t.Error("pdata accepted a 15-byte trace id; the lenient path may no longer be needed")
	}
	js := `{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"abab","spanId":"cdcdcdcdcdcdcdcd"}]}]}]}`
	if err := ptraceotlp.NewExportRequest().UnmarshalJSON([]byte(js)); err == nil {
		t.Error("pdata accepted a 2-byte JSON trace id")
	}
}

func TestProtoMixedIDs(t *testing.T) {
	withBadLink := pbSpan("bad-link", goodTrace, goodSpan, nil)
	withBadLink.Links = []*tracepb.Span_Link{
		{TraceId: goodTrace, SpanId: goodSpan[:7]},
		{TraceId: goodTrace, SpanId: goodSpan},
	}
	withBadLink.DroppedLinksCount = 2
	body := marshal(t, pbRequest(
		pbSpan("good", goodTrace, goodSpan, nil),
		pbSpan("short-trace", goodTrace[:15], goodSpan, nil),
		pbSpan("long-span", goodTrace, append(goodSpan, 1), nil),
		pbSpan("bad-parent", goodTrace, goodSpan, []byte{1, 2, 3}),
		pbSpan("empty-ids", nil, nil, nil), // valid encoding; the converter rejects it
		withBadLink,
		pbSpan("good-child", goodTrace, goodSpan, goodSpan),
	))
	td, rej, err := Proto(body)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(spanNames(td), ","), "good,empty-ids,bad-link,good-child"; got != want {
		t.Errorf("kept %s, want %s", got, want)
	}
	want := []convert.Rejection{
		{TraceID: hex.EncodeToString(goodTrace[:15]), SpanID: hex.EncodeToString(goodSpan), Reason: `trace id has 15 bytes, want 16 (span "short-trace")`},
		{TraceID: hex.EncodeToString(goodTrace), SpanID: hex.EncodeToString(goodSpan) + "01", Reason: `span id has 9 bytes, want 8 (span "long-span")`},
		{TraceID: hex.EncodeToString(goodTrace), SpanID: hex.EncodeToString(goodSpan), Reason: `parent span id has 3 bytes, want 8 (span "bad-parent")`},
	}
	if len(rej) != len(want) {
		t.Fatalf("rejections %v, want %v", rej, want)
	}
	for i := range want {
		if rej[i] != want[i] {
			t.Errorf("rejection %d: %+v, want %+v", i, rej[i], want[i])
		}
	}
	// The kept spans arrive intact.
	sp := td.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0)
	if v, _ := sp.Attributes().Get("n"); v.Int() != 1<<53+1 || sp.Kind() != ptrace.SpanKindServer {
		t.Errorf("span not intact: %v", sp.Attributes().AsRaw())
	}
	if svc, _ := td.ResourceSpans().At(0).Resource().Attributes().Get("service.name"); svc.Str() != "svc" {
		t.Error("resource lost")
	}
	link := td.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(2)
	if link.Links().Len() != 1 || link.DroppedLinksCount() != 3 {
		t.Errorf("links %d dropped %d; want the bad link dropped and counted", link.Links().Len(), link.DroppedLinksCount())
	}
}

func TestProtoGood(t *testing.T) {
	td, rej, err := Proto(marshal(t, pbRequest(pbSpan("a", goodTrace, goodSpan, nil))))
	if err != nil || len(rej) != 0 || td.SpanCount() != 1 {
		t.Fatalf("td %d spans, rej %v, err %v", td.SpanCount(), rej, err)
	}
	td, rej, err = Proto(nil)
	if err != nil || len(rej) != 0 || td.SpanCount() != 0 {
		t.Fatalf("empty body: td %d spans, rej %v, err %v", td.SpanCount(), rej, err)
	}
}

func TestProtoMalformed(t *testing.T) {
	good := marshal(t, pbRequest(pbSpan("a", goodTrace, goodSpan, nil)))
	badLen := marshal(t, pbRequest(pbSpan("a", goodTrace[:3], goodSpan, nil)))
	tests := map[string][]byte{
		"garbage":            []byte("this is not protobuf"),
		"truncated":          good[:len(good)-3],
		"truncated with bad": badLen[:len(badLen)-3],
		"wrong wire type":    {0x0d, 1, 2, 3, 4},
	}
	for name, body := range tests {
		t.Run(name, func(t *testing.T) {
			_, _, err := Proto(body)
			if err == nil || !strings.HasPrefix(err.Error(), "decode protobuf: ") {
				t.Errorf("error %v, want a decode error", err)
			}
		})
	}
}

const jsonMixed = `{
 "resourceSpans": [{
  "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "svc"}}]},
  "scopeSpans": [{
   "scope": {"name": "lib"},
   "spans": [
    {"traceId": "5B8EFFF798038103D269B633813FC60C", "spanId": "EEE19B7EC3C1B174", "name": "good",
     "kind": 2, "startTimeUnixNano": "1544712660000000000", "endTimeUnixNano": "1544712661000000000",
     "attributes": [{"key": "big", "value": {"intValue": "9007199254740993"}}],
     "status": {"code": "STATUS_CODE_ERROR", "message": "x"}},
    {"traceId": "5b8efff798038103d269b633813fc6", "spanId": "eee19b7ec3c1b174", "name": "short"},
    {"trace_id": "5b8efff798038103d269b633813fc60c", "span_id": "zzzzzzzzzzzzzzzz", "name": "not-hex"},
    {"traceId": 12, "spanId": "eee19b7ec3c1b174", "name": "number"},
    {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b175", "parentSpanId": "ab", "name": "bad-parent"},
    {"trace_id": "5b8efff798038103d269b633813fc60c", "span_id": "eee19b7ec3c1b176", "name": "snake",
     "kind": "SPAN_KIND_CLIENT", "dropped_links_count": 1,
     "links": [{"traceId": "00", "spanId": "eee19b7ec3c1b174"}, {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174"}]}
   ]
  }]
 }]
}`

func TestJSONMixedIDs(t *testing.T) {
	td, rej, err := JSON([]byte(jsonMixed))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(spanNames(td), ","), "good,snake"; got != want {
		t.Errorf("kept %s, want %s", got, want)
	}
	wantReasons := []string{
		`trace id has 15 bytes, want 16 (span "short")`,
		`span id is not hex (span "not-hex")`,
		`trace id is not a string (span "number")`,
		`parent span id has 1 bytes, want 8 (span "bad-parent")`,
	}
	if len(rej) != len(wantReasons) {
		t.Fatalf("rejections %v", rej)
	}
	for i, r := range rej {
		if r.Reason != wantReasons[i] {
			t.Errorf("rejection %d: %q, want %q", i, r.Reason, wantReasons[i])
		}
	}
	if rej[0].TraceID != "5b8efff798038103d269b633813fc6" {
		t.Errorf("rejection names trace %q", rej[0].TraceID)
	}
	spans := td.ResourceSpans().At(0).ScopeSpans().At(0).Spans()
	good, snake := spans.At(0), spans.At(1)
	if v, _ := good.Attributes().Get("big"); v.Int() != 9007199254740993 {
		t.Errorf("int attribute %v, want exact", v.AsRaw())
	}
	if good.Kind() != ptrace.SpanKindServer || good.Status().Code() != ptrace.StatusCodeError {
		t.Errorf("kind %v status %v", good.Kind(), good.Status().Code())
	}
	if got := good.TraceID().String(); got != "5b8efff798038103d269b633813fc60c" {
		t.Errorf("trace id %s", got)
	}
	if snake.Kind() != ptrace.SpanKindClient || snake.Links().Len() != 1 || snake.DroppedLinksCount() != 2 {
		t.Errorf("snake span: kind %v links %d dropped %d", snake.Kind(), snake.Links().Len(), snake.DroppedLinksCount())
	}
}

func TestJSONEnums(t *testing.T) {
	for _, tc := range []struct{ kind, code string }{{`3`, `2`}, {`"SPAN_KIND_CLIENT"`, `"STATUS_CODE_ERROR"`}} {
		body := `{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","kind":` + tc.kind + `,"status":{"code":` + tc.code + `}}]}]}]}`
		td, rej, err := JSON([]byte(body))
		if err != nil || len(rej) != 0 {
			t.Fatalf("%s: %v %v", body, err, rej)
		}
		sp := td.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0)
		if sp.Kind() != ptrace.SpanKindClient || sp.Status().Code() != ptrace.StatusCodeError {
			t.Errorf("%s: kind %v status %v", body, sp.Kind(), sp.Status().Code())
		}
	}
}

func TestJSONMalformed(t *testing.T) {
	tests := map[string]string{
		"not json":          `hello`,
		"truncated":         `{"resourceSpans":[`,
		"wrong type":        `{"resourceSpans":"no"}`,
		"bad id and broken": `{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"ab"}]}]}]`,
		"array":             `[]`,
	}
	for name, body := range tests {
		t.Run(name, func(t *testing.T) {
			_, _, err := JSON([]byte(body))
			if err == nil || !strings.HasPrefix(err.Error(), "decode JSON: ") {
				t.Errorf("error %v, want a decode error", err)
			}
		})
	}
}

// TestOnlyBadLinks: a request whose only fault is a link id keeps all its
// spans and drops the link.
func TestOnlyBadLinks(t *testing.T) {
	sp := pbSpan("a", goodTrace, goodSpan, nil)
	sp.Links = []*tracepb.Span_Link{{TraceId: goodTrace[:4], SpanId: goodSpan}}
	td, rej, err := Proto(marshal(t, pbRequest(sp)))
	if err != nil || len(rej) != 0 || td.SpanCount() != 1 {
		t.Fatalf("proto: %d spans, rej %v, err %v", td.SpanCount(), rej, err)
	}
	if got := td.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0); got.Links().Len() != 0 || got.DroppedLinksCount() != 1 {
		t.Errorf("proto: links %d dropped %d", got.Links().Len(), got.DroppedLinksCount())
	}

	js := `{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174",
		"links":[{"traceId":"5b8e","spanId":"eee19b7ec3c1b174"}]}]}]}]}`
	td, rej, err = JSON([]byte(js))
	if err != nil || len(rej) != 0 || td.SpanCount() != 1 {
		t.Fatalf("json: %d spans, rej %v, err %v", td.SpanCount(), rej, err)
	}
	if got := td.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0); got.Links().Len() != 0 || got.DroppedLinksCount() != 1 {
		t.Errorf("json: links %d dropped %d", got.Links().Len(), got.DroppedLinksCount())
	}
}

// nestPdata fills v with depth arrays (or maps under "k") around a leaf.
func nestPdata(v pcommon.Value, depth int, maps bool) {
	for range depth {
		if maps {
			v = v.SetEmptyMap().PutEmpty("k")
		} else {
			v = v.SetEmptySlice().AppendEmpty()
		}
	}
	v.SetStr("leaf")
}

// TestDeepValuesBothEncodings: attribute values nested past pdata's protobuf
// recursion limit keep the request alive in protobuf as in JSON, and both
// store the same row: the other spans intact, the deep value cut to null at
// the converter's depth and listed in kern.truncated.
func TestDeepValuesBothEncodings(t *testing.T) {
	for _, tc := range []struct {
		depth int
		maps  bool
	}{{50, false}, {50, true}, {200, false}, {200, true}, {5000, false}} {
		t.Run(fmt.Sprintf("%d/maps=%v", tc.depth, tc.maps), func(t *testing.T) {
			td := ptrace.NewTraces()
			rs := td.ResourceSpans().AppendEmpty()
			nestPdata(rs.Resource().Attributes().PutEmpty("deep.res"), tc.depth, tc.maps)
			spans := rs.ScopeSpans().AppendEmpty().Spans()
			for i, name := range []string{"before", "deep", "after"} {
				sp := spans.AppendEmpty()
				sp.SetName(name)
				sp.SetTraceID(pcommon.TraceID(goodTrace))
				sp.SetSpanID(pcommon.SpanID{byte(i + 1)})
				sp.Attributes().PutStr("input.value", "hello "+name)
				if name == "deep" {
					nestPdata(sp.Attributes().PutEmpty("nested"), tc.depth, tc.maps)
					nestPdata(sp.Events().AppendEmpty().Attributes().PutEmpty("ev"), tc.depth, tc.maps)
				}
			}
			req := ptraceotlp.NewExportRequestFromTraces(td)
			pb, err := req.MarshalProto()
			if err != nil {
				t.Fatal(err)
			}
			js, err := req.MarshalJSON()
			if err != nil {
				t.Fatal(err)
			}
			if err := ptraceotlp.NewExportRequest().UnmarshalProto(pb); err == nil {
				t.Fatal("pdata decodes this depth; the case does not exercise the cut")
			}
			fromProto, rejP, err := Proto(pb)
			if err != nil || len(rejP) != 0 {
				t.Fatalf("protobuf: %v, rejected %v", err, rejP)
			}
			fromJSON, rejJ, err := JSON(js)
			if err != nil || len(rejJ) != 0 {
				t.Fatalf("JSON: %v, rejected %v", err, rejJ)
			}
			now := time.Unix(1_700_000_000, 0)
			rowsP, _ := convert.FromOTLP(fromProto, now, convert.Limits{})
			rowsJ, _ := convert.FromOTLP(fromJSON, now, convert.Limits{})
			if len(rowsP) != 3 || len(rowsJ) != 3 {
				t.Fatalf("rows: protobuf %d, JSON %d; want 3", len(rowsP), len(rowsJ))
			}
			for i := range rowsP {
				if string(rowsP[i].Attributes) != string(rowsJ[i].Attributes) {
					t.Errorf("span %s: protobuf stored\n%.600s\nJSON stored\n%.600s", rowsP[i].Name, rowsP[i].Attributes, rowsJ[i].Attributes)
				}
			}
			var deep map[string]any
			if err := json.Unmarshal(rowsP[1].Attributes, &deep); err != nil {
				t.Fatal(err)
			}
			trunc := fmt.Sprint(deep["kern.truncated"])
			for _, path := range []string{"nested", "kern.resource.deep.res", "kern.events.0.ev"} {
				if !strings.Contains(trunc, path) {
					t.Errorf("kern.truncated = %s, want %s listed", trunc, path)
				}
			}
			// The value is kept down to the converter's depth, then null.
			v, levels := deep["nested"], 0
			for v != nil {
				if m, ok := v.(map[string]any); ok {
					v = m["k"]
				} else {
					v = v.([]any)[0]
				}
				levels++
			}
			if levels != convert.MaxNesting {
				t.Errorf("kept %d levels, want %d", levels, convert.MaxNesting)
			}
			if deep["input.value"] != "hello deep" {
				t.Errorf("input.value = %v", deep["input.value"])
			}
		})
	}
}

// TestDeepValueAndBadIDs: a request with both faults keeps its valid spans,
// truncates the deep value and rejects only the span with a bad id.
func TestDeepValueAndBadIDs(t *testing.T) {
	deep := &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: "leaf"}}
	for range 60 {
		deep = &commonpb.AnyValue{Value: &commonpb.AnyValue_ArrayValue{ArrayValue: &commonpb.ArrayValue{Values: []*commonpb.AnyValue{deep}}}}
	}
	deepSpan := pbSpan("deep", goodTrace, goodSpan, nil)
	deepSpan.Attributes = append(deepSpan.Attributes, &commonpb.KeyValue{Key: "nested", Value: deep})
	td, rej, err := Proto(marshal(t, pbRequest(
		pbSpan("good", goodTrace, []byte{1, 2, 3, 4, 5, 6, 7, 8}, nil),
		deepSpan,
		pbSpan("short-trace", goodTrace[:15], goodSpan, nil),
	)))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(spanNames(td), ","); got != "good,deep" {
		t.Errorf("kept %s, want good,deep", got)
	}
	if len(rej) != 1 || !strings.Contains(rej[0].Reason, "short-trace") {
		t.Errorf("rejections %v, want the short-trace span only", rej)
	}
	rows, _ := convert.FromOTLP(td, time.Unix(1_700_000_000, 0), convert.Limits{})
	if len(rows) != 2 || !strings.Contains(string(rows[1].Attributes), `"kern.truncated":["nested"]`) {
		t.Errorf("deep span stored as %s", rows[len(rows)-1].Attributes)
	}
}
