package arize

import (
	"testing"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/kern-agents/trace-gateway/exporters/internal/facts"
	"github.com/kern-agents/trace-gateway/exporters/internal/fixture"
	"github.com/kern-agents/trace-gateway/exporters/internal/otlptest"
)

const absent = otlptest.Absent

var wantAgentRun = map[string]map[string]string{
	fixture.TeamRun: {
		keyKind: "AGENT", keyInputValue: "Plan a day in Lisbon", keyInputMime: "text/plain",
		keyOutputValue: "Here is your plan", keySessionID: fixture.SessionID, keyUserID: fixture.UserID,
		keyAgentName: absent, keyModelName: absent,
		keyMetadata: `{"model":"gpt-4o","run_id":"run-42","run_kind":"team","team_id":"travel-team","trace_run_id":"run-42"}`,
	},
	fixture.PreHook: {keyKind: "GUARDRAIL", keyInputValue: "Plan a day in Lisbon", keyUserID: fixture.UserID},
	// The gateway stores a delegation as the tool call it is (what AgentOS
	// shows, and what agno's OpenInference instrumentor sends): its kind
	// wins over the mapping's CHAIN, as any stored kind does.
	fixture.Delegation: {keyKind: "TOOL", keyInputValue: "Check the weather in Lisbon", keyInputMime: "text/plain"},
	fixture.MemberRun:  {keyKind: "AGENT", keyAgentName: fixture.AgentID, keySessionID: fixture.SessionID},
	fixture.LLM: {
		keyKind: "LLM", keyModelName: fixture.LLMModel, keyPromptTokens: "120", keyCompletionToks: "45", keyTotalTokens: "165",
		keyInvocation: `{"temperature":0.2}`, keyInputValue: fixture.LLMInput, keyInputMime: "application/json",
		keyOutputValue: fixture.LLMOutput, keyOutputMime: "text/plain", fixture.SenderKey: fixture.SenderValue,
	},
	fixture.Tool: {keyKind: "TOOL", keyToolName: fixture.Tool, keyInputValue: fixture.ToolArgs, keyInputMime: "application/json", keyOutputValue: absent},
	fixture.Retrieval: {
		keyKind: "RETRIEVER", keyInputValue: fixture.Query, keyOutputValue: absent,
		keyDocuments + "0.document.id": "doc-1", keyDocuments + "0.document.content": "Take tram 28", keyDocuments + "0.document.score": "0.91",
		keyDocuments + "1.document.id": "doc-2", keyDocuments + "1.document.score": "0.87",
	},
	// llm.model_name is stored on embeddings too, for AgentOS.
	fixture.Embedding: {keyKind: "EMBEDDING", keyEmbeddingModel: "text-embedding-3-small", keyPromptTokens: "4", keyModelName: "text-embedding-3-small"},
	fixture.PostHook:  {keyKind: "GUARDRAIL"},
}

func expectProject(t testing.TB, td ptrace.Traces, project string) {
	t.Helper()
	for _, rs := range td.ResourceSpans().All() {
		if got := facts.Text(rs.Resource().Attributes(), KeyProjectName); got != project {
			t.Fatalf("resource %s = %q, want %q", KeyProjectName, got, project)
		}
		if got := facts.Text(rs.Resource().Attributes(), "service.name"); got == "" {
			t.Fatalf("service.name = %q; the sender's resource must be kept", got)
		}
	}
}

// expectEveryKind fails unless every span of td carries an OpenInference
// span kind, as the specification requires, and returns them by span name.
func expectEveryKind(t testing.TB, td ptrace.Traces) map[string]string {
	t.Helper()
	kinds := map[string]string{}
	facts.Each(td, func(_ pcommon.Resource, s ptrace.Span) {
		kind := facts.Text(s.Attributes(), keyKind)
		if kind == "" {
			t.Errorf("span %q has no %s", s.Name(), keyKind)
		}
		kinds[s.Name()] = kind
	})
	return kinds
}

func TestMapUnclassifiedSpans(t *testing.T) {
	in := fixture.Many(4) // spans the gateway could not classify
	empty, _ := fixture.Find(in, "span-1")
	empty.Attributes().PutStr(keyKind, "") // an empty kind is no kind
	sender, _ := fixture.Find(in, "span-2")
	sender.Attributes().PutStr(keyKind, "CHAIN") // the sender's kind wins
	kinds := expectEveryKind(t, otlptest.ExpectMapped(t, Map("p"), in, nil))
	for name, want := range map[string]string{"span-1": "UNKNOWN", "span-2": "CHAIN", "span-3": "UNKNOWN", "span-4": "UNKNOWN"} {
		if kinds[name] != want {
			t.Errorf("%s: kind %q, want %q", name, kinds[name], want)
		}
	}
}

func TestMapAgentRun(t *testing.T) {
	in := fixture.AgentRun()
	in.ResourceSpans().At(0).Resource().Attributes().PutStr(KeyProjectName, "sender-choice")
	out := otlptest.ExpectMapped(t, Map("agents-prod"), in, wantAgentRun)
	otlptest.ExpectToolException(t, out)
	expectProject(t, out, "agents-prod")
}

// TestMapMimeTypes: a value the span holds keeps its MIME type when it has
// one and gets the one of its text when not; a value the mapping derives
// gets its own.
func TestMapMimeTypes(t *testing.T) {
	in := fixture.AgentRun()
	tool, _ := fixture.Find(in, fixture.Tool)
	tool.Attributes().PutStr(keyInputMime, "text/x-sender")
	run, _ := fixture.Find(in, fixture.MemberRun) // input.value and output.value as sent, no MIME type
	run.Attributes().PutStr(keyOutputValue, `{"weather":"sunny"}`)
	otlptest.ExpectAttrs(t, Map("p")(in), map[string]map[string]string{
		fixture.Tool:      {keyInputValue: fixture.ToolArgs, keyInputMime: "text/x-sender"},
		fixture.MemberRun: {keyInputMime: "text/plain", keyOutputValue: `{"weather":"sunny"}`, keyOutputMime: "application/json"},
		fixture.Retrieval: {keyInputMime: "text/plain", keyOutputValue: absent, keyOutputMime: absent},
	})
}

// TestMapLLMMessages: where the gateway stored an LLM hop's text for
// AgentOS (a GenAI sender's structured messages), Phoenix gets the whole
// messages; an OpenInference sender's own input.value stays.
func TestMapLLMMessages(t *testing.T) {
	in := `[{"role":"system","parts":[{"type":"text","content":"Be brief."}]},{"role":"user","parts":[{"type":"text","content":"Weather in Lisbon?"}]}]`
	out := `[{"role":"assistant","parts":[{"type":"text","content":"Sunny."}]}]`
	genAI := fixture.Stored(fixture.One("chat gpt-4o", map[string]any{
		"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o",
		"gen_ai.input.messages": in, "gen_ai.output.messages": out,
	}))
	stored, _ := fixture.Find(genAI, "chat gpt-4o")
	if facts.Text(stored.Attributes(), keyInputValue) != "Weather in Lisbon?" || facts.Text(stored.Attributes(), keyOutputValue) != "Sunny." {
		t.Fatalf("the gateway stores %v; this test expects the text a person reads", stored.Attributes().AsRaw())
	}
	otlptest.ExpectAttrs(t, Map("p")(genAI), map[string]map[string]string{
		"chat gpt-4o": {keyInputValue: in, keyInputMime: "application/json", keyOutputValue: out, keyOutputMime: "application/json"},
	})

	oi := fixture.Stored(fixture.One("OpenAIChat.invoke", map[string]any{
		"openinference.span.kind": "LLM", "input.value": `{"messages":[{"role":"user","content":"hi"}]}`,
		"llm.input_messages.0.message.role": "user", "llm.input_messages.0.message.content": "hi",
	}))
	otlptest.ExpectAttrs(t, Map("p")(oi), map[string]map[string]string{
		"OpenAIChat.invoke": {keyInputValue: `{"messages":[{"role":"user","content":"hi"}]}`, keyInputMime: "application/json"},
	})
}

func TestExportAX(t *testing.T) {
	srv := otlptest.NewGRPC(t)
	exp := otlptest.Configure(t, New(), map[string]any{
		"endpoint": "http://" + srv.Addr + "/v1", "space_id": "U3BhY2U6MQ==", "api_key": "ak-1", "project": "agents-prod",
	})
	r := otlptest.ExportOnce(t, exp, fixture.AgentRun(), srv.Requests)
	otlptest.ExpectMetadata(t, r.Metadata, map[string]string{
		// What Arize's arize-otel SDK sends...
		"authorization": "ak-1", "api_key": "ak-1", "arize-space-id": "U3BhY2U6MQ==", "space_id": "U3BhY2U6MQ==",
		"arize-interface": "otel",
		// ...and the API key name of Arize's documented manual gRPC setup.
		"arize-api-key": "ak-1",
	})
	expectEveryKind(t, r.Traces)
	if r.Compression != "gzip" {
		t.Errorf("compression = %q, want gzip", r.Compression)
	}
	expectProject(t, r.Traces, "agents-prod")
	otlptest.ExpectAttrs(t, r.Traces, wantAgentRun)
}

func TestAXErrors(t *testing.T) {
	otlptest.RunGRPCErrorSuite(t, New, func(addr string) map[string]any {
		return map[string]any{
			"endpoint": "http://" + addr, "space_id": "s", "api_key": "k", "project": "p", "timeout": "5s",
		}
	})
}

func TestAXConfig(t *testing.T) {
	ok := func(extra map[string]any) map[string]any {
		return otlptest.Merge(map[string]any{"space_id": "s", "api_key": "k", "project": "p"}, extra)
	}
	otlptest.RunConfigCases(t, Parse, []otlptest.ConfigCase{
		{Name: "defaults", Raw: ok(nil)},
		{Name: "eu", Raw: ok(map[string]any{"region": "eu"})},
		{Name: "sdk style endpoint", Raw: ok(map[string]any{"endpoint": "https://otlp.arize.com/v1"})},
		{Name: "host:port", Raw: ok(map[string]any{"endpoint": "otlp.arize.com:443"})},
		{Name: "missing everything", Raw: map[string]any{}, Fields: []string{"space_id", "api_key", "project"}},
		{Name: "unknown region", Raw: ok(map[string]any{"region": "apac"}), Fields: []string{"region"}},
		{Name: "endpoint and region", Raw: ok(map[string]any{"region": "eu", "endpoint": "https://x"}), Fields: []string{"region"}},
		{Name: "endpoint without port", Raw: ok(map[string]any{"endpoint": "otlp.arize.com"}), Fields: []string{"endpoint"}},
		{Name: "endpoint with a path", Raw: ok(map[string]any{"endpoint": "https://otlp.arize.com/v1/traces"}), Fields: []string{"endpoint"}},
		{Name: "unknown key", Raw: ok(map[string]any{"model_id": "m"}), Fields: []string{"model_id"}},
	})
}

func TestExportAXUnclassified(t *testing.T) {
	srv := otlptest.NewGRPC(t)
	exp := otlptest.Configure(t, New(), map[string]any{"endpoint": "http://" + srv.Addr, "space_id": "s", "api_key": "k", "project": "p"})
	r := otlptest.ExportOnce(t, exp, fixture.Many(3), srv.Requests)
	for name, kind := range expectEveryKind(t, r.Traces) {
		if kind != "UNKNOWN" {
			t.Errorf("%s: kind %q, want UNKNOWN", name, kind)
		}
	}
}

// newPhoenix is a fake Phoenix, as strict as Phoenix's /v1/traces.
func newPhoenix(t *testing.T) *otlptest.HTTPServer {
	return otlptest.NewHTTP(t, otlptest.PhoenixRules()...)
}

func TestExportPhoenix(t *testing.T) {
	srv := newPhoenix(t)
	exp := otlptest.Configure(t, NewPhoenix(), map[string]any{"endpoint": srv.URL + "/s/my-space", "api_key": "phx_1", "project": "agents"})
	r := otlptest.ExportOnce(t, exp, fixture.AgentRun(), srv.Requests)
	otlptest.ExpectPost(t, r, "/s/my-space/v1/traces", map[string]string{
		"Authorization": "Bearer phx_1", "Content-Type": "application/x-protobuf", "Content-Encoding": "gzip",
	})
	expectProject(t, r.Traces, "agents")
	otlptest.ExpectAttrs(t, r.Traces, wantAgentRun)
	expectEveryKind(t, r.Traces)
}

func TestPhoenixWithoutAPIKey(t *testing.T) {
	srv := newPhoenix(t)
	exp := otlptest.Configure(t, NewPhoenix(), map[string]any{"endpoint": srv.URL + "/v1/traces", "compression": "none"})
	r := otlptest.ExportOnce(t, exp, fixture.Many(2), srv.Requests)
	if r.Path != "/v1/traces" || r.Header.Get("Authorization") != "" || r.ContentEncoding != "" {
		t.Fatalf("path %q, Authorization %q, encoding %q", r.Path, r.Header.Get("Authorization"), r.ContentEncoding)
	}
	expectProject(t, r.Traces, DefaultPhoenixProject)
	for name, kind := range expectEveryKind(t, r.Traces) {
		if kind != "UNKNOWN" {
			t.Errorf("%s: kind %q, want UNKNOWN", name, kind)
		}
	}
}

func TestPhoenixErrors(t *testing.T) {
	otlptest.RunHTTPErrorSuite(t, NewPhoenix, func(base string) map[string]any {
		return map[string]any{"endpoint": base}
	}, otlptest.PhoenixRules()...)
}

func TestPhoenixConfig(t *testing.T) {
	otlptest.RunConfigCases(t, ParsePhoenix, []otlptest.ConfigCase{
		{Name: "defaults", Raw: map[string]any{}},
		{Name: "cloud", Raw: map[string]any{"endpoint": "https://app.phoenix.arize.com/s/me", "api_key": "k", "project": "p"}},
		{Name: "bad endpoint", Raw: map[string]any{"endpoint": "localhost:6006"}, Fields: []string{"endpoint"}},
		{Name: "empty project", Raw: map[string]any{"project": ""}, Fields: []string{"project"}},
		{Name: "space_id is AX only", Raw: map[string]any{"space_id": "s"}, Fields: []string{"space_id"}},
		{Name: "bad compression", Raw: map[string]any{"compression": "br"}, Fields: []string{"compression"}},
	})
}
