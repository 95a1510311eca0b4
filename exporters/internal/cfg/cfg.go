// Package cfg reads a destination's `config:` block (YAML decoded into maps,
// lists, strings, numbers and bools) into typed fields, strictly: every
// unknown key and every value of the wrong shape becomes a field error, and
// all of them are reported at once in one *plugins.ConfigError.
package cfg

import (
	"fmt"
	"math"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/kern-agents/trace-gateway/plugins"
)

// Reader reads one map level. Fields are read with the typed methods; Done
// reports keys no method asked for. Errors accumulate in the shared
// *plugins.ConfigError, named by their dotted path.
type Reader struct {
	raw    map[string]any
	prefix string
	seen   map[string]bool
	errs   *plugins.ConfigError
}

// New returns a Reader over the top level of a config block. A nil map is an
// empty block.
func New(raw map[string]any) *Reader {
	return &Reader{raw: raw, seen: map[string]bool{}, errs: &plugins.ConfigError{}}
}

// Errors returns the accumulated errors (nil when there are none).
func (r *Reader) Errors() error { return r.errs.Err() }

// Path names key inside this reader, e.g. "tls.ca_file".
func (r *Reader) Path(key string) string { return r.prefix + key }

// Fail records an error for key (a key of this level, or "" for the level).
func (r *Reader) Fail(key, format string, args ...any) {
	field := strings.TrimSuffix(r.prefix, ".")
	if key != "" {
		field = r.Path(key)
	}
	r.errs.Add(field, format, args...)
}

// Has reports whether key is present with a non-nil value.
func (r *Reader) Has(key string) bool {
	v, ok := r.raw[key]
	return ok && v != nil
}

func (r *Reader) get(key string) (any, bool) {
	r.seen[key] = true
	v, ok := r.raw[key]
	if !ok || v == nil {
		return nil, false
	}
	return v, true
}

// typed reads key as a T; want names the expected shape in the error. It
// reports false when the key is absent or of another type.
func typed[T any](r *Reader, key, want string) (T, bool) {
	var x T
	v, ok := r.get(key)
	if !ok {
		return x, false
	}
	if x, ok = v.(T); !ok {
		r.Fail(key, "must be %s, got %s", want, kind(v))
	}
	return x, ok
}

// String reads a string. Absent keys leave *dst unchanged (its default).
func (r *Reader) String(key string, dst *string) {
	if s, ok := typed[string](r, key, "a string"); ok {
		*dst = strings.TrimSpace(s)
	}
}

// Required reads a string that must be present and non-empty.
func (r *Reader) Required(key string, dst *string) {
	if !r.Has(key) {
		r.seen[key] = true
		r.Fail(key, "is required")
		return
	}
	before := len(r.errs.Fields)
	r.String(key, dst)
	if len(r.errs.Fields) == before && *dst == "" {
		r.Fail(key, "must not be empty (an unset ${ENV} variable expands to nothing)")
	}
}

// StringOrInt reads a string, also accepting an integer (ids such as an
// MLflow experiment id are often written unquoted in YAML).
func (r *Reader) StringOrInt(key string, dst *string) {
	v, ok := r.get(key)
	if !ok {
		return
	}
	switch x := v.(type) {
	case string:
		*dst = strings.TrimSpace(x)
	case int:
		*dst = strconv.Itoa(x)
	case int64:
		*dst = strconv.FormatInt(x, 10)
	case uint64:
		*dst = strconv.FormatUint(x, 10)
	case float64:
		if x != math.Trunc(x) || math.Abs(x) > 1<<53 {
			r.Fail(key, "must be a string or an integer, got %v", x)
			return
		}
		*dst = strconv.FormatInt(int64(x), 10)
	default:
		r.Fail(key, "must be a string or an integer, got %s", kind(v))
	}
}

// Bool reads a boolean.
func (r *Reader) Bool(key string, dst *bool) {
	if b, ok := typed[bool](r, key, "true or false"); ok {
		*dst = b
	}
}

// Duration reads a positive duration written as a Go duration string
// ("10s", "1m30s"). Bare numbers are refused: their unit would be a guess.
func (r *Reader) Duration(key string, dst *time.Duration) {
	s, ok := typed[string](r, key, `a duration such as "10s"`)
	if !ok {
		return
	}
	d, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		r.Fail(key, "must be a duration such as \"10s\": %v", err)
		return
	}
	if d <= 0 {
		r.Fail(key, "must be greater than zero")
		return
	}
	*dst = d
}

// OneOf reads a string that must be one of allowed (compared
// case-insensitively; the stored value is the allowed spelling).
func (r *Reader) OneOf(key string, dst *string, allowed ...string) {
	var s string
	before := len(r.errs.Fields)
	r.String(key, &s)
	if len(r.errs.Fields) != before || !r.Has(key) {
		return
	}
	for _, a := range allowed {
		if strings.EqualFold(s, a) {
			*dst = a
			return
		}
	}
	r.Fail(key, "must be one of %s, got %q", strings.Join(quoteAll(allowed), ", "), s)
}

// StringMap reads a map of strings (e.g. extra headers). Scalar values are
// accepted and formatted; nested values are refused.
func (r *Reader) StringMap(key string, dst *map[string]string) {
	v, ok := r.get(key)
	if !ok {
		return
	}
	m, ok := asMap(v)
	if !ok {
		r.Fail(key, "must be a map of names to strings, got %s", kind(v))
		return
	}
	out := make(map[string]string, len(m))
	for _, k := range sortedKeys(m) {
		switch x := m[k].(type) {
		case string:
			out[k] = x
		case bool, int, int64, uint64, float64:
			out[k] = fmt.Sprint(x)
		default:
			r.Fail(key+"."+k, "must be a string, got %s", kind(m[k]))
		}
	}
	*dst = out
}

// Sub returns a Reader for a nested map. An absent key yields an empty
// reader, so defaults apply.
func (r *Reader) Sub(key string) *Reader {
	sub := &Reader{raw: map[string]any{}, prefix: r.Path(key) + ".", seen: map[string]bool{}, errs: r.errs}
	v, ok := r.get(key)
	if !ok {
		return sub
	}
	m, ok := asMap(v)
	if !ok {
		r.Fail(key, "must be a map, got %s", kind(v))
		return sub
	}
	sub.raw = m
	return sub
}

// Done records an error for every key no typed method read.
func (r *Reader) Done() {
	for _, k := range sortedKeys(r.raw) {
		if !r.seen[k] {
			r.Fail(k, "unknown key")
		}
	}
}

// URL checks that s is an absolute http(s) URL without query or fragment
// and returns it parsed. It records an error for key and returns nil
// otherwise.
func (r *Reader) URL(key, s string) *url.URL {
	u, err := url.Parse(s)
	switch {
	case err != nil:
		r.Fail(key, "is not a valid URL: %v", err)
		return nil
	case u.Scheme != "http" && u.Scheme != "https":
		r.Fail(key, "must be an http:// or https:// URL, got %q", s)
		return nil
	case u.Host == "":
		r.Fail(key, "must include a host, got %q", s)
		return nil
	case u.RawQuery != "" || u.Fragment != "":
		r.Fail(key, "must not have a query or fragment, got %q", s)
		return nil
	}
	return u
}

// BaseURL checks *dst with URL and stores it in canonical form without a
// trailing slash, ready for a path to be joined on.
func (r *Reader) BaseURL(key string, dst *string) {
	if u := r.URL(key, *dst); u != nil {
		*dst = strings.TrimSuffix(u.String(), "/")
	}
}

// Regional is a URL setting that a "region" shortcut may stand for.
type Regional struct {
	r       *Reader
	key     string
	dst     *string
	region  string
	regions map[string]string
	names   []string
}

// RegionalURL reads the URL setting key into *dst and the "region" key
// beside it. regions maps each region, in lower case, to its URL; names
// lists them in the order an error names them. Call Resolve after Done.
func (r *Reader) RegionalURL(key string, dst *string, regions map[string]string, names ...string) Regional {
	g := Regional{r: r, key: key, dst: dst, regions: regions, names: names}
	r.String(key, dst)
	r.String("region", &g.region)
	return g
}

// Resolve applies the region, if one was given: it must be known
// (case-insensitively) and excludes setting the URL too; *dst becomes its
// URL. It runs after Done so unknown keys are reported first.
func (g Regional) Resolve() {
	if g.region == "" {
		return
	}
	u, ok := g.regions[strings.ToLower(g.region)]
	switch {
	case !ok:
		g.r.Fail("region", "must be one of %s, got %q", strings.Join(g.names, ", "), g.region)
	case g.r.Has(g.key):
		g.r.Fail("region", "set %s or region, not both", g.key)
	default:
		*g.dst = u
	}
}

// Result returns c, or the zero C and the accumulated errors when there are
// any: the last line of every adapter's Parse.
func Result[C any](r *Reader, c C) (C, error) {
	if err := r.Errors(); err != nil {
		var zero C
		return zero, err
	}
	return c, nil
}

func asMap(v any) (map[string]any, bool) {
	switch m := v.(type) {
	case map[string]any:
		return m, true
	case map[any]any: // older YAML decoders
		out := make(map[string]any, len(m))
		for k, val := range m {
			ks, ok := k.(string)
			if !ok {
				return nil, false
			}
			out[ks] = val
		}
		return out, true
	}
	return nil, false
}

func kind(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case int, int64, uint64, float64:
		return "a number"
	case []any:
		return "a list"
	case map[string]any, map[any]any:
		return "a map"
	}
	return fmt.Sprintf("%T", v)
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func quoteAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = strconv.Quote(s)
	}
	return out
}
