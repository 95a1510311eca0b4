package facts

import (
	"reflect"
	"testing"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/kern-agents/trace-gateway/exporters/internal/fixture"
	"github.com/kern-agents/trace-gateway/internal/semantics"
)

// find returns the stored fixture span named name and its resource.
func find(t *testing.T, td ptrace.Traces, name string) (pcommon.Resource, ptrace.Span) {
	t.Helper()
	for _, rs := range td.ResourceSpans().All() {
		for _, ss := range rs.ScopeSpans().All() {
			for _, s := range ss.Spans().All() {
				if s.Name() == name {
					return rs.Resource(), s
				}
			}
		}
	}
	t.Fatalf("no span %s", name)
	return pcommon.Resource{}, ptrace.Span{}
}

// read is Read of the stored fixture span named name.
func read(t *testing.T, name string) Facts {
	t.Helper()
	return Read(find(t, fixture.AgentRun(), name))
}

func TestReadLLM(t *testing.T) {
	f := read(t, fixture.LLM)
	if f.Type != semantics.TypeLLM || f.Model != fixture.LLMModel || f.Input != fixture.LLMInput || f.Output != fixture.LLMOutput {
		t.Fatalf("%+v", f)
	}
	if !f.HasInputTokens || f.InputTokens != 120 || f.OutputTokens != 45 || f.TotalTokens != 165 || !f.Usage() {
		t.Fatalf("tokens %+v", f)
	}
	if !f.HasTemperature || f.Temperature != 0.2 || f.Failed {
		t.Fatalf("temperature/failed %+v", f)
	}
}

func TestReadToolFailure(t *testing.T) {
	f := read(t, fixture.Tool)
	if !f.Failed || f.ErrorMessage() != "TimeoutError: weather API timed out" || f.SpanInput() != fixture.ToolArgs || f.SpanOutput() != "" {
		t.Fatalf("%+v", f)
	}
}

func TestReadRetrieval(t *testing.T) {
	f := read(t, fixture.Retrieval)
	if len(f.Documents) != 2 || f.Documents[0].ID != "doc-1" || f.Documents[1].Score != 0.87 || !f.HasRetrievalK || f.RetrievalK != 2 {
		t.Fatalf("%+v", f)
	}
	if f.SpanInput() != fixture.Query || f.SpanOutput() != DocumentsJSON(f.Documents) {
		t.Fatalf("input %q output %q", f.SpanInput(), f.SpanOutput())
	}
}

// TestValueShapes: senders send numbers as doubles or text, ids as
// integers and structured values where text is expected; Read accepts them.
func TestValueShapes(t *testing.T) {
	res := pcommon.NewResource()
	llm := ptrace.NewSpan()
	a := llm.Attributes()
	a.PutStr("gen_ai.operation.name", "chat")
	a.PutDouble("gen_ai.usage.input_tokens", 12)
	a.PutStr("gen_ai.usage.output_tokens", " 8 ")
	a.PutInt("gen_ai.request.temperature", 1)
	a.PutEmptyMap("gen_ai.input.messages").PutStr("q", "x")
	f := Read(res, llm)
	if f.InputTokens != 12 || f.OutputTokens != 8 || !f.HasTotalTokens || f.TotalTokens != 20 || f.Temperature != 1 {
		t.Fatalf("numbers %+v", f)
	}
	if f.Input != `{"q":"x"}` {
		t.Fatalf("structured input read as %q", f.Input)
	}

	ret := ptrace.NewSpan()
	a = ret.Attributes()
	a.PutStr("gen_ai.operation.name", "retrieval")
	docs := a.PutEmptySlice("gen_ai.retrieval.documents")
	d := docs.AppendEmpty().SetEmptyMap()
	d.PutInt("id", 7)
	d.PutStr("content", "c")
	d.PutDouble("score", 0.5)
	docs.AppendEmpty().SetStr("not a document")
	f = Read(res, ret)
	if len(f.Documents) != 1 || f.Documents[0].ID != "7" || f.Documents[0].Content != "c" || !f.Documents[0].HasScore {
		t.Fatalf("documents %+v", f.Documents)
	}
}

// TestStoredFactsAreSentFacts: the keys the gateway adds when storing a
// span never change what the span's facts are.
func TestStoredFactsAreSentFacts(t *testing.T) {
	sent, stored := fixture.Sent(), fixture.AgentRun()
	if sent.SpanCount() != stored.SpanCount() {
		t.Fatalf("%d spans sent, %d stored", sent.SpanCount(), stored.SpanCount())
	}
	Each(sent, func(res pcommon.Resource, s ptrace.Span) {
		want := Read(res, s)
		got := Read(find(t, stored, s.Name()))
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s:\nstored %+v\n  sent %+v", s.Name(), got, want)
		}
	})
}

func TestErrorMessage(t *testing.T) {
	for _, tt := range []struct {
		f    Facts
		want string
	}{
		{Facts{ExceptionType: "E", ExceptionMessage: "m"}, "E: m"},
		{Facts{ExceptionMessage: "m"}, "m"},
		{Facts{ExceptionType: "E", StatusMessage: "s"}, "E: s"},
		{Facts{ExceptionType: "E"}, "E"},
		{Facts{StatusMessage: "s"}, "s"},
	} {
		if got := tt.f.ErrorMessage(); got != tt.want {
			t.Errorf("%+v: %q, want %q", tt.f, got, tt.want)
		}
	}
}

func TestCollectPrefersRootThenEarliest(t *testing.T) {
	td := fixture.AgentRun()
	tf := Collect(td)[fixture.TraceID]
	if tf.RootName != fixture.TeamRun || tf.RunID != fixture.TeamRunID || tf.AgentID != fixture.AgentID ||
		tf.UserID != fixture.UserID || tf.TeamID != fixture.TeamID {
		t.Fatalf("%+v", tf)
	}
	// Without the root, the earliest span with a run id gives it.
	td.ResourceSpans().At(0).ScopeSpans().At(0).Spans().RemoveIf(func(s ptrace.Span) bool { return s.Name() == fixture.TeamRun })
	tf = Collect(td)[fixture.TraceID]
	if tf.RootName != "" || tf.RunID != fixture.MemberRunID || tf.UserID != "" {
		t.Fatalf("%+v", tf)
	}
}

func TestEnsureExceptionEvent(t *testing.T) {
	res, s := find(t, fixture.AgentRun(), fixture.Tool)
	f := Read(res, s)
	EnsureExceptionEvent(s, f)
	EnsureExceptionEvent(s, f)
	if s.Events().Len() != 1 {
		t.Fatalf("%d events, want exactly one", s.Events().Len())
	}
	ev := s.Events().At(0)
	if ev.Name() != "exception" || Text(ev.Attributes(), "exception.type") != fixture.ExcType || ev.Timestamp() != s.EndTimestamp() {
		t.Fatalf("event %s %v", ev.Name(), ev.Attributes().AsRaw())
	}
	res, ok := find(t, fixture.AgentRun(), fixture.LLM)
	EnsureExceptionEvent(ok, Read(res, ok))
	if ok.Events().Len() != 0 {
		t.Fatal("event added to a span without an exception")
	}
}

func TestPutKeepsSenderValues(t *testing.T) {
	a := pcommon.NewMap()
	a.PutStr("k", "sender")
	PutStr(a, "k", "derived")
	PutStr(a, "empty", "")
	PutInt(a, "n", 1, false)
	PutDouble(a, "d", 1.5, true)
	if Text(a, "k") != "sender" || a.Len() != 2 {
		t.Fatalf("%v", a.AsRaw())
	}
}

func TestJSONValue(t *testing.T) {
	for in, want := range map[string]string{
		`{"a":1}`: `{"a":1}`, ` [1,2] `: `[1,2]`, "plain": `"plain"`, "42": `"42"`, `{"broken"`: `"{\"broken\""`,
	} {
		if got := JSONValue(in); got != want {
			t.Errorf("JSONValue(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestKindsOf(t *testing.T) {
	k := Kinds{Agent: "a", Workflow: "w", LLM: "l", Embedding: "e", Tool: "t", Retrieval: "r", Hook: "h", Delegation: "d", Other: "o"}
	for _, tt := range []struct {
		f    Facts
		want string
	}{
		{Facts{Type: semantics.TypeRun, RunKind: "agent"}, "a"},
		{Facts{Type: semantics.TypeRun, RunKind: "team"}, "a"},
		{Facts{Type: semantics.TypeRun}, "a"},
		{Facts{Type: semantics.TypeRun, RunKind: "workflow"}, "w"},
		{Facts{Type: semantics.TypeLLM}, "l"},
		{Facts{Type: semantics.TypeEmbedding}, "e"},
		{Facts{Type: semantics.TypeTool}, "t"},
		{Facts{Type: semantics.TypeRetrieval}, "r"},
		{Facts{Type: semantics.TypePreHook}, "h"},
		{Facts{Type: semantics.TypePostHook}, "h"},
		{Facts{Type: semantics.TypeDelegation}, "d"},
		{Facts{Type: semantics.TypeOther}, "o"},
		{Facts{}, "o"},
	} {
		if got := k.Of(tt.f); got != tt.want {
			t.Errorf("%q/%q: %q, want %q", tt.f.Type, tt.f.RunKind, got, tt.want)
		}
	}
}

func TestMetadataAndUsage(t *testing.T) {
	f := read(t, fixture.Retrieval)
	if got, want := MarshalJSON(f.Metadata()), `{"retrieval_k":"2","vector_store":"pgvector"}`; got != want {
		t.Errorf("retrieval metadata %s, want %s", got, want)
	}
	if f.TokenUsage("in", "out", "total") != nil || f.InvocationParams() != "" {
		t.Errorf("usage %v, params %q for a span without them", f.TokenUsage("in", "out", "total"), f.InvocationParams())
	}
	f = read(t, fixture.LLM)
	if got, want := MarshalJSON(f.TokenUsage("in", "out", "total")), `{"in":120,"out":45,"total":165}`; got != want {
		t.Errorf("LLM usage %s, want %s", got, want)
	}
	if got, want := f.InvocationParams(), `{"temperature":0.2}`; got != want {
		t.Errorf("LLM params %s, want %s", got, want)
	}
	// The sender sent only the prompt count: the total is the sum.
	f = read(t, fixture.Embedding)
	if got, want := MarshalJSON(f.TokenUsage("in", "out", "total")), `{"in":4,"total":4}`; got != want {
		t.Errorf("embedding usage %s, want %s", got, want)
	}
	f = read(t, fixture.Delegation)
	want := `{"delegation_member":"weather-agent","delegation_mode":"coordinate"}`
	if got := MarshalJSON(f.Metadata()); got != want {
		t.Errorf("delegation metadata %s, want %s", got, want)
	}
}

func TestMapSpans(t *testing.T) {
	in := fixture.AgentRun()
	seen := map[string]string{}
	out := MapSpans(in, func(s ptrace.Span, f Facts, tf *TraceFacts) {
		seen[s.Name()] = f.Type + " " + tf.RootName
		s.Attributes().PutStr("mapped", f.Type)
	})
	if len(seen) != in.SpanCount() || seen[fixture.LLM] != semantics.TypeLLM+" "+fixture.TeamRun {
		t.Fatalf("spans seen: %v", seen)
	}
	if s, _ := fixture.Find(out, fixture.Tool); Text(s.Attributes(), "mapped") != semantics.TypeTool {
		t.Fatal("the mapping's changes are missing from the result")
	}
	if s, _ := fixture.Find(in, fixture.Tool); Text(s.Attributes(), "mapped") != "" {
		t.Fatal("MapSpans modified its input")
	}
}
