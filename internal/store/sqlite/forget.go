package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/kern-agents/trace-gateway/internal/model"
	"github.com/kern-agents/trace-gateway/internal/store"
)

// Forget implements store.DeliveryLog, in one write transaction (SQLite's
// single writer: no claim can start meanwhile).
func (s *Store) Forget(ctx context.Context, dest string) (store.Forgotten, error) {
	var f store.Forgotten
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var err error
		f, err = forget(ctx, tx, dest)
		return err
	})
	if errors.Is(err, store.ErrDestinationRunning) {
		return store.Forgotten{}, fmt.Errorf("sqlite store: forget %s: %w", dest, err)
	}
	if err != nil {
		return store.Forgotten{}, wrap("forget "+dest, err)
	}
	return f, nil
}

func forget(ctx context.Context, tx *sql.Tx, dest string) (store.Forgotten, error) {
	var f store.Forgotten
	now := model.FormatTime(time.Now())
	rows, err := tx.QueryContext(ctx, `SELECT owner FROM gateway_destination_workers WHERE destination = ?1 AND valid_until > ?2
		UNION SELECT owner FROM gateway_claims WHERE destination = ?1 AND lease_until > ?2 ORDER BY 1`, dest, now)
	if err != nil {
		return f, err
	}
	var owners []string
	for rows.Next() {
		var o string
		if err := rows.Scan(&o); err != nil {
			rows.Close()
			return f, err
		}
		owners = append(owners, o)
	}
	if err := rows.Close(); err != nil {
		return f, err
	}
	if len(owners) > 0 {
		return f, fmt.Errorf("%w: %s", store.ErrDestinationRunning, strings.Join(owners, ", "))
	}
	b, err := backlog(ctx, tx, dest)
	if err != nil {
		return f, err
	}
	var addressed int64
	err = tx.QueryRowContext(ctx, `SELECT
		EXISTS (SELECT 1 FROM gateway_cursors WHERE destination = ?1),
		(SELECT count(*) FROM gateway_claims WHERE destination = ?1),
		(SELECT coalesce(sum(span_count), 0) FROM gateway_delivery_log WHERE destination = ?1),
		(SELECT count(*) FROM gateway_dead_letters WHERE destination = ?1),
		(SELECT coalesce(sum(span_count), 0) FROM gateway_dead_letters WHERE destination = ?1),
		(SELECT count(*) FROM gateway_destination_workers WHERE destination = ?1)`, dest).
		Scan(&f.Cursor, &f.Claims, &addressed, &f.DeadLetters, &f.DeadLetterSpans, &f.Reports)
	if err != nil {
		return f, err
	}
	for _, table := range []string{"gateway_cursors", "gateway_claims", "gateway_delivery_log", "gateway_dead_letters", "gateway_destination_workers"} {
		if _, err := tx.ExecContext(ctx, `DELETE FROM `+table+` WHERE destination = ?`, dest); err != nil {
			return f, fmt.Errorf("delete from %s: %w", table, err)
		}
	}
	// Without a cursor nothing was claimed: every row addressed to dest
	// was still to be delivered.
	f.Spans = b.Spans
	if !f.Cursor {
		f.Spans = addressed
	}
	return f, nil
}
