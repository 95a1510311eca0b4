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
)

// maxAttempts bounds how often Write runs a batch whose transaction failed in
// a way that is safe to repeat (deadlock, serialization failure, a pooled
// connection found broken before anything was sent).
const maxAttempts = 3

// Write stores spans in one transaction:
//  1. COPY the batch into the connection's staging table;
//  2. insert the rows of traces not stored yet (computed from the batch) and
//     lock the rows of the others, in trace_id order;
//  3. insert the spans, skipping span ids already stored, and append the
//     ids it inserted to the delivery log (same statement, see queries.go);
//  4. recompute the rows of the traces that already existed from all their
//     stored spans.
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
	var err error
	for attempt := 1; ; attempt++ {
		var logged []string
		logged, err = s.write(ctx, batch, traceIDs, now)
		if err == nil {
			return logged, nil
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
func (s *Store) write(ctx context.Context, batch []model.Span, traceIDs []string, now string) ([]string, error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Release()
	logged, err := s.writeTx(ctx, conn.Conn(), batch, traceIDs, now)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42P01" && strings.Contains(pgErr.Message, stageTable) {
		// The session lost its staging table (DISCARD TEMP, or a pooler
		// that moved us to another server session): make it and go again.
		if _, err := conn.Exec(ctx, stageDDL); err != nil {
			return nil, fmt.Errorf("create staging table: %w", err)
		}
		logged, err = s.writeTx(ctx, conn.Conn(), batch, traceIDs, now)
	}
	return logged, err
}

func (s *Store) writeTx(ctx context.Context, conn *pgx.Conn, batch []model.Span, traceIDs []string, now string) ([]string, error) {
	var logged []string
	err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{stageTable}, spanColumns, pgx.CopyFromSlice(len(batch), func(i int) ([]any, error) {
			sp := &batch[i]
			return []any{
				sp.SpanID, sp.TraceID, nullable(sp.ParentSpanID), sp.Name, sp.SpanKind, sp.StatusCode,
				nullable(sp.StatusMessage), sp.StartTime, sp.EndTime, sp.DurationMS, jsonOrNil(sp.Attributes), sp.CreatedAt,
			}, nil
		})); err != nil {
			return fmt.Errorf("stage spans: %w", err)
		}

		// Both statements go in one round trip.
		b := &pgx.Batch{}
		b.Queue(s.q.insertTraces, now)
		b.Queue(s.q.insertSpans)
		res := tx.SendBatch(ctx, b)
		rows, err := res.Query()
		if err != nil {
			res.Close()
			return fmt.Errorf("insert traces: %w", err)
		}
		inserted, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			res.Close()
			return fmt.Errorf("insert traces: %w", err)
		}
		var added int
		if err := res.QueryRow().Scan(&added, &logged); err != nil {
			res.Close()
			return fmt.Errorf("insert spans: %w", err)
		}
		if err := res.Close(); err != nil {
			return err
		}

		if added == len(batch) {
			// Every span was new, so the new traces' rows are right as
			// inserted; only traces stored before need recomputing.
			if existing := without(traceIDs, inserted); len(existing) > 0 {
				if _, err := tx.Exec(ctx, s.q.updateTraces, existing); err != nil {
					return fmt.Errorf("update traces: %w", err)
				}
			}
			return nil
		}
		// Some spans were stored already: recompute every trace of the
		// batch, and drop the rows of new traces that got no span at all
		// (their spans' ids were taken by spans of other traces).
		if _, err := tx.Exec(ctx, s.q.updateTraces, traceIDs); err != nil {
			return fmt.Errorf("update traces: %w", err)
		}
		if len(inserted) > 0 {
			if _, err := tx.Exec(ctx, s.q.deleteEmpty, inserted); err != nil {
				return fmt.Errorf("delete empty traces: %w", err)
			}
		}
		return nil
	})
	return logged, err
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

// without returns the ids not in drop.
func without(ids, drop []string) []string {
	if len(drop) == 0 {
		return ids
	}
	set := make(map[string]struct{}, len(drop))
	for _, id := range drop {
		set[id] = struct{}{}
	}
	out := make([]string, 0, len(ids)-len(drop))
	for _, id := range ids {
		if _, ok := set[id]; !ok {
			out = append(out, id)
		}
	}
	return out
}

func retryable(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code == "40P01" || pgErr.Code == "40001" // deadlock, serialization failure
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
