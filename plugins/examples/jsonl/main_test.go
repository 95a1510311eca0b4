package main

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/kern-agents/trace-gateway/plugins"
)

// Exporters are plain Go values: most of a plugin is tested without a
// process. The gateway's plugin host tests run this binary end to end.

func TestConfigure(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name   string
		cfg    map[string]any
		fields []string // "field: message" substrings
	}{
		{"ok", map[string]any{"path": filepath.Join(dir, "a.jsonl")}, nil},
		{"missing path", map[string]any{}, []string{"path: is required"}},
		{"path not a string", map[string]any{"path": 3}, []string{"path: must be a non-empty string"}},
		{"empty path", map[string]any{"path": ""}, []string{"path: must be a non-empty string"}},
		{"unknown fields", map[string]any{"path": filepath.Join(dir, "b.jsonl"), "fsync": true, "mode": 1}, []string{"fsync: unknown field", "mode: unknown field"}},
		{"no such directory", map[string]any{"path": filepath.Join(dir, "nope", "c.jsonl")}, []string{"path: directory"}},
		{"path is a directory", map[string]any{"path": dir}, []string{"path: cannot open"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := &exporter{}
			err := e.Configure(context.Background(), tc.cfg)
			defer e.Shutdown(context.Background())
			if tc.fields == nil {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var ce *plugins.ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("err = %v, want a *plugins.ConfigError", err)
			}
			if len(ce.Fields) != len(tc.fields) {
				t.Fatalf("fields = %v, want %d", ce.Fields, len(tc.fields))
			}
			for _, want := range tc.fields {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("%v does not contain %q", err, want)
				}
			}
		})
	}
}

func TestExportAppendsOneLinePerSpan(t *testing.T) {
	path := filepath.Join(t.TempDir(), "spans.jsonl")
	e := &exporter{}
	if err := e.Configure(context.Background(), map[string]any{"path": path}); err != nil {
		t.Fatal(err)
	}
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "agent-os")
	ss := rs.ScopeSpans().AppendEmpty()
	ss.Scope().SetName("agno")
	for i, name := range []string{"Agent.run", "OpenAIChat.invoke"} {
		sp := ss.Spans().AppendEmpty()
		sp.SetName(name)
		sp.SetTraceID(pcommon.TraceID{1})
		sp.SetSpanID(pcommon.SpanID{byte(i + 1)})
		sp.Status().SetCode(ptrace.StatusCodeError)
		sp.Status().SetMessage("rate limited")
		sp.Attributes().PutInt("gen_ai.usage.output_tokens", 12)
	}
	for range 2 { // two batches append
		if err := e.Export(context.Background(), td); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(lines) != 4 {
		t.Fatalf("%d lines, want 4:\n%s", len(lines), b)
	}
	var l line
	if err := json.Unmarshal([]byte(lines[1]), &l); err != nil {
		t.Fatal(err)
	}
	if l.Name != "OpenAIChat.invoke" || l.SpanID != "0200000000000000" || l.TraceID != "01000000000000000000000000000000" ||
		l.StatusCode != "Error" || l.StatusMessage != "rate limited" || l.Scope != "agno" ||
		l.Resource["service.name"] != "agent-os" || l.Attributes["gen_ai.usage.output_tokens"] != float64(12) {
		t.Fatalf("line = %+v", l)
	}
}
