package postgres

import (
	"fmt"
	"strings"

	"github.com/kern-agents/trace-gateway/internal/model"
)

// queries are Write's statements, built once per store for its table names.
type queries struct {
	insertTraces string // $1 created_at; returns the trace ids it inserted
	insertSpans  string // returns how many spans it inserted
	updateTraces string // $1 trace ids
	deleteEmpty  string // $1 trace ids
}

// traceColumns are agno_traces' columns in table order.
var traceColumns = []string{
	"trace_id", "name", "status", "start_time", "end_time", "duration_ms",
	"run_id", "session_id", "user_id", "agent_id", "team_id", "workflow_id", "created_at",
}

func buildQueries(traces, spans, deliveryLog string) queries {
	cols := strings.Join(spanColumns, ", ")
	derived := traceColumns[1 : len(traceColumns)-1] // all but trace_id and created_at
	set := make([]string, len(derived))
	for i, c := range derived {
		set[i] = c + " = a." + c
	}
	return queries{
		// New traces get their final row straight away, computed from the
		// staged batch (their only spans). Existing rows are only locked:
		// ON CONFLICT DO UPDATE locks the conflicting row even when its WHERE
		// is false, so no row version is written, and the ORDER BY takes the
		// locks in trace_id order, so two batches touching the same traces
		// wait for each other instead of deadlocking.
		insertTraces: `INSERT INTO ` + traces + ` (` + strings.Join(traceColumns, ", ") + `)
			SELECT a.*, $1::varchar FROM (` + traceRows(stageTable) + `) a ORDER BY a.trace_id
			ON CONFLICT (trace_id) DO UPDATE SET trace_id = EXCLUDED.trace_id WHERE false
			RETURNING trace_id`,
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
		// A fresh statement sees every batch committed so far (READ
		// COMMITTED), and the rows it updates are locked by insertTraces.
		updateTraces: `UPDATE ` + traces + ` t SET ` + strings.Join(set, ", ") + `
			FROM (` + traceRows(`(SELECT * FROM `+spans+` WHERE trace_id = ANY($1::varchar[])) x`) + `) a
			WHERE t.trace_id = a.trace_id
			AND (t.` + strings.Join(derived, ", t.") + `) IS DISTINCT FROM (a.` + strings.Join(derived, ", a.") + `)`,
		deleteEmpty: `DELETE FROM ` + traces + ` t WHERE t.trace_id = ANY($1::varchar[])
			AND NOT EXISTS (SELECT 1 FROM ` + spans + ` s WHERE s.trace_id = t.trace_id)`,
	}
}

// traceRows is a query over the spans in from (a relation with agno_spans'
// columns) giving one agno_traces row per trace id, without created_at:
//   - spans rank by (root first, start_time, span_id), compared byte-wise
//     (COLLATE "C"), which is time order for the fixed-width time strings
//     whatever the database's collation;
//   - name is the best-ranked span's name; each id column is the value of its
//     attribute key (JSON strings only, not empty) on the best-ranked span that
//     has one: min() over ARRAY[rank..., value] picks it in one pass;
//   - status is ERROR if any span errored, else OK once a root is stored;
//   - duration_ms is end − start, never negative.
func traceRows(from string) string {
	var ids, picks []string
	for _, k := range model.TraceIDKeys {
		key := strings.ReplaceAll(k.Key, "'", "''")
		ids = append(ids, fmt.Sprintf(
			"CASE WHEN jsonb_typeof(attributes -> '%[1]s') = 'string' THEN attributes ->> '%[1]s' END AS %[2]s", key, k.Column))
		picks = append(picks, fmt.Sprintf(
			"(min(ARRAY[rk, start_time, span_id, %[1]s] COLLATE \"C\") FILTER (WHERE %[1]s <> ''))[4] AS %[1]s", k.Column))
	}
	var idCols []string
	for _, k := range model.TraceIDKeys {
		idCols = append(idCols, k.Column)
	}
	return `SELECT trace_id, name, status, start_time, end_time,
			GREATEST(0, trunc(EXTRACT(EPOCH FROM end_time::timestamptz - start_time::timestamptz) * 1000))::bigint AS duration_ms,
			` + strings.Join(idCols, ", ") + `
		FROM (
			SELECT trace_id,
				(min(ARRAY[rk, start_time, span_id, name] COLLATE "C"))[4] AS name,
				CASE WHEN bool_or(status_code = '` + model.StatusError + `') THEN '` + model.StatusError + `'
					WHEN bool_or(rk = '0') THEN '` + model.StatusOK + `'
					ELSE '` + model.StatusUnset + `' END AS status,
				min(start_time COLLATE "C") AS start_time,
				max(end_time COLLATE "C") AS end_time,
				` + strings.Join(picks, ",\n\t\t\t\t") + `
			FROM (
				SELECT trace_id, status_code, name::text AS name, span_id::text AS span_id,
					start_time::text AS start_time, end_time::text AS end_time,
					CASE WHEN parent_span_id IS NULL THEN '0' ELSE '1' END AS rk,
					` + strings.Join(ids, ",\n\t\t\t\t\t") + `
				FROM ` + from + `
			) s
			GROUP BY trace_id
		) g`
}
