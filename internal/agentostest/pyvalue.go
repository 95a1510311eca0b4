package agentostest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Python values: what psycopg (jsonb) and SQLAlchemy's JSON type
// (json.loads) hand AgentOS for a stored attributes object. Integers are
// int64 (or *big.Int beyond it), other numbers float64, then string, bool,
// nil, []any and map[string]any.

// decodePython decodes a JSON text as Python's json.loads would.
func decodePython(b []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	if d.More() {
		return nil, fmt.Errorf("extra data after the JSON value")
	}
	return pyNumbers(v), nil
}

func pyNumbers(v any) any {
	switch x := v.(type) {
	case json.Number:
		s := x.String()
		if !strings.ContainsAny(s, ".eE") {
			if i, err := strconv.ParseInt(s, 10, 64); err == nil {
				return i
			}
			n, _ := new(big.Int).SetString(s, 10)
			return n
		}
		f, _ := strconv.ParseFloat(s, 64)
		return f
	case []any:
		for i := range x {
			x[i] = pyNumbers(x[i])
		}
	case map[string]any:
		for k := range x {
			x[k] = pyNumbers(x[k])
		}
	}
	return v
}

// pyType names a value's Python type, for error messages.
func pyType(v any) string {
	switch v.(type) {
	case nil:
		return "NoneType"
	case string:
		return "str"
	case bool:
		return "bool"
	case int64, *big.Int:
		return "int"
	case float64:
		return "float"
	case []any:
		return "list"
	case map[string]any:
		return "dict"
	}
	return fmt.Sprintf("%T", v)
}

// truthy is Python's truth value.
func truthy(v any) bool {
	switch x := v.(type) {
	case nil:
		return false
	case string:
		return x != ""
	case bool:
		return x
	case int64:
		return x != 0
	case *big.Int:
		return x.Sign() != 0
	case float64:
		return x != 0
	case []any:
		return len(x) > 0
	case map[string]any:
		return len(x) > 0
	}
	return true
}

// optStr is pydantic v2 validating an Optional[str] field (lax mode: only
// str and None pass; numbers, bools and documents fail the model).
func optStr(field string, v any) (*string, error) {
	switch x := v.(type) {
	case nil:
		return nil, nil
	case string:
		return &x, nil
	}
	return nil, fmt.Errorf("pydantic: %s: Input should be a valid string, got %s %s", field, pyType(v), pyRepr(v))
}

// pyRepr renders a value as JSON (close enough to Python's repr to read).
func pyRepr(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// formatDurationMS is agno.os.utils.format_duration_ms.
func formatDurationMS(ms int64) string {
	if ms < 1000 {
		return strconv.FormatInt(ms, 10) + "ms"
	}
	return strconv.FormatFloat(float64(ms)/1000, 'f', 2, 64) + "s"
}

// fromISOFormat is agno's `datetime.fromisoformat(s.replace("Z", "+00:00"))`
// under the strictest Python agno supports (3.9 and 3.10, whose
// fromisoformat only takes what isoformat writes): YYYY-MM-DD, then any one
// separator character and HH[:MM[:SS[.fff|.ffffff]]], then an optional
// offset ±HH:MM[:SS[.ffffff]]. aware says an offset was given (comparing an
// aware with a naive datetime raises TypeError).
func fromISOFormat(s string) (t time.Time, aware bool, err error) {
	orig := s
	s = strings.ReplaceAll(s, "Z", "+00:00")
	bad := func(why string) (time.Time, bool, error) {
		return time.Time{}, false, fmt.Errorf("datetime.fromisoformat(%q): Invalid isoformat string (%s)", orig, why)
	}
	num := func(p string) (int, bool) {
		if p == "" {
			return 0, false
		}
		for _, c := range p {
			if c < '0' || c > '9' {
				return 0, false
			}
		}
		n, _ := strconv.Atoi(p)
		return n, true
	}
	if len(s) < 10 || s[4] != '-' || s[7] != '-' {
		return bad("date")
	}
	y, ok1 := num(s[0:4])
	mo, ok2 := num(s[5:7])
	d, ok3 := num(s[8:10])
	if !ok1 || !ok2 || !ok3 || y < 1 || mo < 1 || mo > 12 || d < 1 || d > daysIn(y, mo) {
		return bad("date")
	}
	var hh, mm, ss, us int
	loc := time.FixedZone("", 0)
	if len(s) > 10 {
		rest := s[11:]
		tzAt := strings.IndexAny(rest, "+-")
		tz := ""
		if tzAt >= 0 {
			rest, tz = rest[:tzAt], rest[tzAt:]
		}
		var frac string
		rest, frac, hasFrac := strings.Cut(rest, ".")
		parts := strings.Split(rest, ":")
		if len(parts) > 3 {
			return bad("time")
		}
		vals := []*int{&hh, &mm, &ss}
		for i, p := range parts {
			if len(p) != 2 {
				return bad("time")
			}
			n, ok := num(p)
			if !ok {
				return bad("time")
			}
			*vals[i] = n
		}
		if hasFrac {
			if len(parts) != 3 || (len(frac) != 3 && len(frac) != 6) {
				return bad("fraction")
			}
			n, ok := num(frac)
			if !ok {
				return bad("fraction")
			}
			if len(frac) == 3 {
				n *= 1000
			}
			us = n
		}
		if hh > 23 || mm > 59 || ss > 59 {
			return bad("time")
		}
		if tz != "" {
			body := tz[1:]
			if len(body) != 5 && len(body) != 8 && len(body) != 15 {
				return bad("offset")
			}
			h, okh := num(body[0:2])
			m, okm := num(body[3:5])
			if body[2] != ':' || !okh || !okm || h > 23 || m > 59 {
				return bad("offset")
			}
			secs := h*3600 + m*60
			if len(body) >= 8 {
				sec, ok := num(body[6:8])
				if body[5] != ':' || !ok || sec > 59 {
					return bad("offset")
				}
				secs += sec
			}
			if len(body) == 15 {
				if body[8] != '.' {
					return bad("offset")
				}
				if _, ok := num(body[9:]); !ok {
					return bad("offset")
				}
			}
			if tz[0] == '-' {
				secs = -secs
			}
			loc, aware = time.FixedZone("", secs), true
		}
	}
	return time.Date(y, time.Month(mo), d, hh, mm, ss, us*1000, loc), aware, nil
}

func daysIn(y, m int) int {
	return time.Date(y, time.Month(m)+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

// sortedKeys returns m's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
