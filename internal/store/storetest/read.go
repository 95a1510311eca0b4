package storetest

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/kern-agents/trace-gateway/internal/model"
	"github.com/kern-agents/trace-gateway/internal/store"
)

const traceSelect = `SELECT trace_id, name, status, start_time, end_time, duration_ms,
	run_id, session_id, user_id, agent_id, team_id, workflow_id, created_at FROM `

const spanSelect = `SELECT span_id, trace_id, parent_span_id, name, span_kind, status_code,
	status_message, start_time, end_time, duration_ms, attributes, created_at FROM `

// placeholder is the n-th (1-based) bind parameter in s's dialect.
func placeholder(s store.Store, n int) string {
	if s.Dialect() == "postgres" {
		return fmt.Sprintf("$%d", n)
	}
	return fmt.Sprintf("?%d", n)
}

// ReadTrace reads one agno_traces row; ok is false when there is none.
func ReadTrace(ctx context.Context, s store.Store, traceID string) (row TraceRow, ok bool, err error) {
	traces, _ := s.Tables()
	rows, err := ReadTraces(ctx, s, traceSelect+traces+" WHERE trace_id = "+placeholder(s, 1), traceID)
	if err != nil || len(rows) == 0 {
		return TraceRow{}, false, err
	}
	return rows[0], true, nil
}

// ReadAllTraces reads every agno_traces row, keyed by trace id.
func ReadAllTraces(ctx context.Context, s store.Store) (map[string]TraceRow, error) {
	traces, _ := s.Tables()
	rows, err := ReadTraces(ctx, s, traceSelect+traces)
	if err != nil {
		return nil, err
	}
	out := make(map[string]TraceRow, len(rows))
	for _, r := range rows {
		out[r.TraceID] = r
	}
	return out, nil
}

// ReadTraces runs query, which must select traceSelect's columns.
func ReadTraces(ctx context.Context, s store.Store, query string, args ...any) ([]TraceRow, error) {
	rows, err := s.DB().QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("read traces: %w", err)
	}
	defer rows.Close()
	var out []TraceRow
	for rows.Next() {
		var r TraceRow
		dest := []any{&r.TraceID, &r.Name, &r.Status, &r.StartTime, &r.EndTime, &r.DurationMS}
		for _, f := range r.idFields() {
			dest = append(dest, f)
		}
		dest = append(dest, &r.CreatedAt)
		if err := rows.Scan(dest...); err != nil {
			return nil, fmt.Errorf("read traces: %w", err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// ReadSpans reads the stored spans of one trace, ordered by span id.
func ReadSpans(ctx context.Context, s store.Store, traceID string) ([]model.Span, error) {
	_, spans := s.Tables()
	return querySpans(ctx, s, spanSelect+spans+" WHERE trace_id = "+placeholder(s, 1)+" ORDER BY span_id", traceID)
}

// ReadAllSpans reads every stored span, keyed by span id.
func ReadAllSpans(ctx context.Context, s store.Store) (map[string]model.Span, error) {
	_, spans := s.Tables()
	list, err := querySpans(ctx, s, spanSelect+spans)
	if err != nil {
		return nil, err
	}
	out := make(map[string]model.Span, len(list))
	for _, sp := range list {
		out[sp.SpanID] = sp
	}
	return out, nil
}

func querySpans(ctx context.Context, s store.Store, query string, args ...any) ([]model.Span, error) {
	rows, err := s.DB().QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("read spans: %w", err)
	}
	defer rows.Close()
	var out []model.Span
	for rows.Next() {
		var sp model.Span
		var parent, msg sql.NullString
		var attrs []byte
		if err := rows.Scan(&sp.SpanID, &sp.TraceID, &parent, &sp.Name, &sp.SpanKind, &sp.StatusCode,
			&msg, &sp.StartTime, &sp.EndTime, &sp.DurationMS, &attrs, &sp.CreatedAt); err != nil {
			return nil, fmt.Errorf("read spans: %w", err)
		}
		sp.ParentSpanID, sp.StatusMessage, sp.Attributes = parent.String, msg.String, attrs
		out = append(out, sp)
	}
	return out, rows.Err()
}

// splitIdent splits a possibly qualified, possibly double-quoted SQL name
// such as `"agno"."agno_spans"` into its unquoted parts.
func splitIdent(name string) []string {
	var parts []string
	var cur strings.Builder
	quoted := false
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case quoted && c == '"' && i+1 < len(name) && name[i+1] == '"':
			cur.WriteByte('"')
			i++
		case c == '"':
			quoted = !quoted
		case !quoted && c == '.':
			parts = append(parts, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(c)
		}
	}
	return append(parts, cur.String())
}
