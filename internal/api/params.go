package api

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// params reads a request's query strictly: unknown or repeated parameters
// are errors, so a typo ("userid=") is reported instead of silently
// returning everything.
type params struct {
	v url.Values
}

const maxValueLen = 512

func parseParams(q url.Values, allowed []string, repeatable ...string) (*params, error) {
	ok := make(map[string]bool, len(allowed))
	for _, a := range allowed {
		ok[a] = true
	}
	rep := make(map[string]bool, len(repeatable))
	for _, a := range repeatable {
		rep[a] = true
	}
	for name, vals := range q {
		if !ok[name] {
			return nil, badParam(name, "unknown parameter; allowed: "+strings.Join(allowed, ", "))
		}
		if len(vals) > 1 && !rep[name] {
			return nil, badParam(name, "parameter given more than once")
		}
		for _, v := range vals {
			if len(v) > maxValueLen {
				return nil, badParam(name, fmt.Sprintf("value longer than %d bytes", maxValueLen))
			}
			if !utf8.ValidString(v) {
				return nil, badParam(name, "value is not valid UTF-8")
			}
		}
	}
	return &params{v: q}, nil
}

// str returns the parameter, "" when absent.
func (p *params) str(name string) string { return p.v.Get(name) }

func (p *params) all(name string) []string { return p.v[name] }

// timeParam parses an RFC 3339 time; zero when absent.
func (p *params) timeParam(name string) (time.Time, error) {
	s := p.v.Get(name)
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, badParam(name, "not an RFC 3339 time (e.g. 2025-01-31T12:00:00Z)")
	}
	return t, nil
}

// timeRange parses start and end and checks their order.
func (p *params) timeRange() (start, end time.Time, err error) {
	if start, err = p.timeParam("start"); err != nil {
		return
	}
	if end, err = p.timeParam("end"); err != nil {
		return
	}
	if !start.IsZero() && !end.IsZero() && !start.Before(end) {
		err = badParam("end", "end must be after start")
	}
	return
}

func (p *params) limit() (int, error) {
	s := p.v.Get("limit")
	if s == "" {
		return defaultLimit, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > maxLimit {
		return 0, badParam("limit", fmt.Sprintf("must be an integer from 1 to %d", maxLimit))
	}
	return n, nil
}

// nonNegInt parses an optional integer >= 0; -1 when absent.
func (p *params) nonNegInt(name string) (int64, error) {
	s := p.v.Get(name)
	if s == "" {
		return -1, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, badParam(name, "must be a non-negative integer")
	}
	return n, nil
}

// order parses order=asc|desc, default desc.
func (p *params) desc() (bool, error) {
	switch p.v.Get("order") {
	case "", "desc":
		return true, nil
	case "asc":
		return false, nil
	}
	return false, badParam("order", "must be asc or desc")
}

// status parses a status filter.
func (p *params) status() (string, error) {
	s := strings.ToUpper(p.v.Get("status"))
	switch s {
	case "", "OK", "ERROR", "UNSET":
		return s, nil
	}
	return "", badParam("status", "must be OK, ERROR or UNSET")
}
