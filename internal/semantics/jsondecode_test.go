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

// checkDecodeMessages asserts that decodeMessages, when it answers, finds
// the messages llmText finds in the decoded value.
func checkDecodeMessages(t *testing.T, s string) (sure bool) {
	t.Helper()
	got, valid, sure := decodeMessages(s)
	if !sure {
		return false
	}
	v, ok := parseJSON(s)
	if valid != ok {
		t.Fatalf("decodeMessages(%q) valid = %v, parseJSON ok = %v", s, valid, ok)
	}
	if want := textMessages(v); !reflect.DeepEqual(got, want) && (len(got) > 0 || len(want) > 0) {
		t.Fatalf("decodeMessages(%q) = %s, from the decoded value %s", s, printMessages(got), printMessages(want))
	}
	return true
}

func printMessages(msgs []*message) string {
	b, _ := json.Marshal(msgs)
	return string(b)
}

func TestDecodeMessages(t *testing.T) {
	for _, tc := range []struct {
		in   string
		sure bool
	}{
		{`[{"role":"system","parts":[{"type":"text","content":"be brief"}]},{"role":"user","parts":[{"type":"text","content":"q1"},{"type":"image","content":"x"},{"type":"text","content":"q2 \"quoted\""}]}]`, true},
		{`[{"role":"assistant","parts":[{"type":"tool_call","id":"c1","name":"f","arguments":{"a":[1,2]}}],"finish_reason":"tool_calls"}]`, true},
		{` [ {"role":1,"parts":"no"}, 3, "x", null, [], {}, {"parts":[1,{"type":"text","content":7},{"type":"text"},{"content":"c","type":"text"}]} ] `, true},
		{`[{"role":"user","role":2,"parts":[{"type":"text","content":"a"}],"parts":[{"type":"text","content":"b","content":""}]}]`, true},
		{`{"role":"user"}`, true}, // valid, no list: no messages
		{`"text"`, true},          // not JSON to parse: no messages, not valid
		{``, true},
		{`[{"role":"user"}] x`, false},
		{`[{"role":"user","parts":[{"type":"text","content":"\u00e9"}]}]`, false},
		{`[{"parts":[{"n":1e999}]}]`, false},
		{`[{"role":"user",}]`, false},
	} {
		if got := checkDecodeMessages(t, tc.in); got != tc.sure {
			t.Errorf("decodeMessages(%.50q) sure = %v, want %v", tc.in, got, tc.sure)
		}
	}
}

func FuzzDecodeMessages(f *testing.F) {
	for _, s := range []string{
		`[{"role":"user","parts":[{"type":"text","content":"hi"}]}]`,
		`[{"role":"assistant","parts":[{"type":"tool_call","id":"c1","name":"f","arguments":"{}"}]}]`,
		`[{"role":"user","role":2,"parts":[{"type":"text","content":"a"}],"parts":[]}]`, `{"a":1}`, `[1,"x",null]`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) { checkDecodeMessages(t, s) })
}
