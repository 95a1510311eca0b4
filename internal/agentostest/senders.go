package agentostest

import (
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/kern-agents/trace-gateway/internal/store/storetest"
)

// t0 is when the scenarios' runs start.
var t0 = time.Date(2025, 6, 1, 10, 0, 0, 0, time.UTC)

func ms(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }

// Trace ids of the scenarios.
const (
	teamTrace     = "11111111111111111111111111111111"
	genAITrace    = "22222222222222222222222222222222"
	workflowTrace = "33333333333333333333333333333333"
	hostileTrace  = "44444444444444444444444444444444"
	hostileChain  = "55555555555555555555555555555555"
)

// span is a SentSpan of trace tr that ends OK unless status says otherwise.
func span(tr, id, parent, name string, kind ptrace.SpanKind, start, end int, attrs map[string]any) storetest.SentSpan {
	return storetest.SentSpan{TraceID: tr, SpanID: id, ParentID: parent, Name: name, Kind: kind,
		Start: ms(start), End: ms(end), Status: ptrace.StatusCodeOk, Attrs: attrs}
}

func failed(sp storetest.SentSpan, message string, exc map[string]any) storetest.SentSpan {
	sp.Status, sp.Message = ptrace.StatusCodeError, message
	if exc != nil {
		sp.Events = []storetest.SentEvent{{Name: "exception", Time: sp.End, Attrs: exc}}
	}
	return sp
}

var agentOSResource = map[string]any{"service.name": "agentos", "service.version": "2.9.0", "telemetry.sdk.language": "python"}

// agnoTeam is a team run as AgentOS sends it through the OpenInference Agno
// instrumentor: the team's run, its member agent's run with a model call
// and two tool calls (one fails), and the team leader's model call.
func agnoTeam() []storetest.Sent {
	tr := teamTrace
	ctx := func(m map[string]any) map[string]any {
		m["session.id"], m["user.id"] = "sess-1", "ada"
		return m
	}
	return []storetest.Sent{{
		Resource: agentOSResource, Scope: "openinference.instrumentation.agno", ScopeVersion: "0.1.28",
		Spans: []storetest.SentSpan{
			span(tr, "1000000000000001", "", "Research_Team.run", ptrace.SpanKindInternal, 0, 5000, ctx(map[string]any{
				"openinference.span.kind": "AGENT", "graph.node.id": "n1", "graph.node.name": "Research Team",
				"agent.name": "Research Team", "agno.team": "Research Team", "agno.team.id": "research-team",
				"agno.run.id": "run-team-1", "input.value": "What changed in RAG for code?", "input.mime_type": "text/plain",
				"output.value": "RepoCoder-style iterative retrieval helps most.", "output.mime_type": "application/json",
			})),
			span(tr, "1000000000000002", "1000000000000001", "Researcher.run", ptrace.SpanKindInternal, 100, 3000, ctx(map[string]any{
				"openinference.span.kind": "AGENT", "graph.node.id": "n2", "graph.node.parent_id": "n1",
				"agent.name": "Researcher", "agno.agent": "Researcher", "agno.agent.id": "researcher",
				"agno.run.id": "run-member-1", "input.value": "Find recent RAG-for-code papers.",
				"output.value": "RepoCoder (2023) and RepoFormer (2024).",
			})),
			span(tr, "1000000000000003", "1000000000000002", "OpenAIChat.invoke", ptrace.SpanKindInternal, 200, 1200, ctx(map[string]any{
				"openinference.span.kind": "LLM", "llm.model_name": "gpt-4o-mini", "llm.provider": "OpenAI", "llm.system": "openai",
				"input.mime_type":                   "application/json",
				"input.value":                       `{"messages": [{"role": "user", "content": "Find recent RAG-for-code papers."}]}`,
				"llm.input_messages.0.message.role": "user", "llm.input_messages.0.message.content": "Find recent RAG-for-code papers.",
				"output.value":                          `{"role": "assistant", "content": "RepoCoder (2023) and RepoFormer (2024)."}`,
				"llm.output_messages.0.message.role":    "assistant",
				"llm.output_messages.0.message.content": "RepoCoder (2023) and RepoFormer (2024).",
				"llm.token_count.prompt":                int64(120), "llm.token_count.completion": int64(40),
			})),
			span(tr, "1000000000000004", "1000000000000002", "web_search", ptrace.SpanKindInternal, 1300, 1800, ctx(map[string]any{
				"openinference.span.kind": "TOOL", "tool.name": "web_search", "tool.description": "Search the web.",
				"tool.parameters": `{"query": "RAG for code"}`, "input.value": `{"query": "RAG for code"}`,
				"input.mime_type": "application/json", "output.value": "RepoCoder: repository-level code completion ...",
				"output.mime_type": "text/plain",
			})),
			failed(span(tr, "1000000000000005", "1000000000000002", "read_url", ptrace.SpanKindInternal, 1900, 2000, ctx(map[string]any{
				"openinference.span.kind": "TOOL", "tool.name": "read_url",
				"tool.parameters": `{"url": "https://example.com/x"}`, "input.value": `{"url": "https://example.com/x"}`,
			})), "HTTP 404", map[string]any{"exception.type": "HTTPError", "exception.message": "HTTP 404"}),
			span(tr, "1000000000000006", "1000000000000001", "OpenAIChat.invoke", ptrace.SpanKindInternal, 3100, 4900, ctx(map[string]any{
				"openinference.span.kind": "LLM", "llm.model_name": "gpt-4o", "llm.provider": "OpenAI",
				"input.value":            `{"messages": [{"role": "user", "content": "Summarise the findings."}]}`,
				"output.value":           `{"role": "assistant", "content": "RepoCoder-style iterative retrieval helps most."}`,
				"llm.token_count.prompt": int64(300), "llm.token_count.completion": int64(60), "llm.token_count.total": int64(360),
			})),
		},
	}}
}

// GenAI messages as the OpenTelemetry GenAI semantic conventions write them.
const (
	weatherQuestion = `[{"role":"user","parts":[{"type":"text","content":"Weather in Paris?"}]}]`
	weatherCall     = `[{"role":"assistant","parts":[{"type":"tool_call","id":"call_1","name":"get_weather","arguments":{"city":"Paris"}}],"finish_reason":"tool_call"}]`
	weatherAnswer   = `[{"role":"assistant","parts":[{"type":"text","content":"18°C and sunny."}],"finish_reason":"stop"}]`
)

// genAIAgent is an agent instrumented with the OpenTelemetry GenAI
// conventions only: invoke_agent, two chat calls (current and previous
// attribute names), a tool execution and an embeddings call.
func genAIAgent() []storetest.Sent {
	tr := genAITrace
	return []storetest.Sent{{
		Resource: map[string]any{"service.name": "weather-agent", "telemetry.sdk.language": "go"},
		Scope:    "weather-agent/genai", ScopeVersion: "1.0.0",
		Spans: []storetest.SentSpan{
			span(tr, "2000000000000001", "", "invoke_agent Weather Agent", ptrace.SpanKindClient, 10000, 14000, map[string]any{
				"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "Weather Agent", "gen_ai.agent.id": "asst_weather",
				"gen_ai.conversation.id": "conv-42", "gen_ai.provider.name": "openai", "enduser.id": "u-7",
				"gen_ai.input.messages": weatherQuestion, "gen_ai.output.messages": weatherAnswer,
			}),
			span(tr, "2000000000000002", "2000000000000001", "chat gpt-4o", ptrace.SpanKindClient, 10100, 11000, map[string]any{
				"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o",
				"gen_ai.response.model": "gpt-4o-2024-08-06", "gen_ai.usage.input_tokens": int64(50), "gen_ai.usage.output_tokens": int64(12),
				"gen_ai.input.messages": weatherQuestion, "gen_ai.output.messages": weatherCall,
			}),
			span(tr, "2000000000000003", "2000000000000001", "execute_tool get_weather", ptrace.SpanKindInternal, 11100, 11300, map[string]any{
				"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "get_weather", "gen_ai.tool.call.id": "call_1",
				"gen_ai.tool.call.arguments": `{"city":"Paris"}`, "gen_ai.tool.call.result": `{"temp_c":18,"sky":"sunny"}`,
			}),
			span(tr, "2000000000000004", "2000000000000001", "chat gpt-4o", ptrace.SpanKindClient, 11400, 13800, map[string]any{
				"gen_ai.operation.name": "chat", "gen_ai.system": "openai", "gen_ai.request.model": "gpt-4o",
				"gen_ai.usage.prompt_tokens": int64(80), "gen_ai.usage.completion_tokens": int64(9),
				"gen_ai.prompt.0.role": "user", "gen_ai.prompt.0.content": "Weather in Paris?",
				"gen_ai.completion.0.role": "assistant", "gen_ai.completion.0.content": "18°C and sunny.",
			}),
			span(tr, "2000000000000005", "2000000000000001", "embeddings text-embedding-3-small", ptrace.SpanKindClient, 13850, 13900, map[string]any{
				"gen_ai.operation.name": "embeddings", "gen_ai.request.model": "text-embedding-3-small",
				"gen_ai.usage.input_tokens": int64(7),
			}),
		},
	}}
}

// mixedWorkflow is an agno workflow sent through the OpenInference Agno
// instrumentor whose model calls come from GenAI-conventions
// instrumentations of the model SDKs (other scopes of the same process),
// one of them carrying both conventions.
func mixedWorkflow() []storetest.Sent {
	tr := workflowTrace
	return []storetest.Sent{
		{
			Resource: agentOSResource, Scope: "openinference.instrumentation.agno", ScopeVersion: "0.1.28",
			Spans: []storetest.SentSpan{
				span(tr, "3000000000000001", "", "Content_Workflow.run", ptrace.SpanKindInternal, 20000, 30000, map[string]any{
					"openinference.span.kind": "CHAIN", "agno.workflow.id": "content-wf", "agno.workflow.name": "Content Workflow",
					"agno.run.id": "run-wf-1", "agno.session.id": "sess-wf", "user.id": "bob",
					"agno.workflow.description": "Research, then write.", "agno.workflow.steps_count": int64(2),
					"agno.workflow.step_types": []any{"Step", "Step"}, "input.value": "Write a post about Go generics.",
				}),
				span(tr, "3000000000000002", "3000000000000001", "Researcher.run", ptrace.SpanKindInternal, 20100, 24000, map[string]any{
					"openinference.span.kind": "AGENT", "agno.agent.id": "researcher", "agno.run.id": "run-wf-step-1",
					"input.value": "Write a post about Go generics.", "output.value": "Notes: type parameters, constraints.",
				}),
				span(tr, "3000000000000004", "3000000000000001", "Writer.run", ptrace.SpanKindInternal, 24100, 29900, map[string]any{
					"openinference.span.kind": "AGENT", "agno.agent.id": "writer", "agno.run.id": "run-wf-step-2",
					"input.value": "Notes: type parameters, constraints.", "output.value": "Go generics, explained.",
				}),
			},
		},
		{
			Resource: agentOSResource, Scope: "opentelemetry.instrumentation.openai_v2", ScopeVersion: "2.1b0",
			Spans: []storetest.SentSpan{
				span(tr, "3000000000000003", "3000000000000002", "chat gpt-4o-mini", ptrace.SpanKindClient, 20200, 23900, map[string]any{
					"gen_ai.operation.name": "chat", "gen_ai.system": "openai", "gen_ai.request.model": "gpt-4o-mini",
					"gen_ai.usage.input_tokens": int64(100), "gen_ai.usage.output_tokens": int64(30),
					"gen_ai.input.messages":  `[{"role":"user","parts":[{"type":"text","content":"Research Go generics."}]}]`,
					"gen_ai.output.messages": `[{"role":"assistant","parts":[{"type":"text","content":"Notes: type parameters, constraints."}]}]`,
				}),
			},
		},
		{
			Resource: agentOSResource, Scope: "opentelemetry.instrumentation.anthropic", ScopeVersion: "0.40.0",
			Spans: []storetest.SentSpan{
				span(tr, "3000000000000005", "3000000000000004", "chat claude-3-5-sonnet", ptrace.SpanKindClient, 24200, 29000, map[string]any{
					"gen_ai.operation.name": "chat", "gen_ai.provider.name": "anthropic", "gen_ai.request.model": "claude-3-5-sonnet",
					"gen_ai.usage.input_tokens": int64(200), "gen_ai.usage.output_tokens": int64(400),
				}),
				// Both conventions on one span: what the sender put under
				// the keys AgentOS reads stays; tokens only GenAI carries
				// are added.
				span(tr, "3000000000000006", "3000000000000004", "Claude.invoke", ptrace.SpanKindClient, 29100, 29800, map[string]any{
					"openinference.span.kind": "LLM", "llm.model_name": "claude-3-5-sonnet-latest", "input.value": "Polish the title.",
					"gen_ai.operation.name": "chat", "gen_ai.request.model": "claude-3-5-sonnet",
					"gen_ai.input.messages":     `[{"role":"user","parts":[{"type":"text","content":"Polish the title."}]}]`,
					"gen_ai.usage.input_tokens": int64(5), "gen_ai.usage.output_tokens": int64(6),
				}),
			},
		},
	}
}

// hostile is a client that sends whatever it likes: ids that are not
// strings, span kinds, inputs, outputs and token counts of odd types, NUL
// and invalid UTF-8 in names, keys and values.
func hostile() []storetest.Sent {
	tr, chain := hostileTrace, hostileChain
	return []storetest.Sent{{
		Resource: map[string]any{"service.name": "hostile\x00\xff", "bad\xffkey": "v"},
		Scope:    "hostile\xfe",
		Spans: []storetest.SentSpan{
			span(tr, "4000000000000001", "", "Agent.run\xff", ptrace.SpanKindUnspecified, 40000, 41000, map[string]any{
				"openinference.span.kind": int64(7), "agno.run.id": int64(42), "agno.agent.id": "agent-\x00-x",
				"agno.session.id": map[string]any{"id": "s"}, "session.id": true, "gen_ai.conversation.id": "conv-h",
				"user.id": int64(99), "input.value": map[string]any{"q": "x"}, "output.value": int64(5),
				"bad\xffkey": "a\x00b",
			}),
			span(tr, "4000000000000002", "4000000000000001", "llm call", ptrace.SpanKindClient, 40100, 40500, map[string]any{
				"openinference.span.kind": "llm", "llm.model_name": []any{"a"}, "llm.token_count.prompt": "12",
				"llm.token_count.completion": 3.7, "llm.token_count.total": true, "input.value": "\xff\xfe",
			}),
			failed(span(tr, "4000000000000003", "4000000000000001", "tool", ptrace.SpanKindInternal, 40600, 40900, map[string]any{
				"openinference.span.kind": nil, "tool.name": "t", "exception.message": []any{"boom", int64(1)},
				"output.value": []any{"x"},
			}), "", nil),
			span(chain, "5000000000000001", "", "Flow.run", ptrace.SpanKindInternal, 50000, 51000, map[string]any{
				"openinference.span.kind": "CHAIN", "agno.workflow.id": int64(0), "workflow_id": 3.0,
				"agno.workflow.step_types": int64(5), "agno.workflow.steps_count": "two", "output.value": "None",
			}),
			span(chain, "5000000000000002", "5000000000000001", "Step.run", ptrace.SpanKindInternal, 50100, 50900, map[string]any{
				"openinference.span.kind": "AGENT", "team.id": "t-1", "output.value": []any{"step", "out"},
			}),
		},
	}}
}
