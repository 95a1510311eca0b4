package api

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// TestOpenAPIMatchesHandlers keeps docs/openapi.yaml in step with the
// parameters the handlers accept.
func TestOpenAPIMatchesHandlers(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "docs", "openapi.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		OpenAPI string `yaml:"openapi"`
		Paths   map[string]map[string]struct {
			Parameters []struct {
				Ref  string `yaml:"$ref"`
				Name string `yaml:"name"`
			} `yaml:"parameters"`
		} `yaml:"paths"`
		Components struct {
			Parameters map[string]struct {
				Name string `yaml:"name"`
			} `yaml:"parameters"`
		} `yaml:"components"`
	}
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("openapi.yaml: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.0") {
		t.Errorf("openapi version %q", doc.OpenAPI)
	}
	names := func(path string) []string {
		op, ok := doc.Paths[path]["get"]
		if !ok {
			t.Fatalf("openapi.yaml lacks GET %s", path)
		}
		var out []string
		for _, p := range op.Parameters {
			n := p.Name
			if p.Ref != "" {
				n = doc.Components.Parameters[strings.TrimPrefix(p.Ref, "#/components/parameters/")].Name
			}
			if n == "" {
				t.Errorf("%s: unresolved parameter %+v", path, p)
			}
			out = append(out, n)
		}
		slices.Sort(out)
		return out
	}
	sorted := func(s []string) []string { s = slices.Clone(s); slices.Sort(s); return s }
	for _, c := range []struct {
		path string
		want []string
	}{
		{"/api/traces", traceListParams},
		{"/api/spans", spanListParams},
		{"/api/summary", []string{"start", "end"}},
		{"/api/traces/{trace_id}", []string{"trace_id"}},
	} {
		if got := names(c.path); !slices.Equal(got, sorted(c.want)) {
			t.Errorf("%s documents %v, handler accepts %v", c.path, got, sorted(c.want))
		}
	}
	if len(doc.Paths) != 4 {
		t.Errorf("openapi.yaml has %d paths, the API 4", len(doc.Paths))
	}
}
