package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCLI(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("server:\n  otlp_grpc: nope\nstorage:\n  drvier: sqlite\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name     string
		args     []string
		code     int
		out, err string
	}{
		{"version", []string{"version"}, 0, "kern trace gateway", ""},
		{"example config file is valid", []string{"validate", "--no-plugins", "--config", "../../config.example.yaml"}, 0, "ok", ""},
		{"validate starts the plugins", []string{"validate", "--config", "../../config.example.yaml"}, 1, "",
			"config.example.yaml:46: destinations[0] (local-jsonl): plugin binary "},
		{"bad config lists every error with file:line", []string{"validate", "--config", bad}, 1, "", "bad.yaml:4: storage.drvier: unknown key"},
		{"missing config", []string{"validate", "--config", filepath.Join(dir, "none.yaml")}, 1, "", "none.yaml"},
		{"unknown command", []string{"frobnicate"}, 2, "", "unknown command"},
		{"stray argument", []string{"validate", "--config", bad, "extra"}, 2, "", "unexpected arguments"},
		{"unknown built-in plugin", []string{"plugin", "nope"}, 1, "", "nope"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(c.args, &out, &errb)
			if code != c.code {
				t.Fatalf("exit %d, want %d; stdout=%q stderr=%q", code, c.code, out.String(), errb.String())
			}
			if !strings.Contains(out.String(), c.out) || !strings.Contains(errb.String(), c.err) {
				t.Fatalf("stdout=%q stderr=%q; want %q / %q", out.String(), errb.String(), c.out, c.err)
			}
		})
	}
}

func TestValidateListsAllErrors(t *testing.T) {
	var out, errb bytes.Buffer
	dir := t.TempDir()
	p := filepath.Join(dir, "c.yaml")
	_ = os.WriteFile(p, []byte("server:\n  otlp_grpc: nope\nlog:\n  level: loud\n"), 0o600)
	if code := run([]string{"validate", "--config", p}, &out, &errb); code != 1 {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{"c.yaml:2: server.otlp_grpc", "c.yaml:4: log.level"} {
		if !strings.Contains(errb.String(), want) {
			t.Errorf("missing %q in %q", want, errb.String())
		}
	}
}
