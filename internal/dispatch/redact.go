package dispatch

import (
	"crypto/sha256"
	"encoding/hex"
	"maps"
	"slices"
	"strings"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/kern-agents/trace-gateway/internal/config"
	"github.com/kern-agents/trace-gateway/internal/semantics"
	"github.com/kern-agents/trace-gateway/internal/spaninfo"
)

// Redaction has to find a value wherever the stored span holds it. The
// gateway stores, beside the sender's attributes, OpenInference keys derived
// from them for AgentOS (input.value from gen_ai.input.messages, say), so a
// rule that rewrites a sender's key also rewrites the keys derived from it:
// each is derived again, with package semantics, from the redacted span,
// exactly as the gateway would have stored it had the sender sent the
// redacted value. A derived key the rules name themselves is left as they
// made it.

// derivable are the keys semantics.Annotate may derive from other keys of
// a span (openinference.span.kind, a classification, holds no value).
var derivable = []string{
	semantics.AttrInput, semantics.AttrOutput, semantics.AttrToolParameters,
	semantics.AttrTokensPrompt, semantics.AttrTokensCompletion, semantics.AttrTokensTotal,
	semantics.AttrToolName, semantics.AttrExceptionMessage, semantics.AttrSessionID, semantics.AttrUserID,
}

// Sources of the normalised values the gateway stored under kern.* keys
// before it stored the OpenInference keys AgentOS reads (see
// docs/semantics.md for where each value is read from).
var (
	inputKeys = []string{
		"input.value", "tool.parameters", "gen_ai.input.messages", "gen_ai.prompt", "gen_ai.prompt.*",
		"llm.input_messages.*", "agno.run.input", "agno.hook.input",
	}
	outputKeys = []string{
		"output.value", "gen_ai.output.messages", "gen_ai.completion", "gen_ai.completion.*",
		"llm.output_messages.*", "agno.run.output", "agno.hook.output",
	}
	toolArgumentKeys = []string{"gen_ai.tool.call.arguments", "input.value", "tool.parameters", "agno.tool.arguments"}
	toolResultKeys   = []string{"gen_ai.tool.call.result", "output.value", "agno.tool.result"}
	queryKeys        = []string{"gen_ai.retrieval.query.text", "input.value", "reranker.query", "agno.retrieval.query"}
	documentKeys     = []string{"gen_ai.retrieval.documents", "retrieval.documents.*", "reranker.output_documents.*", "agno.retrieval.documents"}
)

// legacyKeys maps each normalised kern.* key the gateway used to store to
// the attribute keys that hold its value now: the sender's keys it was read
// from and the OpenInference key the gateway stores. A key ending in "*" is
// a prefix (flattened lists). A rule written for the old key applies to all
// of them, so the value it was written to hide is still hidden.
var legacyKeys = map[string][]string{
	"kern.span.type":              {semantics.AttrSpanKind},
	"kern.run.kind":               nil,
	"kern.input":                  concat(inputKeys, toolArgumentKeys, queryKeys),
	"kern.output":                 concat(outputKeys, toolResultKeys),
	"kern.model":                  {"gen_ai.request.model", "gen_ai.response.model", "llm.model_name", "embedding.model_name", "agno.model.id", "agno.model"},
	"kern.usage.input_tokens":     {"gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens", "llm.token_count.prompt", "agno.usage.input_tokens"},
	"kern.usage.output_tokens":    {"gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens", "llm.token_count.completion", "agno.usage.output_tokens"},
	"kern.usage.total_tokens":     {"gen_ai.usage.total_tokens", "llm.usage.total_tokens", "llm.token_count.total", "agno.usage.total_tokens"},
	"kern.llm.temperature":        {"gen_ai.request.temperature", "llm.invocation_parameters", "agno.model.temperature"},
	"kern.llm.tool_calls":         {"gen_ai.output.messages", "gen_ai.completion.*", "llm.output_messages.*", "agno.llm.tool_calls"},
	"kern.tool.name":              {"gen_ai.tool.name", "tool.name", "agno.tool.name", "tool_name"},
	"kern.tool.arguments":         toolArgumentKeys,
	"kern.tool.result":            toolResultKeys,
	"kern.exception.type":         {"exception.type", "error.type"},
	"kern.exception.message":      {"exception.message"},
	"kern.hook.name":              {"agno.hook.name"},
	"kern.retrieval.query":        queryKeys,
	"kern.retrieval.vector_store": {"gen_ai.data_source.id", "db.system.name", "db.system", "agno.retrieval.vector_db"},
	"kern.retrieval.k":            {"gen_ai.request.top_k", "reranker.top_k", "agno.retrieval.k"},
	"kern.retrieval.documents":    documentKeys,
	"kern.retrieval.scores":       documentKeys,
	"kern.delegation.member":      {"agno.team.member"},
	"kern.delegation.mode":        {"agno.team.mode"},
	"kern.run_id":                 {"agno.run.id", "run_id"},
	"kern.session_id":             {"gen_ai.conversation.id", "session.id", "agno.session.id", "session_id"},
	"kern.user_id":                {"user.id", "enduser.id", "agno.user.id", "user_id"},
	"kern.agent_id":               {"gen_ai.agent.id", "agno.agent.id", "agent_id"},
	"kern.team_id":                {"agno.team.id", "team.id", "team_id"},
	"kern.workflow_id":            {"agno.workflow.id", "workflow_id"},
}

func concat(lists ...[]string) []string {
	var out []string
	for _, l := range lists {
		for _, k := range l {
			if !slices.Contains(out, k) {
				out = append(out, k)
			}
		}
	}
	return out
}

// redactions are a route's redaction rules, with the rules on legacy kern.*
// keys extended to the keys holding their values now.
type redactions []config.Redaction

func compileRedactions(rules []config.Redaction) redactions {
	if len(rules) == 0 {
		return nil
	}
	out := slices.Clone(rules)
	for _, rule := range rules {
		prefix, isPrefix := strings.CutSuffix(rule.Key, "*")
		for _, legacy := range sortedLegacyKeys {
			if legacy == rule.Key || (isPrefix && strings.HasPrefix(legacy, prefix)) {
				for _, k := range legacyKeys[legacy] {
					out = append(out, config.Redaction{Key: k, Action: rule.Action})
				}
			}
		}
	}
	return out
}

// sortedLegacyKeys orders the expansion, so a route always applies its
// rules in the same order.
var sortedLegacyKeys = slices.Sorted(maps.Keys(legacyKeys))

// resource redacts a resource's attributes.
func (r redactions) resource(m pcommon.Map) { r.apply(m, nil) }

// span redacts a span's attributes, events and links, and derives again the
// keys the gateway derived from a value the rules changed.
func (r redactions) span(sp ptrace.Span) {
	if len(r) == 0 {
		return
	}
	// What the span was, taken only when a rule will change what the
	// derived keys are read from: its attributes or exception events.
	var before map[string]any
	var beforeInfo semantics.Info
	if r.hits(sp.Attributes()) || r.hitsExceptionEvents(sp) {
		before = sp.Attributes().AsRaw()
		beforeInfo = spaninfo.Info(sp, nil)
	}
	var changed []string
	r.apply(sp.Attributes(), &changed)
	for _, ev := range sp.Events().All() {
		r.apply(ev.Attributes(), nil)
	}
	for _, l := range sp.Links().All() {
		r.apply(l.Attributes(), nil)
	}
	if before != nil {
		rederive(sp, beforeInfo, before, changed)
	}
}

// rederive makes each key the gateway derived from sp's other keys what it
// derives from them now. A key whose value is not what the gateway derives
// from the span as it was is the sender's own, and stays as it is.
func rederive(sp ptrace.Span, beforeInfo semantics.Info, before map[string]any, changed []string) {
	attrs := sp.Attributes()
	var after map[string]any
	var afterInfo semantics.Info
	for _, k := range derivable {
		cur, ok := attrs.Get(k)
		if !ok || slices.Contains(changed, k) {
			continue
		}
		if was, ok := spaninfo.Derive(beforeInfo, before, k); !ok || !spaninfo.Same(cur, was) {
			continue
		}
		if after == nil {
			after, afterInfo = attrs.AsRaw(), spaninfo.Info(sp, nil)
		}
		now, ok := spaninfo.Derive(afterInfo, after, k)
		switch {
		case !ok:
			attrs.Remove(k)
		case !spaninfo.Same(cur, now):
			if err := attrs.PutEmpty(k).FromRaw(now); err != nil {
				attrs.Remove(k) // not a value pdata holds: never keep the old one
			}
		}
	}
}

// hits reports whether a rule names a key m holds.
func (r redactions) hits(m pcommon.Map) bool {
	for _, rule := range r {
		if prefix, ok := strings.CutSuffix(rule.Key, "*"); ok {
			for k := range m.All() {
				if strings.HasPrefix(k, prefix) {
					return true
				}
			}
		} else if _, ok := m.Get(rule.Key); ok {
			return true
		}
	}
	return false
}

func (r redactions) hitsExceptionEvents(sp ptrace.Span) bool {
	for _, ev := range sp.Events().All() {
		if ev.Name() == "exception" && r.hits(ev.Attributes()) {
			return true
		}
	}
	return false
}

// apply applies every rule to one attribute map, adding the keys it
// changed to changed when not nil.
func (r redactions) apply(m pcommon.Map, changed *[]string) {
	if len(r) == 0 || m.Len() == 0 {
		return
	}
	for _, rule := range r {
		if prefix, ok := strings.CutSuffix(rule.Key, "*"); ok {
			var keys []string
			for k := range m.All() {
				if strings.HasPrefix(k, prefix) {
					keys = append(keys, k)
				}
			}
			for _, k := range keys {
				redactKey(m, k, rule.Action, changed)
			}
			continue
		}
		redactKey(m, rule.Key, rule.Action, changed)
	}
}

func redactKey(m pcommon.Map, key, action string, changed *[]string) {
	v, ok := m.Get(key)
	if !ok {
		return
	}
	switch action {
	case config.RedactDrop:
		m.Remove(key)
	case config.RedactHash:
		sum := sha256.Sum256([]byte(v.AsString()))
		m.PutStr(key, hex.EncodeToString(sum[:]))
	default: // mask
		m.PutStr(key, Masked)
	}
	if changed != nil && !slices.Contains(*changed, key) {
		*changed = append(*changed, key)
	}
}
