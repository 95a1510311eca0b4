// Package agentostest checks the gateway's first promise: the AgentOS
// control plane shows the traces the gateway stores. It reproduces, in SQL
// and Go, AgentOS's (agno 2.9) read path over agno_traces and agno_spans:
// the list query of db/postgres/postgres.py and db/sqlite/sqlite.py
// (_get_traces_base_query, get_traces, get_trace, get_spans), Trace.from_dict
// and Span.from_dict of tracing/schemas.py (datetime.fromisoformat on every
// time), and the models of os/routers/traces/schemas.py (TraceSummary,
// TraceDetail.from_trace_and_spans, _build_span_tree, TraceNode.from_span,
// _derive_span_type), with pydantic's type checks. Where AgentOS would
// raise, the reader returns an error saying why.
package agentostest

import (
	"context"
	"database/sql"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"time"

	"github.com/kern-agents/trace-gateway/internal/store"
)

// Reader reads a store's tables as AgentOS does.
type Reader struct {
	db      *sql.DB
	dialect string
	traces  string // qualified and quoted, as in SQL
	spans   string
	// spansName is the bare spans table name (SQLite reflection).
	spansName string
}

// NewReader reads the tables of s.
func NewReader(s store.Store) *Reader {
	traces, spans := s.Tables()
	parts := strings.Split(spans, ".")
	return &Reader{db: s.DB(), dialect: s.Dialect(), traces: traces, spans: spans,
		spansName: strings.ReplaceAll(strings.Trim(parts[len(parts)-1], `"`), `""`, `"`)}
}

// Trace is agno's tracing.schemas.Trace as Trace.from_dict builds it.
type Trace struct {
	TraceID, Name, Status              string
	StartTime, EndTime, CreatedAt      time.Time
	DurationMS, TotalSpans, ErrorCount int64
	// RunID ... WorkflowID in model.TraceIDColumns order; nil for NULL.
	IDs [6]*string
}

// Span is agno's tracing.schemas.Span as Span.from_dict builds it.
type Span struct {
	SpanID, TraceID, Name, SpanKind, StatusCode string
	ParentSpanID, StatusMessage                 *string
	StartTime, EndTime, CreatedAt               time.Time
	DurationMS                                  int64
	Attributes                                  map[string]any
}

func (s *Span) get(key string) any { return s.Attributes[key] }

// getOr is dict.get(key, default).
func (s *Span) getOr(key string, dflt any) any {
	if v, ok := s.Attributes[key]; ok {
		return v
	}
	return dflt
}

// TraceSummary is one item of GET /traces.
type TraceSummary struct {
	Trace
	Duration string
	Input    *string
}

// TraceNode is one node of TraceDetail.tree.
type TraceNode struct {
	ID, Name, Type, Duration, Status string
	StartTime, EndTime               time.Time
	Input, Output, Error             *string
	Spans                            []TraceNode
	StepType                         any
	Metadata                         map[string]any
}

// TraceDetail is GET /traces/{trace_id}.
type TraceDetail struct {
	Trace
	Duration             string
	Input, Output, Error *string
	Tree                 []TraceNode
}

const traceColumns = "trace_id, name, status, start_time, end_time, duration_ms, run_id, session_id, user_id, agent_id, team_id, workflow_id, created_at"

// baseQuery is _get_traces_base_query with the spans table: every trace
// column, total_spans and error_count from a LEFT OUTER JOIN grouped by
// trace_id, as SQLAlchemy renders it (bind parameters for the literals),
// with where (a condition or "") as get_trace and get_traces add it.
func (r *Reader) baseQuery(where string) string {
	if where != "" {
		where = " WHERE " + where
	}
	cols := strings.Split(traceColumns, ", ")
	for i, c := range cols {
		cols[i] = r.traces + "." + c
	}
	return `SELECT ` + strings.Join(cols, ", ") + `, coalesce(count(` + r.spans + `.span_id), ` + r.intParam(1) + `) AS total_spans, ` +
		`coalesce(sum(CASE WHEN (` + r.spans + `.status_code = ` + r.param(2) + `) THEN ` + r.intParam(3) + ` ELSE ` + r.intParam(4) + ` END), ` + r.intParam(5) + `) AS error_count 
FROM ` + r.traces + ` LEFT OUTER JOIN ` + r.spans + ` ON ` + r.traces + `.trace_id = ` + r.spans + `.trace_id` + where + ` GROUP BY ` + r.traces + `.trace_id`
}

var baseArgs = []any{0, "ERROR", 1, 0, 0}

func (r *Reader) param(n int) string {
	if r.dialect == "postgres" {
		return fmt.Sprintf("$%d", n)
	}
	return fmt.Sprintf("?%d", n)
}

// intParam is a bind parameter holding a Python int: psycopg sends it
// typed (int2 for small values), where an untyped parameter would leave
// PostgreSQL to guess text for a CASE of parameters only.
func (r *Reader) intParam(n int) string {
	if r.dialect == "postgres" {
		return r.param(n) + "::int2"
	}
	return r.param(n)
}

// ListTraces is GET /traces?page=&limit=: the traces newest first, with
// each root span's input.value, and the total count.
func (r *Reader) ListTraces(ctx context.Context, page, limit int) ([]TraceSummary, int64, error) {
	var total int64
	if err := r.db.QueryRowContext(ctx, `SELECT count(*) AS count_1 FROM (`+r.baseQuery("")+`) AS anon_1`, baseArgs...).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("get_traces count: %w", err)
	}
	traces, err := r.queryTraces(ctx, r.baseQuery("")+` ORDER BY `+r.traces+`.start_time DESC LIMIT `+r.intParam(6)+` OFFSET `+r.intParam(7),
		append(slices.Clone(baseArgs), limit, (page-1)*limit)...)
	if err != nil {
		return nil, 0, err
	}
	out := make([]TraceSummary, 0, len(traces))
	for _, t := range traces {
		spans, err := r.GetSpans(ctx, t.TraceID)
		if err != nil {
			return nil, 0, err
		}
		var input any
		if root := firstRoot(spans); root != nil {
			input = root.get("input.value")
		}
		in, err := optStr("TraceSummary.input", input)
		if err != nil {
			return nil, 0, fmt.Errorf("trace %s: %w", t.TraceID, err)
		}
		out = append(out, TraceSummary{Trace: t, Duration: formatDurationMS(t.DurationMS), Input: in})
	}
	return out, total, nil
}

// GetTrace is get_trace(trace_id): nil when there is no such trace.
func (r *Reader) GetTrace(ctx context.Context, traceID string) (*Trace, error) {
	traces, err := r.queryTraces(ctx, r.baseQuery(r.traces+`.trace_id = `+r.param(6))+
		` ORDER BY `+r.traces+`.start_time DESC LIMIT `+r.intParam(7), append(slices.Clone(baseArgs), traceID, 1)...)
	if err != nil || len(traces) == 0 {
		return nil, err
	}
	return &traces[0], nil
}

func (r *Reader) queryTraces(ctx context.Context, q string, args ...any) ([]Trace, error) {
	rows, err := r.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("get_traces: %w", err)
	}
	defer rows.Close()
	var out []Trace
	for rows.Next() {
		var t Trace
		var start, end, created string
		var ids [6]sql.NullString
		if err := rows.Scan(&t.TraceID, &t.Name, &t.Status, &start, &end, &t.DurationMS,
			&ids[0], &ids[1], &ids[2], &ids[3], &ids[4], &ids[5], &created, &t.TotalSpans, &t.ErrorCount); err != nil {
			return nil, fmt.Errorf("get_traces: %w", err)
		}
		for i, id := range ids {
			if id.Valid {
				t.IDs[i] = &id.String
			}
		}
		if err := fromISOFormats([3]*time.Time{&t.StartTime, &t.EndTime, &t.CreatedAt}, [3]string{start, end, created}); err != nil {
			return nil, fmt.Errorf("Trace.from_dict %s: %w", t.TraceID, err)
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// fromISOFormats parses from_dict's three times (start, end, created)
// into dst; each must be aware.
func fromISOFormats(dst [3]*time.Time, src [3]string) error {
	for i, s := range src {
		t, aware, err := fromISOFormat(s)
		if err == nil && !aware {
			err = fmt.Errorf("datetime.fromisoformat(%q) is naive: comparing it with the aware times AgentOS writes raises TypeError", s)
		}
		if err != nil {
			return err
		}
		*dst[i] = t
	}
	return nil
}

// GetSpans is get_spans(trace_id): at most 1000 spans, in no particular
// order (AgentOS's query has no ORDER BY; the reader keeps the database's).
func (r *Reader) GetSpans(ctx context.Context, traceID string) ([]Span, error) {
	return r.querySpans(ctx, "get_spans", r.spans+`.trace_id = `+r.param(1)+` LIMIT `+r.param(2), traceID, 1000)
}

// SpanNode is GET /traces/{trace_id}?span_id=: get_trace, get_span and
// TraceNode.from_span without children.
func (r *Reader) SpanNode(ctx context.Context, traceID, spanID string) (*TraceNode, error) {
	t, err := r.GetTrace(ctx, traceID)
	if err != nil || t == nil {
		return nil, fmt.Errorf("trace %s: 404 Trace not found (%v)", traceID, err)
	}
	spans, err := r.querySpans(ctx, "get_span", r.spans+`.span_id = `+r.param(1), spanID)
	if err != nil {
		return nil, err
	}
	if len(spans) == 0 || spans[0].TraceID != traceID {
		return nil, fmt.Errorf("span %s: 404 Span not found in trace %s", spanID, traceID)
	}
	n, err := fromSpan(&spans[0], nil)
	if err != nil {
		return nil, err
	}
	return &n, nil
}

func (r *Reader) querySpans(ctx context.Context, op, where string, args ...any) ([]Span, error) {
	if r.dialect == "sqlite" {
		// SqliteDb reflects the table: a column declared other than JSON
		// comes back as the stored text, a str, and AgentOS's
		// attributes.get(...) raises AttributeError.
		var typ string
		if err := r.db.QueryRowContext(ctx, `SELECT type FROM pragma_table_info(?1) WHERE name = 'attributes'`, r.spansName).Scan(&typ); err != nil {
			return nil, fmt.Errorf("reflect %s: %w", r.spansName, err)
		}
		if !strings.EqualFold(typ, "JSON") {
			return nil, fmt.Errorf("reflect %s: attributes is declared %s, so SQLAlchemy returns a str, not a dict", r.spansName, typ)
		}
	}
	rows, err := r.db.QueryContext(ctx, `SELECT span_id, trace_id, parent_span_id, name, span_kind, status_code, status_message,
		start_time, end_time, duration_ms, attributes, created_at FROM `+r.spans+` WHERE `+where, args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	defer rows.Close()
	var out []Span
	for rows.Next() {
		var sp Span
		var parent, msg sql.NullString
		var start, end, created string
		var attrs []byte
		if err := rows.Scan(&sp.SpanID, &sp.TraceID, &parent, &sp.Name, &sp.SpanKind, &sp.StatusCode, &msg,
			&start, &end, &sp.DurationMS, &attrs, &created); err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
		if parent.Valid {
			sp.ParentSpanID = &parent.String
		}
		if msg.Valid {
			sp.StatusMessage = &msg.String
		}
		if err := fromISOFormats([3]*time.Time{&sp.StartTime, &sp.EndTime, &sp.CreatedAt}, [3]string{start, end, created}); err != nil {
			return nil, fmt.Errorf("Span.from_dict %s: %w", sp.SpanID, err)
		}
		if attrs == nil {
			return nil, fmt.Errorf("span %s: attributes is NULL: AgentOS's attributes.get(...) raises AttributeError on None", sp.SpanID)
		}
		v, err := decodePython(attrs)
		if err != nil {
			return nil, fmt.Errorf("span %s: json.loads(attributes): %w", sp.SpanID, err)
		}
		m, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("span %s: attributes is a %s, not a dict", sp.SpanID, pyType(v))
		}
		sp.Attributes = m
		out = append(out, sp)
	}
	return out, rows.Err()
}

// firstRoot is next((s for s in spans if not s.parent_span_id), None).
func firstRoot(spans []Span) *Span {
	for i := range spans {
		if p := spans[i].ParentSpanID; p == nil || *p == "" {
			return &spans[i]
		}
	}
	return nil
}

// Detail is GET /traces/{trace_id}: get_trace, get_spans and
// TraceDetail.from_trace_and_spans.
func (r *Reader) Detail(ctx context.Context, traceID string) (*TraceDetail, error) {
	t, err := r.GetTrace(ctx, traceID)
	if err != nil {
		return nil, err
	}
	if t == nil {
		return nil, fmt.Errorf("trace %s: 404 Trace not found", traceID)
	}
	spans, err := r.GetSpans(ctx, traceID)
	if err != nil {
		return nil, err
	}
	d, err := fromTraceAndSpans(*t, spans)
	if err != nil {
		return nil, fmt.Errorf("trace %s: %w", traceID, err)
	}
	return d, nil
}

func fromTraceAndSpans(t Trace, spans []Span) (*TraceDetail, error) {
	var input, output, traceErr any
	if root := firstRoot(spans); root != nil {
		input = root.get("input.value")
		outputVal := root.get("output.value")
		if t.Status == "ERROR" || root.StatusCode == "ERROR" {
			traceErr = orMessage(root)
			output = nil
		} else {
			output = outputVal
		}
		kind := root.getOr("openinference.span.kind", "")
		outStr, isStr := output.(string)
		empty := !truthy(output) || (isStr && (outStr == "None" || strings.TrimSpace(outStr) == "None"))
		if kind == "CHAIN" && empty && t.Status != "ERROR" {
			var children []Span
			for _, s := range spans {
				if s.ParentSpanID != nil && *s.ParentSpanID == root.SpanID {
					children = append(children, s)
				}
			}
			if len(children) > 0 {
				// sort(key=end_time, reverse=True) is stable.
				slices.SortStableFunc(children, func(a, b Span) int { return b.EndTime.Compare(a.EndTime) })
				output = children[0].get("output.value")
			}
		}
	}
	var totalIn, totalOut int64
	for i := range spans {
		s := &spans[i]
		if s.get("openinference.span.kind") != "LLM" {
			continue
		}
		for _, tc := range []struct {
			key   string
			total *int64
		}{{"llm.token_count.prompt", &totalIn}, {"llm.token_count.completion", &totalOut}} {
			v := s.getOr(tc.key, int64(0))
			if !truthy(v) {
				continue
			}
			n, ok := v.(int64)
			if !ok {
				return nil, fmt.Errorf("span %s: total tokens: %s is %s %s, not an integer (Python: TypeError, or a wrong total)", s.SpanID, tc.key, pyType(v), pyRepr(v))
			}
			*tc.total += n
		}
	}
	tree, err := buildSpanTree(spans, totalIn, totalOut, t)
	if err != nil {
		return nil, err
	}
	d := &TraceDetail{Trace: t, Duration: formatDurationMS(t.DurationMS), Tree: tree}
	for _, f := range []struct {
		name string
		dst  **string
		v    any
	}{{"TraceDetail.input", &d.Input, input}, {"TraceDetail.output", &d.Output, output}, {"TraceDetail.error", &d.Error, traceErr}} {
		if *f.dst, err = optStr(f.name, f.v); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// orMessage is `span.status_message or span.attributes.get("exception.message")`.
func orMessage(s *Span) any {
	if s.StatusMessage != nil && *s.StatusMessage != "" {
		return *s.StatusMessage
	}
	return s.get("exception.message")
}

func buildSpanTree(spans []Span, totalIn, totalOut int64, t Trace) ([]TraceNode, error) {
	if len(spans) == 0 {
		return nil, nil
	}
	byParent := map[string][]*Span{} // "" holds the roots (parent None)
	for i := range spans {
		p := ""
		if spans[i].ParentSpanID != nil {
			p = "=" + *spans[i].ParentSpanID // "" is a key of its own in Python
		}
		byParent[p] = append(byParent[p], &spans[i])
	}
	var stepTypes []any
	for _, root := range byParent[""] {
		if root.getOr("openinference.span.kind", "") != "CHAIN" {
			continue
		}
		st := root.getOr("agno.workflow.step_types", []any{})
		if !truthy(st) {
			continue
		}
		list, err := pyList(st)
		if err != nil {
			return nil, fmt.Errorf("span %s: list(agno.workflow.step_types): %w", root.SpanID, err)
		}
		stepTypes = list
		break
	}
	var build func(s *Span, isRoot bool, stepIndex int) (TraceNode, error)
	build = func(s *Span, isRoot bool, stepIndex int) (TraceNode, error) {
		children := byParent["="+s.SpanID]
		slices.SortStableFunc(children, func(a, b *Span) int { return a.StartTime.Compare(b.StartTime) })
		var nodes []TraceNode
		for idx, c := range children {
			i := -1
			if isRoot && len(stepTypes) > 0 {
				i = idx
			}
			n, err := build(c, false, i)
			if err != nil {
				return TraceNode{}, err
			}
			nodes = append(nodes, n)
		}
		if !isRoot {
			node, err := fromSpan(s, nodes)
			if err != nil {
				return TraceNode{}, err
			}
			if stepIndex >= 0 && stepIndex < len(stepTypes) {
				node.StepType = stepTypes[stepIndex]
			}
			return node, nil
		}
		meta := map[string]any{}
		if totalIn > 0 {
			meta["total_input_tokens"] = totalIn
		}
		if totalOut > 0 {
			meta["total_output_tokens"] = totalOut
		}
		typ, err := deriveSpanType(s)
		if err != nil {
			return TraceNode{}, err
		}
		if s.getOr("openinference.span.kind", "UNKNOWN") == "CHAIN" {
			chainMetadata(s, meta)
		}
		n := TraceNode{ID: s.SpanID, Name: s.Name, Type: typ, Duration: formatDurationMS(t.DurationMS),
			StartTime: t.StartTime, EndTime: t.EndTime, Status: s.StatusCode, Spans: nodes}
		if len(meta) > 0 {
			n.Metadata = meta
		}
		return n, nil
	}
	roots := slices.Clone(byParent[""])
	slices.SortStableFunc(roots, func(a, b *Span) int { return a.StartTime.Compare(b.StartTime) })
	var out []TraceNode
	for _, root := range roots {
		n, err := build(root, true, -1)
		if err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, nil
}

// pyList is list(v): strings give their characters, dicts their keys.
func pyList(v any) ([]any, error) {
	switch x := v.(type) {
	case []any:
		return x, nil
	case string:
		var out []any
		for _, c := range x {
			out = append(out, string(c))
		}
		return out, nil
	case map[string]any:
		var out []any
		for _, k := range sortedKeys(x) {
			out = append(out, k)
		}
		return out, nil
	}
	return nil, fmt.Errorf("TypeError: '%s' object is not iterable", pyType(v))
}

func chainMetadata(s *Span, meta map[string]any) {
	for _, m := range [][2]string{
		{"agno.workflow.description", "description"}, {"agno.workflow.steps_count", "steps_count"},
		{"agno.workflow.steps", "steps"}, {"agno.workflow.step_types", "step_types"},
	} {
		if v := s.get(m[0]); truthy(v) {
			meta[m[1]] = v
		}
	}
}

// deriveSpanType is _derive_span_type, and pydantic's check of
// TraceNode.type: str.
func deriveSpanType(s *Span) (string, error) {
	kind := s.getOr("openinference.span.kind", "UNKNOWN")
	switch {
	case kind == "CHAIN":
		return "WORKFLOW", nil
	case kind == "AGENT":
		if truthy(s.get("agno.team.id")) || truthy(s.get("team.id")) {
			return "TEAM", nil
		}
		return "AGENT", nil
	}
	k, ok := kind.(string)
	if !ok {
		return "", fmt.Errorf("span %s: pydantic: TraceNode.type: Input should be a valid string, got %s %s", s.SpanID, pyType(kind), pyRepr(kind))
	}
	return k, nil
}

// fromSpan is TraceNode.from_span.
func fromSpan(s *Span, children []TraceNode) (TraceNode, error) {
	typ, err := deriveSpanType(s)
	if err != nil {
		return TraceNode{}, err
	}
	kind := s.getOr("openinference.span.kind", "UNKNOWN")
	input, output := s.get("input.value"), s.get("output.value")
	var errVal any
	if s.StatusCode == "ERROR" {
		errVal = orMessage(s)
		output = nil
	}
	meta := map[string]any{}
	put := func(attr, key string) {
		if v := s.get(attr); truthy(v) {
			meta[key] = v
		}
	}
	switch kind {
	case "AGENT":
		put("agno.run.id", "run_id")
	case "LLM":
		put("llm.model_name", "model")
		put("llm.token_count.prompt", "input_tokens")
		put("llm.token_count.completion", "output_tokens")
	case "TOOL":
		put("tool.name", "tool_name")
		put("tool.parameters", "parameters")
	case "CHAIN":
		chainMetadata(s, meta)
	}
	put("session.id", "session_id")
	put("user.id", "user_id")
	n := TraceNode{ID: s.SpanID, Name: s.Name, Type: typ, Duration: formatDurationMS(s.DurationMS),
		StartTime: s.StartTime, EndTime: s.EndTime, Status: s.StatusCode, Spans: children}
	for _, f := range []struct {
		name string
		dst  **string
		v    any
	}{{"input", &n.Input, input}, {"output", &n.Output, output}, {"error", &n.Error, errVal}} {
		if *f.dst, err = optStr("TraceNode."+f.name, f.v); err != nil {
			return TraceNode{}, fmt.Errorf("span %s: %w", s.SpanID, err)
		}
	}
	if len(meta) > 0 {
		n.Metadata = meta
	}
	return n, nil
}

// Render draws a tree one node a line, children indented by two spaces:
// type, name and status, then input, output and error when set, the step
// type, and the metadata in key order. Values print as JSON.
func Render(nodes []TraceNode) string {
	var b strings.Builder
	var walk func(ns []TraceNode, depth int)
	walk = func(ns []TraceNode, depth int) {
		for _, n := range ns {
			b.WriteString(strings.Repeat("  ", depth))
			fmt.Fprintf(&b, "%s %s %s", n.Type, n.Name, n.Status)
			for _, f := range []struct {
				label string
				v     *string
			}{{"in", n.Input}, {"out", n.Output}, {"err", n.Error}} {
				if f.v != nil {
					fmt.Fprintf(&b, " %s=%s", f.label, pyRepr(*f.v))
				}
			}
			if n.StepType != nil {
				fmt.Fprintf(&b, " step=%s", pyRepr(n.StepType))
			}
			for _, k := range sortedKeys(n.Metadata) {
				fmt.Fprintf(&b, " %s=%s", k, renderValue(n.Metadata[k]))
			}
			b.WriteByte('\n')
			walk(n.Spans, depth+1)
		}
	}
	walk(nodes, 0)
	return b.String()
}

func renderValue(v any) string {
	if n, ok := v.(*big.Int); ok {
		return n.String()
	}
	return pyRepr(v)
}
