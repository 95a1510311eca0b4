package store

// The AgentOS tables (DESIGN.md section 2), shared by both drivers so the
// schema is written once. Only the attributes column type and identifier
// quoting differ between PostgreSQL and SQLite.

// TraceIndexColumns and SpanIndexColumns are the indexed columns.
var (
	TraceIndexColumns = []string{"status", "start_time", "run_id", "session_id", "user_id", "agent_id", "team_id", "workflow_id", "created_at"}
	SpanIndexColumns  = []string{"trace_id", "parent_span_id", "start_time", "created_at"}
)

// TablesDDL returns the idempotent CREATE TABLE statements, column for
// column AgentOS's own (agno 2.9 db/*/schemas.py). traces and spans are the
// quoted, qualified names; jsonType is the attributes column type (JSONB on
// PostgreSQL; JSON on SQLite, which AgentOS's SqliteDb declares and needs to
// read a dict back).
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

// IndexName is AgentOS's name for the index on one column (agno 2.9
// db/postgres/postgres.py _create_table): idx_<table>_<column>.
func IndexName(table, column string) string { return "idx_" + table + "_" + column }

// OldIndexName is the name earlier gateway versions gave the same index;
// the stores rename (or, where they cannot, replace) such indexes on start.
func OldIndexName(table, column string) string { return "ix_" + table + "_" + column }

// IndexSpec is one single-column index the AgentOS tables have.
type IndexSpec struct{ Table, Column string }

// Indexes lists the indexes of the AgentOS tables named traces and spans.
func Indexes(traces, spans string) []IndexSpec {
	var out []IndexSpec
	for _, c := range TraceIndexColumns {
		out = append(out, IndexSpec{traces, c})
	}
	for _, c := range SpanIndexColumns {
		out = append(out, IndexSpec{spans, c})
	}
	return out
}

// ResourcesTable holds each distinct resource and instrumentation scope
// once (model.Origin), referenced from spans by model.KeyResource.
const ResourcesTable = "gateway_resources"

// ResourcesDDL creates the resources table; table is its quoted, qualified
// name and jsonType the type of its JSON columns.
func ResourcesDDL(table, jsonType string) string {
	return `CREATE TABLE IF NOT EXISTS ` + table + ` (
		id VARCHAR NOT NULL PRIMARY KEY,
		resource ` + jsonType + `,
		scope ` + jsonType + `,
		tenant VARCHAR,
		created_at VARCHAR NOT NULL
	)`
}

// TraceResourcesTable holds each trace's usual origin: the one its first
// stored batch chose (store.UsualOrigins). A span of that origin is stored
// without a kern.resource reference, which is most spans, since a trace
// rarely crosses services; a span of another origin keeps its reference,
// and an empty reference ("") says the span has none.
const TraceResourcesTable = "gateway_trace_resources"

// TraceResourcesDDL creates the trace resources table; table is its quoted,
// qualified name. resource_id is "" for a trace whose usual spans carry no
// resource.
func TraceResourcesDDL(table string) string {
	return `CREATE TABLE IF NOT EXISTS ` + table + ` (
		trace_id VARCHAR NOT NULL PRIMARY KEY,
		resource_id VARCHAR NOT NULL
	)`
}
