package store

import "fmt"

// The AgentOS tables (DESIGN.md section 2), shared by both drivers so the
// schema is written once. Only the attributes column type and identifier
// quoting differ between PostgreSQL and SQLite.

// TraceIndexColumns and SpanIndexColumns are the indexed columns.
var (
	TraceIndexColumns = []string{"status", "start_time", "run_id", "session_id", "user_id", "agent_id", "team_id", "workflow_id", "created_at"}
	SpanIndexColumns  = []string{"trace_id", "parent_span_id", "start_time", "created_at"}
)

// TablesDDL returns the idempotent CREATE TABLE statements. traces and spans
// are the quoted, qualified names; jsonType is the attributes column type
// (JSONB on PostgreSQL, TEXT on SQLite).
func TablesDDL(traces, spans, jsonType string) []string {
	return []string{
		`CREATE TABLE IF NOT EXISTS ` + traces + ` (
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
		`CREATE TABLE IF NOT EXISTS ` + spans + ` (
			span_id VARCHAR NOT NULL PRIMARY KEY,
			trace_id VARCHAR NOT NULL REFERENCES ` + traces + ` (trace_id),
			parent_span_id VARCHAR,
			name VARCHAR NOT NULL,
			span_kind VARCHAR NOT NULL,
			status_code VARCHAR NOT NULL,
			status_message TEXT,
			start_time VARCHAR NOT NULL,
			end_time VARCHAR NOT NULL,
			duration_ms BIGINT NOT NULL,
			attributes ` + jsonType + `,
			created_at VARCHAR NOT NULL
		)`,
	}
}

// IndexesDDL returns the idempotent CREATE INDEX statements, named
// ix_<table>_<column>. quote quotes an identifier; on (table) returns the
// quoted name the index is created on.
func IndexesDDL(tracesTable, spansTable string, quote func(string) string, on func(table string) string) []string {
	var out []string
	add := func(table string, cols []string) {
		for _, c := range cols {
			out = append(out, fmt.Sprintf("CREATE INDEX IF NOT EXISTS %s ON %s (%s)",
				quote("ix_"+table+"_"+c), on(table), quote(c)))
		}
	}
	add(tracesTable, TraceIndexColumns)
	add(spansTable, SpanIndexColumns)
	return out
}
