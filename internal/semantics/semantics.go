// Package semantics recognises what an agent-run span is (run, LLM call,
// tool, hook, retrieval, team delegation...) whatever convention the sender
// used, and does two things with it:
//
//   - Annotate adds to a span's attributes the OpenInference keys AgentOS's
//     trace view reads (openinference.span.kind, input.value, llm.model_name,
//     llm.token_count.*, tool.name, ...) when the span lacks them, so the
//     AgentOS control plane shows spans from any sender. The sender's own
//     keys stay as sent.
//   - Normalize returns the span's normalised facts (model, tokens, tool
//     arguments, retrieved documents...) for the explorer, routing and the
//     vendor mappings. Facts are computed when read, never stored.
//
// Classification is one ordered table (see Rules and docs/semantics.md).
// Normalised values are read from the sender's attributes with a fixed
// precedence: OTel GenAI semantic conventions first, then OpenInference,
// then agno.*, then plain keys such as agent_id.
package semantics

import (
	"slices"
	"strings"

	"github.com/kern-agents/trace-gateway/internal/model"
)

// Event is a span event as the converter hands it over.
type Event struct {
	Name       string
	TimeUnix   int64
	Attributes map[string]any
}

// Info is what Annotate and Normalize may read about a span besides its
// attributes.
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
	// Keys, when not nil, lists the keys of the attributes map, each once,
	// so that reading a span walks a slice instead of the map.
	Keys []string
}

// Normalize returns the span's facts under the Key* fact keys (attrs are the
// span's attributes decoded to Go values: string, bool, int64, float64, []any,
// map[string]any). It never changes attrs. Values of unexpected types are
// ignored, never fatal; a nil map gives only the type.
//
// Values: strings, int64 (token counts, k), float64 (temperature, scores)
// and []any of map[string]any (tool calls, documents).
func Normalize(info Info, attrs map[string]any) map[string]any {
	s := newView(info, attrs)
	defer s.release()
	typ, kind := s.classify()
	return s.normalize(typ, kind)
}

func (s *view) normalize(typ, kind string) map[string]any {
	out := make(map[string]any, 16)
	out[KeySpanType] = typ
	s.ids(out)
	if m, ok := s.modelOf(typ); ok {
		out[KeyModel] = m
	}
	switch typ {
	case TypeRun:
		out[KeyRunKind] = kind
		s.setIO(out, typ)
	case TypeLLM:
		s.tokens(out)
		s.temperature(out)
		s.toolCalls(out)
		s.setIO(out, typ)
	case TypeEmbedding:
		s.tokens(out)
		s.setIO(out, typ)
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
	return out
}

// Annotate makes the span readable by AgentOS's trace view. It adds to attrs
// the keys of that view (the Attr* constants) the span lacks, derived from
// the sender's convention, and makes the ones the sender sent with a type
// AgentOS cannot read readable (see coerce). It returns the keys it wrote,
// sorted; the caller stores those and keeps every other key as sent.
//
// It never writes a value the span already holds under a key AgentOS reads
// (a tool's arguments already in input.value are not copied to
// tool.parameters), so a span stores each value once besides the sender's
// own convention.
func Annotate(info Info, attrs map[string]any) []string {
	if attrs == nil {
		return nil
	}
	s := newView(info, attrs)
	defer s.release()
	typ, kind := s.classify()
	// The facts Annotate stores, read before it changes attrs; Normalize's
	// others (ids, temperature, documents...) are not needed here.
	var modelName, inTokens, outTokens, totalTokens any
	if m, ok := s.modelOf(typ); ok {
		modelName = m
	}
	if typ == TypeLLM || typ == TypeEmbedding {
		u := s.usage()
		inTokens, outTokens, totalTokens = opt(u.in, u.okIn), opt(u.out, u.okOut), opt(u.total, u.okTotal)
	}
	var args, result any
	if typ != TypeLLM {
		// An LLM call's are read below, and only when its messages give
		// no text: what Annotate changes until then (the text form of a
		// structured input.value or output.value) reads the same.
		args, result = opt(s.inputOf(typ)), opt(s.outputOf(typ))
	}

	a := annotation{attrs: attrs}
	a.coerce()
	if _, ok := attrs[AttrSpanKind]; !ok {
		a.set(AttrSpanKind, SpanKindOf(typ, kind))
	}
	oiKind, _ := attrs[AttrSpanKind].(string)

	// Ids AgentOS shows in a node's metadata: the span's own (never the
	// resource's, which is stored once for all its spans), in the order the
	// trace row takes them, so a root's node and its trace agree.
	for _, id := range []struct{ dst, column string }{{AttrSessionID, "session_id"}, {AttrUserID, "user_id"}} {
		if _, ok := attrs[id.dst]; ok {
			continue
		}
		for _, src := range TraceIDSources {
			if src.Column != id.column {
				continue
			}
			if v, ok := s.first(idString, src.Keys...); ok {
				a.set(id.dst, v)
			}
		}
	}

	switch oiKind {
	case KindLLM, KindEmbedding:
		// AgentOS shows the model and sums prompt and completion tokens of
		// LLM spans; a total the sender did not send is their sum, left to
		// whoever reads them rather than stored.
		a.add(AttrModelName, modelName)
		a.add(AttrTokensPrompt, inTokens)
		a.add(AttrTokensCompletion, outTokens)
		if s.hasAny(totalTokenSources...) {
			a.add(AttrTokensTotal, totalTokens)
		}
	case KindTool:
		if n := s.toolName(); n != "" {
			a.add(AttrToolName, n)
		}
	}
	if typ == TypeLLM {
		args, result = s.llmAnnotation(attrs)
	}
	a.add(AttrInput, args)
	if oiKind == KindTool {
		// AgentOS shows tool.parameters beside the input; only worth its
		// bytes when input.value holds something else.
		if _, ok := attrs[AttrToolParameters]; !ok && args != nil && !a.holds(args) {
			a.set(AttrToolParameters, args)
		}
	}
	a.add(AttrOutput, result)
	if strings.EqualFold(info.StatusCode, model.StatusError) && info.StatusMessage == "" {
		a.add(AttrExceptionMessage, opt(s.exceptionMessage()))
	}
	slices.Sort(a.wrote)
	return a.wrote
}

// llmAnnotation is what an LLM call stores as its input and output: the
// text a person reads when the sender sent no input.value / output.value,
// else the input and output facts.
func (s *view) llmAnnotation(attrs map[string]any) (args, result any) {
	textDone := false
	if _, sent := attrs[AttrInput]; !sent {
		if t, ok := s.llmText(true); ok {
			args, textDone = t, true
		}
	}
	if !textDone {
		args = opt(s.inputOf(TypeLLM))
	}
	textDone = false
	if _, sent := attrs[AttrOutput]; !sent {
		if t, ok := s.llmText(false); ok {
			result, textDone = t, true
		} else if calls := s.toolCallList(); len(calls) > 0 {
			// A reply of tool calls only: the calls are what it said.
			if b, err := marshalToolCalls(calls); err == nil {
				result, textDone = truncate(string(b), MaxValueBytes), true
			}
		}
	}
	if !textDone {
		result = opt(s.outputOf(TypeLLM))
	}
	return args, result
}

// opt is v when ok, else nil (a missing fact).
func opt[T any](v T, ok bool) any {
	if !ok {
		return nil
	}
	return v
}

// annotation collects what Annotate writes.
type annotation struct {
	attrs map[string]any
	wrote []string
}

func (a *annotation) set(k string, v any) {
	if !slices.Contains(a.wrote, k) {
		a.wrote = append(a.wrote, k)
	}
	a.attrs[k] = v
}

// add writes v under k when the span has no k and does not hold v under
// another key AgentOS reads.
func (a *annotation) add(k string, v any) {
	if v == nil {
		return
	}
	if _, ok := a.attrs[k]; ok || a.holds(v) {
		return
	}
	a.set(k, v)
}

// holds reports whether a string value is already stored under one of the
// keys AgentOS reads as text.
func (a *annotation) holds(v any) bool {
	sv, ok := v.(string)
	if !ok {
		return false
	}
	for _, k := range []string{AttrInput, AttrOutput, AttrToolParameters} {
		if cur, ok := a.attrs[k].(string); ok && cur == sv {
			return true
		}
	}
	return false
}

// coerce replaces values of keys AgentOS reads that would make its trace
// routes fail (they are typed str or summed as int there): a non-string
// span kind, input, output or exception message becomes its JSON text, a
// token count that is not an integer becomes one or null, and a non-list
// step list becomes null. Upper-case is restored on a known span kind sent
// in another case. Everything else stays as sent.
func (a *annotation) coerce() {
	for _, k := range []string{AttrInput, AttrOutput, AttrExceptionMessage} {
		v, ok := a.attrs[k]
		if !ok || v == nil {
			continue
		}
		if _, isStr := v.(string); !isStr {
			t, _ := text(v, MaxValueBytes)
			a.set(k, t)
		}
	}
	if v, ok := a.attrs[AttrSpanKind]; ok {
		sv, isStr := v.(string)
		switch {
		case !isStr || strings.TrimSpace(sv) == "":
			delete(a.attrs, AttrSpanKind) // Annotate classifies it
		case !knownKinds[sv] && knownKinds[strings.ToUpper(strings.TrimSpace(sv))]:
			a.set(AttrSpanKind, strings.ToUpper(strings.TrimSpace(sv)))
		}
	}
	for _, k := range []string{AttrTokensPrompt, AttrTokensCompletion, AttrTokensTotal} {
		v, ok := a.attrs[k]
		if !ok || v == nil {
			continue
		}
		switch v.(type) {
		case int64, int:
			continue
		}
		if n, ok := tokenCount(v); ok {
			a.set(k, n)
		} else {
			a.set(k, nil)
		}
	}
	if v, ok := a.attrs[AttrWorkflowSteps]; ok && v != nil {
		if _, isList := v.([]any); !isList {
			a.set(AttrWorkflowSteps, nil)
		}
	}
}

// TraceIDSources lists, per agno_traces id column, the root-span keys tried
// in order.
var TraceIDSources = []struct {
	Column string
	Keys   []string
}{
	{"run_id", []string{"run_id", "agno.run.id"}},
	{"session_id", []string{"session_id", "agno.session.id", "session.id", "gen_ai.conversation.id"}},
	{"user_id", []string{"user_id", "agno.user.id", "user.id", "enduser.id"}},
	{"agent_id", []string{"agent_id", "agno.agent.id", "gen_ai.agent.id"}},
	{"team_id", []string{"team_id", "agno.team.id", "team.id"}},
	{"workflow_id", []string{"workflow_id", "agno.workflow.id"}},
}

// RootIDs derives a trace row's ids from its root span's attributes the way
// agno 2.9 derives them (tracing/schemas.py, create_trace_from_spans): per
// column, the first key of TraceIDSources with a usable value, in agno's
// order, then the GenAI / OpenInference equivalents for other senders.
// Values must be non-empty strings or integers (see idString); anything else
// is skipped like a missing key, so a client never puts a document into an
// indexed id column.
func RootIDs(attrs map[string]any) model.TraceIDs {
	var ids model.TraceIDs
	dst := ids.Fields()
	for i, src := range TraceIDSources {
		for _, k := range src.Keys {
			if f, isNum := number(attrs[k]); isNum && f == 0 {
				if _, isStr := attrs[k].(string); !isStr {
					continue // 0 is falsy in agno's `or` chain
				}
			}
			if v, ok := idString(attrs[k]); ok {
				*dst[i] = v
				break
			}
		}
	}
	return ids
}

// llmText is what AgentOS shows as an LLM hop's input or output when the
// sender used a structured message convention (GenAI's
// gen_ai.input/output.messages, or flattened messages): the text a person
// reads — for the input the last user message, for the output the text of
// the reply — rather than a second copy of the structured messages, which
// stay as sent (and whole in Normalize's facts). ok is false when there is
// no text part (a reply of tool calls only).
func (s *view) llmText(input bool) (string, bool) {
	key, flatPrefixes := "gen_ai.output.messages", []string{"gen_ai.completion.", "llm.output_messages."}
	if input {
		key, flatPrefixes = "gen_ai.input.messages", []string{"gen_ai.prompt.", "llm.input_messages."}
	}
	var msgs []*message
	if p := s.parsed(key); p.ok {
		list, _ := p.v.([]any)
		for _, item := range list {
			m, _ := item.(map[string]any)
			if m == nil {
				continue
			}
			msg := &message{}
			msg.Role, _ = m["role"].(string)
			parts, _ := m["parts"].([]any)
			var texts []string
			for _, part := range parts {
				pm, _ := part.(map[string]any)
				if t, _ := pm["type"].(string); t == "text" {
					if c, ok := pm["content"].(string); ok && c != "" {
						texts = append(texts, c)
					}
				}
			}
			msg.Content = strings.Join(texts, "\n")
			msgs = append(msgs, msg)
		}
	} else {
		for _, prefix := range flatPrefixes {
			if msgs = s.flatMessages(prefix); len(msgs) > 0 {
				break
			}
		}
	}
	var out []string
	for i := len(msgs) - 1; i >= 0; i-- {
		m := msgs[i]
		if m.Content == "" {
			continue
		}
		if input {
			if m.Role == "user" || m.Role == "" {
				return truncate(m.Content, MaxValueBytes), true
			}
			continue
		}
		out = append([]string{m.Content}, out...)
	}
	if len(out) == 0 {
		return "", false
	}
	return truncate(strings.Join(out, "\n"), MaxValueBytes), true
}
