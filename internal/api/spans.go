package api

import (
	"context"
	"database/sql"
	"encoding/json"
	"net/http"
	"strings"
)

// SpanNode is one agno_spans row as the API returns it. In a trace tree
// Children holds its child spans by start time; in a span search it is
// empty and TraceID is set.
type SpanNode struct {
	SpanID        string          `json:"span_id"`
	TraceID       string          `json:"trace_id,omitempty"`
	ParentSpanID  *string         `json:"parent_span_id"`
	Name          string          `json:"name"`
	Type          string          `json:"type"` // AgentOS's node type: AGENT, TEAM, WORKFLOW, LLM, TOOL, ... UNKNOWN
	SpanKind      string          `json:"span_kind"`
	StatusCode    string          `json:"status_code"`
	StatusMessage *string         `json:"status_message"`
	StartTime     string          `json:"start_time"`
	EndTime       string          `json:"end_time"`
	DurationMS    int64           `json:"duration_ms"`
	Attributes    json.RawMessage `json:"attributes"`
	// Facts are the span's normalised facts (semantics.Normalize): model,
	// tokens, tool, hook, retrieval, delegation... under the semantics.Key*
	// names, whatever convention the sender used.
	Facts map[string]any `json:"facts"`
	// Resource and Scope are the span's OTel resource attributes and
	// instrumentation scope, null when unknown.
	Resource  json.RawMessage `json:"resource"`
	Scope     json.RawMessage `json:"scope"`
	CreatedAt string          `json:"created_at"`
	// Orphan marks a span whose parent is not (yet) stored; it is shown as
	// a root until the parent arrives.
	Orphan   bool        `json:"orphan,omitempty"`
	Children []*SpanNode `json:"children,omitempty"`
}

// spanCols selects a span row; type, facts and resource are computed from
// it in Go (see enrich).
func spanCols(b *qb) string {
	return "span_id, trace_id, parent_span_id, name, span_kind, status_code, status_message, start_time, end_time, duration_ms, " +
		b.attrJSON("attributes") + " AS attributes, created_at"
}

func scanSpan(rows rowScanner) (*SpanNode, error) {
	var n SpanNode
	var parent, msg sql.NullString
	var attrs []byte
	err := rows.Scan(&n.SpanID, &n.TraceID, &parent, &n.Name, &n.SpanKind, &n.StatusCode, &msg,
		&n.StartTime, &n.EndTime, &n.DurationMS, &attrs, &n.CreatedAt)
	if err != nil {
		return nil, err
	}
	if parent.Valid && parent.String != "" {
		n.ParentSpanID = &parent.String
	}
	if msg.Valid {
		n.StatusMessage = &msg.String
	}
	n.Attributes = attrs // checked by enrich
	return &n, nil
}

// SpanList is the body of GET /api/spans.
type SpanList struct {
	Spans      []*SpanNode `json:"spans"`
	NextCursor string      `json:"next_cursor,omitempty"`
}

var spanListParams = []string{"trace_id", "type", "name", "attr", "min_duration_ms", "status", "start", "end", "order", "cursor", "limit"}

func (s *server) spanListSpec(q map[string][]string) (*listSpec, error) {
	p, err := parseParams(q, spanListParams, "attr")
	if err != nil {
		return nil, err
	}
	ls := &listSpec{
		scope: "spans", action: "search spans", table: s.spans, cols: spanCols,
		idCol: "span_id", sortCol: "start_time", scanWindow: s.opts.ScanWindow,
	}
	if ls.limit, err = p.limit(); err != nil {
		return nil, err
	}
	if ls.desc, err = p.desc(); err != nil {
		return nil, err
	}
	if err := ls.readCursor(p, 16, "order"); err != nil {
		return nil, err
	}
	if id := p.str("trace_id"); id != "" {
		id = strings.ToLower(id)
		if !isHex(id, 32) {
			return nil, badParam("trace_id", "must be 32 hex characters")
		}
		ls.indexed = append(ls.indexed, func(b *qb) string { return "trace_id = " + b.arg(id) })
	}
	start, end, err := p.timeRange()
	if err != nil {
		return nil, err
	}
	ls.indexed = append(ls.indexed, timeRangeConds("start_time", start, end)...)

	// The rest has no index: applied within the bounded scan window.
	if v := p.str("type"); v != "" {
		typ, err := parseNodeType(v)
		if err != nil {
			return nil, err
		}
		ls.window = append(ls.window, func(b *qb) string { return b.nodeType("attributes") + " = " + b.arg(typ) })
	}
	if name := p.str("name"); name != "" {
		ls.window = append(ls.window, func(b *qb) string { return b.containsCI("name", name) })
	}
	st, err := p.status()
	if err != nil {
		return nil, err
	}
	if st != "" {
		ls.window = append(ls.window, func(b *qb) string { return "status_code = " + b.arg(st) })
	}
	minDur, err := p.nonNegInt("min_duration_ms")
	if err != nil {
		return nil, err
	}
	if minDur >= 0 {
		ls.window = append(ls.window, func(b *qb) string { return "duration_ms >= " + b.arg(minDur) })
	}
	for _, a := range p.all("attr") {
		key, val, ok := strings.Cut(a, ":")
		if !ok || !attrKeyRE.MatchString(key) {
			return nil, badParam("attr", "must be key:value with a key of letters, digits and _ . : / @ - (at most 128)")
		}
		ls.window = append(ls.window, func(b *qb) string { return b.attrText("attributes", key) + " = " + b.arg(val) })
	}
	return ls, nil
}

func (s *server) listSpans(w http.ResponseWriter, r *http.Request) {
	serveList(s, w, r, s.spanListSpec, s.runSpanList, func(w http.ResponseWriter, l *SpanList) {
		tail := "}"
		if l.NextCursor != "" {
			tail = `,"next_cursor":` + string(appendString(nil, l.NextCursor)) + "}"
		}
		writeSpans(w, []byte(`{"spans":`), l.Spans, tail)
	})
}

func (s *server) runSpanList(ctx context.Context, ls *listSpec) (*SpanList, error) {
	spans, next, err := readPage(ctx, s, ls, scanSpan, func(n *SpanNode) (string, string) { return n.StartTime, n.SpanID })
	if err != nil {
		return nil, err
	}
	if err := s.enrich(ctx, spans); err != nil {
		return nil, err
	}
	return &SpanList{Spans: spans, NextCursor: next}, nil
}
