// Package apitest builds trace data for the API and web page tests: agent
// and team runs shaped like the ones AgentOS emits, already normalised to
// agno_spans rows with the gateway's kern.* attributes.
package apitest

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/kern-agents/trace-gateway/internal/model"
	"github.com/kern-agents/trace-gateway/internal/semantics"
)

// Options shape the generated runs.
type Options struct {
	Traces     int       // number of runs (traces)
	Start      time.Time // start of the first run; runs follow each other
	Interval   time.Duration
	Users      int     // distinct user_ids, default 3
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
)

// UserID is the id of user i.
func UserID(i int) string { return fmt.Sprintf("user-%02d", i) }

// Runs generates opts.Traces runs. Every third run is a team run whose
// leader delegates to TeamMember (a sub-run with LLM and tool calls); the
// others are agent runs with hooks, retrieval, an LLM call and a tool call.
// In a share ErrorRatio of runs the search_web tool fails with a
// TimeoutError, which marks the span and so the trace as ERROR.
func Runs(opts Options) []model.Span {
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
	var out []model.Span
	for i := 0; i < opts.Traces; i++ {
		g := &gen{rng: rng, traceID: hexID(rng, 16), at: opts.Start.Add(time.Duration(i) * opts.Interval)}
		g.user = UserID(i % opts.Users)
		g.session = fmt.Sprintf("session-%03d", i/2)
		g.run = fmt.Sprintf("run-%05d", i)
		fail := rng.Float64() < opts.ErrorRatio
		if i%3 == 0 {
			g.teamRun(fail)
		} else {
			g.agentRun(fail)
		}
		out = append(out, g.spans...)
	}
	return out
}

type gen struct {
	rng                *rand.Rand
	traceID            string
	at                 time.Time
	user, session, run string
	spans              []model.Span
}

func hexID(rng *rand.Rand, n int) string {
	const digits = "0123456789abcdef"
	b := make([]byte, 2*n)
	for i := range b {
		b[i] = digits[rng.IntN(16)]
	}
	return string(b)
}

// span appends a span starting at start lasting d and returns its id.
func (g *gen) span(parent, name, kind string, start time.Time, d time.Duration, attrs map[string]any, errMsg string) string {
	id := hexID(g.rng, 8)
	status := model.StatusOK
	if errMsg != "" {
		status = model.StatusError
	}
	attrs[model.KeyResource] = map[string]any{"service.name": "agentos", "telemetry.sdk.language": "python"}
	b, err := json.Marshal(attrs)
	if err != nil {
		panic(err)
	}
	end := start.Add(d)
	g.spans = append(g.spans, model.Span{
		SpanID: id, TraceID: g.traceID, ParentSpanID: parent, Name: name, SpanKind: kind,
		StatusCode: status, StatusMessage: errMsg,
		StartTime: model.FormatTime(start), EndTime: model.FormatTime(end), DurationMS: d.Milliseconds(),
		Attributes: b, CreatedAt: model.FormatTime(end.Add(time.Second)),
	})
	return id
}

func (g *gen) ms(lo, hi int) time.Duration {
	return time.Duration(lo+g.rng.IntN(hi-lo+1)) * time.Millisecond
}

func (g *gen) ids(m map[string]any) map[string]any {
	m[model.KeyUserID] = g.user
	m[model.KeySessionID] = g.session
	m[model.KeyRunID] = g.run
	m["user.id"] = g.user
	m["session.id"] = g.session
	return m
}

func (g *gen) llm(parent string, at time.Time, modelName, prompt, completion string, toolCalls []any) time.Duration {
	d := g.ms(300, 1800)
	in, out := 200+g.rng.IntN(800), 20+g.rng.IntN(300)
	attrs := map[string]any{
		model.KeySpanType:           semantics.TypeLLM,
		semantics.KeyModel:          modelName,
		semantics.KeyInput:          prompt,
		semantics.KeyOutput:         completion,
		semantics.KeyInputTokens:    in,
		semantics.KeyOutputTokens:   out,
		semantics.KeyTotalTokens:    in + out,
		semantics.KeyTemperature:    0.2,
		"gen_ai.operation.name":     "chat",
		"gen_ai.request.model":      modelName,
		"gen_ai.usage.input_tokens": in,
	}
	if len(toolCalls) > 0 {
		attrs[semantics.KeyToolCalls] = toolCalls
	}
	g.span(parent, "chat "+modelName, "CLIENT", at, d, attrs, "")
	return d
}

func (g *gen) tool(parent string, at time.Time, name, args, result string, fail bool) time.Duration {
	d := g.ms(50, 900)
	attrs := map[string]any{
		model.KeySpanType:            semantics.TypeTool,
		semantics.KeyToolName:        name,
		semantics.KeyToolArguments:   args,
		semantics.KeyInput:           args,
		"gen_ai.operation.name":      "execute_tool",
		"gen_ai.tool.name":           name,
		"gen_ai.tool.call.arguments": args,
	}
	errMsg := ""
	if fail {
		errMsg = fmt.Sprintf("%s (run %s)", ExceptionPrefix, g.run)
		d = 30 * time.Second
		attrs[semantics.KeyExceptionType] = ExceptionType
		attrs[semantics.KeyExceptionMessage] = errMsg
		attrs[model.KeyEvents] = []any{map[string]any{
			"name": "exception", "time": model.FormatTime(at.Add(d)),
			"attributes": map[string]any{"exception.type": ExceptionType, "exception.message": errMsg},
		}}
	} else {
		attrs[semantics.KeyToolResult] = result
		attrs[semantics.KeyOutput] = result
	}
	g.span(parent, "execute_tool "+name, "INTERNAL", at, d, attrs, errMsg)
	return d
}

func (g *gen) hook(parent string, at time.Time, typ, name, in, out string) time.Duration {
	d := g.ms(1, 30)
	g.span(parent, typ+" "+name, "INTERNAL", at, d, map[string]any{
		model.KeySpanType: typ, semantics.KeyHookName: name, semantics.KeyInput: in, semantics.KeyOutput: out,
	}, "")
	return d
}

func (g *gen) agentRun(fail bool) {
	rootID := hexID(g.rng, 8)
	t := g.at.Add(g.ms(1, 5))
	t = t.Add(g.hook(rootID, t, semantics.TypePreHook, "validate_input", `{"message":"What is the weather in Paris?"}`, `{"message":"What is the weather in Paris?"}`))
	q := "weather Paris"
	d := g.ms(20, 200)
	g.span(rootID, "knowledge.search", "INTERNAL", t, d, map[string]any{
		model.KeySpanType:                 semantics.TypeRetrieval,
		semantics.KeyRetrievalQuery:       q,
		semantics.KeyInput:                q,
		semantics.KeyRetrievalVectorStore: "pgvector",
		semantics.KeyRetrievalK:           3,
		semantics.KeyRetrievalDocuments:   []any{map[string]any{"id": "doc-1", "content": "Paris weather guide", "score": 0.91}, map[string]any{"id": "doc-2", "content": "France climate", "score": 0.72}},
		semantics.KeyRetrievalScores:      []any{0.91, 0.72},
	}, "")
	t = t.Add(d)
	calls := []any{map[string]any{"name": FailingTool, "arguments": `{"query":"weather Paris"}`, "id": "call_1"}}
	t = t.Add(g.llm(rootID, t, ModelLeader, `[{"role":"user","content":"What is the weather in Paris?"}]`, `[{"role":"assistant","content":""}]`, calls))
	t = t.Add(g.tool(rootID, t, FailingTool, `{"query":"weather Paris"}`, `{"results":["Sunny, 24°C"]}`, fail))
	t = t.Add(g.llm(rootID, t, ModelLeader, `[{"role":"tool","content":"Sunny, 24°C"}]`, `[{"role":"assistant","content":"It is sunny and 24°C in Paris."}]`, nil))
	t = t.Add(g.hook(rootID, t, semantics.TypePostHook, "redact_pii", "It is sunny and 24°C in Paris.", "It is sunny and 24°C in Paris."))
	g.finishRoot(rootID, "Agent.run "+AgentName, t.Add(g.ms(1, 5)), map[string]any{
		model.KeySpanType: semantics.TypeRun, semantics.KeyRunKind: "agent", model.KeyAgentID: AgentName,
		semantics.KeyModel: ModelLeader, semantics.KeyInput: "What is the weather in Paris?",
	})
}

func (g *gen) teamRun(fail bool) {
	rootID := hexID(g.rng, 8)
	t := g.at.Add(g.ms(1, 5))
	calls := []any{map[string]any{"name": "delegate_task_to_member", "arguments": `{"member_id":"` + TeamMember + `"}`, "id": "call_d"}}
	t = t.Add(g.llm(rootID, t, ModelLeader, `[{"role":"user","content":"Summarise today's AI news"}]`, `[{"role":"assistant","content":""}]`, calls))

	// Delegation with the member's sub-run under it.
	delID := hexID(g.rng, 8)
	dStart := t
	mStart := t.Add(g.ms(1, 5))
	memberRun := hexID(g.rng, 8)
	mt := mStart.Add(g.ms(1, 5))
	mt = mt.Add(g.llm(memberRun, mt, ModelMember, `[{"role":"user","content":"Find today's AI news"}]`, `[{"role":"assistant","content":""}]`,
		[]any{map[string]any{"name": FailingTool, "arguments": `{"query":"AI news today"}`, "id": "call_2"}}))
	mt = mt.Add(g.tool(memberRun, mt, FailingTool, `{"query":"AI news today"}`, `{"results":["Model X released"]}`, fail))
	mt = mt.Add(g.llm(memberRun, mt, ModelMember, `[{"role":"tool","content":"Model X released"}]`, `[{"role":"assistant","content":"Model X was released."}]`, nil))
	mEnd := mt.Add(g.ms(1, 5))
	g.spanWithID(memberRun, delID, "Agent.run "+TeamMember, mStart, mEnd, map[string]any{
		model.KeySpanType: semantics.TypeRun, semantics.KeyRunKind: "agent", model.KeyAgentID: TeamMember, semantics.KeyModel: ModelMember,
	}, "")
	dEnd := mEnd.Add(g.ms(1, 5))
	g.spanWithID(delID, rootID, "delegate_task_to_member "+TeamMember, dStart, dEnd, map[string]any{
		model.KeySpanType: semantics.TypeDelegation, semantics.KeyDelegationMember: TeamMember, semantics.KeyDelegationMode: "coordinate",
		semantics.KeyInput: "Find today's AI news",
	}, "")
	t = dEnd
	t = t.Add(g.llm(rootID, t, ModelLeader, `[{"role":"user","content":"member answered"}]`, `[{"role":"assistant","content":"Here is today's AI news."}]`, nil))
	g.finishRoot(rootID, "Team.run "+TeamName, t.Add(g.ms(1, 5)), map[string]any{
		model.KeySpanType: semantics.TypeRun, semantics.KeyRunKind: "team", model.KeyTeamID: TeamName,
		semantics.KeyModel: ModelLeader, semantics.KeyInput: "Summarise today's AI news",
	})
}

// spanWithID appends a span whose id was chosen before its children.
func (g *gen) spanWithID(id, parent, name string, start, end time.Time, attrs map[string]any, errMsg string) {
	n := len(g.spans)
	g.span(parent, name, "INTERNAL", start, end.Sub(start), attrs, errMsg)
	g.spans[n].SpanID = id
}

func (g *gen) finishRoot(id, name string, end time.Time, attrs map[string]any) {
	g.spanWithID(id, "", name, g.at, end, g.ids(attrs), "")
}

// BigTrace is one run with n spans: a team leader delegating to n/10
// members, each with an LLM call, tools and hooks (depth 4).
func BigTrace(n int, at time.Time) []model.Span {
	tid := strings.Repeat("5e", 16)
	var spans []model.Span
	id := func(i int) string { return fmt.Sprintf("%016x", i+1) }
	add := func(i int, parent int, typ string, off time.Duration) {
		p := ""
		if parent >= 0 {
			p = id(parent)
		}
		attrs := fmt.Sprintf(`{"kern.span.type":%q,"kern.input":"input of span %d","kern.model":"gpt-4o","kern.usage.input_tokens":%d}`, typ, i, i)
		spans = append(spans, model.Span{SpanID: id(i), TraceID: tid, ParentSpanID: p, Name: typ + " " + id(i), SpanKind: "INTERNAL",
			StatusCode: model.StatusOK, StartTime: model.FormatTime(at.Add(off)), EndTime: model.FormatTime(at.Add(off + 50*time.Millisecond)),
			DurationMS: 50, Attributes: []byte(attrs), CreatedAt: model.FormatTime(at)})
	}
	add(0, -1, "run", 0)
	parent := 0
	for i := 1; i < n; i++ {
		switch {
		case i%10 == 1:
			add(i, 0, "delegation", time.Duration(i)*time.Millisecond)
			parent = i
		case i%10 == 2:
			add(i, parent, "run", time.Duration(i)*time.Millisecond)
			parent = i
		default:
			add(i, parent, []string{"llm", "tool", "pre_hook", "retrieval"}[i%4], time.Duration(i)*time.Millisecond)
		}
	}
	return spans
}
