package semantics

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"reflect"
	"strings"
	"testing"
)

type annotateCase struct {
	name     string
	info     Info
	attrs    map[string]any
	wantType string
	wantKind string
	want     map[string]any // subset of the resulting kern.* keys
	absent   []string       // kern.* keys that must not be written
}

func errorEvent(typ, msg string) []Event {
	return []Event{{Name: "exception", Attributes: map[string]any{
		"exception.type": typ, "exception.message": msg, "exception.stacktrace": "Traceback ...",
	}}}
}

var annotateCases = []annotateCase{
	// --- OpenInference, as openinference-instrumentation-agno emits it ---
	{
		name: "openinference agno agent run",
		info: Info{Name: "Finance_Agent.run", StatusCode: "OK"},
		attrs: map[string]any{
			"openinference.span.kind": "AGENT",
			"graph.node.id":           "7f1c",
			"graph.node.name":         "Finance Agent",
			"agent.name":              "Finance Agent",
			"agno.agent":              "Finance Agent",
			"agno.agent.id":           "finance-agent",
			"agno.tools":              []any{"get_stock_price"},
			"user.id":                 "user-17",
			"session.id":              "sess-4",
			"agno.run.id":             "run-abc",
			"input.value":             "What is NVDA trading at?",
			"output.value":            "NVDA is at 120 USD.",
			"output.mime_type":        "application/json",
		},
		wantType: TypeRun, wantKind: RunAgent,
		want: map[string]any{
			KeyRunID: "run-abc", KeySessionID: "sess-4", KeyUserID: "user-17",
			KeyAgentID: "finance-agent",
			KeyInput:   "What is NVDA trading at?", KeyOutput: "NVDA is at 120 USD.",
		},
		absent: []string{KeyTeamID, KeyInputTokens, KeyExceptionType},
	},
	{
		name: "openinference agno team run",
		info: Info{Name: "Research_Team.run"},
		attrs: map[string]any{
			"openinference.span.kind": "AGENT",
			"agno.team":               "Research Team",
			"agno.team.id":            "research-team",
			"session.id":              "sess-1",
		},
		wantType: TypeRun, wantKind: RunTeam,
		want:   map[string]any{KeyTeamID: "research-team", KeySessionID: "sess-1"},
		absent: []string{KeyAgentID},
	},
	{
		name: "openinference agno workflow run",
		info: Info{Name: "Blog_Post_Workflow.run"},
		attrs: map[string]any{
			"openinference.span.kind":   "CHAIN",
			"graph.node.name":           "Blog Post Workflow",
			"agno.workflow.steps_count": int64(3),
			"agno.workflow.steps":       []any{"research", "write", "review"},
			"input.value":               "Write about OTel",
		},
		wantType: TypeRun, wantKind: RunWorkflow,
		want: map[string]any{KeyInput: "Write about OTel"},
	},
	{
		name: "openinference workflow step is not a run",
		info: Info{Name: "research.run"},
		attrs: map[string]any{
			"openinference.span.kind": "CHAIN",
			"agno.step.type":          "agent",
			"agno.step.agent_name":    "Researcher",
		},
		wantType: TypeOther,
		absent:   []string{KeyRunKind},
	},
	{
		name: "openinference llm with flattened messages and tool calls",
		info: Info{Name: "OpenAIChat.invoke", Kind: "INTERNAL"},
		attrs: map[string]any{
			"openinference.span.kind":                                                 "LLM",
			"llm.model_name":                                                          "gpt-4o-mini",
			"llm.provider":                                                            "OpenAI",
			"llm.invocation_parameters":                                               `{"temperature": 0.2, "max_tokens": 512}`,
			"llm.token_count.prompt":                                                  int64(120),
			"llm.token_count.completion":                                              int64(30),
			"llm.token_count.total":                                                   int64(150),
			"llm.input_messages.0.message.role":                                       "system",
			"llm.input_messages.0.message.content":                                    "You are a finance agent.",
			"llm.input_messages.1.message.role":                                       "user",
			"llm.input_messages.1.message.content":                                    "Price of NVDA?",
			"llm.output_messages.0.message.role":                                      "assistant",
			"llm.output_messages.0.message.tool_calls.0.tool_call.id":                 "call_1",
			"llm.output_messages.0.message.tool_calls.0.tool_call.function.name":      "get_stock_price",
			"llm.output_messages.0.message.tool_calls.0.tool_call.function.arguments": `{"symbol":"NVDA"}`,
			"llm.output_messages.0.message.tool_calls.1.tool_call.function.name":      "get_news",
			"llm.output_messages.0.message.tool_calls.1.tool_call.function.arguments": `{"q":"NVDA"}`,
			"session.id": "sess-4",
		},
		wantType: TypeLLM,
		want: map[string]any{
			KeyModel: "gpt-4o-mini", KeyInputTokens: int64(120), KeyOutputTokens: int64(30), KeyTotalTokens: int64(150),
			KeyTemperature: 0.2, KeySessionID: "sess-4",
			KeyToolCalls: []any{
				map[string]any{"name": "get_stock_price", "arguments": `{"symbol":"NVDA"}`, "id": "call_1"},
				map[string]any{"name": "get_news", "arguments": `{"q":"NVDA"}`},
			},
			KeyInput:  `[{"content":"You are a finance agent.","role":"system"},{"content":"Price of NVDA?","role":"user"}]`,
			KeyOutput: `[{"role":"assistant"}]`,
		},
	},
	{
		name: "openinference llm with input.value prefers it over flattened messages",
		info: Info{Name: "Claude.invoke"},
		attrs: map[string]any{
			"openinference.span.kind":                                       "LLM",
			"input.value":                                                   `{"messages":[{"role":"user","content":"hi"}]}`,
			"llm.input_messages.0.message.role":                             "user",
			"llm.input_messages.0.message.content":                          "hi",
			"llm.output_messages.0.message.contents.0.message_content.text": "hello",
			"llm.output_messages.0.message.contents.1.message_content.text": "there",
			"llm.output_messages.0.message.role":                            "assistant",
		},
		wantType: TypeLLM,
		want: map[string]any{
			KeyInput:  `{"messages":[{"role":"user","content":"hi"}]}`,
			KeyOutput: `[{"content":"hello\nthere","role":"assistant"}]`,
		},
		absent: []string{KeyTotalTokens, KeyToolCalls, KeyTemperature},
	},
	// --- OTel GenAI semantic conventions ---
	{
		name: "genai chat with string and float tokens and tool_call parts",
		info: Info{Name: "chat gpt-4o", Kind: "CLIENT"},
		attrs: map[string]any{
			"gen_ai.operation.name":      "chat",
			"gen_ai.provider.name":       "openai",
			"gen_ai.request.model":       "gpt-4o",
			"gen_ai.response.model":      "gpt-4o-2024-08-06",
			"gen_ai.request.temperature": 0.7,
			"gen_ai.usage.input_tokens":  "42",
			"gen_ai.usage.output_tokens": 7.0,
			"gen_ai.conversation.id":     "conv-9",
			"gen_ai.input.messages":      `[{"role":"user","parts":[{"type":"text","content":"Weather in Paris?"}]}]`,
			"gen_ai.output.messages":     `[{"role":"assistant","parts":[{"type":"tool_call","id":"call_VSP","name":"get_weather","arguments":{"location":"Paris"}}],"finish_reason":"tool_call"}]`,
		},
		wantType: TypeLLM,
		want: map[string]any{
			KeyModel: "gpt-4o", KeyInputTokens: int64(42), KeyOutputTokens: int64(7), KeyTotalTokens: int64(49),
			KeyTemperature: 0.7, KeySessionID: "conv-9",
			KeyToolCalls: []any{map[string]any{"name": "get_weather", "arguments": `{"location":"Paris"}`, "id": "call_VSP"}},
			KeyInput:     `[{"role":"user","parts":[{"type":"text","content":"Weather in Paris?"}]}]`,
		},
	},
	{
		name: "genai legacy prompt/completion tokens and flattened completion tool calls",
		info: Info{Name: "openai.chat"},
		attrs: map[string]any{
			"gen_ai.operation.name":                      "text_completion",
			"gen_ai.request.model":                       "gpt-3.5-turbo-instruct",
			"gen_ai.usage.prompt_tokens":                 int64(10),
			"gen_ai.usage.completion_tokens":             int64(5),
			"gen_ai.prompt.0.role":                       "user",
			"gen_ai.prompt.0.content":                    "Say hi",
			"gen_ai.completion.0.role":                   "assistant",
			"gen_ai.completion.0.tool_calls.0.name":      "lookup",
			"gen_ai.completion.0.tool_calls.0.arguments": `{"k":1}`,
		},
		wantType: TypeLLM,
		want: map[string]any{
			KeyInputTokens: int64(10), KeyOutputTokens: int64(5), KeyTotalTokens: int64(15),
			KeyToolCalls: []any{map[string]any{"name": "lookup", "arguments": `{"k":1}`}},
			KeyInput:     `[{"content":"Say hi","role":"user"}]`,
		},
	},
	{
		name: "genai generate_content counts as llm",
		info: Info{Name: "generate_content gemini-2.0-flash"},
		attrs: map[string]any{
			"gen_ai.operation.name": "generate_content",
			"gen_ai.request.model":  "gemini-2.0-flash",
		},
		wantType: TypeLLM,
		want:     map[string]any{KeyModel: "gemini-2.0-flash"},
	},
	{
		name: "genai execute_tool failing with exception event",
		info: Info{
			Name: "execute_tool get_weather", Kind: "INTERNAL", StatusCode: "ERROR", StatusMessage: "timeout",
			Events: errorEvent("httpx.ReadTimeout", "weather API timed out after 10s"),
		},
		attrs: map[string]any{
			"gen_ai.operation.name":      "execute_tool",
			"gen_ai.tool.name":           "get_weather",
			"gen_ai.tool.call.id":        "call_VSP",
			"gen_ai.tool.call.arguments": `{"location":"Paris"}`,
			"error.type":                 "timeout",
		},
		wantType: TypeTool,
		want: map[string]any{
			KeyToolName: "get_weather", KeyToolArguments: `{"location":"Paris"}`, KeyInput: `{"location":"Paris"}`,
			KeyExceptionType: "httpx.ReadTimeout", KeyExceptionMessage: "weather API timed out after 10s",
		},
		absent: []string{KeyToolResult},
	},
	{
		name: "openinference tool failing with status message only",
		info: Info{Name: "get_stock_price", StatusCode: "ERROR", StatusMessage: "symbol not found: XYZ"},
		attrs: map[string]any{
			"openinference.span.kind": "TOOL",
			"tool.name":               "get_stock_price",
			"tool.parameters":         `{"symbol":"XYZ"}`,
			"input.value":             `{"symbol": "XYZ"}`,
			"output.value":            "symbol not found: XYZ",
		},
		wantType: TypeTool,
		want: map[string]any{
			KeyToolName: "get_stock_price", KeyToolArguments: `{"symbol": "XYZ"}`,
			KeyToolResult: "symbol not found: XYZ", KeyExceptionMessage: "symbol not found: XYZ",
		},
		absent: []string{KeyExceptionType},
	},
	{
		name:     "openinference tool named only by span",
		info:     Info{Name: "duckduckgo_search"},
		attrs:    map[string]any{"openinference.span.kind": "TOOL", "output.value": "3 results"},
		wantType: TypeTool,
		want:     map[string]any{KeyToolName: "duckduckgo_search", KeyToolResult: "3 results"},
	},
	// --- team delegation ---
	{
		name: "openinference delegation tool",
		info: Info{Name: "delegate_task_to_member"},
		attrs: map[string]any{
			"openinference.span.kind": "TOOL",
			"tool.name":               "delegate_task_to_member",
			"input.value":             `{"member_id": "web-agent", "task": "find sources"}`,
			"output.value":            "3 sources found",
		},
		wantType: TypeDelegation,
		want: map[string]any{
			KeyDelegationMember: "web-agent", KeyDelegationMode: "coordinate",
			KeyInput: `{"member_id": "web-agent", "task": "find sources"}`, KeyOutput: "3 sources found",
		},
		absent: []string{KeyToolName},
	},
	{
		name: "agno delegation keys win over tool arguments",
		info: Info{Name: "execute_tool transfer_task_to_member"},
		attrs: map[string]any{
			"gen_ai.operation.name":      "execute_tool",
			"gen_ai.tool.name":           "transfer_task_to_member",
			"gen_ai.tool.call.arguments": `{"member_id":"x"}`,
			"agno.team.member":           "Web Researcher",
			"agno.team.mode":             "Route",
		},
		wantType: TypeDelegation,
		want:     map[string]any{KeyDelegationMember: "Web Researcher", KeyDelegationMode: "route"},
	},
	// --- hooks ---
	{
		name: "agno pre hook",
		info: Info{Name: "pre_hook validate_input"},
		attrs: map[string]any{
			"agno.hook.type": "pre",
			"agno.hook.name": "validate_input",
			"input.value":    "my card is 4111 1111 1111 1111",
			"output.value":   "my card is [REDACTED]",
		},
		wantType: TypePreHook,
		want: map[string]any{
			KeyHookName: "validate_input", KeyInput: "my card is 4111 1111 1111 1111", KeyOutput: "my card is [REDACTED]",
		},
	},
	{
		name:     "post hook by span name only",
		info:     Info{Name: "post_hook: redact_output"},
		attrs:    map[string]any{"agno.hook.output": "done"},
		wantType: TypePostHook,
		want:     map[string]any{KeyHookName: "redact_output", KeyOutput: "done"},
	},
	{
		name:     "hook type beats openinference kind",
		info:     Info{Name: "OutputGuard"},
		attrs:    map[string]any{"agno.hook.type": "POST", "openinference.span.kind": "GUARDRAIL"},
		wantType: TypePostHook,
		want:     map[string]any{KeyHookName: "OutputGuard"},
	},
	{
		name:     "openinference guardrail is a pre hook",
		info:     Info{Name: "PIIDetectionGuardrail"},
		attrs:    map[string]any{"openinference.span.kind": "GUARDRAIL", "input.value": "hello"},
		wantType: TypePreHook,
		want:     map[string]any{KeyHookName: "PIIDetectionGuardrail", KeyInput: "hello"},
	},
	// --- retrieval ---
	{
		name: "openinference retriever with flattened documents",
		info: Info{Name: "Knowledge.search"},
		attrs: map[string]any{
			"openinference.span.kind":                 "RETRIEVER",
			"input.value":                             "refund policy",
			"retrieval.documents.1.document.id":       "doc-2",
			"retrieval.documents.1.document.score":    0.71,
			"retrieval.documents.1.document.content":  "Refunds take 5 days.",
			"retrieval.documents.0.document.id":       "doc-1",
			"retrieval.documents.0.document.score":    "0.93",
			"retrieval.documents.0.document.content":  "Refunds within 30 days.",
			"retrieval.documents.0.document.metadata": `{"source":"faq.pdf"}`,
		},
		wantType: TypeRetrieval,
		want: map[string]any{
			KeyRetrievalQuery: "refund policy", KeyInput: "refund policy",
			KeyRetrievalDocuments: []any{
				map[string]any{"id": "doc-1", "content": "Refunds within 30 days.", "score": 0.93},
				map[string]any{"id": "doc-2", "content": "Refunds take 5 days.", "score": 0.71},
			},
			KeyRetrievalScores: []any{0.93, 0.71},
		},
		absent: []string{KeyRetrievalK, KeyRetrievalVectorStore},
	},
	{
		name: "genai retrieval",
		info: Info{Name: "retrieval kb-products", Kind: "CLIENT"},
		attrs: map[string]any{
			"gen_ai.operation.name":       "retrieval",
			"gen_ai.data_source.id":       "pgvector:products",
			"gen_ai.request.top_k":        5.0,
			"gen_ai.retrieval.query.text": "waterproof jacket",
			"gen_ai.retrieval.documents":  `[{"id":"p1","score":0.9},{"id":"p2","score":0.8}]`,
		},
		wantType: TypeRetrieval,
		want: map[string]any{
			KeyRetrievalQuery: "waterproof jacket", KeyRetrievalVectorStore: "pgvector:products", KeyRetrievalK: int64(5),
			KeyRetrievalDocuments: []any{map[string]any{"id": "p1", "score": 0.9}, map[string]any{"id": "p2", "score": 0.8}},
			KeyRetrievalScores:    []any{0.9, 0.8},
		},
	},
	{
		name: "openinference reranker",
		info: Info{Name: "rerank"},
		attrs: map[string]any{
			"openinference.span.kind":                    "RERANKER",
			"reranker.query":                             "jacket",
			"reranker.top_k":                             int64(2),
			"reranker.model_name":                        "cross-encoder",
			"reranker.output_documents.0.document.id":    "p2",
			"reranker.output_documents.0.document.score": 0.99,
			"reranker.input_documents.0.document.id":     "p1",
			"reranker.input_documents.0.document.score":  0.5,
		},
		wantType: TypeRetrieval,
		want: map[string]any{
			KeyRetrievalQuery: "jacket", KeyRetrievalK: int64(2),
			KeyRetrievalDocuments: []any{map[string]any{"id": "p2", "score": 0.99}},
		},
	},
	{
		name: "agno retrieval keys",
		info: Info{Name: "knowledge.search"},
		attrs: map[string]any{
			"agno.retrieval.query":     "jacket",
			"agno.retrieval.vector_db": "LanceDb",
			"agno.retrieval.k":         "3",
			"agno.retrieval.documents": []any{map[string]any{"id": "a", "content": "x", "score": int64(1)}},
		},
		wantType: TypeRetrieval,
		want: map[string]any{
			KeyRetrievalQuery: "jacket", KeyRetrievalVectorStore: "LanceDb", KeyRetrievalK: int64(3),
			KeyRetrievalDocuments: []any{map[string]any{"id": "a", "content": "x", "score": 1.0}},
		},
	},
	// --- embeddings ---
	{
		name: "genai embeddings",
		info: Info{Name: "embeddings text-embedding-3-small"},
		attrs: map[string]any{
			"gen_ai.operation.name":     "embeddings",
			"gen_ai.request.model":      "text-embedding-3-small",
			"gen_ai.usage.input_tokens": int64(12),
		},
		wantType: TypeEmbedding,
		want:     map[string]any{KeyModel: "text-embedding-3-small", KeyInputTokens: int64(12), KeyTotalTokens: int64(12)},
		absent:   []string{KeyOutputTokens},
	},
	{
		name:     "openinference embedding",
		info:     Info{Name: "OpenAIEmbedder.get_embedding"},
		attrs:    map[string]any{"openinference.span.kind": "EMBEDDING", "embedding.model_name": "bge-small"},
		wantType: TypeEmbedding,
		want:     map[string]any{KeyModel: "bge-small"},
	},
	// --- GenAI agents ---
	{
		name: "genai invoke_agent",
		info: Info{Name: "invoke_agent Support Agent"},
		attrs: map[string]any{
			"gen_ai.operation.name":  "invoke_agent",
			"gen_ai.agent.id":        "support-agent",
			"gen_ai.agent.name":      "Support Agent",
			"gen_ai.request.model":   "claude-sonnet-4",
			"gen_ai.conversation.id": "conv-1",
			"session.id":             "sess-ignored",
			"agno.run.id":            "run-1",
			"user.id":                int64(1234),
		},
		wantType: TypeRun, wantKind: RunAgent,
		want: map[string]any{
			KeyAgentID: "support-agent", KeyModel: "claude-sonnet-4", KeySessionID: "conv-1",
			KeyRunID: "run-1", KeyUserID: "1234",
		},
	},
	{
		name:     "genai invoke_agent for a team",
		info:     Info{Name: "invoke_agent Research Team"},
		attrs:    map[string]any{"gen_ai.operation.name": "invoke_agent", "agno.team.id": "research-team", "team_id": "other"},
		wantType: TypeRun, wantKind: RunTeam,
		want: map[string]any{KeyTeamID: "research-team"},
	},
	{
		name:     "genai invoke_workflow",
		info:     Info{Name: "invoke_workflow etl"},
		attrs:    map[string]any{"gen_ai.operation.name": "invoke_workflow", "agno.workflow.id": "etl", "agent_id": "a"},
		wantType: TypeRun, wantKind: RunWorkflow,
		want: map[string]any{KeyWorkflowID: "etl"},
	},
	{
		name:     "genai create_agent is not a run",
		info:     Info{Name: "create_agent Math Tutor"},
		attrs:    map[string]any{"gen_ai.operation.name": "create_agent", "gen_ai.agent.id": "asst_1"},
		wantType: TypeOther,
		want:     map[string]any{KeyAgentID: "asst_1"},
		absent:   []string{KeyRunKind},
	},
	// --- agno keys and span names only ---
	{
		name: "agno ids only",
		info: Info{Name: "run"},
		attrs: map[string]any{
			"agno.run.id": "r1", "agno.agent.id": "a1", "agno.session.id": "s1", "agno.user.id": "u1",
			"agno.model.id": "gpt-4.1",
		},
		wantType: TypeRun, wantKind: RunAgent,
		want: map[string]any{
			KeyRunID: "r1", KeyAgentID: "a1", KeySessionID: "s1", KeyUserID: "u1", KeyModel: "gpt-4.1",
		},
	},
	{
		name: "plain id keys",
		info: Info{Name: "Team.run"},
		attrs: map[string]any{
			"run_id": "r2", "session_id": "s2", "user_id": "u2", "team_id": "t2", "workflow_id": "w2",
		},
		wantType: TypeRun, wantKind: RunTeam,
		want: map[string]any{
			KeyRunID: "r2", KeySessionID: "s2", KeyUserID: "u2", KeyTeamID: "t2", KeyWorkflowID: "w2",
		},
	},
	{
		name:     "agent run by name only",
		info:     Info{Name: "Agent.arun"},
		attrs:    map[string]any{},
		wantType: TypeRun, wantKind: RunAgent,
	},
	{
		name:     "llm by semconv-shaped name only",
		info:     Info{Name: "chat gpt-4o-mini"},
		attrs:    map[string]any{},
		wantType: TypeLLM,
	},
	{
		name:     "tool by semconv-shaped name only",
		info:     Info{Name: "execute_tool web_search"},
		attrs:    map[string]any{},
		wantType: TypeTool,
		want:     map[string]any{KeyToolName: "web_search"},
	},
	{
		name:     "pre hook by span name only",
		info:     Info{Name: "pre-hook check_budget"},
		attrs:    map[string]any{"input.value": "q"},
		wantType: TypePreHook,
		want:     map[string]any{KeyHookName: "check_budget", KeyInput: "q"},
	},
	{
		name:     "embedding by semconv-shaped name only",
		info:     Info{Name: "embeddings bge-small"},
		attrs:    map[string]any{"gen_ai.usage.input_tokens": int64(4)},
		wantType: TypeEmbedding,
		want:     map[string]any{KeyInputTokens: int64(4)},
	},
	{
		name:     "agent run by semconv-shaped name only",
		info:     Info{Name: "invoke_agent Helper"},
		attrs:    map[string]any{},
		wantType: TypeRun, wantKind: RunAgent,
	},
	{
		name:     "agno streaming model call by name only",
		info:     Info{Name: "OpenAIChat.ainvoke_stream"},
		attrs:    map[string]any{"llm.token_count.prompt": int64(9)},
		wantType: TypeLLM,
		want:     map[string]any{KeyInputTokens: int64(9), KeyTotalTokens: int64(9)},
	},
	{
		name:     "agno model call by name",
		info:     Info{Name: "Gemini.response"},
		attrs:    map[string]any{"agno.usage.input_tokens": int64(3), "agno.usage.output_tokens": int64(4), "agno.usage.total_tokens": "8"},
		wantType: TypeLLM,
		want:     map[string]any{KeyInputTokens: int64(3), KeyOutputTokens: int64(4), KeyTotalTokens: int64(8)},
	},
	{
		name:     "agno tool keys",
		info:     Info{Name: "tool"},
		attrs:    map[string]any{"agno.tool.name": "calc", "agno.tool.arguments": map[string]any{"x": int64(1)}, "agno.tool.result": int64(2)},
		wantType: TypeTool,
		want:     map[string]any{KeyToolName: "calc", KeyToolArguments: `{"x":1}`, KeyToolResult: "2"},
	},
	{
		name:     "convention key stops name heuristics",
		info:     Info{Name: "Agent.run"},
		attrs:    map[string]any{"openinference.span.kind": "UNKNOWN"},
		wantType: TypeOther,
	},
	{
		name:     "unrelated span",
		info:     Info{Name: "HTTP GET", Kind: "CLIENT"},
		attrs:    map[string]any{"http.request.method": "GET"},
		wantType: TypeOther,
		absent:   []string{KeyModel, KeyInput, KeyRunID},
	},
	// --- resource fallback and precedence ---
	{
		name: "resource attributes fill missing ids only",
		info: Info{Name: "Agent.run", Resource: map[string]any{
			"service.name": "agentos", "user.id": "resource-user", "agno.agent.id": "resource-agent",
		}},
		attrs:    map[string]any{"agno.agent.id": "span-agent"},
		wantType: TypeRun, wantKind: RunAgent,
		want: map[string]any{KeyUserID: "resource-user", KeyAgentID: "span-agent"},
	},
	{
		name: "conflicting conventions: semconv first",
		info: Info{Name: "x"},
		attrs: map[string]any{
			"gen_ai.operation.name":      "Chat ",
			"openinference.span.kind":    "TOOL",
			"gen_ai.request.model":       "semconv-model",
			"llm.model_name":             "oi-model",
			"agno.model.id":              "agno-model",
			"gen_ai.usage.input_tokens":  int64(5),
			"llm.token_count.prompt":     int64(500),
			"agno.usage.input_tokens":    int64(5000),
			"gen_ai.request.temperature": "0.5",
			"llm.invocation_parameters":  `{"temperature":1.5}`,
		},
		wantType: TypeLLM,
		want: map[string]any{
			KeyModel: "semconv-model", KeyInputTokens: int64(5), KeyTotalTokens: int64(5), KeyTemperature: 0.5,
		},
	},
	{
		name: "bad token counts are ignored, next source used",
		info: Info{Name: "chat m"},
		attrs: map[string]any{
			"gen_ai.operation.name":          "chat",
			"gen_ai.usage.input_tokens":      int64(-5),
			"gen_ai.usage.prompt_tokens":     "abc",
			"llm.token_count.prompt":         "17",
			"gen_ai.usage.output_tokens":     1e12,
			"gen_ai.usage.completion_tokens": true,
			"llm.token_count.completion":     []any{int64(1)},
			"gen_ai.usage.total_tokens":      "-1",
			"gen_ai.request.temperature":     -3.0,
		},
		wantType: TypeLLM,
		want:     map[string]any{KeyInputTokens: int64(17), KeyTotalTokens: int64(17)},
		absent:   []string{KeyOutputTokens, KeyTemperature},
	},
	{
		name: "wrong types everywhere",
		info: Info{Name: "Agent.run"},
		attrs: map[string]any{
			"gen_ai.operation.name":   int64(3),
			"openinference.span.kind": map[string]any{"a": "b"},
			"session.id":              []any{"s"},
			"user.id":                 map[string]any{},
			"agno.run.id":             2.5,
			"agno.agent.id":           true,
		},
		wantType: TypeOther,
		absent:   []string{KeySessionID, KeyUserID, KeyRunID, KeyAgentID},
	},
	{
		name: "overlong ids are ignored",
		info: Info{Name: "Agent.run"},
		attrs: map[string]any{
			"session.id":    strings.Repeat("s", MaxIDBytes+1),
			"session_id":    "short",
			"agno.agent.id": "agent",
		},
		wantType: TypeRun, wantKind: RunAgent,
		want: map[string]any{KeySessionID: "short"},
	},
}

func TestNormalize(t *testing.T) {
	for _, tc := range annotateCases {
		t.Run(tc.name, func(t *testing.T) {
			attrs := maps.Clone(tc.attrs)
			facts := Normalize(tc.info, attrs)
			if !reflect.DeepEqual(attrs, tc.attrs) {
				t.Fatal("Normalize changed the attributes")
			}
			if got := facts[KeySpanType]; got != tc.wantType {
				t.Fatalf("%s = %v, want %q", KeySpanType, got, tc.wantType)
			}
			if tc.wantKind != "" || facts[KeyRunKind] != nil {
				if got := facts[KeyRunKind]; got != tc.wantKind {
					t.Errorf("%s = %v, want %q", KeyRunKind, got, tc.wantKind)
				}
			}
			for k, want := range tc.want {
				if got, ok := facts[k]; !ok {
					t.Errorf("%s missing, want %#v", k, want)
				} else if !reflect.DeepEqual(got, want) {
					t.Errorf("%s = %#v, want %#v", k, got, want)
				}
			}
			for _, k := range tc.absent {
				if v, ok := facts[k]; ok {
					t.Errorf("%s = %#v, want absent", k, v)
				}
			}
			if _, err := json.Marshal(facts); err != nil {
				t.Errorf("facts do not marshal: %v", err)
			}
			// Every case also annotates within the invariants.
			after := maps.Clone(tc.attrs)
			checkAnnotation(t, tc.attrs, after, Annotate(tc.info, after))
		})
	}
}

// attrKeys are the keys Annotate may write.
var attrKeys = []string{AttrSpanKind, AttrInput, AttrOutput, AttrModelName,
	AttrTokensPrompt, AttrTokensCompletion, AttrTokensTotal, AttrToolName, AttrToolParameters,
	AttrExceptionMessage, AttrSessionID, AttrUserID, AttrWorkflowSteps}

// checkAnnotation asserts that Annotate wrote only AgentOS's keys, reported
// every key it wrote, kept every other sender key as sent, and left AgentOS's
// keys with types its trace view reads without failing.
func checkAnnotation(t *testing.T, before, after map[string]any, wrote []string) {
	t.Helper()
	allowed := map[string]bool{}
	for _, k := range attrKeys {
		allowed[k] = true
	}
	reported := map[string]bool{}
	for _, k := range wrote {
		if !allowed[k] {
			t.Errorf("Annotate wrote %q, which is not a key AgentOS reads", k)
		}
		reported[k] = true
	}
	for k, v := range before {
		got, ok := after[k]
		if reported[k] {
			continue
		}
		if !ok {
			t.Errorf("sender key %q removed", k)
		} else if !reflect.DeepEqual(got, v) && !isNaN(v) {
			t.Errorf("sender key %q changed but not reported: %#v -> %#v", k, v, got)
		}
	}
	for k := range after {
		if _, sent := before[k]; !sent && !reported[k] {
			t.Errorf("Annotate added %q without reporting it", k)
		}
	}
	if k, ok := after[AttrSpanKind].(string); !ok || k == "" {
		t.Errorf("%s = %#v, want a non-empty string on every span", AttrSpanKind, after[AttrSpanKind])
	}
	for _, k := range []string{AttrInput, AttrOutput, AttrExceptionMessage} {
		if v, ok := after[k]; ok && v != nil {
			if _, isStr := v.(string); !isStr {
				t.Errorf("%s = %#v, want a string (AgentOS types it str)", k, v)
			}
		}
	}
	for _, k := range []string{AttrTokensPrompt, AttrTokensCompletion, AttrTokensTotal} {
		switch v := after[k].(type) {
		case nil, int64, int:
		default:
			t.Errorf("%s = %#v, want an integer or null (AgentOS sums it)", k, v)
		}
	}
	if v, ok := after[AttrWorkflowSteps]; ok && v != nil {
		if _, isList := v.([]any); !isList {
			t.Errorf("%s = %#v, want a list", AttrWorkflowSteps, v)
		}
	}
	for _, k := range wrote {
		if s, ok := after[k].(string); ok && len(s) > MaxValueBytes+64 {
			t.Errorf("%s is %d bytes, over the limit", k, len(s))
		}
	}
	for _, k := range wrote {
		if _, err := json.Marshal(after[k]); err != nil {
			t.Errorf("%s does not marshal: %v", k, err)
		}
	}
}

func isNaN(v any) bool { f, ok := v.(float64); return ok && f != f }

func TestClassifyMatchesAnnotate(t *testing.T) {
	for _, tc := range annotateCases {
		typ, kind := Classify(tc.info, tc.attrs)
		if typ != tc.wantType || kind != tc.wantKind {
			t.Errorf("%s: Classify = %q/%q, want %q/%q", tc.name, typ, kind, tc.wantType, tc.wantKind)
		}
	}
}

func TestAnnotateNilMap(t *testing.T) {
	Annotate(Info{Name: "x"}, nil) // must not panic
}

func TestEveryRuleIsExercised(t *testing.T) {
	hit := make([]bool, len(rules))
	for _, tc := range annotateCases {
		s := newView(tc.info, tc.attrs)
		for i := range rules {
			if rules[i].match(s) {
				hit[i] = true
				break
			}
		}
	}
	for i, ok := range hit {
		if !ok {
			t.Errorf("rule %d (%s) is never the first match in the table-driven cases", i+1, rules[i].When)
		}
	}
}

func TestTruncate(t *testing.T) {
	tests := []struct {
		in    string
		limit int
		want  string
	}{
		{"hello", 10, "hello"},
		{"hello", 5, "hello"},
		{"hello world", 5, "hello…[truncated 6 bytes]"},
		{"héllo", 2, "h…[truncated 5 bytes]"}, // never splits the 2-byte é
		// already truncated upstream to the same limit: the marker is kept
		{"hello…[truncated 9000 bytes]", 5, "hello…[truncated 9000 bytes]"},
		{"hello…[truncated 9000 bytes]", 4, "hell…[truncated 26 bytes]"},
	}
	for _, tt := range tests {
		if got := truncate(tt.in, tt.limit); got != tt.want {
			t.Errorf("truncate(%q, %d) = %q, want %q", tt.in, tt.limit, got, tt.want)
		}
	}
}

func TestLongValuesAreTruncated(t *testing.T) {
	long := strings.Repeat("x", MaxValueBytes+100)
	attrs := map[string]any{"openinference.span.kind": "TOOL", "input.value": long}
	got, _ := Normalize(Info{Name: "t"}, attrs)[KeyToolArguments].(string)
	if !strings.HasSuffix(got, "…[truncated 100 bytes]") || len(got) > MaxValueBytes+64 {
		t.Errorf("arguments not truncated as expected: len %d, tail %q", len(got), got[len(got)-30:])
	}
	if attrs["input.value"] != long {
		t.Error("the sender's own value was changed")
	}
}

// TestDocsTableMatchesRules keeps docs/semantics.md's classification table
// identical to the rules the code runs, row for row.
func TestDocsTableMatchesRules(t *testing.T) {
	b, err := os.ReadFile("../../docs/semantics.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	begin, end := strings.Index(doc, "<!-- rules:begin -->"), strings.Index(doc, "<!-- rules:end -->")
	if begin < 0 || end < begin {
		t.Fatal("docs/semantics.md: rules markers not found")
	}
	var rows []string
	for _, line := range strings.Split(doc[begin:end], "\n") {
		if strings.HasPrefix(line, "| ") && !strings.HasPrefix(line, "| #") {
			rows = append(rows, strings.TrimSpace(line))
		}
	}
	rs := Rules()
	if len(rows) != len(rs) {
		t.Fatalf("docs table has %d rows, code has %d rules", len(rows), len(rs))
	}
	for i, r := range rs {
		kind := ""
		if r.Type == TypeRun {
			kind = r.RunKind
		}
		want := fmt.Sprintf("| %d | %s | `%s` | %s |", i+1, r.When, r.Type, kind)
		if strings.Join(strings.Fields(rows[i]), " ") != strings.Join(strings.Fields(want), " ") {
			t.Errorf("row %d differs:\n docs: %s\n code: %s", i+1, rows[i], want)
		}
	}
}

func TestMarshalToolCallsIsJSONMarshal(t *testing.T) {
	odd := "<a&b>\u2028\"\\\x00\xff é"
	tests := []struct {
		name  string
		calls []any
	}{
		{"plain", []any{toolCallObject("f", `{"a":1}`, "c1"), toolCallObject("g", "", ""), toolCallObject("h", "x", "")}},
		{"escapes", []any{toolCallObject(odd, odd, odd)}},
		{"empty name", []any{toolCallObject("", "", "id")}},
		{"empty list", []any{}},
		{"other map", []any{map[string]any{"name": "f", "extra": true}}},
		{"non-string value", []any{map[string]any{"name": 1}}},
		{"empty optional", []any{map[string]any{"name": "f", "id": ""}}},
		{"not a map", []any{"f"}},
	}
	for _, tc := range tests {
		want, wantErr := json.Marshal(tc.calls)
		got, err := marshalToolCalls(tc.calls)
		if string(got) != string(want) || (err == nil) != (wantErr == nil) {
			t.Errorf("%s: got %s, %v; want %s, %v", tc.name, got, err, want, wantErr)
		}
	}
}
