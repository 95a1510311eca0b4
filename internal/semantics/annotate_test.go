package semantics

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"

	"github.com/kern-agents/trace-gateway/internal/model"
)

func TestAnnotateAddsWhatAgentOSReads(t *testing.T) {
	tests := []struct {
		name  string
		info  Info
		attrs map[string]any
		want  map[string]any // keys Annotate must write, with their values
		keep  []string       // keys that must stay as sent and not be reported
	}{
		{
			name: "GenAI-only chat call",
			info: Info{Name: "chat gpt-4o", StatusCode: "OK"},
			attrs: map[string]any{
				"gen_ai.operation.name":      "chat",
				"gen_ai.request.model":       "gpt-4o",
				"gen_ai.usage.input_tokens":  int64(12),
				"gen_ai.usage.output_tokens": int64(3),
				"gen_ai.input.messages":      `[{"role":"user","parts":[{"type":"text","content":"hi"}]}]`,
				"gen_ai.output.messages":     `[{"role":"assistant","parts":[{"type":"text","content":"hello"}]}]`,
				"gen_ai.conversation.id":     "conv-1",
			},
			want: map[string]any{
				AttrSpanKind: KindLLM, AttrModelName: "gpt-4o",
				AttrTokensPrompt: int64(12), AttrTokensCompletion: int64(3),
				// The text a person reads, not a second copy of the messages.
				AttrInput: "hi", AttrOutput: "hello",
				AttrSessionID: "conv-1",
			},
		},
		{
			name: "GenAI chat: the last user message is the input, a reply of tool calls is the calls",
			info: Info{Name: "chat m"},
			attrs: map[string]any{
				"gen_ai.operation.name":  "chat",
				"gen_ai.input.messages":  `[{"role":"system","parts":[{"type":"text","content":"be brief"}]},{"role":"user","parts":[{"type":"text","content":"q1"}]},{"role":"assistant","parts":[{"type":"text","content":"a1"}]},{"role":"user","parts":[{"type":"text","content":"q2"}]}]`,
				"gen_ai.output.messages": `[{"role":"assistant","parts":[{"type":"tool_call","id":"c1","name":"f","arguments":"{}"}]}]`,
			},
			want: map[string]any{
				AttrSpanKind: KindLLM, AttrInput: "q2",
				AttrOutput: `[{"arguments":"{}","id":"c1","name":"f"}]`, // the calls
			},
		},
		{
			name: "OpenInference flattened messages: text, not a rebuilt copy",
			info: Info{Name: "OpenAIChat.invoke"},
			attrs: map[string]any{
				"openinference.span.kind":               "LLM",
				"llm.input_messages.0.message.role":     "user",
				"llm.input_messages.0.message.content":  "price?",
				"llm.output_messages.0.message.role":    "assistant",
				"llm.output_messages.0.message.content": "120",
			},
			want: map[string]any{AttrInput: "price?", AttrOutput: "120"},
		},
		{
			name: "OpenInference reply of tool calls only: the calls",
			info: Info{Name: "OpenAIChat.invoke"},
			attrs: map[string]any{
				"openinference.span.kind":                                                 "LLM",
				"llm.input_messages.0.message.role":                                       "user",
				"llm.input_messages.0.message.content":                                    "price?",
				"llm.output_messages.0.message.role":                                      "assistant",
				"llm.output_messages.0.message.tool_calls.0.tool_call.id":                 "c1",
				"llm.output_messages.0.message.tool_calls.0.tool_call.function.name":      "get_price",
				"llm.output_messages.0.message.tool_calls.0.tool_call.function.arguments": `{"s":"NVDA"}`,
			},
			want: map[string]any{AttrInput: "price?", AttrOutput: `[{"arguments":"{\"s\":\"NVDA\"}","id":"c1","name":"get_price"}]`},
		},
		{
			name: "GenAI tool call",
			info: Info{Name: "execute_tool get_price"},
			attrs: map[string]any{
				"gen_ai.operation.name":      "execute_tool",
				"gen_ai.tool.name":           "get_price",
				"gen_ai.tool.call.arguments": `{"symbol":"NVDA"}`,
				"gen_ai.tool.call.result":    `120`,
			},
			want: map[string]any{
				AttrSpanKind: KindTool, AttrToolName: "get_price",
				AttrInput: `{"symbol":"NVDA"}`, AttrOutput: "120",
			},
		},
		{
			name: "OpenInference tool: nothing copied twice",
			info: Info{Name: "get_price"},
			attrs: map[string]any{
				"openinference.span.kind": "TOOL",
				"tool.name":               "get_price",
				"tool.parameters":         `{"symbol":"NVDA"}`,
				"output.value":            "120",
			},
			want: map[string]any{},
			keep: []string{"openinference.span.kind", "tool.name", "tool.parameters", "output.value"},
		},
		{
			name: "tool with a different input.value gets tool.parameters",
			info: Info{Name: "get_price"},
			attrs: map[string]any{
				"gen_ai.operation.name":      "execute_tool",
				"gen_ai.tool.call.arguments": `{"symbol":"NVDA"}`,
				"input.value":                "price of NVDA",
			},
			want: map[string]any{AttrSpanKind: KindTool, AttrToolName: "get_price", AttrToolParameters: `{"symbol":"NVDA"}`},
			keep: []string{"input.value"},
		},
		{
			name:  "agno team run is an AGENT with the team id AgentOS looks for",
			info:  Info{Name: "Research_Team.run"},
			attrs: map[string]any{"agno.team.id": "research", "agno.run.id": "r1", "agno.session.id": "s1"},
			want:  map[string]any{AttrSpanKind: KindAgent, AttrSessionID: "s1"},
		},
		{
			name: "session.id comes from the key the trace row takes it from",
			info: Info{Name: "Agent.run"},
			attrs: map[string]any{
				"agno.agent.id": "a", "agno.session.id": "agno-sess", "gen_ai.conversation.id": "conv",
				"user_id": "u1", "enduser.id": "u2",
			},
			want: map[string]any{AttrSpanKind: KindAgent, AttrSessionID: "agno-sess", AttrUserID: "u1"},
		},
		{
			name:  "GenAI workflow is a CHAIN",
			info:  Info{Name: "invoke_workflow etl"},
			attrs: map[string]any{"gen_ai.operation.name": "invoke_workflow"},
			want:  map[string]any{AttrSpanKind: KindChain},
		},
		{
			name:  "unclassified span is UNKNOWN",
			info:  Info{Name: "HTTP GET"},
			attrs: map[string]any{"http.method": "GET"},
			want:  map[string]any{AttrSpanKind: KindUnknown},
		},
		{
			name: "failed span without a status message gets the exception's message",
			info: Info{Name: "execute_tool t", StatusCode: "ERROR", Events: errorEvent("ValueError", "bad symbol")},
			attrs: map[string]any{
				"gen_ai.operation.name": "execute_tool",
			},
			want: map[string]any{AttrSpanKind: KindTool, AttrToolName: "t", AttrExceptionMessage: "bad symbol"},
		},
		{
			name:  "failed span with a status message: AgentOS shows that",
			info:  Info{Name: "execute_tool t", StatusCode: "ERROR", StatusMessage: "bad symbol", Events: errorEvent("ValueError", "bad symbol")},
			attrs: map[string]any{"gen_ai.operation.name": "execute_tool"},
			want:  map[string]any{AttrSpanKind: KindTool, AttrToolName: "t"},
		},
		{
			name: "odd types AgentOS cannot read are made readable",
			info: Info{Name: "x"},
			attrs: map[string]any{
				"openinference.span.kind":    int64(3),
				"input.value":                map[string]any{"q": "hi"},
				"output.value":               int64(42),
				"llm.token_count.prompt":     "12",
				"llm.token_count.completion": "many",
				"llm.token_count.total":      float64(20),
				"agno.workflow.step_types":   "Step",
			},
			want: map[string]any{
				AttrSpanKind: KindUnknown, AttrInput: `{"q":"hi"}`, AttrOutput: "42",
				AttrTokensPrompt: int64(12), AttrTokensCompletion: nil, AttrTokensTotal: int64(20),
				AttrWorkflowSteps: nil,
			},
		},
		{
			name:  "a known kind in lower case is upper-cased",
			info:  Info{Name: "x"},
			attrs: map[string]any{"openinference.span.kind": "llm", "llm.model_name": "m"},
			want:  map[string]any{AttrSpanKind: KindLLM},
			keep:  []string{"llm.model_name"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			attrs := maps.Clone(tt.attrs)
			wrote := Annotate(tt.info, attrs)
			checkAnnotation(t, tt.attrs, attrs, wrote)
			got := map[string]any{}
			for _, k := range wrote {
				got[k] = attrs[k]
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("wrote %#v\nwant  %#v", got, tt.want)
			}
			for _, k := range tt.keep {
				if !reflect.DeepEqual(attrs[k], tt.attrs[k]) {
					t.Errorf("%s changed: %#v -> %#v", k, tt.attrs[k], attrs[k])
				}
			}
		})
	}
}

func TestRootIDsFollowAgnoKeyOrder(t *testing.T) {
	tests := []struct {
		name  string
		attrs map[string]any
		want  model.TraceIDs
	}{
		{"agno keys", map[string]any{"agno.run.id": "r", "agno.session.id": "s", "agno.user.id": "u",
			"agno.agent.id": "a", "agno.team.id": "t", "agno.workflow.id": "w"},
			model.TraceIDs{RunID: "r", SessionID: "s", UserID: "u", AgentID: "a", TeamID: "t", WorkflowID: "w"}},
		{"plain keys win over agno.*", map[string]any{"run_id": "r1", "agno.run.id": "r2", "session_id": "s1",
			"agno.session.id": "s2", "session.id": "s3", "user_id": "u1", "user.id": "u3"},
			model.TraceIDs{RunID: "r1", SessionID: "s1", UserID: "u1"}},
		{"agno.* wins over OpenInference", map[string]any{"agno.session.id": "s2", "session.id": "s3", "agno.user.id": "u2", "user.id": "u3"},
			model.TraceIDs{SessionID: "s2", UserID: "u2"}},
		{"GenAI only where agno's keys are absent", map[string]any{"gen_ai.conversation.id": "c", "enduser.id": "e", "gen_ai.agent.id": "g"},
			model.TraceIDs{SessionID: "c", UserID: "e", AgentID: "g"}},
		{"falsy values are skipped like Python's or", map[string]any{"run_id": "", "agno.run.id": "r", "session_id": nil, "session.id": "s"},
			model.TraceIDs{RunID: "r", SessionID: "s"}},
		{"integers are ids, documents are not", map[string]any{"agno.run.id": int64(42), "agno.agent.id": map[string]any{"x": 1}, "agent_id": []any{"a"}},
			model.TraceIDs{RunID: "42"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := RootIDs(tt.attrs); got != tt.want {
				t.Errorf("RootIDs = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestNodeTypeIsAgentOSs(t *testing.T) {
	tests := []struct {
		attrs map[string]any
		want  string
	}{
		{map[string]any{"openinference.span.kind": "CHAIN"}, "WORKFLOW"},
		{map[string]any{"openinference.span.kind": "AGENT", "agno.team.id": "t"}, "TEAM"},
		{map[string]any{"openinference.span.kind": "AGENT", "team.id": "t"}, "TEAM"},
		{map[string]any{"openinference.span.kind": "AGENT", "agno.team.id": ""}, "AGENT"},
		{map[string]any{"openinference.span.kind": "LLM"}, "LLM"},
		{map[string]any{}, "UNKNOWN"},
	}
	for _, tt := range tests {
		if got := NodeType(tt.attrs); got != tt.want {
			t.Errorf("NodeType(%v) = %q, want %q", tt.attrs, got, tt.want)
		}
	}
}

// Info.Keys only spares walking the map: Annotate must write the same with
// the keys listed (in any order) as without.
func TestAnnotateWithKeysListed(t *testing.T) {
	check := func(t *testing.T, info Info, attrs map[string]any) {
		t.Helper()
		plain, listed := maps.Clone(attrs), maps.Clone(attrs)
		info.Keys = nil
		wantWrote := Annotate(info, plain)
		info.Keys = slices.Sorted(maps.Keys(attrs))
		slices.Reverse(info.Keys)
		gotWrote := Annotate(info, listed)
		// Printed, so that a NaN value compares equal to itself.
		if !reflect.DeepEqual(gotWrote, wantWrote) || fmt.Sprintf("%#v", listed) != fmt.Sprintf("%#v", plain) {
			t.Fatalf("with keys listed wrote %v: %v\nwithout: %v: %v", gotWrote, listed, wantWrote, plain)
		}
	}
	for _, tc := range annotateCases {
		t.Run(tc.name, func(t *testing.T) { check(t, tc.info, tc.attrs) })
	}
	r := rand.New(rand.NewPCG(5, 6))
	for range 200 {
		info, attrs := randomSpan(r, r.IntN(40))
		check(t, info, attrs)
	}
}
