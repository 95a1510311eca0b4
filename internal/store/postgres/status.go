package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/kern-agents/trace-gateway/internal/store"
)

// RecordWorker implements store.DeliveryLog. It runs on the bookkeeping
// pool (synchronous_commit off): a report lost in a database crash is
// replaced by the next one. Reports of this destination that stopped
// holding more than store.WorkerReportKeep ago go in the same statement.
func (s *Store) RecordWorker(ctx context.Context, r store.WorkerReport) error {
	lastAt := pgtype.Timestamptz{Time: r.LastErrorAt, Valid: !r.LastErrorAt.IsZero()}
	_, err := s.progress.Exec(ctx, `WITH gone AS (
			DELETE FROM `+s.dq.workers+` WHERE destination = $1 AND owner <> $2
			AND valid_until < now() - make_interval(secs => $9)
		)
		INSERT INTO `+s.dq.workers+` AS w (destination, owner, circuit, failures, retries, last_error, last_error_at, updated_at, valid_until)
		VALUES ($1, $2, $3, $4, $5, nullif($6, ''), $7, now(), now() + make_interval(secs => $8))
		ON CONFLICT (destination, owner) DO UPDATE SET circuit = excluded.circuit, failures = excluded.failures,
			retries = excluded.retries, last_error = excluded.last_error, last_error_at = excluded.last_error_at,
			updated_at = excluded.updated_at, valid_until = excluded.valid_until`,
		r.Destination, r.Owner, r.Circuit, r.Failures, r.Retries, r.LastError, lastAt,
		seconds(r.ValidFor), seconds(store.WorkerReportKeep))
	return s.wrap("report on "+r.Destination, err)
}

// KnownDestinations implements store.DeliveryLog.
func (s *Store) KnownDestinations(ctx context.Context) ([]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT destination FROM `+s.dq.cursors+`
		UNION SELECT destination FROM `+s.dq.claims+`
		UNION SELECT destination FROM `+s.dq.deadLetters+`
		UNION SELECT destination FROM `+s.dq.workers+`
		ORDER BY 1`)
	if err != nil {
		return nil, s.wrap("list destinations", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	return names, s.wrap("list destinations", err)
}

// Status implements store.DeliveryLog.
func (s *Store) Status(ctx context.Context, dest string) (store.DestinationStatus, error) {
	st, err := s.status(ctx, s.pool, dest)
	return st, s.wrap("status of "+dest, err)
}

func (s *Store) status(ctx context.Context, q querier, dest string) (store.DestinationStatus, error) {
	st := store.DestinationStatus{Destination: dest}
	var err error
	if st.Backlog, err = s.backlog(ctx, q, dest); err != nil {
		return st, err
	}
	// Queued: replay and requeue rows after the cursor, and the part of
	// those inside claims not recorded as done (a claim's done counts its
	// span ids in log order, so a running sum per claim tells which rows it
	// covers).
	var queuedLog, queuedClaims int64
	err = q.QueryRow(ctx, `SELECT
		EXISTS (SELECT 1 FROM `+s.dq.cursors+` WHERE destination = $1),
		(SELECT coalesce(sum(l.span_count), 0) FROM `+s.dq.log+` l JOIN `+s.dq.cursors+` c ON c.destination = $1
			WHERE l.destination = $1 AND (l.tx_id, l.id) > (c.tx_id, c.log_id)),
		(SELECT coalesce(sum(x.span_count - least(x.span_count, greatest(0, x.done - (x.cum - x.span_count)))), 0)::bigint FROM (
			SELECT c.done, l.destination, l.span_count,
				sum(l.span_count) OVER (PARTITION BY c.id ORDER BY l.tx_id, l.id) AS cum
			FROM `+s.dq.claims+` c JOIN `+s.dq.log+` l
				ON (l.tx_id, l.id) > (c.from_tx, c.from_id) AND (l.tx_id, l.id) <= (c.to_tx, c.to_id)
				AND (l.destination IS NULL OR l.destination = c.destination)
			WHERE c.destination = $1) x WHERE x.destination = $1),
		(SELECT count(*) FROM `+s.dq.claims+` WHERE destination = $1),
		(SELECT count(*) FROM `+s.dq.claims+` WHERE destination = $1 AND lease_until > now()),
		(SELECT count(*) FROM `+s.dq.deadLetters+` WHERE destination = $1),
		(SELECT coalesce(sum(span_count), 0) FROM `+s.dq.deadLetters+` WHERE destination = $1),
		now()`, dest).Scan(&st.Started, &queuedLog, &queuedClaims, &st.Claims, &st.Held,
		&st.DeadLetters, &st.DeadLetterSpans, &st.Now)
	if err != nil {
		return st, err
	}
	st.Queued = queuedLog + queuedClaims
	rows, err := q.Query(ctx, `SELECT owner, circuit, failures, retries, coalesce(last_error, ''), last_error_at,
		updated_at, valid_until > now() FROM `+s.dq.workers+` WHERE destination = $1 ORDER BY updated_at DESC, owner`, dest)
	if err != nil {
		return st, err
	}
	var r store.WorkerReport
	var lastAt pgtype.Timestamptz
	_, err = pgx.ForEachRow(rows, []any{&r.Owner, &r.Circuit, &r.Failures, &r.Retries, &r.LastError, &lastAt,
		&r.UpdatedAt, &r.Live}, func() error {
		r.Destination, r.LastErrorAt = dest, lastAt.Time
		st.Workers = append(st.Workers, r)
		return nil
	})
	return st, err
}
