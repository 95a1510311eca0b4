package langfuse

import (
	"context"
	"encoding/base64"
	"testing"

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/kern-agents/trace-gateway/exporters/internal/fixture"
	"github.com/kern-agents/trace-gateway/exporters/internal/otlptest"
)

const absent = otlptest.Absent

// wantAgentRun is what Langfuse must receive for the shared agent run.
var wantAgentRun = map[string]map[string]string{
	fixture.TeamRun: {
		keyType: "agent", keyInput: "Plan a day in Lisbon", keyOutput: "Here is your plan",
		keyModel: absent, keyObsMetadata + "model": fixture.TeamModel,
		keyObsMetadata + "run_kind": "team", keyObsMetadata + "run_id": fixture.TeamRunID,
		keyTraceName: fixture.TeamRun, keyUserID: fixture.UserID, keySessionID: fixture.SessionID,
		keyCompatUserID: fixture.UserID, keyCompatSessionID: fixture.SessionID,
		keyTraceMetadata + "run_id": fixture.TeamRunID, keyTraceMetadata + "team_id": fixture.TeamID,
		keyTraceMetadata + "agent_id": fixture.AgentID, keyLevel: absent,
	},
	fixture.PreHook: {
		keyType: "guardrail", keyObsMetadata + "hook_name": "validate_input",
		keyInput: "Plan a day in Lisbon", keyUserID: fixture.UserID, keyTraceName: fixture.TeamRun,
	},
	fixture.Delegation: {
		keyType: "chain", keyObsMetadata + "delegation_member": fixture.AgentID,
		keyObsMetadata + "delegation_mode": "coordinate", keyInput: "Check the weather in Lisbon",
	},
	fixture.MemberRun: {
		keyType: "agent", keyObsMetadata + "run_kind": "agent", keyObsMetadata + "run_id": fixture.MemberRunID,
		keyObsMetadata + "agent_id": fixture.AgentID, keyObsMetadata + "model": fixture.LLMModel,
		keySessionID: fixture.SessionID, keyUserID: fixture.UserID,
		keyCompatSessionID: fixture.SessionID, keyCompatUserID: fixture.UserID,
	},
	fixture.LLM: {
		keyType: "generation", keyModel: fixture.LLMModel, keyInput: fixture.LLMInput, keyOutput: fixture.LLMOutput,
		keyUsage: `{"input":120,"output":45,"total":165}`, keyModelParams: `{"temperature":0.2}`,
		keyObsMetadata + "tool_calls": `[{"arguments":"{\"city\":\"Lisbon\"}","id":"call_1","name":"get_weather"}]`,
		fixture.SenderKey:             fixture.SenderValue, "gen_ai.system": "openai", keyLevel: absent,
	},
	fixture.Tool: {
		keyType: "tool", keyInput: fixture.ToolArgs, keyOutput: absent,
		keyLevel: "ERROR", keyStatusMessage: fixture.ExcType + ": " + fixture.ExcMessage,
		keyObsMetadata + "tool_name": fixture.Tool, keyObsMetadata + "exception_type": fixture.ExcType,
	},
	fixture.Retrieval: {
		keyType: "retriever", keyInput: fixture.Query,
		keyOutput:                       `[{"content":"Take tram 28","id":"doc-1","score":0.91},{"content":"Try pastel de nata","id":"doc-2","score":0.87}]`,
		keyObsMetadata + "vector_store": fixture.VectorStore, keyObsMetadata + "retrieval_k": "2",
	},
	fixture.Embedding: {
		keyType: "embedding", keyModel: "text-embedding-3-small", keyUsage: `{"input":4,"total":4}`, keyInput: fixture.Query,
	},
	fixture.PostHook: {keyType: "guardrail", keyObsMetadata + "hook_name": "redact_output"},
}

func TestMapAgentRun(t *testing.T) {
	otlptest.ExpectMapped(t, Map, fixture.AgentRun(), wantAgentRun)
}

func TestMapKeepsSenderLangfuseKeys(t *testing.T) {
	in := fixture.AgentRun()
	span, _ := fixture.Find(in, fixture.Tool)
	span.Attributes().PutStr(keyType, "event")
	span.Attributes().PutStr(keyCompatSessionID, "their-session")
	// The sender's user.id: Langfuse prefers langfuse.user.id, which must
	// not contradict it.
	span.Attributes().PutStr(keyUserID, "someone-else")
	otlptest.ExpectAttrs(t, Map(in), map[string]map[string]string{
		fixture.Tool: {
			keyType: "event", keyUserID: "someone-else", keyCompatUserID: "someone-else",
			keyCompatSessionID: "their-session", keySessionID: fixture.SessionID,
		},
	})
}

func TestMapPartialTraceWithoutRoot(t *testing.T) {
	// A batch holding only a child span: no trace name, ids from the span.
	in := fixture.AgentRun()
	in.ResourceSpans().At(0).ScopeSpans().At(0).Spans().RemoveIf(func(s ptrace.Span) bool {
		return s.Name() != fixture.MemberRun
	})
	otlptest.ExpectAttrs(t, Map(in), map[string]map[string]string{
		fixture.MemberRun: {keyTraceName: absent, keySessionID: fixture.SessionID, keyUserID: absent,
			keyCompatSessionID: fixture.SessionID, keyCompatUserID: absent, keyTraceMetadata + "run_id": fixture.MemberRunID},
	})
}

// newServer is a fake Langfuse, as strict as Langfuse's OTel endpoint.
func newServer(t *testing.T) *otlptest.HTTPServer {
	return otlptest.NewHTTP(t, otlptest.LangfuseRules()...)
}

func TestExportAgentRun(t *testing.T) {
	srv := newServer(t)
	exp := otlptest.Configure(t, New(), map[string]any{"host": srv.URL, "public_key": "pk-lf-1", "secret_key": "sk-lf-1"})
	r := otlptest.ExportOnce(t, exp, fixture.AgentRun(), srv.Requests)
	otlptest.ExpectPost(t, r, "/api/public/otel/v1/traces", map[string]string{
		"Authorization":                "Basic " + base64.StdEncoding.EncodeToString([]byte("pk-lf-1:sk-lf-1")),
		"x-langfuse-ingestion-version": "4", "Content-Type": "application/x-protobuf", "Content-Encoding": "gzip",
		// Langfuse takes any SDK name as its own SDKs' traffic.
		"x-langfuse-sdk-name": "", "x-langfuse-sdk-version": "",
	})
	if n := r.Traces.SpanCount(); n != 9 {
		t.Fatalf("got %d spans, want 9", n)
	}
	otlptest.ExpectAttrs(t, r.Traces, wantAgentRun)
}

func TestExtraHeadersOverride(t *testing.T) {
	srv := newServer(t)
	exp := otlptest.Configure(t, New(), map[string]any{
		"host": srv.URL + "/api/public/otel", "public_key": "pk", "secret_key": "sk", "compression": "none",
		"headers": map[string]any{"x-langfuse-ingestion-version": "3", "x-extra": "1"},
	})
	r := otlptest.ExportOnce(t, exp, fixture.Many(1), srv.Requests)
	if r.Path != "/api/public/otel/v1/traces" || r.ContentEncoding != "" ||
		r.Header.Get("x-langfuse-ingestion-version") != "3" || r.Header.Get("x-extra") != "1" {
		t.Fatalf("path %q, encoding %q, headers %v", r.Path, r.ContentEncoding, r.Header)
	}
}

func TestErrors(t *testing.T) {
	otlptest.RunHTTPErrorSuite(t, New, func(base string) map[string]any {
		return map[string]any{"host": base, "public_key": "pk", "secret_key": "sk"}
	}, otlptest.LangfuseRules()...)
}

// TestForbiddenSaysBoth checks Langfuse's 403, which means a suspended
// ingestion as often as keys without access.
func TestForbiddenSaysBoth(t *testing.T) {
	for _, body := range []string{
		`{"message":"Ingestion suspended: Usage threshold exceeded. Please upgrade your plan.","error":"ForbiddenError"}`,
		`{"message":"Access denied"}`,
	} {
		srv := newServer(t)
		srv.SetResponder(func(otlptest.Request) otlptest.Reply { return otlptest.Reply{Status: 403, Body: []byte(body)} })
		exp := otlptest.Configure(t, New(), map[string]any{"host": srv.URL, "public_key": "pk", "secret_key": "sk"})
		err := exp.Export(context.Background(), fixture.Many(2))
		otlptest.ExpectPermanent(t, err)
		otlptest.ExpectMessage(t, err, "check credentials", "suspended ingestion", "usage threshold", "HTTP 403", body[:20])
	}
}

func TestConfig(t *testing.T) {
	keys := func(extra map[string]any) map[string]any {
		return otlptest.Merge(map[string]any{"public_key": "pk", "secret_key": "sk"}, extra)
	}
	otlptest.RunConfigCases(t, Parse, []otlptest.ConfigCase{
		{Name: "defaults", Raw: keys(nil)},
		{Name: "region us", Raw: keys(map[string]any{"region": "US"})},
		{Name: "self-hosted", Raw: keys(map[string]any{"host": "http://langfuse.internal:3000/"})},
		{Name: "missing keys", Raw: map[string]any{}, Fields: []string{"public_key", "secret_key"}},
		{Name: "empty key", Raw: map[string]any{"public_key": "", "secret_key": "sk"}, Fields: []string{"public_key"}},
		{Name: "unknown region", Raw: keys(map[string]any{"region": "mars"}), Fields: []string{"region"}},
		{Name: "host and region", Raw: keys(map[string]any{"region": "us", "host": "https://x"}), Fields: []string{"region"}},
		{Name: "bad host", Raw: keys(map[string]any{"host": "cloud.langfuse.com"}), Fields: []string{"host"}},
		{Name: "bad timeout and unknown key", Raw: keys(map[string]any{"timeout": "10", "secret": "x"}), Fields: []string{"timeout", "secret"}},
	})
}

func TestTracesURL(t *testing.T) {
	for host, want := range map[string]string{
		"https://cloud.langfuse.com":                      "https://cloud.langfuse.com/api/public/otel/v1/traces",
		"https://cloud.langfuse.com/":                     "https://cloud.langfuse.com/api/public/otel/v1/traces",
		"http://localhost:3000/api/public/otel":           "http://localhost:3000/api/public/otel/v1/traces",
		"http://localhost:3000/api/public/otel/v1/traces": "http://localhost:3000/api/public/otel/v1/traces",
		"https://example.com/langfuse":                    "https://example.com/langfuse/api/public/otel/v1/traces",
	} {
		c, err := Parse(map[string]any{"host": host, "public_key": "pk", "secret_key": "sk"})
		if err != nil {
			t.Fatal(err)
		}
		if got := c.TracesURL(); got != want {
			t.Errorf("host %q: got %q, want %q", host, got, want)
		}
	}
	c, _ := Parse(map[string]any{"region": "jp", "public_key": "pk", "secret_key": "sk"})
	if got := c.TracesURL(); got != "https://jp.cloud.langfuse.com/api/public/otel/v1/traces" {
		t.Errorf("region jp: %q", got)
	}
}
