package storetest

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand"
	"time"

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

// AgentTrace returns the 11 spans of one agent run as AgentOS sends them: the
// run, a pre-hook, a retrieval, three LLM calls with two tool calls between
// them, a team delegation with one member LLM call, and a post-hook, with
// the attributes the gateway stores for each (about 0.5–2 KB of JSON).
func AgentTrace(r *rand.Rand, start time.Time) []model.Span {
	traceID := hexID(r, 16)
	ids := map[string]string{
		model.KeyRunID:     "run_" + hexID(r, 8),
		model.KeySessionID: "sess_" + hexID(r, 8),
		model.KeyUserID:    fmt.Sprintf("user-%d@example.com", r.Intn(1000)),
		model.KeyAgentID:   "research-agent",
	}
	resource := map[string]any{
		"service.name": "agentos", "service.version": "2.1.4", "deployment.environment": "prod",
		"host.name": "agentos-7f9c", "telemetry.sdk.language": "python", "telemetry.sdk.version": "1.27.0",
	}
	scope := map[string]any{"name": "openinference.instrumentation.agno", "version": "0.1.12"}
	rootID := hexID(r, 8)
	var spans []model.Span
	at := start
	add := func(parent, name, kind, typ string, dur time.Duration, attrs map[string]any) string {
		id := rootID
		if parent != "" {
			id = hexID(r, 8)
		}
		attrs["kern.span.type"] = typ
		attrs["kern.resource"] = resource
		attrs["kern.scope"] = scope
		if typ == "run" {
			for k, v := range ids {
				attrs[k] = v
			}
		}
		st := model.StatusOK
		msg := ""
		if typ == "tool" && r.Intn(20) == 0 {
			st, msg = model.StatusError, "ToolError: upstream returned 502"
		}
		spans = append(spans, model.Span{
			SpanID: id, TraceID: traceID, ParentSpanID: parent, Name: name, SpanKind: kind,
			StatusCode: st, StatusMessage: msg,
			StartTime: model.FormatTime(at), EndTime: model.FormatTime(at.Add(dur)),
			DurationMS: dur.Milliseconds(), Attributes: mustJSON(attrs),
			CreatedAt: model.FormatTime(start.Add(5 * time.Second)),
		})
		at = at.Add(dur / 3)
		return id
	}
	llm := func(in, out int) map[string]any {
		return map[string]any{
			"gen_ai.operation.name": "chat", "gen_ai.system": "openai", "gen_ai.request.model": "gpt-4o-mini",
			"gen_ai.usage.input_tokens": in, "gen_ai.usage.output_tokens": out,
			"kern.model": "gpt-4o-mini", "kern.usage.input_tokens": in, "kern.usage.output_tokens": out,
			"kern.usage.total_tokens": in + out, "kern.llm.temperature": 0.2,
			"kern.input":  `[{"role":"system","content":"You are a research assistant. Cite sources."},{"role":"user","content":"Summarise the latest results on retrieval-augmented generation for code."}]`,
			"kern.output": "Retrieval-augmented generation for code combines a retriever over repositories with a generator; recent work reports gains on repository-level completion.",
		}
	}
	total := time.Duration(2000+r.Intn(8000)) * time.Millisecond
	root := add("", "Agent.run", "INTERNAL", "run", total, map[string]any{
		"kern.run.kind": "agent", "kern.model": "gpt-4o-mini", "agno.agent.name": "Research Agent",
		"openinference.span.kind": "AGENT", "input.value": "Summarise the latest results on RAG for code.",
	})
	add(root, "pre_hook.validate_input", "INTERNAL", "pre_hook", 3*time.Millisecond, map[string]any{"kern.hook.name": "validate_input"})
	add(root, "retriever.search", "CLIENT", "retrieval", 120*time.Millisecond, map[string]any{
		"kern.retrieval.query": "retrieval augmented generation code", "kern.retrieval.vector_store": "pgvector", "kern.retrieval.k": 5,
		"kern.retrieval.scores": []float64{0.91, 0.88, 0.84, 0.79, 0.77},
	})
	add(root, "chat gpt-4o-mini", "CLIENT", "llm", 900*time.Millisecond, llm(812, 64))
	for i, tool := range []string{"web_search", "read_url"} {
		add(root, "execute_tool "+tool, "INTERNAL", "tool", time.Duration(200+100*i)*time.Millisecond, map[string]any{
			"gen_ai.operation.name": "execute_tool", "kern.tool.name": tool,
			"kern.tool.arguments": `{"query":"RAG for code 2024","max_results":5}`,
			"kern.tool.result":    "1. RepoCoder: repository-level code completion through iterative retrieval and generation ...",
		})
	}
	add(root, "chat gpt-4o-mini", "CLIENT", "llm", 1200*time.Millisecond, llm(1934, 211))
	team := add(root, "Team.delegate", "INTERNAL", "delegation", 700*time.Millisecond, map[string]any{
		"kern.delegation.member": "Fact Checker", "kern.delegation.mode": "coordinate",
	})
	add(team, "chat gpt-4o-mini", "CLIENT", "llm", 600*time.Millisecond, llm(455, 38))
	add(root, "chat gpt-4o-mini", "CLIENT", "llm", 1500*time.Millisecond, llm(2410, 356))
	add(root, "post_hook.redact", "INTERNAL", "post_hook", 2*time.Millisecond, map[string]any{"kern.hook.name": "redact"})
	return spans
}

// genOptions shape randomTraces' output.
type genOptions struct {
	traces   int
	maxSpans int
}

// randomTraces generates traces meant to hit every rule of ExpectedTrace:
// missing and multiple roots, equal start times (span id breaks the tie),
// ERROR spans, spans ending before they start, and id attributes on random
// spans, sometimes empty or not strings.
func randomTraces(r *rand.Rand, o genOptions) [][]model.Span {
	base := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC).Add(time.Duration(r.Int63n(int64(24 * time.Hour))))
	names := []string{"Agent.run", "chat gpt-4o", "execute_tool search", "retriever.search", "Team.run", "Workflow.run"}
	kinds := []string{"INTERNAL", "CLIENT", "SERVER"}
	values := []string{"a", "b", "c", "shared"}
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
		var spans []model.Span
		for i := range n {
			sp := model.Span{
				SpanID:     hexID(r, 8),
				TraceID:    traceID,
				Name:       names[r.Intn(len(names))],
				SpanKind:   kinds[r.Intn(len(kinds))],
				StatusCode: []string{model.StatusUnset, model.StatusOK, model.StatusOK}[r.Intn(3)],
				CreatedAt:  model.FormatTime(base.Add(time.Minute)),
			}
			switch {
			case i < roots:
			case i == 0 || (roots == 0 && r.Intn(2) == 0):
				sp.ParentSpanID = missingRoot
			default:
				sp.ParentSpanID = spans[r.Intn(i)].SpanID
			}
			if r.Intn(8) == 0 {
				sp.StatusCode = model.StatusError
				sp.StatusMessage = "boom: " + hexID(r, 2)
			}
			start := base.Add(time.Duration(r.Int63n(int64(10*time.Second))) + time.Duration(r.Intn(1000))*time.Microsecond)
			if r.Intn(3) == 0 {
				start = starts[r.Intn(len(starts))]
			}
			dur := time.Duration(r.Int63n(int64(3*time.Second))) + time.Duration(r.Intn(1000))*time.Microsecond
			if r.Intn(20) == 0 {
				dur = -dur // a broken clock
			}
			sp.StartTime, sp.EndTime = model.FormatTime(start), model.FormatTime(start.Add(dur))
			sp.DurationMS = max(0, dur.Milliseconds())
			attrs := map[string]any{"gen_ai.operation.name": "chat", "n": r.Intn(100)}
			for _, k := range model.TraceIDKeys {
				switch p := r.Intn(20); {
				case p < 4:
					attrs[k.Key] = values[r.Intn(len(values))]
				case p == 4:
					attrs[k.Key] = "" // present but empty: ignored
				case p == 5:
					attrs[k.Key] = r.Intn(50) // not a string: ignored
				}
			}
			if r.Intn(10) > 0 {
				sp.Attributes = mustJSON(attrs)
			}
			spans = append(spans, sp)
		}
		out = append(out, spans)
	}
	return out
}
