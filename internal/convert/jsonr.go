package convert

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"go.opentelemetry.io/collector/pdata/pcommon"
)

// reader decodes stored attribute JSON straight into pcommon values, keeping
// member order. encoding/json's token API allocates several times per token,
// which made it the bottleneck of the fan-out; this reader allocates only
// for the values it produces. The JSON it reads was written by this gateway
// (or output by PostgreSQL's jsonb), so it does not validate the whole
// document first (json.Valid was half of its cost): it fails on what breaks
// the structure, bad numbers and trailing data, reads bytes that are not
// UTF-8 as U+FFFD (as encoding/json does), accepts control characters in
// strings, and never panics.
type reader struct {
	data []byte
	pos  int
}

var errSyntax = errors.New("malformed JSON")

func newReader(data []byte) *reader {
	r := &reader{data: data}
	r.ws()
	return r
}

// separator passes the comma after a member or element; without one, the
// container must close next. A comma right before the close is an error.
func (r *reader) separator(close byte) error {
	if r.consume(',') {
		if r.peek() == close {
			return fmt.Errorf("%w: trailing comma at offset %d", errSyntax, r.pos)
		}
		return nil
	}
	if r.peek() != close {
		return fmt.Errorf("%w at offset %d", errSyntax, r.pos)
	}
	return nil
}

// end checks that nothing but whitespace follows what was read.
func (r *reader) end() error {
	if r.pos != len(r.data) {
		return fmt.Errorf("%w: trailing data at offset %d", errSyntax, r.pos)
	}
	return nil
}

func (r *reader) ws() {
	for r.pos < len(r.data) {
		switch r.data[r.pos] {
		case ' ', '\t', '\n', '\r':
			r.pos++
		default:
			return
		}
	}
}

func (r *reader) peek() byte {
	if r.pos < len(r.data) {
		return r.data[r.pos]
	}
	return 0
}

// consume skips c (and the whitespace after it) if it is next.
func (r *reader) consume(c byte) bool {
	if r.peek() != c {
		return false
	}
	r.pos++
	r.ws()
	return true
}

func (r *reader) expect(c byte) error {
	if !r.consume(c) {
		return fmt.Errorf("%w: want %q at offset %d", errSyntax, c, r.pos)
	}
	return nil
}

// str reads a JSON string.
func (r *reader) str() (string, error) {
	if r.peek() != '"' {
		return "", fmt.Errorf("%w: want a string at offset %d", errSyntax, r.pos)
	}
	start, esc := r.pos, false
	i := start + 1
	for ; i < len(r.data); i++ {
		c := r.data[i]
		if c == '\\' {
			esc = true
			i++
			continue
		}
		if c == '"' {
			break
		}
	}
	if i >= len(r.data) {
		return "", errSyntax
	}
	r.pos = i + 1
	r.ws()
	body := r.data[start+1 : i]
	if !utf8.Valid(body) {
		// As encoding/json reads it: OTLP strings must be UTF-8.
		body = []byte(strings.ToValidUTF8(string(body), "\uFFFD"))
	}
	if !esc {
		return string(body), nil
	}
	return unescape(body)
}

// unescape decodes the body of a JSON string with escapes (its bytes are
// valid UTF-8); this is the hot path of fan-out.
func unescape(b []byte) (string, error) {
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		c := b[i]
		if c != '\\' {
			out = append(out, c)
			continue
		}
		i++
		if i >= len(b) {
			return "", errSyntax
		}
		switch b[i] {
		case '"', '\\', '/':
			out = append(out, b[i])
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, n, ok := hex4(b[i+1:])
			if !ok {
				return "", errSyntax
			}
			i += n
			if utf16.IsSurrogate(r) {
				// A pair \uD83D\uDE00; a lone surrogate becomes U+FFFD.
				if len(b) > i+2 && b[i+1] == '\\' && b[i+2] == 'u' {
					if r2, n2, ok := hex4(b[i+3:]); ok {
						if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
							out = utf8.AppendRune(out, dec)
							i += 2 + n2
							continue
						}
					}
				}
				r = utf8.RuneError
			}
			out = utf8.AppendRune(out, r)
		default:
			return "", errSyntax
		}
	}
	return string(out), nil
}

// hex4 reads the four hex digits of a \u escape.
func hex4(b []byte) (rune, int, bool) {
	if len(b) < 4 {
		return 0, 0, false
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, 0, false
		}
	}
	return r, 4, true
}

// skip passes over one value and returns its JSON text.
func (r *reader) skip() ([]byte, error) {
	start := r.pos
	if err := r.skipValue(0); err != nil {
		return nil, err
	}
	end := r.pos
	for end > start && isSpace(r.data[end-1]) {
		end--
	}
	return r.data[start:end], nil
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func (r *reader) skipValue(depth int) error {
	if depth > maxReadDepth {
		return errors.New("nested too deeply")
	}
	switch r.peek() {
	case '"':
		_, err := r.str()
		return err
	case '{':
		r.consume('{')
		for !r.consume('}') {
			if _, err := r.str(); err != nil {
				return err
			}
			if err := r.expect(':'); err != nil {
				return err
			}
			if err := r.skipValue(depth + 1); err != nil {
				return err
			}
			if err := r.separator('}'); err != nil {
				return err
			}
		}
		return nil
	case '[':
		r.consume('[')
		for !r.consume(']') {
			if err := r.skipValue(depth + 1); err != nil {
				return err
			}
			if err := r.separator(']'); err != nil {
				return err
			}
		}
		return nil
	default:
		_, err := r.scalar()
		return err
	}
}

// scalar reads a number or literal and returns its text.
func (r *reader) scalar() ([]byte, error) {
	start := r.pos
	for r.pos < len(r.data) {
		c := r.data[r.pos]
		if isSpace(c) || c == ',' || c == '}' || c == ']' || c == ':' {
			break
		}
		r.pos++
	}
	if r.pos == start {
		return nil, fmt.Errorf("%w at offset %d", errSyntax, start)
	}
	tok := r.data[start:r.pos]
	r.ws()
	return tok, nil
}

// members reads an object into m.
func (r *reader) members(m pcommon.Map, depth int) error {
	if err := r.expect('{'); err != nil {
		return err
	}
	for !r.consume('}') {
		k, err := r.str()
		if err != nil {
			return err
		}
		if err := r.expect(':'); err != nil {
			return err
		}
		if err := r.value(m.PutEmpty(k), depth+1); err != nil {
			return fmt.Errorf("key %q: %w", k, err)
		}
		if err := r.separator('}'); err != nil {
			return err
		}
	}
	return nil
}

// value sets v from the next JSON value: strings, bools, integers that fit
// int64 as Int, other numbers as Double, arrays as Slice, objects as Map,
// null as empty.
func (r *reader) value(v pcommon.Value, depth int) error {
	if depth > maxReadDepth {
		return errors.New("nested too deeply")
	}
	switch r.peek() {
	case '"':
		s, err := r.str()
		if err != nil {
			return err
		}
		v.SetStr(s)
		return nil
	case '{':
		return r.members(v.SetEmptyMap(), depth)
	case '[':
		r.consume('[')
		sl := v.SetEmptySlice()
		for !r.consume(']') {
			if err := r.value(sl.AppendEmpty(), depth+1); err != nil {
				return err
			}
			if err := r.separator(']'); err != nil {
				return err
			}
		}
		return nil
	}
	tok, err := r.scalar()
	if err != nil {
		return err
	}
	switch string(tok) {
	case "true":
		v.SetBool(true)
		return nil
	case "false":
		v.SetBool(false)
		return nil
	case "null":
		return nil
	}
	if !numberChars(tok) {
		return fmt.Errorf("bad number %q", tok)
	}
	integral := true
	for _, c := range tok {
		if c == '.' || c == 'e' || c == 'E' {
			integral = false
			break
		}
	}
	if integral {
		if i, err := strconv.ParseInt(string(tok), 10, 64); err == nil {
			v.SetInt(i)
			return nil
		}
	}
	f, err := strconv.ParseFloat(string(tok), 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return fmt.Errorf("bad number %q", tok)
	}
	v.SetDouble(f)
	return nil
}

// numberChars rejects tokens strconv would read but JSON has no numbers
// for (NaN, Inf, +1, hex, underscores): a JSON number starts with a minus
// or a digit and holds only digits, signs, dots and exponents.
func numberChars(tok []byte) bool {
	if len(tok) == 0 || (tok[0] != '-' && (tok[0] < '0' || tok[0] > '9')) {
		return false
	}
	for _, c := range tok {
		switch {
		case c >= '0' && c <= '9', c == '-', c == '+', c == '.', c == 'e', c == 'E':
		default:
			return false
		}
	}
	return true
}
