package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/kern-agents/trace-gateway/internal/model"
	"github.com/kern-agents/trace-gateway/internal/store"
)

// The fan-out's tables (see store.DeliveryLog). SQLite has one writer
// connection, so transactions commit in the order they start and an
// AUTOINCREMENT id is a commit-order cursor: a reader that saw id N has seen
// every row below it. AUTOINCREMENT (not plain ROWID) also guarantees ids are
// never reused after the newest rows are trimmed. Times are model.TimeLayout
// strings, which compare in time order.
var _ store.DeliveryLog = (*Store)(nil)
var _ store.Pruner = (*Store)(nil)

var deliveryDDL = []string{
	`CREATE TABLE IF NOT EXISTS gateway_delivery_log (
		id INTEGER PRIMARY KEY AUTOINCREMENT,
		created_at TEXT NOT NULL,
		destination TEXT,
		span_count INTEGER NOT NULL,
		span_ids TEXT NOT NULL
	)`,
	`CREATE TABLE IF NOT EXISTS gateway_cursors (
		destination TEXT NOT NULL PRIMARY KEY,
		log_id INTEGER NOT NULL,
		updated_at TEXT NOT NULL
	)`,
	`CREATE TABLE IF NOT EXISTS gateway_claims (
		id INTEGER PRIMARY KEY AUTOINCREMENT,
		destination TEXT NOT NULL,
		from_id INTEGER NOT NULL,
		to_id INTEGER NOT NULL,
		span_count INTEGER NOT NULL,
		done INTEGER NOT NULL DEFAULT 0,
		owner TEXT NOT NULL,
		attempts INTEGER NOT NULL DEFAULT 1,
		lease_until TEXT NOT NULL,
		oldest TEXT NOT NULL
	)`,
	`CREATE INDEX IF NOT EXISTS ix_gateway_claims_destination ON gateway_claims (destination, lease_until)`,
	`CREATE TABLE IF NOT EXISTS gateway_dead_letters (
		id INTEGER PRIMARY KEY AUTOINCREMENT,
		destination TEXT NOT NULL,
		span_count INTEGER NOT NULL,
		span_ids TEXT NOT NULL,
		reason TEXT NOT NULL,
		created_at TEXT NOT NULL
	)`,
	`CREATE INDEX IF NOT EXISTS ix_gateway_dead_letters_destination ON gateway_dead_letters (destination, id)`,
	`CREATE TABLE IF NOT EXISTS gateway_destination_workers (
		destination TEXT NOT NULL,
		owner TEXT NOT NULL,
		circuit TEXT NOT NULL,
		failures INTEGER NOT NULL,
		retries INTEGER NOT NULL,
		last_error TEXT,
		last_error_at TEXT,
		updated_at TEXT NOT NULL,
		valid_until TEXT NOT NULL,
		PRIMARY KEY (destination, owner)
	)`,
}

// insertLog appends the delivery-log row of one Write.
const insertLog = `INSERT INTO gateway_delivery_log (created_at, span_count, span_ids) VALUES (?, ?, ?)`

// claimScan bounds the log rows one Claim reads.
const claimScan = 1000

// replayRowSpans is how many span ids one replay log row lists.
const replayRowSpans = 1000

func now() string { return model.FormatTime(time.Now()) }

func parseTime(s string) time.Time {
	t, _ := model.ParseTime(s)
	return t
}

func wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	return classify(fmt.Errorf("sqlite store: %s: %w", op, err))
}

// EnsureCursor implements store.DeliveryLog.
func (s *Store) EnsureCursor(ctx context.Context, dest string) error {
	_, err := s.w.ExecContext(ctx, `INSERT INTO gateway_cursors (destination, log_id, updated_at)
		SELECT ?, coalesce(max(id), 0), ? FROM gateway_delivery_log WHERE true
		ON CONFLICT (destination) DO NOTHING`, dest, now())
	return wrap("cursor of "+dest, err)
}

const claimColumns = `id, destination, owner, from_id, to_id, span_count, done, oldest, attempts`

func scanClaim(row interface{ Scan(...any) error }) (*store.Claim, error) {
	var c store.Claim
	var oldest string
	if err := row.Scan(&c.ID, &c.Destination, &c.Owner, &c.From.ID, &c.To.ID, &c.Spans, &c.Done, &oldest, &c.Attempts); err != nil {
		return nil, err
	}
	c.Oldest = parseTime(oldest)
	return &c, nil
}

// Claim implements store.DeliveryLog.
func (s *Store) Claim(ctx context.Context, dest string, req store.ClaimRequest) (*store.Claim, time.Duration, error) {
	c, wait, err := s.claim(ctx, dest, req)
	return c, wait, wrap("claim for "+dest, err)
}

func (s *Store) claim(ctx context.Context, dest string, req store.ClaimRequest) (*store.Claim, time.Duration, error) {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return nil, 0, err
	}
	defer tx.Rollback() //nolint:errcheck // no-op after Commit
	t := time.Now()
	lease := model.FormatTime(t.Add(req.Lease))

	c, err := scanClaim(tx.QueryRowContext(ctx, `UPDATE gateway_claims SET owner = ?, lease_until = ?, attempts = attempts + 1
		WHERE id = (SELECT id FROM gateway_claims WHERE destination = ? AND lease_until < ? ORDER BY id LIMIT 1)
		RETURNING `+claimColumns, req.Owner, lease, dest, model.FormatTime(t)))
	switch {
	case err == nil:
		return c, 0, tx.Commit()
	case !errors.Is(err, sql.ErrNoRows):
		return nil, 0, fmt.Errorf("take over expired claim: %w", err)
	}

	var cursor int64
	if err := tx.QueryRowContext(ctx, `SELECT log_id FROM gateway_cursors WHERE destination = ?`, dest).Scan(&cursor); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, 0, fmt.Errorf("destination has no cursor (EnsureCursor first)")
		}
		return nil, 0, fmt.Errorf("read cursor: %w", err)
	}
	rows, err := tx.QueryContext(ctx, `SELECT id, span_count, created_at FROM gateway_delivery_log
		WHERE id > ? AND (destination IS NULL OR destination = ?) ORDER BY id LIMIT ?`, cursor, dest, claimScan)
	if err != nil {
		return nil, 0, fmt.Errorf("read log: %w", err)
	}
	var logRows []store.LogRow
	for rows.Next() {
		var r store.LogRow
		var created string
		if err := rows.Scan(&r.Pos.ID, &r.Spans, &created); err != nil {
			rows.Close()
			return nil, 0, fmt.Errorf("read log: %w", err)
		}
		r.CreatedAt = parseTime(created)
		logRows = append(logRows, r)
	}
	if err := rows.Close(); err != nil {
		return nil, 0, fmt.Errorf("read log: %w", err)
	}
	n, spans, wait := store.PickClaim(logRows, len(logRows) == claimScan, req, t)
	if n == 0 {
		return nil, wait, nil
	}
	to := logRows[n-1]
	c, err = scanClaim(tx.QueryRowContext(ctx, `INSERT INTO gateway_claims
		(destination, from_id, to_id, span_count, owner, lease_until, oldest) VALUES (?, ?, ?, ?, ?, ?, ?)
		RETURNING `+claimColumns, dest, cursor, to.Pos.ID, spans, req.Owner, lease, model.FormatTime(logRows[0].CreatedAt)))
	if err != nil {
		return nil, 0, fmt.Errorf("insert claim: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE gateway_cursors SET log_id = ?, updated_at = ? WHERE destination = ?`,
		to.Pos.ID, model.FormatTime(t), dest); err != nil {
		return nil, 0, fmt.Errorf("move cursor: %w", err)
	}
	return c, 0, tx.Commit()
}

// ClaimSpanIDs implements store.DeliveryLog.
func (s *Store) ClaimSpanIDs(ctx context.Context, c *store.Claim) ([][]string, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT span_ids FROM gateway_delivery_log
		WHERE id > ? AND id <= ? AND (destination IS NULL OR destination = ?) ORDER BY id`, c.From.ID, c.To.ID, c.Destination)
	if err != nil {
		return nil, wrap("span ids of claim", err)
	}
	defer rows.Close()
	var ids [][]string
	for rows.Next() {
		var raw string
		if err := rows.Scan(&raw); err != nil {
			return nil, wrap("span ids of claim", err)
		}
		var part []string
		if err := json.Unmarshal([]byte(raw), &part); err != nil {
			return nil, fmt.Errorf("sqlite store: span ids of claim %d: %w", c.ID, err)
		}
		ids = append(ids, part)
	}
	return ids, wrap("span ids of claim", rows.Err())
}

// Spans implements store.DeliveryLog.
func (s *Store) Spans(ctx context.Context, ids []string) ([]model.Span, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	list, err := json.Marshal(ids)
	if err != nil {
		return nil, err
	}
	rows, err := s.r.QueryContext(ctx, `SELECT s.span_id, s.trace_id, s.parent_span_id, s.name, s.span_kind, s.status_code,
		s.status_message, s.start_time, s.end_time, s.duration_ms, s.attributes, s.created_at, r.id, r.resource, r.scope
		FROM `+s.withOrigin()+`
		WHERE s.span_id IN (SELECT value FROM json_each(?))`, string(list))
	if err != nil {
		return nil, wrap("load spans", err)
	}
	defer rows.Close()
	out := make([]model.Span, 0, len(ids))
	origins := store.OriginCache{}
	for rows.Next() {
		var sp model.Span
		var parent, msg, attrs, oid, res, scope sql.NullString
		if err := rows.Scan(&sp.SpanID, &sp.TraceID, &parent, &sp.Name, &sp.SpanKind, &sp.StatusCode,
			&msg, &sp.StartTime, &sp.EndTime, &sp.DurationMS, &attrs, &sp.CreatedAt, &oid, &res, &scope); err != nil {
			return nil, wrap("load spans", err)
		}
		sp.ParentSpanID, sp.StatusMessage = parent.String, msg.String
		if attrs.Valid {
			sp.Attributes = []byte(attrs.String)
		}
		sp.Origin = origins.Get(oid.String, res, scope)
		out = append(out, sp)
	}
	return out, wrap("load spans", rows.Err())
}

func (s *Store) ownClaim(ctx context.Context, op, query string, args ...any) error {
	res, err := s.w.ExecContext(ctx, query, args...)
	if err != nil {
		return wrap(op, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return wrap(op, err)
	} else if n == 0 {
		return fmt.Errorf("sqlite store: %s: %w", op, store.ErrLeaseLost)
	}
	return nil
}

// Renew implements store.DeliveryLog.
func (s *Store) Renew(ctx context.Context, c *store.Claim, done int, lease time.Duration) error {
	return s.ownClaim(ctx, fmt.Sprintf("renew claim %d", c.ID),
		`UPDATE gateway_claims SET lease_until = ?, done = ? WHERE id = ? AND owner = ? AND attempts = ?`,
		model.FormatTime(time.Now().Add(lease)), done, c.ID, c.Owner, c.Attempts)
}

// Complete implements store.DeliveryLog.
func (s *Store) Complete(ctx context.Context, c *store.Claim) error {
	return s.ownClaim(ctx, fmt.Sprintf("complete claim %d", c.ID),
		`DELETE FROM gateway_claims WHERE id = ? AND owner = ? AND attempts = ?`, c.ID, c.Owner, c.Attempts)
}

// Release implements store.DeliveryLog.
func (s *Store) Release(ctx context.Context, c *store.Claim, done int) error {
	return s.ownClaim(ctx, fmt.Sprintf("release claim %d", c.ID),
		`UPDATE gateway_claims SET lease_until = '', done = ? WHERE id = ? AND owner = ? AND attempts = ?`,
		done, c.ID, c.Owner, c.Attempts)
}

// Backlog implements store.DeliveryLog.
func (s *Store) Backlog(ctx context.Context, dest string) (store.Backlog, error) {
	b, err := backlog(ctx, s.r, dest)
	return b, wrap("backlog of "+dest, err)
}

// querier is a pool or a transaction.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func backlog(ctx context.Context, q querier, dest string) (store.Backlog, error) {
	var b store.Backlog
	var logSpans, claimSpans int64
	var logOldest, claimOldest sql.NullString
	err := q.QueryRowContext(ctx, `SELECT coalesce(sum(l.span_count), 0), min(l.created_at)
		FROM gateway_delivery_log l JOIN gateway_cursors c ON c.destination = ?
		WHERE l.id > c.log_id AND (l.destination IS NULL OR l.destination = ?)`, dest, dest).Scan(&logSpans, &logOldest)
	if err != nil {
		return b, err
	}
	err = q.QueryRowContext(ctx, `SELECT coalesce(sum(span_count - done), 0), min(oldest)
		FROM gateway_claims WHERE destination = ?`, dest).Scan(&claimSpans, &claimOldest)
	if err != nil {
		return b, err
	}
	b.Spans = logSpans + claimSpans
	for _, o := range []sql.NullString{logOldest, claimOldest} {
		if t := parseTime(o.String); o.Valid && !t.IsZero() && (b.Oldest.IsZero() || t.Before(b.Oldest)) {
			b.Oldest = t
		}
	}
	return b, nil
}

// AddDeadLetter implements store.DeliveryLog.
func (s *Store) AddDeadLetter(ctx context.Context, dl store.DeadLetter) (int64, error) {
	ids, err := json.Marshal(dl.SpanIDs)
	if err != nil {
		return 0, err
	}
	created := dl.CreatedAt
	if created.IsZero() {
		created = time.Now()
	}
	var id int64
	err = s.w.QueryRowContext(ctx, `INSERT INTO gateway_dead_letters (destination, span_count, span_ids, reason, created_at)
		VALUES (?, ?, ?, ?, ?) RETURNING id`, dl.Destination, len(dl.SpanIDs), string(ids), dl.Reason, model.FormatTime(created)).Scan(&id)
	return id, wrap("dead letter for "+dl.Destination, err)
}

// deadLetterWhere renders f as a WHERE clause over gateway_dead_letters.
func deadLetterWhere(f store.DeadLetterFilter) (string, []any) {
	var conds []string
	var args []any
	if len(f.Destinations) > 0 {
		conds = append(conds, "destination IN ("+strings.TrimSuffix(strings.Repeat("?,", len(f.Destinations)), ",")+")")
		for _, d := range f.Destinations {
			args = append(args, d)
		}
	}
	if len(f.IDs) > 0 {
		conds = append(conds, "id IN ("+strings.TrimSuffix(strings.Repeat("?,", len(f.IDs)), ",")+")")
		for _, id := range f.IDs {
			args = append(args, id)
		}
	}
	if len(conds) == 0 {
		return "", nil
	}
	return " WHERE " + strings.Join(conds, " AND "), args
}

// DeadLetters implements store.DeliveryLog.
func (s *Store) DeadLetters(ctx context.Context, f store.DeadLetterFilter) ([]store.DeadLetter, error) {
	where, args := deadLetterWhere(f)
	q := `SELECT id, destination, span_ids, reason, created_at FROM gateway_dead_letters` + where + ` ORDER BY id`
	if f.Limit > 0 {
		q += fmt.Sprintf(" LIMIT %d", f.Limit)
	}
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, wrap("list dead letters", err)
	}
	defer rows.Close()
	var out []store.DeadLetter
	for rows.Next() {
		var dl store.DeadLetter
		var ids, created string
		if err := rows.Scan(&dl.ID, &dl.Destination, &ids, &dl.Reason, &created); err != nil {
			return nil, wrap("list dead letters", err)
		}
		if err := json.Unmarshal([]byte(ids), &dl.SpanIDs); err != nil {
			return nil, fmt.Errorf("sqlite store: dead letter %d: %w", dl.ID, err)
		}
		dl.CreatedAt = parseTime(created)
		out = append(out, dl)
	}
	return out, wrap("list dead letters", rows.Err())
}

// Requeue implements store.DeliveryLog.
func (s *Store) Requeue(ctx context.Context, f store.DeadLetterFilter) (letters, spans int, err error) {
	where, args := deadLetterWhere(f)
	sel := `SELECT id FROM gateway_dead_letters` + where + ` ORDER BY id`
	if f.Limit > 0 {
		sel += fmt.Sprintf(" LIMIT %d", f.Limit)
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return 0, 0, wrap("requeue dead letters", err)
	}
	defer tx.Rollback() //nolint:errcheck // no-op after Commit
	rows, err := tx.QueryContext(ctx, `INSERT INTO gateway_delivery_log (created_at, destination, span_count, span_ids)
		SELECT ?, destination, span_count, span_ids FROM gateway_dead_letters WHERE id IN (`+sel+`) ORDER BY id
		RETURNING span_count`, append([]any{now()}, args...)...)
	if err != nil {
		return 0, 0, wrap("requeue dead letters", err)
	}
	for rows.Next() {
		var n int
		if err := rows.Scan(&n); err != nil {
			rows.Close()
			return 0, 0, wrap("requeue dead letters", err)
		}
		letters++
		spans += n
	}
	if err := rows.Close(); err != nil {
		return 0, 0, wrap("requeue dead letters", err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM gateway_dead_letters WHERE id IN (`+sel+`)`, args...); err != nil {
		return 0, 0, wrap("requeue dead letters", err)
	}
	return letters, spans, wrap("requeue dead letters", tx.Commit())
}

// Replay implements store.DeliveryLog.
func (s *Store) Replay(ctx context.Context, dest string, sel store.ReplaySelection) (int, error) {
	cond, arg := "created_at >= ?", any(model.FormatTime(sel.Since))
	if sel.TraceID != "" {
		cond, arg = "trace_id = ?", any(sel.TraceID)
	}
	rows, err := s.w.QueryContext(ctx, fmt.Sprintf(`INSERT INTO gateway_delivery_log (created_at, destination, span_count, span_ids)
		SELECT ?, ?, count(*), json_group_array(span_id) FROM (
			SELECT span_id, (row_number() OVER (ORDER BY span_id) - 1) / %d AS g FROM %s WHERE %s
		) GROUP BY g ORDER BY g
		RETURNING span_count`, replayRowSpans, s.spans, cond), now(), dest, arg)
	if err != nil {
		return 0, wrap("replay to "+dest, err)
	}
	defer rows.Close()
	total := 0
	for rows.Next() {
		var n int
		if err := rows.Scan(&n); err != nil {
			return 0, wrap("replay to "+dest, err)
		}
		total += n
	}
	return total, wrap("replay to "+dest, rows.Err())
}

// Trim implements store.DeliveryLog. Rows at or below the low-water mark
// (the lowest cursor of dests, and the start of the oldest claim of any
// destination) are no longer needed by anyone.
func (s *Store) Trim(ctx context.Context, dests []string, limit int) (int64, error) {
	low := int64(-1)
	lower := func(v int64) {
		if low < 0 || v < low {
			low = v
		}
	}
	for _, d := range dests {
		var id int64
		err := s.r.QueryRowContext(ctx, `SELECT log_id FROM gateway_cursors WHERE destination = ?`, d).Scan(&id)
		switch {
		case err == nil:
			lower(id)
		case !errors.Is(err, sql.ErrNoRows):
			return 0, wrap("trim delivery log", err)
		}
	}
	// Claims count when they are the listed destinations' or someone holds
	// them; a claim a removed destination handed back on its way out must
	// not pin the log.
	listed, err := json.Marshal(dests)
	if err != nil {
		return 0, err
	}
	var claimFrom sql.NullInt64
	if err := s.r.QueryRowContext(ctx, `SELECT min(from_id) FROM gateway_claims
		WHERE destination IN (SELECT value FROM json_each(?)) OR lease_until > ?`,
		string(listed), model.FormatTime(time.Now())).Scan(&claimFrom); err != nil {
		return 0, wrap("trim delivery log", err)
	}
	if claimFrom.Valid {
		lower(claimFrom.Int64)
	}
	if low < 0 { // nobody needs anything
		if err := s.r.QueryRowContext(ctx, `SELECT coalesce(max(id), 0) FROM gateway_delivery_log`).Scan(&low); err != nil {
			return 0, wrap("trim delivery log", err)
		}
	}
	res, err := s.w.ExecContext(ctx, `DELETE FROM gateway_delivery_log WHERE id IN
		(SELECT id FROM gateway_delivery_log WHERE id <= ? ORDER BY id LIMIT ?)`, low, limit)
	if err != nil {
		return 0, wrap("trim delivery log", err)
	}
	n, err := res.RowsAffected()
	return n, wrap("trim delivery log", err)
}

// Prune implements store.Pruner. Each statement is its own short
// transaction on the writer, so ingest waits for at most one of them.
func (s *Store) Prune(ctx context.Context, cutoff time.Time, limit int) (store.Pruned, error) {
	var p store.Pruned
	c := model.FormatTime(cutoff)
	// Traces are found by their own age: one emptied above whose row is a
	// little younger than its spans goes in a later round. A trace's usual
	// origin goes with it, in the same transaction (the writer is one
	// connection, so no Write comes between the two).
	gone := `SELECT trace_id FROM ` + s.traces + ` t WHERE created_at < ?
			AND NOT EXISTS (SELECT 1 FROM ` + s.spans + ` x WHERE x.trace_id = t.trace_id) LIMIT ?`
	steps := []struct {
		n     *int64
		what  string
		query string
		first string // run before query, in its transaction, with the same arguments
	}{
		{&p.Spans, "spans", `DELETE FROM ` + s.spans + ` WHERE span_id IN
			(SELECT span_id FROM ` + s.spans + ` WHERE created_at < ? LIMIT ?)`, ""},
		{&p.Traces, "traces", `DELETE FROM ` + s.traces + ` WHERE trace_id IN (` + gone + `)`,
			`DELETE FROM ` + quote(store.TraceResourcesTable) + ` WHERE trace_id IN (` + gone + `)`},
		{&p.LogRows, "delivery log", `DELETE FROM gateway_delivery_log WHERE id IN
			(SELECT id FROM gateway_delivery_log WHERE created_at < ? ORDER BY id LIMIT ?)`, ""},
		{&p.DeadLetters, "dead letters", `DELETE FROM gateway_dead_letters WHERE id IN
			(SELECT id FROM gateway_dead_letters WHERE created_at < ? ORDER BY id LIMIT ?)`, ""},
	}
	var rollupTraces, rollupModels int64
	for _, t := range []struct {
		n     *int64
		table string
	}{{&rollupTraces, store.RollupTracesTable}, {&rollupModels, store.RollupModelsTable}} {
		steps = append(steps, struct {
			n     *int64
			what  string
			query string
			first string
		}{t.n, "rollups", `DELETE FROM ` + quote(t.table) + ` WHERE rowid IN
			(SELECT rowid FROM ` + quote(t.table) + ` WHERE minute < substr(?, 1, 16) LIMIT ?)`, ""})
	}
	for _, st := range steps {
		n, err := s.pruneStep(ctx, st.first, st.query, c, limit)
		if err != nil {
			return p, wrap("prune "+st.what, err)
		}
		*st.n = n
	}
	p.Rollups = rollupTraces + rollupModels
	return p, nil
}

// pruneStep runs first (when not empty) and query in one transaction and
// returns the rows query deleted.
func (s *Store) pruneStep(ctx context.Context, first, query string, args ...any) (int64, error) {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback() //nolint:errcheck // no-op after Commit
	if first != "" {
		if _, err := tx.ExecContext(ctx, first, args...); err != nil {
			return 0, err
		}
	}
	res, err := tx.ExecContext(ctx, query, args...)
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, err
	}
	return n, tx.Commit()
}
