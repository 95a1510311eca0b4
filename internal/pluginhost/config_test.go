package pluginhost

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
)

func TestConfigStruct(t *testing.T) {
	type endpoint struct {
		URL string `json:"url"`
	}
	cases := []struct {
		name    string
		in      map[string]any
		want    string // protojson of the Struct
		wantErr string
	}{
		{"empty", nil, `{}`, ""},
		{"scalars", map[string]any{"s": "x", "b": true, "i": 42, "f": 0.5, "n": nil, "u": uint16(7), "neg": int64(-3)},
			`{"b":true,"f":0.5,"i":42,"n":null,"neg":-3,"s":"x","u":7}`, ""},
		{"nested", map[string]any{"tls": map[string]any{"ca_file": "/ca.pem", "verify": false}, "hosts": []any{"a", 1, []any{true}}},
			`{"hosts":["a",1,[true]],"tls":{"ca_file":"/ca.pem","verify":false}}`, ""},
		{"yaml non-string keys", map[string]any{"codes": map[any]any{429: "retry", "x": 1}},
			`{"codes":{"429":"retry","x":1}}`, ""},
		{"time and duration", map[string]any{"since": time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC), "every": 90 * time.Second},
			`{"every":"1m30s","since":"2025-01-02T03:04:05Z"}`, ""},
		{"typed values via JSON", map[string]any{"eps": []endpoint{{URL: "http://a"}}, "tags": []string{"x"}},
			`{"eps":[{"url":"http://a"}],"tags":["x"]}`, ""},
		{"largest exact int", map[string]any{"n": int64(1) << 53}, `{"n":9007199254740992}`, ""},
		{"int too large", map[string]any{"limits": map[string]any{"bytes": int64(1)<<53 + 1}}, "", "config field limits.bytes: 9007199254740993 is too large"},
		{"uint too large", map[string]any{"list": []any{uint64(1) << 60}}, "", "config field list[0]:"},
		{"unrepresentable", map[string]any{"ch": make(chan int)}, "", "config field ch: cannot pass a chan int"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, err := configStruct(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, err := protojson.Marshal(s)
			if err != nil {
				t.Fatal(err)
			}
			// protojson output spacing is unstable by design; compare compacted.
			if compact(string(got)) != tc.want {
				t.Fatalf("got %s, want %s", got, tc.want)
			}
		})
	}
}

func compact(s string) string {
	return strings.Join(strings.Fields(s), "")
}
