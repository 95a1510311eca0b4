package api

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kern-agents/trace-gateway/internal/api/apitest"
	"github.com/kern-agents/trace-gateway/internal/auth"
	"github.com/kern-agents/trace-gateway/internal/convert"
	"github.com/kern-agents/trace-gateway/internal/model"
	"github.com/kern-agents/trace-gateway/internal/store"
)

const (
	tokenA     = "team-a-token-0123456789"
	tokenB     = "team-b-token-0123456789"
	tokenAdmin = "operator-token-0123456789"
)

// tenantRuns generates runs and stamps them with tenant as the receiver
// does for an authenticated sender ("" leaves them unstamped, as without
// authentication).
func tenantRuns(t testing.TB, seed uint64, n int, tenant string) []model.Span {
	t.Helper()
	td := apitest.RunsOTLP(apitest.Options{Traces: n, Seed: seed})
	auth.StampTenant(td, tenant)
	spans, rejected := convert.FromOTLP(td, time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC), convert.Limits{})
	if len(rejected) > 0 {
		t.Fatalf("converter rejected %v", rejected)
	}
	return spans
}

// tenantData is two tenants' runs, runs stored without authentication, a
// trace stored by an older version (resource inline, with its tenant), and
// a span of tenant b in one of a's traces; want maps each tenant ("" for
// unstamped) to its trace and span ids.
type tenantData struct {
	spans        []model.Span
	traces       map[string][]string // tenant -> trace ids
	spanIDs      map[string][]string // tenant -> span ids
	aOnly, bOnly string              // a trace of only a's spans, of only b's
	mixed        string              // a's trace holding one span of b
	mixedB       string              // that span
}

func newTenantData(t testing.TB) *tenantData {
	d := &tenantData{traces: map[string][]string{}, spanIDs: map[string][]string{}}
	a := tenantRuns(t, 21, 6, "team-a")
	b := tenantRuns(t, 22, 6, "team-b")
	none := tenantRuns(t, 23, 3, "")
	legacyID := strings.Repeat("4e", 16)
	root := rawRow(legacyID, 1, `{"openinference.span.kind":"AGENT","kern.resource":{"service.name":"old","kern.tenant":"team-a"}}`)
	child := rawRow(legacyID, 2, `{"openinference.span.kind":"TOOL","kern.resource":{"service.name":"old","kern.tenant":"team-a"}}`)
	child.ParentSpanID = root.SpanID
	d.mixed = a[0].TraceID
	intruder := rawRow(d.mixed, 3, `{"kern.resource":{"kern.tenant":"team-b"}}`)
	d.mixedB = intruder.SpanID
	d.spans = slices.Concat(a, b, none, []model.Span{root, child, intruder})

	tenantOf := func(sp model.Span) string {
		if sp.Origin != nil {
			return sp.Origin.Tenant
		}
		a := attrsOf(sp)
		r, _ := a[model.KeyResource].(map[string]any)
		s, _ := r[auth.TenantAttribute].(string)
		return s
	}
	tenantsOf := map[string]map[string]bool{}
	for _, sp := range d.spans {
		ten := tenantOf(sp)
		d.spanIDs[ten] = append(d.spanIDs[ten], sp.SpanID)
		if tenantsOf[sp.TraceID] == nil {
			tenantsOf[sp.TraceID] = map[string]bool{}
		}
		tenantsOf[sp.TraceID][ten] = true
	}
	for id, ts := range tenantsOf {
		for ten := range ts {
			d.traces[ten] = append(d.traces[ten], id)
		}
	}
	for id, ts := range tenantsOf {
		switch {
		case len(ts) == 1 && ts["team-a"] && id != legacyID:
			d.aOnly = id
		case len(ts) == 1 && ts["team-b"]:
			d.bOnly = id
		}
	}
	if d.aOnly == "" || d.bOnly == "" || len(d.traces["team-a"]) != 7 || len(d.traces["team-b"]) != 7 || len(d.traces[""]) != 3 {
		t.Fatalf("unexpected fixture: %d a, %d b, %d unstamped traces", len(d.traces["team-a"]), len(d.traces["team-b"]), len(d.traces[""]))
	}
	return d
}

func (d *tenantData) all(m map[string][]string) []string {
	var out []string
	for _, ids := range m {
		out = append(out, ids...)
	}
	return out
}

// listAll follows next_cursor to the end of a list and returns the ids
// field of every item, failing on duplicates.
func listAll(t *testing.T, h http.Handler, path string, q url.Values, field string, hdr ...string) []string {
	t.Helper()
	var ids []string
	seen := map[string]bool{}
	for pages := 0; ; pages++ {
		if pages > 500 {
			t.Fatal("pagination does not end")
		}
		code, body := get(t, h, path+"?"+q.Encode(), hdr...)
		if code != 200 {
			t.Fatalf("GET %s?%s: %d %s", path, q.Encode(), code, body)
		}
		l := decode[map[string]any](t, body)
		items, _ := l[strings.TrimPrefix(path, "/api/")].([]any)
		for _, it := range items {
			id := it.(map[string]any)[field].(string)
			if seen[id] {
				t.Fatalf("%s %s returned twice", field, id)
			}
			seen[id] = true
			ids = append(ids, id)
		}
		next, _ := l["next_cursor"].(string)
		if next == "" {
			return ids
		}
		q.Set("cursor", next)
	}
}

func sameSet(t *testing.T, what string, got, want []string) {
	t.Helper()
	got, want = slices.Clone(got), slices.Clone(want)
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("%s: got %d %v\nwant %d %v", what, len(got), got, len(want), want)
	}
}

// detailSpanIDs lists the span ids of a trace detail.
func detailSpanIDs(roots []*SpanNode) []string {
	var out []string
	for _, r := range roots {
		out = append(out, r.SpanID)
		out = append(out, detailSpanIDs(r.Children)...)
	}
	return out
}

// TestTenantScope: a tenant's token reads only the traces and spans its
// tenant sent, and another tenant's trace answers exactly like a missing
// one; an admin token and an API without authentication read everything.
func TestTenantScope(t *testing.T) {
	for _, sd := range stores {
		t.Run(sd.name, func(t *testing.T) {
			d := newTenantData(t)
			st := sd.open(t)
			apitest.Load(t, st, d.spans)
			a := auth.New([]auth.Token{
				{Token: tokenA, Tenant: "team-a"},
				{Token: tokenB, Tenant: "team-b"},
				{Token: tokenAdmin, Tenant: "ops", Admin: true},
			})
			// A small scan window, so that scoped pages are cut by it and
			// pagination still finds every trace.
			opts := Options{ScanWindow: 5}
			authed := New(st, Options{ScanWindow: opts.ScanWindow, Auth: a})
			open := New(st, opts)
			bearer := func(tok string) []string { return []string{"Authorization", "Bearer " + tok} }
			callers := []struct {
				name   string
				h      http.Handler
				hdr    []string
				traces []string
				spans  []string
			}{
				{"team-a", authed, bearer(tokenA), d.traces["team-a"], d.spanIDs["team-a"]},
				{"team-b", authed, bearer(tokenB), d.traces["team-b"], d.spanIDs["team-b"]},
				{"admin", authed, bearer(tokenAdmin), uniq(d.all(d.traces)), d.all(d.spanIDs)},
				{"no auth", open, nil, uniq(d.all(d.traces)), d.all(d.spanIDs)},
			}
			for _, c := range callers {
				for _, q := range []url.Values{{"limit": {"3"}}, {"limit": {"2"}, "order": {"asc"}, "sort": {"duration_ms"}}} {
					sameSet(t, c.name+" traces "+q.Encode(), listAll(t, c.h, "/api/traces", q, "trace_id", c.hdr...), c.traces)
				}
				sameSet(t, c.name+" spans", listAll(t, c.h, "/api/spans", url.Values{"limit": {"7"}}, "span_id", c.hdr...), c.spans)
			}

			// The answer to a missing trace, for each tenant.
			missing := strings.Repeat("5f", 16)
			codeA, notFoundA := get(t, authed, "/api/traces/"+missing, bearer(tokenA)...)
			codeB, notFoundB := get(t, authed, "/api/traces/"+missing, bearer(tokenB)...)
			if codeA != 404 || codeB != 404 || string(notFoundA) != string(notFoundB) {
				t.Fatalf("missing trace: %d %s / %d %s", codeA, notFoundA, codeB, notFoundB)
			}
			for _, c := range []struct {
				tok, trace string
			}{{tokenA, d.bOnly}, {tokenB, d.aOnly}, {tokenA, d.traces[""][0]}, {tokenB, d.traces[""][0]}} {
				code, body := get(t, authed, "/api/traces/"+c.trace, bearer(c.tok)...)
				if code != 404 || string(body) != string(notFoundA) {
					t.Errorf("another tenant's trace %s: %d %s, want 404 %s", c.trace, code, body, notFoundA)
				}
				if ids := listAll(t, authed, "/api/spans", url.Values{"trace_id": {c.trace}}, "span_id", bearer(c.tok)...); len(ids) != 0 {
					t.Errorf("spans of another tenant's trace %s: %v", c.trace, ids)
				}
			}

			// Each reader of a trace sees its own spans of it: in the
			// trace a shares with one span of b, a sees all but that span
			// and b only that one.
			want := map[string][]string{}
			for _, sp := range d.spans {
				if sp.TraceID == d.mixed {
					if sp.SpanID == d.mixedB {
						want[tokenB] = append(want[tokenB], sp.SpanID)
					} else {
						want[tokenA] = append(want[tokenA], sp.SpanID)
					}
					want[tokenAdmin] = append(want[tokenAdmin], sp.SpanID)
				}
			}
			for tok, ids := range want {
				code, body := get(t, authed, "/api/traces/"+d.mixed, bearer(tok)...)
				if code != 200 {
					t.Fatalf("shared trace: %d %s", code, body)
				}
				det := decode[TraceDetail](t, body)
				sameSet(t, fmt.Sprintf("shared trace spans (token %.6s)", tok), detailSpanIDs(det.Spans), ids)
				if det.SpanCount != len(ids) {
					t.Errorf("shared trace span_count %d, want %d", det.SpanCount, len(ids))
				}
			}
			for _, c := range []struct {
				h   http.Handler
				hdr []string
			}{{authed, bearer(tokenA)}, {authed, bearer(tokenAdmin)}, {open, nil}} {
				for _, id := range []string{d.aOnly, strings.Repeat("4e", 16)} {
					if code, body := get(t, c.h, "/api/traces/"+id, c.hdr...); code != 200 {
						t.Errorf("trace %s: %d %s", id, code, body)
					}
				}
			}
		})
	}
}

func uniq(ids []string) []string {
	out := slices.Clone(ids)
	slices.Sort(out)
	return slices.Compact(out)
}

// rowsOnly hides a store's rollups (store.Summarizer), so the API
// summarises from the rows.
type rowsOnly struct{ store.Store }

// TestTenantSummary: a tenant's summary is the summary of a store holding
// only its data; an admin token and no authentication summarise all of
// it. Both from the rollups and from the rows.
func TestTenantSummary(t *testing.T) {
	a := tenantRuns(t, 31, 8, "team-a")
	b := tenantRuns(t, 32, 5, "team-b")
	none := tenantRuns(t, 33, 3, "")
	const q = "/api/summary?start=2025-06-01T00:00:00Z&end=2025-06-02T00:00:00Z"
	for _, sd := range stores {
		t.Run(sd.name, func(t *testing.T) {
			load := func(spans ...[]model.Span) store.Store {
				st := sd.open(t)
				apitest.Load(t, st, slices.Concat(spans...))
				return st
			}
			st, onlyA, onlyB := load(a, b, none), load(a), load(b)
			tokens := auth.New([]auth.Token{
				{Token: tokenA, Tenant: "team-a"},
				{Token: tokenB, Tenant: "team-b"},
				{Token: tokenAdmin, Tenant: "ops", Admin: true},
			})
			for _, mode := range []struct {
				name string
				wrap func(store.Store) store.Store
			}{
				{"rollups", func(s store.Store) store.Store { return s }},
				{"rows", func(s store.Store) store.Store { return rowsOnly{s} }},
			} {
				summary := func(s store.Store, token string) string {
					t.Helper()
					opts := Options{}
					var hdr []string
					if token != "" {
						opts.Auth, hdr = tokens, []string{"Authorization", "Bearer " + token}
					}
					code, body := get(t, New(mode.wrap(s), opts), q, hdr...)
					if code != 200 {
						t.Fatalf("%s summary: %d %s", mode.name, code, body)
					}
					return string(body)
				}
				all := summary(st, "")
				if n := decode[Summary](t, []byte(all)).TraceCount; n != 16 {
					t.Fatalf("%s: %d traces in all, want 16", mode.name, n)
				}
				for _, c := range []struct {
					name, got, want string
				}{
					{"team-a", summary(st, tokenA), summary(onlyA, "")},
					{"team-b", summary(st, tokenB), summary(onlyB, "")},
					{"admin", summary(st, tokenAdmin), all},
				} {
					if c.got != c.want {
						t.Errorf("%s %s summary:\n got %s\nwant %s", mode.name, c.name, c.got, c.want)
					}
				}
			}
		})
	}
}
