package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/kern-agents/trace-gateway/internal/model"
	"github.com/kern-agents/trace-gateway/internal/semantics"
	"github.com/kern-agents/trace-gateway/internal/store"
)

var _ store.Summarizer = (*Store)(nil)

// Summarize implements store.Summarizer.
func (s *Store) Summarize(ctx context.Context, start, end time.Time, tenant *string) (*store.Summary, error) {
	out := &store.Summary{Durations: map[int]int64{}}
	from, to, edges := store.SummaryWindows(start, end)
	type query struct {
		q    string
		args []any
		scan func(*sql.Rows) error
	}
	var qs []query
	traceRow := func(rows *sql.Rows) error {
		var status string
		var bucket, n int64
		if err := rows.Scan(&status, &bucket, &n); err != nil {
			return err
		}
		out.Add(status, int(bucket), n)
		return nil
	}
	usageRow := func(rows *sql.Rows) error {
		var u model.Usage
		if err := rows.Scan(&u.Model, &u.Calls, &u.Input, &u.Output, &u.Total); err != nil {
			return err
		}
		if u.Calls != 0 {
			out.Models = store.MergeModels(out.Models, u)
		}
		return nil
	}
	if from != "" {
		qs = append(qs,
			query{`SELECT status, bucket, sum(traces) FROM ` + quote(store.RollupTracesTable) + `
				WHERE minute >= ? AND minute < ? AND (?3 IS NULL OR tenant = ?3) GROUP BY status, bucket`, []any{from, to, tenant}, traceRow},
			query{`SELECT model, sum(calls), sum(input_tokens), sum(output_tokens), sum(total_tokens)
				FROM ` + quote(store.RollupModelsTable) + ` WHERE minute >= ? AND minute < ? AND (?3 IS NULL OR tenant = ?3)
				GROUP BY model`, []any{from, to, tenant}, usageRow})
	}
	for _, e := range edges {
		qs = append(qs,
			query{`SELECT status, duration_ms, 1 FROM ` + s.traces + ` t WHERE start_time >= ? AND start_time < ?
				AND (?3 IS NULL OR EXISTS (SELECT 1 FROM ` + s.withOrigin() + ` WHERE s.trace_id = t.trace_id AND ` + spanTenant + ` = ?3))`,
				[]any{e[0], e[1], tenant},
				func(rows *sql.Rows) error {
					var status string
					var d, one int64
					if err := rows.Scan(&status, &d, &one); err != nil {
						return err
					}
					out.Add(status, store.DurationBucket(d), one)
					return nil
				}},
			query{`SELECT model, sum(n), sum(i), sum(o), sum(t) FROM (` +
				s.llmUsageSQL(`s.start_time >= ? AND s.start_time < ? AND (?3 IS NULL OR `+spanTenant+` = ?3)`) + `) GROUP BY model`,
				[]any{e[0], e[1], tenant}, usageRow})
	}
	for _, q := range qs {
		if err := s.each(ctx, q.q, q.args, q.scan); err != nil {
			return nil, wrap(fmt.Sprintf("summarise %s..%s", model.FormatTime(start), model.FormatTime(end)), err)
		}
	}
	slices.SortFunc(out.Models, func(a, b model.Usage) int { return strings.Compare(a.Model, b.Model) })
	return out, nil
}

// spanTenant is the tenant of span row s (joined with its origin row r):
// the origin's, else, for rows stored before origins were kept apart, the
// one inline in the row's resource.
const spanTenant = `coalesce(r.tenant, json_extract(s.attributes, '$."` + model.KeyResource + `"."kern.tenant"'), '')`

// withOrigin joins a span row s with its origin row r: the one its
// attributes reference, else its trace's usual one (u).
func (s *Store) withOrigin() string {
	return s.spans + ` s LEFT JOIN ` + quote(store.TraceResourcesTable) + ` u ON u.trace_id = s.trace_id
		LEFT JOIN ` + quote(store.ResourcesTable) + ` r ON r.id = coalesce(json_extract(s.attributes, '$."` + model.KeyResource + `"'), u.resource_id)`
}

// llmUsageSQL selects (minute, tenant, model, n, i, o, t) of the LLM spans
// matching where, grouped by minute, tenant and model, as convert.usageOf
// reads a span's usage.
func (s *Store) llmUsageSQL(where string) string {
	path := func(k string) string { return `'$."` + k + `"'` }
	num := func(k string) string {
		return `CASE WHEN json_type(s.attributes, ` + path(k) + `) IN ('integer', 'real') THEN CAST(json_extract(s.attributes, ` + path(k) + `) AS INTEGER) END`
	}
	return `SELECT substr(s.start_time, 1, 16) AS minute, ` + spanTenant + ` AS tenant,
		coalesce(CASE WHEN json_type(s.attributes, ` + path(semantics.AttrModelName) + `) = 'text'
			THEN json_extract(s.attributes, ` + path(semantics.AttrModelName) + `) END, '') AS model,
		count(*) AS n, coalesce(sum(coalesce(` + num(semantics.AttrTokensPrompt) + `, 0)), 0) AS i,
		coalesce(sum(coalesce(` + num(semantics.AttrTokensCompletion) + `, 0)), 0) AS o,
		coalesce(sum(coalesce(` + num(semantics.AttrTokensTotal) + `,
			coalesce(` + num(semantics.AttrTokensPrompt) + `, 0) + coalesce(` + num(semantics.AttrTokensCompletion) + `, 0))), 0) AS t
		FROM ` + s.withOrigin() + ` WHERE json_extract(s.attributes, ` + path(semantics.AttrSpanKind) + `) = '` + semantics.KindLLM + `'
		AND ` + where + ` GROUP BY 1, 2, 3`
}

// backfill fills the rollups from the rows stored before they existed (an
// upgrade), in the migration's transaction.
func (s *Store) backfill(ctx context.Context, tx *sql.Tx) error {
	var d store.Deltas
	each := func(q string, scan func(*sql.Rows) error) error {
		rows, err := tx.QueryContext(ctx, q)
		if err != nil {
			return fmt.Errorf("backfill rollups: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			if err := scan(rows); err != nil {
				return fmt.Errorf("backfill rollups: %w", err)
			}
		}
		return rows.Err()
	}
	if err := each(`SELECT start_time, coalesce((SELECT `+spanTenant+` FROM `+s.withOrigin()+`
			WHERE s.trace_id = t.trace_id LIMIT 1), ''), status, duration_ms, count(*)
		FROM `+s.traces+` t GROUP BY 1, 2, 3, 4`, func(rows *sql.Rows) error {
		var st store.TraceStat
		var n int64
		if err := rows.Scan(&st.StartTime, &st.Tenant, &st.Status, &st.DurationMS, &n); err != nil {
			return err
		}
		d.AddTraces(&st, n)
		return nil
	}); err != nil {
		return err
	}
	if err := each(s.llmUsageSQL("1"), func(rows *sql.Rows) error {
		var minute, tenant string
		var u model.Usage
		if err := rows.Scan(&minute, &tenant, &u.Model, &u.Calls, &u.Input, &u.Output, &u.Total); err != nil {
			return err
		}
		d.SpanStored(minute, tenant, &u)
		return nil
	}); err != nil {
		return err
	}
	return s.addRollupsWith(ctx, tx, &d, true)
}

func (s *Store) each(ctx context.Context, q string, args []any, scan func(*sql.Rows) error) error {
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := scan(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}
