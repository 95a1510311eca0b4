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
// for this transaction only), the spans are inserted first (skipping span
// ids already stored), and then every trace of the batch is upserted from all
// its stored spans in one statement. The span ids the Write inserted are
// appended to the delivery log (one row) for the fan-out. Within the batch
// the first span with a given span id wins; across batches the stored one
// does. Spans without CreatedAt get the time of the write.
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
				nullable(string(sp.Attributes)), created)
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
	if _, err := tx.StmtContext(ctx, s.upsert).ExecContext(ctx, string(idsJSON), now); err != nil {
		return nil, fmt.Errorf("upsert traces: %w", err)
	}
	return inserted, tx.Commit()
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
	st, err := s.w.PrepareContext(ctx, upsertTraces(s.traces, s.spans))
	if err != nil {
		return fmt.Errorf("prepare trace upsert: %w", err)
	}
	s.upsert = st
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

// upsertTraces computes the rows of the traces whose ids are in the JSON
// array ?1 from all their stored spans and inserts or updates them
// (created_at ?2 only for new rows). The rules are those of
// storetest.ExpectedTrace:
//   - spans rank by (root first, start_time, span_id). min() over the key
//     rank || start_time || X'01' || span_id || X'01' || value picks the value
//     of the best-ranked span in one pass (X'01' sorts below every character
//     of the ids and times, so the key orders like the tuple), and pick()
//     cuts the value out again;
//   - the id columns take the value of their attribute key where it is a
//     non-empty JSON string;
//   - duration_ms is computed in whole microseconds from the fixed-width
//     model.TimeLayout strings, truncated to ms, never negative.
//
// A trace whose spans all had ids taken by other traces has no stored span
// and so gets no row.
func upsertTraces(traces, spans string) string {
	var ids, mins, picks, idCols []string
	for _, k := range model.TraceIDKeys {
		path := strings.ReplaceAll(`$."`+k.Key+`"`, "'", "''")
		ids = append(ids, fmt.Sprintf(
			"CASE WHEN json_type(attributes, '%[1]s') = 'text' THEN json_extract(attributes, '%[1]s') END AS %[2]s", path, k.Column))
		mins = append(mins, fmt.Sprintf("min(CASE WHEN %[1]s <> '' THEN k || %[1]s END) AS %[1]s", k.Column))
		picks = append(picks, pick(k.Column))
		idCols = append(idCols, k.Column)
	}
	micros := func(col string) string {
		return fmt.Sprintf("(unixepoch(substr(%[1]s, 1, 19)) * 1000000 + CAST(substr(%[1]s, 21, 6) AS INTEGER))", col)
	}
	derived := append([]string{"name", "status", "start_time", "end_time", "duration_ms"}, idCols...)
	set := make([]string, len(derived))
	for i, c := range derived {
		set[i] = c + " = excluded." + c
	}
	return `INSERT INTO ` + traces + ` (trace_id, ` + strings.Join(derived, ", ") + `, created_at)
		SELECT trace_id, ` + pick("name") + `, status, start_time, end_time,
			max(0, coalesce((` + micros("end_time") + ` - ` + micros("start_time") + `) / 1000, 0)),
			` + strings.Join(picks, ", ") + `, ?2
		FROM (
			SELECT trace_id,
				min(k || name) AS name,
				CASE WHEN max(status_code = '` + model.StatusError + `') THEN '` + model.StatusError + `'
					WHEN max(parent_span_id IS NULL) THEN '` + model.StatusOK + `'
					ELSE '` + model.StatusUnset + `' END AS status,
				min(start_time) AS start_time,
				max(end_time) AS end_time,
				` + strings.Join(mins, ",\n\t\t\t\t") + `
			FROM (
				SELECT trace_id, parent_span_id, name, status_code, start_time, end_time,
					(CASE WHEN parent_span_id IS NULL THEN '0' ELSE '1' END) || start_time || char(1) || span_id || char(1) AS k,
					` + strings.Join(ids, ",\n\t\t\t\t\t") + `
				FROM ` + spans + `
				WHERE trace_id IN (SELECT value FROM json_each(?1))
			)
			GROUP BY trace_id
		)
		WHERE true
		ON CONFLICT (trace_id) DO UPDATE SET ` + strings.Join(set, ", ") + `
		WHERE (` + strings.Join(derived, ", ") + `) IS NOT (excluded.` + strings.Join(derived, ", excluded.") + `)`
}

// pick cuts the value out of a min(k || value) key: what follows the second
// X'01'.
func pick(col string) string {
	rest := fmt.Sprintf("substr(%[1]s, instr(%[1]s, char(1)) + 1)", col)
	return fmt.Sprintf("substr(%[1]s, instr(%[1]s, char(1)) + 1)", rest)
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}
