package api

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"net/http"
	"time"

	"github.com/kern-agents/trace-gateway/internal/model"
	"github.com/kern-agents/trace-gateway/internal/semantics"
	"github.com/kern-agents/trace-gateway/internal/store"
)

// Summary is the body of GET /api/summary.
type Summary struct {
	Start         string        `json:"start"`
	End           string        `json:"end"`
	TraceCount    int64         `json:"trace_count"`
	ErrorCount    int64         `json:"error_count"`
	ErrorRate     float64       `json:"error_rate"` // error_count / trace_count, 0 when no traces
	DurationP50MS *float64      `json:"duration_p50_ms"`
	DurationP95MS *float64      `json:"duration_p95_ms"`
	TokensByModel []ModelTokens `json:"tokens_by_model"`
}

// ModelTokens sums the token usage of the LLM spans of one model.
type ModelTokens struct {
	Model        string `json:"model"` // "" when the span named no model
	Calls        int64  `json:"calls"`
	InputTokens  int64  `json:"input_tokens"`
	OutputTokens int64  `json:"output_tokens"`
	TotalTokens  int64  `json:"total_tokens"` // the sender's total, else input + output
}

// defaultSummaryRange is used when start is not given.
const defaultSummaryRange = 24 * time.Hour

func (s *server) summary(w http.ResponseWriter, r *http.Request) {
	p, err := parseParams(r.URL.Query(), []string{"start", "end"})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	start, end, err := p.timeRange()
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if end.IsZero() {
		end = s.opts.Now()
	}
	if start.IsZero() {
		start = end.Add(-defaultSummaryRange)
	}
	if !start.Before(end) {
		s.fail(w, r, badParam("start", "start must be before end"))
		return
	}
	ctx, cancel := s.ctx(r)
	defer cancel()
	out, err := s.computeSummary(ctx, start, end, viewerTenant(r))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// computeSummary summarises [start, end) for one tenant (nil: all). Stores
// that keep per-minute rollups (store.Summarizer) answer from them, so the
// cost does not grow with the spans in the window; durations then come from
// the rollups' buckets, within 1% of the exact percentiles.
func (s *server) computeSummary(ctx context.Context, start, end time.Time, tenant *string) (*Summary, error) {
	if sum, ok := s.st.(store.Summarizer); ok {
		r, err := sum.Summarize(ctx, start, end, tenant)
		if err != nil {
			return nil, err
		}
		out := &Summary{Start: model.FormatTime(start), End: model.FormatTime(end), TokensByModel: []ModelTokens{},
			TraceCount: r.Traces, ErrorCount: r.Errors}
		if r.Traces > 0 {
			out.ErrorRate = float64(r.Errors) / float64(r.Traces)
		}
		if p50, ok := r.Percentile(0.5); ok {
			p95, _ := r.Percentile(0.95)
			out.DurationP50MS, out.DurationP95MS = &p50, &p95
		}
		for _, u := range r.Models {
			out.TokensByModel = append(out.TokensByModel, ModelTokens{Model: u.Model, Calls: u.Calls,
				InputTokens: u.Input, OutputTokens: u.Output, TotalTokens: u.Total})
		}
		return out, nil
	}
	return s.summaryFromRows(ctx, start, end, tenant)
}

// summaryFromRows computes the summary from the trace and span rows, for
// stores without rollups; with a tenant, of its traces and spans only.
func (s *server) summaryFromRows(ctx context.Context, start, end time.Time, tenant *string) (*Summary, error) {
	out := &Summary{Start: model.FormatTime(start), End: model.FormatTime(end), TokensByModel: []ModelTokens{}}
	rng := timeRangeConds("start_time", start, end)
	where := func(b *qb) {
		b.w(" WHERE ", rng[0](b), " AND ", rng[1](b))
		if tenant != nil {
			b.w(" AND ", s.traceOfTenant(b, s.traces+".trace_id", *tenant))
		}
	}
	spansWhere := func(b *qb) {
		b.w(" WHERE ", rng[0](b), " AND ", rng[1](b))
		if tenant != nil {
			b.w(" AND ", s.spanOfTenant(b, s.spans+".attributes", s.spans+".trace_id", *tenant))
		}
	}
	db := s.st.DB()

	b := newQB(s.dialect)
	if b.pg {
		var p50, p95 sql.NullFloat64
		b.w("SELECT COUNT(*), COUNT(*) FILTER (WHERE status = 'ERROR'), ",
			"percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_ms), ",
			"percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ms) FROM ", s.traces)
		where(b)
		if err := db.QueryRowContext(ctx, b.String(), b.args...).Scan(&out.TraceCount, &out.ErrorCount, &p50, &p95); err != nil {
			return nil, fmt.Errorf("summarise traces in %s: %w", s.traces, err)
		}
		if p50.Valid {
			out.DurationP50MS, out.DurationP95MS = &p50.Float64, &p95.Float64
		}
	} else {
		b.w("SELECT COUNT(*), COALESCE(SUM(CASE WHEN status = 'ERROR' THEN 1 ELSE 0 END), 0) FROM ", s.traces)
		where(b)
		if err := db.QueryRowContext(ctx, b.String(), b.args...).Scan(&out.TraceCount, &out.ErrorCount); err != nil {
			return nil, fmt.Errorf("summarise traces in %s: %w", s.traces, err)
		}
		if out.TraceCount > 0 {
			for _, q := range []struct {
				p   float64
				dst **float64
			}{{0.5, &out.DurationP50MS}, {0.95, &out.DurationP95MS}} {
				v, err := s.percentileSQLite(ctx, where, out.TraceCount, q.p)
				if err != nil {
					return nil, err
				}
				*q.dst = &v
			}
		}
	}
	if out.TraceCount > 0 {
		out.ErrorRate = float64(out.ErrorCount) / float64(out.TraceCount)
	}

	// The LLM spans' OpenInference keys, which the gateway adds from the
	// sender's convention when a span lacks them.
	b = newQB(s.dialect)
	in := b.attrNum("attributes", semantics.AttrTokensPrompt)
	outTok := b.attrNum("attributes", semantics.AttrTokensCompletion)
	total := b.attrNum("attributes", semantics.AttrTokensTotal)
	in2 := b.attrNum("attributes", semantics.AttrTokensPrompt)
	out2 := b.attrNum("attributes", semantics.AttrTokensCompletion)
	// Placeholders must appear in the order they were bound (SQLite's ?),
	// so the select list is written in exactly that order.
	b.w("SELECT CAST(COALESCE(SUM(", in, "), 0) AS BIGINT), CAST(COALESCE(SUM(", outTok, "), 0) AS BIGINT), ",
		"CAST(COALESCE(SUM(COALESCE(", total, ", COALESCE(", in2, ", 0) + COALESCE(", out2, ", 0))), 0) AS BIGINT), ")
	b.w("COALESCE(", b.attrText("attributes", semantics.AttrModelName), ", '') AS model, COUNT(*) FROM ", s.spans)
	spansWhere(b)
	b.w(" AND ", b.attrText("attributes", semantics.AttrSpanKind), " = ", b.arg(semantics.KindLLM),
		" GROUP BY model ORDER BY model")
	rows, err := db.QueryContext(ctx, b.String(), b.args...)
	if err != nil {
		return nil, fmt.Errorf("sum tokens in %s: %w", s.spans, err)
	}
	defer rows.Close()
	for rows.Next() {
		var m ModelTokens
		if err := rows.Scan(&m.InputTokens, &m.OutputTokens, &m.TotalTokens, &m.Model, &m.Calls); err != nil {
			return nil, fmt.Errorf("read token sums: %w", err)
		}
		out.TokensByModel = append(out.TokensByModel, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sum tokens in %s: %w", s.spans, err)
	}
	return out, nil
}

// percentileSQLite computes what PostgreSQL's percentile_cont does (linear
// interpolation between the two nearest ranks) with one ordered read of at
// most two rows; SQLite has no percentile aggregate.
func (s *server) percentileSQLite(ctx context.Context, where func(*qb), n int64, p float64) (float64, error) {
	pos := p * float64(n-1)
	lo := int64(math.Floor(pos))
	b := newQB(s.dialect)
	b.w("SELECT duration_ms FROM ", s.traces)
	where(b)
	b.w(" ORDER BY duration_ms LIMIT 2 OFFSET ", fmt.Sprint(lo))
	rows, err := s.st.DB().QueryContext(ctx, b.String(), b.args...)
	if err != nil {
		return 0, fmt.Errorf("percentile of durations in %s: %w", s.traces, err)
	}
	defer rows.Close()
	var v []float64
	for rows.Next() {
		var d int64
		if err := rows.Scan(&d); err != nil {
			return 0, fmt.Errorf("percentile of durations in %s: %w", s.traces, err)
		}
		v = append(v, float64(d))
	}
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("percentile of durations in %s: %w", s.traces, err)
	}
	switch len(v) {
	case 0:
		return 0, fmt.Errorf("percentile of durations in %s: rows vanished during read", s.traces)
	case 1:
		return v[0], nil
	}
	return v[0] + (pos-float64(lo))*(v[1]-v[0]), nil
}
