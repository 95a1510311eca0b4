package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/kern-agents/trace-gateway/internal/model"
	"github.com/kern-agents/trace-gateway/internal/store"
)

// maxAttempts bounds how often Write runs a batch whose transaction failed in
// a way that is safe to repeat (deadlock, serialization failure, a pooled
// connection found broken before anything was sent).
const maxAttempts = 3

// Write stores spans in one transaction:
//  1. store the resources and scopes not stored yet (model.Origin);
//  2. insert the rows of traces not stored yet, computed from the batch in
//     Go (store.DeriveTraces), and lock the rows of the others, in trace_id
//     order; record the usual origin of the new ones and read that of all
//     (store.UsualOrigins);
//  3. merge the batch's rows into the locked ones (store.Merge in SQL),
//     when there are any;
//  4. COPY the spans straight into the table, each referencing its origin
//     only when it is not its trace's usual one (store.StoredAttributes),
//     then append their ids to the delivery log and add the rollups.
//
// Statements 1-2 go in one round trip. Step 4 assumes every span id is new,
// which is what senders do; when one is stored already (an SDK re-sending,
// or a concurrent writer of the same span), the COPY fails on the primary
// key and the write runs again the slow way: the batch is staged, the spans
// not stored yet are inserted and logged, and the rows of the batch's traces
// are derived again from what is stored, so a span that was not inserted
// never counts.
//
// Within the batch the first span with a given span id wins; across batches
// the stored one does. Spans without CreatedAt get the time of the write.
func (s *Store) Write(ctx context.Context, spans []model.Span) error {
	_, err := s.WriteLogged(ctx, spans)
	return err
}

// WriteLogged implements store.LoggedWriter.
func (s *Store) WriteLogged(ctx context.Context, spans []model.Span) ([]string, error) {
	if len(spans) == 0 {
		return nil, nil
	}
	if s.closed.Load() {
		return nil, errClosed
	}
	now := model.FormatTime(time.Now())
	batch, traceIDs := dedupe(spans, now)
	rows := store.DeriveTraces(batch)
	origins := s.origins.New(batch)
	var err error
	stage := false
	for attempt := 1; ; attempt++ {
		var logged []string
		logged, err = s.write(ctx, batch, traceIDs, rows, origins, now, stage)
		if err == nil {
			s.origins.Stored(origins)
			return logged, nil
		}
		if errors.Is(err, errSpanStored) && !stage {
			stage = true // not a failure: the batch repeats a stored span
			continue
		}
		if attempt == maxAttempts || !retryable(err) || ctx.Err() != nil {
			break
		}
		s.retries.Add(1)
	}
	return nil, classify(fmt.Errorf("postgres store: write %d spans of %d traces: %w", len(batch), len(traceIDs), err))
}

// write runs one attempt and returns the span ids it added to the delivery
// log.
func (s *Store) write(ctx context.Context, batch []model.Span, traceIDs []string, rows []store.TraceRow, origins []*model.Origin, now string, stage bool) ([]string, error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Release()
	logged, err := s.writeTx(ctx, conn.Conn(), batch, traceIDs, rows, origins, now, stage)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42P01" && strings.Contains(pgErr.Message, stageTable) {
		// The session lost its staging table (DISCARD TEMP, or a pooler
		// that moved us to another server session): make it and go again.
		if _, err := conn.Exec(ctx, stageDDL); err != nil {
			return nil, fmt.Errorf("create staging table: %w", err)
		}
		logged, err = s.writeTx(ctx, conn.Conn(), batch, traceIDs, rows, origins, now, stage)
	}
	return logged, err
}

func (s *Store) writeTx(ctx context.Context, conn *pgx.Conn, batch []model.Span, traceIDs []string, rows []store.TraceRow, origins []*model.Origin, now string, stage bool) ([]string, error) {
	var logged []string
	err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		// The write statements take arrays whose values never change the
		// best plan, but PostgreSQL plans a prepared statement afresh for
		// each execution while the custom plan looks cheaper, and planning
		// the unnest() statements was about a fifth of the server's CPU per
		// batch (BenchmarkWrite). Only this transaction: the API's queries
		// on the same pool keep their custom plans.
		b.Queue(setGenericPlans)
		if len(origins) > 0 {
			b.Queue(s.q.insertOrigins, originArgs(origins, now)...)
		}
		b.Queue(s.q.insertTraces, append(traceArgs(rows), now)...)
		b.Queue(s.q.usualOrigins, usualArgs(batch, traceIDs)...)
		res := tx.SendBatch(ctx, b)
		if _, err := res.Exec(); err != nil {
			res.Close()
			return fmt.Errorf("set plan cache mode: %w", err)
		}
		if len(origins) > 0 {
			if _, err := res.Exec(); err != nil {
				res.Close()
				return fmt.Errorf("insert resources: %w", err)
			}
		}
		var deltas store.Deltas
		tenants := store.Tenants(batch)
		inserted := make(map[string]struct{}, len(rows))
		if err := scanStats(res, &deltas, tenants, false, inserted); err != nil {
			res.Close()
			return fmt.Errorf("insert traces: %w", err)
		}
		usual, err := scanUsual(res, len(traceIDs))
		if err != nil {
			res.Close()
			return fmt.Errorf("usual origins of traces: %w", err)
		}
		if err := res.Close(); err != nil {
			return err
		}
		// Rows the insert did not return were stored already (and are now
		// locked): only those are merged, in a statement of their own,
		// usually none, so a batch of new traces costs no merge at all.
		if len(inserted) < len(rows) {
			stored := make([]store.TraceRow, 0, len(rows)-len(inserted))
			for i := range rows {
				if _, ok := inserted[rows[i].TraceID]; !ok {
					stored = append(stored, rows[i])
				}
			}
			b := &pgx.Batch{}
			b.Queue(s.q.mergeTraces, traceArgs(stored)...)
			res := tx.SendBatch(ctx, b)
			if err := scanStats(res, &deltas, tenants, true, nil); err != nil {
				res.Close()
				return fmt.Errorf("merge traces: %w", err)
			}
			if err := res.Close(); err != nil {
				return err
			}
		}

		if !stage {
			// The usual case: every span is new, so the batch is copied
			// straight into the table and logged whole.
			if err := copySpans(ctx, tx, s.spansID, s.spansCopy, batch, usual); err != nil {
				var pgErr *pgconn.PgError
				if errors.As(err, &pgErr) && pgErr.Code == "23505" {
					return fmt.Errorf("copy spans: %w: %w", errSpanStored, err)
				}
				return fmt.Errorf("copy spans: %w", err)
			}
			ids := make([]string, len(batch))
			for i := range batch {
				ids[i] = batch[i].SpanID
			}
			logged = ids
			for i := range batch {
				deltas.SpanStored(batch[i].StartTime, store.TenantOf(&batch[i]), batch[i].Usage)
			}
			return s.addRollups(ctx, tx, &deltas, func(b *pgx.Batch) {
				b.Queue(s.q.appendLog, len(ids), ids)
			})
		}

		// Some spans were stored already (an SDK re-sending): stage the
		// batch, insert what is new, and derive the batch's traces again
		// from what is stored, dropping the rows of traces left without a
		// span (their spans' ids were taken by spans of other traces).
		// Only the spans inserted count in the rollups.
		if err := copySpans(ctx, tx, pgx.Identifier{stageTable}, s.stageCopy, batch, usual); err != nil {
			return fmt.Errorf("stage spans: %w", err)
		}
		var added int
		if err := tx.QueryRow(ctx, s.q.insertSpans).Scan(&added, &logged); err != nil {
			return fmt.Errorf("insert spans: %w", err)
		}
		ins := make(map[string]struct{}, len(logged))
		for _, id := range logged {
			ins[id] = struct{}{}
		}
		for i := range batch {
			if _, ok := ins[batch[i].SpanID]; ok {
				deltas.SpanStored(batch[i].StartTime, store.TenantOf(&batch[i]), batch[i].Usage)
			}
		}
		if err := s.rederive(ctx, tx, traceIDs, &deltas, tenants); err != nil {
			return err
		}
		return s.addRollups(ctx, tx, &deltas, nil)
	})
	return logged, err
}

const setGenericPlans = `SET LOCAL plan_cache_mode = force_generic_plan`

// spanRows are the batch's rows for COPY, in spanColumns order; usual maps
// trace ids to their usual origin (store.StoredAttributes).
func spanRows(batch []model.Span, usual map[string]string) pgx.CopyFromSource {
	return pgx.CopyFromSlice(len(batch), func(i int) ([]any, error) {
		sp := &batch[i]
		return []any{
			sp.SpanID, sp.TraceID, nullable(sp.ParentSpanID), sp.Name, sp.SpanKind, sp.StatusCode,
			nullable(sp.StatusMessage), sp.StartTime, sp.EndTime, sp.DurationMS,
			jsonOrNil(store.StoredAttributes(sp, usual[sp.TraceID])), sp.CreatedAt,
		}, nil
	})
}

// usualArgs are queries.usualOrigins' arguments: the batch's trace ids and
// the origin it proposes for each.
func usualArgs(batch []model.Span, traceIDs []string) []any {
	proposed := store.UsualOrigins(batch)
	ids := make([]string, len(traceIDs))
	for i, t := range traceIDs {
		ids[i] = proposed[t]
	}
	return []any{traceIDs, ids}
}

// scanUsual reads queries.usualOrigins' rows: every trace of the batch.
func scanUsual(res pgx.BatchResults, n int) (map[string]string, error) {
	rows, err := res.Query()
	if err != nil {
		return nil, err
	}
	usual := make(map[string]string, n)
	var id, origin string
	_, err = pgx.ForEachRow(rows, []any{&id, &origin}, func() error {
		usual[id] = origin
		return nil
	})
	if err == nil && len(usual) != n {
		err = fmt.Errorf("%d of %d traces have one", len(usual), n)
	}
	return usual, err
}

// scanStats reads the rows a trace statement returned into the rollup
// deltas: (trace id, start, status, duration) of new rows, or the trace id
// and (start, status, duration) of the old and the new row when changed.
// ids, when not nil, collects the trace ids read.
func scanStats(res pgx.BatchResults, d *store.Deltas, tenants map[string]string, changed bool, ids map[string]struct{}) error {
	rows, err := res.Query()
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var old, cur store.TraceStat
		if changed {
			err = rows.Scan(&id, &old.StartTime, &old.Status, &old.DurationMS, &cur.StartTime, &cur.Status, &cur.DurationMS)
		} else {
			err = rows.Scan(&id, &cur.StartTime, &cur.Status, &cur.DurationMS)
		}
		if err != nil {
			return err
		}
		old.Tenant, cur.Tenant = tenants[id], tenants[id]
		if ids != nil {
			ids[id] = struct{}{}
		}
		if changed {
			d.TraceChanged(&old, &cur)
		} else {
			d.TraceChanged(nil, &cur)
		}
	}
	return rows.Err()
}

// addRollups adds a write's deltas to the per-minute rollups, last in the
// transaction so their hot rows stay locked only until the commit; first
// queues what first adds to the same round trip.
func (s *Store) addRollups(ctx context.Context, tx pgx.Tx, d *store.Deltas, first func(*pgx.Batch)) error {
	b := &pgx.Batch{}
	if first != nil {
		first(b)
	}
	if keys, n := d.TraceRows(); len(keys) > 0 {
		minutes, tenants, statuses, buckets := make([]string, len(keys)), make([]string, len(keys)), make([]string, len(keys)), make([]int32, len(keys))
		for i, k := range keys {
			minutes[i], tenants[i], statuses[i], buckets[i] = k.Minute, k.Tenant, k.Status, int32(k.Bucket)
		}
		b.Queue(s.q.rollupTraces, minutes, tenants, statuses, buckets, n)
	}
	if keys, u := d.ModelRows(); len(keys) > 0 {
		minutes, tenants, models := make([]string, len(keys)), make([]string, len(keys)), make([]string, len(keys))
		calls, in, out, total := make([]int64, len(keys)), make([]int64, len(keys)), make([]int64, len(keys)), make([]int64, len(keys))
		for i, k := range keys {
			minutes[i], tenants[i], models[i] = k.Minute, k.Tenant, k.Model
			calls[i], in[i], out[i], total[i] = u[i].Calls, u[i].Input, u[i].Output, u[i].Total
		}
		b.Queue(s.q.rollupModels, minutes, tenants, models, calls, in, out, total)
	}
	if b.Len() == 0 {
		return nil
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("add rollups: %w", err)
	}
	return nil
}

// rederive overwrites the rows of traceIDs with what their stored spans
// give, and deletes those without any.
func (s *Store) rederive(ctx context.Context, tx pgx.Tx, traceIDs []string, d *store.Deltas, tenants map[string]string) error {
	rs, err := tx.Query(ctx, s.q.spansOf, traceIDs)
	if err != nil {
		return fmt.Errorf("read stored spans: %w", err)
	}
	var stored []model.Span
	for rs.Next() {
		var sp model.Span
		if err := rs.Scan(&sp.SpanID, &sp.TraceID, &sp.ParentSpanID, &sp.Name, &sp.StatusCode,
			&sp.StartTime, &sp.EndTime, &sp.Attributes); err != nil {
			rs.Close()
			return fmt.Errorf("read stored spans: %w", err)
		}
		stored = append(stored, sp)
	}
	if err := rs.Err(); err != nil {
		return fmt.Errorf("read stored spans: %w", err)
	}
	b := &pgx.Batch{}
	b.Queue(s.q.updateTraces, traceArgs(store.DeriveTraces(stored))...)
	b.Queue(s.q.deleteEmpty, traceIDs)
	res := tx.SendBatch(ctx, b)
	defer res.Close()
	if err := scanStats(res, d, tenants, true, nil); err != nil {
		return fmt.Errorf("update traces: %w", err)
	}
	rows, err := res.Query()
	if err != nil {
		return fmt.Errorf("delete empty traces: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var old store.TraceStat
		if err := rows.Scan(&id, &old.StartTime, &old.Status, &old.DurationMS); err != nil {
			return fmt.Errorf("delete empty traces: %w", err)
		}
		old.Tenant = tenants[id]
		d.TraceChanged(&old, nil)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("delete empty traces: %w", err)
	}
	rows.Close()
	return res.Close()
}

// traceArgs are the arrays queries.batchRows unnests.
func traceArgs(rows []store.TraceRow) []any {
	n := len(rows)
	tid, name, status, start, end := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	hasRoot, rootStart, rootSpan := make([]bool, n), make([]string, n), make([]string, n)
	ids := make([][]string, len(model.TraceIDColumns))
	for i := range ids {
		ids[i] = make([]string, n)
	}
	for i := range rows {
		r := &rows[i]
		tid[i], name[i], status[i], start[i], end[i] = r.TraceID, r.Name, r.Status, r.StartTime, r.EndTime
		hasRoot[i], rootStart[i], rootSpan[i] = r.HasRoot, r.RootStart, r.RootSpanID
		for j, f := range r.IDs.Fields() {
			ids[j][i] = *f
		}
	}
	args := []any{tid, name, status, start, end, hasRoot, rootStart, rootSpan}
	for _, l := range ids {
		args = append(args, l)
	}
	return args
}

// originArgs are the arrays queries.insertOrigins unnests.
func originArgs(origins []*model.Origin, now string) []any {
	ids, res, scope, tenant := make([]string, len(origins)), make([]*string, len(origins)), make([]*string, len(origins)), make([]string, len(origins))
	for i, o := range origins {
		ids[i], tenant[i] = o.ID, o.Tenant
		if o.Resource != nil {
			v := string(o.Resource)
			res[i] = &v
		}
		if o.Scope != nil {
			v := string(o.Scope)
			scope[i] = &v
		}
	}
	return []any{ids, res, scope, tenant, now}
}

// dedupe keeps the first span of each span id, fills CreatedAt, and returns
// the batch's trace ids sorted.
func dedupe(spans []model.Span, now string) ([]model.Span, []string) {
	seen := make(map[string]struct{}, len(spans))
	traces := make(map[string]struct{})
	out := make([]model.Span, 0, len(spans))
	for _, sp := range spans {
		if _, dup := seen[sp.SpanID]; dup {
			continue
		}
		seen[sp.SpanID] = struct{}{}
		traces[sp.TraceID] = struct{}{}
		if sp.CreatedAt == "" {
			sp.CreatedAt = now
		}
		out = append(out, sp)
	}
	ids := make([]string, 0, len(traces))
	for id := range traces {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return out, ids
}

func retryable(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		// Deadlock, serialization failure, and a unique violation the
		// staged insert can still meet (two writers inserting the same
		// new origin or trace row race on its key; run again, it is
		// stored).
		return pgErr.Code == "40P01" || pgErr.Code == "40001" || pgErr.Code == "23505"
	}
	return pgconn.SafeToRetry(err)
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func jsonOrNil(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return b
}
