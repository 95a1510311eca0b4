package convert

import (
	"testing"

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
