package convert

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// reader decodes stored attribute JSON, handing the values to a valueSink in
// member order. encoding/json's token API allocates several times per token,
// which made it the bottleneck of the fan-out; this reader allocates only
// for what its sink produces. The JSON it reads was written by this gateway
// (or output by PostgreSQL's jsonb), so it does not validate the whole
// document first (json.Valid was half of its cost): it fails on what breaks
// the structure, bad numbers and trailing data, reads bytes that are not
// UTF-8 as U+FFFD (as encoding/json does), accepts control characters in
// strings, and never panics.
type reader struct {
	data []byte
	pos  int
	// keys holds the names of the members being read (see key); scratch
	// the strings skipped. Both are kept across reset.
	keys, scratch []byte
}

var errSyntax = errors.New("malformed JSON")

// reset starts reading data.
func (r *reader) reset(data []byte) {
	r.data, r.pos, r.keys = data, 0, r.keys[:0]
	r.ws()
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

// strBody reads a JSON string and returns its body, between the quotes and
// as written, and whether that is its text: no escapes, valid UTF-8.
func (r *reader) strBody() (body []byte, plain bool, err error) {
	if r.peek() != '"' {
		return nil, false, fmt.Errorf("%w: want a string at offset %d", errSyntax, r.pos)
	}
	// The closing quote is the first one not escaped, an escape passing
	// over the byte after its backslash.
	d, start, esc := r.data, r.pos, false
	i, high := start+1, uint64(0)
	for {
		var h uint64
		i, h = quoteOrBackslash(d, i)
		high |= h
		if i >= len(d) {
			return nil, false, errSyntax
		}
		if d[i] == '"' {
			break
		}
		esc = true
		i += 2
	}
	r.pos = i + 1
	r.ws()
	body = d[start+1 : i]
	return body, !esc && (high&0x8080808080808080 == 0 || utf8.Valid(body)), nil
}

// quoteOrBackslash returns the index of the first '"' or '\\' in d from i
// on (len(d) if none), eight bytes at a time, and the bytes passed ORed
// together (over a few beyond): ASCII if the top bits are clear.
func quoteOrBackslash(d []byte, i int) (int, uint64) {
	const ones, tops = 0x0101010101010101, 0x8080808080808080
	var high uint64
	for ; i+8 <= len(d); i += 8 {
		x := binary.LittleEndian.Uint64(d[i:])
		high |= x
		q, b := x^('"'*ones), x^('\\'*ones)
		// The lowest flagged byte is a zero byte of q or b (borrows only
		// flag bytes above one).
		if m := ((q-ones)&^q | (b-ones)&^b) & tops; m != 0 {
			return i + bits.TrailingZeros64(m)>>3, high
		}
	}
	for ; i < len(d); i++ {
		c := d[i]
		high |= uint64(c)
		if c == '"' || c == '\\' {
			return i, high
		}
	}
	return len(d), high
}

// key reads a member name. Unless it is used as written, it is decoded onto
// r.keys, where it stays valid until the caller drops it with
// r.keys = r.keys[:mark]: nested members push theirs after it, so it can
// still name the member in an error.
func (r *reader) key() (k []byte, mark int, err error) {
	body, plain, err := r.strBody()
	if err != nil {
		return nil, 0, err
	}
	mark = len(r.keys)
	if plain {
		return body[:len(body):len(body)], mark, nil
	}
	if r.keys, err = appendStr(r.keys, body); err != nil {
		return nil, 0, err
	}
	return r.keys[mark:len(r.keys):len(r.keys)], mark, nil
}

// appendStr appends the text of a JSON string body that is not plain (see
// strBody) to dst.
func appendStr(dst, body []byte) ([]byte, error) {
	if !utf8.Valid(body) {
		// As encoding/json reads it: OTLP strings must be UTF-8.
		body = []byte(strings.ToValidUTF8(string(body), "\uFFFD"))
	}
	return appendUnescaped(dst, body)
}

// unescape decodes the body of a JSON string with escapes (its bytes are
// valid UTF-8).
func unescape(b []byte) (string, error) {
	out, err := appendUnescaped(make([]byte, 0, len(b)), b)
	return string(out), err
}

// appendUnescaped appends the decoded body of a JSON string with escapes
// (its bytes are valid UTF-8) to out; this is the hot path of fan-out.
func appendUnescaped(out, b []byte) ([]byte, error) {
	for i := 0; i < len(b); i++ {
		// Copy up to the next escape in one go.
		j := bytes.IndexByte(b[i:], '\\')
		if j < 0 {
			return append(out, b[i:]...), nil
		}
		out = append(out, b[i:i+j]...)
		i += j + 1
		if i >= len(b) {
			return nil, errSyntax
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
				return nil, errSyntax
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
			return nil, errSyntax
		}
	}
	return out, nil
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
		return r.skipStr()
	case '{':
		r.consume('{')
		for !r.consume('}') {
			if err := r.skipStr(); err != nil {
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

// skipStr passes over a string, checking its escapes.
func (r *reader) skipStr() error {
	body, plain, err := r.strBody()
	if err != nil || plain || bytes.IndexByte(body, '\\') < 0 {
		return err
	}
	r.scratch, err = appendStr(r.scratch[:0], body)
	return err
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

// valueSink receives the values the reader walks, in document order: the
// ToOTLP side fills pcommon values, the EncodeOTLP side appends protobuf.
// A container is opened, filled member by member (or element by element)
// and closed; null calls nothing and leaves the value empty. Keys are
// decoded; string values come as their raw JSON body (see strBody and
// appendStr) so that a sink can decode them straight into its own buffer.
type valueSink interface {
	beginMember(key []byte)
	endMember()
	beginElem()
	endElem()
	beginMap()
	endMap()
	beginSlice()
	endSlice()
	str(body []byte, plain bool) error
	boolean(b bool)
	integer(i int64)
	double(f float64)
}

// object reads the JSON object in data (null: nothing) into the map s is
// filling.
func (r *reader) object(data []byte, s valueSink) error {
	if isNull(data) {
		return nil
	}
	r.reset(data)
	if err := r.members(s, 0); err != nil {
		return err
	}
	return r.end()
}

// members reads an object into the map s is filling.
func (r *reader) members(s valueSink, depth int) error {
	if err := r.expect('{'); err != nil {
		return err
	}
	for !r.consume('}') {
		k, mark, err := r.key()
		if err != nil {
			return err
		}
		if err := r.expect(':'); err != nil {
			return err
		}
		s.beginMember(k)
		if err := r.value(s, depth+1); err != nil {
			return fmt.Errorf("key %q: %w", k, err)
		}
		s.endMember()
		r.keys = r.keys[:mark]
		if err := r.separator('}'); err != nil {
			return err
		}
	}
	return nil
}

// value passes the next JSON value to s: strings, bools, integers that fit
// int64 as Int, other numbers as Double, arrays as Slice, objects as Map,
// null as empty.
func (r *reader) value(s valueSink, depth int) error {
	if depth > maxReadDepth {
		return errors.New("nested too deeply")
	}
	switch r.peek() {
	case '"':
		body, plain, err := r.strBody()
		if err != nil {
			return err
		}
		return s.str(body, plain)
	case '{':
		s.beginMap()
		if err := r.members(s, depth); err != nil {
			return err
		}
		s.endMap()
		return nil
	case '[':
		r.consume('[')
		s.beginSlice()
		for !r.consume(']') {
			s.beginElem()
			if err := r.value(s, depth+1); err != nil {
				return err
			}
			s.endElem()
			if err := r.separator(']'); err != nil {
				return err
			}
		}
		s.endSlice()
		return nil
	}
	tok, err := r.scalar()
	if err != nil {
		return err
	}
	switch string(tok) {
	case "true":
		s.boolean(true)
		return nil
	case "false":
		s.boolean(false)
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
			s.integer(i)
			return nil
		}
	}
	f, err := strconv.ParseFloat(string(tok), 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return fmt.Errorf("bad number %q", tok)
	}
	s.double(f)
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
