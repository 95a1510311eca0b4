package mlflow

import (
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/kern-agents/trace-gateway/exporters/internal/facts"
)

// MLflow span attribute keys (mlflow/tracing/constant.py). MLflow stores
// every span attribute JSON-encoded, so string values are sent as JSON
// strings ("\"LLM\"") exactly as MLflow's own SDK sends them.
const (
	keySpanType   = "mlflow.spanType"
	keyInputs     = "mlflow.spanInputs"
	keyOutputs    = "mlflow.spanOutputs"
	keyTokenUsage = "mlflow.chat.tokenUsage"
	keyModel      = "mlflow.llm.model"
	// MLflow's exporter copies trace user and session onto the root span
	// under the OTel semantic-convention keys.
	keyUserID    = "user.id"
	keySessionID = "session.id"
)

// Map returns a copy of td with the MLflow attributes added; the sender's
// own attributes are kept and win over derived ones.
func Map(td ptrace.Traces) ptrace.Traces { return facts.MapSpans(td, mapSpan) }

// spanTypes are MLflow's span types.
var spanTypes = facts.Kinds{
	Agent: "AGENT", Workflow: "CHAIN", LLM: "LLM", Embedding: "EMBEDDING", Tool: "TOOL",
	Retrieval: "RETRIEVER", Hook: "CHAIN", Delegation: "CHAIN", Other: "UNKNOWN",
}

// SpanType is MLflow's span type for a span.
func SpanType(f facts.Facts) string { return spanTypes.Of(f) }

func mapSpan(span ptrace.Span, f facts.Facts, tf *facts.TraceFacts) {
	a := span.Attributes()
	typ := SpanType(f)
	facts.PutStr(a, keySpanType, facts.MarshalJSON(typ))
	if in := f.SpanInput(); in != "" {
		facts.PutStr(a, keyInputs, facts.JSONValue(in))
	}
	switch {
	case typ == "RETRIEVER" && len(f.Documents) > 0 && f.Output == "":
		// MLflow shows retriever outputs as Documents.
		docs := make([]map[string]any, len(f.Documents))
		for i, d := range f.Documents {
			meta := map[string]any{}
			if d.HasScore {
				meta["score"] = d.Score
			}
			docs[i] = map[string]any{"page_content": d.Content, "metadata": meta, "id": d.ID}
		}
		facts.PutStr(a, keyOutputs, facts.MarshalJSON(docs))
	default:
		if out := f.SpanOutput(); out != "" {
			facts.PutStr(a, keyOutputs, facts.JSONValue(out))
		}
	}
	if typ == "LLM" || typ == "EMBEDDING" {
		if f.Model != "" {
			facts.PutStr(a, keyModel, facts.MarshalJSON(f.Model))
		}
		if usage := f.TokenUsage("input_tokens", "output_tokens", "total_tokens"); usage != nil {
			if !f.HasTotalTokens && f.HasInputTokens && f.HasOutputTokens {
				usage["total_tokens"] = f.InputTokens + f.OutputTokens
			}
			facts.PutStr(a, keyTokenUsage, facts.MarshalJSON(usage))
		}
	}
	facts.EnsureExceptionEvent(span, f)
	if tf != nil {
		facts.PutStr(a, keyUserID, tf.UserID)
		facts.PutStr(a, keySessionID, tf.SessionID)
	}
}
