package storetest

import (
	"context"
	"database/sql"
	"strings"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
	_ "modernc.org/sqlite"             // database/sql driver "sqlite"

	"github.com/kern-agents/trace-gateway/internal/store"
)

// AgentOSDDL returns the statements AgentOS (agno 2.9) runs to create its
// traces and spans tables and their indexes, as SQLAlchemy renders them
// from db/postgres/schemas.py (PostgresDb._create_table: the schema, the
// table, then one idx_<table>_<column> index per indexed column) and
// db/sqlite/schemas.py (SqliteDb._create_table, where status_message is
// VARCHAR and attributes JSON). schema is ignored for SQLite. AgentOS's
// schema-versions bookkeeping table is left out: nothing here reads it.
func AgentOSDDL(dialect, schema, traces, spans string) []string {
	qual := func(table string) string { return table }
	statusMessage, attributes := "VARCHAR", "JSON"
	var out []string
	if dialect == "postgres" {
		qual = func(table string) string { return schema + "." + table }
		statusMessage, attributes = "TEXT", "JSONB"
		out = append(out, "CREATE SCHEMA IF NOT EXISTS "+schema+";")
	}
	out = append(out, `
CREATE TABLE `+qual(traces)+` (
	trace_id VARCHAR NOT NULL, 
	name VARCHAR NOT NULL, 
	status VARCHAR NOT NULL, 
	start_time VARCHAR NOT NULL, 
	end_time VARCHAR NOT NULL, 
	duration_ms BIGINT NOT NULL, 
	run_id VARCHAR, 
	session_id VARCHAR, 
	user_id VARCHAR, 
	agent_id VARCHAR, 
	team_id VARCHAR, 
	workflow_id VARCHAR, 
	created_at VARCHAR NOT NULL, 
	PRIMARY KEY (trace_id)
)

`)
	for _, c := range tracesSpec.indexed {
		out = append(out, "CREATE INDEX idx_"+traces+"_"+c+" ON "+qual(traces)+" ("+c+")")
	}
	out = append(out, `
CREATE TABLE `+qual(spans)+` (
	span_id VARCHAR NOT NULL, 
	trace_id VARCHAR NOT NULL, 
	parent_span_id VARCHAR, 
	name VARCHAR NOT NULL, 
	span_kind VARCHAR NOT NULL, 
	status_code VARCHAR NOT NULL, 
	status_message `+statusMessage+`, 
	start_time VARCHAR NOT NULL, 
	end_time VARCHAR NOT NULL, 
	duration_ms BIGINT NOT NULL, 
	attributes `+attributes+`, 
	created_at VARCHAR NOT NULL, 
	PRIMARY KEY (span_id), 
	FOREIGN KEY(trace_id) REFERENCES `+qual(traces)+` (trace_id)
)

`)
	for _, c := range spansSpec.indexed {
		out = append(out, "CREATE INDEX idx_"+spans+"_"+c+" ON "+qual(spans)+" ("+c+")")
	}
	return out
}

// OldGatewayDDL returns what gateway versions before AgentOS's index names
// created: the same tables (attributes TEXT on SQLite) with indexes named
// ix_<table>_<column>.
func OldGatewayDDL(dialect, schema, traces, spans string) []string {
	q := func(id string) string { return `"` + strings.ReplaceAll(id, `"`, `""`) + `"` }
	on := q
	jsonType := "TEXT"
	var out []string
	if dialect == "postgres" {
		on = func(table string) string { return q(schema) + "." + q(table) }
		jsonType = "JSONB"
		out = append(out, "CREATE SCHEMA IF NOT EXISTS "+q(schema))
	}
	out = append(out, `CREATE TABLE IF NOT EXISTS `+on(traces)+` (
			trace_id VARCHAR NOT NULL PRIMARY KEY,
			name VARCHAR NOT NULL,
			status VARCHAR NOT NULL,
			start_time VARCHAR NOT NULL,
			end_time VARCHAR NOT NULL,
			duration_ms BIGINT NOT NULL,
			run_id VARCHAR,
			session_id VARCHAR,
			user_id VARCHAR,
			agent_id VARCHAR,
			team_id VARCHAR,
			workflow_id VARCHAR,
			created_at VARCHAR NOT NULL
		)`,
		`CREATE TABLE IF NOT EXISTS `+on(spans)+` (
			span_id VARCHAR NOT NULL PRIMARY KEY,
			trace_id VARCHAR NOT NULL REFERENCES `+on(traces)+` (trace_id),
			parent_span_id VARCHAR,
			name VARCHAR NOT NULL,
			span_kind VARCHAR NOT NULL,
			status_code VARCHAR NOT NULL,
			status_message TEXT,
			start_time VARCHAR NOT NULL,
			end_time VARCHAR NOT NULL,
			duration_ms BIGINT NOT NULL,
			attributes `+jsonType+`,
			created_at VARCHAR NOT NULL
		)`)
	return append(out, OldGatewayIndexes(dialect, schema, traces, spans)...)
}

// OldGatewayIndexes are the ix_ indexes of OldGatewayDDL.
func OldGatewayIndexes(dialect, schema, traces, spans string) []string {
	q := func(id string) string { return `"` + strings.ReplaceAll(id, `"`, `""`) + `"` }
	on := q
	if dialect == "postgres" {
		on = func(table string) string { return q(schema) + "." + q(table) }
	}
	var out []string
	for _, tc := range []struct {
		table string
		spec  tableSpec
	}{{traces, tracesSpec}, {spans, spansSpec}} {
		for _, c := range tc.spec.indexed {
			out = append(out, "CREATE INDEX IF NOT EXISTS "+q("ix_"+tc.table+"_"+c)+" ON "+on(tc.table)+" ("+q(c)+")")
		}
	}
	return out
}

// OpenRaw opens opts' database with a plain database/sql driver, as
// another program (AgentOS, an earlier gateway) would, and closes it when
// the test ends.
func OpenRaw(t *testing.T, dialect string, opts store.Options) *sql.DB {
	t.Helper()
	driver := "pgx"
	if dialect == "sqlite" {
		driver = "sqlite"
	}
	db, err := sql.Open(driver, opts.DSN)
	if err != nil {
		t.Fatalf("open %s: %v", opts.DSN, err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// Exec runs stmts in order on db.
func Exec(t *testing.T, db *sql.DB, stmts ...string) {
	t.Helper()
	for _, q := range stmts {
		if _, err := db.ExecContext(context.Background(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}
