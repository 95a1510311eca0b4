package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/kern-agents/trace-gateway/internal/store"
)

// Forget implements store.DeliveryLog. Locking the cursor row makes
// claimers of dest skip it until the transaction ends.
func (s *Store) Forget(ctx context.Context, dest string) (store.Forgotten, error) {
	var f store.Forgotten
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		f, err = s.forget(ctx, tx, dest)
		return err
	})
	if errors.Is(err, store.ErrDestinationRunning) {
		return store.Forgotten{}, fmt.Errorf("postgres store: forget %s: %w", dest, err)
	}
	return f, s.wrap("forget "+dest, err)
}

func (s *Store) forget(ctx context.Context, tx pgx.Tx, dest string) (store.Forgotten, error) {
	var f store.Forgotten
	if _, err := tx.Exec(ctx, `SELECT 1 FROM `+s.dq.cursors+` WHERE destination = $1 FOR UPDATE`, dest); err != nil {
		return f, err
	}
	rows, err := tx.Query(ctx, `SELECT owner FROM `+s.dq.workers+` WHERE destination = $1 AND valid_until > now()
		UNION SELECT owner FROM `+s.dq.claims+` WHERE destination = $1 AND lease_until > now() ORDER BY 1`, dest)
	if err != nil {
		return f, err
	}
	owners, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return f, err
	}
	if len(owners) > 0 {
		return f, fmt.Errorf("%w: %s", store.ErrDestinationRunning, strings.Join(owners, ", "))
	}
	b, err := s.backlog(ctx, tx, dest)
	if err != nil {
		return f, err
	}
	var addressed int64
	err = tx.QueryRow(ctx, `WITH c AS (DELETE FROM `+s.dq.cursors+` WHERE destination = $1 RETURNING 1),
		cl AS (DELETE FROM `+s.dq.claims+` WHERE destination = $1 RETURNING 1),
		l AS (DELETE FROM `+s.dq.log+` WHERE destination = $1 RETURNING span_count),
		d AS (DELETE FROM `+s.dq.deadLetters+` WHERE destination = $1 RETURNING span_count),
		w AS (DELETE FROM `+s.dq.workers+` WHERE destination = $1 RETURNING 1)
		SELECT EXISTS (SELECT 1 FROM c), (SELECT count(*) FROM cl), (SELECT coalesce(sum(span_count), 0) FROM l),
			(SELECT count(*) FROM d), (SELECT coalesce(sum(span_count), 0) FROM d), (SELECT count(*) FROM w)`, dest).
		Scan(&f.Cursor, &f.Claims, &addressed, &f.DeadLetters, &f.DeadLetterSpans, &f.Reports)
	// Without a cursor nothing was claimed: every row addressed to dest
	// was still to be delivered.
	f.Spans = b.Spans
	if !f.Cursor {
		f.Spans = addressed
	}
	return f, err
}
