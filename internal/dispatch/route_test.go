package dispatch

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/kern-agents/trace-gateway/internal/config"
)

func TestRouteFilter(t *testing.T) {
	// Spans as stored: the sender's keys and the span kind the gateway adds.
	llmSpan := map[string]string{"gen_ai.operation.name": "chat", "gen_ai.agent.id": "researcher", "gen_ai.system": "openai", "openinference.span.kind": "LLM"}
	toolSpan := map[string]string{"openinference.span.kind": "TOOL", "agno.agent.id": "researcher"}
	teamRun := map[string]string{"openinference.span.kind": "AGENT", "agno.team.id": "travel", "agno.run.id": "r1"}
	agnoTool := map[string]string{"agno.tool.name": "get_weather", "agent_id": "researcher", "openinference.span.kind": "TOOL"}
	bare := map[string]string{}
	cases := []struct {
		name    string
		route   Route
		service string
		attrs   map[string]string
		keep    bool
	}{
		{"no filter keeps all", Route{}, "agentos", bare, true},
		{"include service", Route{Include: config.Match{Services: []string{"agentos", "other"}}}, "agentos", bare, true},
		{"include service misses", Route{Include: config.Match{Services: []string{"other"}}}, "agentos", bare, false},
		{"include service, span has none", Route{Include: config.Match{Services: []string{"agentos"}}}, "", bare, false},
		{"include span type", Route{Include: config.Match{SpanTypes: []string{"llm", "tool"}}}, "a", toolSpan, true},
		{"include span type misses", Route{Include: config.Match{SpanTypes: []string{"llm"}}}, "a", toolSpan, false},
		{"include type and agent (AND)", Route{Include: config.Match{SpanTypes: []string{"llm"}, AgentIDs: []string{"researcher"}}}, "a", llmSpan, true},
		{"include type and agent, agent differs", Route{Include: config.Match{SpanTypes: []string{"llm"}, AgentIDs: []string{"writer"}}}, "a", llmSpan, false},
		{"include agent, span has none", Route{Include: config.Match{AgentIDs: []string{"researcher"}}}, "a", bare, false},
		{"include attribute", Route{Include: config.Match{Attributes: map[string]string{"gen_ai.system": "openai"}}}, "a", llmSpan, true},
		{"include attribute value differs", Route{Include: config.Match{Attributes: map[string]string{"gen_ai.system": "anthropic"}}}, "a", llmSpan, false},
		{"exclude span type", Route{Exclude: config.Match{SpanTypes: []string{"tool"}}}, "a", toolSpan, false},
		{"exclude other type keeps", Route{Exclude: config.Match{SpanTypes: []string{"tool"}}}, "a", llmSpan, true},
		{"exclude needs every field", Route{Exclude: config.Match{SpanTypes: []string{"tool"}, Services: []string{"x"}}}, "a", toolSpan, true},
		{"include then exclude", Route{
			Include: config.Match{AgentIDs: []string{"researcher"}},
			Exclude: config.Match{SpanTypes: []string{"tool"}},
		}, "a", toolSpan, false},
		{"agent id from agno's plain key", Route{Include: config.Match{AgentIDs: []string{"researcher"}}}, "a", agnoTool, true},
		{"agent id from the resource", Route{Include: config.Match{AgentIDs: []string{"from-resource"}}}, "agent:from-resource", bare, true},
		{"the span's agent id wins over the resource's", Route{Include: config.Match{AgentIDs: []string{"from-resource"}}}, "agent:from-resource", toolSpan, false},
		{"a team run is a run", Route{Include: config.Match{SpanTypes: []string{"run"}}}, "a", teamRun, true},
		{"unclassified is other", Route{Include: config.Match{SpanTypes: []string{"other"}}}, "a", bare, true},
		{"AgentOS node type TEAM", Route{Include: config.Match{SpanTypes: []string{"TEAM"}}}, "a", teamRun, true},
		{"AgentOS node type AGENT is not a team", Route{Include: config.Match{SpanTypes: []string{"AGENT"}}}, "a", teamRun, false},
		{"AgentOS node type and span type mixed", Route{Include: config.Match{SpanTypes: []string{"TOOL", "llm"}}}, "a", llmSpan, true},
		{"exclude AgentOS node type", Route{Exclude: config.Match{SpanTypes: []string{"TOOL"}}}, "a", agnoTool, false},
		{"a span without a kind is UNKNOWN", Route{Include: config.Match{SpanTypes: []string{"UNKNOWN"}}}, "a", bare, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := c.route
			if r.Sampling == 0 {
				r.Sampling = 1
			}
			service := c.service
			td, _ := spanTD(service, 1, c.attrs)
			if id, ok := strings.CutPrefix(service, "agent:"); ok {
				res := td.ResourceSpans().At(0).Resource().Attributes()
				res.PutStr("service.name", "a")
				res.PutStr("agno.agent.id", id)
			}
			kept := r.Apply(td)
			if (kept == 1) != c.keep || td.SpanCount() != kept {
				t.Fatalf("Apply kept %d (td holds %d), want keep=%t", kept, td.SpanCount(), c.keep)
			}
			if !c.keep && td.ResourceSpans().Len() != 0 {
				t.Fatal("an emptied resource was left in the batch")
			}
		})
	}
}

func TestSamplingIsPerTraceAndProportional(t *testing.T) {
	for _, ratio := range []float64{0.1, 0.25, 0.5, 0.9} {
		r := Route{Sampling: ratio}
		td := ptrace.NewTraces()
		ss := td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty()
		const traces, perTrace = 2000, 5
		for i := range traces {
			var id pcommon.TraceID
			if i%2 == 0 {
				_, _ = rand.Read(id[:])
			} else { // sequential ids sample evenly too
				id[15], id[14] = byte(i), byte(i>>8)
			}
			for j := range perTrace {
				sp := ss.Spans().AppendEmpty()
				sp.SetTraceID(id)
				sp.SetSpanID([8]byte{byte(i), byte(i >> 8), byte(j)})
			}
		}
		r.Apply(td)
		perID := map[pcommon.TraceID]int{}
		spans := td.ResourceSpans().At(0).ScopeSpans().At(0).Spans()
		for i := 0; i < spans.Len(); i++ {
			perID[spans.At(i).TraceID()]++
		}
		for id, n := range perID {
			if n != perTrace {
				t.Fatalf("ratio %g: trace %x kept %d of %d spans; a trace goes whole or not at all", ratio, id, n, perTrace)
			}
			if !Sampled(id, ratio) {
				t.Fatalf("ratio %g: kept trace %x that Sampled rejects", ratio, id)
			}
		}
		share := float64(len(perID)) / traces
		if share < ratio-0.05 || share > ratio+0.05 {
			t.Errorf("ratio %g kept %.3f of traces", ratio, share)
		}
	}
	id := pcommon.TraceID{9, 9, 9}
	for range 10 {
		if Sampled(id, 0.5) != Sampled(id, 0.5) {
			t.Fatal("Sampled is not deterministic")
		}
	}
	if !Sampled(id, 1) || Sampled(id, 0) {
		t.Fatal("ratios 1 and 0 must keep all and none")
	}
	// A trace kept at a low ratio is kept at every higher one.
	for i := range 500 {
		id := pcommon.TraceID{byte(i), byte(i >> 8), 7}
		if Sampled(id, 0.2) && !Sampled(id, 0.6) {
			t.Fatalf("trace %x kept at 0.2 but not 0.6", id)
		}
	}
}

func TestRedaction(t *testing.T) {
	sum := sha256.Sum256([]byte("what is the capital of France?"))
	hashed := hex.EncodeToString(sum[:])
	r := Route{Sampling: 1, Redact: []config.Redaction{
		{Key: "input.value", Action: config.RedactHash},
		{Key: "user.email", Action: config.RedactMask},
		{Key: "secret.*", Action: config.RedactDrop},
	}}
	td, sp := spanTD("agentos", 1, map[string]string{
		"input.value": "what is the capital of France?",
		"user.email":  "ada@example.com",
		"secret.a":    "x",
		"secret.b":    "y",
		"secretive":   "kept: the prefix is secret.",
		"other":       "kept",
	})
	sp.Attributes().PutInt("token.count", 5)
	ev := sp.Events().AppendEmpty()
	ev.Attributes().PutStr("user.email", "ada@example.com")
	td.ResourceSpans().At(0).Resource().Attributes().PutStr("user.email", "ops@example.com")
	td.ResourceSpans().At(0).Resource().Attributes().PutStr("secret.token", "t")

	if kept := r.Apply(td); kept != 1 {
		t.Fatalf("kept %d", kept)
	}
	got := sp.Attributes().AsRaw()
	want := map[string]any{
		"input.value": hashed,
		"user.email":  Masked,
		"secretive":   "kept: the prefix is secret.",
		"other":       "kept",
		"token.count": int64(5),
	}
	if len(got) != len(want) {
		t.Fatalf("span attributes = %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	if v, _ := ev.Attributes().Get("user.email"); v.Str() != Masked {
		t.Errorf("event attribute not masked: %v", v.AsString())
	}
	res := td.ResourceSpans().At(0).Resource().Attributes()
	if v, _ := res.Get("user.email"); v.Str() != Masked {
		t.Errorf("resource attribute not masked: %v", v.AsString())
	}
	if _, ok := res.Get("secret.token"); ok {
		t.Error("resource attribute secret.token not dropped")
	}
	if v, _ := res.Get("service.name"); v.Str() != "agentos" {
		t.Error("service.name lost")
	}
}
