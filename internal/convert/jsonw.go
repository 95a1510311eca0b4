package convert

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"math/bits"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"go.opentelemetry.io/collector/pdata/pcommon"
)

// maxDepth bounds how deeply nested array/kvlist values are followed; deeper
// values are stored as null and reported as truncated. It keeps a hostile
// payload from costing unbounded stack or time.
const maxDepth = 32

// MaxNesting is how many arrays and kvlists nested in each other an
// attribute value keeps (attribute maps start at depth 1): the next one is
// stored as null and reported as truncated.
const MaxNesting = maxDepth - 1

// truncMarker is the suffix put after a value cut to MaxAttrValueBytes.
const truncMarkerPrefix = "…[truncated "

// writer appends JSON to buf. It walks pcommon values directly (no
// intermediate map for the JSON) and, when asked, also returns the Go form of
// each value for semantics.Annotate. One writer is reused for every span of a
// request.
type writer struct {
	buf   []byte
	limit int // MaxAttrValueBytes; <0 means none
	maxN  int // MaxAttributes per map; <0 means none
	// truncHit is set by leaf writers when they cut a value, so the caller
	// can record the attribute's key.
	truncHit bool
	// truncated collects the keys of cut values (see object's track).
	truncated []string
	// kernKeys counts tracked keys with the reserved "kern." prefix.
	kernKeys int
	// keys lists the keys objectInto kept, in order (see semantics.Info.Keys).
	keys []string
}

// safe marks ASCII bytes that need no escaping inside a JSON string.
var safe = func() (t [utf8.RuneSelf]bool) {
	for i := 0x20; i < utf8.RuneSelf; i++ {
		t[i] = i != '"' && i != '\\'
	}
	return t
}()

const hexDigits = "0123456789abcdef"

// str appends s as a JSON string. Invalid UTF-8 and NUL become U+FFFD:
// PostgreSQL rejects both in jsonb and text, and one bad attribute must not
// fail a whole batch. It reports whether it replaced any (when not,
// cleanString(s) is s).
func (w *writer) str(s string) (replaced bool) {
	b := append(w.buf, '"')
	start := 0
	for i := 0; i < len(s); {
		// Most of a value needs no escaping: pass 8 such bytes at a time
		// and copy the run at once below.
		for ; i+8 <= len(s); i += 8 {
			// A control character, '"', '\\' or a byte >= 0x80 sets
			// its byte's high bit in special (word arithmetic).
			const lo, hi = 0x0101010101010101, 0x8080808080808080
			x := uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
				uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
			quote, bslash := x^(lo*'"'), x^(lo*'\\')
			special := (x - lo*0x20) | (quote-lo)&^quote | (bslash-lo)&^bslash | x
			if special &= hi; special != 0 {
				// Borrows only flag bytes above a real one: the lowest
				// flagged byte is the first that needs a look.
				i += bits.TrailingZeros64(special) >> 3
				break
			}
		}
		if i >= len(s) {
			break
		}
		c := s[i]
		if c < utf8.RuneSelf {
			if safe[c] {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			case 0:
				b = append(b, `\ufffd`...)
				replaced = true
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			replaced = true
			i++
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	w.buf = append(b, '"')
	return replaced
}

// cleanString returns s as valid UTF-8 without NUL bytes (see str). It
// allocates only when s needs fixing.
func cleanString(s string) string {
	ok := true
	for i := 0; i < len(s); i++ {
		if s[i] == 0 || s[i] >= utf8.RuneSelf {
			ok = false
			break
		}
	}
	if ok || (utf8.ValidString(s) && !containsNUL(s)) {
		return s
	}
	out := make([]byte, 0, len(s)+8)
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if (r == utf8.RuneError && size == 1) || r == 0 {
			out = utf8.AppendRune(out, utf8.RuneError)
		} else {
			out = append(out, s[i:i+size]...)
		}
		i += size
	}
	return string(out)
}

func containsNUL(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == 0 {
			return true
		}
	}
	return false
}

// truncate cuts s to at most limit bytes on a rune boundary and appends the
// marker. It reports whether s was cut.
func truncate(s string, limit int) (string, bool) {
	if limit < 0 || len(s) <= limit {
		return s, false
	}
	cut := limit
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + marker(len(s)-cut), true
}

func marker(n int) string {
	return truncMarkerPrefix + strconv.Itoa(n) + " bytes]"
}

// float appends f so that it reads back as a double: integral values keep a
// ".0", and NaN/±Inf (not representable in JSON) become strings.
func (w *writer) float(f float64) {
	switch {
	case math.IsNaN(f):
		w.buf = append(w.buf, `"NaN"`...)
		return
	case math.IsInf(f, 1):
		w.buf = append(w.buf, `"Infinity"`...)
		return
	case math.IsInf(f, -1):
		w.buf = append(w.buf, `"-Infinity"`...)
		return
	}
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	start := len(w.buf)
	w.buf = strconv.AppendFloat(w.buf, f, format, -1, 64)
	if format == 'f' && !slices.Contains(w.buf[start:], '.') {
		w.buf = append(w.buf, '.', '0')
	}
}

// value appends v as JSON and returns its Go form when want is set.
func (w *writer) value(v pcommon.Value, depth int, want bool) any {
	switch v.Type() {
	case pcommon.ValueTypeStr:
		s, cut := truncate(v.Str(), w.limit)
		if cut {
			w.truncHit = true
		}
		replaced := w.str(s)
		if want {
			// What Annotate and RootIDs read must be what is stored: a
			// NUL or invalid UTF-8 kept here would reach an id column
			// (PostgreSQL rejects the batch) or be read otherwise later.
			if !replaced {
				return s // already clean: str checked every byte
			}
			return cleanString(s)
		}
	case pcommon.ValueTypeBool:
		b := v.Bool()
		w.buf = strconv.AppendBool(w.buf, b)
		if want {
			return b
		}
	case pcommon.ValueTypeInt:
		i := v.Int()
		w.buf = strconv.AppendInt(w.buf, i, 10)
		if want {
			return i
		}
	case pcommon.ValueTypeDouble:
		f := v.Double()
		w.float(f)
		if want {
			return f
		}
	case pcommon.ValueTypeBytes:
		raw := v.Bytes().AsRaw()
		var tail string
		if w.limit >= 0 && len(raw) > w.limit {
			tail = marker(len(raw) - w.limit)
			raw = raw[:w.limit]
			w.truncHit = true
		}
		w.buf = append(w.buf, '"')
		start := len(w.buf)
		w.buf = base64.StdEncoding.AppendEncode(w.buf, raw)
		w.buf = append(w.buf, tail...)
		end := len(w.buf)
		w.buf = append(w.buf, '"')
		if want {
			return string(w.buf[start:end])
		}
	case pcommon.ValueTypeSlice:
		if depth >= maxDepth {
			w.truncHit = true
			w.buf = append(w.buf, "null"...)
			return nil
		}
		sl := v.Slice()
		var out []any
		if want {
			out = make([]any, 0, sl.Len())
		}
		w.buf = append(w.buf, '[')
		for i := range sl.Len() {
			if i > 0 {
				w.buf = append(w.buf, ',')
			}
			g := w.value(sl.At(i), depth+1, want)
			if want {
				out = append(out, g)
			}
		}
		w.buf = append(w.buf, ']')
		if want {
			return out
		}
	case pcommon.ValueTypeMap:
		if depth >= maxDepth {
			w.truncHit = true
			w.buf = append(w.buf, "null"...)
			return nil
		}
		m, _ := w.object(v.Map(), depth+1, want, false, -1, nil)
		if want {
			return m
		}
	default: // empty
		w.buf = append(w.buf, "null"...)
	}
	return nil
}

// object appends m as a JSON object: keys kept in order, duplicates after the
// first dropped (pcommon.Map.Get semantics), at most maxN entries (<0: no
// limit). skip, when set, drops keys the caller reserves. With track set, the
// keys whose values were cut are appended to w.truncated and keys starting
// with "kern." are counted in w.kernKeys. It returns the Go form (when want is
// set) and how many entries were dropped.
func (w *writer) object(m pcommon.Map, depth int, want, track bool, maxN int, skip func(string) bool) (map[string]any, int) {
	return w.objectInto(nil, m, depth, want, track, maxN, skip)
}

// objectInto is object filling into (an empty map, or nil to make one) with
// the Go form; with into, it also lists the keys kept in w.keys.
func (w *writer) objectInto(into map[string]any, m pcommon.Map, depth int, want, track bool, maxN int, skip func(string) bool) (map[string]any, int) {
	n := m.Len()
	var out map[string]any
	if want {
		out = into
		if out == nil {
			capHint := n
			if maxN >= 0 && maxN < n {
				capHint = maxN
			}
			out = make(map[string]any, capHint)
		}
	}
	var seen map[string]struct{}
	if !want && n > 16 {
		seen = make(map[string]struct{}, n)
	}
	w.buf = append(w.buf, '{')
	kept, dropped, i := 0, 0, -1
	m.Range(func(k string, v pcommon.Value) bool {
		i++
		if skip != nil && skip(k) {
			dropped++
			return true
		}
		if isDup(k, i, m, out, seen) {
			dropped++
			return true
		}
		if maxN >= 0 && kept >= maxN {
			dropped++
			return true
		}
		if kept > 0 {
			w.buf = append(w.buf, ',')
		}
		w.str(k)
		w.buf = append(w.buf, ':')
		outer := w.truncHit
		w.truncHit = false
		g := w.value(v, depth, want)
		if track {
			if w.truncHit {
				w.truncated = append(w.truncated, k)
			}
			if strings.HasPrefix(k, "kern.") {
				w.kernKeys++
			}
		}
		w.truncHit = w.truncHit || outer
		if want {
			out[k] = g
			if into != nil {
				w.keys = append(w.keys, k)
			}
		} else if seen != nil {
			seen[k] = struct{}{}
		}
		kept++
		return true
	})
	w.buf = append(w.buf, '}')
	return out, dropped
}

// isDup reports whether key k (at index i of m) was already written: through
// the Go map or set when there is one, else by scanning the earlier keys.
func isDup(k string, i int, m pcommon.Map, out map[string]any, seen map[string]struct{}) bool {
	if out != nil {
		_, dup := out[k]
		return dup
	}
	if seen != nil {
		_, dup := seen[k]
		return dup
	}
	j := 0
	dup := false
	m.Range(func(k2 string, _ pcommon.Value) bool {
		if j >= i {
			return false
		}
		j++
		if k2 == k {
			dup = true
			return false
		}
		return true
	})
	return dup
}

// goValue appends a Go value (as produced by value or added by Annotate) as
// JSON. Types outside the documented set are written via their string form
// so that a bad annotation cannot break the row.
func (w *writer) goValue(v any, depth int) {
	if depth > maxDepth {
		w.buf = append(w.buf, "null"...)
		return
	}
	switch x := v.(type) {
	case nil:
		w.buf = append(w.buf, "null"...)
	case string:
		w.str(x)
	case bool:
		w.buf = strconv.AppendBool(w.buf, x)
	case int64:
		w.buf = strconv.AppendInt(w.buf, x, 10)
	case int:
		w.buf = strconv.AppendInt(w.buf, int64(x), 10)
	case int32:
		w.buf = strconv.AppendInt(w.buf, int64(x), 10)
	case uint64:
		w.buf = strconv.AppendUint(w.buf, x, 10)
	case float64:
		w.float(x)
	case float32:
		w.float(float64(x))
	case []byte:
		w.buf = append(w.buf, '"')
		w.buf = base64.StdEncoding.AppendEncode(w.buf, x)
		w.buf = append(w.buf, '"')
	case []any:
		w.buf = append(w.buf, '[')
		for i, e := range x {
			if i > 0 {
				w.buf = append(w.buf, ',')
			}
			w.goValue(e, depth+1)
		}
		w.buf = append(w.buf, ']')
	case []string:
		w.buf = append(w.buf, '[')
		for i, e := range x {
			if i > 0 {
				w.buf = append(w.buf, ',')
			}
			w.str(e)
		}
		w.buf = append(w.buf, ']')
	case []map[string]any:
		w.buf = append(w.buf, '[')
		for i, e := range x {
			if i > 0 {
				w.buf = append(w.buf, ',')
			}
			w.goValue(e, depth+1)
		}
		w.buf = append(w.buf, ']')
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		w.buf = append(w.buf, '{')
		for i, k := range keys {
			if i > 0 {
				w.buf = append(w.buf, ',')
			}
			w.str(k)
			w.buf = append(w.buf, ':')
			w.goValue(x[k], depth+1)
		}
		w.buf = append(w.buf, '}')
	case json.RawMessage:
		if json.Valid(x) {
			w.buf = append(w.buf, x...)
		} else {
			w.str(string(x))
		}
	default:
		// Other slices/maps of numbers and the like: let encoding/json
		// render them; anything it cannot (NaN inside, channels) becomes
		// its printed form.
		if b, err := json.Marshal(x); err == nil {
			w.buf = append(w.buf, b...)
		} else {
			w.str(fmt.Sprint(x))
		}
	}
}
