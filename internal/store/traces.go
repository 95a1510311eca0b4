package store

import (
	"bytes"
	"database/sql/driver"
	"encoding/json"
	"slices"
	"strings"
	"sync"

	"github.com/kern-agents/trace-gateway/internal/model"
	"github.com/kern-agents/trace-gateway/internal/semantics"
)

// TraceRow is what a set of spans of one trace contributes to its
// agno_traces row. Rows of any two sets of spans of a trace merge, in
// either order, into the row of their union (Merge): this is what lets a
// store upsert a batch's rows without reading the spans stored before.
//
// The rules are agno 2.9's (tracing/schemas.py, create_trace_from_spans),
// made order-independent:
//   - the root is the span without a parent; with several, the one that
//     starts first (then the smaller span id);
//   - name and the six ids come from the root only (a team member's
//     agent_id never reaches the team's trace); ids are empty while no root
//     is known; without a root the name is that of the span that starts
//     first (then the smaller name);
//   - start is the earliest start, end the latest end;
//   - status is ERROR if any span errored, else OK, and ERROR sticks (agno's
//     own upsert lets a later OK batch overwrite it).
type TraceRow struct {
	TraceID   string
	Name      string
	Status    string
	StartTime string
	EndTime   string
	// HasRoot says the name and ids are the root's; RootStart and RootSpanID
	// rank it against another root of the same trace.
	HasRoot    bool
	RootStart  string
	RootSpanID string
	IDs        model.TraceIDs
}

// DeriveTraces returns the TraceRow of each trace among spans, in trace id
// order. A span's Root ids are used when set, else derived from its stored
// attributes.
func DeriveTraces(spans []model.Span) []TraceRow {
	byID := make(map[string]int, 8)
	var rows []TraceRow
	for i := range spans {
		sp := &spans[i]
		row := spanRow(sp)
		if j, ok := byID[sp.TraceID]; ok {
			rows[j] = Merge(rows[j], row)
			continue
		}
		byID[sp.TraceID] = len(rows)
		rows = append(rows, row)
	}
	slices.SortFunc(rows, func(a, b TraceRow) int { return strings.Compare(a.TraceID, b.TraceID) })
	return rows
}

func spanRow(sp *model.Span) TraceRow {
	r := TraceRow{
		TraceID:   sp.TraceID,
		Name:      sp.Name,
		Status:    model.StatusOK,
		StartTime: sp.StartTime,
		EndTime:   sp.EndTime,
	}
	if sp.StatusCode == model.StatusError {
		r.Status = model.StatusError
	}
	if sp.ParentSpanID == "" {
		r.HasRoot, r.RootStart, r.RootSpanID = true, sp.StartTime, sp.SpanID
		if sp.Root != nil {
			r.IDs = *sp.Root
		} else {
			r.IDs = RootIDsFromJSON(sp.Attributes)
		}
	}
	return r
}

// Merge combines the rows of two sets of spans of one trace.
func Merge(a, b TraceRow) TraceRow {
	out := a
	out.StartTime = min(a.StartTime, b.StartTime)
	out.EndTime = max(a.EndTime, b.EndTime)
	// Never a's status as it is: a row an earlier gateway stored may say
	// UNSET, which AgentOS never writes.
	out.Status = model.StatusOK
	if a.Status == model.StatusError || b.Status == model.StatusError {
		out.Status = model.StatusError
	}
	switch {
	case a.HasRoot && b.HasRoot:
		if rootBefore(b, a) {
			out.Name, out.IDs, out.RootStart, out.RootSpanID = b.Name, b.IDs, b.RootStart, b.RootSpanID
		}
	case b.HasRoot:
		out.Name, out.IDs, out.HasRoot, out.RootStart, out.RootSpanID = b.Name, b.IDs, true, b.RootStart, b.RootSpanID
	case !a.HasRoot:
		if b.StartTime < a.StartTime || (b.StartTime == a.StartTime && b.Name < a.Name) {
			out.Name = b.Name
		}
	}
	return out
}

func rootBefore(a, b TraceRow) bool {
	return a.RootStart < b.RootStart || (a.RootStart == b.RootStart && a.RootSpanID < b.RootSpanID)
}

// RootIDsFromJSON derives a root span's trace ids from its stored
// attributes (semantics.RootIDs). Integers are decoded as int64, as the
// converter hands them to RootIDs, not as float64, which would lose those
// beyond 2^53 and give another row than the one the span was first
// written with.
func RootIDsFromJSON(attrs []byte) model.TraceIDs {
	var m map[string]any
	d := json.NewDecoder(bytes.NewReader(attrs))
	d.UseNumber()
	if len(attrs) == 0 || d.Decode(&m) != nil {
		return model.TraceIDs{}
	}
	for _, src := range semantics.TraceIDSources {
		for _, k := range src.Keys {
			if n, ok := m[k].(json.Number); ok {
				m[k] = jsonNumber(n)
			}
		}
	}
	return semantics.RootIDs(m)
}

// jsonNumber is n as the converter decodes an OTLP value: int64 when it is
// written as an integer, float64 otherwise.
func jsonNumber(n json.Number) any {
	if i, err := n.Int64(); err == nil && !strings.ContainsAny(n.String(), ".eE") {
		return i
	}
	f, _ := n.Float64()
	return f
}

// DurationMS is end − start in whole milliseconds, never negative, for
// TimeLayout strings (0 when either does not parse).
func DurationMS(start, end string) int64 {
	s, err1 := model.ParseTime(start)
	e, err2 := model.ParseTime(end)
	if err1 != nil || err2 != nil || !e.After(s) {
		return 0
	}
	return e.Sub(s).Milliseconds()
}

// OriginCache shares one Origin among the spans of a read that reference
// the same one.
type OriginCache map[string]*model.Origin

// Get returns the Origin with this id, made from the resource and scope
// columns (sql.NullString-like: String and Valid) the first time; nil for an
// empty id.
func (c OriginCache) Get(id string, resource, scope interface {
	Value() (driver.Value, error)
}) *model.Origin {
	if id == "" {
		return nil
	}
	if o, ok := c[id]; ok {
		return o
	}
	o := &model.Origin{ID: id, Resource: textBytes(resource), Scope: textBytes(scope)}
	c[id] = o
	return o
}

func textBytes(v interface{ Value() (driver.Value, error) }) []byte {
	x, err := v.Value()
	if err != nil || x == nil {
		return nil
	}
	switch t := x.(type) {
	case string:
		return []byte(t)
	case []byte:
		return t
	}
	return nil
}

// KnownOrigins remembers the origins a store has committed, so each
// resource is inserted once per process rather than once per batch.
type KnownOrigins struct{ ids sync.Map }

// New lists the distinct origins of spans not known to be stored yet.
func (k *KnownOrigins) New(spans []model.Span) []*model.Origin {
	var out []*model.Origin
	var last *model.Origin
	for i := range spans {
		o := spans[i].Origin
		if o == nil || o == last {
			continue
		}
		last = o
		if _, ok := k.ids.Load(o.ID); ok || slices.ContainsFunc(out, func(x *model.Origin) bool { return x.ID == o.ID }) {
			continue
		}
		out = append(out, o)
	}
	return out
}

// Stored records origins a write committed.
func (k *KnownOrigins) Stored(origins []*model.Origin) {
	for _, o := range origins {
		k.ids.Store(o.ID, struct{}{})
	}
}
