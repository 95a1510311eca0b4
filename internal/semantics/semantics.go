// Package semantics recognises what an agent-run span is (run, LLM call,
// tool, hook, retrieval, team delegation...) and writes normalised kern.*
// attributes so that queries and exporters need not know which convention
// the sender used.
//
// Classification is one ordered table (see Rules and docs/semantics.md).
// Normalised values are read from the sender's attributes with a fixed
// precedence: OTel GenAI semantic conventions first, then OpenInference,
// then agno.*, then plain keys such as agent_id.
package semantics

import "github.com/kern-agents/trace-gateway/internal/model"

// Event is a span event as the converter hands it over.
type Event struct {
	Name       string
	TimeUnix   int64
	Attributes map[string]any
}

// Info is what Annotate may read about a span besides its attributes.
type Info struct {
	Name          string
	Kind          string // INTERNAL, CLIENT, ...
	ParentSpanID  string
	StatusCode    string
	StatusMessage string
	StartUnixNano int64
	EndUnixNano   int64
	Events        []Event
	Resource      map[string]any
}

// OwnedKeys are the keys Annotate computes, all in the gateway's reserved
// kern.* namespace. Senders should not use that namespace; if one does send
// a key of the same name, its value is kept as sent and Annotate does not
// write that key (the converter stores the sender's keys verbatim).
var OwnedKeys = []string{
	model.KeySpanType, KeyRunKind,
	model.KeyRunID, model.KeySessionID, model.KeyUserID,
	model.KeyAgentID, model.KeyTeamID, model.KeyWorkflowID,
	KeyModel, KeyInput, KeyOutput,
	KeyInputTokens, KeyOutputTokens, KeyTotalTokens, KeyTemperature, KeyToolCalls,
	KeyToolName, KeyToolArguments, KeyToolResult,
	KeyExceptionType, KeyExceptionMessage,
	KeyHookName,
	KeyRetrievalQuery, KeyRetrievalVectorStore, KeyRetrievalK, KeyRetrievalDocuments, KeyRetrievalScores,
	KeyDelegationMember, KeyDelegationMode,
}

// Annotate adds the kern.* keys to attrs (the span's own attributes decoded
// to Go values: string, bool, int64, float64, []any, map[string]any). It
// never removes or changes the sender's keys, and only adds keys listed in
// OwnedKeys that the sender did not send. Values of unexpected types are
// ignored, never fatal; a nil map is left alone.
//
// Written values: strings, int64 (token counts, k), float64 (temperature,
// scores) and []any of map[string]any (tool calls, documents), so that they
// serialise to JSON strings, numbers and arrays.
func Annotate(info Info, attrs map[string]any) {
	if attrs == nil {
		return
	}
	s := newView(info, attrs)
	typ, kind := s.classify()

	out := make(map[string]any, 16)
	out[model.KeySpanType] = typ
	s.ids(out)
	switch typ {
	case TypeRun:
		out[KeyRunKind] = kind
		s.model(out, modelSources)
		s.setFirst(out, KeyInput, textOf, runInputSources...)
		s.setFirst(out, KeyOutput, textOf, runOutputSources...)
	case TypeLLM:
		s.model(out, modelSources)
		s.tokens(out)
		s.temperature(out)
		s.toolCalls(out)
		s.llmIO(out)
	case TypeEmbedding:
		s.model(out, embedModelSource)
		s.tokens(out)
		s.setFirst(out, KeyInput, textOf, "gen_ai.input.messages", "input.value")
	case TypeTool:
		s.tool(out)
	case TypePreHook, TypePostHook:
		s.hook(out)
	case TypeRetrieval:
		s.retrieval(out)
	case TypeDelegation:
		s.delegation(out)
	}
	s.exception(out)

	// Written last so extraction only ever read the sender's keys.
	for k, v := range out {
		if _, sent := attrs[k]; !sent {
			attrs[k] = v
		}
	}
}
