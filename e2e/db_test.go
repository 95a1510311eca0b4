package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/kern-agents/trace-gateway/internal/model"
	"github.com/kern-agents/trace-gateway/internal/store"
	"github.com/kern-agents/trace-gateway/internal/store/postgres"
	"github.com/kern-agents/trace-gateway/internal/store/sqlite"
	"github.com/kern-agents/trace-gateway/internal/store/storetest"
	"github.com/kern-agents/trace-gateway/internal/testdb"
)

// postgresDB is a fresh schema on the shared test server.
func postgresDB(t *testing.T) dbTarget {
	t.Helper()
	dsn, schema := testdb.Postgres(t)
	return dbTarget{Driver: "postgres", DSN: dsn, Schema: schema}
}

// sqliteDB is a new database file in the test's temp dir.
func sqliteDB(t *testing.T) dbTarget {
	t.Helper()
	return dbTarget{Driver: "sqlite", DSN: "file:" + filepath.Join(t.TempDir(), "traces.db")}
}

// storedSpan is the part of an agno_spans row the checks need.
type storedSpan struct {
	SpanID, TraceID, Parent, Name, Status, Start, End string
	DurationMS                                        int64
}

type storedTrace struct {
	TraceID, Name, Status, Start, End string
	DurationMS                        int64
}

// dbSnapshot is everything stored in the two tables.
type dbSnapshot struct {
	SpanRows int // count(*) of agno_spans
	Spans    map[string]storedSpan
	Traces   map[string]storedTrace
}

// openStore opens the database with the gateway's own store (which only
// creates what is missing), for reading.
func openStore(ctx context.Context, db dbTarget) (store.Store, error) {
	opts := store.Options{DSN: db.DSN, Schema: db.Schema}
	if db.Driver == "postgres" {
		return postgres.Open(ctx, opts)
	}
	return sqlite.Open(ctx, opts)
}

// readDB reads both tables.
func readDB(t *testing.T, db dbTarget) dbSnapshot {
	t.Helper()
	snap, err := tryReadDB(db)
	if err != nil {
		t.Fatalf("read the trace database: %v", err)
	}
	return snap
}

func tryReadDB(db dbTarget) (dbSnapshot, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := openStore(ctx, db)
	if err != nil {
		return dbSnapshot{}, err
	}
	defer st.Close()
	traces, spans := st.Tables()
	snap := dbSnapshot{Spans: map[string]storedSpan{}, Traces: map[string]storedTrace{}}
	if err := st.DB().QueryRowContext(ctx, "SELECT count(*) FROM "+spans).Scan(&snap.SpanRows); err != nil {
		return snap, fmt.Errorf("count spans: %w", err)
	}
	rows, err := st.DB().QueryContext(ctx, `SELECT span_id, trace_id, COALESCE(parent_span_id, ''), name,
		status_code, start_time, end_time, duration_ms FROM `+spans)
	if err != nil {
		return snap, fmt.Errorf("read spans: %w", err)
	}
	for rows.Next() {
		var s storedSpan
		if err := rows.Scan(&s.SpanID, &s.TraceID, &s.Parent, &s.Name, &s.Status, &s.Start, &s.End, &s.DurationMS); err != nil {
			rows.Close()
			return snap, fmt.Errorf("read spans: %w", err)
		}
		snap.Spans[s.SpanID] = s
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return snap, fmt.Errorf("read spans: %w", err)
	}
	rows, err = st.DB().QueryContext(ctx, `SELECT trace_id, name, status, start_time, end_time, duration_ms FROM `+traces)
	if err != nil {
		return snap, fmt.Errorf("read traces: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var r storedTrace
		if err := rows.Scan(&r.TraceID, &r.Name, &r.Status, &r.Start, &r.End, &r.DurationMS); err != nil {
			return snap, fmt.Errorf("read traces: %w", err)
		}
		snap.Traces[r.TraceID] = r
	}
	return snap, rows.Err()
}

// storedIDs reads only the span ids (cheap enough to poll).
func storedIDs(ctx context.Context, st store.Store) (map[string]bool, error) {
	_, spans := st.Tables()
	rows, err := st.DB().QueryContext(ctx, "SELECT span_id FROM "+spans)
	if err != nil {
		return nil, fmt.Errorf("read span ids: %w", err)
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		out[id] = true
	}
	return out, rows.Err()
}

// expectTrace is what a trace row must say given its stored spans, by the
// stores' own reference rule (storetest.ExpectedTrace).
func expectTrace(spans []storedSpan) storedTrace {
	rows := make([]model.Span, len(spans))
	for i, s := range spans {
		rows[i] = model.Span{SpanID: s.SpanID, TraceID: s.TraceID, ParentSpanID: s.Parent, Name: s.Name,
			StatusCode: s.Status, StartTime: s.Start, EndTime: s.End}
	}
	r := storetest.ExpectedTrace(rows)
	return storedTrace{TraceID: r.TraceID, Name: r.Name, Status: r.Status, Start: r.StartTime, End: r.EndTime, DurationMS: r.DurationMS}
}

// reporter is the part of *testing.T the checks use.
type reporter interface {
	Helper()
	Errorf(format string, args ...any)
}

// storeFigures are the counted results of checkStored.
type storeFigures struct {
	Acked, Stored, Traces int
	// Unacked counts stored spans whose request never got a 200 (cut by a
	// fault after the commit, and not retried to success).
	Unacked int
}

func (f storeFigures) String() string {
	return fmt.Sprintf("acknowledged %d, stored %d spans in %d traces (%d of them never acknowledged)",
		f.Acked, f.Stored, f.Traces, f.Unacked)
}

// checkStored asserts that every acknowledged span is stored, that nothing
// stored is foreign to what was sent, that span ids are unique and that each
// trace row is what its stored spans imply.
func checkStored(t reporter, snap dbSnapshot, acked map[string]time.Time, sent map[string]string) storeFigures {
	t.Helper()
	f := storeFigures{Acked: len(acked), Stored: len(snap.Spans), Traces: len(snap.Traces)}
	missing := 0
	for id := range acked {
		if _, ok := snap.Spans[id]; !ok {
			if missing < 5 {
				t.Errorf("acknowledged span %s (trace %s) is not stored", id, sent[id])
			}
			missing++
		}
	}
	if missing > 0 {
		t.Errorf("%d of %d acknowledged spans are missing from agno_spans", missing, len(acked))
	}
	if snap.SpanRows != len(snap.Spans) {
		t.Errorf("agno_spans has %d rows but %d distinct span ids", snap.SpanRows, len(snap.Spans))
	}
	byTrace := map[string][]storedSpan{}
	for id, s := range snap.Spans {
		if _, ok := acked[id]; !ok {
			f.Unacked++
		}
		if tr, ok := sent[id]; !ok {
			t.Errorf("stored span %s was never sent", id)
		} else if tr != s.TraceID {
			t.Errorf("stored span %s has trace %s, sent with trace %s", id, s.TraceID, tr)
		}
		byTrace[s.TraceID] = append(byTrace[s.TraceID], s)
	}
	bad := 0
	for id, spans := range byTrace {
		got, ok := snap.Traces[id]
		if !ok {
			t.Errorf("trace %s has %d stored spans but no agno_traces row", id, len(spans))
			continue
		}
		if want := expectTrace(spans); got != want {
			if bad < 5 {
				t.Errorf("trace row %s = %+v, its %d stored spans imply %+v", id, got, len(spans), want)
			}
			bad++
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d trace rows disagree with their spans", bad, len(byTrace))
	}
	for id := range snap.Traces {
		if _, ok := byTrace[id]; !ok {
			t.Errorf("trace row %s has no stored span", id)
		}
	}
	return f
}
