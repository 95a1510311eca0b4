package arize

import (
	"strconv"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/kern-agents/trace-gateway/exporters/internal/facts"
	"github.com/kern-agents/trace-gateway/internal/spaninfo"
)

// OpenInference keys (github.com/Arize-ai/openinference, spec/semantic_conventions.md).
const (
	KeyProjectName    = "openinference.project.name" // resource attribute
	keyKind           = "openinference.span.kind"
	keyInputValue     = "input.value"
	keyInputMime      = "input.mime_type"
	keyOutputValue    = "output.value"
	keyOutputMime     = "output.mime_type"
	keyModelName      = "llm.model_name"
	keyPromptTokens   = "llm.token_count.prompt"
	keyCompletionToks = "llm.token_count.completion"
	keyTotalTokens    = "llm.token_count.total"
	keyInvocation     = "llm.invocation_parameters"
	keyEmbeddingModel = "embedding.model_name"
	keyToolName       = "tool.name"
	keyDocuments      = "retrieval.documents."
	keySessionID      = "session.id"
	keyUserID         = "user.id"
	keyAgentName      = "agent.name"
	keyMetadata       = "metadata"
)

// Map returns a Mapper that adds OpenInference attributes and routes the
// batch to project. The project is the destination's choice, so it
// replaces any project name the sender set on its resources.
func Map(project string) func(ptrace.Traces) ptrace.Traces {
	return func(td ptrace.Traces) ptrace.Traces {
		out := facts.MapSpans(td, mapSpan)
		for _, rs := range out.ResourceSpans().All() {
			rs.Resource().Attributes().PutStr(KeyProjectName, project)
		}
		return out
	}
}

// spanKinds are the OpenInference span kinds. The specification requires
// a kind on every span; a span the gateway could not classify is UNKNOWN
// (the value of OpenInference's semantic-conventions package, and what
// Phoenix reads a missing kind as) rather than CHAIN, which says the span
// starts or links application steps (AgentOS draws a CHAIN as a workflow).
var spanKinds = facts.Kinds{
	Agent: "AGENT", Workflow: "CHAIN", LLM: "LLM", Embedding: "EMBEDDING", Tool: "TOOL",
	Retrieval: "RETRIEVER", Hook: "GUARDRAIL", Delegation: "CHAIN", Other: "UNKNOWN",
}

// SpanKind is the OpenInference span kind for a span.
func SpanKind(f facts.Facts) string { return spanKinds.Of(f) }

func mapSpan(span ptrace.Span, f facts.Facts, tf *facts.TraceFacts) {
	a := span.Attributes()
	kind := SpanKind(f)
	if facts.Text(a, keyKind) == "" {
		// A sender's empty kind is no kind: the span must carry one.
		a.Remove(keyKind)
	}
	in, out := f.SpanInput(), f.SpanOutput()
	if kind == "RETRIEVER" {
		out = f.Output
	}
	// The gateway stores an LLM hop's input.value and output.value for
	// AgentOS as the text a person reads; OpenInference vendors get the
	// whole messages, as they did before the gateway stored those keys.
	// Decided before any key is added: each is derived from the others.
	replaceIn, replaceOut := gatewayHolds(span, keyInputValue, in), gatewayHolds(span, keyOutputValue, out)
	facts.PutStr(a, keyKind, kind)
	putValue(a, keyInputValue, keyInputMime, in, replaceIn)
	putValue(a, keyOutputValue, keyOutputMime, out, replaceOut)

	switch kind {
	case "LLM":
		facts.PutStr(a, keyModelName, f.Model)
		facts.PutInt(a, keyPromptTokens, f.InputTokens, f.HasInputTokens)
		facts.PutInt(a, keyCompletionToks, f.OutputTokens, f.HasOutputTokens)
		facts.PutInt(a, keyTotalTokens, f.TotalTokens, f.HasTotalTokens)
		facts.PutStr(a, keyInvocation, f.InvocationParams())
	case "EMBEDDING":
		facts.PutStr(a, keyEmbeddingModel, f.Model)
		facts.PutInt(a, keyPromptTokens, f.InputTokens, f.HasInputTokens)
		facts.PutInt(a, keyTotalTokens, f.TotalTokens, f.HasTotalTokens)
	case "TOOL":
		facts.PutStr(a, keyToolName, f.ToolName)
	case "RETRIEVER":
		for i, d := range f.Documents {
			prefix := keyDocuments + strconv.Itoa(i) + ".document."
			facts.PutStr(a, prefix+"id", d.ID)
			facts.PutStr(a, prefix+"content", d.Content)
			facts.PutDouble(a, prefix+"score", d.Score, d.HasScore)
		}
	case "AGENT":
		facts.PutStr(a, keyAgentName, f.AgentID)
	}

	facts.EnsureExceptionEvent(span, f)

	meta := map[string]any{}
	for k, v := range f.Metadata() {
		meta[k] = v
	}
	if f.Model != "" {
		meta["model"] = f.Model
	}
	if f.HasRetrievalK {
		meta["retrieval_k"] = f.RetrievalK // a number in OpenInference's JSON
	}
	if tf != nil {
		facts.PutStr(a, keySessionID, tf.SessionID)
		facts.PutStr(a, keyUserID, tf.UserID)
		for k, v := range map[string]string{"trace_run_id": tf.RunID, "team_id": tf.TeamID, "workflow_id": tf.WorkflowID} {
			if v != "" {
				meta[k] = v
			}
		}
	}
	if len(meta) > 0 {
		facts.PutStr(a, keyMetadata, facts.MarshalJSON(meta))
	}
}

// gatewayHolds reports whether span holds under key a value other than v
// that the gateway derived from its other attributes rather than one the
// sender sent.
func gatewayHolds(span ptrace.Span, key, v string) bool {
	cur, ok := span.Attributes().Get(key)
	if !ok || v == "" || (cur.Type() == pcommon.ValueTypeStr && cur.Str() == v) {
		return false
	}
	return spaninfo.Derived(span, key)
}

// putValue sets an OpenInference value and its MIME type; replace sets it
// over the value the span holds. A value the span holds and keeps gets the
// MIME type it lacks: the gateway stores input.value and output.value
// without one (AgentOS reads none) where the sender used another
// convention.
func putValue(a pcommon.Map, key, mimeKey, v string, replace bool) {
	cur, exists := a.Get(key)
	switch {
	case replace:
		a.PutStr(key, v)
		a.PutStr(mimeKey, mimeType(v))
		return
	case !exists && v != "":
		a.PutStr(key, v)
	case exists && cur.Type() == pcommon.ValueTypeStr && cur.Str() != "":
		v = cur.Str()
	default:
		return
	}
	facts.PutStr(a, mimeKey, mimeType(v))
}

func mimeType(v string) string {
	if facts.IsJSON(v) {
		return "application/json"
	}
	return "text/plain"
}
