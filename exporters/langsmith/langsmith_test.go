package langsmith

import (
	"context"
	"testing"

	"github.com/kern-agents/trace-gateway/exporters/internal/fixture"
	"github.com/kern-agents/trace-gateway/exporters/internal/otlptest"
	"github.com/kern-agents/trace-gateway/plugins"
)

const absent = otlptest.Absent

func configure(t testing.TB, raw map[string]any) plugins.Exporter {
	t.Helper()
	exp := New()
	if err := exp.Configure(context.Background(), raw); err != nil {
		t.Fatalf("configure: %v", err)
	}
	t.Cleanup(func() { _ = exp.Shutdown(context.Background()) })
	return exp
}

var wantAgentRun = map[string]map[string]string{
	fixture.TeamRun: {
		keyKind: "chain", keyInputValue: "Plan a day in Lisbon", keyOutputValue: "Here is your plan",
		keyMetadata + "session_id": fixture.SessionID, keyMetadata + "user_id": fixture.UserID,
		keyMetadata + "run_id": fixture.TeamRunID, keyMetadata + "team_id": fixture.TeamID,
		keyMetadata + "run_kind": "team", keyMetadata + "model": fixture.TeamModel, keyModel: absent,
	},
	fixture.PreHook: {keyKind: "chain", keyMetadata + "hook_name": "validate_input",
		keyMetadata + "session_id": fixture.SessionID, keyMetadata + "thread_id": fixture.SessionID},
	fixture.Delegation: {keyKind: "chain", keyMetadata + "delegation_member": fixture.AgentID, keyMetadata + "delegation_mode": "coordinate"},
	fixture.MemberRun: {
		keyKind: "chain", keyMetadata + "run_id": fixture.MemberRunID, keyMetadata + "agent_id": fixture.AgentID,
		keyMetadata + "user_id": fixture.UserID,
	},
	fixture.LLM: {
		keyKind: "llm", keyModel: fixture.LLMModel, keyOperation: "chat",
		keyInputTokens: "120", keyOutputTokens: "45", keyTotalTokens: "165", keyTemperature: "0.2",
		keyPrompt: fixture.LLMInput, keyCompletion: fixture.LLMOutput, keyInputValue: absent,
		keyMetadata + "run_id": fixture.TeamRunID, fixture.SenderKey: fixture.SenderValue,
	},
	fixture.Tool: {keyKind: "tool", keyToolName: fixture.Tool, keyInputValue: fixture.ToolArgs, keyOutputValue: absent},
	fixture.Retrieval: {
		keyKind: "retriever", keyInputValue: fixture.Query,
		keyDocuments + "0.document.content": "Take tram 28", keyDocuments + "0.document.metadata": `{"id":"doc-1","score":0.91}`,
		keyDocuments + "1.document.content": "Try pastel de nata", keyDocuments + "1.document.metadata": `{"id":"doc-2","score":0.87}`,
		keyMetadata + "vector_store": fixture.VectorStore, keyMetadata + "retrieval_k": "2",
	},
	fixture.Embedding: {keyKind: "embedding", keyModel: "text-embedding-3-small", keyOperation: "embeddings", keyInputTokens: "4", keyInputValue: fixture.Query},
	fixture.PostHook:  {keyKind: "chain", keyMetadata + "hook_name": "redact_output"},
}

func TestMapAgentRun(t *testing.T) {
	in := fixture.AgentRun()
	out := Map(in)
	otlptest.ExpectAttrs(t, out, wantAgentRun)
	otlptest.ExpectEvent(t, out, fixture.Tool, "exception", map[string]string{
		"exception.type": fixture.ExcType, "exception.message": fixture.ExcMessage,
	})
	if !otlptest.Same(in, fixture.AgentRun()) {
		t.Fatal("Map modified its input")
	}
}

func TestExportAgentRun(t *testing.T) {
	srv := otlptest.NewHTTP(t)
	exp := configure(t, map[string]any{"endpoint": srv.URL, "api_key": "lsv2_pt_x", "project": "agents-prod"})
	if err := exp.Export(context.Background(), fixture.AgentRun()); err != nil {
		t.Fatalf("export: %v", err)
	}
	reqs := srv.Requests()
	if len(reqs) != 1 {
		t.Fatalf("want 1 request, got %d", len(reqs))
	}
	r := reqs[0]
	if r.Method != "POST" || r.Path != "/otel/v1/traces" {
		t.Fatalf("got %s %s", r.Method, r.Path)
	}
	for k, want := range map[string]string{
		"x-api-key": "lsv2_pt_x", "Langsmith-Project": "agents-prod",
		"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip",
	} {
		if got := r.Header.Get(k); got != want {
			t.Errorf("header %s = %q, want %q", k, got, want)
		}
	}
	otlptest.ExpectAttrs(t, r.Traces, wantAgentRun)
	otlptest.ExpectEvent(t, r.Traces, fixture.Tool, "exception", map[string]string{"exception.type": fixture.ExcType})
}

func TestNoProjectHeaderByDefault(t *testing.T) {
	srv := otlptest.NewHTTP(t)
	exp := configure(t, map[string]any{"endpoint": srv.URL + "/api/v1", "api_key": "k"})
	if err := exp.Export(context.Background(), fixture.Many(1)); err != nil {
		t.Fatal(err)
	}
	r := srv.Requests()[0]
	if r.Path != "/api/v1/otel/v1/traces" {
		t.Fatalf("self-hosted path = %q", r.Path)
	}
	if _, ok := r.Header["Langsmith-Project"]; ok {
		t.Fatal("Langsmith-Project sent without a project")
	}
}

func TestErrors(t *testing.T) {
	otlptest.RunHTTPErrorSuite(t, func(t testing.TB, base string) plugins.Exporter {
		return configure(t, map[string]any{"endpoint": base, "api_key": "k"})
	})
}

func TestConfig(t *testing.T) {
	otlptest.RunConfigCases(t, func(raw map[string]any) error { _, err := Parse(raw); return err }, []otlptest.ConfigCase{
		{Name: "defaults", Raw: map[string]any{"api_key": "k"}},
		{Name: "eu region", Raw: map[string]any{"api_key": "k", "region": "eu", "project": "p"}},
		{Name: "missing api key", Raw: map[string]any{"project": "p"}, Fields: []string{"api_key"}},
		{Name: "unknown region", Raw: map[string]any{"api_key": "k", "region": "mars"}, Fields: []string{"region"}},
		{Name: "endpoint and region", Raw: map[string]any{"api_key": "k", "region": "eu", "endpoint": "https://x"}, Fields: []string{"region"}},
		{Name: "bad endpoint", Raw: map[string]any{"api_key": "k", "endpoint": "api.smith.langchain.com"}, Fields: []string{"endpoint"}},
		{Name: "project not a string", Raw: map[string]any{"api_key": "k", "project": []any{"a"}}, Fields: []string{"project"}},
		{Name: "unknown key", Raw: map[string]any{"api_key": "k", "workspace": "w"}, Fields: []string{"workspace"}},
	})
}

func TestTracesURL(t *testing.T) {
	for endpoint, want := range map[string]string{
		"https://api.smith.langchain.com":            "https://api.smith.langchain.com/otel/v1/traces",
		"https://eu.api.smith.langchain.com/otel":    "https://eu.api.smith.langchain.com/otel/v1/traces",
		"https://langsmith.example.com/api/v1":       "https://langsmith.example.com/api/v1/otel/v1/traces",
		"https://langsmith.example.com/api/v1/otel/": "https://langsmith.example.com/api/v1/otel/v1/traces",
	} {
		c, err := Parse(map[string]any{"endpoint": endpoint, "api_key": "k"})
		if err != nil {
			t.Fatal(err)
		}
		if got := c.TracesURL(); got != want {
			t.Errorf("endpoint %q: got %q, want %q", endpoint, got, want)
		}
	}
}
