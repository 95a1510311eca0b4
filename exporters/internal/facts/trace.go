package facts

import (
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// TraceFacts are the trace-level facts of one trace within a batch: taken
// from its root span when the batch holds it, else from the earliest span
// that has them. Vendors that filter on trace-level fields (user, session)
// want them on every span, not only on the root.
type TraceFacts struct {
	RootName                                              string // name of the root span, when in the batch
	RunID, SessionID, UserID, AgentID, TeamID, WorkflowID string
}

// Collect gathers TraceFacts for each trace in td.
func Collect(td ptrace.Traces) map[pcommon.TraceID]*TraceFacts {
	return collect(td, Read)
}

// collect is Collect with the facts of each span from read.
func collect(td ptrace.Traces, read func(pcommon.Resource, ptrace.Span) Facts) map[pcommon.TraceID]*TraceFacts {
	type pick struct {
		root  bool
		start pcommon.Timestamp
	}
	out := map[pcommon.TraceID]*TraceFacts{}
	picks := map[pcommon.TraceID]map[string]pick{}
	Each(td, func(res pcommon.Resource, span ptrace.Span) {
		tid := span.TraceID()
		tf := out[tid]
		if tf == nil {
			tf = &TraceFacts{}
			out[tid] = tf
			picks[tid] = map[string]pick{}
		}
		root := span.ParentSpanID().IsEmpty()
		if root && tf.RootName == "" {
			tf.RootName = span.Name()
		}
		f := read(res, span)
		cand := pick{root: root, start: span.StartTimestamp()}
		better := func(field string) bool {
			old, ok := picks[tid][field]
			if !ok || (cand.root && !old.root) || (cand.root == old.root && cand.start < old.start) {
				picks[tid][field] = cand
				return true
			}
			return false
		}
		set := func(field string, dst *string, v string) {
			if v != "" && better(field) {
				*dst = v
			}
		}
		set("run", &tf.RunID, f.RunID)
		set("session", &tf.SessionID, f.SessionID)
		set("user", &tf.UserID, f.UserID)
		set("agent", &tf.AgentID, f.AgentID)
		set("team", &tf.TeamID, f.TeamID)
		set("workflow", &tf.WorkflowID, f.WorkflowID)
	})
	return out
}

// Each calls fn for every span of td with its resource.
func Each(td ptrace.Traces, fn func(res pcommon.Resource, span ptrace.Span)) {
	for _, rs := range td.ResourceSpans().All() {
		for _, ss := range rs.ScopeSpans().All() {
			for _, span := range ss.Spans().All() {
				fn(rs.Resource(), span)
			}
		}
	}
}

// Copy returns a deep copy of td, so mappings never modify the host's batch.
func Copy(td ptrace.Traces) ptrace.Traces {
	out := ptrace.NewTraces()
	td.CopyTo(out)
	return out
}
