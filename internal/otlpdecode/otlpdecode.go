// Package otlpdecode decodes OTLP trace export requests (protobuf or
// OTLP/JSON) into pdata, rejecting spans with malformed ids instead of
// failing the whole request.
//
// pdata stores ids as fixed [16]byte/[8]byte arrays, so its decoders fail
// the entire request when any span carries a trace or span id of the wrong
// length (or, in JSON, one that is not hex). OTLP asks for partial success
// instead: the bad spans are rejected, the others stored. Decoding therefore
// tries pdata first (the fast path, taken by every well-formed request) and
// only when that fails decodes again with a lenient decoder:
//
//   - protobuf: go.opentelemetry.io/proto/otlp, whose ids are []byte; spans
//     with a bad trace, span or parent id are removed, links with a bad id
//     are removed and counted in dropped_links_count, and the cleaned message
//     is re-encoded and handed to pdata.
//   - JSON: encoding/json into generic values (numbers kept exact); the same
//     cleaning on the "traceId"/"trace_id", "spanId"/"span_id" and
//     "parentSpanId"/"parent_span_id" members, then re-encoded for pdata.
//
// Before the lenient protobuf decoder, attribute values nested deeper than
// pdata's recursion limit (100 messages: about 49 arrays or 33 maps, where
// the OpenTelemetry Collector refuses the request) are cut at the
// converter's depth limit (see otlpwire.TruncateDeepValues), so they end as
// null and listed in kern.truncated, as the same values sent as OTLP/JSON
// do: pdata's JSON decoder has no such limit.
//
// When the lenient decoder fails too, or finds nothing to clean, the request
// is malformed and the decoder's error is returned. All-zero and empty ids
// are valid encodings; the converter rejects those spans.
package otlpdecode

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"

	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/kern-agents/trace-gateway/internal/convert"
	"github.com/kern-agents/trace-gateway/internal/otlpwire"
)

const (
	traceIDLen = 16
	spanIDLen  = 8
)

// Proto decodes a protobuf ExportTraceServiceRequest.
func Proto(body []byte) (ptrace.Traces, []convert.Rejection, error) {
	req := ptraceotlp.NewExportRequest()
	firstErr := req.UnmarshalProto(body)
	if firstErr == nil {
		return req.Traces(), nil, nil
	}
	// pdata refuses the whole request when a value nests deeper than its
	// recursion limit; cut such values where the converter would store null.
	if cut, changed, err := otlpwire.TruncateDeepValues(body, convert.MaxNesting); err == nil && changed {
		body = cut
		req = ptraceotlp.NewExportRequest()
		if firstErr = req.UnmarshalProto(body); firstErr == nil {
			return req.Traces(), nil, nil
		}
	}
	var msg coltrace.ExportTraceServiceRequest
	if err := proto.Unmarshal(body, &msg); err != nil {
		return ptrace.Traces{}, nil, fmt.Errorf("decode protobuf: %w", err)
	}
	rejected, changed := cleanProto(&msg)
	if !changed {
		return ptrace.Traces{}, nil, fmt.Errorf("decode protobuf: %w", firstErr)
	}
	clean, err := proto.Marshal(&msg)
	if err != nil {
		return ptrace.Traces{}, nil, fmt.Errorf("re-encode protobuf: %w", err)
	}
	req = ptraceotlp.NewExportRequest()
	if err := req.UnmarshalProto(clean); err != nil {
		return ptrace.Traces{}, nil, fmt.Errorf("decode protobuf: %w", err)
	}
	return req.Traces(), rejected, nil
}

// idProblem describes what is wrong with an id of want bytes, or "". An
// empty id is a valid encoding of "none" (all zero).
func idProblem(what string, id []byte, want int) string {
	if len(id) == want || len(id) == 0 {
		return ""
	}
	return what + " has " + strconv.Itoa(len(id)) + " bytes, want " + strconv.Itoa(want)
}

// cleanProto removes spans with bad ids (returned as rejections) and links
// with bad ids; changed reports whether it removed anything.
func cleanProto(msg *coltrace.ExportTraceServiceRequest) (rejected []convert.Rejection, changed bool) {
	for _, rs := range msg.GetResourceSpans() {
		for _, ss := range rs.GetScopeSpans() {
			kept := ss.Spans[:0]
			for _, sp := range ss.GetSpans() {
				if sp == nil {
					continue
				}
				reason := firstNonEmpty(
					idProblem("trace id", sp.TraceId, traceIDLen),
					idProblem("span id", sp.SpanId, spanIDLen),
					idProblem("parent span id", sp.ParentSpanId, spanIDLen),
				)
				if reason != "" {
					rejected = append(rejected, convert.Rejection{
						TraceID: hex.EncodeToString(sp.TraceId),
						SpanID:  hex.EncodeToString(sp.SpanId),
						Reason:  reason + " (span " + strconv.Quote(sp.Name) + ")",
					})
					continue
				}
				if cleanProtoLinks(sp) {
					changed = true
				}
				kept = append(kept, sp)
			}
			clear(ss.Spans[len(kept):])
			ss.Spans = kept
		}
	}
	return rejected, changed || len(rejected) > 0
}

// cleanProtoLinks drops links with bad ids, counting them as dropped.
func cleanProtoLinks(sp *tracepb.Span) bool {
	n := len(sp.Links)
	kept := sp.Links[:0]
	for _, l := range sp.Links {
		if l == nil || idProblem("", l.TraceId, traceIDLen) != "" || idProblem("", l.SpanId, spanIDLen) != "" {
			sp.DroppedLinksCount++
			continue
		}
		kept = append(kept, l)
	}
	clear(sp.Links[len(kept):])
	sp.Links = kept
	return len(kept) != n
}

func firstNonEmpty(s ...string) string {
	for _, x := range s {
		if x != "" {
			return x
		}
	}
	return ""
}

// JSON decodes an OTLP/JSON ExportTraceServiceRequest (hex ids; enums as
// numbers or names; both lowerCamelCase and snake_case member names).
func JSON(body []byte) (ptrace.Traces, []convert.Rejection, error) {
	req := ptraceotlp.NewExportRequest()
	firstErr := req.UnmarshalJSON(body)
	if firstErr == nil {
		return req.Traces(), nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var doc map[string]any
	if err := dec.Decode(&doc); err != nil {
		return ptrace.Traces{}, nil, fmt.Errorf("decode JSON: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return ptrace.Traces{}, nil, fmt.Errorf("decode JSON: %w", firstErr)
	}
	rejected, changed := cleanJSON(doc)
	if !changed {
		return ptrace.Traces{}, nil, fmt.Errorf("decode JSON: %w", firstErr)
	}
	clean, err := json.Marshal(doc)
	if err != nil {
		return ptrace.Traces{}, nil, fmt.Errorf("re-encode JSON: %w", err)
	}
	req = ptraceotlp.NewExportRequest()
	if err := req.UnmarshalJSON(clean); err != nil {
		return ptrace.Traces{}, nil, fmt.Errorf("decode JSON: %w", err)
	}
	return req.Traces(), rejected, nil
}

// member returns obj's member under its lowerCamelCase or snake_case name.
func member(obj map[string]any, camel, snake string) (any, string, bool) {
	if v, ok := obj[camel]; ok {
		return v, camel, true
	}
	v, ok := obj[snake]
	return v, snake, ok
}

func list(obj map[string]any, camel, snake string) []any {
	v, _, _ := member(obj, camel, snake)
	l, _ := v.([]any)
	return l
}

// jsonIDProblem checks a hex id member; absent, null and "" are fine.
func jsonIDProblem(obj map[string]any, what, camel, snake string, want int) (string, string) {
	v, _, ok := member(obj, camel, snake)
	if !ok || v == nil {
		return "", ""
	}
	s, isStr := v.(string)
	if !isStr {
		return "", what + " is not a string"
	}
	if s == "" {
		return "", ""
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		return s, what + " is not hex"
	}
	if len(b) != want {
		return s, what + " has " + strconv.Itoa(len(b)) + " bytes, want " + strconv.Itoa(want)
	}
	return s, ""
}

// cleanJSON is cleanProto for a generic JSON document.
func cleanJSON(doc map[string]any) (rejected []convert.Rejection, changed bool) {
	for _, rsv := range list(doc, "resourceSpans", "resource_spans") {
		rs, _ := rsv.(map[string]any)
		for _, ssv := range list(rs, "scopeSpans", "scope_spans") {
			ss, _ := ssv.(map[string]any)
			spans := list(ss, "spans", "spans")
			kept := spans[:0]
			for _, spv := range spans {
				sp, ok := spv.(map[string]any)
				if !ok {
					kept = append(kept, spv) // not ours to judge; pdata will
					continue
				}
				tid, tProblem := jsonIDProblem(sp, "trace id", "traceId", "trace_id", traceIDLen)
				sid, sProblem := jsonIDProblem(sp, "span id", "spanId", "span_id", spanIDLen)
				_, pProblem := jsonIDProblem(sp, "parent span id", "parentSpanId", "parent_span_id", spanIDLen)
				if reason := firstNonEmpty(tProblem, sProblem, pProblem); reason != "" {
					name, _ := sp["name"].(string)
					rejected = append(rejected, convert.Rejection{
						TraceID: tid, SpanID: sid,
						Reason: reason + " (span " + strconv.Quote(name) + ")",
					})
					continue
				}
				if cleanJSONLinks(sp) {
					changed = true
				}
				kept = append(kept, sp)
			}
			if spans != nil {
				ss["spans"] = kept
			}
		}
	}
	return rejected, changed || len(rejected) > 0
}

// cleanJSONLinks drops links with bad ids, counting them as dropped.
func cleanJSONLinks(sp map[string]any) bool {
	links, key, ok := member(sp, "links", "links")
	ls, isList := links.([]any)
	if !ok || !isList {
		return false
	}
	kept := ls[:0]
	dropped := 0
	for _, lv := range ls {
		l, isObj := lv.(map[string]any)
		if isObj {
			_, tp := jsonIDProblem(l, "trace id", "traceId", "trace_id", traceIDLen)
			_, sp := jsonIDProblem(l, "span id", "spanId", "span_id", spanIDLen)
			if tp != "" || sp != "" {
				dropped++
				continue
			}
		}
		kept = append(kept, lv)
	}
	sp[key] = kept
	if dropped == 0 {
		return false
	}
	v, dkey, _ := member(sp, "droppedLinksCount", "dropped_links_count")
	n := int64(0)
	switch x := v.(type) {
	case json.Number:
		n, _ = x.Int64()
	case string:
		n, _ = strconv.ParseInt(x, 10, 64)
	}
	sp[dkey] = n + int64(dropped)
	return true
}
