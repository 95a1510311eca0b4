package e2etest

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/kern-agents/trace-gateway/internal/model"
	"github.com/kern-agents/trace-gateway/internal/semantics"
	"github.com/kern-agents/trace-gateway/internal/spaninfo"
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

// storedSpan is one agno_spans row, with its attributes decoded and its
// facts computed from them, as a vendor mapping computes them.
type storedSpan struct {
	ID, TraceID, Name, Status string
	Attrs                     map[string]any
	Facts                     map[string]any // semantics.Normalize
	info                      semantics.Info
}

// derived reports whether the span holds under key the text the gateway
// derived from its other keys (for AgentOS) rather than the sender's own.
func (s storedSpan) derived(key string) bool {
	cur, ok := s.Attrs[key].(string)
	if !ok {
		return false
	}
	v, ok := spaninfo.Derive(s.info, s.Attrs, key)
	return ok && v == cur
}

// fact is one of the span's facts as text ("" when absent).
func (s storedSpan) fact(key string) string {
	v, _ := s.Facts[key].(string)
	return v
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

func (s storedSpan) Type() string     { return s.fact(semantics.KeySpanType) }
func (s storedSpan) Model() string    { return s.fact(semantics.KeyModel) }
func (s storedSpan) ToolName() string { return s.fact(semantics.KeyToolName) }
func (s storedSpan) ExcType() string  { return s.fact(semantics.KeyExceptionType) }
func (s storedSpan) ExcMsg() string   { return s.fact(semantics.KeyExceptionMessage) }

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
	rows, err := st.DB().QueryContext(ctx, "SELECT span_id, trace_id, name, status_code, status_message, attributes FROM "+spans)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", spans, err)
	}
	defer rows.Close()
	out := map[string]storedSpan{}
	for rows.Next() {
		var s storedSpan
		var attrs []byte
		var msg sql.NullString
		if err := rows.Scan(&s.ID, &s.TraceID, &s.Name, &s.Status, &msg, &attrs); err != nil {
			return nil, fmt.Errorf("read %s: %w", spans, err)
		}
		if err := json.Unmarshal(attrs, &s.Attrs); err != nil {
			return nil, fmt.Errorf("span %s: attributes: %w", s.ID, err)
		}
		s.info = storedInfo(s, msg.String)
		s.Facts = semantics.Normalize(s.info, s.Attrs)
		out[s.ID] = s
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", spans, err)
	}
	return out, nil
}

// storedInfo is what semantics reads about a stored span besides its
// attributes: name, status and exception events (in kern.events).
func storedInfo(s storedSpan, statusMessage string) semantics.Info {
	info := semantics.Info{Name: s.Name, StatusCode: s.Status, StatusMessage: statusMessage}
	events, _ := s.Attrs[model.KeyEvents].([]any)
	for _, e := range events {
		ev, _ := e.(map[string]any)
		if name, _ := ev["name"].(string); name == "exception" {
			attrs, _ := ev["attributes"].(map[string]any)
			info.Events = append(info.Events, semantics.Event{Name: name, Attributes: attrs})
		}
	}
	return info
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
				t.Errorf("%s failed but has no exception (type %q, message %q)", s, s.ExcType(), s.ExcMsg())
			}
			failedTools++
		}
		if k, _ := s.Attrs[semantics.AttrSpanKind].(string); k == "" {
			t.Errorf("%s stored without %s, which AgentOS reads", s, semantics.AttrSpanKind)
		}
		if s.Type() == semantics.TypeTool && s.ToolName() == "" {
			t.Errorf("%s: tool call stored without a tool name", s)
		}
		if s.Type() == semantics.TypeLLM && s.Model() == "" {
			t.Errorf("%s: LLM call stored without a model", s)
		}
		if s.fact(semantics.KeyRunKind) == semantics.RunTeam {
			teams++
		}
		// The gateway stores openinference.span.kind on every span; these
		// keys only OpenInference instrumentations send.
		if s.Has("graph.node.id") || s.Has("input.mime_type") || s.Has("output.mime_type") {
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
