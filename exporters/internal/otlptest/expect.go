package otlptest

import (
	"errors"
	"sort"
	"strings"
	"testing"

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/kern-agents/trace-gateway/exporters/internal/facts"
	"github.com/kern-agents/trace-gateway/exporters/internal/fixture"
	"github.com/kern-agents/trace-gateway/plugins"
)

// Absent, as an expected value, means the attribute must not be set.
const Absent = "\x00absent"

// ExpectAttrs checks span attributes by span name: want[span][key] is the
// attribute's text (see facts.Text), or Absent.
func ExpectAttrs(t testing.TB, td ptrace.Traces, want map[string]map[string]string) {
	t.Helper()
	names := make([]string, 0, len(want))
	for n := range want {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		span, ok := fixture.Find(td, name)
		if !ok {
			t.Errorf("span %q missing", name)
			continue
		}
		keys := make([]string, 0, len(want[name]))
		for k := range want[name] {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			w := want[name][k]
			_, has := span.Attributes().Get(k)
			got := facts.Text(span.Attributes(), k)
			switch {
			case w == Absent && has:
				t.Errorf("%s: %s = %q, want it absent", name, k, got)
			case w != Absent && !has:
				t.Errorf("%s: %s missing, want %q", name, k, w)
			case w != Absent && got != w:
				t.Errorf("%s: %s = %q, want %q", name, k, got, w)
			}
		}
	}
}

// ExpectEvent checks that the named span has an event with the given
// attributes.
func ExpectEvent(t testing.TB, td ptrace.Traces, spanName, event string, attrs map[string]string) {
	t.Helper()
	span, ok := fixture.Find(td, spanName)
	if !ok {
		t.Fatalf("span %q missing", spanName)
	}
	for _, ev := range span.Events().All() {
		if ev.Name() != event {
			continue
		}
		for k, v := range attrs {
			if got := facts.Text(ev.Attributes(), k); got != v {
				t.Fatalf("%s: event %s: %s = %q, want %q", spanName, event, k, got, v)
			}
		}
		return
	}
	t.Fatalf("%s: no %q event", spanName, event)
}

// ConfigFields returns the field names of a *plugins.ConfigError, in
// order, or fails when err is not one.
func ConfigFields(t testing.TB, err error) []string {
	t.Helper()
	var ce *plugins.ConfigError
	if !errors.As(err, &ce) {
		t.Fatalf("want *plugins.ConfigError, got %v", err)
	}
	out := make([]string, len(ce.Fields))
	for i, f := range ce.Fields {
		out[i] = f.Field
	}
	return out
}

// ConfigCase is one row of a config validation table. A nil Fields means
// the config is valid.
type ConfigCase struct {
	Name   string
	Raw    map[string]any
	Fields []string
}

// RunConfigCases runs a config validation table against parse.
func RunConfigCases[C any](t *testing.T, parse func(map[string]any) (C, error), cases []ConfigCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.Name, func(t *testing.T) {
			_, err := parse(tc.Raw)
			if tc.Fields == nil {
				if err != nil {
					t.Fatalf("want valid, got %v", err)
				}
				return
			}
			got := ConfigFields(t, err)
			if strings.Join(got, ",") != strings.Join(tc.Fields, ",") {
				t.Fatalf("fields = %v, want %v (%v)", got, tc.Fields, err)
			}
		})
	}
}
