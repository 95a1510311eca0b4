package semantics

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// decodeJSON is json.Unmarshal of s into an interface value, for the JSON
// senders put in attributes (gen_ai.input.messages and the like), without
// encoding/json's separate validation pass and reflection; strings without
// escapes are slices of s. It returns ok only when the text is valid JSON
// and the value is the one json.Unmarshal returns; on anything it is not
// sure of (a \u escape, bytes that are not UTF-8, a number out of range,
// deep nesting) or invalid JSON it returns false, and the caller asks
// encoding/json, which decides.
func decodeJSON(s string) (v any, ok bool) {
	d := jsonDecoder{s: s}
	if v, ok = d.value(); !ok {
		return nil, false
	}
	d.ws()
	return v, d.i == len(d.s)
}

// maxDecodeDepth is the nesting decodeJSON leaves to encoding/json.
const maxDecodeDepth = 100

type jsonDecoder struct {
	s     string
	i     int
	depth int
}

func (d *jsonDecoder) ws() {
	for d.i < len(d.s) {
		switch d.s[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

func (d *jsonDecoder) value() (any, bool) {
	d.ws()
	if d.i >= len(d.s) {
		return nil, false
	}
	switch c := d.s[d.i]; {
	case c == '{':
		return d.object()
	case c == '[':
		return d.array()
	case c == '"':
		s, ok := d.str()
		return s, ok
	case c == 't':
		return true, d.literal("true")
	case c == 'f':
		return false, d.literal("false")
	case c == 'n':
		return nil, d.literal("null")
	case c == '-' || (c >= '0' && c <= '9'):
		return d.number()
	}
	return nil, false
}

func (d *jsonDecoder) literal(word string) bool {
	if !strings.HasPrefix(d.s[d.i:], word) {
		return false
	}
	d.i += len(word)
	return true
}

func (d *jsonDecoder) object() (any, bool) {
	if d.depth++; d.depth > maxDecodeDepth {
		return nil, false
	}
	d.i++ // {
	m := make(map[string]any)
	d.ws()
	if d.i < len(d.s) && d.s[d.i] == '}' {
		d.i++
		d.depth--
		return m, true
	}
	for {
		d.ws()
		if d.i >= len(d.s) || d.s[d.i] != '"' {
			return nil, false
		}
		k, ok := d.str()
		if !ok {
			return nil, false
		}
		d.ws()
		if d.i >= len(d.s) || d.s[d.i] != ':' {
			return nil, false
		}
		d.i++
		v, ok := d.value()
		if !ok {
			return nil, false
		}
		m[k] = v // a repeated key: the last wins, as in encoding/json
		d.ws()
		if d.i >= len(d.s) {
			return nil, false
		}
		switch d.s[d.i] {
		case ',':
			d.i++
		case '}':
			d.i++
			d.depth--
			return m, true
		default:
			return nil, false
		}
	}
}

func (d *jsonDecoder) array() (any, bool) {
	if d.depth++; d.depth > maxDecodeDepth {
		return nil, false
	}
	d.i++ // [
	list := make([]any, 0)
	d.ws()
	if d.i < len(d.s) && d.s[d.i] == ']' {
		d.i++
		d.depth--
		return list, true
	}
	for {
		v, ok := d.value()
		if !ok {
			return nil, false
		}
		list = append(list, v)
		d.ws()
		if d.i >= len(d.s) {
			return nil, false
		}
		switch d.s[d.i] {
		case ',':
			d.i++
		case ']':
			d.i++
			d.depth--
			return list, true
		default:
			return nil, false
		}
	}
}

// str reads a string from its opening quote.
func (d *jsonDecoder) str() (string, bool) {
	d.i++
	start := d.i
	var buf []byte // the string so far, once an escape was met
	for d.i < len(d.s) {
		c := d.s[d.i]
		switch {
		case c == '"':
			out := d.s[start:d.i]
			d.i++
			if buf != nil {
				return string(append(buf, out...)), true
			}
			return out, true
		case c == '\\':
			if d.i+1 >= len(d.s) {
				return "", false
			}
			buf = append(buf, d.s[start:d.i]...)
			switch e := d.s[d.i+1]; e {
			case '"', '\\', '/':
				buf = append(buf, e)
			case 'b':
				buf = append(buf, '\b')
			case 'f':
				buf = append(buf, '\f')
			case 'n':
				buf = append(buf, '\n')
			case 'r':
				buf = append(buf, '\r')
			case 't':
				buf = append(buf, '\t')
			default: // \u (surrogates are encoding/json's to pair) or invalid
				return "", false
			}
			d.i += 2
			start = d.i
		case c < 0x20:
			return "", false
		case c < utf8.RuneSelf:
			d.i++
		default:
			r, size := utf8.DecodeRuneInString(d.s[d.i:])
			if r == utf8.RuneError && size == 1 {
				return "", false // encoding/json would write U+FFFD
			}
			d.i += size
		}
	}
	return "", false
}

func (d *jsonDecoder) number() (any, bool) {
	start := d.i
	if d.s[d.i] == '-' {
		d.i++
	}
	switch {
	case d.i >= len(d.s):
		return nil, false
	case d.s[d.i] == '0':
		d.i++
	case d.s[d.i] >= '1' && d.s[d.i] <= '9':
		d.digits()
	default:
		return nil, false
	}
	if d.i < len(d.s) && d.s[d.i] == '.' {
		d.i++
		if d.digits() == 0 {
			return nil, false
		}
	}
	if d.i < len(d.s) && (d.s[d.i] == 'e' || d.s[d.i] == 'E') {
		d.i++
		if d.i < len(d.s) && (d.s[d.i] == '+' || d.s[d.i] == '-') {
			d.i++
		}
		if d.digits() == 0 {
			return nil, false
		}
	}
	f, err := strconv.ParseFloat(d.s[start:d.i], 64)
	if err != nil {
		return nil, false // out of range: an error in encoding/json
	}
	return f, true
}

func (d *jsonDecoder) digits() int {
	n := 0
	for d.i < len(d.s) && d.s[d.i] >= '0' && d.s[d.i] <= '9' {
		d.i++
		n++
	}
	return n
}
