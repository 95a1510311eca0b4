package main

import (
	"context"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/kern-agents/trace-gateway/internal/builtin"
	"github.com/kern-agents/trace-gateway/internal/config"
)

// TestExampleConfigShowsEveryAdapter uncomments the vendor destinations of
// config.example.yaml, sets their secrets in a fake environment, and checks
// the file is valid and every built-in adapter accepts its config block.
func TestExampleConfigShowsEveryAdapter(t *testing.T) {
	raw, err := os.ReadFile("../../config.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	uncomment := regexp.MustCompile(`(?m)^  # (  |- )`)
	text := uncomment.ReplaceAllString(string(raw), "  $1")
	env := func(k string) (string, bool) {
		if strings.HasPrefix(k, "KERN_") {
			return "", false // the gateway's own settings keep their defaults
		}
		return "secret-for-" + strings.ToLower(k), true
	}
	cfg, err := config.Parse("config.example.yaml", []byte(text), env)
	if err != nil {
		t.Fatalf("uncommented example does not validate:\n%v", err)
	}
	seen := map[string]bool{}
	for _, d := range cfg.Destinations {
		factory, ok := builtin.Lookup(d.Plugin)
		if !ok {
			continue // the custom jsonl plugin
		}
		seen[d.Plugin] = true
		exp := factory()
		if err := exp.Configure(context.Background(), d.Config); err != nil {
			t.Errorf("destination %s (%s): %v", d.Name, d.Plugin, err)
		}
		_ = exp.Shutdown(context.Background())
	}
	for _, name := range builtin.Names() {
		if !seen[name] {
			t.Errorf("config.example.yaml shows no %s destination", name)
		}
	}
}
