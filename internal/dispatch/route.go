package dispatch

import (
	"crypto/sha256"
	"encoding/hex"
	"hash/fnv"
	"strings"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/kern-agents/trace-gateway/internal/config"
	"github.com/kern-agents/trace-gateway/internal/model"
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
	td.ResourceSpans().RemoveIf(func(rs ptrace.ResourceSpans) bool {
		service := ""
		if v, ok := rs.Resource().Attributes().Get("service.name"); ok {
			service = v.AsString()
		}
		rs.ScopeSpans().RemoveIf(func(ss ptrace.ScopeSpans) bool {
			ss.Spans().RemoveIf(func(sp ptrace.Span) bool {
				if !r.keep(service, sp) {
					return true
				}
				r.redactSpan(sp)
				kept++
				return false
			})
			return ss.Spans().Len() == 0
		})
		if rs.ScopeSpans().Len() == 0 {
			return true
		}
		r.redactMap(rs.Resource().Attributes())
		return false
	})
	return kept
}

func (r *Route) keep(service string, sp ptrace.Span) bool {
	if r.Sampling < 1 && !Sampled(sp.TraceID(), r.Sampling) {
		return false
	}
	if !r.Include.IsZero() && !matches(r.Include, service, sp) {
		return false
	}
	return r.Exclude.IsZero() || !matches(r.Exclude, service, sp)
}

// matches applies config.Match: every field set must match; a field matches
// when the span has any of its values.
func matches(m config.Match, service string, sp ptrace.Span) bool {
	attrs := sp.Attributes()
	str := func(key string) (string, bool) {
		v, ok := attrs.Get(key)
		if !ok {
			return "", false
		}
		return v.AsString(), true
	}
	anyOf := func(values []string, v string, ok bool) bool {
		if len(values) == 0 {
			return true
		}
		if !ok {
			return false
		}
		for _, w := range values {
			if w == v {
				return true
			}
		}
		return false
	}
	if !anyOf(m.Services, service, service != "") {
		return false
	}
	if v, ok := str(model.KeyAgentID); !anyOf(m.AgentIDs, v, ok) {
		return false
	}
	if v, ok := str(model.KeySpanType); !anyOf(m.SpanTypes, v, ok) {
		return false
	}
	for k, want := range m.Attributes {
		if v, ok := str(k); !ok || v != want {
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

func (r *Route) redactSpan(sp ptrace.Span) {
	if len(r.Redact) == 0 {
		return
	}
	r.redactMap(sp.Attributes())
	evs := sp.Events()
	for i := 0; i < evs.Len(); i++ {
		r.redactMap(evs.At(i).Attributes())
	}
	links := sp.Links()
	for i := 0; i < links.Len(); i++ {
		r.redactMap(links.At(i).Attributes())
	}
}

// redactMap applies every redaction rule to one attribute map.
func (r *Route) redactMap(m pcommon.Map) {
	if len(r.Redact) == 0 || m.Len() == 0 {
		return
	}
	for _, rule := range r.Redact {
		if prefix, ok := strings.CutSuffix(rule.Key, "*"); ok {
			var keys []string
			m.Range(func(k string, _ pcommon.Value) bool {
				if strings.HasPrefix(k, prefix) {
					keys = append(keys, k)
				}
				return true
			})
			for _, k := range keys {
				redactKey(m, k, rule.Action)
			}
			continue
		}
		redactKey(m, rule.Key, rule.Action)
	}
}

func redactKey(m pcommon.Map, key, action string) {
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
}
