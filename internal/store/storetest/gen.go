package storetest

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand"
	"strings"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/kern-agents/trace-gateway/internal/model"
)

// hexID returns n random bytes as lowercase hex.
func hexID(r *rand.Rand, n int) string {
	b := make([]byte, n)
	r.Read(b)
	return hex.EncodeToString(b)
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// AgentResource is the resource of the spans AgentTrace makes.
var AgentResource = map[string]any{
	"service.name": "agentos", "service.version": "2.1.4", "deployment.environment": "prod",
	"host.name": "agentos-7f9c", "telemetry.sdk.language": "python", "telemetry.sdk.name": "opentelemetry",
	"telemetry.sdk.version": "1.27.0",
}

// AgentTrace returns the 11 spans of one agno agent run as the gateway
// stores them: sent by AgentOS through the OpenInference Agno instrumentor
// (agno.* and OpenInference keys) and converted by the gateway's converter.
// The run makes three model calls, calls three tools between them and
// delegates to a member agent that makes one model call; about 0.5–2 KB of
// attributes per span. One tool call in 20 fails.
func AgentTrace(r *rand.Rand, start time.Time) []model.Span {
	traceID := hexID(r, 16)
	sessionID, userID := "sess_"+hexID(r, 8), fmt.Sprintf("user-%d@example.com", r.Intn(1000))
	ctx := map[string]any{"session.id": sessionID, "user.id": userID}
	var spans []SentSpan
	at := start
	add := func(parent, name string, kind ptrace.SpanKind, dur time.Duration, attrs map[string]any) string {
		id := hexID(r, 8)
		for k, v := range ctx {
			attrs[k] = v
		}
		sp := SentSpan{
			TraceID: traceID, SpanID: id, ParentID: parent, Name: name, Kind: kind,
			Start: at, End: at.Add(dur), Status: ptrace.StatusCodeOk, Attrs: attrs,
		}
		if attrs["openinference.span.kind"] == "TOOL" && r.Intn(20) == 0 {
			sp.Status, sp.Message = ptrace.StatusCodeError, "ToolError: upstream returned 502"
			sp.Events = []SentEvent{{Name: "exception", Time: sp.End, Attrs: map[string]any{
				"exception.type": "ToolError", "exception.message": "upstream returned 502",
			}}}
		}
		spans = append(spans, sp)
		at = at.Add(dur / 3)
		return id
	}
	llm := func(in, out int64) map[string]any {
		return map[string]any{
			"openinference.span.kind": "LLM", "llm.model_name": "gpt-4o-mini", "llm.provider": "OpenAI", "llm.system": "openai",
			"llm.invocation_parameters":                 `{"temperature": 0.2}`,
			"input.mime_type":                           "application/json",
			"input.value":                               `{"messages": [{"role": "system", "content": "You are a research assistant. Cite sources."}, {"role": "user", "content": "Summarise the latest results on retrieval-augmented generation for code."}]}`,
			"llm.input_messages.0.message.role":         "system",
			"llm.input_messages.0.message.content":      "You are a research assistant. Cite sources.",
			"llm.input_messages.1.message.role":         "user",
			"llm.input_messages.1.message.content":      "Summarise the latest results on retrieval-augmented generation for code.",
			"output.mime_type":                          "application/json",
			"output.value":                              `{"role": "assistant", "content": "Retrieval-augmented generation for code combines a retriever over repositories with a generator."}`,
			"llm.output_messages.0.message.role":        "assistant",
			"llm.output_messages.0.message.content":     "Retrieval-augmented generation for code combines a retriever over repositories with a generator.",
			"llm.token_count.prompt":                    in,
			"llm.token_count.completion":                out,
			"llm.token_count.prompt_details.cache_read": in / 4,
		}
	}
	tool := func(name, args, result string) map[string]any {
		return map[string]any{
			"openinference.span.kind": "TOOL", "tool.name": name, "tool.description": "Search the web for a query.",
			"tool.parameters": args, "input.mime_type": "application/json", "input.value": args,
			"output.mime_type": "text/plain", "output.value": result,
		}
	}
	total := time.Duration(2000+r.Intn(8000)) * time.Millisecond
	root := add("", "Research_Agent.run", ptrace.SpanKindInternal, total, map[string]any{
		"openinference.span.kind": "AGENT", "graph.node.id": hexID(r, 8), "graph.node.name": "Research Agent",
		"agent.name": "Research Agent", "agno.agent": "Research Agent", "agno.agent.id": "research-agent",
		"agno.run.id": "run_" + hexID(r, 8), "agno.tools": []any{"web_search", "read_url", "search_knowledge_base"},
		"input.value": "Summarise the latest results on RAG for code.", "output.mime_type": "application/json",
		"output.value": "RAG for code pairs a repository retriever with a generator; gains are largest on repository-level completion.",
	})
	add(root, "search_knowledge_base", ptrace.SpanKindInternal, 120*time.Millisecond,
		tool("search_knowledge_base", `{"query": "retrieval augmented generation code"}`, `[{"name": "repocoder.pdf", "content": "RepoCoder iterates retrieval and generation ..."}]`))
	add(root, "OpenAIChat.invoke", ptrace.SpanKindInternal, 900*time.Millisecond, llm(812, 64))
	add(root, "web_search", ptrace.SpanKindInternal, 200*time.Millisecond, tool("web_search", `{"query": "RAG for code 2024", "max_results": 5}`, "1. RepoCoder: repository-level code completion through iterative retrieval and generation ..."))
	add(root, "read_url", ptrace.SpanKindInternal, 300*time.Millisecond, tool("read_url", `{"url": "https://arxiv.org/abs/2303.12570"}`, "RepoCoder: Repository-Level Code Completion Through Iterative Retrieval and Generation ..."))
	add(root, "OpenAIChat.invoke", ptrace.SpanKindInternal, 1200*time.Millisecond, llm(1934, 211))
	member := add(root, "Fact_Checker.run", ptrace.SpanKindInternal, 700*time.Millisecond, map[string]any{
		"openinference.span.kind": "AGENT", "graph.node.id": hexID(r, 8), "graph.node.name": "Fact Checker",
		"agent.name": "Fact Checker", "agno.agent": "Fact Checker", "agno.agent.id": "fact-checker",
		"agno.run.id": "run_" + hexID(r, 8), "input.value": "Check: RepoCoder improves repository-level completion.",
		"output.value": "Confirmed by the RepoCoder paper (2023).",
	})
	add(member, "OpenAIChat.invoke", ptrace.SpanKindInternal, 600*time.Millisecond, llm(455, 38))
	add(root, "OpenAIChat.invoke", ptrace.SpanKindInternal, 1500*time.Millisecond, llm(2410, 356))
	add(root, "duckduckgo_news", ptrace.SpanKindInternal, 150*time.Millisecond, tool("duckduckgo_news", `{"query": "RAG code"}`, "[]"))
	add(root, "OpenAIChat.invoke", ptrace.SpanKindInternal, 800*time.Millisecond, llm(2900, 120))
	return Stored(start.Add(5*time.Second), Sent{
		Resource: AgentResource, Scope: "openinference.instrumentation.agno", ScopeVersion: "0.1.28", Spans: spans,
	})
}

// genOptions shape randomTraces' output.
type genOptions struct {
	traces   int
	maxSpans int
}

// idKeys are every key of IDKeys.
var idKeys = func() []string {
	var out []string
	for _, keys := range IDKeys {
		out = append(out, keys...)
	}
	return out
}()

// idValue is a value a sender may put under an id key: mostly usable
// strings from a small set (so traces share ids), else values that must
// not count: empty, blank, 0, doubles, booleans, documents, oversized.
func idValue(r *rand.Rand) any {
	values := []string{"a", "b", "c", "shared"}
	switch p := r.Intn(24); {
	case p < 10:
		return values[r.Intn(len(values))]
	case p == 10:
		return ""
	case p == 11:
		return "  "
	case p == 12:
		return " padded "
	case p == 13:
		return int64(0)
	case p == 14:
		return int64(1 + r.Intn(50))
	case p == 15:
		return int64(1)<<62 + 1 // beyond a double's exact integers
	case p == 16:
		return 3.0
	case p == 17:
		return 2.5
	case p == 18:
		return true
	case p == 19:
		return []any{"a", "b"}
	case p == 20:
		return map[string]any{"id": "x"}
	case p == 21:
		return strings.Repeat("x", maxIDBytes+1)
	case p == 22:
		return 0.0
	}
	return "id-\x00-\xff" // NUL and invalid UTF-8: stored as U+FFFD
}

// randomTraces generates traces meant to hit every rule of ExpectedTrace,
// sent over OTLP and converted as the gateway converts them: missing and
// multiple roots, equal start times (span id or name breaks the tie), ERROR
// spans, spans ending before they start, and id attributes of every
// convention on random spans (roots and children), many of them unusable.
func randomTraces(r *rand.Rand, o genOptions) [][]model.Span {
	base := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC).Add(time.Duration(r.Int63n(int64(24 * time.Hour))))
	names := []string{"Agent.run", "OpenAIChat.invoke", "chat gpt-4o", "execute_tool search", "retriever.search", "Team.run", "Workflow.run"}
	kinds := []ptrace.SpanKind{ptrace.SpanKindInternal, ptrace.SpanKindClient, ptrace.SpanKindServer, ptrace.SpanKindUnspecified}
	spanKinds := []any{"AGENT", "LLM", "TOOL", "CHAIN", nil, nil, 7, "agent"}
	var out [][]model.Span
	for range o.traces {
		traceID := hexID(r, 16)
		n := 1 + r.Intn(o.maxSpans)
		roots := 1
		switch p := r.Intn(10); {
		case p == 0:
			roots = 0 // the root is never sent
		case p == 1 && n > 1:
			roots = 2
		}
		missingRoot := hexID(r, 8)
		starts := make([]time.Time, 3) // a few shared start times make ties
		for i := range starts {
			starts[i] = base.Add(time.Duration(r.Int63n(int64(10 * time.Second))))
		}
		var spans []SentSpan
		for i := range n {
			sp := SentSpan{
				TraceID: traceID,
				SpanID:  hexID(r, 8),
				Name:    names[r.Intn(len(names))],
				Kind:    kinds[r.Intn(len(kinds))],
				Status:  []ptrace.StatusCode{ptrace.StatusCodeUnset, ptrace.StatusCodeOk, ptrace.StatusCodeOk}[r.Intn(3)],
			}
			switch {
			case i < roots:
			case i == 0 || (roots == 0 && r.Intn(2) == 0):
				sp.ParentID = missingRoot
			default:
				sp.ParentID = spans[r.Intn(i)].SpanID
			}
			if r.Intn(8) == 0 {
				sp.Status, sp.Message = ptrace.StatusCodeError, "boom: "+hexID(r, 2)
			}
			start := base.Add(time.Duration(r.Int63n(int64(10*time.Second))) + time.Duration(r.Intn(1000))*time.Microsecond)
			if r.Intn(3) == 0 {
				start = starts[r.Intn(len(starts))]
			}
			dur := time.Duration(r.Int63n(int64(3*time.Second))) + time.Duration(r.Intn(1000))*time.Microsecond
			if r.Intn(20) == 0 {
				dur = -dur // a broken clock
			}
			sp.Start, sp.End = start, start.Add(dur)
			if r.Intn(10) > 0 {
				sp.Attrs = map[string]any{"n": int64(r.Intn(100))}
				if k := spanKinds[r.Intn(len(spanKinds))]; k != nil {
					sp.Attrs["openinference.span.kind"] = k
				}
				if r.Intn(3) == 0 {
					sp.Attrs["gen_ai.operation.name"] = "chat"
				}
				for _, k := range idKeys {
					if r.Intn(6) == 0 {
						sp.Attrs[k] = idValue(r)
					}
				}
			}
			spans = append(spans, sp)
		}
		out = append(out, Stored(base.Add(time.Minute), Sent{
			Resource: map[string]any{"service.name": "svc-" + traceID[:2]}, Scope: "gen", Spans: spans,
		}))
	}
	return out
}
