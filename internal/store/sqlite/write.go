package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/kern-agents/trace-gateway/internal/model"
	"github.com/kern-agents/trace-gateway/internal/store"
)

const spanColumns = `span_id, trace_id, parent_span_id, name, span_kind, status_code,
	status_message, start_time, end_time, duration_ms, attributes, created_at`

const nSpanColumns = 12

// maxRows is the largest multi-row INSERT; a batch is cut into pieces of
// maxRows, then of powers of two, so at most log2(maxRows)+1 statements
// are ever prepared.
const maxRows = 256

// Write stores spans in one transaction. SQLite has one writer, so there is
// nothing to lock: foreign keys are checked at commit (defer_foreign_keys,
// for this transaction only). The rows of the batch's traces are read, the
// spans inserted (skipping span ids already stored), and each trace row
// merged with what the batch gives in Go (store.Merge), so a write never
// reads the spans stored before; when some span was stored already, the
// rows are derived again from what is stored. The span ids the Write
// inserted are appended to the delivery log (one row) for the fan-out.
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
	logged, err := s.write(ctx, spans, now)
	if err != nil {
		return nil, classify(fmt.Errorf("sqlite store: write %d spans: %w", len(spans), err))
	}
	return logged, nil
}

// write stores spans and returns the ids it added to the delivery log.
func (s *Store) write(ctx context.Context, spans []model.Span, now string) ([]string, error) {
	traceSet := map[string]struct{}{}
	for i := range spans {
		traceSet[spans[i].TraceID] = struct{}{}
	}
	traceIDs := make([]string, 0, len(traceSet))
	for id := range traceSet {
		traceIDs = append(traceIDs, id)
	}
	slices.Sort(traceIDs)
	idsJSON, err := json.Marshal(traceIDs)
	if err != nil {
		return nil, err
	}

	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback() //nolint:errcheck // no-op after Commit
	if _, err := tx.ExecContext(ctx, `PRAGMA defer_foreign_keys = ON`); err != nil {
		return nil, err
	}
	origins := s.origins.New(spans)
	for _, o := range origins {
		if _, err := tx.StmtContext(ctx, s.origin).ExecContext(ctx, o.ID, nullBytes(o.Resource), nullBytes(o.Scope), nullable(o.Tenant), now); err != nil {
			return nil, fmt.Errorf("insert resource: %w", err)
		}
	}
	stored, err := s.storedRows(ctx, tx, string(idsJSON))
	if err != nil {
		return nil, err
	}
	usual, err := s.usualOrigins(ctx, tx, spans, string(idsJSON))
	if err != nil {
		return nil, err
	}
	// ON CONFLICT DO NOTHING keeps the first of repeated span ids, both
	// within the batch (rows insert in order) and across batches; RETURNING
	// names the rows actually inserted.
	inserted := make([]string, 0, len(spans))
	for rest := spans; len(rest) > 0; {
		n := maxRows
		for n > len(rest) {
			n /= 2
		}
		stmt := s.inserts[n]
		args := make([]any, 0, n*nSpanColumns)
		for i := range rest[:n] {
			sp := &rest[i]
			created := sp.CreatedAt
			if created == "" {
				created = now
			}
			args = append(args, sp.SpanID, sp.TraceID, nullable(sp.ParentSpanID), sp.Name, sp.SpanKind,
				sp.StatusCode, nullable(sp.StatusMessage), sp.StartTime, sp.EndTime, sp.DurationMS,
				nullable(string(store.StoredAttributes(sp, usual[sp.TraceID]))), created)
		}
		if inserted, err = insertSpans(ctx, tx.StmtContext(ctx, stmt), args, inserted); err != nil {
			return nil, fmt.Errorf("insert spans: %w", err)
		}
		rest = rest[n:]
	}
	// The delivery log lists the spans this Write added, not those already
	// stored, so a span an SDK re-sends is not fanned out again.
	if len(inserted) > 0 {
		ids, err := json.Marshal(inserted)
		if err != nil {
			return nil, err
		}
		if _, err := tx.StmtContext(ctx, s.logRow).ExecContext(ctx, now, len(inserted), string(ids)); err != nil {
			return nil, fmt.Errorf("append to delivery log: %w", err)
		}
	}

	var rows []store.TraceRow
	var deltas store.Deltas
	tenants := store.Tenants(spans)
	if len(inserted) == len(spans) {
		rows = store.DeriveTraces(spans)
		for i := range rows {
			if old, ok := stored[rows[i].TraceID]; ok {
				rows[i] = store.Merge(old, rows[i])
			}
		}
		for i := range spans {
			deltas.SpanStored(spans[i].StartTime, store.TenantOf(&spans[i]), spans[i].Usage)
		}
	} else {
		// Some spans were not inserted: derive the rows from what is
		// stored, and drop those of traces left without a span.
		if rows, err = s.derive(ctx, tx, string(idsJSON)); err != nil {
			return nil, err
		}
		empty := `SELECT value FROM json_each(?) AS e
			WHERE NOT EXISTS (SELECT 1 FROM ` + s.spans + ` s WHERE s.trace_id = e.value)`
		if _, err := tx.ExecContext(ctx, `DELETE FROM `+quote(store.TraceResourcesTable)+` WHERE trace_id IN (`+empty+`)`, string(idsJSON)); err != nil {
			return nil, fmt.Errorf("delete empty traces: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM `+s.traces+` WHERE trace_id IN (`+empty+`)`, string(idsJSON)); err != nil {
			return nil, fmt.Errorf("delete empty traces: %w", err)
		}
		derived := make(map[string]bool, len(rows))
		for i := range rows {
			derived[rows[i].TraceID] = true
		}
		for id, old := range stored {
			if !derived[id] {
				deltas.TraceChanged(stat(old, tenants[id]), nil)
			}
		}
		ins := make(map[string]struct{}, len(inserted))
		for _, id := range inserted {
			ins[id] = struct{}{}
		}
		for i := range spans {
			if _, ok := ins[spans[i].SpanID]; ok {
				delete(ins, spans[i].SpanID) // the first of a repeated id is the one stored
				deltas.SpanStored(spans[i].StartTime, store.TenantOf(&spans[i]), spans[i].Usage)
			}
		}
	}
	up := tx.StmtContext(ctx, s.upsert)
	for i := range rows {
		r := &rows[i]
		if old, ok := stored[r.TraceID]; ok {
			deltas.TraceChanged(stat(old, tenants[r.TraceID]), stat(*r, tenants[r.TraceID]))
		} else {
			deltas.TraceChanged(nil, stat(*r, tenants[r.TraceID]))
		}
		args := []any{r.TraceID, r.Name, r.Status, r.StartTime, r.EndTime, store.DurationMS(r.StartTime, r.EndTime)}
		for _, f := range r.IDs.Fields() {
			args = append(args, nullable(*f))
		}
		if _, err := up.ExecContext(ctx, append(args, now)...); err != nil {
			return nil, fmt.Errorf("upsert trace %s: %w", r.TraceID, err)
		}
	}
	if err := s.addRollups(ctx, tx, &deltas); err != nil {
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, err
	}
	s.origins.Stored(origins)
	return inserted, nil
}

// usualOrigins sets the usual origin of the batch's new traces and returns
// that of every trace of the batch (store.UsualOrigins).
func (s *Store) usualOrigins(ctx context.Context, tx *sql.Tx, spans []model.Span, idsJSON string) (map[string]string, error) {
	proposed, err := json.Marshal(store.UsualOrigins(spans))
	if err != nil {
		return nil, err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO `+quote(store.TraceResourcesTable)+` (trace_id, resource_id)
		SELECT key, value FROM json_each(?) WHERE true ON CONFLICT (trace_id) DO NOTHING`, string(proposed)); err != nil {
		return nil, fmt.Errorf("usual origins of traces: %w", err)
	}
	rows, err := tx.QueryContext(ctx, `SELECT trace_id, resource_id FROM `+quote(store.TraceResourcesTable)+`
		WHERE trace_id IN (SELECT value FROM json_each(?))`, idsJSON)
	if err != nil {
		return nil, fmt.Errorf("usual origins of traces: %w", err)
	}
	defer rows.Close()
	usual := make(map[string]string)
	for rows.Next() {
		var id, origin string
		if err := rows.Scan(&id, &origin); err != nil {
			return nil, fmt.Errorf("usual origins of traces: %w", err)
		}
		usual[id] = origin
	}
	return usual, rows.Err()
}

func stat(r store.TraceRow, tenant string) *store.TraceStat {
	return &store.TraceStat{StartTime: r.StartTime, Tenant: tenant, Status: r.Status, DurationMS: store.DurationMS(r.StartTime, r.EndTime)}
}

// addRollups adds a write's deltas to the per-minute rollups.
func (s *Store) addRollups(ctx context.Context, tx *sql.Tx, d *store.Deltas) error {
	return s.addRollupsWith(ctx, tx, d, false)
}

// addRollupsWith adds deltas with the prepared statements, or, during the
// migration (before they are prepared), with plain ones.
func (s *Store) addRollupsWith(ctx context.Context, tx *sql.Tx, d *store.Deltas, unprepared bool) error {
	exec := func(st *sql.Stmt, q string, args ...any) error {
		var err error
		if unprepared {
			_, err = tx.ExecContext(ctx, q, args...)
		} else {
			_, err = tx.StmtContext(ctx, st).ExecContext(ctx, args...)
		}
		if err != nil {
			return fmt.Errorf("add rollups: %w", err)
		}
		return nil
	}
	keys, n := d.TraceRows()
	for i, k := range keys {
		if err := exec(s.rollupTraces, rollupTracesSQL, k.Minute, k.Tenant, k.Status, k.Bucket, n[i]); err != nil {
			return err
		}
	}
	mkeys, u := d.ModelRows()
	for i, k := range mkeys {
		if err := exec(s.rollupModels, rollupModelsSQL, k.Minute, k.Tenant, k.Model, u[i].Calls, u[i].Input, u[i].Output, u[i].Total); err != nil {
			return err
		}
	}
	return nil
}

var (
	rollupTracesSQL = `INSERT INTO ` + quote(store.RollupTracesTable) + ` AS r
		(minute, tenant, status, bucket, traces) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (minute, tenant, status, bucket) DO UPDATE SET traces = r.traces + excluded.traces`
	rollupModelsSQL = `INSERT INTO ` + quote(store.RollupModelsTable) + ` AS r
		(minute, tenant, model, calls, input_tokens, output_tokens, total_tokens) VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (minute, tenant, model) DO UPDATE SET calls = r.calls + excluded.calls,
			input_tokens = r.input_tokens + excluded.input_tokens, output_tokens = r.output_tokens + excluded.output_tokens,
			total_tokens = r.total_tokens + excluded.total_tokens`
)

// storedRows reads the stored rows of the traces in the JSON array ids, as
// store.TraceRow with their stored root (the first, when several).
func (s *Store) storedRows(ctx context.Context, tx *sql.Tx, ids string) (map[string]store.TraceRow, error) {
	rows, err := tx.QueryContext(ctx, `SELECT trace_id, name, status, start_time, end_time, `+strings.Join(model.TraceIDColumns, ", ")+`
		FROM `+s.traces+` WHERE trace_id IN (SELECT value FROM json_each(?))`, ids)
	if err != nil {
		return nil, fmt.Errorf("read trace rows: %w", err)
	}
	out := map[string]store.TraceRow{}
	for rows.Next() {
		var r store.TraceRow
		var idv [6]sql.NullString
		if err := rows.Scan(&r.TraceID, &r.Name, &r.Status, &r.StartTime, &r.EndTime,
			&idv[0], &idv[1], &idv[2], &idv[3], &idv[4], &idv[5]); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read trace rows: %w", err)
		}
		for i, f := range r.IDs.Fields() {
			*f = idv[i].String
		}
		out[r.TraceID] = r
	}
	if err := rows.Close(); err != nil {
		return nil, fmt.Errorf("read trace rows: %w", err)
	}
	roots, err := tx.QueryContext(ctx, `SELECT trace_id, start_time, span_id FROM `+s.spans+`
		WHERE coalesce(parent_span_id, '') = '' AND trace_id IN (SELECT value FROM json_each(?))`, ids)
	if err != nil {
		return nil, fmt.Errorf("read roots: %w", err)
	}
	defer roots.Close()
	for roots.Next() {
		var tid, start, sid string
		if err := roots.Scan(&tid, &start, &sid); err != nil {
			return nil, fmt.Errorf("read roots: %w", err)
		}
		r, ok := out[tid]
		if !ok {
			continue
		}
		if !r.HasRoot || start < r.RootStart || (start == r.RootStart && sid < r.RootSpanID) {
			r.HasRoot, r.RootStart, r.RootSpanID = true, start, sid
			out[tid] = r
		}
	}
	return out, roots.Err()
}

// derive returns the rows the stored spans of the traces in the JSON array
// ids give.
func (s *Store) derive(ctx context.Context, tx *sql.Tx, ids string) ([]store.TraceRow, error) {
	rows, err := tx.QueryContext(ctx, `SELECT span_id, trace_id, coalesce(parent_span_id, ''), name, status_code, start_time, end_time,
			CASE WHEN parent_span_id IS NULL THEN attributes END
		FROM `+s.spans+` WHERE trace_id IN (SELECT value FROM json_each(?))`, ids)
	if err != nil {
		return nil, fmt.Errorf("read stored spans: %w", err)
	}
	defer rows.Close()
	var spans []model.Span
	for rows.Next() {
		var sp model.Span
		var attrs sql.NullString
		if err := rows.Scan(&sp.SpanID, &sp.TraceID, &sp.ParentSpanID, &sp.Name, &sp.StatusCode, &sp.StartTime, &sp.EndTime, &attrs); err != nil {
			return nil, fmt.Errorf("read stored spans: %w", err)
		}
		sp.Attributes = []byte(attrs.String)
		spans = append(spans, sp)
	}
	return store.DeriveTraces(spans), rows.Err()
}

// prepare prepares the INSERTs of maxRows, maxRows/2, ..., 1 spans and the
// trace upsert. (Preparing later, inside a write, would wait forever for the
// writer's only connection.)
func (s *Store) prepare(ctx context.Context) error {
	row := "(" + strings.TrimSuffix(strings.Repeat("?,", nSpanColumns), ",") + ")"
	for n := maxRows; n >= 1; n /= 2 {
		q := `INSERT INTO ` + s.spans + ` (` + spanColumns + `) VALUES ` +
			strings.TrimSuffix(strings.Repeat(row+",", n), ",") + ` ON CONFLICT (span_id) DO NOTHING RETURNING span_id`
		st, err := s.w.PrepareContext(ctx, q)
		if err != nil {
			return fmt.Errorf("prepare insert of %d spans: %w", n, err)
		}
		s.inserts[n] = st
	}
	st, err := s.w.PrepareContext(ctx, upsertTrace(s.traces))
	if err != nil {
		return fmt.Errorf("prepare trace upsert: %w", err)
	}
	s.upsert = st
	if s.rollupTraces, err = s.w.PrepareContext(ctx, rollupTracesSQL); err != nil {
		return fmt.Errorf("prepare rollup: %w", err)
	}
	if s.rollupModels, err = s.w.PrepareContext(ctx, rollupModelsSQL); err != nil {
		return fmt.Errorf("prepare rollup: %w", err)
	}
	if s.origin, err = s.w.PrepareContext(ctx, `INSERT INTO `+quote(store.ResourcesTable)+`
		(id, resource, scope, tenant, created_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`); err != nil {
		return fmt.Errorf("prepare resource insert: %w", err)
	}
	if s.logRow, err = s.w.PrepareContext(ctx, insertLog); err != nil {
		return fmt.Errorf("prepare delivery-log insert: %w", err)
	}
	return nil
}

// insertSpans runs one multi-row insert and appends the span ids it
// inserted to ids.
func insertSpans(ctx context.Context, stmt *sql.Stmt, args []any, ids []string) ([]string, error) {
	rows, err := stmt.QueryContext(ctx, args...)
	if err != nil {
		return ids, err
	}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return ids, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Close()
}

// upsertTrace writes one trace row (created_at only when new).
func upsertTrace(traces string) string {
	cols := append([]string{"name", "status", "start_time", "end_time", "duration_ms"}, model.TraceIDColumns...)
	set := make([]string, len(cols))
	for i, c := range cols {
		set[i] = c + " = excluded." + c
	}
	return `INSERT INTO ` + traces + ` (trace_id, ` + strings.Join(cols, ", ") + `, created_at)
		VALUES (?` + strings.Repeat(", ?", len(cols)+1) + `)
		ON CONFLICT (trace_id) DO UPDATE SET ` + strings.Join(set, ", ") + `
		WHERE (` + strings.Join(cols, ", ") + `) IS NOT (excluded.` + strings.Join(cols, ", excluded.") + `)`
}

func nullBytes(b []byte) any {
	if b == nil {
		return nil
	}
	return string(b)
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}
