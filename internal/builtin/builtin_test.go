package builtin

import (
	"context"
	"slices"
	"strings"
	"testing"

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/kern-agents/trace-gateway/plugins"
)

type nopExporter struct{ id int }

func (nopExporter) Configure(context.Context, map[string]any) error { return nil }
func (nopExporter) Export(context.Context, ptrace.Traces) error     { return nil }
func (nopExporter) Shutdown(context.Context) error                  { return nil }

func TestRegisterLookupNames(t *testing.T) {
	Register("test-b", func() plugins.Exporter { return nopExporter{id: 2} })
	Register("test_a", func() plugins.Exporter { return nopExporter{id: 1} })

	f, ok := Lookup("test_a")
	if !ok || f().(nopExporter).id != 1 {
		t.Fatal("Lookup(test_a) did not return its factory")
	}
	if _, ok := Lookup("test-c"); ok {
		t.Fatal("Lookup found an unregistered name")
	}
	names := Names()
	if !slices.IsSorted(names) || !slices.Contains(names, "test_a") || !slices.Contains(names, "test-b") {
		t.Fatalf("Names() = %v", names)
	}
	err := UnknownError("test-c")
	if !strings.Contains(err.Error(), `"test-c"`) || !strings.Contains(err.Error(), "test-b") {
		t.Fatalf("UnknownError = %v", err)
	}
	if err := Serve("test-c"); err == nil || !strings.Contains(err.Error(), "unknown built-in exporter") {
		t.Fatalf("Serve(unknown) = %v", err)
	}
}

func TestRegisterRejectsMistakes(t *testing.T) {
	Register("test-dup", func() plugins.Exporter { return nopExporter{} })
	cases := []struct {
		name, reg string
		factory   func() plugins.Exporter
		panic     string
	}{
		{"duplicate", "test-dup", func() plugins.Exporter { return nopExporter{} }, "registered twice"},
		{"empty", "", func() plugins.Exporter { return nopExporter{} }, "invalid exporter name"},
		{"path-like", "./x", func() plugins.Exporter { return nopExporter{} }, "invalid exporter name"},
		{"upper case", "OTLP", func() plugins.Exporter { return nopExporter{} }, "invalid exporter name"},
		{"nil factory", "test-nil", nil, "nil factory"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				r := recover()
				if r == nil || !strings.Contains(r.(string), tc.panic) {
					t.Fatalf("recovered %v, want a panic containing %q", r, tc.panic)
				}
			}()
			Register(tc.reg, tc.factory)
		})
	}
}

func TestValidName(t *testing.T) {
	for name, want := range map[string]bool{"otlp": true, "langfuse-v2": true, "arize_ax": true, "": false, "a/b": false, "a.b": false, "Otlp": false, "ü": false} {
		if ValidName(name) != want {
			t.Errorf("ValidName(%q) = %v", name, !want)
		}
	}
}
