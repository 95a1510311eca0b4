package storetest

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/kern-agents/trace-gateway/internal/model"
	"github.com/kern-agents/trace-gateway/internal/store"
)

// runAdoption checks how a store takes over tables it did not create:
// AgentOS's own (adopted as they are, no index added), an earlier gateway's
// (ix_ indexes renamed or replaced, SQLite attributes declared JSON, the
// stored rows still read back), and AgentOS's with an earlier gateway's
// duplicate indexes beside them (dropped).
func runAdoption(t *testing.T, dialect string, fresh func(t *testing.T) store.Options, open func(t *testing.T, opts store.Options) store.Store) {
	t.Run("AgentOSCreatedTables", func(t *testing.T) {
		opts := fresh(t).WithDefaults()
		raw := OpenRaw(t, dialect, opts)
		Exec(t, raw, AgentOSDDL(dialect, opts.Schema, opts.TracesTable, opts.SpansTable)...)
		before := indexIDs(t, raw, dialect, opts)
		s := open(t, opts)
		checkSchema(t, s, true)
		if after := indexIDs(t, raw, dialect, opts); !mapsSame(before, after) {
			t.Errorf("indexes changed by the gateway:\n before %v\n after  %v", before, after)
		}
		tr := AgentTrace(rand.New(rand.NewSource(7)), time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC))
		write(t, s, tr...)
		checkTraces(t, s, map[string][]model.Span{tr[0].TraceID: tr})
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		checkSchema(t, open(t, opts), true) // and again on the next start
	})

	t.Run("AgentOSTablesWithOldGatewayIndexes", func(t *testing.T) {
		opts := fresh(t).WithDefaults()
		raw := OpenRaw(t, dialect, opts)
		Exec(t, raw, AgentOSDDL(dialect, opts.Schema, opts.TracesTable, opts.SpansTable)...)
		Exec(t, raw, OldGatewayIndexes(dialect, opts.Schema, opts.TracesTable, opts.SpansTable)...)
		before := indexIDs(t, raw, dialect, opts)
		s := open(t, opts)
		checkSchema(t, s, true)
		after := indexIDs(t, raw, dialect, opts)
		for name, id := range after {
			if before[name] != id {
				t.Errorf("AgentOS's index %s was replaced", name)
			}
		}
	})

	t.Run("OldGatewayInstall", func(t *testing.T) {
		opts := fresh(t).WithDefaults()
		raw := OpenRaw(t, dialect, opts)
		Exec(t, raw, OldGatewayDDL(dialect, opts.Schema, opts.TracesTable, opts.SpansTable)...)
		old := OldGatewayRows(t, raw, dialect, opts)
		before := indexIDs(t, raw, dialect, opts)

		s := open(t, opts)
		CheckSchema(t, s)
		if dialect == "postgres" {
			// Renamed in place: the same index, nothing rebuilt.
			after := indexIDs(t, raw, dialect, opts)
			for name, id := range before {
				renamed := "idx_" + strings.TrimPrefix(name, "ix_")
				if after[renamed] != id {
					t.Errorf("index %s was not renamed to %s (before %v, after %v)", name, renamed, before, after)
				}
			}
		} else {
			var ok string
			if err := raw.QueryRow(`PRAGMA integrity_check`).Scan(&ok); err != nil || ok != "ok" {
				t.Errorf("integrity_check after declaring attributes JSON = %q, %v", ok, err)
			}
			// Another program's fresh connection (AgentOS reflecting the
			// table) sees the new declaration.
			var typ string
			if err := OpenRaw(t, dialect, opts).QueryRow(`SELECT type FROM pragma_table_info(?) WHERE name = 'attributes'`,
				opts.SpansTable).Scan(&typ); err != nil || typ != "JSON" {
				t.Errorf("attributes declared %q (%v) on a new connection, want JSON", typ, err)
			}
		}

		// The rows stored before read back as they were, and their trace
		// grows as any other.
		ctx := context.Background()
		got, err := ReadSpans(ctx, s, old[0].TraceID)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(old) {
			t.Fatalf("%d old spans read back, want %d", len(got), len(old))
		}
		for i := range old {
			if d := SpanDiff(old[i], got[i]); d != "" {
				t.Error(d)
			}
		}
		// An OK span turns the old row's UNSET into OK, an ERROR one into
		// ERROR.
		stored := old
		for i, st := range []ptrace.StatusCode{ptrace.StatusCodeOk, ptrace.StatusCodeError} {
			child := Stored(time.Date(2025, 2, 1, 0, 0, 10, 0, time.UTC), Sent{
				Resource: map[string]any{"service.name": "agentos"}, Scope: "openinference.instrumentation.agno",
				Spans: []SentSpan{{
					TraceID: old[0].TraceID, SpanID: fmt.Sprintf("777777777777100%d", i), ParentID: old[0].SpanID, Name: "web_search",
					Start: time.Date(2025, 2, 1, 0, 0, 2, 0, time.UTC), End: time.Date(2025, 2, 1, 0, 0, 3, 0, time.UTC),
					Status: st, Attrs: map[string]any{"openinference.span.kind": "TOOL", "tool.name": "web_search"},
				}},
			})
			write(t, s, child...)
			stored = append(stored, child...)
			checkTraces(t, s, map[string][]model.Span{old[0].TraceID: stored})
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		CheckSchema(t, open(t, opts))
	})
}

// OldGatewayRows stores, with raw SQL, a trace as an earlier gateway stored it:
// status UNSET, the resource and scope inline in every span, kern.* copies.
func OldGatewayRows(t *testing.T, db *sql.DB, dialect string, opts store.Options) []model.Span {
	t.Helper()
	traces, spans := `"`+opts.TracesTable+`"`, `"`+opts.SpansTable+`"`
	mark := "?"
	if dialect == "postgres" {
		traces, spans = `"`+opts.Schema+`".`+traces, `"`+opts.Schema+`".`+spans
		mark = "$"
	}
	p := func(n int) string { return mark + strconv.Itoa(n) }
	tr := strings.Repeat("7", 32)
	res := `"kern.resource":{"service.name":"agentos","host.name":"old-host"},"kern.scope":{"name":"openinference.instrumentation.agno","version":"0.1.12"}`
	old := []model.Span{
		{
			SpanID: "7777777777770001", TraceID: tr, Name: "Agent.run", SpanKind: "INTERNAL", StatusCode: model.StatusUnset,
			StartTime: "2025-02-01T00:00:00.000000+00:00", EndTime: "2025-02-01T00:00:04.000000+00:00", DurationMS: 4000,
			CreatedAt:  "2025-02-01T00:00:05.000000+00:00",
			Attributes: []byte(`{"openinference.span.kind":"AGENT","agno.run.id":"old-run","kern.span.type":"run","kern.run.kind":"agent","kern.run_id":"old-run",` + res + `}`),
		},
		{
			SpanID: "7777777777770002", TraceID: tr, ParentSpanID: "7777777777770001", Name: "chat gpt-4o", SpanKind: "CLIENT",
			StatusCode: model.StatusOK, StartTime: "2025-02-01T00:00:01.000000+00:00", EndTime: "2025-02-01T00:00:01.500000+00:00",
			DurationMS: 500, CreatedAt: "2025-02-01T00:00:05.000000+00:00",
			Attributes: []byte(`{"gen_ai.request.model":"gpt-4o","kern.span.type":"llm","kern.model":"gpt-4o","kern.usage.input_tokens":12,` + res + `}`),
		},
	}
	if _, err := db.Exec(`INSERT INTO `+traces+` (trace_id, name, status, start_time, end_time, duration_ms, run_id, created_at)
		VALUES (`+p(1)+`, 'Agent.run', 'UNSET', `+p(2)+`, `+p(3)+`, 4000, 'old-run', `+p(4)+`)`,
		tr, old[0].StartTime, old[0].EndTime, old[0].CreatedAt); err != nil {
		t.Fatalf("insert old trace: %v", err)
	}
	for _, sp := range old {
		var parent any
		if sp.ParentSpanID != "" {
			parent = sp.ParentSpanID
		}
		if _, err := db.Exec(`INSERT INTO `+spans+` (span_id, trace_id, parent_span_id, name, span_kind, status_code,
			start_time, end_time, duration_ms, attributes, created_at)
			VALUES (`+p(1)+`, `+p(2)+`, `+p(3)+`, `+p(4)+`, `+p(5)+`, `+p(6)+`, `+p(7)+`, `+p(8)+`, `+p(9)+`, `+p(10)+`, `+p(11)+`)`,
			sp.SpanID, sp.TraceID, parent, sp.Name, sp.SpanKind, sp.StatusCode, sp.StartTime, sp.EndTime,
			sp.DurationMS, string(sp.Attributes), sp.CreatedAt); err != nil {
			t.Fatalf("insert old span: %v", err)
		}
	}
	return old
}

// indexIDs maps the names of the indexes on opts' AgentOS tables (primary
// keys aside) to an identity that survives a rename: the index's OID on
// PostgreSQL, its definition's columns on SQLite (which cannot rename one).
func indexIDs(t *testing.T, db *sql.DB, dialect string, opts store.Options) map[string]string {
	t.Helper()
	out := map[string]string{}
	var rows *sql.Rows
	var err error
	if dialect == "postgres" {
		rows, err = db.Query(`SELECT c.relname, c.oid::text FROM pg_index i
			JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_class tb ON tb.oid = i.indrelid
			JOIN pg_namespace n ON n.oid = tb.relnamespace
			WHERE n.nspname = $1 AND tb.relname IN ($2, $3) AND NOT i.indisprimary`, opts.Schema, opts.TracesTable, opts.SpansTable)
	} else {
		rows, err = db.Query(`SELECT name, tbl_name || '.' || coalesce(sql, '') FROM sqlite_schema
			WHERE type = 'index' AND tbl_name IN (?1, ?2) AND sql IS NOT NULL`, opts.TracesTable, opts.SpansTable)
	}
	if err != nil {
		t.Fatalf("list indexes: %v", err)
	}
	defer rows.Close()
	for rows.Next() {
		var name, id string
		if err := rows.Scan(&name, &id); err != nil {
			t.Fatal(err)
		}
		out[name] = id
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func mapsSame(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}
