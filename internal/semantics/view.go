package semantics

import (
	"strings"
	"sync"
)

// view is a span as the rules and extractors read it: the attributes plus
// what one pass over their keys found (so a span with 10k attributes is
// walked once, not once per rule).
type view struct {
	info   Info
	attrs  map[string]any
	name   string
	lname  string // lower-cased, trimmed name
	op     string // gen_ai.operation.name, lower-cased
	oiKind string // openinference.span.kind, upper-cased

	hookType string // agno.hook.type, lower-cased

	hasAgnoWorkflow bool // some agno.workflow.* key
	hasAgnoStep     bool // some agno.step.* key
	hasAgnoUsage    bool // some agno.usage.* key

	// Flattened keys, kept for the extractors that need them.
	flat [len(flatPrefixes)][]string // keys under each of flatPrefixes
	msgs map[string][]*message       // flatMessages results, built once per prefix

	// parsedJSON caches parsed, so a message list read for the text and
	// for the tool calls is decoded once.
	parsedJSON []parsedJSON
}

// parsedJSON is parseJSON's result for one attribute.
type parsedJSON struct {
	key string
	v   any
	ok  bool
}

// parsed is parseJSON of attribute key, decoded once per view. Callers only
// read the result.
func (s *view) parsed(key string) parsedJSON {
	for _, p := range s.parsedJSON {
		if p.key == key {
			return p
		}
	}
	p := parsedJSON{key: key}
	p.v, p.ok = parseJSON(s.attrs[key])
	s.parsedJSON = append(s.parsedJSON, p)
	return p
}

// flatPrefixes are the flattened (key.N.sub) families the extractors read.
var flatPrefixes = [...]string{
	"llm.input_messages.",
	"llm.output_messages.",
	"gen_ai.prompt.",
	"gen_ai.completion.",
	"retrieval.documents.",
	"reranker.output_documents.",
}

// viewPool keeps views, with their key lists, from span to span.
var viewPool = sync.Pool{New: func() any { return new(view) }}

// maxPooledFlatKeys keeps a span with a huge flattened message list from
// pinning its key list in the pool.
const maxPooledFlatKeys = 1024

// newView returns a view of the span; release it when done.
func newView(info Info, attrs map[string]any) *view {
	s := viewPool.Get().(*view)
	flat, parsed := s.flat, s.parsedJSON
	*s = view{info: info, attrs: attrs, name: info.Name, parsedJSON: parsed[:0]}
	for i, keys := range flat {
		if cap(keys) <= maxPooledFlatKeys {
			s.flat[i] = keys[:0]
		}
	}
	s.lname = strings.ToLower(strings.TrimSpace(info.Name))
	if v, ok := attrs["gen_ai.operation.name"].(string); ok {
		s.op = strings.ToLower(strings.TrimSpace(v))
	}
	if v, ok := attrs["openinference.span.kind"].(string); ok {
		s.oiKind = strings.ToUpper(strings.TrimSpace(v))
	}
	if v, ok := attrs["agno.hook.type"].(string); ok {
		s.hookType = strings.ToLower(strings.TrimSpace(v))
	}
	if info.Keys != nil {
		for _, k := range info.Keys {
			s.see(k)
		}
	} else {
		for k := range attrs {
			s.see(k)
		}
	}
	return s
}

// see records what newView needs to know of one attribute key.
func (s *view) see(k string) {
	if !strings.HasPrefix(k, "agno.") && !strings.HasPrefix(k, "llm.") &&
		!strings.HasPrefix(k, "gen_ai.") && !strings.HasPrefix(k, "retrieval.") &&
		!strings.HasPrefix(k, "reranker.") {
		return
	}
	switch {
	case strings.HasPrefix(k, "agno.workflow."):
		s.hasAgnoWorkflow = true
	case strings.HasPrefix(k, "agno.step."):
		s.hasAgnoStep = true
	case strings.HasPrefix(k, "agno.usage."):
		s.hasAgnoUsage = true
	}
	for i, p := range flatPrefixes {
		if len(k) > len(p) && strings.HasPrefix(k, p) && k[len(p)] >= '0' && k[len(p)] <= '9' {
			s.flat[i] = append(s.flat[i], k)
			break
		}
	}
}

// release returns s to the pool; s must not be used afterwards.
func (s *view) release() {
	for i := range s.flat {
		clear(s.flat[i]) // drop the span's keys, keep the room
	}
	clear(s.parsedJSON)
	flat, parsed := s.flat, s.parsedJSON
	*s = view{flat: flat, parsedJSON: parsed}
	viewPool.Put(s)
}

// flatKeys returns the keys under prefix, one of flatPrefixes.
func (s *view) flatKeys(prefix string) []string {
	for i, p := range flatPrefixes {
		if p == prefix {
			return s.flat[i]
		}
	}
	return nil
}

// has reports whether key is present with a usable (non-empty) value.
func (s *view) has(key string) bool {
	v, ok := s.attrs[key]
	if !ok || v == nil {
		return false
	}
	if str, ok := v.(string); ok {
		return strings.TrimSpace(str) != ""
	}
	return true
}

func (s *view) hasAny(keys ...string) bool {
	for _, k := range keys {
		if s.has(k) {
			return true
		}
	}
	return false
}

// noConvention reports that the span carries neither GenAI semconv's
// operation name nor OpenInference's span kind, so agno.* keys and the span
// name are all there is to go by.
func (s *view) noConvention() bool {
	_, gen := s.attrs["gen_ai.operation.name"]
	_, oi := s.attrs["openinference.span.kind"]
	return !gen && !oi
}

// nameIsRun matches agno's "<Name>.run" / "<Name>.arun" span names.
func (s *view) nameIsRun() bool {
	return len(s.lname) > 4 && (strings.HasSuffix(s.lname, ".run") || strings.HasSuffix(s.lname, ".arun"))
}

// toolName is the tool's name from the attributes (GenAI, OpenInference,
// agno, in that order), falling back to the span name with any
// "execute_tool " prefix removed.
func (s *view) toolName() string {
	if v, ok := s.first(idString, "gen_ai.tool.name", "tool.name", "agno.tool.name", "tool_name"); ok {
		return v
	}
	n := strings.TrimSpace(s.name)
	if strings.HasPrefix(strings.ToLower(n), "execute_tool ") {
		n = strings.TrimSpace(n[len("execute_tool "):])
	}
	if len(n) > MaxIDBytes {
		return ""
	}
	return n
}

// delegationTool returns the agno team tool this span executes, if any.
func (s *view) delegationTool() string {
	n := strings.ToLower(s.toolName())
	if _, ok := delegationTools[n]; ok {
		return n
	}
	return ""
}

// first returns the first of keys whose value conv accepts.
func (s *view) first(conv func(any) (string, bool), keys ...string) (string, bool) {
	for _, k := range keys {
		if v, ok := s.attrs[k]; ok {
			if out, ok := conv(v); ok {
				return out, true
			}
		}
	}
	return "", false
}
