package dispatch

import (
	"encoding/hex"

	"go.opentelemetry.io/collector/pdata/ptrace"
)

// envelope is a generous allowance for one message's tag and length prefix.
const envelope = 6

// splitBytes cuts td into parts whose encoded size stays within maxBytes,
// keeping spans of one resource and scope together. A span larger than
// maxBytes on its own still goes, alone (the plugin host refuses what no
// message can carry). td is consumed.
func splitBytes(td ptrace.Traces, maxBytes int) []ptrace.Traces {
	var sizer ptrace.ProtoMarshaler
	if sizer.TracesSize(td) <= maxBytes {
		return []ptrace.Traces{td}
	}
	return cut(td, func(size, need, _ int) bool { return size+need > maxBytes })
}

// halveSpans cuts td into two parts of half its spans each (the first one
// fewer when the count is odd), in order.
func halveSpans(td ptrace.Traces) []ptrace.Traces {
	half, cutDone := td.SpanCount()/2, false
	return cut(td, func(_, _, spans int) bool {
		if cutDone || spans < half {
			return false
		}
		cutDone = true
		return true
	})
}

// cut copies td's spans, in order, into parts, each keeping its spans'
// resources and scopes. full reports whether the part being filled, with
// spans spans of size encoded bytes, must be closed before a span that
// needs need more bytes.
func cut(td ptrace.Traces, full func(size, need, spans int) bool) []ptrace.Traces {
	var sizer ptrace.ProtoMarshaler
	var parts []ptrace.Traces
	cur, size, n := ptrace.NewTraces(), 0, 0
	flush := func() {
		if cur.SpanCount() > 0 {
			parts = append(parts, cur)
		}
		cur, size, n = ptrace.NewTraces(), 0, 0
	}
	rss := td.ResourceSpans()
	for i := 0; i < rss.Len(); i++ {
		rs := rss.At(i)
		rsHead := sizer.ResourceSpansSize(emptyResourceSpans(rs)) + envelope
		var curRS ptrace.ResourceSpans
		hasRS := false
		sss := rs.ScopeSpans()
		for j := 0; j < sss.Len(); j++ {
			ss := sss.At(j)
			ssHead := sizer.ScopeSpansSize(emptyScopeSpans(ss)) + envelope
			var curSS ptrace.ScopeSpans
			hasSS := false
			spans := ss.Spans()
			for k := 0; k < spans.Len(); k++ {
				sp := spans.At(k)
				need := sizer.SpanSize(sp) + envelope
				if !hasRS {
					need += rsHead
				}
				if !hasSS {
					need += ssHead
				}
				if n > 0 && full(size, need, n) {
					flush()
					hasRS, hasSS = false, false
					need = sizer.SpanSize(sp) + envelope + rsHead + ssHead
				}
				if !hasRS {
					curRS = cur.ResourceSpans().AppendEmpty()
					rs.Resource().CopyTo(curRS.Resource())
					curRS.SetSchemaUrl(rs.SchemaUrl())
					hasRS = true
				}
				if !hasSS {
					curSS = curRS.ScopeSpans().AppendEmpty()
					ss.Scope().CopyTo(curSS.Scope())
					curSS.SetSchemaUrl(ss.SchemaUrl())
					hasSS = true
				}
				sp.CopyTo(curSS.Spans().AppendEmpty())
				size += need
				n++
			}
			hasSS = false
		}
	}
	flush()
	return parts
}

func emptyResourceSpans(rs ptrace.ResourceSpans) ptrace.ResourceSpans {
	e := ptrace.NewResourceSpans()
	rs.Resource().CopyTo(e.Resource())
	e.SetSchemaUrl(rs.SchemaUrl())
	return e
}

func emptyScopeSpans(ss ptrace.ScopeSpans) ptrace.ScopeSpans {
	e := ptrace.NewScopeSpans()
	ss.Scope().CopyTo(e.Scope())
	e.SetSchemaUrl(ss.SchemaUrl())
	return e
}

// spanIDs lists the hex span ids in td, for dead letters.
func spanIDs(td ptrace.Traces) []string {
	ids := make([]string, 0, td.SpanCount())
	rss := td.ResourceSpans()
	for i := 0; i < rss.Len(); i++ {
		sss := rss.At(i).ScopeSpans()
		for j := 0; j < sss.Len(); j++ {
			spans := sss.At(j).Spans()
			for k := 0; k < spans.Len(); k++ {
				id := spans.At(k).SpanID()
				ids = append(ids, hex.EncodeToString(id[:]))
			}
		}
	}
	return ids
}
