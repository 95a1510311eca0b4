// Package sqlite is the embedded trace store (modernc.org/sqlite, pure Go, no
// cgo): AgentOS's agno_traces and agno_spans tables in one database file.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"

	sqlite3 "modernc.org/sqlite"
	sqlitelib "modernc.org/sqlite/lib"

	"github.com/kern-agents/trace-gateway/internal/store"
)

// DefaultDSN is used when Options.DSN is empty.
const DefaultDSN = "file:kern-traces.db"

// pragmas are set on every connection unless the DSN sets them itself.
//
// synchronous=FULL: a write is acknowledged (HTTP 200) only after it is
// committed, so the commit must survive a power cut, not just a crash of the
// process. With WAL, NORMAL may lose the last commits on power loss; FULL
// syncs the WAL on every commit. Batches are large, so the cost is one fsync
// per batch (see BenchmarkWrite).
var pragmas = []struct{ name, value string }{
	{"busy_timeout", "10000"},
	{"journal_mode", "WAL"},
	{"synchronous", "FULL"},
	{"foreign_keys", "1"},
}

// Store is a store.Store on SQLite. Writes go through one connection (SQLite
// has a single writer anyway); reads through DB() use a pool of their own,
// which WAL lets run beside a write.
type Store struct {
	w       *sql.DB // one connection, BEGIN IMMEDIATE
	r       *sql.DB
	traces  string // quoted
	spans   string
	inserts map[int]*sql.Stmt // by number of rows
	upsert  *sql.Stmt         // one trace row
	origin  *sql.Stmt         // one resources row
	// rollupTraces and rollupModels add one delta to a rollup row.
	rollupTraces, rollupModels *sql.Stmt
	// origins are the origins known to be stored.
	origins store.KnownOrigins
	logRow  *sql.Stmt // appends a Write's row to the delivery log
	closed  atomic.Bool
}

var _ store.Store = (*Store)(nil)

// Open opens (creating when missing) the database file named by opts.DSN, a
// path or a "file:" URI, and creates the tables and indexes that do not exist
// yet. An in-memory database (":memory:") is not supported: its connections
// would not share data.
func Open(ctx context.Context, opts store.Options) (*Store, error) {
	opts = opts.WithDefaults()
	if opts.DSN == "" {
		opts.DSN = DefaultDSN
	}
	if opts.DSN == ":memory:" || strings.Contains(opts.DSN, "mode=memory") {
		return nil, errors.New("sqlite store: in-memory databases are not supported; use a file")
	}
	writeDSN, err := withParams(opts.DSN, true)
	if err != nil {
		return nil, err
	}
	readDSN, err := withParams(opts.DSN, false)
	if err != nil {
		return nil, err
	}
	w, err := sql.Open("sqlite", writeDSN)
	if err != nil {
		return nil, fmt.Errorf("sqlite store: open %s: %w", opts.DSN, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	r, err := sql.Open("sqlite", readDSN)
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite store: open %s: %w", opts.DSN, err)
	}
	r.SetMaxIdleConns(4)
	s := &Store{
		w:       w,
		r:       r,
		traces:  quote(opts.TracesTable),
		spans:   quote(opts.SpansTable),
		inserts: map[int]*sql.Stmt{},
	}
	if err := s.migrate(ctx, opts); err != nil {
		s.Close()
		return nil, err
	}
	if err := s.prepare(ctx); err != nil {
		s.Close()
		return nil, classify(fmt.Errorf("sqlite store: %w", err))
	}
	return s, nil
}

// withParams adds the connection settings to dsn, keeping any the DSN sets.
func withParams(dsn string, writer bool) (string, error) {
	path, query, _ := strings.Cut(dsn, "?")
	q, err := url.ParseQuery(query)
	if err != nil {
		return "", fmt.Errorf("sqlite store: DSN %q: %w", dsn, err)
	}
	for _, p := range pragmas {
		set := false
		for _, v := range q["_pragma"] {
			set = set || strings.HasPrefix(strings.ToLower(strings.TrimSpace(v)), p.name)
		}
		if !set {
			q.Add("_pragma", p.name+"("+p.value+")")
		}
	}
	if writer {
		// Take the write lock when the transaction starts, not at its
		// first write, so it cannot fail halfway with SQLITE_BUSY.
		q.Set("_txlock", "immediate")
	}
	return path + "?" + q.Encode(), nil
}

func quote(name string) string { return `"` + strings.ReplaceAll(name, `"`, `""`) + `"` }

func (s *Store) migrate(ctx context.Context, opts store.Options) error {
	stmts := store.TablesDDL(s.traces, s.spans, "JSON")
	stmts = append(stmts, store.ResourcesDDL(quote(store.ResourcesTable), "JSON"), store.TraceResourcesDDL(quote(store.TraceResourcesTable)))
	stmts = append(stmts, store.RollupsDDL(quote)...)
	stmts = append(stmts, deliveryDDL...)
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return classify(fmt.Errorf("sqlite store: migrate: %w", err))
	}
	defer tx.Rollback() //nolint:errcheck // no-op after Commit
	var rollups int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?`,
		store.RollupTracesTable).Scan(&rollups); err != nil {
		return classify(fmt.Errorf("sqlite store: migrate: %w", err))
	}
	for _, q := range stmts {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return classify(fmt.Errorf("sqlite store: migrate: %w", err))
		}
	}
	if rollups == 0 {
		// An upgrade: count what was stored before the rollups existed.
		if err := s.backfill(ctx, tx); err != nil {
			return classify(fmt.Errorf("sqlite store: migrate: %w", err))
		}
	}
	if err := reconcileIndexes(ctx, tx, opts); err != nil {
		return classify(fmt.Errorf("sqlite store: migrate: indexes: %w", err))
	}
	if err := declareJSON(ctx, tx, opts.SpansTable); err != nil {
		return classify(fmt.Errorf("sqlite store: migrate: %w", err))
	}
	if err := tx.Commit(); err != nil {
		return classify(fmt.Errorf("sqlite store: migrate: %w", err))
	}
	return nil
}

// reconcileIndexes gives each indexed column of the AgentOS tables exactly
// one index named as AgentOS names it: an index already on the column is
// adopted, one an earlier gateway made under its old name is replaced
// (SQLite cannot rename an index), and a duplicate beside AgentOS's dropped.
func reconcileIndexes(ctx context.Context, tx *sql.Tx, opts store.Options) error {
	have := map[[2]string][]string{}
	for _, table := range []string{opts.TracesTable, opts.SpansTable} {
		rows, err := tx.QueryContext(ctx, `SELECT il.name, ii.name FROM pragma_index_list(?) il
			JOIN pragma_index_info(il.name) ii WHERE il.origin = 'c' AND il.partial = 0
			AND (SELECT count(*) FROM pragma_index_info(il.name)) = 1`, table)
		if err != nil {
			return err
		}
		for rows.Next() {
			var name string
			var col sql.NullString
			if err := rows.Scan(&name, &col); err != nil {
				rows.Close()
				return err
			}
			if col.Valid {
				have[[2]string{table, col.String}] = append(have[[2]string{table, col.String}], name)
			}
		}
		if err := rows.Close(); err != nil {
			return err
		}
	}
	for _, ix := range store.Indexes(opts.TracesTable, opts.SpansTable) {
		names := have[[2]string{ix.Table, ix.Column}]
		newName, oldName := store.IndexName(ix.Table, ix.Column), store.OldIndexName(ix.Table, ix.Column)
		var stmts []string
		create := "CREATE INDEX " + quote(newName) + " ON " + quote(ix.Table) + " (" + quote(ix.Column) + ")"
		switch {
		case slices.Contains(names, oldName) && len(names) == 1:
			stmts = []string{"DROP INDEX " + quote(oldName), create}
		case slices.Contains(names, oldName):
			stmts = []string{"DROP INDEX " + quote(oldName)}
		case len(names) == 0:
			stmts = []string{create}
		}
		for _, q := range stmts {
			if _, err := tx.ExecContext(ctx, q); err != nil {
				return fmt.Errorf("%s: %w", q, err)
			}
		}
	}
	return nil
}

// declareJSON makes the attributes column of a spans table an earlier
// gateway created declare JSON, as AgentOS's SqliteDb does: AgentOS reflects
// the table and reads a TEXT column back as a string, not a dict. Only the
// declared type changes, in the schema text; the stored values (JSON
// objects, which no affinity converts) stay as they are.
func declareJSON(ctx context.Context, tx *sql.Tx, table string) error {
	var typ string
	err := tx.QueryRowContext(ctx, `SELECT type FROM pragma_table_info(?) WHERE name = 'attributes'`, table).Scan(&typ)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && !strings.EqualFold(typ, "TEXT")) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("attributes column of %s: %w", table, err)
	}
	var version int64
	if err := tx.QueryRowContext(ctx, `PRAGMA schema_version`).Scan(&version); err != nil {
		return fmt.Errorf("declare %s.attributes JSON: %w", table, err)
	}
	for _, q := range []string{
		`PRAGMA writable_schema = ON`,
		`UPDATE sqlite_schema SET sql = replace(sql, 'attributes TEXT,', 'attributes JSON,') WHERE type = 'table' AND name = ` + sqlString(table),
		fmt.Sprintf(`PRAGMA schema_version = %d`, version+1),
		`PRAGMA writable_schema = OFF`,
	} {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("declare %s.attributes JSON: %s: %w", table, q, err)
		}
	}
	return nil
}

func sqlString(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// Ping reports whether the database file can be read.
func (s *Store) Ping(ctx context.Context) error {
	if s.closed.Load() {
		return errClosed
	}
	if err := s.r.PingContext(ctx); err != nil {
		return classify(fmt.Errorf("sqlite store: ping: %w", err))
	}
	return nil
}

// DB gives database/sql access through a pool of its own beside the writer.
func (s *Store) DB() *sql.DB { return s.r }

// Dialect is "sqlite".
func (s *Store) Dialect() string { return "sqlite" }

// Tables returns the quoted table names.
func (s *Store) Tables() (traces, spans string) { return s.traces, s.spans }

// Close closes both pools. Writes after Close fail with store.ErrUnavailable.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	for _, st := range s.inserts {
		st.Close()
	}
	for _, st := range []*sql.Stmt{s.origin, s.rollupTraces, s.rollupModels} {
		if st != nil {
			st.Close()
		}
	}
	if s.upsert != nil {
		s.upsert.Close()
	}
	if s.logRow != nil {
		s.logRow.Close()
	}
	return errors.Join(s.w.Close(), s.r.Close())
}

var errClosed = fmt.Errorf("sqlite store: %w: store closed", store.ErrUnavailable)

// classify marks errors that mean the database cannot be used right now
// (locked for longer than busy_timeout, I/O error, disk full, file gone)
// with store.ErrUnavailable.
func classify(err error) error {
	var e *sqlite3.Error
	if err == nil || !errors.As(err, &e) {
		return err
	}
	switch e.Code() & 0xff {
	case sqlitelib.SQLITE_BUSY, sqlitelib.SQLITE_LOCKED, sqlitelib.SQLITE_IOERR,
		sqlitelib.SQLITE_FULL, sqlitelib.SQLITE_CANTOPEN:
		return fmt.Errorf("%w: %w", store.ErrUnavailable, err)
	}
	return err
}
