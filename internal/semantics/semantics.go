// Package semantics recognises what an agent-run span is (run, LLM call,
// tool, hook, retrieval, team delegation...) and writes normalised kern.*
// attributes so that queries and exporters need not know which convention
// the sender used.
package semantics

import "github.com/kern-agents/trace-gateway/internal/model"

// Event is a span event as the converter hands it over.
type Event struct {
	Name       string
	TimeUnix   int64
	Attributes map[string]any
}

// Info is what Annotate may read about a span besides its attributes.
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
}

// Annotate adds the kern.* keys to attrs (the span's own attributes decoded
// to Go values: string, bool, int64, float64, []any, map[string]any). It
// never removes or changes the sender's keys.
func Annotate(info Info, attrs map[string]any) {
	// Placeholder until full classification lands: ids only.
	for _, k := range []struct{ dst, src string }{
		{model.KeySessionID, "session.id"},
		{model.KeyUserID, "user.id"},
	} {
		if v, ok := attrs[k.src].(string); ok && v != "" {
			attrs[k.dst] = v
		}
	}
}
