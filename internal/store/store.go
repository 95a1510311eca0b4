// Package store defines how the gateway persists spans. Two implementations
// live below it: postgres (pgx/v5, production) and sqlite (pure Go, the
// zero-setup default).
package store

import (
	"context"
	"database/sql"
	"errors"

	"github.com/kern-agents/trace-gateway/internal/model"
)

// Options are the storage settings shared by every driver.
type Options struct {
	DSN         string
	Schema      string // PostgreSQL schema; ignored by SQLite
	TracesTable string // default agno_traces
	SpansTable  string // default agno_spans
}

// WithDefaults fills empty table names and schema.
func (o Options) WithDefaults() Options {
	if o.TracesTable == "" {
		o.TracesTable = "agno_traces"
	}
	if o.SpansTable == "" {
		o.SpansTable = "agno_spans"
	}
	if o.Schema == "" {
		o.Schema = "ai"
	}
	return o
}

// Store is the trace database.
type Store interface {
	// Write stores a batch in one transaction: trace rows are upserted, spans
	// inserted idempotently on span_id (a span already stored is left as it
	// is), and every affected trace row recomputed from all its stored spans.
	// When Write returns nil the batch is committed.
	Write(ctx context.Context, spans []model.Span) error
	// Ping reports whether the database answers.
	Ping(ctx context.Context) error
	// DB gives read access through database/sql for the API and tools.
	DB() *sql.DB
	// Dialect names the SQL dialect of DB: "postgres" or "sqlite".
	Dialect() string
	// Tables returns the qualified names of the traces and spans tables as
	// they must appear in SQL against DB.
	Tables() (traces, spans string)
	Close() error
}

// ErrUnavailable wraps errors that mean the database cannot be reached right
// now (connection refused, server shutting down); the receivers answer 503 /
// UNAVAILABLE for them instead of 500.
var ErrUnavailable = errors.New("trace database unavailable")
