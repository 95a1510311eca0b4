// Package postgres is the PostgreSQL trace store (pgx/v5). It writes AgentOS's
// agno_traces and agno_spans tables in a configurable schema.
package postgres

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/kern-agents/trace-gateway/internal/store"
)

// stageTable is the per-connection staging table Write copies a batch into.
// ON COMMIT DELETE ROWS empties it at the end of every transaction.
const stageTable = "kern_stage_spans"

// spanColumns are agno_spans' columns in table order; the staging table and
// every insert use this order.
var spanColumns = []string{
	"span_id", "trace_id", "parent_span_id", "name", "span_kind", "status_code",
	"status_message", "start_time", "end_time", "duration_ms", "attributes", "created_at",
}

// Store is a store.Store on PostgreSQL.
type Store struct {
	pool *pgxpool.Pool
	// progress runs the fan-out's bookkeeping (claims, cursors, lease
	// renewals, trimming, dead letters) with synchronous_commit off: it
	// commits hundreds of times a second, and waiting for each WAL flush
	// would queue the span writes behind it. A database crash can only lose
	// the last moments of progress, so spans are sent again (delivery is at
	// least once), never skipped: the WAL is replayed in order, and any
	// later synchronous commit flushes the earlier ones.
	progress *pgxpool.Pool
	db       *sql.DB
	schema   string
	traces   string // schema-qualified, quoted
	spans    string
	res      string // the resources table (store.ResourcesTable)
	traceRes string // the trace resources table (store.TraceResourcesTable)
	spansID  pgx.Identifier
	// spansCopy and stageCopy copy a batch into the spans table and the
	// staging table.
	spansCopy, stageCopy spanCopy
	// origins are the origins known to be stored, so a write
	// inserts each resource once per process, not once per batch.
	origins store.KnownOrigins
	q       queries
	dq      deliveryQueries
	closed  atomic.Bool
	// retries counts transactions Write ran again (deadlock, serialization
	// failure, broken pooled connection); the tests expect none from
	// concurrent writers.
	retries atomic.Int64
}

var _ store.Store = (*Store)(nil)

// Open connects to opts.DSN and creates the schema, the tables and their
// indexes when they do not exist yet. Errors that mean the server cannot be
// reached wrap store.ErrUnavailable.
// defaultMaxConns bounds the pool when the DSN does not.
const defaultMaxConns = 20

func Open(ctx context.Context, opts store.Options) (*Store, error) {
	opts = opts.WithDefaults()
	cfg, err := pgxpool.ParseConfig(opts.DSN)
	if err != nil {
		return nil, fmt.Errorf("postgres store: parse DSN: %w", err)
	}
	if !strings.Contains(opts.DSN, "pool_max_conns") {
		// pgx's default (max(4, CPUs)) is shared by the write transactions,
		// every destination's fan-out worker and the API; too few and the
		// writers queue behind fan-out reads. pool_max_conns in the DSN wins.
		cfg.MaxConns = defaultMaxConns
	}
	cfg.AfterConnect = func(ctx context.Context, c *pgx.Conn) error {
		_, err := c.Exec(ctx, stageDDL)
		return err
	}
	pcfg := cfg.Copy()
	pcfg.AfterConnect = nil
	pcfg.MaxConns = max(4, cfg.MaxConns/4)
	pcfg.ConnConfig.RuntimeParams["synchronous_commit"] = "off"
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, classify(fmt.Errorf("postgres store: connect: %w", err))
	}
	progress, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		pool.Close()
		return nil, classify(fmt.Errorf("postgres store: connect: %w", err))
	}
	s := &Store{
		pool:     pool,
		progress: progress,
		schema:   opts.Schema,
		traces:   pgx.Identifier{opts.Schema, opts.TracesTable}.Sanitize(),
		spans:    pgx.Identifier{opts.Schema, opts.SpansTable}.Sanitize(),
		res:      pgx.Identifier{opts.Schema, store.ResourcesTable}.Sanitize(),
		traceRes: pgx.Identifier{opts.Schema, store.TraceResourcesTable}.Sanitize(),
		spansID:  pgx.Identifier{opts.Schema, opts.SpansTable},
	}
	s.dq = newDeliveryQueries(opts.Schema)
	s.q = buildQueries(s.traces, s.spans, s.dq.log, s.res, s.traceRes,
		pgx.Identifier{opts.Schema, store.RollupTracesTable}.Sanitize(), pgx.Identifier{opts.Schema, store.RollupModelsTable}.Sanitize())
	if err := s.migrate(ctx, opts); err != nil {
		pool.Close()
		progress.Close()
		return nil, err
	}
	kinds, err := spanKinds(ctx, pool, s.spans)
	if err != nil {
		pool.Close()
		progress.Close()
		return nil, classify(fmt.Errorf("postgres store: %w", err))
	}
	s.spansCopy = newSpanCopy(s.spansID, kinds)
	s.stageCopy = newSpanCopy(pgx.Identifier{stageTable}, stageKinds)
	s.db = stdlib.OpenDBFromPool(pool)
	return s, nil
}

const stageDDL = `CREATE TEMP TABLE IF NOT EXISTS ` + stageTable + ` (
	span_id VARCHAR, trace_id VARCHAR, parent_span_id VARCHAR, name VARCHAR,
	span_kind VARCHAR, status_code VARCHAR, status_message TEXT,
	start_time VARCHAR, end_time VARCHAR, duration_ms BIGINT, attributes JSONB,
	created_at VARCHAR
) ON COMMIT DELETE ROWS`

// migrate creates what is missing. The statements are idempotent, and an
// advisory lock keeps replicas that start together from racing on the catalog.
func (s *Store) migrate(ctx context.Context, opts store.Options) error {
	id := func(parts ...string) string { return pgx.Identifier(parts).Sanitize() }
	stmts := append([]string{"CREATE SCHEMA IF NOT EXISTS " + id(opts.Schema)},
		store.TablesDDL(s.traces, s.spans, "JSONB")...)
	stmts = append(stmts, store.ResourcesDDL(s.res, "JSONB"), store.TraceResourcesDDL(s.traceRes))
	stmts = append(stmts, store.RollupsDDL(func(t string) string { return id(opts.Schema, t) })...)
	stmts = append(stmts, s.dq.ddl(opts.Schema)...)

	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return classify(fmt.Errorf("postgres store: migrate %s: %w", opts.Schema, err))
	}
	defer tx.Rollback(context.Background()) //nolint:errcheck // no-op after Commit
	// Concurrent CREATE ... IF NOT EXISTS can still fail on the catalog's
	// unique indexes; a transaction-scoped advisory lock serialises them.
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('kern-trace-gateway-migrate'))`); err != nil {
		return classify(fmt.Errorf("postgres store: migrate %s: %w", opts.Schema, err))
	}
	var backfill bool
	if err := tx.QueryRow(ctx, `SELECT to_regclass($1) IS NULL`,
		pgx.Identifier{opts.Schema, store.RollupTracesTable}.Sanitize()).Scan(&backfill); err != nil {
		return classify(fmt.Errorf("postgres store: migrate %s: %w", opts.Schema, err))
	}
	for _, q := range stmts {
		if _, err := tx.Exec(ctx, q); err != nil {
			return classify(fmt.Errorf("postgres store: migrate %s: %w", opts.Schema, err))
		}
	}
	if backfill {
		// An upgrade: count what was stored before the rollups existed.
		if err := s.backfill(ctx, tx); err != nil {
			return classify(fmt.Errorf("postgres store: migrate %s: %w", opts.Schema, err))
		}
	}
	if err := s.reconcileIndexes(ctx, tx, opts); err != nil {
		return classify(fmt.Errorf("postgres store: migrate %s: indexes: %w", opts.Schema, err))
	}
	if err := tx.Commit(ctx); err != nil {
		return classify(fmt.Errorf("postgres store: migrate %s: %w", opts.Schema, err))
	}
	return nil
}

// reconcileIndexes gives each indexed column of the AgentOS tables exactly
// one index, named as AgentOS names it: an index AgentOS (or anyone) already
// made on the column is adopted as it is, one an earlier gateway made under
// its old name is renamed, and a duplicate the gateway made beside
// AgentOS's is dropped.
func (s *Store) reconcileIndexes(ctx context.Context, tx pgx.Tx, opts store.Options) error {
	rows, err := tx.Query(ctx, `SELECT t.relname, a.attname, c.relname
		FROM pg_index i
		JOIN pg_class c ON c.oid = i.indexrelid
		JOIN pg_class t ON t.oid = i.indrelid
		JOIN pg_namespace n ON n.oid = t.relnamespace
		JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = i.indkey[0]
		WHERE n.nspname = $1 AND t.relname = ANY($2) AND i.indnatts = 1
			AND i.indexprs IS NULL AND i.indpred IS NULL AND NOT i.indisprimary`,
		opts.Schema, []string{opts.TracesTable, opts.SpansTable})
	if err != nil {
		return err
	}
	have := map[[2]string][]string{} // (table, column) -> index names
	for rows.Next() {
		var table, col, name string
		if err := rows.Scan(&table, &col, &name); err != nil {
			rows.Close()
			return err
		}
		have[[2]string{table, col}] = append(have[[2]string{table, col}], name)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	id := func(parts ...string) string { return pgx.Identifier(parts).Sanitize() }
	for _, ix := range store.Indexes(opts.TracesTable, opts.SpansTable) {
		names := have[[2]string{ix.Table, ix.Column}]
		newName, oldName := store.IndexName(ix.Table, ix.Column), store.OldIndexName(ix.Table, ix.Column)
		var q string
		switch {
		case slices.Contains(names, newName) && slices.Contains(names, oldName):
			q = "DROP INDEX " + id(opts.Schema, oldName)
		case slices.Contains(names, oldName) && len(names) == 1:
			q = "ALTER INDEX " + id(opts.Schema, oldName) + " RENAME TO " + id(newName)
		case slices.Contains(names, oldName):
			q = "DROP INDEX " + id(opts.Schema, oldName) // another index already covers it
		case len(names) == 0:
			q = "CREATE INDEX " + id(newName) + " ON " + id(opts.Schema, ix.Table) + " (" + id(ix.Column) + ")"
		default:
			continue // adopted
		}
		if _, err := tx.Exec(ctx, q); err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
	}
	return nil
}

// Ping reports whether the server answers.
func (s *Store) Ping(ctx context.Context) error {
	if s.closed.Load() {
		return errClosed
	}
	if err := s.pool.Ping(ctx); err != nil {
		return classify(fmt.Errorf("postgres store: ping: %w", err))
	}
	return nil
}

// DB gives database/sql access through the same connection pool.
func (s *Store) DB() *sql.DB { return s.db }

// Pool gives pgx access to the connection pool.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Dialect is "postgres".
func (s *Store) Dialect() string { return "postgres" }

// Tables returns the quoted, schema-qualified table names.
func (s *Store) Tables() (traces, spans string) { return s.traces, s.spans }

// Close closes the pool. Writes after Close fail with store.ErrUnavailable.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	err := s.db.Close()
	s.pool.Close()
	s.progress.Close()
	return err
}
