// Package storetest is the conformance suite every store.Store passes, and the
// plain-Go reference of how a trace row follows from its spans.
package storetest

import (
	"database/sql"
	"encoding/json"
	"slices"
	"strings"

	"github.com/kern-agents/trace-gateway/internal/model"
)

// TraceRow is one agno_traces row.
type TraceRow struct {
	TraceID    string
	Name       string
	Status     string
	StartTime  string
	EndTime    string
	DurationMS int64
	RunID      sql.NullString
	SessionID  sql.NullString
	UserID     sql.NullString
	AgentID    sql.NullString
	TeamID     sql.NullString
	WorkflowID sql.NullString
	CreatedAt  string
}

// idFields returns the id columns in model.TraceIDKeys order.
func (r *TraceRow) idFields() []*sql.NullString {
	return []*sql.NullString{&r.RunID, &r.SessionID, &r.UserID, &r.AgentID, &r.TeamID, &r.WorkflowID}
}

// ExpectedTrace is the trace row the stored spans of one trace must give
// (CreatedAt aside, which is when the row was first stored):
//   - spans rank by (root first, start_time, span_id), strings compared
//     byte-wise; a root has no parent_span_id;
//   - name: the best-ranked span's name (the earliest root, else the
//     earliest span);
//   - status: ERROR if any span has status ERROR, else OK if a root is
//     stored, else UNSET;
//   - start_time/end_time: the earliest start and the latest end;
//     duration_ms: end − start in whole milliseconds, never negative;
//   - each id column: the value of its model.TraceIDKeys attribute on the
//     best-ranked span where it is a non-empty JSON string; NULL if none.
func ExpectedTrace(spans []model.Span) TraceRow {
	if len(spans) == 0 {
		return TraceRow{}
	}
	ranked := slices.Clone(spans)
	slices.SortFunc(ranked, func(a, b model.Span) int {
		if ra, rb := a.ParentSpanID == "", b.ParentSpanID == ""; ra != rb {
			if ra {
				return -1
			}
			return 1
		}
		if c := strings.Compare(a.StartTime, b.StartTime); c != 0 {
			return c
		}
		return strings.Compare(a.SpanID, b.SpanID)
	})
	row := TraceRow{
		TraceID:   ranked[0].TraceID,
		Name:      ranked[0].Name,
		Status:    model.StatusUnset,
		StartTime: ranked[0].StartTime,
		EndTime:   ranked[0].EndTime,
	}
	hasRoot, hasError := false, false
	for _, sp := range ranked {
		hasRoot = hasRoot || sp.ParentSpanID == ""
		hasError = hasError || sp.StatusCode == model.StatusError
		row.StartTime = min(row.StartTime, sp.StartTime)
		row.EndTime = max(row.EndTime, sp.EndTime)
	}
	switch {
	case hasError:
		row.Status = model.StatusError
	case hasRoot:
		row.Status = model.StatusOK
	}
	start, err1 := model.ParseTime(row.StartTime)
	end, err2 := model.ParseTime(row.EndTime)
	if err1 == nil && err2 == nil && end.After(start) {
		row.DurationMS = end.Sub(start).Milliseconds()
	}
	ids := row.idFields()
	for _, sp := range ranked {
		var attrs map[string]json.RawMessage
		if json.Unmarshal(sp.Attributes, &attrs) != nil {
			continue
		}
		for i, k := range model.TraceIDKeys {
			if ids[i].Valid {
				continue
			}
			var v string
			if raw, ok := attrs[k.Key]; ok && json.Unmarshal(raw, &v) == nil && v != "" {
				*ids[i] = sql.NullString{String: v, Valid: true}
			}
		}
	}
	return row
}
