package semantics

// Fact keys name the normalised facts Normalize returns. They are NOT
// attribute keys: nothing is stored under them. One exporter mapping, the
// explorer or a routing rule reads these whatever convention (OTel GenAI
// semconv, OpenInference, agno.*) the sender used.
//
// Latency and status need no key: they are the duration_ms and status_code
// columns of every span.
const (
	KeySpanType = "type"     // one of the Type* constants
	KeyRunKind  = "run.kind" // agent | team | workflow (span type "run")

	KeyRunID      = "run_id"
	KeySessionID  = "session_id"
	KeyUserID     = "user_id"
	KeyAgentID    = "agent_id"
	KeyTeamID     = "team_id"
	KeyWorkflowID = "workflow_id"

	KeyModel  = "model"  // model name of a run or an LLM/embedding call
	KeyInput  = "input"  // the span's input: prompt messages, tool args, hook input, query
	KeyOutput = "output" // the span's output: completion, tool result, hook output

	KeyInputTokens  = "usage.input_tokens"  // integer
	KeyOutputTokens = "usage.output_tokens" // integer
	KeyTotalTokens  = "usage.total_tokens"  // integer
	KeyTemperature  = "llm.temperature"     // number
	KeyToolCalls    = "llm.tool_calls"      // JSON array of {name, arguments, id}

	KeyToolName      = "tool.name"
	KeyToolArguments = "tool.arguments"
	KeyToolResult    = "tool.result"

	KeyExceptionType    = "exception.type"    // from the span's "exception" event
	KeyExceptionMessage = "exception.message" //

	KeyHookName = "hook.name" // pre/post hook; input/output under KeyInput/KeyOutput

	KeyRetrievalQuery       = "retrieval.query"
	KeyRetrievalVectorStore = "retrieval.vector_store"
	KeyRetrievalK           = "retrieval.k"         // integer
	KeyRetrievalDocuments   = "retrieval.documents" // JSON array of {id, content, score}
	KeyRetrievalScores      = "retrieval.scores"    // JSON array of numbers

	KeyDelegationMember = "delegation.member"
	KeyDelegationMode   = "delegation.mode"
)

// The attribute keys AgentOS's trace view reads (OpenInference conventions,
// agno 2.9 os/routers/traces/schemas.py). Annotate adds the ones a span
// lacks; nothing else is added to a span's attributes.
const (
	AttrSpanKind         = "openinference.span.kind"
	AttrInput            = "input.value"
	AttrOutput           = "output.value"
	AttrModelName        = "llm.model_name"
	AttrTokensPrompt     = "llm.token_count.prompt"
	AttrTokensCompletion = "llm.token_count.completion"
	AttrTokensTotal      = "llm.token_count.total"
	AttrToolName         = "tool.name"
	AttrToolParameters   = "tool.parameters"
	AttrExceptionMessage = "exception.message"
	AttrSessionID        = "session.id"
	AttrUserID           = "user.id"
	AttrWorkflowSteps    = "agno.workflow.step_types"
)

// OpenInference span kinds (the values of AttrSpanKind).
const (
	KindAgent     = "AGENT"
	KindChain     = "CHAIN"
	KindLLM       = "LLM"
	KindEmbedding = "EMBEDDING"
	KindTool      = "TOOL"
	KindRetriever = "RETRIEVER"
	KindReranker  = "RERANKER"
	KindGuardrail = "GUARDRAIL"
	KindEvaluator = "EVALUATOR"
	KindPrompt    = "PROMPT"
	KindUnknown   = "UNKNOWN"
)

var knownKinds = map[string]bool{
	KindAgent: true, KindChain: true, KindLLM: true, KindEmbedding: true, KindTool: true,
	KindRetriever: true, KindReranker: true, KindGuardrail: true, KindEvaluator: true,
	KindPrompt: true, KindUnknown: true,
}

// Span types Normalize reports under KeySpanType.
const (
	TypeRun        = "run"
	TypeLLM        = "llm"
	TypeEmbedding  = "embedding"
	TypeTool       = "tool"
	TypePreHook    = "pre_hook"
	TypePostHook   = "post_hook"
	TypeRetrieval  = "retrieval"
	TypeDelegation = "delegation"
	TypeOther      = "other"
)

// SpanKindOf is the OpenInference span kind a span of this type and run kind
// gets when the sender sent none. Teams are AGENT spans (AgentOS tells them
// by agno.team.id), workflows CHAIN; hooks run as guardrails in agno; a team
// delegation is a tool call; what the rules cannot classify is UNKNOWN
// (CHAIN would make AgentOS draw it as a workflow).
func SpanKindOf(spanType, runKind string) string {
	switch spanType {
	case TypeRun:
		if runKind == RunWorkflow {
			return KindChain
		}
		return KindAgent
	case TypeLLM:
		return KindLLM
	case TypeEmbedding:
		return KindEmbedding
	case TypeTool, TypeDelegation:
		return KindTool
	case TypeRetrieval:
		return KindRetriever
	case TypePreHook, TypePostHook:
		return KindGuardrail
	}
	return KindUnknown
}

// NodeType is the type AgentOS's trace tree shows for a span with these
// attributes (its _derive_span_type): CHAIN is a WORKFLOW, an AGENT with
// agno.team.id or team.id is a TEAM, a missing kind is UNKNOWN, any other
// kind as it is.
func NodeType(attrs map[string]any) string {
	k, ok := attrs[AttrSpanKind].(string)
	if !ok || k == "" {
		return KindUnknown
	}
	switch k {
	case KindChain:
		return "WORKFLOW"
	case KindAgent:
		if truthy(attrs["agno.team.id"]) || truthy(attrs["team.id"]) {
			return "TEAM"
		}
	}
	return k
}

// truthy is Python's truth value of a decoded JSON value.
func truthy(v any) bool {
	switch x := v.(type) {
	case nil:
		return false
	case string:
		return x != ""
	case bool:
		return x
	case float64:
		return x != 0
	case int64:
		return x != 0
	case []any:
		return len(x) > 0
	case map[string]any:
		return len(x) > 0
	}
	return true
}
