package dispatch

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/kern-agents/trace-gateway/internal/config"
	"github.com/kern-agents/trace-gateway/internal/convert"
	"github.com/kern-agents/trace-gateway/internal/semantics"
	"github.com/kern-agents/trace-gateway/internal/spaninfo"
)

// sent describes one span as its sender sends it.
type sent struct {
	name     string
	attrs    map[string]any
	resource map[string]any
	// exception, when set, fails the span with an "exception" event of
	// this message (and no status message).
	exception string
}

// stored returns s as the fan-out hands it to a route: converted to a
// stored row by the gateway (which adds the OpenInference keys AgentOS
// reads) and rebuilt from it.
func (s sent) stored(t *testing.T) (ptrace.Traces, ptrace.Span) {
	t.Helper()
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "agentos")
	for k, v := range s.resource {
		if err := rs.Resource().Attributes().PutEmpty(k).FromRaw(v); err != nil {
			t.Fatal(err)
		}
	}
	sp := rs.ScopeSpans().AppendEmpty().Spans().AppendEmpty()
	sp.SetTraceID(pcommon.TraceID{1})
	sp.SetSpanID(pcommon.SpanID{2})
	sp.SetName(s.name)
	now := time.Now()
	sp.SetStartTimestamp(pcommon.NewTimestampFromTime(now))
	sp.SetEndTimestamp(pcommon.NewTimestampFromTime(now.Add(time.Second)))
	if err := sp.Attributes().FromRaw(s.attrs); err != nil {
		t.Fatal(err)
	}
	if s.exception != "" {
		sp.Status().SetCode(ptrace.StatusCodeError)
		ev := sp.Events().AppendEmpty()
		ev.SetName("exception")
		ev.Attributes().PutStr("exception.type", "ValueError")
		ev.Attributes().PutStr("exception.message", s.exception)
	}
	rows, rejected := convert.FromOTLP(td, now, convert.Limits{})
	if len(rejected) > 0 {
		t.Fatalf("rejected: %+v", rejected)
	}
	out, err := convert.ToOTLP(rows)
	if err != nil {
		t.Fatal(err)
	}
	return out, out.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0)
}

// leaks returns where td still holds secret: an attribute of a resource,
// span or event, or a fact a vendor mapping reads from the span.
func leaks(td ptrace.Traces, secret string) []string {
	var out []string
	check := func(where string, m pcommon.Map) {
		for k, v := range m.All() {
			if strings.Contains(v.AsString(), secret) {
				out = append(out, where+" "+k+"="+v.AsString())
			}
		}
	}
	for _, rs := range td.ResourceSpans().All() {
		check("resource", rs.Resource().Attributes())
		for _, ss := range rs.ScopeSpans().All() {
			for _, sp := range ss.Spans().All() {
				check("span", sp.Attributes())
				for _, ev := range sp.Events().All() {
					check("event", ev.Attributes())
				}
				facts := semantics.Normalize(spaninfo.Info(sp, rs.Resource().Attributes().AsRaw()), sp.Attributes().AsRaw())
				b, _ := json.Marshal(facts)
				if strings.Contains(string(b), secret) {
					out = append(out, "facts "+string(b))
				}
			}
		}
	}
	return out
}

// Secrets the spans below carry, one per value, so that a rule is checked
// to hide its value and nothing proves it by hiding another.
const (
	sIn   = "SECRET-IN-4242"
	sOut  = "SECRET-OUT-5353"
	sDoc  = "SECRET-DOC-6464"
	sCall = "SECRET-CALL-7575"
	sExc  = "SECRET-EXC-8686"
)

var (
	genAIChat = sent{name: "chat gpt-4o", attrs: map[string]any{
		"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o",
		"gen_ai.input.messages":  `[{"role":"system","parts":[{"type":"text","content":"Be brief."}]},{"role":"user","parts":[{"type":"text","content":"` + sIn + `"}]}]`,
		"gen_ai.output.messages": `[{"role":"assistant","parts":[{"type":"text","content":"ok"}]}]`,
	}}
	genAIReply = sent{name: "chat gpt-4o", attrs: map[string]any{
		"gen_ai.operation.name": "chat",
		"gen_ai.output.messages": `[{"role":"assistant","parts":[{"type":"text","content":"` + sOut + `"},` +
			`{"type":"tool_call","id":"c1","name":"lookup","arguments":"{\"q\":\"` + sCall + `\"}"}]}]`,
	}}
	oiChat = sent{name: "OpenAIChat.invoke", attrs: map[string]any{
		"openinference.span.kind": "LLM", "input.value": `{"messages":["` + sIn + `"]}`,
		"llm.input_messages.0.message.role": "user", "llm.input_messages.0.message.content": sIn,
		"llm.output_messages.0.message.role": "assistant", "llm.output_messages.0.message.content": sOut,
	}}
	agnoRun = sent{name: "Agent.run", attrs: map[string]any{
		"agno.run.id": "r1", "agno.agent.id": "a1", "agno.run.input": sIn, "agno.run.output": "done: " + sOut,
	}}
	genAITool = sent{name: "execute_tool lookup", attrs: map[string]any{
		"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "lookup",
		"gen_ai.tool.call.arguments": `{"q":"` + sIn + `"}`, "gen_ai.tool.call.result": "found " + sOut,
	}}
	oiTool = sent{name: "lookup", attrs: map[string]any{
		"openinference.span.kind": "TOOL", "tool.name": "lookup", "input.value": `{"q":"` + sIn + `"}`,
		"output.value": "found " + sOut,
	}}
	hook = sent{name: "pre_hook.validate", attrs: map[string]any{
		"agno.hook.type": "pre", "agno.hook.input": sIn, "agno.hook.output": "checked " + sOut,
	}}
	genAIRetrieval = sent{name: "retrieval", attrs: map[string]any{
		"gen_ai.operation.name": "retrieval", "gen_ai.retrieval.query.text": sIn,
		"gen_ai.retrieval.documents": `[{"id":"d1","content":"about ` + sDoc + `","score":0.5}]`,
	}}
	oiRetrieval = sent{name: "knowledge.search", attrs: map[string]any{
		"openinference.span.kind": "RETRIEVER", "input.value": sIn,
		"retrieval.documents.0.document.id": "d1", "retrieval.documents.0.document.content": "about " + sDoc,
	}}
	ids = sent{name: "invoke_agent", attrs: map[string]any{
		"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.id": "SECRET-agent",
		"gen_ai.conversation.id": "SECRET-session", "enduser.id": "SECRET-user",
	}, resource: map[string]any{"agno.agent.id": "SECRET-agent"}}
	tokens = sent{name: "chat gpt-4o", attrs: map[string]any{
		"gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": int64(98765), "gen_ai.usage.output_tokens": int64(17),
	}}
	failed = sent{name: "execute_tool lookup", attrs: map[string]any{"gen_ai.operation.name": "execute_tool"}, exception: "bad " + sExc}
)

// TestLegacyRedactionsFindTheValues: a rule written for a kern.* key the
// gateway no longer stores hides the value wherever it is now, for every
// convention the value may come in.
func TestLegacyRedactionsFindTheValues(t *testing.T) {
	cases := []struct {
		key     string
		spans   []sent
		secrets []string
	}{
		{"kern.input", []sent{genAIChat, oiChat, agnoRun, genAITool, oiTool, hook, genAIRetrieval, oiRetrieval}, []string{sIn}},
		{"kern.output", []sent{genAIReply, oiChat, agnoRun, genAITool, oiTool, hook}, []string{sOut}},
		{"kern.tool.arguments", []sent{genAITool, oiTool}, []string{sIn}},
		{"kern.tool.result", []sent{genAITool, oiTool}, []string{sOut}},
		{"kern.llm.tool_calls", []sent{genAIReply}, []string{sCall}},
		{"kern.retrieval.*", []sent{genAIRetrieval, oiRetrieval}, []string{sIn, sDoc}},
		{"kern.retrieval.documents", []sent{genAIRetrieval, oiRetrieval}, []string{sDoc}},
		{"kern.agent_id", []sent{ids}, []string{"SECRET-agent"}},
		{"kern.session_id", []sent{ids}, []string{"SECRET-session"}},
		{"kern.user_id", []sent{ids}, []string{"SECRET-user"}},
		{"kern.usage.*", []sent{tokens}, []string{"98765"}},
		{"kern.exception.message", []sent{failed}, []string{sExc}},
	}
	for _, c := range cases {
		for _, s := range c.spans {
			for _, action := range []string{config.RedactMask, config.RedactHash, config.RedactDrop} {
				t.Run(c.key+"/"+s.name+"/"+action, func(t *testing.T) {
					td, _ := s.stored(t)
					for _, secret := range c.secrets {
						if len(leaks(td, secret)) == 0 {
							t.Fatalf("the stored span does not hold %s; the case tests nothing", secret)
						}
					}
					r := Route{Sampling: 1, Redact: []config.Redaction{{Key: c.key, Action: action}}}
					r.Apply(td)
					for _, secret := range c.secrets {
						for _, l := range leaks(td, secret) {
							t.Errorf("after redacting %s: %s", c.key, l)
						}
					}
				})
			}
		}
	}
}

// TestRedactionRederivesStoredKeys: a rule on a sender's key also changes
// what the gateway stored from it, as if the sender had sent the redacted
// value; a key the sender sent itself, or one a rule names, is left alone.
func TestRedactionRederivesStoredKeys(t *testing.T) {
	hash := func(s string) string { sum := sha256.Sum256([]byte(s)); return hex.EncodeToString(sum[:]) }
	redact := func(td ptrace.Traces, rules ...config.Redaction) { (&Route{Sampling: 1, Redact: rules}).Apply(td) }
	get := func(sp ptrace.Span, k string) (string, bool) {
		if v, ok := sp.Attributes().Get(k); ok {
			return v.AsString(), true
		}
		return "", false
	}
	t.Run("mask", func(t *testing.T) {
		td, sp := genAIChat.stored(t)
		if v, _ := get(sp, "input.value"); v != sIn {
			t.Fatalf("stored input.value %q; the test expects the user's text", v)
		}
		redact(td, config.Redaction{Key: "gen_ai.input.messages", Action: config.RedactMask})
		if v, _ := get(sp, "input.value"); v != Masked {
			t.Errorf("input.value = %q, want %q", v, Masked)
		}
		if v, _ := get(sp, "output.value"); v != "ok" {
			t.Errorf("output.value = %q: a key the rules did not touch changed", v)
		}
	})
	t.Run("hash", func(t *testing.T) {
		td, sp := genAIChat.stored(t)
		msgs, _ := get(sp, "gen_ai.input.messages")
		redact(td, config.Redaction{Key: "gen_ai.input.messages", Action: config.RedactHash})
		if v, _ := get(sp, "input.value"); v != hash(msgs) {
			t.Errorf("input.value = %q, want the hashed messages as the gateway derives from them", v)
		}
	})
	t.Run("drop", func(t *testing.T) {
		td, sp := genAIChat.stored(t)
		redact(td, config.Redaction{Key: "gen_ai.input.messages", Action: config.RedactDrop})
		if v, ok := get(sp, "input.value"); ok {
			t.Errorf("input.value = %q, want it dropped with its source", v)
		}
	})
	t.Run("a rule on the stored key wins", func(t *testing.T) {
		td, sp := genAIChat.stored(t)
		redact(td, config.Redaction{Key: "input.value", Action: config.RedactHash}, config.Redaction{Key: "gen_ai.input.messages", Action: config.RedactDrop})
		if v, _ := get(sp, "input.value"); v != hash(sIn) {
			t.Errorf("input.value = %q, want it hashed as the rule says", v)
		}
	})
	t.Run("the sender's own key stays", func(t *testing.T) {
		td, sp := oiChat.stored(t)
		own, _ := get(sp, "input.value")
		redact(td, config.Redaction{Key: "llm.input_messages.*", Action: config.RedactDrop})
		if v, _ := get(sp, "input.value"); v != own {
			t.Errorf("input.value = %q, want the sender's %q", v, own)
		}
		if _, ok := get(sp, "llm.input_messages.0.message.content"); ok {
			t.Error("the rule's own key was not dropped")
		}
	})
	t.Run("ids", func(t *testing.T) {
		td, sp := ids.stored(t)
		redact(td, config.Redaction{Key: "enduser.id", Action: config.RedactMask})
		if v, _ := get(sp, "user.id"); v != Masked {
			t.Errorf("user.id = %q, want %q", v, Masked)
		}
		if v, _ := get(sp, "session.id"); v != "SECRET-session" {
			t.Errorf("session.id = %q: a key the rules did not touch changed", v)
		}
	})
	t.Run("exception event", func(t *testing.T) {
		td, sp := failed.stored(t)
		if v, _ := get(sp, "exception.message"); v != "bad "+sExc {
			t.Fatalf("stored exception.message %q; the test expects the event's message", v)
		}
		redact(td, config.Redaction{Key: "exception.message", Action: config.RedactMask})
		ev, _ := sp.Events().At(0).Attributes().Get("exception.message")
		if v, _ := get(sp, "exception.message"); v != Masked || ev.AsString() != Masked {
			t.Errorf("exception.message = %q on the span, %q on the event; want both masked", v, ev.AsString())
		}
	})
	t.Run("no rule hits", func(t *testing.T) {
		td, sp := genAIChat.stored(t)
		before := sp.Attributes().AsRaw()
		redact(td, config.Redaction{Key: "not.there", Action: config.RedactDrop})
		if got := sp.Attributes().AsRaw(); len(got) != len(before) || got["input.value"] != before["input.value"] {
			t.Errorf("attributes changed without a rule hitting: %v", got)
		}
	})
}

func TestCompileRedactions(t *testing.T) {
	rules := compileRedactions([]config.Redaction{{Key: "kern.usage.*", Action: config.RedactHash}, {Key: "user.email", Action: config.RedactMask}})
	keys := map[string]string{}
	for _, r := range rules {
		keys[r.Key] = r.Action
	}
	for _, k := range []string{"kern.usage.*", "user.email", "gen_ai.usage.input_tokens", "llm.token_count.completion", "agno.usage.total_tokens"} {
		if _, ok := keys[k]; !ok {
			t.Errorf("no rule for %s in %v", k, rules)
		}
	}
	if keys["gen_ai.usage.input_tokens"] != config.RedactHash || keys["user.email"] != config.RedactMask {
		t.Errorf("actions %v", keys)
	}
	if compileRedactions(nil) != nil {
		t.Error("no rules must compile to none")
	}
}
