package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/kern-agents/trace-gateway/internal/model"
	"github.com/kern-agents/trace-gateway/internal/store"
)

// The fan-out's tables (see store.DeliveryLog), in the store's schema.
//
// Commit order. Concurrent Writes take ids from one sequence but may commit
// in another order: a reader that saw id 7 may later see id 6 appear. A
// cursor over ids alone would skip 6 for good. Each row therefore also
// records the id of the transaction that wrote it (tx_id, xid8, never wraps),
// and readers only consume rows written by transactions older than the
// oldest one still running (tx_id < pg_snapshot_xmin(pg_current_snapshot())):
// every such transaction has ended, so no row can still appear among them.
// Rows are consumed in (tx_id, id) order, and a cursor is a (tx_id, id)
// position: any row that commits later has tx_id >= that xmin and so sorts
// after every row already consumed. The price is latency: that xmin is the
// oldest transaction still open anywhere on the server that has written
// something (read-only transactions have no xid and do not count), and
// delivery waits for it to end. There is no write-path cost beyond the row
// itself, and Writes never wait for each other.
//
// Alternatives considered: per-destination claim rows written by each Write
// (write cost grows with the number of destinations); one serialised
// commit-order step (an advisory lock held to commit serialises all Writes);
// gap timeouts on the id sequence (a transaction slower than the timeout is
// skipped: loss).
//
// Replicas share a destination's work through claims: a replica locks the
// destination's cursor row (FOR UPDATE SKIP LOCKED, so others move on), reads
// the next rows, records them as a claim with a lease and moves the cursor,
// in one short transaction. It exports outside any transaction, renewing the
// lease, and deletes the claim once the destination accepted the spans. A
// claim whose lease expired (its replica died) is taken over by the next
// replica to look, resuming after the spans it recorded as done.

// claimScan bounds the log rows one Claim reads.
const claimScan = 1000

// replayRowSpans is how many span ids one replay log row lists.
const replayRowSpans = 1000

type deliveryQueries struct {
	log, cursors, claims, deadLetters, workers string // qualified table names
}

func newDeliveryQueries(schema string) deliveryQueries {
	return deliveryQueries{
		log:         pgx.Identifier{schema, "gateway_delivery_log"}.Sanitize(),
		cursors:     pgx.Identifier{schema, "gateway_cursors"}.Sanitize(),
		claims:      pgx.Identifier{schema, "gateway_claims"}.Sanitize(),
		deadLetters: pgx.Identifier{schema, "gateway_dead_letters"}.Sanitize(),
		workers:     pgx.Identifier{schema, "gateway_destination_workers"}.Sanitize(),
	}
}

func (q deliveryQueries) ddl(schema string) []string {
	index := func(name, table, cols string) string {
		return "CREATE INDEX IF NOT EXISTS " + pgx.Identifier{name}.Sanitize() + " ON " + table + " (" + cols + ")"
	}
	return []string{
		`CREATE TABLE IF NOT EXISTS ` + q.log + ` (
			id BIGSERIAL PRIMARY KEY,
			tx_id xid8 NOT NULL DEFAULT pg_current_xact_id(),
			created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
			destination VARCHAR,
			span_count INTEGER NOT NULL,
			span_ids VARCHAR[] NOT NULL
		)`,
		index("ix_gateway_delivery_log_tx_id", q.log, "tx_id, id"),
		`CREATE TABLE IF NOT EXISTS ` + q.cursors + ` (
			destination VARCHAR NOT NULL PRIMARY KEY,
			tx_id xid8 NOT NULL,
			log_id BIGINT NOT NULL,
			updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
		)`,
		`CREATE TABLE IF NOT EXISTS ` + q.claims + ` (
			id BIGSERIAL PRIMARY KEY,
			destination VARCHAR NOT NULL,
			from_tx xid8 NOT NULL,
			from_id BIGINT NOT NULL,
			to_tx xid8 NOT NULL,
			to_id BIGINT NOT NULL,
			span_count INTEGER NOT NULL,
			done INTEGER NOT NULL DEFAULT 0,
			owner VARCHAR NOT NULL,
			attempts INTEGER NOT NULL DEFAULT 1,
			lease_until TIMESTAMPTZ NOT NULL,
			oldest TIMESTAMPTZ NOT NULL
		)`,
		index("ix_gateway_claims_destination", q.claims, "destination, lease_until"),
		`CREATE TABLE IF NOT EXISTS ` + q.deadLetters + ` (
			id BIGSERIAL PRIMARY KEY,
			destination VARCHAR NOT NULL,
			span_count INTEGER NOT NULL,
			span_ids VARCHAR[] NOT NULL,
			reason TEXT NOT NULL,
			created_at TIMESTAMPTZ NOT NULL DEFAULT now()
		)`,
		index("ix_gateway_dead_letters_destination", q.deadLetters, "destination, id"),
		`CREATE TABLE IF NOT EXISTS ` + q.workers + ` (
			destination VARCHAR NOT NULL,
			owner VARCHAR NOT NULL,
			circuit VARCHAR NOT NULL,
			failures INTEGER NOT NULL,
			retries BIGINT NOT NULL,
			last_error TEXT,
			last_error_at TIMESTAMPTZ,
			updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
			valid_until TIMESTAMPTZ NOT NULL,
			PRIMARY KEY (destination, owner)
		)`,
	}
}

// xid renders a Go int64 as an xid8 parameter and back: pgx has no xid8
// codec, and real transaction ids stay far below 2^63.
const (
	toXid   = `::bigint::text::xid8`
	fromXid = `::text::bigint`
)

var (
	_ store.DeliveryLog = (*Store)(nil)
	_ store.Pruner      = (*Store)(nil)
)

func (s *Store) wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	return classify(fmt.Errorf("postgres store: %s: %w", op, err))
}

func seconds(d time.Duration) float64 { return d.Seconds() }

// EnsureCursor implements store.DeliveryLog: the new cursor sits after the
// last row no running transaction can still add to.
func (s *Store) EnsureCursor(ctx context.Context, dest string) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO `+s.dq.cursors+` (destination, tx_id, log_id)
		SELECT $1, coalesce(h.tx_id, '0'::xid8), coalesce(h.id, 0)
		FROM (SELECT 1) one LEFT JOIN (
			SELECT tx_id, id FROM `+s.dq.log+`
			WHERE tx_id < pg_snapshot_xmin(pg_current_snapshot())
			ORDER BY tx_id DESC, id DESC LIMIT 1) h ON true
		ON CONFLICT (destination) DO NOTHING`, dest)
	return s.wrap("cursor of "+dest, err)
}

func (s *Store) claimColumns() string {
	return `id, destination, owner, from_tx` + fromXid + `, from_id, to_tx` + fromXid + `, to_id, span_count, done, oldest, attempts`
}

// claimFields are the scan targets of claimColumns, in its order.
func claimFields(c *store.Claim) []any {
	return []any{&c.ID, &c.Destination, &c.Owner, &c.From.Tx, &c.From.ID, &c.To.Tx, &c.To.ID,
		&c.Spans, &c.Done, &c.Oldest, &c.Attempts}
}

func scanClaim(row pgx.Row) (*store.Claim, error) {
	var c store.Claim
	if err := row.Scan(claimFields(&c)...); err != nil {
		return nil, err
	}
	return &c, nil
}

// Claim implements store.DeliveryLog. A claim costs two statements in one
// transaction: one locks the cursor and reads the rows after it (and tells
// whether an expired claim waits to be taken over), one records the claim,
// moves the cursor and returns the claim's span ids. Claims are most of the
// fan-out's statements: every destination makes its own, several a second.
func (s *Store) Claim(ctx context.Context, dest string, req store.ClaimRequest) (*store.Claim, time.Duration, error) {
	if s.closed.Load() {
		return nil, 0, errClosed
	}
	for takeOver := false; ; takeOver = true {
		var c *store.Claim
		var wait time.Duration
		var expired bool
		err := pgx.BeginFunc(ctx, s.progress, func(tx pgx.Tx) error {
			var err error
			c, wait, expired, err = s.claimNew(ctx, tx, dest, req, !takeOver)
			return err
		})
		if err != nil || !expired {
			return c, wait, s.wrap("claim for "+dest, err)
		}
		c, err = s.takeOver(ctx, dest, req)
		if err != nil || c != nil {
			return c, 0, err
		}
		// Another replica took it first: claim new rows after all.
	}
}

// takeOver takes the oldest claim of dest whose lease expired, if any.
func (s *Store) takeOver(ctx context.Context, dest string, req store.ClaimRequest) (*store.Claim, error) {
	c, err := scanClaim(s.progress.QueryRow(ctx, `UPDATE `+s.dq.claims+` c
		SET owner = $2, lease_until = now() + make_interval(secs => $3), attempts = c.attempts + 1
		FROM (SELECT id FROM `+s.dq.claims+` WHERE destination = $1 AND lease_until < now()
			ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED) x
		WHERE c.id = x.id
		RETURNING c.`+s.claimColumns(), dest, req.Owner, seconds(req.Lease)))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	return c, s.wrap("take over expired claim for "+dest, err)
}

// claimNew claims the next rows after dest's cursor. When checkExpired is
// set and dest has a claim whose lease expired, it claims nothing and
// reports expired: that claim is to be taken over first.
func (s *Store) claimNew(ctx context.Context, tx pgx.Tx, dest string, req store.ClaimRequest, checkExpired bool) (*store.Claim, time.Duration, bool, error) {
	expiredCol := `false`
	if checkExpired {
		expiredCol = `EXISTS (SELECT 1 FROM ` + s.dq.claims + ` WHERE destination = $1 AND lease_until < now())`
	}
	// The cursor is locked with SKIP LOCKED: no row back means another
	// replica is claiming right now (or EnsureCursor was not called); look
	// again shortly.
	rows, err := tx.Query(ctx, `SELECT c.tx_id`+fromXid+`, c.log_id, `+expiredCol+`,
		l.tx_id`+fromXid+`, l.id, l.span_count, l.created_at, now()
		FROM (SELECT tx_id, log_id FROM `+s.dq.cursors+` WHERE destination = $1 FOR UPDATE SKIP LOCKED) c
		LEFT JOIN LATERAL (SELECT tx_id, id, span_count, created_at FROM `+s.dq.log+`
			WHERE (tx_id, id) > (c.tx_id, c.log_id) AND tx_id < pg_snapshot_xmin(pg_current_snapshot())
			AND (destination IS NULL OR destination = $1)
			ORDER BY tx_id, id LIMIT $2) l ON true
		ORDER BY l.tx_id, l.id`, dest, claimScan)
	if err != nil {
		return nil, 0, false, fmt.Errorf("read log: %w", err)
	}
	var (
		cur      store.Position
		locked   bool
		expired  bool
		logRows  []store.LogRow
		dbNow    time.Time
		rowTx    pgtype.Int8
		rowID    pgtype.Int8
		rowSpans pgtype.Int4
		rowAt    pgtype.Timestamptz
	)
	for rows.Next() {
		if err := rows.Scan(&cur.Tx, &cur.ID, &expired, &rowTx, &rowID, &rowSpans, &rowAt, &dbNow); err != nil {
			rows.Close()
			return nil, 0, false, fmt.Errorf("read log: %w", err)
		}
		locked = true
		if rowID.Valid {
			logRows = append(logRows, store.LogRow{Pos: store.Position{Tx: rowTx.Int64, ID: rowID.Int64},
				Spans: int(rowSpans.Int32), CreatedAt: rowAt.Time})
		}
	}
	if err := rows.Err(); err != nil {
		return nil, 0, false, fmt.Errorf("read log: %w", err)
	}
	if !locked {
		return nil, 0, false, nil
	}
	if expired {
		return nil, 0, true, nil
	}
	// Ages are measured on the database's clock, which stamped the rows.
	n, spans, wait := store.PickClaim(logRows, len(logRows) == claimScan, req, dbNow)
	if n == 0 {
		return nil, wait, false, nil
	}
	to := logRows[n-1].Pos
	rows, err = tx.Query(ctx, `WITH ins AS (
			INSERT INTO `+s.dq.claims+`
			(destination, from_tx, from_id, to_tx, to_id, span_count, owner, lease_until, oldest)
			VALUES ($1, $2`+toXid+`, $3, $4`+toXid+`, $5, $6, $7, now() + make_interval(secs => $8), $9)
			RETURNING `+s.claimColumns()+`
		), cur AS (
			UPDATE `+s.dq.cursors+` SET tx_id = $4`+toXid+`, log_id = $5, updated_at = now()
			WHERE destination = $1
		)
		SELECT ins.*, l.id IS NOT NULL, l.span_ids FROM ins LEFT JOIN LATERAL (
			SELECT tx_id, id, span_ids FROM `+s.dq.log+`
			WHERE (tx_id, id) > ($2`+toXid+`, $3) AND (tx_id, id) <= ($4`+toXid+`, $5)
			AND (destination IS NULL OR destination = $1)) l ON true
		ORDER BY l.tx_id, l.id`,
		dest, cur.Tx, cur.ID, to.Tx, to.ID, spans, req.Owner, seconds(req.Lease), logRows[0].CreatedAt)
	if err != nil {
		return nil, 0, false, fmt.Errorf("insert claim: %w", err)
	}
	var c store.Claim
	c.SpanIDs = [][]string{}
	for rows.Next() {
		var part []string
		var row bool
		if err := rows.Scan(append(claimFields(&c), &row, &part)...); err != nil {
			rows.Close()
			return nil, 0, false, fmt.Errorf("insert claim: %w", err)
		}
		if row {
			c.SpanIDs = append(c.SpanIDs, part)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, 0, false, fmt.Errorf("insert claim: %w", err)
	}
	if c.ID == 0 {
		return nil, 0, false, errors.New("insert claim: no row returned")
	}
	return &c, 0, false, nil
}

// ClaimSpanIDs implements store.DeliveryLog.
func (s *Store) ClaimSpanIDs(ctx context.Context, c *store.Claim) ([][]string, error) {
	rows, err := s.progress.Query(ctx, `SELECT span_ids FROM `+s.dq.log+`
		WHERE (tx_id, id) > ($1`+toXid+`, $2) AND (tx_id, id) <= ($3`+toXid+`, $4)
		AND (destination IS NULL OR destination = $5)
		ORDER BY tx_id, id`, c.From.Tx, c.From.ID, c.To.Tx, c.To.ID, c.Destination)
	if err != nil {
		return nil, s.wrap("span ids of claim", err)
	}
	var ids [][]string
	var part []string
	_, err = pgx.ForEachRow(rows, []any{&part}, func() error {
		ids = append(ids, part)
		part = nil // the next row scans into a new slice
		return nil
	})
	return ids, s.wrap("span ids of claim", err)
}

// Spans implements store.DeliveryLog.
func (s *Store) Spans(ctx context.Context, ids []string) ([]model.Span, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	rows, err := s.progress.Query(ctx, `SELECT s.span_id, s.trace_id, s.parent_span_id, s.name, s.span_kind, s.status_code,
		s.status_message, s.start_time, s.end_time, s.duration_ms, s.attributes::text, s.created_at,
		r.id, r.resource::text, r.scope::text
		FROM `+s.withOrigin()+`
		WHERE s.span_id = ANY($1::varchar[])`, ids)
	if err != nil {
		return nil, s.wrap("load spans", err)
	}
	out := make([]model.Span, 0, len(ids))
	var sp model.Span
	var parent, msg, attrs, oid, res, scope pgtype.Text
	origins := store.OriginCache{}
	_, err = pgx.ForEachRow(rows, []any{&sp.SpanID, &sp.TraceID, &parent, &sp.Name, &sp.SpanKind, &sp.StatusCode,
		&msg, &sp.StartTime, &sp.EndTime, &sp.DurationMS, &attrs, &sp.CreatedAt, &oid, &res, &scope}, func() error {
		sp.ParentSpanID, sp.StatusMessage, sp.Attributes = parent.String, msg.String, nil
		if attrs.Valid {
			sp.Attributes = []byte(attrs.String)
		}
		sp.Origin = origins.Get(oid.String, res, scope)
		out = append(out, sp)
		return nil
	})
	return out, s.wrap("load spans", err)
}

func (s *Store) ownClaim(ctx context.Context, op, query string, args ...any) error {
	tag, err := s.progress.Exec(ctx, query, args...)
	if err != nil {
		return s.wrap(op, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("postgres store: %s: %w", op, store.ErrLeaseLost)
	}
	return nil
}

// Renew implements store.DeliveryLog.
func (s *Store) Renew(ctx context.Context, c *store.Claim, done int, lease time.Duration) error {
	return s.ownClaim(ctx, fmt.Sprintf("renew claim %d", c.ID), `UPDATE `+s.dq.claims+`
		SET lease_until = now() + make_interval(secs => $1), done = $2
		WHERE id = $3 AND owner = $4 AND attempts = $5`, seconds(lease), done, c.ID, c.Owner, c.Attempts)
}

// Complete implements store.DeliveryLog.
func (s *Store) Complete(ctx context.Context, c *store.Claim) error {
	return s.ownClaim(ctx, fmt.Sprintf("complete claim %d", c.ID), `DELETE FROM `+s.dq.claims+`
		WHERE id = $1 AND owner = $2 AND attempts = $3`, c.ID, c.Owner, c.Attempts)
}

// Release implements store.DeliveryLog.
func (s *Store) Release(ctx context.Context, c *store.Claim, done int) error {
	return s.ownClaim(ctx, fmt.Sprintf("release claim %d", c.ID), `UPDATE `+s.dq.claims+`
		SET lease_until = '-infinity', done = $1
		WHERE id = $2 AND owner = $3 AND attempts = $4`, done, c.ID, c.Owner, c.Attempts)
}

// Backlog implements store.DeliveryLog.
func (s *Store) Backlog(ctx context.Context, dest string) (store.Backlog, error) {
	b, err := s.backlog(ctx, s.progress, dest)
	return b, s.wrap("backlog of "+dest, err)
}

// querier is a pool or a transaction.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func (s *Store) backlog(ctx context.Context, q querier, dest string) (store.Backlog, error) {
	var b store.Backlog
	var logOldest, claimOldest pgtype.Timestamptz
	var claimSpans int64
	err := q.QueryRow(ctx, `SELECT
		(SELECT coalesce(sum(l.span_count), 0) FROM `+s.dq.log+` l WHERE (l.tx_id, l.id) > (c.tx_id, c.log_id)
			AND (l.destination IS NULL OR l.destination = $1)),
		(SELECT min(l.created_at) FROM `+s.dq.log+` l WHERE (l.tx_id, l.id) > (c.tx_id, c.log_id)
			AND (l.destination IS NULL OR l.destination = $1)),
		(SELECT coalesce(sum(span_count - done), 0) FROM `+s.dq.claims+` WHERE destination = $1),
		(SELECT min(oldest) FROM `+s.dq.claims+` WHERE destination = $1)
		FROM `+s.dq.cursors+` c WHERE c.destination = $1`, dest).Scan(&b.Spans, &logOldest, &claimSpans, &claimOldest)
	if errors.Is(err, pgx.ErrNoRows) {
		return b, nil
	}
	if err != nil {
		return b, err
	}
	b.Spans += claimSpans
	for _, o := range []pgtype.Timestamptz{logOldest, claimOldest} {
		if o.Valid && (b.Oldest.IsZero() || o.Time.Before(b.Oldest)) {
			b.Oldest = o.Time
		}
	}
	return b, nil
}

// AddDeadLetter implements store.DeliveryLog.
func (s *Store) AddDeadLetter(ctx context.Context, dl store.DeadLetter) (int64, error) {
	var id int64
	created := pgtype.Timestamptz{Time: dl.CreatedAt, Valid: !dl.CreatedAt.IsZero()}
	err := s.progress.QueryRow(ctx, `INSERT INTO `+s.dq.deadLetters+` (destination, span_count, span_ids, reason, created_at)
		VALUES ($1, $2, $3, $4, coalesce($5, now())) RETURNING id`,
		dl.Destination, len(dl.SpanIDs), dl.SpanIDs, dl.Reason, created).Scan(&id)
	return id, s.wrap("dead letter for "+dl.Destination, err)
}

// deadLetterWhere matches f; $1 destinations, $2 ids (empty: any).
const deadLetterWhere = ` WHERE (cardinality($1::varchar[]) = 0 OR destination = ANY($1::varchar[]))
	AND (cardinality($2::bigint[]) = 0 OR id = ANY($2::bigint[]))`

func filterArgs(f store.DeadLetterFilter) []any {
	dests, ids := f.Destinations, f.IDs
	if dests == nil {
		dests = []string{}
	}
	if ids == nil {
		ids = []int64{}
	}
	return []any{dests, ids}
}

func limitClause(n int) string {
	if n > 0 {
		return fmt.Sprintf(" LIMIT %d", n)
	}
	return ""
}

// DeadLetters implements store.DeliveryLog.
func (s *Store) DeadLetters(ctx context.Context, f store.DeadLetterFilter) ([]store.DeadLetter, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, destination, span_ids, reason, created_at FROM `+s.dq.deadLetters+
		deadLetterWhere+` ORDER BY id`+limitClause(f.Limit), filterArgs(f)...)
	if err != nil {
		return nil, s.wrap("list dead letters", err)
	}
	var out []store.DeadLetter
	var dl store.DeadLetter
	_, err = pgx.ForEachRow(rows, []any{&dl.ID, &dl.Destination, &dl.SpanIDs, &dl.Reason, &dl.CreatedAt}, func() error {
		out = append(out, dl)
		dl.SpanIDs = nil
		return nil
	})
	return out, s.wrap("list dead letters", err)
}

// Requeue implements store.DeliveryLog: one statement moves the dead letters
// back into the log.
func (s *Store) Requeue(ctx context.Context, f store.DeadLetterFilter) (letters, spans int, err error) {
	err = s.pool.QueryRow(ctx, `WITH d AS (
			DELETE FROM `+s.dq.deadLetters+` WHERE id IN (
				SELECT id FROM `+s.dq.deadLetters+deadLetterWhere+` ORDER BY id`+limitClause(f.Limit)+` FOR UPDATE SKIP LOCKED)
			RETURNING id, destination, span_count, span_ids
		), ins AS (
			INSERT INTO `+s.dq.log+` (destination, span_count, span_ids)
			SELECT destination, span_count, span_ids FROM d ORDER BY id
			RETURNING span_count
		)
		SELECT count(*), coalesce(sum(span_count), 0) FROM ins`, filterArgs(f)...).Scan(&letters, &spans)
	return letters, spans, s.wrap("requeue dead letters", err)
}

// Replay implements store.DeliveryLog: one statement lists the selected
// spans in log rows of replayRowSpans ids.
func (s *Store) Replay(ctx context.Context, dest string, sel store.ReplaySelection) (int, error) {
	cond, arg := "created_at >= $2", any(model.FormatTime(sel.Since))
	if sel.TraceID != "" {
		cond, arg = "trace_id = $2", any(sel.TraceID)
	}
	var total int
	err := s.pool.QueryRow(ctx, fmt.Sprintf(`WITH ins AS (
			INSERT INTO %s (destination, span_count, span_ids)
			SELECT $1, count(*), array_agg(span_id ORDER BY span_id) FROM (
				SELECT span_id, (row_number() OVER (ORDER BY span_id) - 1) / %d AS g FROM %s WHERE %s
			) x GROUP BY g ORDER BY g
			RETURNING span_count
		)
		SELECT coalesce(sum(span_count), 0) FROM ins`, s.dq.log, replayRowSpans, s.spans, cond), dest, arg).Scan(&total)
	return total, s.wrap("replay to "+dest, err)
}

// Trim implements store.DeliveryLog. The low-water mark is the lowest cursor
// of dests and the start of the oldest claim of any destination; cursors are
// read before claims, so a claim made in between starts at or above the
// cursor already read.
func (s *Store) Trim(ctx context.Context, dests []string, limit int) (int64, error) {
	var low *store.Position
	lower := func(p store.Position) {
		if low == nil || p.Tx < low.Tx || (p.Tx == low.Tx && p.ID < low.ID) {
			low = &p
		}
	}
	if len(dests) > 0 {
		rows, err := s.progress.Query(ctx, `SELECT tx_id`+fromXid+`, log_id FROM `+s.dq.cursors+`
			WHERE destination = ANY($1::varchar[])`, dests)
		if err != nil {
			return 0, s.wrap("trim delivery log", err)
		}
		var p store.Position
		if _, err := pgx.ForEachRow(rows, []any{&p.Tx, &p.ID}, func() error { lower(p); return nil }); err != nil {
			return 0, s.wrap("trim delivery log", err)
		}
	}
	// Claims count when they are the listed destinations' or someone holds
	// them (another replica may still run a destination this one dropped);
	// a claim a removed destination handed back on its way out must not pin
	// the log.
	var p store.Position
	err := s.progress.QueryRow(ctx, `SELECT from_tx`+fromXid+`, from_id FROM `+s.dq.claims+`
		WHERE destination = ANY($1::varchar[]) OR lease_until > now()
		ORDER BY from_tx, from_id LIMIT 1`, dests).Scan(&p.Tx, &p.ID)
	switch {
	case err == nil:
		lower(p)
	case !errors.Is(err, pgx.ErrNoRows):
		return 0, s.wrap("trim delivery log", err)
	}
	var tag interface{ RowsAffected() int64 }
	if low == nil {
		// Nobody needs anything that can no longer change.
		tag, err = s.progress.Exec(ctx, `DELETE FROM `+s.dq.log+` WHERE id IN (
			SELECT id FROM `+s.dq.log+` WHERE tx_id < pg_snapshot_xmin(pg_current_snapshot())
			ORDER BY tx_id, id LIMIT $1 FOR UPDATE SKIP LOCKED)`, limit)
	} else {
		tag, err = s.progress.Exec(ctx, `DELETE FROM `+s.dq.log+` WHERE id IN (
			SELECT id FROM `+s.dq.log+` WHERE (tx_id, id) <= ($1`+toXid+`, $2)
			ORDER BY tx_id, id LIMIT $3 FOR UPDATE SKIP LOCKED)`, low.Tx, low.ID, limit)
	}
	if err != nil {
		return 0, s.wrap("trim delivery log", err)
	}
	return tag.RowsAffected(), nil
}

// Prune implements store.Pruner. Each statement deletes at most limit rows
// in its own short transaction; SKIP LOCKED steps around rows a Write or
// another replica holds, which a later round gets.
func (s *Store) Prune(ctx context.Context, cutoff time.Time, limit int) (store.Pruned, error) {
	var p store.Pruned
	c := model.FormatTime(cutoff)
	steps := []struct {
		n     *int64
		what  string
		query string
		arg   any
	}{
		{&p.Spans, "spans", `DELETE FROM ` + s.spans + ` WHERE span_id IN (
			SELECT span_id FROM ` + s.spans + ` WHERE created_at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)`, c},
		// Traces are found by their own age: one emptied above whose row is
		// a little younger than its spans goes in a later round. Locking
		// the trace row first means a Write adding spans to it either
		// committed before (its spans are seen) or waits and then inserts
		// the trace afresh.
		// A trace's usual origin goes with it.
		{&p.Traces, "traces", `WITH gone AS (
			SELECT trace_id FROM ` + s.traces + ` t WHERE created_at < $1
			AND NOT EXISTS (SELECT 1 FROM ` + s.spans + ` x WHERE x.trace_id = t.trace_id)
			LIMIT $2 FOR UPDATE SKIP LOCKED
		), r AS (DELETE FROM ` + s.traceRes + ` WHERE trace_id IN (SELECT trace_id FROM gone))
		DELETE FROM ` + s.traces + ` WHERE trace_id IN (SELECT trace_id FROM gone)`, c},
		{&p.LogRows, "delivery log", `DELETE FROM ` + s.dq.log + ` WHERE id IN (
			SELECT id FROM ` + s.dq.log + ` WHERE created_at < $1 ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED)`, cutoff},
		{&p.DeadLetters, "dead letters", `DELETE FROM ` + s.dq.deadLetters + ` WHERE id IN (
			SELECT id FROM ` + s.dq.deadLetters + ` WHERE created_at < $1 ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED)`, cutoff},
	}
	var rollupTraces, rollupModels int64
	for _, t := range []struct {
		n     *int64
		table string
	}{{&rollupTraces, store.RollupTracesTable}, {&rollupModels, store.RollupModelsTable}} {
		q := pgx.Identifier{s.schema, t.table}.Sanitize()
		steps = append(steps, struct {
			n     *int64
			what  string
			query string
			arg   any
		}{t.n, "rollups", `DELETE FROM ` + q + ` WHERE ctid IN (
			SELECT ctid FROM ` + q + ` WHERE minute COLLATE "C" < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)`, store.Minute(c)})
	}
	for _, st := range steps {
		tag, err := s.progress.Exec(ctx, st.query, st.arg, limit)
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "23503" {
			// A Write committed spans of a trace after this statement
			// looked: the trace is not empty after all, and stays.
			continue
		}
		if err != nil {
			return p, s.wrap("prune "+st.what, err)
		}
		*st.n = tag.RowsAffected()
	}
	p.Rollups = rollupTraces + rollupModels
	return p, nil
}
