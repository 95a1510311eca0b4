// Package storetest is the conformance suite every store.Store passes, and the
// plain-Go reference of how a trace row follows from its spans.
package storetest

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"math"
	"math/big"
	"strconv"
	"strings"
	"unicode/utf8"

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

// idFields returns the id columns in model.TraceIDColumns order.
func (r *TraceRow) idFields() []*sql.NullString {
	return []*sql.NullString{&r.RunID, &r.SessionID, &r.UserID, &r.AgentID, &r.TeamID, &r.WorkflowID}
}

// IDKeys lists, per agno_traces id column (model.TraceIDColumns order), the
// root-span attribute keys an id is taken from, first usable one wins:
// agno 2.9's order (tracing/schemas.py, create_trace_from_spans), then the
// OpenTelemetry GenAI / OpenInference equivalents for senders without
// agno's keys. Written out here, not taken from the code under test.
var IDKeys = [][]string{
	{"run_id", "agno.run.id"},
	{"session_id", "agno.session.id", "session.id", "gen_ai.conversation.id"},
	{"user_id", "agno.user.id", "user.id", "enduser.id"},
	{"agent_id", "agno.agent.id", "gen_ai.agent.id"},
	{"team_id", "agno.team.id", "team.id"},
	{"workflow_id", "agno.workflow.id"},
}

// maxIDBytes is the longest id taken into an (indexed) id column.
const maxIDBytes = 256

// ExpectedTrace is the trace row the stored spans of one trace must give
// (CreatedAt aside, which is when the row was first stored), whatever order
// and batches they were written in:
//   - the root is the span without parent_span_id; of several, the one that
//     starts first, then the one with the smaller span id (strings compare
//     byte-wise);
//   - name: the root's; without a root, the name of the span that starts
//     first, then the smallest name;
//   - status: ERROR if any span has status ERROR, else OK (never UNSET);
//   - start_time/end_time: the earliest start and the latest end;
//     duration_ms: end − start in whole milliseconds, never negative;
//   - each id column: from the root's stored attributes only (a child's ids
//     never reach the trace), the first key of IDKeys holding a usable value:
//     a string that is not blank (white space around it dropped), or an
//     integer other than 0 (as agno's `or` chain skips falsy values; a double
//     counts when its value is whole), rendered in decimal, at most
//     maxIDBytes long. Anything else (null, false, documents, 0, "") is
//     skipped like a missing key. NULL while no root is stored.
func ExpectedTrace(spans []model.Span) TraceRow {
	if len(spans) == 0 {
		return TraceRow{}
	}
	row := TraceRow{TraceID: spans[0].TraceID, StartTime: spans[0].StartTime, EndTime: spans[0].EndTime, Status: model.StatusOK}
	var root, first *model.Span
	for i := range spans {
		sp := &spans[i]
		row.StartTime = min(row.StartTime, sp.StartTime)
		row.EndTime = max(row.EndTime, sp.EndTime)
		if sp.StatusCode == model.StatusError {
			row.Status = model.StatusError
		}
		if sp.ParentSpanID == "" && (root == nil || sp.StartTime < root.StartTime ||
			(sp.StartTime == root.StartTime && sp.SpanID < root.SpanID)) {
			root = sp
		}
		if first == nil || sp.StartTime < first.StartTime || (sp.StartTime == first.StartTime && sp.Name < first.Name) {
			first = sp
		}
	}
	row.Name = first.Name
	if root != nil {
		row.Name = root.Name
		attrs := decodeAttrs(root.Attributes)
		ids := row.idFields()
		for i, keys := range IDKeys {
			for _, k := range keys {
				if v, ok := usableID(attrs[k]); ok {
					*ids[i] = sql.NullString{String: v, Valid: true}
					break
				}
			}
		}
	}
	start, err1 := model.ParseTime(row.StartTime)
	end, err2 := model.ParseTime(row.EndTime)
	if err1 == nil && err2 == nil && end.After(start) {
		row.DurationMS = end.Sub(start).Milliseconds()
	}
	return row
}

// decodeAttrs decodes a stored attributes object keeping numbers as
// written (json.Number), so integers and doubles stay apart.
func decodeAttrs(b []byte) map[string]any {
	var m map[string]any
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	if len(b) == 0 || d.Decode(&m) != nil {
		return nil
	}
	return m
}

func usableID(v any) (string, bool) {
	var s string
	switch x := v.(type) {
	case string:
		s = strings.TrimSpace(x)
	case json.Number:
		lit := x.String()
		if !strings.ContainsAny(lit, ".eE") {
			n, ok := new(big.Int).SetString(lit, 10)
			if !ok || n.Sign() == 0 {
				return "", false
			}
			s = n.String()
			break
		}
		f, err := strconv.ParseFloat(lit, 64)
		if err != nil || f == 0 || f != math.Trunc(f) || math.Abs(f) > 1<<53 {
			return "", false
		}
		s = strconv.FormatInt(int64(f), 10)
	}
	if s == "" || len(s) > maxIDBytes || !utf8.ValidString(s) {
		return "", false
	}
	return s, true
}
