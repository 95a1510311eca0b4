package langsmith

import (
	"testing"

	"github.com/kern-agents/trace-gateway/exporters/internal/fixture"
	"github.com/kern-agents/trace-gateway/exporters/internal/otlptest"
)

const absent = otlptest.Absent

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
		keyPrompt: fixture.LLMInput, keyCompletion: fixture.LLMOutput, keyInputValue: absent, keyOutputValue: absent,
		keyMetadata + "run_id": fixture.TeamRunID, fixture.SenderKey: fixture.SenderValue,
	},
	fixture.Tool: {keyKind: "tool", keyToolName: fixture.Tool, keyInputValue: fixture.ToolArgs, keyOutputValue: absent},
	fixture.Retrieval: {
		keyKind: "retriever", keyInputValue: fixture.Query,
		keyDocuments + "0.document.content": "Take tram 28", keyDocuments + "0.document.metadata": `{"id":"doc-1","score":0.91}`,
		keyDocuments + "1.document.content": "Try pastel de nata", keyDocuments + "1.document.metadata": `{"id":"doc-2","score":0.87}`,
		keyMetadata + "vector_store": fixture.VectorStore, keyMetadata + "retrieval_k": "2",
	},
	fixture.Embedding: {keyKind: "embedding", keyModel: "text-embedding-3-small", keyOperation: "embedding", keyInputTokens: "4", keyInputValue: fixture.Query},
	fixture.PostHook:  {keyKind: "chain", keyMetadata + "hook_name": "redact_output"},
}

func TestMapAgentRun(t *testing.T) {
	out := otlptest.ExpectMapped(t, Map, fixture.AgentRun(), wantAgentRun)
	otlptest.ExpectToolException(t, out)
}

// TestMapLLMLeavesOutStoredText: the text the gateway stores for AgentOS
// under input.value / output.value of an LLM span does not compete with the
// prompt and completion LangSmith reads; a sender's own input.value stays.
func TestMapLLMLeavesOutStoredText(t *testing.T) {
	in := `[{"role":"user","parts":[{"type":"text","content":"Weather in Lisbon?"}]}]`
	out := `[{"role":"assistant","parts":[{"type":"text","content":"Sunny."}]}]`
	td := fixture.Stored(fixture.One("chat gpt-4o", map[string]any{
		"gen_ai.operation.name": "chat", "gen_ai.input.messages": in, "gen_ai.output.messages": out,
	}))
	if s, _ := fixture.Find(td, "chat gpt-4o"); s.Attributes().Len() < 4 {
		t.Fatalf("stored %v; this test expects input.value and output.value stored", s.Attributes().AsRaw())
	}
	otlptest.ExpectAttrs(t, Map(td), map[string]map[string]string{
		"chat gpt-4o": {keyPrompt: in, keyCompletion: out, keyInputValue: absent, keyOutputValue: absent},
	})

	td = fixture.Stored(fixture.One("OpenAIChat.invoke", map[string]any{
		"openinference.span.kind": "LLM", "input.value": "hi", "output.value": "hello",
	}))
	otlptest.ExpectAttrs(t, Map(td), map[string]map[string]string{
		"OpenAIChat.invoke": {keyPrompt: "hi", keyCompletion: "hello", keyInputValue: "hi", keyOutputValue: "hello"},
	})
}

func TestExportAgentRun(t *testing.T) {
	srv := otlptest.NewHTTP(t)
	exp := otlptest.Configure(t, New(), map[string]any{"endpoint": srv.URL, "api_key": "lsv2_pt_x", "project": "agents-prod"})
	r := otlptest.ExportOnce(t, exp, fixture.AgentRun(), srv.Requests)
	otlptest.ExpectPost(t, r, "/otel/v1/traces", map[string]string{
		"x-api-key": "lsv2_pt_x", "Langsmith-Project": "agents-prod",
		"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip",
	})
	otlptest.ExpectAttrs(t, r.Traces, wantAgentRun)
	otlptest.ExpectToolException(t, r.Traces)
}

func TestNoProjectHeaderByDefault(t *testing.T) {
	srv := otlptest.NewHTTP(t)
	exp := otlptest.Configure(t, New(), map[string]any{"endpoint": srv.URL + "/api/v1", "api_key": "k"})
	r := otlptest.ExportOnce(t, exp, fixture.Many(1), srv.Requests)
	if r.Path != "/api/v1/otel/v1/traces" {
		t.Fatalf("self-hosted path = %q", r.Path)
	}
	for _, h := range []string{"Langsmith-Project", "X-Tenant-Id"} {
		if _, ok := r.Header[h]; ok {
			t.Fatalf("%s sent without being configured", h)
		}
	}
}

func TestWorkspaceHeader(t *testing.T) {
	srv := otlptest.NewHTTP(t)
	exp := otlptest.Configure(t, New(), map[string]any{
		"endpoint": srv.URL, "api_key": "lsv2_sk_org", "workspace_id": "5b1c7a2e-0000-4000-8000-000000000001",
	})
	r := otlptest.ExportOnce(t, exp, fixture.Many(1), srv.Requests)
	otlptest.ExpectPost(t, r, "/otel/v1/traces", map[string]string{
		"x-api-key": "lsv2_sk_org", "x-tenant-id": "5b1c7a2e-0000-4000-8000-000000000001",
	})
}

func TestErrors(t *testing.T) {
	otlptest.RunHTTPErrorSuite(t, New, func(base string) map[string]any {
		return map[string]any{"endpoint": base, "api_key": "k"}
	})
}

func TestConfig(t *testing.T) {
	otlptest.RunConfigCases(t, Parse, []otlptest.ConfigCase{
		{Name: "defaults", Raw: map[string]any{"api_key": "k"}},
		{Name: "eu region", Raw: map[string]any{"api_key": "k", "region": "eu", "project": "p"}},
		{Name: "missing api key", Raw: map[string]any{"project": "p"}, Fields: []string{"api_key"}},
		{Name: "unknown region", Raw: map[string]any{"api_key": "k", "region": "mars"}, Fields: []string{"region"}},
		{Name: "endpoint and region", Raw: map[string]any{"api_key": "k", "region": "eu", "endpoint": "https://x"}, Fields: []string{"region"}},
		{Name: "bad endpoint", Raw: map[string]any{"api_key": "k", "endpoint": "api.smith.langchain.com"}, Fields: []string{"endpoint"}},
		{Name: "project not a string", Raw: map[string]any{"api_key": "k", "project": []any{"a"}}, Fields: []string{"project"}},
		{Name: "workspace", Raw: map[string]any{"api_key": "k", "workspace_id": "w"}},
		{Name: "empty workspace", Raw: map[string]any{"api_key": "k", "workspace_id": ""}, Fields: []string{"workspace_id"}},
		{Name: "workspace not a string", Raw: map[string]any{"api_key": "k", "workspace_id": 7}, Fields: []string{"workspace_id"}},
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
