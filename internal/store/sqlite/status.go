package sqlite

import (
	"context"
	"database/sql"
	"time"

	"github.com/kern-agents/trace-gateway/internal/model"
	"github.com/kern-agents/trace-gateway/internal/store"
)

// RecordWorker implements store.DeliveryLog: the report and the removal of
// this destination's reports that stopped holding more than
// store.WorkerReportKeep ago, in one transaction (one sync).
func (s *Store) RecordWorker(ctx context.Context, r store.WorkerReport) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		t := time.Now()
		if _, err := tx.ExecContext(ctx, `DELETE FROM gateway_destination_workers
			WHERE destination = ? AND owner <> ? AND valid_until < ?`,
			r.Destination, r.Owner, model.FormatTime(t.Add(-store.WorkerReportKeep))); err != nil {
			return err
		}
		var lastAt sql.NullString
		if !r.LastErrorAt.IsZero() {
			lastAt = sql.NullString{String: model.FormatTime(r.LastErrorAt), Valid: true}
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO gateway_destination_workers
			(destination, owner, circuit, failures, retries, last_error, last_error_at, updated_at, valid_until)
			VALUES (?, ?, ?, ?, ?, nullif(?, ''), ?, ?, ?)
			ON CONFLICT (destination, owner) DO UPDATE SET circuit = excluded.circuit, failures = excluded.failures,
				retries = excluded.retries, last_error = excluded.last_error, last_error_at = excluded.last_error_at,
				updated_at = excluded.updated_at, valid_until = excluded.valid_until`,
			r.Destination, r.Owner, r.Circuit, r.Failures, r.Retries, r.LastError, lastAt,
			model.FormatTime(t), model.FormatTime(t.Add(r.ValidFor)))
		return err
	})
	return wrap("report on "+r.Destination, err)
}

// inTx runs fn in a write transaction.
func (s *Store) inTx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // no-op after Commit
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit()
}

// KnownDestinations implements store.DeliveryLog.
func (s *Store) KnownDestinations(ctx context.Context) ([]string, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT destination FROM gateway_cursors
		UNION SELECT destination FROM gateway_claims
		UNION SELECT destination FROM gateway_dead_letters
		UNION SELECT destination FROM gateway_destination_workers
		ORDER BY 1`)
	if err != nil {
		return nil, wrap("list destinations", err)
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, wrap("list destinations", err)
		}
		names = append(names, n)
	}
	return names, wrap("list destinations", rows.Err())
}

// Status implements store.DeliveryLog.
func (s *Store) Status(ctx context.Context, dest string) (store.DestinationStatus, error) {
	st, err := status(ctx, s.r, dest)
	return st, wrap("status of "+dest, err)
}

func status(ctx context.Context, q querier, dest string) (store.DestinationStatus, error) {
	st := store.DestinationStatus{Destination: dest, Now: time.Now()}
	var err error
	if st.Backlog, err = backlog(ctx, q, dest); err != nil {
		return st, err
	}
	now := model.FormatTime(st.Now)
	// Queued: replay and requeue rows after the cursor, and the part of
	// those inside claims not recorded as done (a claim's done counts its
	// span ids in log order, so a running sum per claim tells which rows it
	// covers).
	var queuedLog, queuedClaims int64
	err = q.QueryRowContext(ctx, `SELECT
		EXISTS (SELECT 1 FROM gateway_cursors WHERE destination = ?1),
		(SELECT coalesce(sum(l.span_count), 0) FROM gateway_delivery_log l JOIN gateway_cursors c ON c.destination = ?1
			WHERE l.destination = ?1 AND l.id > c.log_id),
		(SELECT coalesce(sum(span_count - min(span_count, max(0, done - (cum - span_count)))), 0) FROM (
			SELECT c.done, l.destination AS ldest, l.span_count,
				sum(l.span_count) OVER (PARTITION BY c.id ORDER BY l.id) AS cum
			FROM gateway_claims c JOIN gateway_delivery_log l
				ON l.id > c.from_id AND l.id <= c.to_id AND (l.destination IS NULL OR l.destination = c.destination)
			WHERE c.destination = ?1) WHERE ldest = ?1),
		(SELECT count(*) FROM gateway_claims WHERE destination = ?1),
		(SELECT count(*) FROM gateway_claims WHERE destination = ?1 AND lease_until > ?2),
		(SELECT count(*) FROM gateway_dead_letters WHERE destination = ?1),
		(SELECT coalesce(sum(span_count), 0) FROM gateway_dead_letters WHERE destination = ?1)`, dest, now).
		Scan(&st.Started, &queuedLog, &queuedClaims, &st.Claims, &st.Held, &st.DeadLetters, &st.DeadLetterSpans)
	if err != nil {
		return st, err
	}
	st.Queued = queuedLog + queuedClaims
	rows, err := q.QueryContext(ctx, `SELECT owner, circuit, failures, retries, coalesce(last_error, ''),
		coalesce(last_error_at, ''), updated_at, valid_until > ? FROM gateway_destination_workers
		WHERE destination = ? ORDER BY updated_at DESC, owner`, now, dest)
	if err != nil {
		return st, err
	}
	defer rows.Close()
	for rows.Next() {
		r := store.WorkerReport{Destination: dest}
		var lastAt, updated string
		if err := rows.Scan(&r.Owner, &r.Circuit, &r.Failures, &r.Retries, &r.LastError, &lastAt, &updated, &r.Live); err != nil {
			return st, err
		}
		r.LastErrorAt, r.UpdatedAt = parseTime(lastAt), parseTime(updated)
		st.Workers = append(st.Workers, r)
	}
	return st, rows.Err()
}
