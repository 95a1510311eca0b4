package postgres

import (
	"strings"

	"github.com/kern-agents/trace-gateway/internal/model"
)

// queries are Write's statements, built once per store for its table names.
type queries struct {
	insertOrigins string // $1 ids, $2 resources, $3 scopes, $4 tenants, $5 created_at
	usualOrigins  string // $1 trace ids, $2 proposed origin ids: each trace's usual origin
	insertTraces  string // traceArgs + $13 created_at
	mergeTraces   string // traceArgs
	insertSpans   string // returns how many spans it inserted and their ids
	appendLog     string // $1 span count, $2 span ids
	spansOf       string // $1 trace ids: the stored spans Write derives rows from
	updateTraces  string // traceArgs, rows to overwrite
	deleteEmpty   string // $1 trace ids
	rollupTraces  string // $1 minutes, $2 tenants, $3 statuses, $4 buckets, $5 deltas
	rollupModels  string // $1 minutes, $2 tenants, $3 models, $4 calls, $5..$7 tokens
}

// traceColumns are agno_traces' columns in table order.
var traceColumns = []string{
	"trace_id", "name", "status", "start_time", "end_time", "duration_ms",
	"run_id", "session_id", "user_id", "agent_id", "team_id", "workflow_id", "created_at",
}

// batchRows unnests the trace rows a batch gives (store.TraceRow), passed
// as one array per field: $1 trace_id, $2 name, $3 status, $4 start_time,
// $5 end_time, $6 has_root, $7 root_start, $8 root_span_id, $9..$14 ids
// (empty for none).
const batchRows = `unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bool[],
	$7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[])
	AS b(trace_id, name, status, start_time, end_time, has_root, root_start, root_span_id,
		run_id, session_id, user_id, agent_id, team_id, workflow_id)`

// durationMS is end − start in whole milliseconds, never negative.
func durationMS(start, end string) string {
	return `GREATEST(0, trunc(EXTRACT(EPOCH FROM (` + end + `)::timestamptz - (` + start + `)::timestamptz) * 1000))::bigint`
}

func buildQueries(traces, spans, deliveryLog, origins, traceOrigins, rollupTraces, rollupModels string) queries {
	cols := strings.Join(spanColumns, ", ")
	ids := model.TraceIDColumns
	nullIDs := make([]string, len(ids))
	for i, c := range ids {
		nullIDs[i] = "nullif(b." + c + ", '') AS " + c
	}
	merged := []string{"name", "status", "start_time", "end_time"}
	merged = append(merged, ids...)
	set := make([]string, 0, len(merged)+1)
	for _, c := range merged {
		set = append(set, c+" = m."+c)
	}
	set = append(set, "duration_ms = "+durationMS("m.start_time", "m.end_time"))
	idPicks := make([]string, len(ids))
	for i, c := range ids {
		idPicks[i] = "CASE WHEN take_root THEN nullif(b_" + c + ", '') ELSE t_" + c + " END AS " + c
	}
	var bIDs, tIDs []string
	for _, c := range ids {
		bIDs = append(bIDs, "b."+c+" AS b_"+c)
		tIDs = append(tIDs, "t."+c+" AS t_"+c)
	}
	distinct := `(t.` + strings.Join(merged, ", t.") + `) IS DISTINCT FROM (m.` + strings.Join(merged, ", m.") + `)`
	return queries{
		// Origins are inserted in id order: two batches inserting the same
		// new origins (each waits on the other's uncommitted row) take them
		// in the same order, and before any trace row, so they cannot
		// deadlock.
		insertOrigins: `INSERT INTO ` + origins + ` (id, resource, scope, tenant, created_at)
			SELECT o.id, o.resource::jsonb, o.scope::jsonb, nullif(o.tenant, ''), $5
			FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS o(id, resource, scope, tenant)
			ORDER BY o.id
			ON CONFLICT (id) DO NOTHING`,
		// A trace's first batch sets its usual origin; later batches read
		// it. Run after insertTraces, whose row locks order the writers of
		// a trace, so the row of an earlier writer is committed and seen.
		usualOrigins: `WITH p AS (
				SELECT * FROM unnest($1::text[], $2::text[]) AS p(trace_id, resource_id)
			), ins AS (
				INSERT INTO ` + traceOrigins + ` (trace_id, resource_id)
				SELECT trace_id, resource_id FROM p ORDER BY trace_id
				ON CONFLICT (trace_id) DO NOTHING
				RETURNING trace_id, resource_id
			)
			SELECT trace_id, resource_id FROM ins
			UNION ALL
			SELECT t.trace_id, t.resource_id FROM ` + traceOrigins + ` t
			WHERE t.trace_id = ANY($1::text[]) AND t.trace_id NOT IN (SELECT trace_id FROM ins)`,
		// New traces get the batch's row straight away. Existing rows are
		// only locked: ON CONFLICT DO UPDATE locks the conflicting row even
		// when its WHERE is false, so no row version is written, and the
		// ORDER BY takes the locks in trace_id order, so two batches touching
		// the same traces wait for each other instead of deadlocking. The
		// merge then runs as a separate statement, whose fresh snapshot sees
		// every batch committed before the locks were granted.
		insertTraces: `INSERT INTO ` + traces + ` (` + strings.Join(traceColumns, ", ") + `)
			SELECT b.trace_id, b.name, b.status, b.start_time, b.end_time, ` + durationMS("b.start_time", "b.end_time") + `,
				` + strings.Join(nullIDs, ", ") + `, $15::text
			FROM ` + batchRows + ` ORDER BY b.trace_id
			ON CONFLICT (trace_id) DO UPDATE SET trace_id = EXCLUDED.trace_id WHERE false
			RETURNING trace_id, start_time, status, duration_ms`,
		// The merge of store.Merge, in SQL, against the locked rows. It reads
		// no stored span except to rank roots: whether a root is stored
		// (decides the name of a batch without one) and whether a stored
		// root starts before the batch's (several roots: the first wins).
		// Write runs it only for the rows insertTraces did not insert.
		// The probes test for a root with coalesce() rather than IS NULL:
		// an IS NULL the planner can answer from the parent_span_id index
		// reads every stored root for each trace (317 M index entries for
		// 110,000 spans in the bench), where the trace_id index reads the
		// trace's dozen spans.
		mergeTraces: `WITH m0 AS (
				SELECT t.trace_id,
					LEAST(t.start_time COLLATE "C", b.start_time COLLATE "C") AS start_time,
					GREATEST(t.end_time COLLATE "C", b.end_time COLLATE "C") AS end_time,
					CASE WHEN t.status = '` + model.StatusError + `' OR b.status = '` + model.StatusError + `'
						THEN '` + model.StatusError + `' ELSE '` + model.StatusOK + `' END AS status,
					b.has_root AND NOT EXISTS (SELECT 1 FROM ` + spans + ` s
						WHERE s.trace_id = b.trace_id AND coalesce(s.parent_span_id, '') = '' AND s.span_id <> b.root_span_id
						AND (s.start_time COLLATE "C", s.span_id COLLATE "C") < (b.root_start COLLATE "C", b.root_span_id COLLATE "C")) AS take_root,
					NOT b.has_root AND NOT EXISTS (SELECT 1 FROM ` + spans + ` s
						WHERE s.trace_id = b.trace_id AND coalesce(s.parent_span_id, '') = '') AS rootless,
					t.name AS t_name, b.name AS b_name, t.start_time AS t_start, b.start_time AS b_start,
					t.status AS t_status, t.duration_ms AS t_dur,
					` + strings.Join(append(bIDs, tIDs...), ", ") + `
				FROM ` + batchRows + ` JOIN ` + traces + ` t ON t.trace_id = b.trace_id
			), m AS (
				SELECT trace_id, start_time, end_time, status, t_start, t_status, t_dur,
					CASE WHEN take_root THEN b_name
						WHEN rootless AND (b_start COLLATE "C" < t_start COLLATE "C"
							OR (b_start = t_start AND b_name COLLATE "C" < t_name COLLATE "C")) THEN b_name
						ELSE t_name END AS name,
					` + strings.Join(idPicks, ",\n\t\t\t\t\t") + `
				FROM m0
			)
			UPDATE ` + traces + ` t SET ` + strings.Join(set, ", ") + `
			FROM m WHERE t.trace_id = m.trace_id AND ` + distinct + `
			RETURNING t.trace_id, m.t_start, m.t_status, m.t_dur, t.start_time, t.status, t.duration_ms`,
		// The spans are inserted and the delivery log appended in one
		// statement: the log row lists the span ids this Write inserted (a
		// span already stored is not fanned out again), and the statement
		// returns how many that is and the row's list.
		insertSpans: `WITH ins AS (
				INSERT INTO ` + spans + ` (` + cols + `) SELECT ` + cols + ` FROM ` + stageTable + `
				ON CONFLICT (span_id) DO NOTHING
				RETURNING span_id
			), logged AS (
				INSERT INTO ` + deliveryLog + ` (span_count, span_ids)
				SELECT count(*), array_agg(span_id) FROM ins HAVING count(*) > 0
				RETURNING span_count, span_ids
			)
			SELECT coalesce((SELECT span_count FROM logged), 0), (SELECT span_ids FROM logged)`,
		appendLog: `INSERT INTO ` + deliveryLog + ` (span_count, span_ids) VALUES ($1, $2)`,
		spansOf: `SELECT span_id, trace_id, coalesce(parent_span_id, ''), name, status_code, start_time, end_time,
				CASE WHEN parent_span_id IS NULL THEN attributes END
			FROM ` + spans + ` WHERE trace_id = ANY($1::varchar[])`,
		// o is the row before the update (the FROM list reads the
		// statement's snapshot), for the rollups.
		updateTraces: `UPDATE ` + traces + ` t SET ` + strings.Join(set, ", ") + `
			FROM (SELECT b.trace_id, b.name, b.status, b.start_time, b.end_time, ` + strings.Join(nullIDs, ", ") + `
				FROM ` + batchRows + `) m
			JOIN ` + traces + ` o ON o.trace_id = m.trace_id
			WHERE t.trace_id = m.trace_id AND ` + distinct + `
			RETURNING t.trace_id, o.start_time, o.status, o.duration_ms, t.start_time, t.status, t.duration_ms`,
		deleteEmpty: `WITH gone AS (
				DELETE FROM ` + traces + ` t WHERE t.trace_id = ANY($1::varchar[])
				AND NOT EXISTS (SELECT 1 FROM ` + spans + ` s WHERE s.trace_id = t.trace_id)
				RETURNING trace_id, start_time, status, duration_ms
			), r AS (DELETE FROM ` + traceOrigins + ` WHERE trace_id IN (SELECT trace_id FROM gone))
			SELECT * FROM gone`,
		// Rows come sorted by key, so concurrent writers lock them in the
		// same order.
		rollupTraces: `INSERT INTO ` + rollupTraces + ` AS r (minute, tenant, status, bucket, traces)
			SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int[], $5::bigint[]) ORDER BY 1, 2, 3, 4
			ON CONFLICT (minute, tenant, status, bucket) DO UPDATE SET traces = r.traces + EXCLUDED.traces`,
		rollupModels: `INSERT INTO ` + rollupModels + ` AS r (minute, tenant, model, calls, input_tokens, output_tokens, total_tokens)
			SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::bigint[], $7::bigint[]) ORDER BY 1, 2, 3
			ON CONFLICT (minute, tenant, model) DO UPDATE SET calls = r.calls + EXCLUDED.calls,
				input_tokens = r.input_tokens + EXCLUDED.input_tokens, output_tokens = r.output_tokens + EXCLUDED.output_tokens,
				total_tokens = r.total_tokens + EXCLUDED.total_tokens`,
	}
}
