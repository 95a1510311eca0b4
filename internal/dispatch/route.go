package dispatch

import (
	"hash/fnv"
	"slices"
	"strings"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/kern-agents/trace-gateway/internal/config"
	"github.com/kern-agents/trace-gateway/internal/semantics"
	"github.com/kern-agents/trace-gateway/internal/spaninfo"
)

// Route is what a destination receives of the stored spans: a filter, a
// per-trace sampling ratio and attribute redaction, applied in that order.
type Route struct {
	Include, Exclude config.Match
	// Sampling keeps this share of traces (0 < Sampling <= 1), chosen by a
	// hash of the trace id so every span of a trace goes, or none does, on
	// every replica and every replay.
	Sampling float64
	Redact   []config.Redaction
}

// PassesAll reports whether the route sends every span unchanged.
func (r *Route) PassesAll() bool {
	return r.Include.IsZero() && r.Exclude.IsZero() && r.Sampling >= 1 && len(r.Redact) == 0
}

// Masked is what the mask action writes in place of a value.
const Masked = "***"

// Apply filters, samples and redacts td in place and returns how many spans
// remain.
func (r *Route) Apply(td ptrace.Traces) int {
	kept := 0
	rules := compileRedactions(r.Redact)
	td.ResourceSpans().RemoveIf(func(rs ptrace.ResourceSpans) bool {
		f := filtered{res: rs.Resource()}
		if v, ok := rs.Resource().Attributes().Get("service.name"); ok {
			f.service = v.AsString()
		}
		rs.ScopeSpans().RemoveIf(func(ss ptrace.ScopeSpans) bool {
			ss.Spans().RemoveIf(func(sp ptrace.Span) bool {
				f.span(sp)
				if !r.keep(&f) {
					return true
				}
				rules.span(sp)
				kept++
				return false
			})
			return ss.Spans().Len() == 0
		})
		if rs.ScopeSpans().Len() == 0 {
			return true
		}
		rules.resource(rs.Resource().Attributes())
		return false
	})
	return kept
}

func (r *Route) keep(f *filtered) bool {
	if r.Sampling < 1 && !Sampled(f.sp.TraceID(), r.Sampling) {
		return false
	}
	if !r.Include.IsZero() && !f.matches(r.Include) {
		return false
	}
	return r.Exclude.IsZero() || !f.matches(r.Exclude)
}

// filtered is the span a filter looks at. What the filters read from a
// span's attributes (its agent id, its type) is computed with package
// semantics from whatever convention the sender used, once per span and
// only when a filter asks for it.
type filtered struct {
	service string
	res     pcommon.Resource
	resRaw  map[string]any // res's attributes, when an agent id needed them

	sp    ptrace.Span
	attrs map[string]any // sp's attributes, decoded on first need

	typ, nodeType      string
	agent              string
	hasAgent           bool
	typed, noded, ided bool
}

// span starts looking at sp (of the current resource).
func (f *filtered) span(sp ptrace.Span) {
	f.sp, f.attrs = sp, nil
	f.typed, f.noded, f.ided = false, false, false
}

func (f *filtered) raw() map[string]any {
	if f.attrs == nil {
		f.attrs = f.sp.Attributes().AsRaw()
	}
	return f.attrs
}

// spanType is the gateway's type of the span (semantics.Classify): run, llm,
// tool...
func (f *filtered) spanType() string {
	if !f.typed {
		f.typ, _ = semantics.Classify(spaninfo.Info(f.sp, nil), f.raw())
		f.typed = true
	}
	return f.typ
}

// node is the type AgentOS shows for the span: AGENT, TEAM, WORKFLOW, LLM...
func (f *filtered) node() string {
	if !f.noded {
		f.nodeType = semantics.NodeType(f.raw())
		f.noded = true
	}
	return f.nodeType
}

// agentID is the span's agent id: its own (gen_ai.agent.id, agno.agent.id,
// agent_id), else its resource's.
func (f *filtered) agentID() (string, bool) {
	if !f.ided {
		if f.resRaw == nil {
			f.resRaw = f.res.Attributes().AsRaw()
		}
		f.agent, f.hasAgent = semantics.Normalize(spaninfo.Info(f.sp, f.resRaw), f.raw())[semantics.KeyAgentID].(string)
		f.ided = true
	}
	return f.agent, f.hasAgent
}

// typeMatches reports whether the span is of one of types: gateway span
// types in lower case (run, llm, ...), AgentOS node types in upper case
// (AGENT, TEAM, WORKFLOW, ...).
func (f *filtered) typeMatches(types []string) bool {
	for _, t := range types {
		if isNodeType(t) {
			if f.node() == t {
				return true
			}
		} else if f.spanType() == t {
			return true
		}
	}
	return false
}

// isNodeType tells AgentOS node types (upper case) from span types.
func isNodeType(t string) bool { return t != "" && t == strings.ToUpper(t) }

// matches applies config.Match: every field set must match; a field matches
// when the span has any of its values.
func (f *filtered) matches(m config.Match) bool {
	if len(m.Services) > 0 && (f.service == "" || !slices.Contains(m.Services, f.service)) {
		return false
	}
	if len(m.AgentIDs) > 0 {
		if v, ok := f.agentID(); !ok || !slices.Contains(m.AgentIDs, v) {
			return false
		}
	}
	if len(m.SpanTypes) > 0 && !f.typeMatches(m.SpanTypes) {
		return false
	}
	attrs := f.sp.Attributes()
	for k, want := range m.Attributes {
		if v, ok := attrs.Get(k); !ok || v.AsString() != want {
			return false
		}
	}
	return true
}

// Sampled reports whether a trace is in the sampled share ratio. The trace
// id is hashed (FNV-1a, then a 64-bit finaliser) rather than read directly,
// so ids that are not random (sequential test ids, ids with a fixed prefix)
// still sample evenly.
func Sampled(id pcommon.TraceID, ratio float64) bool {
	if ratio >= 1 {
		return true
	}
	if ratio <= 0 {
		return false
	}
	h := fnv.New64a()
	_, _ = h.Write(id[:])
	x := h.Sum64()
	// splitmix64's finaliser spreads FNV's weak high bits.
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return float64(x>>11)/(1<<53) < ratio
}
