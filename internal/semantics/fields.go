package semantics

import (
	"strings"

	"github.com/kern-agents/trace-gateway/internal/model"
)

// Where each normalised value comes from, in precedence order: OTel GenAI
// semconv first, then OpenInference, then agno.*, then plain keys. The
// first source holding a usable value wins. docs/semantics.md lists the same
// sources; keep them in step.
var (
	idSources = []struct {
		Key     string
		Sources []string
	}{
		{KeyRunID, []string{"agno.run.id", "run_id"}},
		{KeySessionID, []string{"gen_ai.conversation.id", "session.id", "agno.session.id", "session_id"}},
		{KeyUserID, []string{"user.id", "enduser.id", "agno.user.id", "user_id"}},
		{KeyAgentID, []string{"gen_ai.agent.id", "agno.agent.id", "agent_id"}},
		{KeyTeamID, []string{"agno.team.id", "team_id"}},
		{KeyWorkflowID, []string{"agno.workflow.id", "workflow_id"}},
	}

	modelSources     = []string{"gen_ai.request.model", "gen_ai.response.model", "llm.model_name", "agno.model.id", "agno.model"}
	embedModelSource = []string{"gen_ai.request.model", "gen_ai.response.model", "embedding.model_name", "llm.model_name", "agno.model.id", "agno.model"}

	inputTokenSources  = []string{"gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens", "llm.token_count.prompt", "agno.usage.input_tokens"}
	outputTokenSources = []string{"gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens", "llm.token_count.completion", "agno.usage.output_tokens"}
	totalTokenSources  = []string{"gen_ai.usage.total_tokens", "llm.usage.total_tokens", "llm.token_count.total", "agno.usage.total_tokens"}

	toolArgSources    = []string{"gen_ai.tool.call.arguments", "input.value", "tool.parameters", "agno.tool.arguments"}
	toolResultSources = []string{"gen_ai.tool.call.result", "output.value", "agno.tool.result"}

	runInputSources   = []string{"gen_ai.input.messages", "input.value", "agno.run.input"}
	runOutputSources  = []string{"gen_ai.output.messages", "output.value", "agno.run.output"}
	hookNameSources   = []string{"agno.hook.name"}
	hookInputSources  = []string{"input.value", "agno.hook.input"}
	hookOutputSources = []string{"output.value", "agno.hook.output"}

	querySources       = []string{"gen_ai.retrieval.query.text", "input.value", "reranker.query", "agno.retrieval.query"}
	vectorStoreSources = []string{"gen_ai.data_source.id", "db.system.name", "db.system", "agno.retrieval.vector_db"}
	kSources           = []string{"gen_ai.request.top_k", "reranker.top_k", "agno.retrieval.k"}

	memberSources   = []string{"agno.team.member"}
	memberArgFields = []string{"member_id", "member_name", "agent_name", "member"}
)

func textOf(v any) (string, bool) { return text(v, MaxValueBytes) }

// setFirst writes dst from the first source conv accepts.
func (s *view) setFirst(out map[string]any, dst string, conv func(any) (string, bool), sources ...string) bool {
	if v, ok := s.first(conv, sources...); ok {
		out[dst] = v
		return true
	}
	return false
}

func (s *view) ids(out map[string]any) {
	for _, id := range idSources {
		if s.setFirst(out, id.Key, idString, id.Sources...) {
			continue
		}
		// Resource attributes describe the process; they stand in for ids
		// only when the span itself has none.
		for _, k := range id.Sources {
			if v, ok := idString(s.info.Resource[k]); ok {
				out[id.Key] = v
				break
			}
		}
	}
}

func (s *view) model(out map[string]any, sources []string) {
	s.setFirst(out, KeyModel, idString, sources...)
}

func (s *view) tokens(out map[string]any) {
	in, okIn := s.firstTokens(inputTokenSources)
	outT, okOut := s.firstTokens(outputTokenSources)
	if okIn {
		out[KeyInputTokens] = in
	}
	if okOut {
		out[KeyOutputTokens] = outT
	}
	if total, ok := s.firstTokens(totalTokenSources); ok {
		out[KeyTotalTokens] = total
	} else if okIn || okOut {
		out[KeyTotalTokens] = in + outT
	}
}

func (s *view) firstTokens(sources []string) (int64, bool) {
	for _, k := range sources {
		if v, ok := s.attrs[k]; ok {
			if n, ok := tokenCount(v); ok {
				return n, true
			}
		}
	}
	return 0, false
}

func (s *view) temperature(out map[string]any) {
	accept := func(v any) (float64, bool) {
		f, ok := number(v)
		return f, ok && f >= 0 && f <= MaxTemperature
	}
	if f, ok := accept(s.attrs["gen_ai.request.temperature"]); ok {
		out[KeyTemperature] = f
		return
	}
	if p, ok := parseJSON(s.attrs["llm.invocation_parameters"]); ok {
		if m, ok := p.(map[string]any); ok {
			if f, ok := accept(m["temperature"]); ok {
				out[KeyTemperature] = f
				return
			}
		}
	}
	if f, ok := accept(s.attrs["agno.model.temperature"]); ok {
		out[KeyTemperature] = f
	}
}

// llmInput / llmOutput: the structured GenAI messages, the legacy GenAI
// prompt/completion, OpenInference's input.value / output.value, then the
// flattened message lists.
func (s *view) llmIO(out map[string]any) {
	if !s.setFirst(out, KeyInput, textOf, "gen_ai.input.messages", "gen_ai.prompt") {
		if v, ok := messagesJSON(s.flatMessages("gen_ai.prompt.")); ok {
			out[KeyInput] = v
		} else if !s.setFirst(out, KeyInput, textOf, "input.value") {
			if v, ok := messagesJSON(s.flatMessages("llm.input_messages.")); ok {
				out[KeyInput] = v
			}
		}
	}
	if !s.setFirst(out, KeyOutput, textOf, "gen_ai.output.messages", "gen_ai.completion") {
		if v, ok := messagesJSON(s.flatMessages("gen_ai.completion.")); ok {
			out[KeyOutput] = v
		} else if !s.setFirst(out, KeyOutput, textOf, "output.value") {
			if v, ok := messagesJSON(s.flatMessages("llm.output_messages.")); ok {
				out[KeyOutput] = v
			}
		}
	}
}

// toolCalls lists the tool calls an LLM call returned, as
// [{name, arguments, id}], from the first source that has any.
func (s *view) toolCalls(out map[string]any) {
	sources := []func() []any{
		func() []any { return genAIToolCalls(s.attrs["gen_ai.output.messages"]) },
		func() []any { return messagesToolCalls(s.flatMessages("gen_ai.completion.")) },
		func() []any { return messagesToolCalls(s.flatMessages("llm.output_messages.")) },
		func() []any { return jsonToolCalls(s.attrs["agno.llm.tool_calls"]) },
	}
	for _, src := range sources {
		if calls := src(); len(calls) > 0 {
			out[KeyToolCalls] = calls
			return
		}
	}
}

// genAIToolCalls reads tool_call parts of gen_ai.output.messages:
// [{"role":"assistant","parts":[{"type":"tool_call","id":..,"name":..,"arguments":..}]}].
func genAIToolCalls(v any) []any {
	p, ok := parseJSON(v)
	if !ok {
		return nil
	}
	msgs, _ := p.([]any)
	var calls []any
	for _, m := range msgs {
		mm, _ := m.(map[string]any)
		parts, _ := mm["parts"].([]any)
		for _, part := range parts {
			pm, _ := part.(map[string]any)
			if t, _ := pm["type"].(string); t != "tool_call" {
				continue
			}
			name, ok := fieldString(pm, "name")
			if !ok {
				continue
			}
			args, _ := fieldString(pm, "arguments")
			id, _ := fieldString(pm, "id")
			calls = append(calls, toolCallObject(name, args, id))
			if len(calls) == MaxListItems {
				return calls
			}
		}
	}
	return calls
}

// jsonToolCalls reads a JSON array of OpenAI-style tool calls:
// [{"id":..,"name":..,"arguments":..}] or [{"id":..,"function":{"name":..,"arguments":..}}].
func jsonToolCalls(v any) []any {
	p, ok := parseJSON(v)
	if !ok {
		return nil
	}
	list, _ := p.([]any)
	var calls []any
	for _, item := range list {
		m, _ := item.(map[string]any)
		if m == nil {
			continue
		}
		fn, _ := m["function"].(map[string]any)
		if fn == nil {
			fn = m
		}
		name, ok := fieldString(fn, "name")
		if !ok {
			continue
		}
		args, _ := fieldString(fn, "arguments")
		id, _ := fieldString(m, "id")
		calls = append(calls, toolCallObject(name, args, id))
		if len(calls) == MaxListItems {
			break
		}
	}
	return calls
}

func (s *view) tool(out map[string]any) {
	if n := s.toolName(); n != "" {
		out[KeyToolName] = n
	}
	if s.setFirst(out, KeyToolArguments, textOf, toolArgSources...) {
		out[KeyInput] = out[KeyToolArguments]
	}
	if s.setFirst(out, KeyToolResult, textOf, toolResultSources...) {
		out[KeyOutput] = out[KeyToolResult]
	}
}

func (s *view) hook(out map[string]any) {
	if !s.setFirst(out, KeyHookName, idString, hookNameSources...) {
		n := strings.TrimSpace(s.name)
		for _, p := range []string{"pre_hook", "pre-hook", "post_hook", "post-hook"} {
			if len(n) >= len(p) && strings.EqualFold(n[:len(p)], p) {
				if rest := strings.TrimLeft(n[len(p):], " :_-."); rest != "" {
					n = rest
				}
				break
			}
		}
		if n != "" && len(n) <= MaxIDBytes {
			out[KeyHookName] = n
		}
	}
	s.setFirst(out, KeyInput, textOf, hookInputSources...)
	s.setFirst(out, KeyOutput, textOf, hookOutputSources...)
}

func (s *view) retrieval(out map[string]any) {
	if s.setFirst(out, KeyRetrievalQuery, textOf, querySources...) {
		out[KeyInput] = out[KeyRetrievalQuery]
	}
	s.setFirst(out, KeyRetrievalVectorStore, idString, vectorStoreSources...)
	for _, k := range kSources {
		if f, ok := number(s.attrs[k]); ok && f >= 1 && f <= MaxRetrievalK {
			out[KeyRetrievalK] = int64(f)
			break
		}
	}
	docs := jsonDocuments(s.attrs["gen_ai.retrieval.documents"])
	if len(docs) == 0 {
		docs = s.flatDocuments("retrieval.documents.")
	}
	if len(docs) == 0 {
		docs = s.flatDocuments("reranker.output_documents.")
	}
	if len(docs) == 0 {
		docs = jsonDocuments(s.attrs["agno.retrieval.documents"])
	}
	if len(docs) > MaxListItems {
		docs = docs[:MaxListItems]
	}
	var list, scores []any
	for _, d := range docs {
		obj := map[string]any{}
		if d.ID != "" {
			obj["id"] = d.ID
		}
		if d.Content != "" {
			obj["content"] = d.Content
		}
		if d.HasScore {
			obj["score"] = d.Score
			scores = append(scores, d.Score)
		}
		if len(obj) > 0 {
			list = append(list, obj)
		}
	}
	if len(list) > 0 {
		out[KeyRetrievalDocuments] = list
	}
	if len(scores) > 0 {
		out[KeyRetrievalScores] = scores
	}
}

// jsonDocuments reads [{"id":..,"content":..,"score":..}] (GenAI semconv's
// gen_ai.retrieval.documents shape), as JSON text or structured value.
func jsonDocuments(v any) []*document {
	p, ok := parseJSON(v)
	if !ok {
		return nil
	}
	list, _ := p.([]any)
	var docs []*document
	for _, item := range list {
		m, _ := item.(map[string]any)
		if m == nil {
			continue
		}
		d := &document{}
		if id, ok := idString(m["id"]); ok {
			d.ID = id
		}
		if c, ok := text(m["content"], MaxDocContentBytes); ok {
			d.Content = c
		}
		if f, ok := number(m["score"]); ok {
			d.Score, d.HasScore = f, true
		}
		docs = append(docs, d)
		if len(docs) == MaxListItems {
			break
		}
	}
	return docs
}

func (s *view) delegation(out map[string]any) {
	var args map[string]any
	if raw, ok := s.first(textOf, toolArgSources...); ok {
		out[KeyInput] = raw
		if p, ok := parseJSON(raw); ok {
			args, _ = p.(map[string]any)
		}
	}
	s.setFirst(out, KeyOutput, textOf, toolResultSources...)
	if !s.setFirst(out, KeyDelegationMember, idString, memberSources...) {
		for _, f := range memberArgFields {
			if v, ok := idString(args[f]); ok {
				out[KeyDelegationMember] = v
				break
			}
		}
	}
	if v, ok := s.first(idString, "agno.team.mode"); ok {
		out[KeyDelegationMode] = strings.ToLower(v)
	} else if mode := delegationTools[s.delegationTool()]; mode != "" {
		out[KeyDelegationMode] = mode
	}
}

// exception takes the type and message of the span's last "exception"
// event (the one that ended it), falling back to error.type and the status
// message of a failed span.
func (s *view) exception(out map[string]any) {
	for i := len(s.info.Events) - 1; i >= 0; i-- {
		ev := s.info.Events[i]
		if ev.Name != "exception" {
			continue
		}
		if v, ok := idStringOrText(ev.Attributes["exception.type"]); ok {
			out[KeyExceptionType] = v
		}
		if v, ok := textOf(ev.Attributes["exception.message"]); ok {
			out[KeyExceptionMessage] = v
		}
		break
	}
	if !strings.EqualFold(s.info.StatusCode, model.StatusError) {
		return
	}
	if _, ok := out[KeyExceptionType]; !ok {
		if v, ok := idStringOrText(s.attrs["error.type"]); ok {
			out[KeyExceptionType] = v
		}
	}
	if _, ok := out[KeyExceptionMessage]; !ok {
		if v, ok := textOf(s.info.StatusMessage); ok {
			out[KeyExceptionMessage] = v
		}
	}
}

// idStringOrText accepts exception types, which are short names but are
// sometimes long dotted paths.
func idStringOrText(v any) (string, bool) {
	if s, ok := idString(v); ok {
		return s, true
	}
	return text(v, 1024)
}
