package api

import (
	"bytes"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestAppendSpansMatchesEncodingJSON: the hand-written span writer produces
// byte for byte what encoding/json (HTML-safe, as writeJSON) produces for
// the same spans, hostile strings included.
func TestAppendSpansMatchesEncodingJSON(t *testing.T) {
	str := func(s string) *string { return &s }
	hostile := "<script>&\"\\\n\r\t\b\f\x00\x1f\x7f é \u2028\u2029 \xff\xfe 🦀"
	leaf := &SpanNode{
		SpanID: "00000000000000b2", ParentSpanID: str("00000000000000a1"), Name: hostile, Type: "TOOL",
		SpanKind: "INTERNAL", StatusCode: "ERROR", StatusMessage: str(hostile), StartTime: "t0", EndTime: "t1", DurationMS: -3,
		Attributes: json.RawMessage(`{"input.value": "<b>&amp;</b> \u2028 \u003c", "n": [1, 2.5e-7, {"x": null}], "s":"` + "\u2028\u2029" + `"}`),
		Facts: map[string]any{
			"type": "tool", "usage.input_tokens": int64(42), "llm.temperature": 0.7, "retrieval.scores": []any{0.91, 1e-9, 3.0},
			"llm.tool_calls": []any{map[string]any{"name": "<x>", "arguments": `{"q":"&"}`}}, "input": hostile, "big": int64(-1 << 62),
		},
		Resource: json.RawMessage(`{"service.name":"a&b"}`), Scope: nil, CreatedAt: "c", Orphan: true,
	}
	root := &SpanNode{
		SpanID: "00000000000000a1", TraceID: strings.Repeat("ab", 16), Name: "root", Type: "AGENT", SpanKind: "SERVER",
		StatusCode: "OK", StartTime: "t", EndTime: "t", Attributes: json.RawMessage(`{}`), Facts: map[string]any{},
		Resource: json.RawMessage(`null`), CreatedAt: "c", Children: []*SpanNode{leaf, {SpanID: "x", Attributes: json.RawMessage(`[1]`)}},
	}
	// Enough spans to be written in several chunks.
	var many []*SpanNode
	for range 300 {
		many = append(many, root)
	}
	for _, spans := range [][]*SpanNode{nil, {}, {root}, {leaf, root}, many} {
		var want bytes.Buffer
		enc := json.NewEncoder(&want)
		enc.SetEscapeHTML(true)
		if err := enc.Encode(map[string]any{"spans": spans}); err != nil {
			t.Fatal(err)
		}
		rec := httptest.NewRecorder()
		writeSpans(rec, []byte(`{"spans":`), spans, "}")
		got := rec.Body.String()
		// encoding/json writes a nil slice as null; the API never has one.
		w := strings.Replace(want.String(), `{"spans":null}`, `{"spans":[]}`, 1)
		if got != w {
			t.Errorf("writer:\n%s\nencoding/json:\n%s", got, w)
		}
	}
}

// FuzzAppendJSON compares the writer's strings and raw JSON with
// encoding/json's.
func FuzzAppendJSON(f *testing.F) {
	for _, s := range []string{"", "plain", "<&>", "\u2028\u2029", "\xff", "\x00\x1f\"\\", `{"a": [1, "x y", {"b":"<"}]}`, "\xe2\x80", "é\xe2\x80\xa8"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, _ := json.Marshal(s)
		if got := appendString(nil, s); string(got) != string(want) {
			t.Errorf("appendString(%q) = %s, encoding/json %s", s, got, want)
		}
		if !json.Valid([]byte(s)) {
			return
		}
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(true)
		if err := enc.Encode(json.RawMessage(s)); err != nil {
			t.Fatal(err)
		}
		if got := appendRaw(nil, json.RawMessage(s)); string(got)+"\n" != buf.String() {
			t.Errorf("appendRaw(%q) = %s, encoding/json %s", s, got, buf.String())
		}
	})
}
