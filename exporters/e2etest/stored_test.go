package e2etest

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/kern-agents/trace-gateway/internal/model"
	"github.com/kern-agents/trace-gateway/internal/semantics"
	"github.com/kern-agents/trace-gateway/internal/store"
	"github.com/kern-agents/trace-gateway/internal/store/postgres"
	"github.com/kern-agents/trace-gateway/internal/store/sqlite"
	"github.com/kern-agents/trace-gateway/internal/testdb"
)

// database is a trace database as the gateway's storage config names it.
type database struct {
	Driver, DSN, Schema string
}

func sqliteDB(t *testing.T) database {
	t.Helper()
	return database{Driver: "sqlite", DSN: "file:" + filepath.Join(t.TempDir(), "traces.db")}
}

func postgresDB(t *testing.T) database {
	t.Helper()
	dsn, schema := testdb.Postgres(t)
	return database{Driver: "postgres", DSN: dsn, Schema: schema}
}

// storage is the `storage:` block of the gateway config.
func (d database) storage() map[string]any {
	s := map[string]any{"driver": d.Driver, "dsn": d.DSN}
	if d.Schema != "" {
		s["schema"] = d.Schema
	}
	return s
}

// storedSpan is one agno_spans row, with its attributes decoded.
type storedSpan struct {
	ID, TraceID, Name, Status string
	Attrs                     map[string]any
}

// Str is the stored attribute key as text ("" when absent).
func (s storedSpan) Str(key string) string {
	switch v := s.Attrs[key].(type) {
	case nil:
		return ""
	case string:
		return v
	default:
		return fmt.Sprint(v)
	}
}

// Has reports whether the sender (or the gateway) set key.
func (s storedSpan) Has(key string) bool {
	_, ok := s.Attrs[key]
	return ok
}

func (s storedSpan) Type() string     { return s.Str(model.KeySpanType) }
func (s storedSpan) Model() string    { return s.Str(semantics.KeyModel) }
func (s storedSpan) ToolName() string { return s.Str(semantics.KeyToolName) }
func (s storedSpan) ExcType() string  { return s.Str(semantics.KeyExceptionType) }
func (s storedSpan) ExcMsg() string   { return s.Str(semantics.KeyExceptionMessage) }

// Failed is true for spans stored with status ERROR.
func (s storedSpan) Failed() bool { return s.Status == model.StatusError }

// ErrorMessage is "Type: message" of the span's exception.
func (s storedSpan) ErrorMessage() string { return s.ExcType() + ": " + s.ExcMsg() }

func (s storedSpan) String() string {
	return fmt.Sprintf("span %s %q (%s)", s.ID, s.Name, s.Type())
}

// readStored reads every row of agno_spans with the gateway's own store
// (which only creates what is missing).
func readStored(db database) (map[string]storedSpan, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	opts := store.Options{DSN: db.DSN, Schema: db.Schema}
	var st store.Store
	var err error
	if db.Driver == "postgres" {
		st, err = postgres.Open(ctx, opts)
	} else {
		st, err = sqlite.Open(ctx, opts)
	}
	if err != nil {
		return nil, fmt.Errorf("open the %s trace database: %w", db.Driver, err)
	}
	defer st.Close()
	_, spans := st.Tables()
	rows, err := st.DB().QueryContext(ctx, "SELECT span_id, trace_id, name, status_code, attributes FROM "+spans)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", spans, err)
	}
	defer rows.Close()
	out := map[string]storedSpan{}
	for rows.Next() {
		var s storedSpan
		var attrs []byte
		if err := rows.Scan(&s.ID, &s.TraceID, &s.Name, &s.Status, &attrs); err != nil {
			return nil, fmt.Errorf("read %s: %w", spans, err)
		}
		if err := json.Unmarshal(attrs, &s.Attrs); err != nil {
			return nil, fmt.Errorf("%s: attributes: %w", s, err)
		}
		out[s.ID] = s
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", spans, err)
	}
	return out, nil
}

// checkWorkload fails unless the stored spans hold every kind of step the
// vendor mappings are checked on, so that a change in the simulation cannot
// quietly leave a mapping unchecked.
func checkWorkload(t *testing.T, stored map[string]storedSpan) {
	t.Helper()
	types := map[string]int{}
	var failedTools, teams, openInference, genAI int
	for _, s := range stored {
		types[s.Type()]++
		if s.Type() == semantics.TypeTool && s.Failed() {
			if s.ExcType() == "" || s.ExcMsg() == "" {
				t.Errorf("%s failed but has no stored exception (kern.exception.type %q, .message %q)", s, s.ExcType(), s.ExcMsg())
			}
			failedTools++
		}
		if s.Type() == semantics.TypeTool && s.ToolName() == "" {
			t.Errorf("%s: tool call stored without %s", s, semantics.KeyToolName)
		}
		if s.Type() == semantics.TypeLLM && s.Model() == "" {
			t.Errorf("%s: LLM call stored without %s", s, semantics.KeyModel)
		}
		if s.Str(semantics.KeyRunKind) == "team" {
			teams++
		}
		if s.Has("openinference.span.kind") {
			openInference++
		}
		if s.Has("gen_ai.operation.name") {
			genAI++
		}
	}
	for _, typ := range []string{
		semantics.TypeRun, semantics.TypeLLM, semantics.TypeEmbedding, semantics.TypeTool, semantics.TypeRetrieval,
		semantics.TypePreHook, semantics.TypePostHook, semantics.TypeDelegation,
	} {
		if types[typ] == 0 {
			t.Errorf("the workload stored no %q span (types stored: %v)", typ, types)
		}
	}
	if types[semantics.TypeOther] > 0 {
		t.Errorf("%d stored spans were not classified (other); the mapping checks expect every span typed", types[semantics.TypeOther])
	}
	if failedTools == 0 {
		t.Error("the workload stored no failed tool call")
	}
	if teams == 0 {
		t.Error("the workload stored no team run")
	}
	if openInference == 0 || genAI == 0 {
		t.Errorf("the workload should use both conventions: %d OpenInference and %d GenAI spans", openInference, genAI)
	}
	if t.Failed() {
		t.FailNow()
	}
	t.Logf("workload: %d spans stored, by type %v; %d failed tools, %d team run spans; %d OpenInference and %d GenAI spans",
		len(stored), types, failedTools, teams, openInference, genAI)
}
