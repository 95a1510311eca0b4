package semantics

import (
	"encoding/json"
	"reflect"
	"testing"
)

// checkDecodeJSON asserts that decodeJSON, when it answers, answers what
// json.Unmarshal does.
func checkDecodeJSON(t *testing.T, s string) (ok bool) {
	t.Helper()
	got, ok := decodeJSON(s)
	if !ok {
		return false
	}
	var want any
	if err := json.Unmarshal([]byte(s), &want); err != nil {
		t.Fatalf("decodeJSON(%q) = %#v, but encoding/json fails: %v", s, got, err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("decodeJSON(%q) = %#v, encoding/json %#v", s, got, want)
	}
	return true
}

func TestDecodeJSON(t *testing.T) {
	for _, tc := range []struct {
		in   string
		fast bool // decodeJSON answers (else it leaves the text to encoding/json)
	}{
		{`[{"role":"user","parts":[{"type":"text","content":"What is the weather?\nBriefly, \"please\" \\ /"}]}]`, true},
		{`[{"role":"assistant","parts":[{"type":"tool_call","id":"c1","name":"f","arguments":{"city":"Paris","n":3}}],"finish_reason":"tool_calls"}]`, true},
		{` { "a" : [ 1 , -2.5e-3 , 0 , 1E+2 , true , false , null , { } , [ ] ] , "b" : "x" } `, true},
		{`{"a":1,"a":2}`, true}, // the last wins
		{`{"é 21°C":"Il fait beau à Paris 🌦","\t":"\b\f\r\/"}`, true},
		{`[]`, true},
		{`{}`, true},
		{`[1e400]`, false},                  // out of range: an error
		{`["\u00e9"]`, false},               // \u: encoding/json's
		{"[\"\xff\"]", false},               // not UTF-8: encoding/json writes U+FFFD
		{"[\"a\tb\"]", false},               // a control character: invalid
		{`[01]`, false},                     // invalid number
		{`[1.]`, false},                     // invalid number
		{`[-]`, false},                      // invalid number
		{`[+1]`, false},                     // invalid number
		{`{"a":1,}`, false},                 // trailing comma
		{`[1,]`, false},                     // trailing comma
		{`[1] x`, false},                    // trailing data
		{`{"a" 1}`, false},                  // no colon
		{`{a:1}`, false},                    // unquoted key
		{`[tru]`, false},                    // bad literal
		{`["abc`, false},                    // unterminated
		{`["\x"]`, false},                   // bad escape
		{`[` + deepArray(200) + `]`, false}, // deep: encoding/json's
	} {
		if got := checkDecodeJSON(t, tc.in); got != tc.fast {
			t.Errorf("decodeJSON(%.40q) answered %v, want %v", tc.in, got, tc.fast)
		}
	}
}

func deepArray(n int) string {
	s := ""
	for range n {
		s = "[" + s + "]"
	}
	return s
}

func FuzzDecodeJSON(f *testing.F) {
	for _, s := range []string{
		`[{"role":"user","parts":[{"type":"text","content":"hi"}]}]`,
		`{"a":[1,2.5,-3e2,true,null,{"b":"\n\"x\""}]}`, `[1e400]`, `["\u00e9"]`, `{"a":1,"a":2}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) { checkDecodeJSON(t, s) })
}
