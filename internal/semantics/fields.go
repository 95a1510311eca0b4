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

// modelOf is the KeyModel fact of a span of type typ.
func (s *view) modelOf(typ string) (string, bool) {
	switch typ {
	case TypeRun, TypeLLM:
		return s.first(idString, modelSources...)
	case TypeEmbedding:
		return s.first(idString, embedModelSource...)
	}
	return "", false
}

// usage holds the token facts of an LLM or embedding span.
type usage struct {
	in, out, total       int64
	okIn, okOut, okTotal bool
}

func (s *view) usage() usage {
	var u usage
	u.in, u.okIn = s.firstTokens(inputTokenSources)
	u.out, u.okOut = s.firstTokens(outputTokenSources)
	if total, ok := s.firstTokens(totalTokenSources); ok {
		u.total, u.okTotal = total, true
	} else if u.okIn || u.okOut {
		u.total, u.okTotal = u.in+u.out, true
	}
	return u
}

func (s *view) tokens(out map[string]any) {
	u := s.usage()
	if u.okIn {
		out[KeyInputTokens] = u.in
	}
	if u.okOut {
		out[KeyOutputTokens] = u.out
	}
	if u.okTotal {
		out[KeyTotalTokens] = u.total
	}
}

// inputOf and outputOf are the KeyInput and KeyOutput facts of a span of
// type typ (for tools also its arguments and result, for retrievals its
// query).
func (s *view) inputOf(typ string) (string, bool) {
	switch typ {
	case TypeRun:
		return s.first(textOf, runInputSources...)
	case TypeLLM:
		return s.llmInput()
	case TypeEmbedding:
		return s.first(textOf, "gen_ai.input.messages", "input.value")
	case TypeTool, TypeDelegation:
		return s.first(textOf, toolArgSources...)
	case TypePreHook, TypePostHook:
		return s.first(textOf, hookInputSources...)
	case TypeRetrieval:
		return s.first(textOf, querySources...)
	}
	return "", false
}

func (s *view) outputOf(typ string) (string, bool) {
	switch typ {
	case TypeRun:
		return s.first(textOf, runOutputSources...)
	case TypeLLM:
		return s.llmOutput()
	case TypeTool, TypeDelegation:
		return s.first(textOf, toolResultSources...)
	case TypePreHook, TypePostHook:
		return s.first(textOf, hookOutputSources...)
	}
	return "", false
}

// setIO writes the KeyInput and KeyOutput facts.
func (s *view) setIO(out map[string]any, typ string) {
	if v, ok := s.inputOf(typ); ok {
		out[KeyInput] = v
	}
	if v, ok := s.outputOf(typ); ok {
		out[KeyOutput] = v
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
func (s *view) llmInput() (string, bool) {
	if v, ok := s.first(textOf, "gen_ai.input.messages", "gen_ai.prompt"); ok {
		return v, true
	}
	if v, ok := messagesJSON(s.flatMessages("gen_ai.prompt.")); ok {
		return v, true
	}
	if v, ok := s.first(textOf, "input.value"); ok {
		return v, true
	}
	return messagesJSON(s.flatMessages("llm.input_messages."))
}

func (s *view) llmOutput() (string, bool) {
	if v, ok := s.first(textOf, "gen_ai.output.messages", "gen_ai.completion"); ok {
		return v, true
	}
	if v, ok := messagesJSON(s.flatMessages("gen_ai.completion.")); ok {
		return v, true
	}
	if v, ok := s.first(textOf, "output.value"); ok {
		return v, true
	}
	return messagesJSON(s.flatMessages("llm.output_messages."))
}

// toolCalls writes the KeyToolCalls fact.
func (s *view) toolCalls(out map[string]any) {
	if calls := s.toolCallList(); len(calls) > 0 {
		out[KeyToolCalls] = calls
	}
}

// toolCallList lists the tool calls an LLM call returned, as
// [{name, arguments, id}], from the first source that has any.
func (s *view) toolCallList() []any {
	if calls := genAIToolCalls(s.parsed("gen_ai.output.messages")); len(calls) > 0 {
		return calls
	}
	if calls := messagesToolCalls(s.flatMessages("gen_ai.completion.")); len(calls) > 0 {
		return calls
	}
	if calls := messagesToolCalls(s.flatMessages("llm.output_messages.")); len(calls) > 0 {
		return calls
	}
	return jsonToolCalls(s.attrs["agno.llm.tool_calls"])
}

// genAIToolCalls reads tool_call parts of gen_ai.output.messages:
// [{"role":"assistant","parts":[{"type":"tool_call","id":..,"name":..,"arguments":..}]}].
// p is the parsed value (see view.parsed).
func genAIToolCalls(p parsedJSON) []any {
	if !p.ok {
		return nil
	}
	msgs, _ := p.v.([]any)
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
	if v, ok := s.inputOf(TypeTool); ok {
		out[KeyToolArguments], out[KeyInput] = v, v
	}
	if v, ok := s.outputOf(TypeTool); ok {
		out[KeyToolResult], out[KeyOutput] = v, v
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
	s.setIO(out, TypePreHook)
}

func (s *view) retrieval(out map[string]any) {
	if v, ok := s.inputOf(TypeRetrieval); ok {
		out[KeyRetrievalQuery], out[KeyInput] = v, v
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
	if raw, ok := s.inputOf(TypeDelegation); ok {
		out[KeyInput] = raw
		if p, ok := parseJSON(raw); ok {
			args, _ = p.(map[string]any)
		}
	}
	if v, ok := s.outputOf(TypeDelegation); ok {
		out[KeyOutput] = v
	}
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
	if v, ok := s.exceptionType(); ok {
		out[KeyExceptionType] = v
	}
	if v, ok := s.exceptionMessage(); ok {
		out[KeyExceptionMessage] = v
	}
}

// lastException is the span's last "exception" event, nil when none.
func (s *view) lastException() *Event {
	for i := len(s.info.Events) - 1; i >= 0; i-- {
		if s.info.Events[i].Name == "exception" {
			return &s.info.Events[i]
		}
	}
	return nil
}

func (s *view) exceptionType() (string, bool) {
	if ev := s.lastException(); ev != nil {
		if v, ok := idStringOrText(ev.Attributes["exception.type"]); ok {
			return v, true
		}
	}
	if !strings.EqualFold(s.info.StatusCode, model.StatusError) {
		return "", false
	}
	return idStringOrText(s.attrs["error.type"])
}

func (s *view) exceptionMessage() (string, bool) {
	if ev := s.lastException(); ev != nil {
		if v, ok := textOf(ev.Attributes["exception.message"]); ok {
			return v, true
		}
	}
	if !strings.EqualFold(s.info.StatusCode, model.StatusError) {
		return "", false
	}
	return textOf(s.info.StatusMessage)
}

// idStringOrText accepts exception types, which are short names but are
// sometimes long dotted paths.
func idStringOrText(v any) (string, bool) {
	if s, ok := idString(v); ok {
		return s, true
	}
	return text(v, 1024)
}
