package api

import (
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strconv"
	"unicode/utf8"
)

// Span trees are the API's largest answers (thousands of spans, each with
// its stored attributes). encoding/json would validate and compact every
// stored attributes object again and sort every facts map through
// reflection; appendSpans writes the same JSON directly, from attributes
// enrich has already decoded (so they are known to be valid).

// writeSpans answers with head (a JSON object's members before the spans,
// ending in `"spans":`), the spans, and tail (the rest of the object,
// starting with `,` or `}`). The body is streamed in chunks, so a large
// tree is never held twice in memory.
func writeSpans(w http.ResponseWriter, head []byte, spans []*SpanNode, tail string) {
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	o := &spanWriter{w: w, b: make([]byte, 0, 2*flushBytes)}
	o.b = append(o.b, head...)
	o.spans(spans)
	o.b = append(o.b, tail...)
	o.b = append(o.b, '\n') // as json.Encoder ends a value
	o.flush()
}

// flushBytes is how much of the body is buffered before it is written.
const flushBytes = 32 << 10

// spanWriter writes span trees as encoding/json would marshal []*SpanNode.
// Once a write fails (the client went away) it stops producing output.
type spanWriter struct {
	w   io.Writer
	b   []byte
	err error
}

func (o *spanWriter) flush() {
	if o.err == nil && len(o.b) > 0 {
		_, o.err = o.w.Write(o.b)
	}
	o.b = o.b[:0]
}

func (o *spanWriter) spans(spans []*SpanNode) {
	o.b = append(o.b, '[')
	for i, n := range spans {
		if o.err != nil {
			return
		}
		if i > 0 {
			o.b = append(o.b, ',')
		}
		o.span(n)
	}
	o.b = append(o.b, ']')
}

func (o *spanWriter) span(n *SpanNode) {
	b := o.b
	b = append(b, `{"span_id":`...)
	b = appendString(b, n.SpanID)
	if n.TraceID != "" {
		b = append(b, `,"trace_id":`...)
		b = appendString(b, n.TraceID)
	}
	b = append(b, `,"parent_span_id":`...)
	b = appendNullString(b, n.ParentSpanID)
	b = append(b, `,"name":`...)
	b = appendString(b, n.Name)
	b = append(b, `,"type":`...)
	b = appendString(b, n.Type)
	b = append(b, `,"span_kind":`...)
	b = appendString(b, n.SpanKind)
	b = append(b, `,"status_code":`...)
	b = appendString(b, n.StatusCode)
	b = append(b, `,"status_message":`...)
	b = appendNullString(b, n.StatusMessage)
	b = append(b, `,"start_time":`...)
	b = appendString(b, n.StartTime)
	b = append(b, `,"end_time":`...)
	b = appendString(b, n.EndTime)
	b = append(b, `,"duration_ms":`...)
	b = strconv.AppendInt(b, n.DurationMS, 10)
	b = append(b, `,"attributes":`...)
	b = appendRaw(b, n.Attributes)
	b = append(b, `,"facts":`...)
	b = appendFacts(b, n.Facts)
	b = append(b, `,"resource":`...)
	b = appendRaw(b, n.Resource)
	b = append(b, `,"scope":`...)
	b = appendRaw(b, n.Scope)
	b = append(b, `,"created_at":`...)
	b = appendString(b, n.CreatedAt)
	if n.Orphan {
		b = append(b, `,"orphan":true`...)
	}
	o.b = b
	if len(o.b) >= flushBytes {
		o.flush()
	}
	if len(n.Children) > 0 {
		o.b = append(o.b, `,"children":`...)
		o.spans(n.Children)
	}
	o.b = append(o.b, '}')
}

func appendNullString(b []byte, s *string) []byte {
	if s == nil {
		return append(b, "null"...)
	}
	return appendString(b, *s)
}

// appendFacts appends a facts map with its keys sorted, as encoding/json
// does. Strings and integers are written directly, other values (numbers
// with fractions, lists of tool calls or documents) through encoding/json.
func appendFacts(b []byte, facts map[string]any) []byte {
	if facts == nil {
		return append(b, "null"...)
	}
	keys := make([]string, 0, len(facts))
	for k := range facts {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, k)
		b = append(b, ':')
		switch v := facts[k].(type) {
		case string:
			b = appendString(b, v)
		case int64:
			b = strconv.AppendInt(b, v, 10)
		default:
			enc, err := json.Marshal(v)
			if err != nil {
				enc = []byte("null")
			}
			b = append(b, enc...)
		}
	}
	return append(b, '}')
}

// appendRaw appends stored JSON that is known to be valid (nil as null)
// as encoding/json writes a json.RawMessage: compacted (PostgreSQL's jsonb
// text has spaces after its colons and commas), with <, >, & and the line
// and paragraph separators escaped. In valid JSON those characters occur
// only inside strings, where the escapes mean the same characters.
func appendRaw(b []byte, raw json.RawMessage) []byte {
	if len(raw) == 0 {
		return append(b, "null"...)
	}
	inString, escaped := false, false
	start := 0
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if inString {
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			case c == '<' || c == '>' || c == '&':
				b = append(b, raw[start:i]...)
				b = append(b, `\u00`...)
				b = append(b, hexDigits[c>>4], hexDigits[c&0xF])
				start = i + 1
			case c == 0xE2 && i+2 < len(raw) && raw[i+1] == 0x80 && (raw[i+2] == 0xA8 || raw[i+2] == 0xA9):
				b = append(b, raw[start:i]...)
				b = append(b, `\u202`...)
				b = append(b, hexDigits[raw[i+2]&0xF])
				i += 2
				start = i + 1
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case ' ', '\t', '\n', '\r':
			b = append(b, raw[start:i]...)
			start = i + 1
		}
	}
	return append(b, raw[start:]...)
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string exactly as encoding/json writes
// it with HTML escaping: <, >, & and control characters as \u00XX (\n, \r,
// \t, \b and \f short), invalid UTF-8 as \ufffd, U+2028 and U+2029 escaped.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, `\u00`...)
				b = append(b, hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, `\u202`...)
			b = append(b, hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
