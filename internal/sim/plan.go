package sim

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// convention is the attribute vocabulary one simulated run is written in.
type convention int

const (
	genAI         convention = iota // OTel GenAI semantic conventions
	openInference                   // OpenInference, as openinference-instrumentation-agno writes it
)

func (c convention) String() string {
	if c == openInference {
		return "openinference"
	}
	return "genai"
}

// node is one planned span: times are offsets from the run's start, so a
// plan can be checked and then emitted at any wall-clock time.
type node struct {
	name       string
	kind       trace.SpanKind
	start, end time.Duration
	attrs      []attribute.KeyValue
	fail       *failure // status ERROR plus an exception event
	children   []*node
}

func (n *node) count() int {
	c := 1
	for _, ch := range n.children {
		c += ch.count()
	}
	return c
}

// planner lays spans out one after another on a cursor, the way an agent
// run executes its steps sequentially.
type planner struct {
	r      *rand.Rand
	w      *world
	conv   convention
	cursor time.Duration

	errorRatio  float64
	failedTools int
}

// dur draws a duration in [lo, hi) ms, skewed towards the low end like real
// latencies.
func (p *planner) dur(loMs, hiMs float64) time.Duration {
	u := p.r.Float64()
	ms := loMs + (hiMs-loMs)*u*u
	return time.Duration(ms * float64(time.Millisecond))
}

// gap is the scheduling slack between consecutive steps.
func (p *planner) gap() time.Duration { return p.dur(0.05, 3) }

// leaf appends a child that takes d, starting at the cursor.
func (p *planner) leaf(parent *node, n *node, d time.Duration) *node {
	n.start = p.cursor
	n.end = n.start + d
	p.cursor = n.end + p.gap()
	parent.children = append(parent.children, n)
	return n
}

// open starts a child at the cursor whose end is set by close.
func (p *planner) open(parent *node, n *node) *node {
	n.start = p.cursor
	p.cursor += p.gap()
	parent.children = append(parent.children, n)
	return n
}

func (p *planner) close(n *node) {
	n.end = p.cursor
	p.cursor += p.gap()
}

// runPlan is a planned agent run.
type runPlan struct {
	conv        convention
	root        *node
	spans       int
	failedTools int
}

// planRun plans one AgentOS-shaped run:
//
//	agent (or team) run
//	├─ pre_hook
//	├─ retrieval ── embedding
//	├─ LLM call returning tool calls
//	├─ tool × 1..2 (failing per ErrorRatio)
//	├─ team delegation ── member agent run ── member LLM call
//	├─ final LLM call
//	└─ post_hook
func planRun(r *rand.Rand, w *world, errorRatio float64) runPlan {
	p := &planner{r: r, w: w, errorRatio: errorRatio}
	if r.IntN(2) == 1 {
		p.conv = openInference
	}
	sess := pick(r, w.sessions)
	ag := pick(r, w.agents)
	member := ag
	if len(w.agents) > 1 {
		for member.id == ag.id {
			member = pick(r, w.agents)
		}
	}
	isTeam := r.IntN(4) == 0
	runID := uuid(r)
	question := pick(r, topics)
	ids := []attribute.KeyValue{
		attribute.String("session.id", sess.id),
		attribute.String("user.id", sess.user),
	}

	root := &node{kind: trace.SpanKindInternal}
	root.attrs = append(root.attrs, ids...)
	root.attrs = append(root.attrs, attribute.String("agno.run.id", runID))
	p.runAttrs(root, ag, isTeam, sess, question)
	p.cursor = p.gap()

	p.hook(root, "pre", pick(r, hooks.pre), question)
	docs := p.retrieval(root, question)
	calls := p.toolCallsFor()
	p.llm(root, ag, question, docs, calls, 300, 3000, 20, 200)
	for _, c := range calls {
		p.tool(root, c)
	}
	p.delegation(root, ag, member, isTeam, sess, question)
	p.llm(root, ag, question, docs, nil, 500, 5000, 50, 800)
	p.hook(root, "post", pick(r, hooks.post), "answer")
	root.end = p.cursor

	return runPlan{conv: p.conv, root: root, spans: root.count(), failedTools: p.failedTools}
}

func uuid(r *rand.Rand) string {
	return fmt.Sprintf("%08x-%04x-4%03x-%04x-%012x",
		r.Uint32(), r.Uint32()&0xffff, r.Uint32()&0xfff, 0x8000|r.Uint32()&0x3fff, r.Uint64()&0xffffffffffff)
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only called on values built here
	}
	return string(b)
}

// runAttrs names and describes a run span, agent or team, in p.conv.
func (p *planner) runAttrs(n *node, ag agent, isTeam bool, sess session, input string) {
	output := "Here is what I found about " + input + "."
	switch {
	case p.conv == genAI && isTeam:
		n.name = "invoke_agent " + ag.team
		n.attrs = append(n.attrs,
			attribute.String("gen_ai.operation.name", "invoke_agent"),
			attribute.String("gen_ai.agent.name", ag.team),
			attribute.String("agno.team.id", ag.teamID),
			attribute.String("gen_ai.conversation.id", sess.id),
			attribute.String("gen_ai.request.model", ag.model),
			attribute.String("gen_ai.provider.name", ag.provider),
		)
	case p.conv == genAI:
		n.name = "invoke_agent " + ag.name
		n.attrs = append(n.attrs,
			attribute.String("gen_ai.operation.name", "invoke_agent"),
			attribute.String("gen_ai.agent.id", ag.id),
			attribute.String("gen_ai.agent.name", ag.name),
			attribute.String("agno.agent.id", ag.id),
			attribute.String("gen_ai.conversation.id", sess.id),
			attribute.String("gen_ai.request.model", ag.model),
			attribute.String("gen_ai.provider.name", ag.provider),
		)
	case isTeam:
		n.name = spanName(ag.team) + ".run"
		n.attrs = append(n.attrs,
			attribute.String("openinference.span.kind", "AGENT"),
			attribute.String("graph.node.id", uuid(p.r)[:8]),
			attribute.String("graph.node.name", ag.team),
			attribute.String("agent.name", ag.team),
			attribute.String("agno.team", ag.team),
			attribute.String("agno.team.id", ag.teamID),
			attribute.String("input.value", input),
			attribute.String("output.value", output),
			attribute.String("output.mime_type", "application/json"),
		)
	default:
		n.name = spanName(ag.name) + ".run"
		n.attrs = append(n.attrs,
			attribute.String("openinference.span.kind", "AGENT"),
			attribute.String("graph.node.id", uuid(p.r)[:8]),
			attribute.String("graph.node.name", ag.name),
			attribute.String("agent.name", ag.name),
			attribute.String("agno.agent", ag.name),
			attribute.String("agno.agent.id", ag.id),
			attribute.StringSlice("agno.tools", toolNames()),
			attribute.String("input.value", input),
			attribute.String("output.value", output),
			attribute.String("output.mime_type", "application/json"),
		)
	}
}

func toolNames() []string {
	out := make([]string, len(tools))
	for i, t := range tools {
		out[i] = t.name
	}
	return out
}

func (p *planner) hook(parent *node, typ, name, input string) {
	n := &node{name: typ + "_hook " + name, kind: trace.SpanKindInternal}
	n.attrs = []attribute.KeyValue{
		attribute.String("agno.hook.type", typ),
		attribute.String("agno.hook.name", name),
		attribute.String("input.value", input),
		attribute.String("output.value", input),
	}
	if p.conv == openInference {
		n.attrs = append(n.attrs, attribute.String("openinference.span.kind", "GUARDRAIL"))
	}
	p.leaf(parent, n, p.dur(1, 20))
}

type doc struct {
	id, content string
	score       float64
}

// retrieval plans a knowledge search: embed the query, then search.
func (p *planner) retrieval(parent *node, query string) []doc {
	k := 3 + p.r.IntN(3)
	docs := make([]doc, k)
	score := 0.95 - p.r.Float64()*0.1
	for i := range docs {
		docs[i] = doc{
			id:      fmt.Sprintf("doc-%04d", p.r.IntN(10000)),
			content: fmt.Sprintf("Excerpt %d about %s.", i+1, query),
			score:   float64(int(score*1000)) / 1000,
		}
		score -= 0.02 + p.r.Float64()*0.08
	}
	store := pick(p.r, vectorStores)
	embedder := pick(p.r, embedders)
	qTokens := int64(4 + p.r.IntN(20))

	ret := &node{kind: trace.SpanKindClient}
	emb := &node{kind: trace.SpanKindClient}
	if p.conv == genAI {
		ret.name = "retrieval " + store
		list := make([]map[string]any, len(docs))
		for i, d := range docs {
			list[i] = map[string]any{"id": d.id, "score": d.score, "content": d.content}
		}
		ret.attrs = []attribute.KeyValue{
			attribute.String("gen_ai.operation.name", "retrieval"),
			attribute.String("gen_ai.data_source.id", store),
			attribute.Float64("gen_ai.request.top_k", float64(k)),
			attribute.String("gen_ai.retrieval.query.text", query),
			attribute.String("gen_ai.retrieval.documents", mustJSON(list)),
		}
		emb.name = "embeddings " + embedder
		emb.attrs = []attribute.KeyValue{
			attribute.String("gen_ai.operation.name", "embeddings"),
			attribute.String("gen_ai.provider.name", "openai"),
			attribute.String("gen_ai.request.model", embedder),
			attribute.Int64("gen_ai.usage.input_tokens", qTokens),
			attribute.Int("gen_ai.embeddings.dimension.count", 1536),
		}
	} else {
		ret.name = "Knowledge.search"
		ret.kind = trace.SpanKindInternal
		ret.attrs = []attribute.KeyValue{
			attribute.String("openinference.span.kind", "RETRIEVER"),
			attribute.String("input.value", query),
		}
		for i, d := range docs {
			pre := "retrieval.documents." + strconv.Itoa(i) + ".document."
			ret.attrs = append(ret.attrs,
				attribute.String(pre+"id", d.id),
				attribute.String(pre+"content", d.content),
				attribute.Float64(pre+"score", d.score),
				attribute.String(pre+"metadata", mustJSON(map[string]any{"source": store})),
			)
		}
		emb.name = "OpenAIEmbedder.get_embedding"
		emb.attrs = []attribute.KeyValue{
			attribute.String("openinference.span.kind", "EMBEDDING"),
			attribute.String("embedding.model_name", embedder),
			attribute.String("embedding.embeddings.0.embedding.text", query),
			attribute.Int64("llm.token_count.prompt", qTokens),
			attribute.Int64("llm.token_count.total", qTokens),
		}
	}
	p.open(parent, ret)
	p.leaf(ret, emb, p.dur(15, 120))
	p.cursor += p.dur(5, 80) // the vector search itself
	p.close(ret)
	return docs
}

type call struct {
	id   string
	tool toolSpec
	args map[string]any
}

func (p *planner) toolCallsFor() []call {
	n := 1 + p.r.IntN(2)
	calls := make([]call, n)
	for i := range calls {
		t := pick(p.r, tools)
		calls[i] = call{id: "call_" + uuid(p.r)[:12], tool: t, args: t.args(p.r)}
	}
	return calls
}

// llm plans one model call. With calls, the model answers with tool calls;
// without, with text.
func (p *planner) llm(parent *node, ag agent, question string, docs []doc, calls []call,
	inLo, inHi, outLo, outHi int) {
	in := int64(inLo + p.r.IntN(inHi-inLo))
	out := int64(outLo + p.r.IntN(outHi-outLo))
	temp := float64(p.r.IntN(8)) / 10
	system := "You are " + ag.name + ". Answer concisely."
	context := ""
	for _, d := range docs {
		context += d.content + "\n"
	}
	answer := "Based on the knowledge base: " + question + " is covered in " + strconv.Itoa(len(docs)) + " documents."
	// Output grows with tokens, so the call takes longer the more it writes.
	d := p.dur(250, 900) + time.Duration(out)*time.Duration(8+p.r.IntN(12))*time.Millisecond/2

	n := &node{kind: trace.SpanKindClient}
	if p.conv == genAI {
		n.name = "chat " + ag.model
		var parts []map[string]any
		finish := "stop"
		if len(calls) > 0 {
			finish = "tool_calls"
			for _, c := range calls {
				parts = append(parts, map[string]any{"type": "tool_call", "id": c.id, "name": c.tool.name, "arguments": c.args})
			}
		} else {
			parts = []map[string]any{{"type": "text", "content": answer}}
		}
		n.attrs = []attribute.KeyValue{
			attribute.String("gen_ai.operation.name", "chat"),
			attribute.String("gen_ai.provider.name", ag.provider),
			attribute.String("gen_ai.request.model", ag.model),
			attribute.String("gen_ai.response.model", ag.model+"-2025-01-01"),
			attribute.Float64("gen_ai.request.temperature", temp),
			attribute.StringSlice("gen_ai.response.finish_reasons", []string{finish}),
			attribute.String("gen_ai.input.messages", mustJSON([]map[string]any{
				{"role": "system", "parts": []map[string]any{{"type": "text", "content": system}}},
				{"role": "user", "parts": []map[string]any{{"type": "text", "content": question + "\n" + context}}},
			})),
			attribute.String("gen_ai.output.messages", mustJSON([]map[string]any{
				{"role": "assistant", "parts": parts, "finish_reason": finish},
			})),
		}
		// Some instrumentations still send the pre-1.27 token names.
		if p.r.IntN(5) == 0 {
			n.attrs = append(n.attrs,
				attribute.Int64("gen_ai.usage.prompt_tokens", in),
				attribute.Int64("gen_ai.usage.completion_tokens", out))
		} else {
			n.attrs = append(n.attrs,
				attribute.Int64("gen_ai.usage.input_tokens", in),
				attribute.Int64("gen_ai.usage.output_tokens", out))
		}
	} else {
		n.name = ag.modelClassName + ".invoke"
		n.kind = trace.SpanKindInternal
		n.attrs = []attribute.KeyValue{
			attribute.String("openinference.span.kind", "LLM"),
			attribute.String("llm.model_name", ag.model),
			attribute.String("llm.provider", ag.provider),
			attribute.String("llm.invocation_parameters", mustJSON(map[string]any{"temperature": temp, "max_tokens": 1024})),
			attribute.Int64("llm.token_count.prompt", in),
			attribute.Int64("llm.token_count.completion", out),
			attribute.Int64("llm.token_count.total", in+out),
			attribute.String("llm.input_messages.0.message.role", "system"),
			attribute.String("llm.input_messages.0.message.content", system),
			attribute.String("llm.input_messages.1.message.role", "user"),
			attribute.String("llm.input_messages.1.message.content", question+"\n"+context),
			attribute.String("llm.output_messages.0.message.role", "assistant"),
			attribute.String("input.mime_type", "application/json"),
			attribute.String("input.value", mustJSON(map[string]any{"messages": []map[string]any{
				{"role": "system", "content": system}, {"role": "user", "content": question},
			}})),
		}
		if len(calls) == 0 {
			n.attrs = append(n.attrs,
				attribute.String("llm.output_messages.0.message.content", answer),
				attribute.String("output.value", mustJSON([]map[string]any{{"role": "assistant", "content": answer}})))
		}
		for j, c := range calls {
			pre := "llm.output_messages.0.message.tool_calls." + strconv.Itoa(j) + ".tool_call."
			n.attrs = append(n.attrs,
				attribute.String(pre+"id", c.id),
				attribute.String(pre+"function.name", c.tool.name),
				attribute.String(pre+"function.arguments", mustJSON(c.args)))
		}
	}
	p.leaf(parent, n, d)
}

// tool plans one tool execution; per the error ratio it fails the way
// agno's instrumentation records it: status ERROR and an exception event.
func (p *planner) tool(parent *node, c call) {
	args := mustJSON(c.args)
	result := c.tool.result(p.r)
	var fail *failure
	if p.r.Float64() < p.errorRatio {
		f := pick(p.r, c.tool.failures)
		fail = &f
		p.failedTools++
	}
	n := &node{kind: trace.SpanKindInternal, fail: fail}
	if p.conv == genAI {
		n.name = "execute_tool " + c.tool.name
		n.attrs = []attribute.KeyValue{
			attribute.String("gen_ai.operation.name", "execute_tool"),
			attribute.String("gen_ai.tool.name", c.tool.name),
			attribute.String("gen_ai.tool.description", c.tool.description),
			attribute.String("gen_ai.tool.type", "function"),
			attribute.String("gen_ai.tool.call.id", c.id),
			attribute.String("gen_ai.tool.call.arguments", args),
		}
		if fail != nil {
			n.attrs = append(n.attrs, attribute.String("error.type", fail.typ))
		} else {
			n.attrs = append(n.attrs, attribute.String("gen_ai.tool.call.result", result))
		}
	} else {
		n.name = c.tool.name
		n.attrs = []attribute.KeyValue{
			attribute.String("openinference.span.kind", "TOOL"),
			attribute.String("tool.name", c.tool.name),
			attribute.String("tool.description", c.tool.description),
			attribute.String("tool.parameters", args),
			attribute.String("input.mime_type", "application/json"),
			attribute.String("input.value", args),
			attribute.String("output.mime_type", "text/plain"),
		}
		if fail != nil {
			n.attrs = append(n.attrs, attribute.String("output.value", fail.message))
		} else {
			n.attrs = append(n.attrs, attribute.String("output.value", result))
		}
	}
	lo, hi := 40.0, 1500.0
	if fail != nil && p.r.IntN(2) == 0 {
		lo, hi = 5000, 10000 // timeouts take the whole budget
	}
	p.leaf(parent, n, p.dur(lo, hi))
}

// delegation plans the team leader handing a task to a member agent, whose
// own run (with its own LLM call) nests under the delegation span.
func (p *planner) delegation(parent *node, ag, member agent, isTeam bool, sess session, question string) {
	mode := pick(p.r, []string{"coordinate", "coordinate", "route", "collaborate"})
	toolName := map[string]string{
		"coordinate": "delegate_task_to_member", "route": "transfer_task_to_member", "collaborate": "delegate_task_to_members",
	}[mode]
	args := mustJSON(map[string]any{"member_id": member.id, "task": "Research: " + question})
	d := &node{kind: trace.SpanKindInternal}
	if p.conv == genAI {
		d.name = "execute_tool " + toolName
		d.attrs = []attribute.KeyValue{
			attribute.String("gen_ai.operation.name", "execute_tool"),
			attribute.String("gen_ai.tool.name", toolName),
			attribute.String("gen_ai.tool.call.arguments", args),
			attribute.String("agno.team.member", member.id),
			attribute.String("agno.team.mode", mode),
		}
		if isTeam {
			d.attrs = append(d.attrs, attribute.String("agno.team.id", ag.teamID))
		}
	} else {
		// OpenInference carries no team keys: the member comes from the
		// tool arguments and the mode from the tool name.
		d.name = toolName
		d.attrs = []attribute.KeyValue{
			attribute.String("openinference.span.kind", "TOOL"),
			attribute.String("tool.name", toolName),
			attribute.String("input.value", args),
			attribute.String("output.value", "Member response: done."),
		}
	}
	p.open(parent, d)

	m := &node{kind: trace.SpanKindInternal}
	m.attrs = []attribute.KeyValue{
		attribute.String("session.id", sess.id),
		attribute.String("user.id", sess.user),
		attribute.String("agno.run.id", uuid(p.r)),
	}
	p.runAttrs(m, member, false, sess, "Research: "+question)
	p.open(d, m)
	p.llm(m, member, question, nil, nil, 200, 2000, 30, 400)
	p.close(m)
	p.close(d)
}
