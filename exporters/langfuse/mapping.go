package langfuse

import (
	"strconv"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/kern-agents/trace-gateway/exporters/internal/facts"
	"github.com/kern-agents/trace-gateway/internal/semantics"
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
	keyUserID        = "langfuse.user.id"
	keySessionID     = "langfuse.session.id"
	keyTraceMetadata = "langfuse.trace.metadata."
)

// Map returns a copy of td with the Langfuse attributes added. The
// sender's attributes are kept; a langfuse.* key the sender already set
// wins over the derived one.
func Map(td ptrace.Traces) ptrace.Traces {
	out := facts.Copy(td)
	traces := facts.Collect(out)
	facts.Each(out, func(_ pcommon.Resource, span ptrace.Span) {
		mapSpan(span, facts.Read(span), traces[span.TraceID()])
	})
	return out
}

// ObservationType is the Langfuse observation type for a span.
func ObservationType(f facts.Facts) string {
	switch f.Type {
	case semantics.TypeRun:
		if f.RunKind == "workflow" {
			return "chain"
		}
		return "agent"
	case semantics.TypeLLM:
		return "generation"
	case semantics.TypeEmbedding:
		return "embedding"
	case semantics.TypeTool:
		return "tool"
	case semantics.TypeRetrieval:
		return "retriever"
	case semantics.TypePreHook, semantics.TypePostHook:
		// Agent hooks validate or rewrite input and output: guardrails.
		return "guardrail"
	case semantics.TypeDelegation:
		return "chain"
	}
	return "span"
}

func mapSpan(span ptrace.Span, f facts.Facts, tf *facts.TraceFacts) {
	a := span.Attributes()
	typ := ObservationType(f)
	facts.PutStr(a, keyType, typ)
	facts.PutStr(a, keyInput, f.SpanInput())
	facts.PutStr(a, keyOutput, f.SpanOutput())

	if typ == "generation" || typ == "embedding" {
		facts.PutStr(a, keyModel, f.Model)
		if f.Usage() {
			usage := map[string]int64{}
			if f.HasInputTokens {
				usage["input"] = f.InputTokens
			}
			if f.HasOutputTokens {
				usage["output"] = f.OutputTokens
			}
			if f.HasTotalTokens {
				usage["total"] = f.TotalTokens
			}
			facts.PutStr(a, keyUsage, facts.MarshalJSON(usage))
		}
		if f.HasTemperature {
			facts.PutStr(a, keyModelParams, facts.MarshalJSON(map[string]float64{"temperature": f.Temperature}))
		}
	} else {
		// Langfuse reads a model only on generations; keep it visible.
		facts.PutStr(a, keyObsMetadata+"model", f.Model)
	}

	if f.Failed {
		facts.PutStr(a, keyLevel, "ERROR")
		facts.PutStr(a, keyStatusMessage, f.ErrorMessage())
	}

	meta := map[string]string{
		"run_kind":          f.RunKind,
		"run_id":            f.RunID,
		"agent_id":          f.AgentID,
		"tool_name":         f.ToolName,
		"tool_calls":        f.ToolCalls,
		"hook_name":         f.HookName,
		"vector_store":      f.VectorStore,
		"delegation_member": f.DelegationMember,
		"delegation_mode":   f.DelegationMode,
		"exception_type":    f.ExceptionType,
	}
	if f.HasRetrievalK {
		meta["retrieval_k"] = strconv.FormatInt(f.RetrievalK, 10)
	}
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
	facts.PutStr(a, keyTraceMetadata+"run_id", tf.RunID)
	facts.PutStr(a, keyTraceMetadata+"agent_id", tf.AgentID)
	facts.PutStr(a, keyTraceMetadata+"team_id", tf.TeamID)
	facts.PutStr(a, keyTraceMetadata+"workflow_id", tf.WorkflowID)
}
