package api

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/kern-agents/trace-gateway/internal/api/apitest"
	"github.com/kern-agents/trace-gateway/internal/auth"
	"github.com/kern-agents/trace-gateway/internal/model"
	"github.com/kern-agents/trace-gateway/internal/semantics"
	"github.com/kern-agents/trace-gateway/internal/store"
)

// fixture is a store loaded with generated runs plus what the tests expect
// of them, computed in Go from the spans (not from SQL).
type fixture struct {
	st     store.Store
	h      http.Handler
	spans  []model.Span
	traces map[string]*expTrace
}

type expTrace struct {
	id, name, status, start, user string
	dur                           int64
	team                          bool
	spans                         []model.Span
}

var stores = []struct {
	name string
	open func(testing.TB) store.Store
}{
	{"sqlite", apitest.SQLite},
	{"postgres", apitest.Postgres},
}

func newFixture(t testing.TB, open func(testing.TB) store.Store, opts Options) *fixture {
	t.Helper()
	st := open(t)
	spans := apitest.Runs(apitest.Options{Traces: 60, Users: 3, ErrorRatio: 0.3, Seed: 7})
	apitest.Load(t, st, spans)
	f := &fixture{st: st, spans: spans, traces: map[string]*expTrace{}}
	for _, s := range spans {
		e := f.traces[s.TraceID]
		if e == nil {
			e = &expTrace{id: s.TraceID, status: model.StatusOK}
			f.traces[s.TraceID] = e
		}
		e.spans = append(e.spans, s)
		if s.StatusCode == model.StatusError {
			e.status = model.StatusError
		}
		if s.ParentSpanID == "" {
			e.name, e.start = s.Name, s.StartTime
			e.dur = s.DurationMS
			e.team = strings.HasPrefix(s.Name, "Team.run")
			e.user = semantics.RootIDs(attrsOf(s)).UserID
		}
	}
	if opts.Now == nil {
		opts.Now = func() time.Time { return time.Date(2025, 6, 1, 13, 0, 0, 0, time.UTC) }
	}
	f.h = New(st, opts)
	return f
}

// expected lists trace ids matching keep in the given order.
func (f *fixture) expected(keep func(*expTrace) bool, less func(a, b *expTrace) bool) []string {
	var es []*expTrace
	for _, e := range f.traces {
		if keep(e) {
			es = append(es, e)
		}
	}
	sort.Slice(es, func(i, j int) bool { return less(es[i], es[j]) })
	ids := make([]string, len(es))
	for i, e := range es {
		ids[i] = e.id
	}
	return ids
}

// earliest is the first trace by start time that keep accepts.
func (f *fixture) earliest(keep func(*expTrace) bool) *expTrace {
	ids := f.expected(keep, func(a, b *expTrace) bool { return byStartDesc(b, a) })
	if len(ids) == 0 {
		panic("the fixture holds no such trace")
	}
	return f.traces[ids[0]]
}

func byStartDesc(a, b *expTrace) bool {
	if a.start != b.start {
		return a.start > b.start
	}
	return a.id > b.id
}

func get(t testing.TB, h http.Handler, target string, hdr ...string) (int, []byte) {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, target, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code, rec.Body.Bytes()
}

// attrsOf decodes a stored span's attributes.
func attrsOf(s model.Span) map[string]any {
	var a map[string]any
	if err := json.Unmarshal(s.Attributes, &a); err != nil {
		panic(err)
	}
	return a
}

// factsOf is what the API should report as the span's facts, computed
// from the stored row in Go.
func factsOf(s model.Span) map[string]any {
	info := semantics.Info{Name: s.Name, Kind: s.SpanKind, ParentSpanID: s.ParentSpanID, StatusCode: s.StatusCode, StatusMessage: s.StatusMessage}
	a := attrsOf(s)
	if evs, ok := a[model.KeyEvents].([]any); ok {
		for _, e := range evs {
			m := e.(map[string]any)
			if m["name"] == "exception" {
				info.Events = append(info.Events, semantics.Event{Name: "exception", Attributes: m["attributes"].(map[string]any)})
			}
		}
	}
	return semantics.Normalize(info, a)
}

func decode[T any](t testing.TB, body []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("decode %s: %v", body, err)
	}
	return v
}

// pageAll follows next_cursor to the end and returns every trace id, failing
// on duplicates.
// treeSize counts the spans in a tree of roots.
func treeSize(roots []*SpanNode) int {
	n := len(roots)
	for _, r := range roots {
		n += treeSize(r.Children)
	}
	return n
}

func pageAll(t *testing.T, h http.Handler, query url.Values) []string {
	t.Helper()
	return listAll(t, h, "/api/traces", query, "trace_id")
}

func TestListTraces(t *testing.T) {
	for _, sd := range stores {
		t.Run(sd.name, func(t *testing.T) {
			f := newFixture(t, sd.open, Options{ScanWindow: 8})
			all := func(*expTrace) bool { return true }
			byDur := func(desc bool) func(a, b *expTrace) bool {
				return func(a, b *expTrace) bool {
					if a.dur != b.dur {
						return (a.dur > b.dur) == desc
					}
					return (a.id > b.id) == desc
				}
			}
			mid := time.Date(2025, 6, 1, 12, 0, 20, 0, time.UTC)
			end := time.Date(2025, 6, 1, 12, 0, 45, 0, time.UTC)
			cases := []struct {
				name  string
				query string
				keep  func(*expTrace) bool
				less  func(a, b *expTrace) bool
			}{
				{"all", "limit=7", all, byStartDesc},
				{"all ascending", "limit=9&order=asc", all, func(a, b *expTrace) bool { return byStartDesc(b, a) }},
				{"user", "limit=4&user_id=" + apitest.UserID(1), func(e *expTrace) bool { return e.user == apitest.UserID(1) }, byStartDesc},
				{"errors", "limit=3&status=error", func(e *expTrace) bool { return e.status == model.StatusError }, byStartDesc},
				{"team", "limit=5&team_id=" + apitest.TeamName, func(e *expTrace) bool { return e.team }, byStartDesc},
				{"agent", "agent_id=" + apitest.AgentName, func(e *expTrace) bool { return !e.team }, byStartDesc},
				{"name contains, case-insensitive", "limit=4&q=TEAM.R", func(e *expTrace) bool { return e.team }, byStartDesc},
				{"name with LIKE wildcard is literal", "q=%25", func(e *expTrace) bool { return false }, byStartDesc},
				{"time range", "limit=6&start=" + mid.Format(time.RFC3339) + "&end=" + url.QueryEscape(end.Format(time.RFC3339)),
					func(e *expTrace) bool { return e.start >= model.FormatTime(mid) && e.start < model.FormatTime(end) }, byStartDesc},
				{"duration desc", "limit=7&sort=duration_ms", all, byDur(true)},
				{"duration asc with filter", "limit=2&sort=duration_ms&order=asc&user_id=" + apitest.UserID(2),
					func(e *expTrace) bool { return e.user == apitest.UserID(2) }, byDur(false)},
				{"combined", "limit=2&status=ERROR&user_id=" + apitest.UserID(0) + "&q=agent",
					func(e *expTrace) bool {
						return e.status == model.StatusError && e.user == apitest.UserID(0) && !e.team
					}, byStartDesc},
			}
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					q, err := url.ParseQuery(c.query)
					if err != nil {
						t.Fatal(err)
					}
					got := pageAll(t, f.h, q)
					want := f.expected(c.keep, c.less)
					if !slices.Equal(got, want) {
						t.Errorf("got %d traces %v\nwant %d %v", len(got), got, len(want), want)
					}
				})
			}
		})
	}
}

func TestListTraceFields(t *testing.T) {
	f := newFixture(t, apitest.SQLite, Options{})
	code, body := get(t, f.h, "/api/traces?limit=1&order=asc")
	if code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	l := decode[TraceList](t, body)
	first := f.expected(func(*expTrace) bool { return true }, func(a, b *expTrace) bool { return byStartDesc(b, a) })[0]
	e := f.traces[first]
	tr := l.Traces[0]
	if tr.TraceID != e.id || tr.Name != e.name || tr.Status != e.status || tr.StartTime != e.start ||
		tr.UserID == nil || *tr.UserID != e.user || tr.TeamID == nil || *tr.TeamID != apitest.TeamName ||
		tr.AgentID != nil || tr.RunID == nil || tr.WorkflowID != nil || tr.DurationMS != e.dur {
		t.Errorf("trace row %+v does not match %s %s %s %s %s %d", tr, e.id, e.name, e.status, e.start, e.user, e.dur)
	}
	if l.NextCursor == "" {
		t.Error("no next_cursor on a partial list")
	}
}

// A page boundary must not move when newer traces arrive between requests.
func TestPaginationStableUnderInserts(t *testing.T) {
	for _, sd := range stores {
		t.Run(sd.name, func(t *testing.T) {
			f := newFixture(t, sd.open, Options{})
			want := f.expected(func(*expTrace) bool { return true }, byStartDesc)
			code, body := get(t, f.h, "/api/traces?limit=10")
			if code != 200 {
				t.Fatalf("%d %s", code, body)
			}
			p1 := decode[TraceList](t, body)
			// Newer runs, and runs with the same start as the cursor row.
			more := apitest.Runs(apitest.Options{Traces: 5, Seed: 99, Start: time.Date(2025, 6, 2, 0, 0, 0, 0, time.UTC)})
			apitest.Load(t, f.st, more)
			q := url.Values{"limit": {"10"}, "cursor": {p1.NextCursor}}
			rest := pageAll(t, f.h, q)
			var got []string
			for _, tr := range p1.Traces {
				got = append(got, tr.TraceID)
			}
			got = append(got, rest...)
			if !slices.Equal(got, want) {
				t.Errorf("pages after insert:\n got %v\nwant %v", got, want)
			}
		})
	}
}

func TestGetTraceTree(t *testing.T) {
	for _, sd := range stores {
		t.Run(sd.name, func(t *testing.T) {
			f := newFixture(t, sd.open, Options{})
			team := f.earliest(func(e *expTrace) bool { return e.team })
			code, body := get(t, f.h, "/api/traces/"+strings.ToUpper(team.id))
			if code != 200 {
				t.Fatalf("%d %s", code, body)
			}
			d := decode[TraceDetail](t, body)
			if d.Trace.TraceID != team.id || d.SpanCount != len(team.spans) || d.Truncated {
				t.Fatalf("trace %s: count %d truncated %v, want %d spans", d.Trace.TraceID, d.SpanCount, d.Truncated, len(team.spans))
			}
			if len(d.Spans) != 1 {
				t.Fatalf("%d roots, want 1", len(d.Spans))
			}
			// Shape as names, node types and fact types, children in start order.
			byName := map[string]*SpanNode{}
			var shape func(n *SpanNode, depth int) []string
			shape = func(n *SpanNode, depth int) []string {
				if byName[n.Name] == nil {
					byName[n.Name] = n // the first of a name
				}
				out := []string{fmt.Sprintf("%s%s[%s/%v]", strings.Repeat(" ", depth), n.Name, n.Type, n.Facts[semantics.KeySpanType])}
				for i, c := range n.Children {
					if i > 0 && c.StartTime < n.Children[i-1].StartTime {
						t.Errorf("children of %s out of order", n.Name)
					}
					if c.ParentSpanID == nil || *c.ParentSpanID != n.SpanID {
						t.Errorf("%s nested under %s but parent is %v", c.Name, n.Name, c.ParentSpanID)
					}
					out = append(out, shape(c, depth+1)...)
				}
				return out
			}
			got := shape(d.Spans[0], 0)
			want := []string{
				"Team.run research-team[TEAM/run]",
				" chat gpt-4o[LLM/llm]",
				" delegate_task_to_member web-researcher[TOOL/delegation]",
				"  Agent.run web-researcher[AGENT/run]",
				"   gpt-4o-mini.invoke[LLM/llm]",
				"   execute_tool search_web[TOOL/tool]",
				"   gpt-4o-mini.invoke[LLM/llm]",
				" chat gpt-4o[LLM/llm]",
			}
			if !slices.Equal(got, want) {
				t.Errorf("tree:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			var attrs map[string]any
			if err := json.Unmarshal(d.Spans[0].Attributes, &attrs); err != nil || attrs["agno.team.id"] != apitest.TeamName {
				t.Errorf("root attributes %s: %v", d.Spans[0].Attributes, err)
			}
			// Facts come from whatever convention each span was sent in.
			root, del := d.Spans[0], byName["delegate_task_to_member web-researcher"]
			member := byName["gpt-4o-mini.invoke"]
			if root.Facts[semantics.KeyRunKind] != semantics.RunTeam || root.Facts[semantics.KeyTeamID] != apitest.TeamName ||
				del.Facts[semantics.KeyDelegationMember] != apitest.TeamMember || del.Facts[semantics.KeyDelegationMode] != "coordinate" ||
				member.Facts[semantics.KeyModel] != apitest.ModelMember || member.Facts[semantics.KeyInputTokens] == nil {
				t.Errorf("facts: root %v, delegation %v, member LLM %v", root.Facts, del.Facts, member.Facts)
			}
			leader := byName["chat gpt-4o"]
			if leader.Facts[semantics.KeyModel] != apitest.ModelLeader || leader.Facts[semantics.KeyToolCalls] == nil {
				t.Errorf("leader LLM facts %v", leader.Facts)
			}
			// Every span resolves its resource and scope.
			var walk func(n *SpanNode)
			walk = func(n *SpanNode) {
				var res, scope map[string]any
				if json.Unmarshal(n.Resource, &res) != nil || json.Unmarshal(n.Scope, &scope) != nil ||
					res["service.name"] != apitest.ServiceName || scope["name"] != apitest.ScopeName {
					t.Errorf("%s: resource %s scope %s", n.Name, n.Resource, n.Scope)
				}
				for _, c := range n.Children {
					walk(c)
				}
			}
			for _, r := range d.Spans {
				walk(r)
			}
		})
	}
}

// TestAgentRunFacts reads an agent run's hook, retrieval and failed tool
// facts back from the API.
func TestAgentRunFacts(t *testing.T) {
	for _, sd := range stores {
		t.Run(sd.name, func(t *testing.T) {
			f := newFixture(t, sd.open, Options{})
			run := f.earliest(func(e *expTrace) bool { return !e.team && e.status == model.StatusError })
			code, body := get(t, f.h, "/api/traces/"+run.id)
			if code != 200 {
				t.Fatalf("%d %s", code, body)
			}
			d := decode[TraceDetail](t, body)
			got := map[string]*SpanNode{}
			for _, c := range d.Spans[0].Children {
				got[c.Name] = c
			}
			if d.Spans[0].Type != "AGENT" || d.Spans[0].Facts[semantics.KeyAgentID] != apitest.AgentName {
				t.Errorf("root %s %v", d.Spans[0].Type, d.Spans[0].Facts)
			}
			pre, post := got["pre_hook validate_input"], got["post_hook redact_pii"]
			if pre == nil || post == nil || pre.Type != "GUARDRAIL" || post.Type != "GUARDRAIL" ||
				pre.Facts[semantics.KeySpanType] != semantics.TypePreHook || post.Facts[semantics.KeySpanType] != semantics.TypePostHook ||
				pre.Facts[semantics.KeyHookName] != "validate_input" || post.Facts[semantics.KeyHookName] != "redact_pii" {
				t.Errorf("hooks %+v %+v", pre, post)
			}
			ret := got["knowledge.search"]
			docs, _ := ret.Facts[semantics.KeyRetrievalDocuments].([]any)
			if ret.Type != "RETRIEVER" || len(docs) != 2 || ret.Facts[semantics.KeyRetrievalVectorStore] != apitest.VectorStore ||
				ret.Facts[semantics.KeyRetrievalQuery] != "weather Paris" || ret.Facts[semantics.KeyRetrievalK] != float64(3) {
				t.Errorf("retrieval %s %v", ret.Type, ret.Facts)
			}
			tool := got["execute_tool "+apitest.FailingTool]
			msg, _ := tool.Facts[semantics.KeyExceptionMessage].(string)
			if tool.Type != "TOOL" || tool.StatusCode != model.StatusError || tool.Facts[semantics.KeyToolName] != apitest.FailingTool ||
				tool.Facts[semantics.KeyExceptionType] != apitest.ExceptionType || !strings.HasPrefix(msg, apitest.ExceptionPrefix) {
				t.Errorf("failed tool %s %v", tool.Type, tool.Facts)
			}
		})
	}
}

func TestGetTraceOrphansAndCycles(t *testing.T) {
	for _, sd := range stores {
		t.Run(sd.name, func(t *testing.T) {
			st := sd.open(t)
			h := New(st, Options{})
			tid := strings.Repeat("ab", 16)
			at := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
			mk := func(id, parent string, off int) model.Span {
				return model.Span{SpanID: id, TraceID: tid, ParentSpanID: parent, Name: "s" + id[:2], SpanKind: "INTERNAL",
					StatusCode: model.StatusUnset, StartTime: model.FormatTime(at.Add(time.Duration(off) * time.Millisecond)),
					EndTime: model.FormatTime(at.Add(time.Second)), DurationMS: 1,
					Attributes: apitest.Annotated(semantics.Info{Name: "s" + id[:2]}, map[string]any{"gen_ai.operation.name": "execute_tool"}),
					CreatedAt:  model.FormatTime(at)}
			}
			apitest.Load(t, st, []model.Span{
				mk("1111111111111111", "9999999999999999", 0), // parent not arrived
				mk("2222222222222222", "1111111111111111", 1),
				mk("3333333333333333", "4444444444444444", 2), // 3 <-> 4 cycle
				mk("4444444444444444", "3333333333333333", 3),
				mk("5555555555555555", "5555555555555555", 4), // its own parent
			})
			code, body := get(t, h, "/api/traces/"+tid)
			if code != 200 {
				t.Fatalf("%d %s", code, body)
			}
			d := decode[TraceDetail](t, body)
			var roots []string
			for _, r := range d.Spans {
				roots = append(roots, fmt.Sprintf("%s orphan=%v children=%d", r.SpanID[:1], r.Orphan, len(r.Children)))
			}
			count := treeSize(d.Spans)
			want := []string{"1 orphan=true children=1", "3 orphan=true children=1", "5 orphan=true children=0"}
			if !slices.Equal(roots, want) || count != 5 {
				t.Errorf("roots %v (%d spans), want %v (5)", roots, count, want)
			}
		})
	}
}

func TestGetTraceErrors(t *testing.T) {
	f := newFixture(t, apitest.SQLite, Options{})
	cases := []struct {
		path string
		code int
	}{
		{"/api/traces/" + strings.Repeat("0f", 16), 404},
		{"/api/traces/xyz", 400},
		{"/api/traces/" + strings.Repeat("0", 32), 400},
		{"/api/traces/" + strings.Repeat("a", 33), 400},
		{"/api/traces/" + strings.Repeat("a", 32) + "?x=1", 400},
		{"/api/nothing", 404},
	}
	rec := httptest.NewRecorder()
	f.h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/api/traces", nil))
	if rec.Code != 405 || rec.Header().Get("Allow") == "" {
		t.Errorf("POST /api/traces: %d, Allow %q", rec.Code, rec.Header().Get("Allow"))
	}
	for _, c := range cases {
		code, body := get(t, f.h, c.path)
		if code != c.code {
			t.Errorf("%s: %d %s, want %d", c.path, code, body, c.code)
			continue
		}
		e := decode[apiError](t, body)
		if e.Error == "" {
			t.Errorf("%s: no error message in %s", c.path, body)
		}
	}
}

func TestBadParameters(t *testing.T) {
	f := newFixture(t, apitest.SQLite, Options{})
	cur := cursor{Sort: "start_time", Desc: true, Key: "2025-06-01T12:00:00.000000+00:00", ID: strings.Repeat("a", 32), Scope: "traces"}
	cases := []struct{ path, param string }{
		{"/api/traces?limit=0", "limit"},
		{"/api/traces?limit=501", "limit"},
		{"/api/traces?limit=ten", "limit"},
		{"/api/traces?sort=name", "sort"},
		{"/api/traces?order=up", "order"},
		{"/api/traces?status=FAILED", "status"},
		{"/api/traces?start=yesterday", "start"},
		{"/api/traces?start=2025-06-02T00:00:00Z&end=2025-06-01T00:00:00Z", "end"},
		{"/api/traces?cursor=!!!", "cursor"},
		{"/api/traces?sort=duration_ms&cursor=" + cur.encode(), "cursor"},
		{"/api/traces?userid=u", "userid"},
		{"/api/traces?user_id=a&user_id=b", "user_id"},
		{"/api/traces?user_id=" + strings.Repeat("x", 600), "user_id"},
		{"/api/spans?attr=kern.tool.name", "attr"},
		{"/api/spans?type=run", "type"},
		{"/api/spans?type=pre_hook", "type"},
		{"/api/spans?type=bad%22type", "type"},
		{"/api/spans?attr=bad%22key:v", "attr"},
		{"/api/spans?min_duration_ms=-1", "min_duration_ms"},
		{"/api/spans?trace_id=12", "trace_id"},
		{"/api/spans?cursor=" + cur.encode(), "cursor"},
		{"/api/summary?start=2025-06-01", "start"},
		{"/api/summary?limit=1", "limit"},
	}
	for _, c := range cases {
		code, body := get(t, f.h, c.path)
		if code != 400 {
			t.Errorf("%s: %d %s, want 400", c.path, code, body)
			continue
		}
		e := decode[apiError](t, body)
		if e.Param != c.param || e.Error == "" {
			t.Errorf("%s: %s, want param %q", c.path, body, c.param)
		}
	}
}

func TestListSpans(t *testing.T) {
	for _, sd := range stores {
		t.Run(sd.name, func(t *testing.T) {
			f := newFixture(t, sd.open, Options{ScanWindow: 50})
			attr := func(s model.Span, k string) string {
				switch v := attrsOf(s)[k].(type) {
				case string:
					return v
				case float64:
					return fmt.Sprint(v)
				}
				return ""
			}
			node := func(s model.Span) string { return semantics.NodeType(attrsOf(s)) }
			anyTrace := f.spans[10].TraceID
			cases := []struct {
				query string
				keep  func(model.Span) bool
			}{
				{"type=TOOL", func(s model.Span) bool { return node(s) == "TOOL" }},
				{"type=tool&status=ERROR", func(s model.Span) bool { return node(s) == "TOOL" && s.StatusCode == "ERROR" }},
				{"type=GUARDRAIL", func(s model.Span) bool { return node(s) == "GUARDRAIL" }},
				{"type=TEAM", func(s model.Span) bool { return strings.HasPrefix(s.Name, "Team.run") }},
				{"type=AGENT", func(s model.Span) bool { return strings.HasPrefix(s.Name, "Agent.run") }},
				{"attr=gen_ai.tool.name:search_web&min_duration_ms=30000", func(s model.Span) bool {
					return attr(s, "gen_ai.tool.name") == "search_web" && s.DurationMS >= 30000
				}},
				{"attr=gen_ai.request.top_k:3", func(s model.Span) bool { return attr(s, "gen_ai.request.top_k") == "3" }},
				{"attr=tool.name:delegate_task_to_member&type=TOOL", func(s model.Span) bool {
					return factsOf(s)[semantics.KeySpanType] == semantics.TypeDelegation
				}},
				// Added by the converter to spans sent with GenAI keys only.
				{"attr=llm.model_name:gpt-4o", func(s model.Span) bool {
					return factsOf(s)[semantics.KeyModel] == apitest.ModelLeader && node(s) == "LLM"
				}},
				{"name=GPT-4O-MINI.INVOKE", func(s model.Span) bool { return s.Name == "gpt-4o-mini.invoke" }},
				{"trace_id=" + anyTrace, func(s model.Span) bool { return s.TraceID == anyTrace }},
				{"start=2025-06-01T12:00:30Z&type=agent", func(s model.Span) bool {
					return node(s) == "AGENT" && s.StartTime >= "2025-06-01T12:00:30"
				}},
			}
			for _, c := range cases {
				t.Run(c.query, func(t *testing.T) {
					var want []string
					ws := slices.Clone(f.spans)
					sort.Slice(ws, func(i, j int) bool {
						if ws[i].StartTime != ws[j].StartTime {
							return ws[i].StartTime > ws[j].StartTime
						}
						return ws[i].SpanID > ws[j].SpanID
					})
					for _, s := range ws {
						if c.keep(s) {
							want = append(want, s.SpanID)
						}
					}
					if len(want) == 0 {
						t.Fatal("fixture has no matching span; the case tests nothing")
					}
					q, _ := url.ParseQuery(c.query + "&limit=6")
					var got []string
					for pages := 0; ; pages++ {
						code, body := get(t, f.h, "/api/spans?"+q.Encode())
						if code != 200 || pages > 100 {
							t.Fatalf("%d %s", code, body)
						}
						l := decode[SpanList](t, body)
						for _, s := range l.Spans {
							got = append(got, s.SpanID)
							if s.TraceID == "" || len(s.Attributes) < 2 || s.Facts[semantics.KeySpanType] == nil ||
								!strings.Contains(string(s.Resource), apitest.ServiceName) {
								t.Errorf("span %s lacks trace_id, attributes, facts or resource: %+v", s.SpanID, s)
							}
						}
						if l.NextCursor == "" {
							break
						}
						q.Set("cursor", l.NextCursor)
					}
					if !slices.Equal(got, want) {
						t.Errorf("got %d spans, want %d\n got %v\nwant %v", len(got), len(want), got, want)
					}
				})
			}
		})
	}
}

// percentileCont is PostgreSQL's percentile_cont, for the expected values.
func percentileCont(v []int64, p float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	pos := p * float64(len(s)-1)
	lo := int(math.Floor(pos))
	if lo+1 >= len(s) {
		return float64(s[lo])
	}
	return float64(s[lo]) + (pos-float64(lo))*float64(s[lo+1]-s[lo])
}

func TestSummary(t *testing.T) {
	for _, sd := range stores {
		t.Run(sd.name, func(t *testing.T) {
			f := newFixture(t, sd.open, Options{})
			start := time.Date(2025, 6, 1, 12, 0, 10, 0, time.UTC)
			end := time.Date(2025, 6, 1, 12, 0, 50, 0, time.UTC)
			var durs []int64
			var errs int64
			for _, e := range f.traces {
				if e.start >= model.FormatTime(start) && e.start < model.FormatTime(end) {
					durs = append(durs, e.dur)
					if e.status == model.StatusError {
						errs++
					}
				}
			}
			type tok struct{ calls, in, out, total int64 }
			wantTok := map[string]*tok{}
			// From the facts, read from the sender's own keys (half the LLM
			// calls were sent with GenAI keys only); the API sums the
			// OpenInference keys the converter added.
			for _, s := range f.spans {
				fa := factsOf(s)
				if fa[semantics.KeySpanType] != semantics.TypeLLM || s.StartTime < model.FormatTime(start) || s.StartTime >= model.FormatTime(end) {
					continue
				}
				m := fa[semantics.KeyModel].(string)
				if wantTok[m] == nil {
					wantTok[m] = &tok{}
				}
				w := wantTok[m]
				w.calls++
				w.in += fa[semantics.KeyInputTokens].(int64)
				w.out += fa[semantics.KeyOutputTokens].(int64)
				w.total += fa[semantics.KeyTotalTokens].(int64)
			}
			code, body := get(t, f.h, "/api/summary?start="+start.Format(time.RFC3339)+"&end="+end.Format(time.RFC3339))
			if code != 200 {
				t.Fatalf("%d %s", code, body)
			}
			s := decode[Summary](t, body)
			if s.TraceCount != int64(len(durs)) || s.ErrorCount != errs || errs == 0 ||
				math.Abs(s.ErrorRate-float64(errs)/float64(len(durs))) > 1e-9 {
				t.Errorf("counts %d/%d rate %v, want %d/%d", s.ErrorCount, s.TraceCount, s.ErrorRate, errs, len(durs))
			}
			// Percentiles come from the rollups' duration buckets: within
			// 1% of the exact ones (plus rounding of whole milliseconds).
			near := func(got *float64, want float64) bool { return got != nil && math.Abs(*got-want) <= 0.011*want+0.5 }
			if !near(s.DurationP50MS, percentileCont(durs, 0.5)) || !near(s.DurationP95MS, percentileCont(durs, 0.95)) {
				t.Errorf("p50/p95 %v/%v, want %v/%v within 1%%", deref(s.DurationP50MS), deref(s.DurationP95MS), percentileCont(durs, 0.5), percentileCont(durs, 0.95))
			}
			if len(s.TokensByModel) != len(wantTok) || len(wantTok) != 2 {
				t.Fatalf("tokens by model %+v, want %d models", s.TokensByModel, len(wantTok))
			}
			for _, m := range s.TokensByModel {
				w := wantTok[m.Model]
				if w == nil || m.Calls != w.calls || m.InputTokens != w.in || m.OutputTokens != w.out || m.TotalTokens != w.total {
					t.Errorf("model %s: %+v, want %+v", m.Model, m, w)
				}
			}

			// An empty range has no percentiles.
			code, body = get(t, f.h, "/api/summary?start=2020-01-01T00:00:00Z&end=2020-01-02T00:00:00Z")
			e := decode[Summary](t, body)
			if code != 200 || e.TraceCount != 0 || e.DurationP50MS != nil || e.ErrorRate != 0 || len(e.TokensByModel) != 0 {
				t.Errorf("empty range: %d %s", code, body)
			}
		})
	}
}

func TestAuth(t *testing.T) {
	f := newFixture(t, apitest.SQLite, Options{Auth: auth.New([]auth.Token{{Token: "first-secret", Tenant: "a"}, {Token: "second-secret", Tenant: "b", Admin: true}})})
	cases := []struct {
		name string
		hdr  []string
		code int
	}{
		{"none", nil, 401},
		{"wrong", []string{"Authorization", "Bearer nope"}, 401},
		{"prefix of a token", []string{"Authorization", "Bearer first"}, 401},
		{"not bearer", []string{"Authorization", "Basic Zmlyc3Qtc2VjcmV0"}, 401},
		{"empty bearer", []string{"Authorization", "Bearer "}, 401},
		{"first", []string{"Authorization", "Bearer first-secret"}, 200},
		{"second, lower-case scheme", []string{"Authorization", "bearer second-secret"}, 200},
	}
	var bodies []string
	for _, c := range cases {
		code, body := get(t, f.h, "/api/traces?limit=1", c.hdr...)
		if code != c.code {
			t.Errorf("%s: %d %s, want %d", c.name, code, body, c.code)
		}
		if code == 401 {
			bodies = append(bodies, string(body))
		}
	}
	// Every refusal reads the same: nothing tells which tokens exist.
	for _, b := range bodies[1:] {
		if b != bodies[0] {
			t.Errorf("401 bodies differ: %q vs %q", b, bodies[0])
		}
	}
	rec := httptest.NewRecorder()
	f.h.ServeHTTP(rec, httptest.NewRequest("GET", "/api/summary", nil))
	if rec.Code != 401 || !strings.HasPrefix(rec.Header().Get("WWW-Authenticate"), "Bearer") {
		t.Errorf("summary without token: %d, WWW-Authenticate %q", rec.Code, rec.Header().Get("WWW-Authenticate"))
	}
}

// A database that went away answers 503, not 500, so clients retry.
func TestDatabaseUnavailable(t *testing.T) {
	for _, sd := range stores {
		t.Run(sd.name, func(t *testing.T) {
			st := sd.open(t)
			h := New(st, Options{Logger: slog.New(slog.DiscardHandler)})
			if code, body := get(t, h, "/api/traces"); code != 200 {
				t.Fatalf("before close: %d %s", code, body)
			}
			st.Close()
			for _, path := range []string{"/api/traces", "/api/traces/" + strings.Repeat("ab", 16), "/api/spans", "/api/summary"} {
				code, body := get(t, h, path)
				if code != 503 {
					t.Errorf("%s after close: %d %s, want 503", path, code, body)
				}
			}
		})
	}
}

func deref(f *float64) any {
	if f == nil {
		return nil
	}
	return *f
}
