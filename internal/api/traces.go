package api

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/kern-agents/trace-gateway/internal/model"
)

// Trace is one agno_traces row as the API returns it. Missing ids are null.
type Trace struct {
	TraceID    string  `json:"trace_id"`
	Name       string  `json:"name"`
	Status     string  `json:"status"`
	StartTime  string  `json:"start_time"`
	EndTime    string  `json:"end_time"`
	DurationMS int64   `json:"duration_ms"`
	RunID      *string `json:"run_id"`
	SessionID  *string `json:"session_id"`
	UserID     *string `json:"user_id"`
	AgentID    *string `json:"agent_id"`
	TeamID     *string `json:"team_id"`
	WorkflowID *string `json:"workflow_id"`
	CreatedAt  string  `json:"created_at"`
}

const traceCols = "trace_id, name, status, start_time, end_time, duration_ms, run_id, session_id, user_id, agent_id, team_id, workflow_id, created_at"

func scanTrace(rows rowScanner) (Trace, error) {
	var t Trace
	var ids [6]sql.NullString
	err := rows.Scan(&t.TraceID, &t.Name, &t.Status, &t.StartTime, &t.EndTime, &t.DurationMS,
		&ids[0], &ids[1], &ids[2], &ids[3], &ids[4], &ids[5], &t.CreatedAt)
	if err != nil {
		return t, err
	}
	ptr := func(n sql.NullString) *string {
		if !n.Valid {
			return nil
		}
		return &n.String
	}
	t.RunID, t.SessionID, t.UserID = ptr(ids[0]), ptr(ids[1]), ptr(ids[2])
	t.AgentID, t.TeamID, t.WorkflowID = ptr(ids[3]), ptr(ids[4]), ptr(ids[5])
	return t, nil
}

// TraceList is the body of GET /api/traces.
type TraceList struct {
	Traces     []Trace `json:"traces"`
	NextCursor string  `json:"next_cursor,omitempty"`
}

// traceIDFilters are the id columns a list may be filtered on; each has an
// index in the AgentOS schema.
var traceIDFilters = []string{"user_id", "session_id", "agent_id", "team_id", "workflow_id", "run_id"}

var traceListParams = append([]string{"status", "q", "start", "end", "sort", "order", "cursor", "limit"}, traceIDFilters...)

// traceListSpec turns the request into a list query.
func (s *server) traceListSpec(q map[string][]string) (*listSpec, error) {
	p, err := parseParams(q, traceListParams)
	if err != nil {
		return nil, err
	}
	ls := &listSpec{
		scope: "traces", action: "list traces", table: s.traces, cols: func(*qb) string { return traceCols },
		idCol: "trace_id", scanWindow: s.opts.ScanWindow,
	}
	if ls.limit, err = p.limit(); err != nil {
		return nil, err
	}
	switch p.str("sort") {
	case "", "start_time":
		ls.sortCol = "start_time"
	case "duration_ms":
		ls.sortCol = "duration_ms"
	default:
		return nil, badParam("sort", "must be start_time or duration_ms")
	}
	if ls.desc, err = p.desc(); err != nil {
		return nil, err
	}
	if err := ls.readCursor(p, 32, "sort or order"); err != nil {
		return nil, err
	}
	for _, col := range traceIDFilters {
		if v := p.str(col); v != "" {
			ls.indexed = append(ls.indexed, func(b *qb) string { return col + " = " + b.arg(v) })
		}
	}
	st, err := p.status()
	if err != nil {
		return nil, err
	}
	if st != "" {
		ls.indexed = append(ls.indexed, func(b *qb) string { return "status = " + b.arg(st) })
	}
	start, end, err := p.timeRange()
	if err != nil {
		return nil, err
	}
	ls.indexed = append(ls.indexed, timeRangeConds("start_time", start, end)...)
	if name := strings.TrimSpace(p.str("q")); name != "" {
		// No index serves a substring search: bounded window.
		ls.window = append(ls.window, func(b *qb) string { return b.containsCI("name", name) })
	}
	return ls, nil
}

// timeRangeConds compares a TimeLayout text column with [start, end).
// Fixed-width UTC text sorts in time order, so this is an index range.
func timeRangeConds(col string, start, end time.Time) []cond {
	var cs []cond
	if !start.IsZero() {
		v := model.FormatTime(start)
		cs = append(cs, func(b *qb) string { return col + " >= " + b.arg(v) })
	}
	if !end.IsZero() {
		v := model.FormatTime(end)
		cs = append(cs, func(b *qb) string { return col + " < " + b.arg(v) })
	}
	return cs
}

func (s *server) listTraces(w http.ResponseWriter, r *http.Request) {
	serveList(s, w, r, s.traceListSpec, s.runTraceList, func(w http.ResponseWriter, l *TraceList) { writeJSON(w, http.StatusOK, l) })
}

func (s *server) runTraceList(ctx context.Context, ls *listSpec) (*TraceList, error) {
	traces, next, err := readPage(ctx, s, ls, scanTrace, func(t Trace) (string, string) {
		if ls.sortCol == "duration_ms" {
			return fmt.Sprint(t.DurationMS), t.TraceID
		}
		return t.StartTime, t.TraceID
	})
	if err != nil {
		return nil, err
	}
	return &TraceList{Traces: traces, NextCursor: next}, nil
}

// TraceDetail is the body of GET /api/traces/{trace_id}.
type TraceDetail struct {
	Trace     Trace       `json:"trace"`
	SpanCount int         `json:"span_count"`
	Truncated bool        `json:"truncated"`
	Spans     []*SpanNode `json:"spans"` // roots, each with its children nested
}

func (s *server) getTrace(w http.ResponseWriter, r *http.Request) {
	id := strings.ToLower(r.PathValue("trace_id"))
	if !isHex(id, 32) || id == strings.Repeat("0", 32) {
		writeJSON(w, http.StatusBadRequest, apiError{Error: "trace_id must be 32 hex characters", Param: "trace_id"})
		return
	}
	if len(r.URL.Query()) > 0 {
		for k := range r.URL.Query() {
			writeJSON(w, http.StatusBadRequest, apiError{Error: "unknown parameter", Param: k})
			return
		}
	}
	ctx, cancel := s.ctx(r)
	defer cancel()
	d, err := s.loadTrace(ctx, id, viewerTenant(r))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if d == nil {
		writeJSON(w, http.StatusNotFound, apiError{Error: "trace not found"})
		return
	}
	head, err := json.Marshal(d.Trace)
	if err != nil {
		s.fail(w, r, fmt.Errorf("encode trace %s: %w", id, err))
		return
	}
	head = append([]byte(`{"trace":`), head...)
	head = fmt.Appendf(head, `,"span_count":%d,"truncated":%t,"spans":`, d.SpanCount, d.Truncated)
	writeSpans(w, head, d.Spans, "}")
}

// loadTrace reads the trace row and its spans (the earliest MaxSpans by
// start time) and nests them; nil when the trace is unknown. With a tenant,
// only that tenant's spans are read, and a trace without any is unknown:
// the caller cannot tell it from one that does not exist.
func (s *server) loadTrace(ctx context.Context, id string, tenant *string) (*TraceDetail, error) {
	db := s.st.DB()
	b := newQB(s.dialect)
	b.w("SELECT ", traceCols, " FROM ", s.traces, " t WHERE trace_id = ", b.arg(id))
	if tenant != nil {
		b.w(" AND ", s.traceOfTenant(b, "t.trace_id", *tenant))
	}
	t, err := scanTrace(db.QueryRowContext(ctx, b.String(), b.args...))
	if err == sql.ErrNoRows {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read trace %s from %s: %w", id, s.traces, err)
	}
	b = newQB(s.dialect)
	b.w("SELECT ", spanCols(b), " FROM ", s.spans, " WHERE trace_id = ", b.arg(id))
	if tenant != nil {
		b.w(" AND ", s.spanOfTenant(b, s.spans+".attributes", s.spans+".trace_id", *tenant))
	}
	b.w(" ORDER BY start_time, span_id LIMIT ", fmt.Sprint(s.opts.MaxSpans+1))
	rows, err := db.QueryContext(ctx, b.String(), b.args...)
	if err != nil {
		return nil, fmt.Errorf("read spans of trace %s from %s: %w", id, s.spans, err)
	}
	defer rows.Close()
	spans := make([]*SpanNode, 0, 64)
	truncated := false
	for rows.Next() {
		if len(spans) == s.opts.MaxSpans {
			truncated = true
			break
		}
		n, err := scanSpan(rows)
		if err != nil {
			return nil, fmt.Errorf("read span row of trace %s: %w", id, err)
		}
		spans = append(spans, n)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read spans of trace %s from %s: %w", id, s.spans, err)
	}
	rows.Close()
	if err := s.enrich(ctx, spans); err != nil {
		return nil, err
	}
	for _, n := range spans {
		n.TraceID = "" // the trace's, shown once (enrich reads it)
	}
	return &TraceDetail{Trace: t, SpanCount: len(spans), Truncated: truncated, Spans: buildTree(spans)}, nil
}

// rawJSON keeps stored attributes as they are, falling back to {} for NULL
// and to a JSON string for anything that is not valid JSON, so one bad row
// cannot break a whole response.
func rawJSON(b []byte) json.RawMessage {
	if len(b) == 0 {
		return json.RawMessage("{}")
	}
	if !json.Valid(b) {
		q, _ := json.Marshal(string(b))
		return q
	}
	return json.RawMessage(b)
}
