package storetest

import (
	"context"
	"database/sql"
	"strings"
	"testing"

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/kern-agents/trace-gateway/internal/convert"
	"github.com/kern-agents/trace-gateway/internal/model"
	"github.com/kern-agents/trace-gateway/internal/store"
)

// resourcesTable is the quoted name of s's store.ResourcesTable, in the
// schema of its AgentOS tables.
func resourcesTable(s store.Store) string {
	traces, _ := s.Tables()
	parts := splitIdent(traces)
	name := `"` + store.ResourcesTable + `"`
	if len(parts) == 2 {
		name = `"` + strings.ReplaceAll(parts[0], `"`, `""`) + `".` + name
	}
	return name
}

// checkOrigins checks that written (some of them referencing origin) stored
// origin once in the resources table, and that the fan-out reads every span
// back with its Origin: spans that reference one get it, and rows stored
// before origins were kept apart (the resource inline under kern.resource,
// the scope under kern.scope) get none and still convert to OTLP with their
// resource and scope.
func checkOrigins(t *testing.T, s store.Store, written []model.Span, origin *model.Origin) {
	t.Helper()
	ctx := context.Background()
	var n int
	var res, scope, tenant sql.NullString
	q := `SELECT count(*) OVER (), resource, scope, tenant FROM ` + resourcesTable(s) + ` WHERE id = ` + placeholder(s, 1)
	if err := s.DB().QueryRowContext(ctx, q, origin.ID).Scan(&n, &res, &scope, &tenant); err != nil {
		t.Fatalf("resources row %s: %v", origin.ID, err)
	}
	if n != 1 || !SameJSON([]byte(res.String), origin.Resource) || !SameJSON([]byte(scope.String), origin.Scope) || tenant.String != origin.Tenant {
		t.Errorf("resources row %s = %d rows, %s, %s, tenant %q; want 1, %s, %s, %q",
			origin.ID, n, res.String, scope.String, tenant.String, origin.Resource, origin.Scope, origin.Tenant)
	}

	dl, ok := s.(store.DeliveryLog)
	if !ok {
		return
	}
	legacy := model.Span{
		SpanID: "5555555555555555", TraceID: strings.Repeat("5", 32), Name: "OpenAIChat.invoke", SpanKind: model.KindClient,
		StatusCode: model.StatusOK, StartTime: at(0), EndTime: at(5), DurationMS: 5, CreatedAt: at(10),
		Attributes: []byte(`{"kern.span.type":"llm","kern.model":"gpt-4o","llm.model_name":"gpt-4o",` +
			`"kern.resource":{"service.name":"old-agentos","host.name":"h1"},"kern.scope":{"name":"old-scope","version":"0.9"}}`),
	}
	write(t, s, legacy)
	ids := []string{legacy.SpanID}
	want := map[string]*model.Origin{legacy.SpanID: nil}
	for _, sp := range written {
		ids = append(ids, sp.SpanID)
		want[sp.SpanID] = sp.Origin
	}
	loaded := loadWithOrigins(t, dl, ids, want)

	td, err := convert.ToOTLP(loaded)
	if err != nil {
		t.Fatalf("ToOTLP of the loaded spans: %v", err)
	}
	type where struct{ service, scope string }
	found := map[string]where{}
	for i := range td.ResourceSpans().Len() {
		rs := td.ResourceSpans().At(i)
		svc := ""
		if v, ok := rs.Resource().Attributes().Get("service.name"); ok {
			svc = v.AsString()
		}
		for j := range rs.ScopeSpans().Len() {
			ss := rs.ScopeSpans().At(j)
			eachSpan(ss.Spans(), func(sp ptrace.Span) {
				found[sp.SpanID().String()] = where{svc, ss.Scope().Name()}
			})
		}
	}
	for _, sp := range loaded {
		w := where{"agentos", "openinference.instrumentation.agno"}
		switch {
		case sp.SpanID == legacy.SpanID:
			w = where{"old-agentos", "old-scope"}
		case want[sp.SpanID] == nil:
			w = where{}
		}
		if got := found[sp.SpanID]; got != w {
			t.Errorf("span %s converted to OTLP under resource %q, scope %q; want %q, %q", sp.SpanID, got.service, got.scope, w.service, w.scope)
		}
	}
}

func eachSpan(spans ptrace.SpanSlice, fn func(ptrace.Span)) {
	for i := range spans.Len() {
		fn(spans.At(i))
	}
}

// loadWithOrigins reads the spans ids through the fan-out's Spans and
// checks that each comes with the Origin want has for it (nil: none).
func loadWithOrigins(t *testing.T, dl store.DeliveryLog, ids []string, want map[string]*model.Origin) []model.Span {
	t.Helper()
	loaded, err := dl.Spans(context.Background(), ids)
	if err != nil {
		t.Fatalf("Spans: %v", err)
	}
	if len(loaded) != len(ids) {
		t.Fatalf("Spans loaded %d spans, want %d", len(loaded), len(ids))
	}
	for _, sp := range loaded {
		w, got := want[sp.SpanID], sp.Origin
		switch {
		case w == nil && got != nil:
			t.Errorf("span %s: Origin %+v, want none", sp.SpanID, got)
		case w != nil && got == nil:
			t.Errorf("span %s: no Origin, want %s", sp.SpanID, w.ID)
		case w != nil && (got.ID != w.ID || !SameJSON(got.Resource, w.Resource) || !SameJSON(got.Scope, w.Scope)):
			t.Errorf("span %s: Origin %s %s %s, want %s %s %s", sp.SpanID, got.ID, got.Resource, got.Scope, w.ID, w.Resource, w.Scope)
		}
	}
	return loaded
}
