package langsmith

import (
	"strconv"

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/kern-agents/trace-gateway/exporters/internal/facts"
	"github.com/kern-agents/trace-gateway/internal/spaninfo"
)

// Attribute keys LangSmith maps (docs.langchain.com/langsmith/trace-with-opentelemetry).
const (
	keyKind         = "langsmith.span.kind"
	keyMetadata     = "langsmith.metadata."
	keyModel        = "gen_ai.request.model"
	keyOperation    = "gen_ai.operation.name"
	keyInputTokens  = "gen_ai.usage.input_tokens"
	keyOutputTokens = "gen_ai.usage.output_tokens"
	keyTotalTokens  = "gen_ai.usage.total_tokens"
	keyTemperature  = "gen_ai.request.temperature"
	keyPrompt       = "gen_ai.prompt"
	keyCompletion   = "gen_ai.completion"
	keyToolName     = "gen_ai.tool.name"
	keyInputValue   = "input.value"
	keyOutputValue  = "output.value"
	keyDocuments    = "retrieval.documents."
)

// Map returns a copy of td with the LangSmith attributes added; the
// sender's own attributes are kept and win over derived ones.
func Map(td ptrace.Traces) ptrace.Traces { return facts.MapSpans(td, mapSpan) }

// runTypes are LangSmith's run types. LangSmith has no agent run type:
// runs, hooks and delegations are chains.
var runTypes = facts.Kinds{
	Agent: "chain", Workflow: "chain", LLM: "llm", Embedding: "embedding", Tool: "tool",
	Retrieval: "retriever", Hook: "chain", Delegation: "chain", Other: "chain",
}

// RunType is LangSmith's run type for a span.
func RunType(f facts.Facts) string { return runTypes.Of(f) }

func mapSpan(span ptrace.Span, f facts.Facts, tf *facts.TraceFacts) {
	a := span.Attributes()
	kind := RunType(f)
	// LangSmith takes an LLM run's inputs and outputs from gen_ai.prompt
	// and gen_ai.completion; the text the gateway stored for AgentOS under
	// input.value / output.value would compete with them. Found before any
	// key is added, since each is derived from the others.
	var storedText []string
	if kind == "llm" {
		for _, k := range []string{keyInputValue, keyOutputValue} {
			if spaninfo.Derived(span, k) {
				storedText = append(storedText, k)
			}
		}
	}
	facts.PutStr(a, keyKind, kind)

	switch kind {
	case "llm", "embedding":
		facts.PutStr(a, keyModel, f.Model)
		facts.PutInt(a, keyInputTokens, f.InputTokens, f.HasInputTokens)
		facts.PutInt(a, keyOutputTokens, f.OutputTokens, f.HasOutputTokens)
		facts.PutInt(a, keyTotalTokens, f.TotalTokens, f.HasTotalTokens)
		facts.PutDouble(a, keyTemperature, f.Temperature, f.HasTemperature)
		if kind == "llm" {
			facts.PutStr(a, keyOperation, "chat")
			facts.PutStr(a, keyPrompt, f.Input)
			facts.PutStr(a, keyCompletion, f.Output)
			for _, k := range storedText {
				a.Remove(k)
			}
		} else {
			// LangSmith maps the operation "embedding" to its embedding run
			// type (its SDK's exporter writes the OTel "embeddings"; the
			// span kind above decides either way).
			facts.PutStr(a, keyOperation, "embedding")
			facts.PutStr(a, keyInputValue, f.Input)
		}
	case "tool":
		facts.PutStr(a, keyToolName, f.ToolName)
		facts.PutStr(a, keyInputValue, f.SpanInput())
		facts.PutStr(a, keyOutputValue, f.SpanOutput())
	case "retriever":
		facts.PutStr(a, keyInputValue, f.SpanInput())
		for i, d := range f.Documents {
			prefix := keyDocuments + strconv.Itoa(i) + ".document."
			facts.PutStr(a, prefix+"content", d.Content)
			meta := map[string]any{}
			if d.ID != "" {
				meta["id"] = d.ID
			}
			if d.HasScore {
				meta["score"] = d.Score
			}
			if len(meta) > 0 {
				facts.PutStr(a, prefix+"metadata", facts.MarshalJSON(meta))
			}
		}
	default:
		facts.PutStr(a, keyInputValue, f.SpanInput())
		facts.PutStr(a, keyOutputValue, f.SpanOutput())
	}

	// LangSmith reads exceptions from the OTel "exception" event.
	facts.EnsureExceptionEvent(span, f)

	meta := f.Metadata()
	meta["model"] = f.Model
	if tf != nil {
		// LangSmith groups traces into threads by the session_id or
		// thread_id metadata key, wanted on every run of the trace. A span's
		// own run and agent ids win over the trace's.
		meta["session_id"] = tf.SessionID
		meta["thread_id"] = tf.SessionID
		meta["user_id"] = tf.UserID
		meta["run_id"] = first(f.RunID, tf.RunID)
		meta["agent_id"] = first(f.AgentID, tf.AgentID)
		meta["team_id"] = tf.TeamID
		meta["workflow_id"] = tf.WorkflowID
	}
	for k, v := range meta {
		facts.PutStr(a, keyMetadata+k, v)
	}
}

func first(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
