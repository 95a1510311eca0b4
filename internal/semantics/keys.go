package semantics

// Normalised attribute keys the gateway adds to agno_spans.attributes (beside
// the ids and kern.span.type in package model). One SQL query or one exporter
// mapping reads these whatever convention (OTel GenAI semconv, OpenInference,
// agno.*) the sender used. The sender's own attributes stay as sent.
//
// Latency and status need no key: they are the duration_ms and status_code
// columns of every span.
const (
	KeyRunKind = "kern.run.kind" // agent | team | workflow (span type "run")

	KeyModel  = "kern.model"  // model name of a run or an LLM/embedding call
	KeyInput  = "kern.input"  // the span's input: prompt messages, tool args, hook input, query
	KeyOutput = "kern.output" // the span's output: completion, tool result, hook output

	KeyInputTokens  = "kern.usage.input_tokens"  // integer
	KeyOutputTokens = "kern.usage.output_tokens" // integer
	KeyTotalTokens  = "kern.usage.total_tokens"  // integer
	KeyTemperature  = "kern.llm.temperature"     // number
	KeyToolCalls    = "kern.llm.tool_calls"      // JSON array of {name, arguments, id}

	KeyToolName      = "kern.tool.name"
	KeyToolArguments = "kern.tool.arguments"
	KeyToolResult    = "kern.tool.result"

	KeyExceptionType    = "kern.exception.type"    // from the span's "exception" event
	KeyExceptionMessage = "kern.exception.message" //

	KeyHookName = "kern.hook.name" // pre/post hook; input/output under kern.input/kern.output

	KeyRetrievalQuery       = "kern.retrieval.query"
	KeyRetrievalVectorStore = "kern.retrieval.vector_store"
	KeyRetrievalK           = "kern.retrieval.k"         // integer
	KeyRetrievalDocuments   = "kern.retrieval.documents" // JSON array of {id, content, score}
	KeyRetrievalScores      = "kern.retrieval.scores"    // JSON array of numbers

	KeyDelegationMember = "kern.delegation.member"
	KeyDelegationMode   = "kern.delegation.mode"
)

// Span types stored under model.KeySpanType.
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
