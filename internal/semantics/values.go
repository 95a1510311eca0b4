package semantics

import (
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Limits on what Annotate derives. Senders make mistakes (a token count of
// -1, an id that is a whole document); the normalised keys must stay safe to
// index, cast and aggregate in SQL, so implausible values are ignored rather
// than copied.
const (
	// MaxTokenCount is the largest token count accepted for one span. Counts
	// above it (or below zero) are ignored as sender bugs.
	MaxTokenCount = 100_000_000
	// MaxTemperature bounds an accepted sampling temperature (0..MaxTemperature).
	MaxTemperature = 10.0
	// MaxRetrievalK bounds an accepted retrieval k (1..MaxRetrievalK).
	MaxRetrievalK = 1_000_000
	// MaxIDBytes is the longest id or model name copied into a normalised
	// key; longer values are ignored (they are indexed columns).
	MaxIDBytes = 256
	// MaxValueBytes is the longest derived text value (input, output, tool
	// arguments and results...). Longer values are cut at a UTF-8 boundary
	// and end with TruncationMarker, like the converter's own truncation.
	MaxValueBytes = 64 << 10
	// MaxDocContentBytes is the longest document content copied into
	// kern.retrieval.documents.
	MaxDocContentBytes = 4 << 10
	// MaxListItems is the most tool calls or documents copied into a
	// normalised list.
	MaxListItems = 100
	// maxIndex is the largest position accepted in a flattened key such as
	// llm.output_messages.N...; larger ones are ignored so a hostile key
	// cannot make us allocate.
	maxIndex = 10_000
	// maxParseBytes is the largest JSON string Annotate will parse (e.g.
	// gen_ai.output.messages); larger strings are left as text.
	maxParseBytes = 1 << 20
)

// TruncationMarker is appended, with the number of bytes cut, to a text
// value that was shortened: "…[truncated N bytes]".
const TruncationMarker = "…[truncated %d bytes]"

// maxMarkerBytes is the longest TruncationMarker (a 20-digit count).
const maxMarkerBytes = len("…[truncated  bytes]") + 20

// truncate cuts s to at most limit bytes (plus the marker) without splitting
// a UTF-8 sequence. A value the converter already truncated to the same
// limit is kept as it is, so its marker still counts the bytes the sender
// really lost.
func truncate(s string, limit int) string {
	if len(s) <= limit {
		return s
	}
	if len(s) <= limit+maxMarkerBytes && strings.HasSuffix(s, " bytes]") {
		// The cut sits at most 3 bytes before the limit (UTF-8 boundary).
		if i := strings.LastIndex(s, "…[truncated "); i <= limit && i >= limit-3 {
			return s
		}
	}
	cut := limit
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…[truncated " + strconv.Itoa(len(s)-cut) + " bytes]"
}

// idString accepts ids sent as non-empty strings or integers.
func idString(v any) (string, bool) {
	var s string
	switch x := v.(type) {
	case string:
		s = strings.TrimSpace(x)
	case int64:
		s = strconv.FormatInt(x, 10)
	case int:
		s = strconv.Itoa(x)
	case int32:
		s = strconv.FormatInt(int64(x), 10)
	case uint64:
		s = strconv.FormatUint(x, 10)
	case float64:
		// JSON decoders hand integers over as float64.
		if x != math.Trunc(x) || math.IsInf(x, 0) || math.Abs(x) > 1<<53 {
			return "", false
		}
		s = strconv.FormatInt(int64(x), 10)
	case json.Number:
		s = x.String()
	default:
		return "", false
	}
	if s == "" || len(s) > MaxIDBytes || !utf8.ValidString(s) {
		return "", false
	}
	return s, true
}

// text renders a value as text for kern.input, kern.output and friends:
// strings as sent, structured values as JSON. The result is truncated to
// limit bytes.
func text(v any, limit int) (string, bool) {
	var s string
	switch x := v.(type) {
	case nil:
		return "", false
	case string:
		s = x
	case bool:
		s = strconv.FormatBool(x)
	case int64:
		s = strconv.FormatInt(x, 10)
	case int:
		s = strconv.Itoa(x)
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return "", false
		}
		s = strconv.FormatFloat(x, 'g', -1, 64)
	default:
		b, err := json.Marshal(x)
		if err != nil {
			return "", false
		}
		s = string(b)
	}
	if s == "" {
		return "", false
	}
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	return truncate(s, limit), true
}

// number accepts int and float kinds and numeric strings ("42", " 0.7 ").
func number(v any) (float64, bool) {
	var f float64
	switch x := v.(type) {
	case int64:
		f = float64(x)
	case int:
		f = float64(x)
	case int32:
		f = float64(x)
	case uint64:
		f = float64(x)
	case float64:
		f = x
	case float32:
		f = float64(x)
	case json.Number:
		p, err := x.Float64()
		if err != nil {
			return 0, false
		}
		f = p
	case string:
		s := strings.TrimSpace(x)
		if s == "" || len(s) > 64 {
			return 0, false
		}
		p, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return 0, false
		}
		f = p
	default:
		return 0, false
	}
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, false
	}
	return f, true
}

// tokenCount accepts a token count as an integer, a float (fraction
// dropped) or a numeric string, within 0..MaxTokenCount.
func tokenCount(v any) (int64, bool) {
	f, ok := number(v)
	if !ok || f < 0 || f > MaxTokenCount {
		return 0, false
	}
	return int64(f), true
}

// parseJSON decodes a JSON text (or passes through an already structured
// value). It refuses oversized strings.
func parseJSON(v any) (any, bool) {
	switch x := v.(type) {
	case string:
		s := strings.TrimSpace(x)
		if s == "" || len(s) > maxParseBytes || (s[0] != '{' && s[0] != '[') {
			return nil, false
		}
		var out any
		if err := json.Unmarshal([]byte(s), &out); err != nil {
			return nil, false
		}
		return out, true
	case map[string]any, []any:
		return x, true
	}
	return nil, false
}

// fieldString reads a string-ish field of a decoded JSON object.
func fieldString(m map[string]any, keys ...string) (string, bool) {
	for _, k := range keys {
		if v, ok := m[k]; ok {
			if s, ok := text(v, MaxValueBytes); ok {
				return s, true
			}
		}
	}
	return "", false
}
