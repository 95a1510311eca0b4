package semantics

import (
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// knownKeys are the keys Annotate reads; random spans draw most of their keys
// from here so the extractors see hostile values, not just unknown keys.
var knownKeys = func() []string {
	set := map[string]bool{
		"gen_ai.operation.name": true, "openinference.span.kind": true, "agno.hook.type": true,
		"agno.hook.name": true, "agno.team.member": true, "agno.team.mode": true,
		"gen_ai.output.messages": true, "gen_ai.input.messages": true, "gen_ai.prompt": true, "gen_ai.completion": true,
		"llm.invocation_parameters": true, "gen_ai.request.temperature": true, "agno.model.temperature": true,
		"gen_ai.retrieval.documents": true, "agno.retrieval.documents": true, "agno.llm.tool_calls": true,
		"agno.workflow.id": true, "agno.step.type": true, "agno.tool.name": true, "agno.retrieval.query": true,
		"error.type": true, "tool.name": true, "gen_ai.tool.name": true,
		"llm.output_messages.0.message.tool_calls.0.tool_call.function.name":      true,
		"llm.output_messages.0.message.tool_calls.0.tool_call.function.arguments": true,
		"llm.output_messages.99999999999999999999.message.role":                   true,
		"llm.output_messages.1.message.contents.0.message_content.text":           true,
		"llm.input_messages.0.message.content":                                    true,
		"gen_ai.completion.0.tool_calls.0.name":                                   true,
		"retrieval.documents.0.document.score":                                    true,
		"retrieval.documents.0.document.id":                                       true,
		"retrieval.documents.x.document.id":                                       true,
		"retrieval.documents.":                                                    true,
		"reranker.output_documents.3.document.content":                            true,
	}
	for _, id := range idSources {
		for _, k := range id.Sources {
			set[k] = true
		}
	}
	for _, l := range [][]string{modelSources, embedModelSource, inputTokenSources, outputTokenSources,
		totalTokenSources, toolArgSources, toolResultSources, runInputSources, runOutputSources,
		hookInputSources, hookOutputSources, querySources, vectorStoreSources, kSources, attrKeys} {
		for _, k := range l {
			set[k] = true
		}
	}
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	return out
}()

var enumValues = []string{
	"chat", "embeddings", "execute_tool", "invoke_agent", "retrieval", "create_agent", "invoke_workflow",
	"LLM", "TOOL", "AGENT", "CHAIN", "RETRIEVER", "RERANKER", "GUARDRAIL", "EMBEDDING", "pre", "post",
	"delegate_task_to_member", "",
}

func randomValue(r *rand.Rand, depth int) any {
	switch r.IntN(16) {
	case 0:
		return nil
	case 1:
		return r.Int64() - r.Int64()
	case 2:
		return []float64{math.NaN(), math.Inf(1), math.Inf(-1), -1, 1e300, 0.5, 42}[r.IntN(7)]
	case 3:
		return r.IntN(2) == 0
	case 4:
		return enumValues[r.IntN(len(enumValues))]
	case 5:
		return strings.Repeat("é", r.IntN(200_000)) // up to 400 KB
	case 6:
		return string([]byte{0xff, 0xfe, 'a', 0xc3}) // invalid UTF-8
	case 7:
		return []string{"42", "-7", " 3.5 ", "1e400", "NaN", "0x10", ""}[r.IntN(7)]
	case 8:
		return `[{"role":"assistant","parts":[{"type":"tool_call","name":"t","arguments":{"a":1}}]}]`
	case 9:
		return `{"temperature": "hot", "member_id": 7}`
	case 10:
		return `[{"id": 1, "score": "0.5", "content": {"nested": true}}, 3, null, "x"]`
	case 11:
		return `{"unterminated": [`
	case 12:
		if depth > 3 {
			return "deep"
		}
		n := r.IntN(4)
		l := make([]any, n)
		for i := range l {
			l[i] = randomValue(r, depth+1)
		}
		return l
	case 13:
		if depth > 3 {
			return "deep"
		}
		m := map[string]any{}
		for i := 0; i < r.IntN(4); i++ {
			m[[]string{"name", "arguments", "function", "id", "score", "content", "parts", "type"}[r.IntN(8)]] = randomValue(r, depth+1)
		}
		return m
	case 14:
		return []any{map[string]any{"function": map[string]any{"name": "f", "arguments": randomValue(r, depth+1)}}}
	default:
		return json.Number([]string{"12", "1.5", "abc"}[r.IntN(3)])
	}
}

func randomSpan(r *rand.Rand, nAttrs int) (Info, map[string]any) {
	attrs := make(map[string]any, nAttrs)
	for i := 0; i < nAttrs; i++ {
		var k string
		switch r.IntN(4) {
		case 0, 1:
			k = knownKeys[r.IntN(len(knownKeys))]
		case 2:
			k = fmt.Sprintf("llm.output_messages.%d.message.tool_calls.%d.tool_call.function.name", r.IntN(50), r.IntN(50))
		default:
			k = fmt.Sprintf("custom.%d", r.Int())
		}
		attrs[k] = randomValue(r, 0)
	}
	names := []string{"Agent.run", "pre_hook x", "post-hook", "chat m", "execute_tool ", ".run", "", "Team.arun", strings.Repeat("n", 5000)}
	info := Info{
		Name:          names[r.IntN(len(names))],
		StatusCode:    []string{"OK", "ERROR", "UNSET", "error", ""}[r.IntN(5)],
		StatusMessage: []string{"", "boom", strings.Repeat("m", 100_000)}[r.IntN(3)],
	}
	if r.IntN(2) == 0 {
		info.Events = []Event{{Name: "exception", Attributes: map[string]any{
			"exception.type": randomValue(r, 0), "exception.message": randomValue(r, 0),
		}}, {Name: "exception"}}
	}
	if r.IntN(2) == 0 {
		info.Resource = map[string]any{"user.id": randomValue(r, 0), "session.id": randomValue(r, 0)}
	}
	return info, attrs
}

var validTypes = map[any]bool{
	TypeRun: true, TypeLLM: true, TypeEmbedding: true, TypeTool: true, TypePreHook: true,
	TypePostHook: true, TypeRetrieval: true, TypeDelegation: true, TypeOther: true,
}

// checkInvariants asserts what every span must satisfy whatever the input:
// facts of a valid type, well-typed and within their limits, that marshal;
// and annotations that only add AgentOS's keys, keep every other sender key
// as sent and leave AgentOS's keys with types its trace view can read.
func checkInvariants(t *testing.T, info Info, before map[string]any) {
	t.Helper()
	facts := Normalize(info, maps.Clone(before))
	if !validTypes[facts[KeySpanType]] {
		t.Fatalf("invalid %s: %#v", KeySpanType, facts[KeySpanType])
	}
	if _, err := json.Marshal(facts); err != nil {
		t.Fatalf("facts do not marshal: %v (%#v)", err, facts)
	}
	for _, k := range []string{KeyInputTokens, KeyOutputTokens, KeyRetrievalK} {
		if v, ok := facts[k]; ok {
			n, isInt := v.(int64)
			if !isInt || n < 0 {
				t.Fatalf("%s = %#v, want a non-negative int64", k, v)
			}
		}
	}
	if v, ok := facts[KeyTotalTokens]; ok {
		if n, isInt := v.(int64); !isInt || n < 0 || n > 2*MaxTokenCount {
			t.Fatalf("%s = %#v", KeyTotalTokens, v)
		}
	}
	if v, ok := facts[KeyTemperature]; ok {
		if f, isF := v.(float64); !isF || f < 0 || f > MaxTemperature {
			t.Fatalf("%s = %#v", KeyTemperature, v)
		}
	}
	for _, k := range []string{KeyRunID, KeySessionID, KeyUserID, KeyAgentID,
		KeyTeamID, KeyWorkflowID, KeyModel} {
		if v, ok := facts[k]; ok {
			if s, isS := v.(string); !isS || s == "" || len(s) > MaxIDBytes {
				t.Fatalf("%s = %#v", k, v)
			}
		}
	}
	for k, v := range facts {
		if s, ok := v.(string); ok && len(s) > MaxValueBytes+64 {
			t.Fatalf("%s is %d bytes, over the limit", k, len(s))
		}
		if l, ok := v.([]any); ok && len(l) > MaxListItems {
			t.Fatalf("%s has %d items", k, len(l))
		}
	}

	after := maps.Clone(before)
	wrote := Annotate(info, after)
	checkAnnotation(t, before, after, wrote)
}

func TestAnnotateRandomInputs(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 1500; i++ {
		info, attrs := randomSpan(r, r.IntN(40))
		checkInvariants(t, info, attrs)
	}
}

func TestAnnotateTenThousandAttributes(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	info, attrs := randomSpan(r, 10_000)
	for i := 0; i < 5000; i++ {
		attrs[fmt.Sprintf("llm.output_messages.%d.message.tool_calls.0.tool_call.function.name", i)] = "fn"
	}
	attrs["openinference.span.kind"] = "LLM"
	delete(attrs, "gen_ai.operation.name")
	delete(attrs, "agno.hook.type")
	delete(attrs, "agno.team.member")
	start := time.Now()
	checkInvariants(t, info, attrs)
	if d := time.Since(start); d > 4*time.Second {
		t.Errorf("Normalize and Annotate took %v on 15k attributes", d)
	}
}

// FuzzAnnotate feeds arbitrary JSON objects as attributes.
// Run longer with: go test ./internal/semantics -fuzz FuzzAnnotate
func FuzzAnnotate(f *testing.F) {
	f.Add(`{"gen_ai.operation.name":"chat","gen_ai.usage.input_tokens":"42"}`, "chat m", "OK")
	f.Add(`{"openinference.span.kind":"RETRIEVER","retrieval.documents.0.document.score":0.5}`, "r", "OK")
	f.Add(`{"openinference.span.kind":"TOOL","input.value":{"a":[1,2]}}`, "delegate_task_to_member", "ERROR")
	f.Add(`{"llm.output_messages.0.message.tool_calls.0.tool_call.function.name":"x","openinference.span.kind":"LLM"}`, "", "")
	f.Fuzz(func(t *testing.T, attrsJSON, name, status string) {
		var attrs map[string]any
		if json.Unmarshal([]byte(attrsJSON), &attrs) != nil || attrs == nil {
			return
		}
		checkInvariants(t, Info{Name: name, StatusCode: status, StatusMessage: name}, attrs)
	})
}
