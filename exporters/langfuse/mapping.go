package langfuse

import (
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/kern-agents/trace-gateway/exporters/internal/facts"
)

// Langfuse attribute keys (langfuse.com/integrations/native/opentelemetry).
const (
	keyType          = "langfuse.observation.type"
	keyInput         = "langfuse.observation.input"
	keyOutput        = "langfuse.observation.output"
	keyModel         = "langfuse.observation.model.name"
	keyModelParams   = "langfuse.observation.model.parameters"
	keyUsage         = "langfuse.observation.usage_details"
	keyLevel         = "langfuse.observation.level"
	keyStatusMessage = "langfuse.observation.status_message"
	keyObsMetadata   = "langfuse.observation.metadata."
	keyTraceName     = "langfuse.trace.name"
	keyTraceMetadata = "langfuse.trace.metadata."
	// Langfuse's trace user and session keys are the OTel ones; it still
	// reads the langfuse.* names it documented first (and prefers them), so
	// both are sent for Langfuse versions of either age.
	keyUserID          = "user.id"
	keySessionID       = "session.id"
	keyCompatUserID    = "langfuse.user.id"
	keyCompatSessionID = "langfuse.session.id"
)

// Map returns a copy of td with the Langfuse attributes added. The
// sender's attributes are kept; a langfuse.* key the sender already set
// wins over the derived one.
func Map(td ptrace.Traces) ptrace.Traces { return facts.MapSpans(td, mapSpan) }

// observationTypes are Langfuse's observation types. Agent hooks validate
// or rewrite input and output: guardrails.
var observationTypes = facts.Kinds{
	Agent: "agent", Workflow: "chain", LLM: "generation", Embedding: "embedding", Tool: "tool",
	Retrieval: "retriever", Hook: "guardrail", Delegation: "chain", Other: "span",
}

// ObservationType is the Langfuse observation type for a span.
func ObservationType(f facts.Facts) string { return observationTypes.Of(f) }

func mapSpan(span ptrace.Span, f facts.Facts, tf *facts.TraceFacts) {
	a := span.Attributes()
	typ := ObservationType(f)
	facts.PutStr(a, keyType, typ)
	facts.PutStr(a, keyInput, f.SpanInput())
	facts.PutStr(a, keyOutput, f.SpanOutput())

	if typ == "generation" || typ == "embedding" {
		facts.PutStr(a, keyModel, f.Model)
		if usage := f.TokenUsage("input", "output", "total"); usage != nil {
			facts.PutStr(a, keyUsage, facts.MarshalJSON(usage))
		}
		facts.PutStr(a, keyModelParams, f.InvocationParams())
	} else {
		// Langfuse reads a model only on generations; keep it visible.
		facts.PutStr(a, keyObsMetadata+"model", f.Model)
	}

	if f.Failed {
		facts.PutStr(a, keyLevel, "ERROR")
		facts.PutStr(a, keyStatusMessage, f.ErrorMessage())
	}

	meta := f.Metadata()
	meta["tool_name"] = f.ToolName
	meta["exception_type"] = f.ExceptionType
	for k, v := range meta {
		facts.PutStr(a, keyObsMetadata+k, v)
	}

	// Trace-level attributes go on every span: Langfuse filters and
	// aggregates them per observation.
	if tf == nil {
		return
	}
	facts.PutStr(a, keyTraceName, tf.RootName)
	facts.PutStr(a, keyUserID, tf.UserID)
	facts.PutStr(a, keySessionID, tf.SessionID)
	// The compatibility keys follow the OTel ones, the sender's included.
	facts.PutStr(a, keyCompatUserID, facts.Text(a, keyUserID))
	facts.PutStr(a, keyCompatSessionID, facts.Text(a, keySessionID))
	facts.PutStr(a, keyTraceMetadata+"run_id", tf.RunID)
	facts.PutStr(a, keyTraceMetadata+"agent_id", tf.AgentID)
	facts.PutStr(a, keyTraceMetadata+"team_id", tf.TeamID)
	facts.PutStr(a, keyTraceMetadata+"workflow_id", tf.WorkflowID)
}
