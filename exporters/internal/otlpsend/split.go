package otlpsend

import "go.opentelemetry.io/collector/pdata/ptrace"

// Split divides td into two batches of (nearly) equal span counts. Each half
// keeps the resource and scope of its spans; empty resource and scope
// entries are dropped.
func Split(td ptrace.Traces) (first, second ptrace.Traces) {
	half := td.SpanCount() / 2
	first, second = ptrace.NewTraces(), ptrace.NewTraces()
	td.CopyTo(first)
	td.CopyTo(second)
	keepRange(first, 0, half)
	keepRange(second, half, td.SpanCount())
	return first, second
}

// keepRange keeps the spans whose position (in resource, scope, span order)
// is in [from, to).
func keepRange(td ptrace.Traces, from, to int) {
	i := 0
	td.ResourceSpans().RemoveIf(func(rs ptrace.ResourceSpans) bool {
		rs.ScopeSpans().RemoveIf(func(ss ptrace.ScopeSpans) bool {
			ss.Spans().RemoveIf(func(ptrace.Span) bool {
				keep := i >= from && i < to
				i++
				return !keep
			})
			return ss.Spans().Len() == 0
		})
		return rs.ScopeSpans().Len() == 0
	})
}
