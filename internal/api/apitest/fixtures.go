// Package apitest builds trace data for the API and web page tests: agent
// and team runs shaped like the ones AgentOS emits, sent as OTLP with the
// keys real senders use (OpenInference, agno.*, OTel GenAI) and converted
// by the receiver's converter into agno_spans rows.
package apitest

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/kern-agents/trace-gateway/internal/convert"
	"github.com/kern-agents/trace-gateway/internal/model"
	"github.com/kern-agents/trace-gateway/internal/semantics"
)

// Options shape the generated runs.
type Options struct {
	Traces     int       // number of runs (traces)
	Start      time.Time // start of the first run; runs follow each other
	Interval   time.Duration
	Users      int     // distinct user ids, default 3
	ErrorRatio float64 // share of runs in which a tool call fails
	Seed       uint64
}

// Known values the generated data uses, for assertions.
const (
	TeamName        = "research-team"
	TeamMember      = "web-researcher"
	AgentName       = "support-agent"
	FailingTool     = "search_web"
	ExceptionType   = "TimeoutError"
	ExceptionPrefix = "search_web timed out after 30s"
	ModelLeader     = "gpt-4o"
	ModelMember     = "gpt-4o-mini"
	ServiceName     = "agentos"
	ScopeName       = "openinference.instrumentation.agno"
	VectorStore     = "pgvector"
	DelegationTool  = "delegate_task_to_member"
)

// UserID is the id of user i.
func UserID(i int) string { return fmt.Sprintf("user-%02d", i) }

// Runs generates opts.Traces runs. Every third run is a team run whose
// leader delegates to TeamMember (a sub-run with LLM and tool calls); the
// others are agent runs with guardrail hooks, retrieval, LLM calls and a
// tool call. In a share ErrorRatio of runs the search_web tool fails with a
// TimeoutError, which marks the span and so the trace as ERROR.
//
// The conventions are mixed as in a real deployment: runs, hooks, retrieval
// and the delegation carry OpenInference and agno.* keys; the leader's LLM
// calls and the tools carry only OTel GenAI keys; the member's LLM calls
// carry OpenInference keys. The converter adds what AgentOS reads.
func Runs(opts Options) []model.Span {
	return convertOTLP(RunsOTLP(opts))
}

// RunsOTLP is Runs before conversion, as the sender exports it.
func RunsOTLP(opts Options) ptrace.Traces {
	if opts.Users <= 0 {
		opts.Users = 3
	}
	if opts.Interval <= 0 {
		opts.Interval = time.Second
	}
	if opts.Start.IsZero() {
		opts.Start = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	}
	rng := rand.New(rand.NewPCG(opts.Seed, 0x6b65726e))
	td, spans := newTraces()
	for i := 0; i < opts.Traces; i++ {
		g := &gen{rng: rng, out: spans, at: opts.Start.Add(time.Duration(i) * opts.Interval)}
		binary.BigEndian.PutUint64(g.traceID[:8], rng.Uint64())
		binary.BigEndian.PutUint64(g.traceID[8:], rng.Uint64()|1)
		g.user = UserID(i % opts.Users)
		g.session = fmt.Sprintf("session-%03d", i/2)
		g.run = fmt.Sprintf("run-%05d", i)
		fail := rng.Float64() < opts.ErrorRatio
		if i%3 == 0 {
			g.teamRun(fail)
		} else {
			g.agentRun(fail)
		}
	}
	return td
}

// newTraces returns OTLP data with one resource and scope, as one AgentOS
// process exports it, and the span list to fill.
func newTraces() (ptrace.Traces, ptrace.SpanSlice) {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", ServiceName)
	rs.Resource().Attributes().PutStr("telemetry.sdk.language", "python")
	ss := rs.ScopeSpans().AppendEmpty()
	ss.Scope().SetName(ScopeName)
	ss.Scope().SetVersion("0.1.20")
	return td, ss.Spans()
}

// convertOTLP converts as the receiver does; the fixtures are valid, so a
// rejection is a bug in them.
func convertOTLP(td ptrace.Traces) []model.Span {
	spans, rejected := convert.FromOTLP(td, time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC), convert.Limits{})
	if len(rejected) > 0 {
		panic(fmt.Sprintf("apitest: converter rejected %d spans, first: %v", len(rejected), rejected[0]))
	}
	return spans
}

type gen struct {
	rng                *rand.Rand
	out                ptrace.SpanSlice
	traceID            pcommon.TraceID
	at                 time.Time
	user, session, run string
}

func (g *gen) newID() pcommon.SpanID {
	var id pcommon.SpanID
	binary.BigEndian.PutUint64(id[:], g.rng.Uint64()|1)
	return id
}

// span appends a span with a chosen id starting at start lasting d; a
// non-empty errMsg fails it.
func (g *gen) span(id, parent pcommon.SpanID, name string, kind ptrace.SpanKind, start time.Time, d time.Duration, attrs map[string]any, errMsg string) ptrace.Span {
	sp := g.out.AppendEmpty()
	sp.SetTraceID(g.traceID)
	sp.SetSpanID(id)
	sp.SetParentSpanID(parent)
	sp.SetName(name)
	sp.SetKind(kind)
	sp.SetStartTimestamp(pcommon.NewTimestampFromTime(start))
	sp.SetEndTimestamp(pcommon.NewTimestampFromTime(start.Add(d)))
	if err := sp.Attributes().FromRaw(attrs); err != nil {
		panic(err)
	}
	if errMsg != "" {
		sp.Status().SetCode(ptrace.StatusCodeError)
		sp.Status().SetMessage(errMsg)
	} else {
		sp.Status().SetCode(ptrace.StatusCodeOk)
	}
	return sp
}

func (g *gen) ms(lo, hi int) time.Duration {
	return time.Duration(lo+g.rng.IntN(hi-lo+1)) * time.Millisecond
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// call is a tool call an LLM asks for.
type call struct{ id, name, args string }

// llmGenAI is an LLM call described with OTel GenAI keys only.
func (g *gen) llmGenAI(parent pcommon.SpanID, at time.Time, modelName, prompt, completion string, calls []call) time.Duration {
	d := g.ms(300, 1800)
	in, out := 200+g.rng.IntN(800), 20+g.rng.IntN(300)
	parts := []any{map[string]any{"type": "text", "content": completion}}
	for _, c := range calls {
		parts = append(parts, map[string]any{"type": "tool_call", "id": c.id, "name": c.name, "arguments": c.args})
	}
	g.span(g.newID(), parent, "chat "+modelName, ptrace.SpanKindClient, at, d, map[string]any{
		"gen_ai.operation.name":      "chat",
		"gen_ai.provider.name":       "openai",
		"gen_ai.request.model":       modelName,
		"gen_ai.request.temperature": 0.2,
		"gen_ai.usage.input_tokens":  in,
		"gen_ai.usage.output_tokens": out,
		"gen_ai.input.messages":      mustJSON([]any{map[string]any{"role": "user", "parts": []any{map[string]any{"type": "text", "content": prompt}}}}),
		"gen_ai.output.messages":     mustJSON([]any{map[string]any{"role": "assistant", "parts": parts}}),
	}, "")
	return d
}

// llmOpenInference is an LLM call described with OpenInference keys, tool
// calls flattened as the OpenInference instrumentors write them.
func (g *gen) llmOpenInference(parent pcommon.SpanID, at time.Time, modelName, prompt, completion string, calls []call) time.Duration {
	d := g.ms(300, 1800)
	in, out := 200+g.rng.IntN(800), 20+g.rng.IntN(300)
	attrs := map[string]any{
		"openinference.span.kind":               "LLM",
		"llm.model_name":                        modelName,
		"llm.provider":                          "openai",
		"llm.invocation_parameters":             `{"temperature": 0.2}`,
		"llm.token_count.prompt":                in,
		"llm.token_count.completion":            out,
		"llm.token_count.total":                 in + out,
		"input.value":                           prompt,
		"output.value":                          completion,
		"llm.output_messages.0.message.role":    "assistant",
		"llm.output_messages.0.message.content": completion,
	}
	for i, c := range calls {
		p := fmt.Sprintf("llm.output_messages.0.message.tool_calls.%d.tool_call.", i)
		attrs[p+"id"] = c.id
		attrs[p+"function.name"] = c.name
		attrs[p+"function.arguments"] = c.args
	}
	g.span(g.newID(), parent, modelName+".invoke", ptrace.SpanKindInternal, at, d, attrs, "")
	return d
}

// tool is a tool execution described with OTel GenAI keys; a failing one
// records the exception event and an error status as OTel SDKs do.
func (g *gen) tool(parent pcommon.SpanID, at time.Time, name, args, result string, fail bool) time.Duration {
	d := g.ms(50, 900)
	attrs := map[string]any{
		"gen_ai.operation.name":      "execute_tool",
		"gen_ai.tool.name":           name,
		"gen_ai.tool.call.arguments": args,
	}
	errMsg := ""
	if fail {
		errMsg = fmt.Sprintf("%s (run %s)", ExceptionPrefix, g.run)
		d = 30 * time.Second
	} else {
		attrs["gen_ai.tool.call.result"] = result
	}
	sp := g.span(g.newID(), parent, "execute_tool "+name, ptrace.SpanKindInternal, at, d, attrs, errMsg)
	if fail {
		ev := sp.Events().AppendEmpty()
		ev.SetName("exception")
		ev.SetTimestamp(pcommon.NewTimestampFromTime(at.Add(d)))
		ev.Attributes().PutStr("exception.type", ExceptionType)
		ev.Attributes().PutStr("exception.message", errMsg)
	}
	return d
}

// hook is an agno pre/post hook (typ "pre" or "post"), run as a guardrail.
func (g *gen) hook(parent pcommon.SpanID, at time.Time, typ, name, in, out string) time.Duration {
	d := g.ms(1, 30)
	g.span(g.newID(), parent, typ+"_hook "+name, ptrace.SpanKindInternal, at, d, map[string]any{
		"openinference.span.kind": "GUARDRAIL",
		"agno.hook.type":          typ,
		"agno.hook.name":          name,
		"input.value":             in,
		"output.value":            out,
	}, "")
	return d
}

func (g *gen) retrieval(parent pcommon.SpanID, at time.Time, query string) time.Duration {
	d := g.ms(20, 200)
	attrs := map[string]any{
		"openinference.span.kind": "RETRIEVER",
		"input.value":             query,
		"db.system":               VectorStore,
		"gen_ai.request.top_k":    3,
	}
	for i, doc := range []struct {
		id, content string
		score       float64
	}{{"doc-1", "Paris weather guide", 0.91}, {"doc-2", "France climate", 0.72}} {
		p := fmt.Sprintf("retrieval.documents.%d.document.", i)
		attrs[p+"id"] = doc.id
		attrs[p+"content"] = doc.content
		attrs[p+"score"] = doc.score
	}
	g.span(g.newID(), parent, "knowledge.search", ptrace.SpanKindInternal, at, d, attrs, "")
	return d
}

// root appends the run's root span: an AgentOS agent or team run with the
// ids AgentOS puts on it.
func (g *gen) root(id pcommon.SpanID, name string, end time.Time, attrs map[string]any) {
	attrs["openinference.span.kind"] = "AGENT"
	attrs["agno.run.id"] = g.run
	attrs["session.id"] = g.session
	attrs["user.id"] = g.user
	g.span(id, pcommon.SpanID{}, name, ptrace.SpanKindInternal, g.at, end.Sub(g.at), attrs, "")
}

func (g *gen) agentRun(fail bool) {
	rootID := g.newID()
	t := g.at.Add(g.ms(1, 5))
	question := "What is the weather in Paris?"
	t = t.Add(g.hook(rootID, t, "pre", "validate_input", question, question))
	t = t.Add(g.retrieval(rootID, t, "weather Paris"))
	args := `{"query":"weather Paris"}`
	t = t.Add(g.llmGenAI(rootID, t, ModelLeader, question, "", []call{{"call_1", FailingTool, args}}))
	t = t.Add(g.tool(rootID, t, FailingTool, args, `{"results":["Sunny, 24°C"]}`, fail))
	answer := "It is sunny and 24°C in Paris."
	t = t.Add(g.llmGenAI(rootID, t, ModelLeader, "Sunny, 24°C", answer, nil))
	t = t.Add(g.hook(rootID, t, "post", "redact_pii", answer, answer))
	g.root(rootID, "Agent.run "+AgentName, t.Add(g.ms(1, 5)), map[string]any{
		"agno.agent.id": AgentName, "input.value": question, "output.value": answer,
	})
}

func (g *gen) teamRun(fail bool) {
	rootID := g.newID()
	t := g.at.Add(g.ms(1, 5))
	delegateArgs := `{"member_id":"` + TeamMember + `","task":"Find today's AI news"}`
	t = t.Add(g.llmGenAI(rootID, t, ModelLeader, "Summarise today's AI news", "", []call{{"call_d", DelegationTool, delegateArgs}}))

	// The delegation, with the member's sub-run under it.
	delID, memberRun := g.newID(), g.newID()
	dStart := t
	mStart := t.Add(g.ms(1, 5))
	mt := mStart.Add(g.ms(1, 5))
	args := `{"query":"AI news today"}`
	mt = mt.Add(g.llmOpenInference(memberRun, mt, ModelMember, "Find today's AI news", "", []call{{"call_2", FailingTool, args}}))
	mt = mt.Add(g.tool(memberRun, mt, FailingTool, args, `{"results":["Model X released"]}`, fail))
	mt = mt.Add(g.llmOpenInference(memberRun, mt, ModelMember, "Model X released", "Model X was released.", nil))
	mEnd := mt.Add(g.ms(1, 5))
	g.span(memberRun, delID, "Agent.run "+TeamMember, ptrace.SpanKindInternal, mStart, mEnd.Sub(mStart), map[string]any{
		"openinference.span.kind": "AGENT", "agno.agent.id": TeamMember, "agno.run.id": g.run + "-member",
		"input.value": "Find today's AI news", "output.value": "Model X was released.",
	}, "")
	dEnd := mEnd.Add(g.ms(1, 5))
	g.span(delID, rootID, DelegationTool+" "+TeamMember, ptrace.SpanKindInternal, dStart, dEnd.Sub(dStart), map[string]any{
		"openinference.span.kind": "TOOL", "tool.name": DelegationTool, "input.value": delegateArgs,
		"output.value": "Model X was released.",
	}, "")
	t = dEnd
	t = t.Add(g.llmGenAI(rootID, t, ModelLeader, "member answered", "Here is today's AI news.", nil))
	g.root(rootID, "Team.run "+TeamName, t.Add(g.ms(1, 5)), map[string]any{
		"agno.team.id": TeamName, "input.value": "Summarise today's AI news", "output.value": "Here is today's AI news.",
	})
}

// BigTraceID is the trace id of BigTrace.
const BigTraceID = "5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e"

// BigTrace is one run with n spans: a team leader delegating to n/10
// members, each with LLM calls, tools, hooks and retrievals (depth 4).
func BigTrace(n int, at time.Time) []model.Span {
	td, spans := newTraces()
	var tid pcommon.TraceID
	for i := range tid {
		tid[i] = 0x5e
	}
	id := func(i int) pcommon.SpanID {
		var s pcommon.SpanID
		binary.BigEndian.PutUint64(s[:], uint64(i+1))
		return s
	}
	add := func(i, parent int, attrs map[string]any, off time.Duration) {
		sp := spans.AppendEmpty()
		sp.SetTraceID(tid)
		sp.SetSpanID(id(i))
		if parent >= 0 {
			sp.SetParentSpanID(id(parent))
		}
		sp.SetName(fmt.Sprintf("span %d", i))
		sp.SetStartTimestamp(pcommon.NewTimestampFromTime(at.Add(off)))
		sp.SetEndTimestamp(pcommon.NewTimestampFromTime(at.Add(off + 50*time.Millisecond)))
		sp.Status().SetCode(ptrace.StatusCodeOk)
		attrs["input.value"] = fmt.Sprintf("input of span %d", i)
		if err := sp.Attributes().FromRaw(attrs); err != nil {
			panic(err)
		}
	}
	add(0, -1, map[string]any{"openinference.span.kind": "AGENT", "agno.team.id": TeamName, "agno.run.id": "run-big"}, 0)
	parent := 0
	for i := 1; i < n; i++ {
		off := time.Duration(i) * time.Millisecond
		switch {
		case i%10 == 1:
			add(i, 0, map[string]any{"openinference.span.kind": "TOOL", "tool.name": DelegationTool}, off)
			parent = i
		case i%10 == 2:
			add(i, parent, map[string]any{"openinference.span.kind": "AGENT", "agno.agent.id": TeamMember}, off)
			parent = i
		default:
			add(i, parent, [](func() map[string]any){
				func() map[string]any {
					return map[string]any{"gen_ai.operation.name": "chat", "gen_ai.request.model": ModelLeader, "gen_ai.usage.input_tokens": i}
				},
				func() map[string]any {
					return map[string]any{"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": FailingTool}
				},
				func() map[string]any {
					return map[string]any{"agno.hook.type": "pre", "agno.hook.name": "validate_input"}
				},
				func() map[string]any { return map[string]any{"openinference.span.kind": "RETRIEVER"} },
			}[i%4](), off)
		}
	}
	return convertOTLP(td)
}

// Annotated is the attributes a span with these sender attributes is stored
// with: the converter's semantics.Annotate applied, as JSON. For tests that
// build model.Span rows directly.
func Annotated(info semantics.Info, attrs map[string]any) []byte {
	semantics.Annotate(info, attrs)
	return []byte(mustJSON(attrs))
}
