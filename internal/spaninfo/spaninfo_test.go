package spaninfo

import (
	"testing"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/kern-agents/trace-gateway/internal/model"
	"github.com/kern-agents/trace-gateway/internal/semantics"
)

func TestInfo(t *testing.T) {
	sp := ptrace.NewSpan()
	sp.SetName("get_weather")
	sp.SetKind(ptrace.SpanKindClient)
	sp.SetParentSpanID(pcommon.SpanID{1, 2, 3, 4, 5, 6, 7, 8})
	sp.Status().SetCode(ptrace.StatusCodeError)
	sp.Status().SetMessage("timed out")
	sp.Events().AppendEmpty().SetName("log")
	ev := sp.Events().AppendEmpty()
	ev.SetName("exception")
	ev.Attributes().PutStr("exception.type", "TimeoutError")
	res := map[string]any{"agent_id": "a"}

	info := Info(sp, res)
	if info.Name != "get_weather" || info.Kind != "CLIENT" || info.StatusCode != model.StatusError ||
		info.StatusMessage != "timed out" || info.ParentSpanID != "0102030405060708" || info.Resource["agent_id"] != "a" {
		t.Fatalf("%+v", info)
	}
	if len(info.Events) != 1 || info.Events[0].Attributes["exception.type"] != "TimeoutError" {
		t.Fatalf("events %+v, want the exception event only", info.Events)
	}
	sp.Status().SetCode(ptrace.StatusCodeOk)
	if Info(sp, nil).StatusCode != model.StatusOK {
		t.Fatal("status OK")
	}
	sp.Status().SetCode(ptrace.StatusCodeUnset)
	if Info(sp, nil).StatusCode != model.StatusUnset {
		t.Fatal("status UNSET")
	}
}

// stored is sp as the gateway stores it: Annotate's keys added.
func stored(name string, attrs map[string]any) ptrace.Span {
	sp := ptrace.NewSpan()
	sp.SetName(name)
	semantics.Annotate(Info(sp, nil), attrs)
	if err := sp.Attributes().FromRaw(attrs); err != nil {
		panic(err)
	}
	return sp
}

func TestDerived(t *testing.T) {
	genAI := stored("chat gpt-4o", map[string]any{
		"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": int64(12),
		"gen_ai.input.messages": `[{"role":"user","parts":[{"type":"text","content":"hi"}]}]`,
	})
	for _, k := range []string{semantics.AttrInput, semantics.AttrModelName, semantics.AttrTokensPrompt, semantics.AttrSpanKind} {
		if !Derived(genAI, k) {
			t.Errorf("%s = %v: not derived, want derived", k, genAI.Attributes().AsRaw()[k])
		}
	}
	if Derived(genAI, semantics.AttrOutput) || Derived(genAI, "gen_ai.request.model") {
		t.Error("a key the span lacks or the sender's own key reported derived")
	}

	oi := stored("OpenAIChat.invoke", map[string]any{
		"openinference.span.kind": "LLM", "input.value": `{"messages":["hi"]}`, "llm.model_name": "gpt-4o",
		"llm.input_messages.0.message.role": "user", "llm.input_messages.0.message.content": "hi",
	})
	if Derived(oi, semantics.AttrInput) || Derived(oi, semantics.AttrModelName) {
		t.Errorf("an OpenInference sender's own values reported derived: %v", oi.Attributes().AsRaw())
	}
	// A value changed after storing (a redaction, say) is not derived.
	genAI.Attributes().PutStr(semantics.AttrInput, "***")
	if Derived(genAI, semantics.AttrInput) {
		t.Error("a changed value reported derived")
	}
}

func TestSame(t *testing.T) {
	v := pcommon.NewValueInt(165)
	d := pcommon.NewValueDouble(165)
	s := pcommon.NewValueStr("165")
	for _, tt := range []struct {
		cur  pcommon.Value
		v    any
		want bool
	}{
		{v, int64(165), true}, {d, int64(165), true}, {v, 165.0, true},
		{s, "165", true}, {v, "165", false}, {s, int64(165), true}, {v, int64(1), false},
		{s, map[string]any{"a": 1}, false}, {s, make(chan int), false},
	} {
		if got := Same(tt.cur, tt.v); got != tt.want {
			t.Errorf("Same(%s %q, %#v) = %t, want %t", tt.cur.Type(), tt.cur.AsString(), tt.v, got, tt.want)
		}
	}
}
