package logfire

import (
	"strings"
	"testing"

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/kern-agents/trace-gateway/exporters/internal/fixture"
	"github.com/kern-agents/trace-gateway/exporters/internal/otlptest"
)

const absent = otlptest.Absent

var wantAgentRun = map[string]map[string]string{
	fixture.TeamRun: {
		keyOperation: "invoke_agent", keyRequestModel: fixture.TeamModel, keyAgentID: fixture.TeamID,
		keyMsg: "team run travel-team", keySpanType: "span", keyConversationID: fixture.SessionID,
		keySessionID: fixture.SessionID, keyUserID: fixture.UserID, keyLevelNum: absent,
	},
	fixture.PreHook:    {keyMsg: "pre_hook validate_input", keyOperation: absent, keyUserID: fixture.UserID},
	fixture.Delegation: {keyMsg: "delegate to weather-agent (coordinate)", keyOperation: absent},
	fixture.MemberRun:  {keyMsg: "agent run weather-agent", keyAgentID: fixture.AgentID, keyOperation: "invoke_agent"},
	fixture.LLM: {
		keyOperation: "chat", keyRequestModel: fixture.LLMModel, keyInputTokens: "120", keyOutputTokens: "45",
		keyTemperature: "0.2", keyMsg: "chat gpt-4o-mini",
		keyInputMessages:  `[{"role":"user","parts":[{"type":"text","content":"Weather in Lisbon?"}]}]`,
		keyOutputMessages: `[{"role":"assistant","parts":[{"type":"text","content":"Calling get_weather"},{"type":"tool_call","id":"call_1","name":"get_weather","arguments":"{\"city\":\"Lisbon\"}"}]}]`,
		fixture.SenderKey: fixture.SenderValue,
	},
	fixture.Tool: {
		keyOperation: "execute_tool", keyToolName: fixture.Tool, keyToolArguments: fixture.ToolArgs, keyToolResult: absent,
		keyMsg:      "execute_tool get_weather failed: TimeoutError: weather API timed out",
		keyLevelNum: "17", keyErrorType: fixture.ExcType,
	},
	fixture.Retrieval: {keyMsg: "retrieval from pgvector: Lisbon travel tips", keyOperation: absent},
	fixture.Embedding: {keyOperation: "embeddings", keyMsg: "embeddings text-embedding-3-small", keyInputTokens: "4"},
	fixture.PostHook:  {keyMsg: "post_hook redact_output"},
}

func TestMapAgentRun(t *testing.T) {
	out := otlptest.ExpectMapped(t, Map, fixture.AgentRun(), wantAgentRun)
	otlptest.ExpectToolException(t, out)
}

func TestInputMessages(t *testing.T) {
	for in, want := range map[string]string{
		"What is the weather?": `[{"role":"user","parts":[{"type":"text","content":"What is the weather?"}]}]`,
		`[{"role":"system","content":"Be brief"},{"role":"user","content":[{"type":"text","text":"hi"}]}]`: `[{"role":"system","parts":[{"type":"text","content":"Be brief"}]},{"role":"user","parts":[{"type":"text","content":"[{\"text\":\"hi\",\"type\":\"text\"}]"}]}]`,
		`{"prompt":"x"}`:          `[{"role":"user","parts":[{"type":"text","content":"{\"prompt\":\"x\"}"}]}]`,
		`[{"content":"no role"}]`: `[{"role":"user","parts":[{"type":"text","content":"[{\"content\":\"no role\"}]"}]}]`,
		"":                        "",
	} {
		if got := InputMessages(in); got != want {
			t.Errorf("InputMessages(%q)\n got %s\nwant %s", in, got, want)
		}
	}
}

func TestExportAgentRun(t *testing.T) {
	srv := otlptest.NewHTTP(t)
	exp := otlptest.Configure(t, New(), map[string]any{"endpoint": srv.URL, "token": "pylf_v1_eu_abc"})
	r := otlptest.ExportOnce(t, exp, fixture.AgentRun(), srv.Requests)
	otlptest.ExpectPost(t, r, "/v1/traces", map[string]string{
		"Authorization": "pylf_v1_eu_abc", "Content-Type": "application/x-protobuf", "Content-Encoding": "gzip",
	})
	otlptest.ExpectAttrs(t, r.Traces, wantAgentRun)
}

func TestErrors(t *testing.T) {
	otlptest.RunHTTPErrorSuite(t, New, func(base string) map[string]any {
		return map[string]any{"endpoint": base, "token": "t"}
	})
}

// TestNoFiveMiBLimit checks that batches and spans over 5 MiB (the target
// Logfire's SDK batches to, not a limit of Logfire's) go as they are.
func TestNoFiveMiBLimit(t *testing.T) {
	const fiveMiB = 5 << 20
	withPayload := func(n, size int) ptrace.Traces {
		td := fixture.Many(n)
		big := strings.Repeat("x", size)
		for _, rs := range td.ResourceSpans().All() {
			for _, ss := range rs.ScopeSpans().All() {
				for _, s := range ss.Spans().All() {
					s.Attributes().PutStr("payload", big)
				}
			}
		}
		return td
	}
	for _, tc := range []struct {
		name string
		td   ptrace.Traces
	}{
		{"a batch over 5 MiB", withPayload(4, fiveMiB/3)},
		{"one span over 5 MiB", withPayload(1, fiveMiB+1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := otlptest.NewHTTP(t)
			exp := otlptest.Configure(t, New(), map[string]any{"endpoint": srv.URL, "token": "t"})
			r := otlptest.ExportOnce(t, exp, tc.td, srv.Requests)
			if r.Traces.SpanCount() != tc.td.SpanCount() || r.ContentEncoding != "gzip" {
				t.Fatalf("one request with %d spans (%q), want all %d gzipped", r.Traces.SpanCount(), r.ContentEncoding, tc.td.SpanCount())
			}
		})
	}
}

func TestConfig(t *testing.T) {
	otlptest.RunConfigCases(t, Parse, []otlptest.ConfigCase{
		{Name: "token only", Raw: map[string]any{"token": "t"}},
		{Name: "region", Raw: map[string]any{"token": "t", "region": "EU"}},
		{Name: "missing token", Raw: map[string]any{"region": "us"}, Fields: []string{"token"}},
		{Name: "unknown region", Raw: map[string]any{"token": "t", "region": "asia"}, Fields: []string{"region"}},
		{Name: "region and endpoint", Raw: map[string]any{"token": "t", "region": "eu", "endpoint": "https://x"}, Fields: []string{"region"}},
		{Name: "bad endpoint", Raw: map[string]any{"token": "t", "endpoint": "logfire-eu.pydantic.dev"}, Fields: []string{"endpoint"}},
		{Name: "unknown key", Raw: map[string]any{"token": "t", "project": "p"}, Fields: []string{"project"}},
	})
}

func TestEndpointResolution(t *testing.T) {
	for _, tc := range []struct {
		raw  map[string]any
		want string
	}{
		{map[string]any{"token": "plain-token"}, "https://logfire-us.pydantic.dev/v1/traces"},
		{map[string]any{"token": "pylf_v1_eu_0123abc"}, "https://logfire-eu.pydantic.dev/v1/traces"},
		{map[string]any{"token": "pylf_v1_us_0123abc"}, "https://logfire-us.pydantic.dev/v1/traces"},
		{map[string]any{"token": "pylf_v1_eu_0123abc", "region": "us"}, "https://logfire-us.pydantic.dev/v1/traces"},
		{map[string]any{"token": "t", "endpoint": "https://logfire.internal/v1/traces"}, "https://logfire.internal/v1/traces"},
	} {
		c, err := Parse(tc.raw)
		if err != nil {
			t.Fatal(err)
		}
		if got := c.TracesURL(); got != tc.want {
			t.Errorf("%v: got %q, want %q", tc.raw, got, tc.want)
		}
	}
}
