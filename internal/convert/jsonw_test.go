package convert

import (
	"strings"
	"testing"
	"unicode/utf8"

	"go.opentelemetry.io/collector/pdata/pcommon"
)

// The Go form Annotate reads of a string value is what is stored: the
// writer's own check for NUL and invalid UTF-8 must agree with cleanString.
func TestValueGoFormIsCleanString(t *testing.T) {
	for _, s := range []string{
		"", "plain", "é 21°C", "a\x00b", "\xff", "ok\xc3", "\xef\xbf\xbd", "tab\tquote\"back\\", "\x01\x1f",
		"\xed\xa0\x80", "mixed é\x00\xfe end",
	} {
		w := &writer{limit: -1, maxN: -1}
		got := w.value(pcommon.NewValueStr(s), 1, true)
		if got != cleanString(s) {
			t.Errorf("value(%q) = %q, want %q", s, got, cleanString(s))
		}
	}
}

// strBytewise is str without the 8-byte fast path: what str must write.
func strBytewise(s string) []byte {
	b := []byte{'"'}
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case safe[c]:
				b = append(b, c)
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c == '\n':
				b = append(b, `\n`...)
			case c == '\r':
				b = append(b, `\r`...)
			case c == '\t':
				b = append(b, `\t`...)
			case c == 0:
				b = append(b, `\ufffd`...)
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, `\ufffd`...)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}

// The 8-byte fast path must find every byte that needs escaping or
// checking wherever it sits in the word.
func TestStrMatchesBytewise(t *testing.T) {
	specials := []string{"\"", "\\", "\x00", "\x01", "\x1f", "\n", "\t", "\x7f", " ", "é", "°", "\xff", "\xc3", "😀", "\xed\xa0\x80", "!", "#", "[", "]"}
	for _, sp := range specials {
		for n := 0; n <= 20; n++ {
			for at := 0; at <= n; at++ {
				s := strings.Repeat("a", at) + sp + strings.Repeat("z", n-at)
				w := &writer{}
				replaced := w.str(s)
				if want := strBytewise(s); string(w.buf) != string(want) {
					t.Fatalf("str(%q) = %s, want %s", s, w.buf, want)
				}
				if replaced != (cleanString(s) != s) {
					t.Fatalf("str(%q) reported replaced=%v", s, replaced)
				}
			}
		}
	}
}

func FuzzStr(f *testing.F) {
	for _, s := range []string{"", "plain ascii text here", `{"role":"user"}`, "é 21°C\x00\xff tail of words"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		w := &writer{}
		w.str(s)
		if want := strBytewise(s); string(w.buf) != string(want) {
			t.Fatalf("str(%q) = %s, want %s", s, w.buf, want)
		}
	})
}

func BenchmarkStr(b *testing.B) {
	for _, tc := range []struct{ name, s string }{
		{"key", "llm.token_count.prompt"},
		{"text", "It is sunny and 21 degrees in Paris today, with a light breeze from the west."},
		{"json", `[{"role":"user","parts":[{"type":"text","content":"What is the weather in Paris today? Please answer briefly."}]}]`},
		{"utf8", "Il fait beau et 21°C à Paris aujourd'hui, avec une brise légère."},
	} {
		b.Run(tc.name, func(b *testing.B) {
			w := &writer{}
			b.SetBytes(int64(len(tc.s)))
			for b.Loop() {
				w.buf = w.buf[:0]
				w.str(tc.s)
			}
		})
	}
}
