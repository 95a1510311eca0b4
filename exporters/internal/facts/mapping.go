package facts

import (
	"strconv"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/kern-agents/trace-gateway/internal/semantics"
)

// SpanFunc adds a vendor's attributes to one span from its facts and the
// facts of its trace (nil when the batch holds none of them).
type SpanFunc func(span ptrace.Span, f Facts, tf *TraceFacts)

// MapSpans returns a copy of td with fn applied to every span: the walk
// every vendor mapping shares. td itself is never modified.
func MapSpans(td ptrace.Traces, fn SpanFunc) ptrace.Traces {
	out := Copy(td)
	// Each span's facts are read once, for its trace's facts and its own.
	var all []Facts
	traces := collect(out, func(res pcommon.Resource, span ptrace.Span) Facts {
		f := Read(res, span)
		all = append(all, f)
		return f
	})
	i := 0
	Each(out, func(_ pcommon.Resource, span ptrace.Span) {
		fn(span, all[i], traces[span.TraceID()])
		i++
	})
	return out
}

// Kinds names a vendor's span kind for each gateway span type: a vendor's
// kind mapping is one table of these.
type Kinds struct {
	Agent      string // an agent or team run
	Workflow   string // a workflow run
	LLM        string
	Embedding  string
	Tool       string
	Retrieval  string
	Hook       string // pre and post hooks
	Delegation string
	Other      string // unclassified spans
}

// Of is the vendor's kind for the span f describes.
func (k Kinds) Of(f Facts) string {
	switch f.Type {
	case semantics.TypeRun:
		if f.RunKind == "workflow" {
			return k.Workflow
		}
		return k.Agent
	case semantics.TypeLLM:
		return k.LLM
	case semantics.TypeEmbedding:
		return k.Embedding
	case semantics.TypeTool:
		return k.Tool
	case semantics.TypeRetrieval:
		return k.Retrieval
	case semantics.TypePreHook, semantics.TypePostHook:
		return k.Hook
	case semantics.TypeDelegation:
		return k.Delegation
	}
	return k.Other
}

// Metadata is the free-form metadata several vendors keep for facts they
// have no attribute of their own for: run kind and id, agent id, tool calls,
// hook name, vector store, delegation member and mode, and the retrieval k
// as decimal text. Empty facts are left out; the map is the caller's to
// extend.
func (f Facts) Metadata() map[string]string {
	m := map[string]string{}
	for k, v := range map[string]string{
		"run_kind":          f.RunKind,
		"run_id":            f.RunID,
		"agent_id":          f.AgentID,
		"tool_calls":        f.ToolCalls,
		"hook_name":         f.HookName,
		"vector_store":      f.VectorStore,
		"delegation_member": f.DelegationMember,
		"delegation_mode":   f.DelegationMode,
	} {
		if v != "" {
			m[k] = v
		}
	}
	if f.HasRetrievalK {
		m["retrieval_k"] = strconv.FormatInt(f.RetrievalK, 10)
	}
	return m
}

// TokenUsage is the known token counts under the vendor's names for input,
// output and total; nil when none is known.
func (f Facts) TokenUsage(input, output, total string) map[string]int64 {
	if !f.Usage() {
		return nil
	}
	u := map[string]int64{}
	if f.HasInputTokens {
		u[input] = f.InputTokens
	}
	if f.HasOutputTokens {
		u[output] = f.OutputTokens
	}
	if f.HasTotalTokens {
		u[total] = f.TotalTokens
	}
	return u
}

// InvocationParams is the model parameters as a JSON object
// ({"temperature":0.2}); "" when none is known.
func (f Facts) InvocationParams() string {
	if !f.HasTemperature {
		return ""
	}
	return MarshalJSON(map[string]float64{"temperature": f.Temperature})
}
