package semantics

import "strings"

// Run kinds stored under KeyRunKind.
const (
	RunAgent    = "agent"
	RunTeam     = "team"
	RunWorkflow = "workflow"
)

// Rule is one row of the classification table: the first rule whose
// condition holds gives the span its type. The same table, in the same
// order, is in docs/semantics.md; a test keeps the two in step.
type Rule struct {
	When string // the condition, worded as in docs/semantics.md
	Type string // a Type* constant
	// RunKind is the kind a run gets when no agent/team/workflow marker on
	// the span decides it (see runKind).
	RunKind string
	match   func(s *view) bool
}

// Rules returns the classification table in evaluation order.
func Rules() []Rule { return append([]Rule(nil), rules...) }

// delegationTools maps agno's team tool names (v1 and v2) to the team mode
// they imply; a span for one of these tools is a delegation.
var delegationTools = map[string]string{
	"delegate_task_to_member":  "coordinate",
	"delegate_task_to_members": "collaborate",
	"run_member_agents":        "collaborate",
	"transfer_task_to_member":  "route",
	"forward_task_to_member":   "route",
}

// The order matters: markers that name a specific agent-framework concept
// (hooks, delegation) beat generic conventions, GenAI semconv beats
// OpenInference, and span-name heuristics apply only to spans that carry no
// convention attribute at all.
var rules = []Rule{
	{When: "`agno.hook.type` is `pre` or `pre_hook`", Type: TypePreHook,
		match: func(s *view) bool { return s.hookType == "pre" || s.hookType == "pre_hook" }},
	{When: "`agno.hook.type` is `post` or `post_hook`", Type: TypePostHook,
		match: func(s *view) bool { return s.hookType == "post" || s.hookType == "post_hook" }},
	{When: "span name starts with `pre_hook` or `pre-hook`", Type: TypePreHook,
		match: func(s *view) bool { return hasAnyPrefix(s.lname, "pre_hook", "pre-hook") }},
	{When: "span name starts with `post_hook` or `post-hook`", Type: TypePostHook,
		match: func(s *view) bool { return hasAnyPrefix(s.lname, "post_hook", "post-hook") }},
	{When: "`agno.team.member` is set, or the tool name is an agno team tool (`delegate_task_to_member(s)`, `transfer_task_to_member`, `forward_task_to_member`, `run_member_agents`)", Type: TypeDelegation,
		match: func(s *view) bool { return s.has("agno.team.member") || s.delegationTool() != "" }},
	{When: "`gen_ai.operation.name` is `chat`, `text_completion` or `generate_content`", Type: TypeLLM,
		match: func(s *view) bool { return s.op == "chat" || s.op == "text_completion" || s.op == "generate_content" }},
	{When: "`gen_ai.operation.name` is `embeddings`", Type: TypeEmbedding,
		match: func(s *view) bool { return s.op == "embeddings" }},
	{When: "`gen_ai.operation.name` is `execute_tool`", Type: TypeTool,
		match: func(s *view) bool { return s.op == "execute_tool" }},
	{When: "`gen_ai.operation.name` is `retrieval`", Type: TypeRetrieval,
		match: func(s *view) bool { return s.op == "retrieval" }},
	{When: "`gen_ai.operation.name` is `invoke_agent`", Type: TypeRun, RunKind: RunAgent,
		match: func(s *view) bool { return s.op == "invoke_agent" }},
	{When: "`gen_ai.operation.name` is `invoke_workflow`", Type: TypeRun, RunKind: RunWorkflow,
		match: func(s *view) bool { return s.op == "invoke_workflow" }},
	{When: "`gen_ai.operation.name` is `create_agent` (creating an agent is not a run)", Type: TypeOther,
		match: func(s *view) bool { return s.op == "create_agent" }},
	{When: "`openinference.span.kind` is `LLM`", Type: TypeLLM,
		match: func(s *view) bool { return s.oiKind == "LLM" }},
	{When: "`openinference.span.kind` is `EMBEDDING`", Type: TypeEmbedding,
		match: func(s *view) bool { return s.oiKind == "EMBEDDING" }},
	{When: "`openinference.span.kind` is `TOOL`", Type: TypeTool,
		match: func(s *view) bool { return s.oiKind == "TOOL" }},
	{When: "`openinference.span.kind` is `RETRIEVER` or `RERANKER`", Type: TypeRetrieval,
		match: func(s *view) bool { return s.oiKind == "RETRIEVER" || s.oiKind == "RERANKER" }},
	{When: "`openinference.span.kind` is `GUARDRAIL` (agno runs guardrails as pre-hooks)", Type: TypePreHook,
		match: func(s *view) bool { return s.oiKind == "GUARDRAIL" }},
	{When: "`openinference.span.kind` is `AGENT`", Type: TypeRun, RunKind: RunAgent,
		match: func(s *view) bool { return s.oiKind == "AGENT" }},
	{When: "`openinference.span.kind` is `CHAIN`, no `agno.step.*` key, and an `agno.workflow.*` / `workflow_id` key or a name ending in `.run` / `.arun`", Type: TypeRun, RunKind: RunWorkflow,
		match: func(s *view) bool {
			return s.oiKind == "CHAIN" && !s.hasAgnoStep && (s.hasAgnoWorkflow || s.has("workflow_id") || s.nameIsRun())
		}},
	{When: "no convention key¹ and `agno.run.id` with `agno.agent.id`, `agno.team.id` or `agno.workflow.id`", Type: TypeRun, RunKind: RunAgent,
		match: func(s *view) bool {
			return s.noConvention() && s.has("agno.run.id") &&
				(s.has("agno.agent.id") || s.has("agno.team.id") || s.has("agno.workflow.id"))
		}},
	{When: "no convention key¹ and `agno.tool.name` is set", Type: TypeTool,
		match: func(s *view) bool { return s.noConvention() && s.has("agno.tool.name") }},
	{When: "no convention key¹ and `agno.retrieval.query` is set", Type: TypeRetrieval,
		match: func(s *view) bool { return s.noConvention() && s.has("agno.retrieval.query") }},
	{When: "no convention key¹ and an `agno.usage.*` key is set", Type: TypeLLM,
		match: func(s *view) bool { return s.noConvention() && s.hasAgnoUsage }},
	{When: "no convention key¹ and span name starts with `chat `, `text_completion ` or `generate_content `", Type: TypeLLM,
		match: func(s *view) bool {
			return s.noConvention() && hasAnyPrefix(s.lname, "chat ", "text_completion ", "generate_content ")
		}},
	{When: "no convention key¹ and span name starts with `embeddings `", Type: TypeEmbedding,
		match: func(s *view) bool { return s.noConvention() && strings.HasPrefix(s.lname, "embeddings ") }},
	{When: "no convention key¹ and span name starts with `execute_tool `", Type: TypeTool,
		match: func(s *view) bool { return s.noConvention() && strings.HasPrefix(s.lname, "execute_tool ") }},
	{When: "no convention key¹ and span name starts with `invoke_agent `", Type: TypeRun, RunKind: RunAgent,
		match: func(s *view) bool { return s.noConvention() && strings.HasPrefix(s.lname, "invoke_agent ") }},
	{When: "no convention key¹ and span name ends with `.run` or `.arun` (`Agent.run`, `Team.run`, ...)", Type: TypeRun, RunKind: RunAgent,
		match: func(s *view) bool { return s.noConvention() && s.nameIsRun() }},
	{When: "no convention key¹ and span name ends with `.invoke`, `.ainvoke`, `.invoke_stream`, `.ainvoke_stream` or `.response` (agno model calls)", Type: TypeLLM,
		match: func(s *view) bool {
			return s.noConvention() && hasAnySuffix(s.lname, ".invoke", ".ainvoke", ".invoke_stream", ".ainvoke_stream", ".response")
		}},
	{When: "anything else", Type: TypeOther,
		match: func(*view) bool { return true }},
}

// Classify returns the span type and, for runs, the run kind ("" otherwise).
func Classify(info Info, attrs map[string]any) (spanType, runKind string) {
	s := newView(info, attrs)
	defer s.release()
	t, k := s.classify()
	return t, k
}

func (s *view) classify() (string, string) {
	for i := range rules {
		r := &rules[i]
		if r.match(s) {
			if r.Type == TypeRun {
				return r.Type, s.runKind(r.RunKind)
			}
			return r.Type, ""
		}
	}
	return TypeOther, ""
}

// runKind decides agent/team/workflow from markers on the span, most
// specific first, falling back to the rule's default and then to the span
// name (agno names team runs "<Team_Name>.run").
func (s *view) runKind(dflt string) string {
	switch {
	case s.op == "invoke_workflow":
		return RunWorkflow
	case s.hasAny("agno.agent.id", "agno.agent", "agno.agent.name", "agent_id"):
		return RunAgent
	case s.hasAny("agno.team.id", "agno.team", "agno.team.name", "team_id"):
		return RunTeam
	case s.hasAgnoWorkflow || s.has("workflow_id"):
		return RunWorkflow
	case strings.Contains(s.lname, "team"):
		return RunTeam
	case strings.Contains(s.lname, "workflow"):
		return RunWorkflow
	case dflt != "":
		return dflt
	}
	return RunAgent
}

func hasAnyPrefix(s string, prefixes ...string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

func hasAnySuffix(s string, suffixes ...string) bool {
	for _, p := range suffixes {
		if strings.HasSuffix(s, p) {
			return true
		}
	}
	return false
}
