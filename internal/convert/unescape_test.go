package convert

import (
	"encoding/json"
	"testing"
	"unicode/utf8"
)

// TestUnescapeMatchesEncodingJSON compares the fast path with encoding/json
// on every kind of escape.
func TestUnescapeMatchesEncodingJSON(t *testing.T) {
	for _, in := range []string{
		`plain`, `a\"b`, `back\\slash`, `sl\/ash`, `\b\f\n\r\t`, `\u00e9t\u00E9`,
		`\ud83d\ude00 smile`, `lone \ud83d high`, `lone \ude00 low`, `\u0000nul`,
		`{\"role\":\"user\",\"content\":\"hi\\n\"}`, `mixé \u4e2d`,
	} {
		var want string
		if err := json.Unmarshal([]byte(`"`+in+`"`), &want); err != nil {
			t.Fatalf("%q: %v", in, err)
		}
		got, err := unescape([]byte(in))
		if err != nil || got != want {
			t.Errorf("unescape(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{`\`, `\x`, `\u12`, `\u12zz`} {
		if _, err := unescape([]byte(bad)); err == nil {
			t.Errorf("unescape(%q) accepted", bad)
		}
	}
}

func FuzzUnescape(f *testing.F) {
	f.Add(`a\"b\u00e9\ud83d\ude00`)
	f.Fuzz(func(t *testing.T, in string) {
		var want string
		// Stored text is valid UTF-8 (the converter cleans it on the way in).
		if !utf8.ValidString(in) || json.Unmarshal([]byte(`"`+in+`"`), &want) != nil {
			return
		}
		if got, err := unescape([]byte(in)); err != nil || got != want {
			t.Fatalf("unescape(%q) = %q, %v; want %q", in, got, err, want)
		}
	})
}
