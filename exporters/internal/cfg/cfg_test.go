package cfg

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kern-agents/trace-gateway/plugins"
)

func fieldErrors(t *testing.T, err error) []string {
	t.Helper()
	if err == nil {
		return nil
	}
	var ce *plugins.ConfigError
	if !errors.As(err, &ce) {
		t.Fatalf("want *plugins.ConfigError, got %T %v", err, err)
	}
	var out []string
	for _, f := range ce.Fields {
		out = append(out, f.Field+": "+f.Message)
	}
	return out
}

func TestReader(t *testing.T) {
	type result struct {
		s, req, id, one string
		b               bool
		d               time.Duration
		m               map[string]string
		sub             string
	}
	read := func(raw map[string]any) (result, error) {
		res := result{d: time.Second, one: "a"}
		r := New(raw)
		r.String("s", &res.s)
		r.Required("req", &res.req)
		r.StringOrInt("id", &res.id)
		r.Bool("b", &res.b)
		r.Duration("d", &res.d)
		r.OneOf("one", &res.one, "a", "bb")
		r.StringMap("m", &res.m)
		sub := r.Sub("sub")
		sub.String("x", &res.sub)
		sub.Done()
		r.Done()
		return res, r.Errors()
	}
	tests := []struct {
		name string
		raw  map[string]any
		want result
		errs []string
	}{
		{
			name: "all valid",
			raw: map[string]any{"s": " v ", "req": "r", "id": 42, "b": true, "d": "1m30s", "one": "BB",
				"m": map[string]any{"k": "v", "n": 1}, "sub": map[any]any{"x": "y"}},
			want: result{s: "v", req: "r", id: "42", b: true, d: 90 * time.Second, one: "bb", m: map[string]string{"k": "v", "n": "1"}, sub: "y"},
		},
		{name: "defaults kept", raw: map[string]any{"req": "r", "id": "x", "s": nil}, want: result{req: "r", id: "x", d: time.Second, one: "a"}},
		{
			name: "every error at once",
			raw: map[string]any{"s": 1, "req": "", "id": []any{}, "b": "yes", "d": "5", "one": "c",
				"m": map[string]any{"k": []any{1}}, "sub": map[string]any{"x": 2, "y": 3}, "extra": true},
			errs: []string{
				"s: must be a string, got a number",
				"req: must not be empty (an unset ${ENV} variable expands to nothing)",
				"id: must be a string or an integer, got a list",
				"b: must be true or false, got a string",
				`d: must be a duration such as "10s": time: missing unit in duration "5"`,
				`one: must be one of "a", "bb", got "c"`,
				"m.k: must be a string, got a list",
				"sub.x: must be a string, got a number",
				"sub.y: unknown key",
				"extra: unknown key",
			},
		},
		{name: "missing required", raw: map[string]any{}, errs: []string{"req: is required"}},
		{name: "negative duration", raw: map[string]any{"req": "r", "d": "-1s"}, errs: []string{"d: must be greater than zero"}},
		{name: "sub not a map", raw: map[string]any{"req": "r", "sub": "x"}, errs: []string{"sub: must be a map, got a string"}},
		{name: "float id", raw: map[string]any{"req": "r", "id": 7.0}, want: result{req: "r", id: "7", d: time.Second, one: "a"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := read(tt.raw)
			errs := fieldErrors(t, err)
			if strings.Join(errs, "\n") != strings.Join(tt.errs, "\n") {
				t.Fatalf("errors:\n%s\nwant:\n%s", strings.Join(errs, "\n"), strings.Join(tt.errs, "\n"))
			}
			if tt.errs != nil {
				return
			}
			if got.s != tt.want.s || got.req != tt.want.req || got.id != tt.want.id || got.b != tt.want.b ||
				got.d != tt.want.d || got.one != tt.want.one || got.sub != tt.want.sub || len(got.m) != len(tt.want.m) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
			for k, v := range tt.want.m {
				if got.m[k] != v {
					t.Fatalf("m[%s] = %q, want %q", k, got.m[k], v)
				}
			}
		})
	}
}

func TestURL(t *testing.T) {
	for in, ok := range map[string]bool{
		"https://x.example.com":     true,
		"http://127.0.0.1:3000/a/b": true,
		"x.example.com":             false,
		"ftp://x":                   false,
		"https://":                  false,
		"https://x/?a=b":            false,
		"https://x/#f":              false,
		"http://[::1":               false,
	} {
		r := New(nil)
		got := r.URL("u", in) != nil
		if got != ok || (r.Errors() == nil) != ok {
			t.Errorf("URL(%q) ok=%v errors=%v, want ok=%v", in, got, r.Errors(), ok)
		}
	}
}

func TestReadCommon(t *testing.T) {
	r := New(map[string]any{"compression": "none", "headers": map[string]any{"a": "b"}})
	c := ReadCommon(r, "gzip")
	r.Done()
	if r.Errors() != nil || c.Compression != "none" || c.Timeout != DefaultTimeout || c.Headers["a"] != "b" {
		t.Fatalf("%+v %v", c, r.Errors())
	}
	r = New(nil)
	if c := ReadCommon(r, "gzip"); c.Compression != "gzip" {
		t.Fatalf("default compression %q", c.Compression)
	}
}

func TestRegionalURL(t *testing.T) {
	regions := map[string]string{"us": "https://us.example.com", "eu": "https://eu.example.com"}
	read := func(raw map[string]any) (string, []string) {
		t.Helper()
		url := "https://default.example.com"
		r := New(raw)
		region := r.RegionalURL("endpoint", &url, regions, "us", "eu")
		r.Done()
		region.Resolve()
		r.BaseURL("endpoint", &url)
		got, err := Result(r, url)
		if (err == nil) != (got != "") {
			t.Fatalf("Result returned %q with %v", got, err)
		}
		return got, fieldErrors(t, err)
	}
	tests := []struct {
		name string
		raw  map[string]any
		want string
		errs []string
	}{
		{name: "default", raw: nil, want: "https://default.example.com"},
		{name: "region, any case", raw: map[string]any{"region": "EU"}, want: "https://eu.example.com"},
		{name: "explicit URL, trailing slash dropped", raw: map[string]any{"endpoint": "http://127.0.0.1:3000/base/"}, want: "http://127.0.0.1:3000/base"},
		{name: "unknown region after unknown keys", raw: map[string]any{"region": "mars", "extra": 1},
			errs: []string{"extra: unknown key", `region: must be one of us, eu, got "mars"`}},
		{name: "both", raw: map[string]any{"region": "us", "endpoint": "https://x"},
			errs: []string{"region: set endpoint or region, not both"}},
		{name: "not a URL", raw: map[string]any{"endpoint": "x.example.com"},
			errs: []string{`endpoint: must be an http:// or https:// URL, got "x.example.com"`}},
		{name: "region not a string", raw: map[string]any{"region": 1},
			errs: []string{"region: must be a string, got a number"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, errs := read(tt.raw)
			if got != tt.want || strings.Join(errs, "\n") != strings.Join(tt.errs, "\n") {
				t.Fatalf("got %q, errors %q; want %q, errors %q", got, errs, tt.want, tt.errs)
			}
		})
	}
}
