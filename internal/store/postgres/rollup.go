package postgres

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kern-agents/trace-gateway/internal/model"
	"github.com/kern-agents/trace-gateway/internal/semantics"
	"github.com/kern-agents/trace-gateway/internal/store"
)

var _ store.Summarizer = (*Store)(nil)

// spanTenant is the tenant of span row s (joined with its origin row r):
// the origin's, else, for rows stored before origins were kept apart, the
// one inline in the row's resource.
const spanTenant = `coalesce(r.tenant, s.attributes->'` + model.KeyResource + `'->>'kern.tenant', '')`

// withOrigin joins a span row s with its origin row r: the one its
// attributes reference, else its trace's usual one (u).
func (s *Store) withOrigin() string {
	return s.spans + ` s LEFT JOIN ` + s.traceRes + ` u ON u.trace_id = s.trace_id
		LEFT JOIN ` + s.res + ` r ON r.id = coalesce(s.attributes->>'` + model.KeyResource + `', u.resource_id)`
}

// Summarize implements store.Summarizer. Its range predicates compare in
// the columns' own collation, so the indexes on them are used; the times and
// minutes are fixed-width with their punctuation in the same places, which
// any collation orders like the bytes.
func (s *Store) Summarize(ctx context.Context, start, end time.Time, tenant *string) (*store.Summary, error) {
	out := &store.Summary{Durations: map[int]int64{}}
	from, to, edges := store.SummaryWindows(start, end)
	rt := pgx.Identifier{s.schema, store.RollupTracesTable}.Sanitize()
	rm := pgx.Identifier{s.schema, store.RollupModelsTable}.Sanitize()
	b := &pgx.Batch{}
	if from != "" {
		b.Queue(`SELECT status, bucket, sum(traces)::bigint FROM `+rt+`
			WHERE minute >= $1 AND minute < $2 AND ($3::text IS NULL OR tenant = $3)
			GROUP BY status, bucket`, from, to, tenant).
			Query(func(rows pgx.Rows) error {
				var status string
				var bucket int32
				var n int64
				_, err := pgx.ForEachRow(rows, []any{&status, &bucket, &n}, func() error {
					out.Add(status, int(bucket), n)
					return nil
				})
				return err
			})
		b.Queue(`SELECT model, sum(calls)::bigint, sum(input_tokens)::bigint, sum(output_tokens)::bigint, sum(total_tokens)::bigint
			FROM `+rm+` WHERE minute >= $1 AND minute < $2 AND ($3::text IS NULL OR tenant = $3)
			GROUP BY model`, from, to, tenant).
			Query(func(rows pgx.Rows) error { return scanUsage(rows, out) })
	}
	for _, e := range edges {
		b.Queue(`SELECT status, duration_ms FROM `+s.traces+` t
			WHERE start_time >= $1 AND start_time < $2
			AND ($3::text IS NULL OR EXISTS (SELECT 1 FROM `+s.withOrigin()+` WHERE s.trace_id = t.trace_id AND `+spanTenant+` = $3))`,
			e[0], e[1], tenant).
			Query(func(rows pgx.Rows) error {
				var status string
				var d int64
				_, err := pgx.ForEachRow(rows, []any{&status, &d}, func() error {
					out.Add(status, store.DurationBucket(d), 1)
					return nil
				})
				return err
			})
		b.Queue(`SELECT model, sum(n)::bigint, sum(i)::bigint, sum(o)::bigint, sum(t)::bigint FROM (`+
			s.llmUsageSQL(`s.start_time >= $1 AND s.start_time < $2 AND ($3::text IS NULL OR `+spanTenant+` = $3)`)+
			`) u(m, tenant, model, n, i, o, t) GROUP BY model`, e[0], e[1], tenant).
			Query(func(rows pgx.Rows) error { return scanUsage(rows, out) })
	}
	if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
		return nil, s.wrap(fmt.Sprintf("summarise %s..%s", model.FormatTime(start), model.FormatTime(end)), err)
	}
	slices.SortFunc(out.Models, func(a, b model.Usage) int { return strings.Compare(a.Model, b.Model) })
	return out, nil
}

// llmUsageSQL selects (minute, tenant, model, calls, input, output, total)
// of the LLM spans matching where, grouped by minute, tenant and model, as
// convert.usageOf reads a span's usage.
func (s *Store) llmUsageSQL(where string) string {
	num := func(k string) string {
		return `CASE WHEN jsonb_typeof(s.attributes->'` + k + `') = 'number' THEN trunc((s.attributes->'` + k + `')::numeric)::bigint END`
	}
	return `SELECT substr(s.start_time, 1, 16), ` + spanTenant + `,
			coalesce(CASE WHEN jsonb_typeof(s.attributes->'` + semantics.AttrModelName + `') = 'string'
			THEN s.attributes->>'` + semantics.AttrModelName + `' END, '') AS model,
			count(*), coalesce(sum(coalesce(` + num(semantics.AttrTokensPrompt) + `, 0)), 0)::bigint,
			coalesce(sum(coalesce(` + num(semantics.AttrTokensCompletion) + `, 0)), 0)::bigint,
			coalesce(sum(coalesce(` + num(semantics.AttrTokensTotal) + `,
				coalesce(` + num(semantics.AttrTokensPrompt) + `, 0) + coalesce(` + num(semantics.AttrTokensCompletion) + `, 0))), 0)::bigint
		FROM ` + s.withOrigin() + ` WHERE s.attributes->>'` + semantics.AttrSpanKind + `' = '` + semantics.KindLLM + `' AND ` + where + ` GROUP BY 1, 2, 3`
}

// backfill fills the rollups from the rows stored before they existed (an
// upgrade), in the migration's transaction. A trace's tenant is that of one
// of its spans.
func (s *Store) backfill(ctx context.Context, tx pgx.Tx) error {
	var d store.Deltas
	rows, err := tx.Query(ctx, `SELECT start_time, coalesce((SELECT `+spanTenant+` FROM `+s.withOrigin()+`
			WHERE s.trace_id = t.trace_id LIMIT 1), ''), status, duration_ms, count(*)
		FROM `+s.traces+` t GROUP BY 1, 2, 3, 4`)
	if err != nil {
		return fmt.Errorf("backfill rollups: %w", err)
	}
	var st store.TraceStat
	var n int64
	_, err = pgx.ForEachRow(rows, []any{&st.StartTime, &st.Tenant, &st.Status, &st.DurationMS, &n}, func() error {
		d.AddTraces(&st, n)
		return nil
	})
	if err != nil {
		return fmt.Errorf("backfill rollups: %w", err)
	}
	rows, err = tx.Query(ctx, s.llmUsageSQL("true"))
	if err != nil {
		return fmt.Errorf("backfill rollups: %w", err)
	}
	var minute, tenant string
	var u model.Usage
	_, err = pgx.ForEachRow(rows, []any{&minute, &tenant, &u.Model, &u.Calls, &u.Input, &u.Output, &u.Total}, func() error {
		c := u
		d.SpanStored(minute, tenant, &c)
		return nil
	})
	if err != nil {
		return fmt.Errorf("backfill rollups: %w", err)
	}
	return s.addRollups(ctx, tx, &d, nil)
}

func scanUsage(rows pgx.Rows, out *store.Summary) error {
	var u model.Usage
	_, err := pgx.ForEachRow(rows, []any{&u.Model, &u.Calls, &u.Input, &u.Output, &u.Total}, func() error {
		if u.Calls != 0 {
			out.Models = store.MergeModels(out.Models, u)
		}
		return nil
	})
	return err
}
