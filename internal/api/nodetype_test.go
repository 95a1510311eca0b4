package api

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kern-agents/trace-gateway/internal/api/apitest"
	"github.com/kern-agents/trace-gateway/internal/model"
	"github.com/kern-agents/trace-gateway/internal/semantics"
	"github.com/kern-agents/trace-gateway/internal/store"
)

// rawRow is a span row as a store may hold it without going through the
// converter: rows from an earlier release, or AgentOS's own exporter.
func rawRow(traceID string, i int, attrs string) model.Span {
	at := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Millisecond)
	return model.Span{SpanID: fmt.Sprintf("%016x", i+1), TraceID: traceID, Name: fmt.Sprintf("span %d", i), SpanKind: "INTERNAL",
		StatusCode: model.StatusOK, StartTime: model.FormatTime(at), EndTime: model.FormatTime(at.Add(time.Millisecond)),
		DurationMS: 1, Attributes: []byte(attrs), CreatedAt: model.FormatTime(at)}
}

// TestNodeTypeFilter checks that the type= filter (SQL) and the type the
// API reports (semantics.NodeType in Go) agree on every odd value a row may
// hold, among them the team ids AgentOS tests for truth as Python does.
func TestNodeTypeFilter(t *testing.T) {
	attrs := []string{
		`{}`,
		`{"openinference.span.kind":"LLM"}`,
		`{"openinference.span.kind":"CHAIN"}`,
		`{"openinference.span.kind":"AGENT"}`,
		`{"openinference.span.kind":""}`,
		`{"openinference.span.kind":5}`,
		`{"openinference.span.kind":null}`,
		`{"openinference.span.kind":["AGENT"]}`,
		`{"openinference.span.kind":"custom-kind"}`,
		`{"openinference.span.kind":"agent"}`,
		`{"openinference.span.kind":"CHAIN","agno.team.id":"t"}`,
	}
	for _, team := range []string{`"t"`, `""`, `"0"`, `0`, `0.0`, `1`, `-2.5`, `true`, `false`, `null`, `[]`, `[0]`, `{}`, `{"a":1}`} {
		attrs = append(attrs,
			`{"openinference.span.kind":"AGENT","agno.team.id":`+team+`}`,
			`{"openinference.span.kind":"AGENT","team.id":`+team+`}`,
			`{"openinference.span.kind":"AGENT","agno.team.id":null,"team.id":`+team+`}`)
	}
	tid := strings.Repeat("7c", 16)
	var rows []model.Span
	want := map[string][]string{}
	for i, a := range attrs {
		r := rawRow(tid, i, a)
		var m map[string]any
		if err := json.Unmarshal(r.Attributes, &m); err != nil {
			t.Fatal(err)
		}
		typ := semantics.NodeType(m)
		want[typ] = append(want[typ], r.SpanID)
		rows = append(rows, r)
	}
	if len(want["TEAM"]) == 0 || len(want["AGENT"]) == 0 || len(want["UNKNOWN"]) == 0 || len(want["WORKFLOW"]) == 0 {
		t.Fatalf("the rows do not cover the types: %v", want)
	}
	for _, sd := range stores {
		t.Run(sd.name, func(t *testing.T) {
			st := sd.open(t)
			apitest.Load(t, st, rows)
			h := New(st, Options{})
			code, body := get(t, h, "/api/traces/"+tid)
			if code != 200 {
				t.Fatalf("%d %s", code, body)
			}
			got := map[string][]string{}
			for _, n := range decode[TraceDetail](t, body).Spans {
				got[n.Type] = append(got[n.Type], n.SpanID)
			}
			for typ, ids := range want {
				slices.Sort(ids)
				slices.Sort(got[typ])
				if !slices.Equal(got[typ], ids) {
					t.Errorf("tree: type %s on %v, want %v", typ, got[typ], ids)
				}
				code, body := get(t, h, "/api/spans?limit=500&trace_id="+tid+"&type="+typ)
				if code != 200 {
					t.Fatalf("type=%s: %d %s", typ, code, body)
				}
				// A known type matches in any case: a kind stored in
				// lower case (the converter restores upper case) is
				// found as the upper-case type.
				if canon, _ := parseNodeType(typ); canon != typ {
					ids = slices.Clone(want[canon])
					slices.Sort(ids)
				}
				var filtered []string
				for _, n := range decode[SpanList](t, body).Spans {
					filtered = append(filtered, n.SpanID)
				}
				slices.Sort(filtered)
				if !slices.Equal(filtered, ids) {
					t.Errorf("type=%s finds %v, want %v", typ, filtered, ids)
				}
			}
		})
	}
}

// TestResources resolves kern.resource references against the resources
// table, reads rows stored before resources were kept apart (resource and
// scope inline) and leaves an unknown reference null.
func TestResources(t *testing.T) {
	tid := strings.Repeat("3d", 16)
	converted := apitest.Runs(apitest.Options{Traces: 1, Seed: 3})[0]
	ref := converted
	ref.TraceID, ref.ParentSpanID, ref.SpanID = tid, "", "00000000000000a1"
	legacy := rawRow(tid, 1, `{"gen_ai.operation.name":"chat","gen_ai.request.model":"m1","gen_ai.conversation.id":"s-1",`+
		`"kern.resource":{"service.name":"old-service","user.id":"u-7"},"kern.scope":{"name":"old-scope","version":"1"}}`)
	legacy.ParentSpanID = ref.SpanID
	dangling := rawRow(tid, 2, `{"openinference.span.kind":"TOOL","kern.resource":"00000000deadbeef"}`)
	dangling.ParentSpanID = ref.SpanID
	for _, sd := range stores {
		t.Run(sd.name, func(t *testing.T) {
			st := sd.open(t)
			apitest.Load(t, st, []model.Span{ref, legacy, dangling})
			h := New(st, Options{})
			for range 2 { // the second read comes from the cache
				code, body := get(t, h, "/api/traces/"+tid)
				if code != 200 {
					t.Fatalf("%d %s", code, body)
				}
				d := decode[TraceDetail](t, body)
				if len(d.Spans) != 1 || len(d.Spans[0].Children) != 2 {
					t.Fatalf("tree %s", body)
				}
				root, old, none := d.Spans[0], d.Spans[0].Children[0], d.Spans[0].Children[1]
				var res, scope map[string]any
				if json.Unmarshal(root.Resource, &res) != nil || res["service.name"] != apitest.ServiceName ||
					json.Unmarshal(root.Scope, &scope) != nil || scope["name"] != apitest.ScopeName {
					t.Errorf("referenced: resource %s scope %s", root.Resource, root.Scope)
				}
				if json.Unmarshal(old.Resource, &res) != nil || res["service.name"] != "old-service" ||
					json.Unmarshal(old.Scope, &scope) != nil || scope["name"] != "old-scope" {
					t.Errorf("inline: resource %s scope %s", old.Resource, old.Scope)
				}
				// Ids the span lacks come from its resource.
				if old.Type != "UNKNOWN" || old.Facts[semantics.KeyModel] != "m1" || old.Facts[semantics.KeyUserID] != "u-7" ||
					old.Facts[semantics.KeySessionID] != "s-1" {
					t.Errorf("inline row: type %s facts %v", old.Type, old.Facts)
				}
				if string(none.Resource) != "null" || string(none.Scope) != "null" || none.Type != "TOOL" {
					t.Errorf("dangling reference: %+v", none)
				}
				if !strings.Contains(string(body), `"resource":null`) {
					t.Errorf("a missing resource is not null in %s", body)
				}
			}
		})
	}
}

func TestBesideSpans(t *testing.T) {
	for in, want := range map[string]string{
		`"agno_spans"`:              `gateway_resources`,
		`agno_spans`:                `gateway_resources`,
		`"ai"."agno_spans"`:         `"ai"."gateway_resources"`,
		`"a.b"."my_spans"`:          `"a.b"."gateway_resources"`,
		`"we""ird"."x.y"`:           `"we""ird"."gateway_resources"`,
		`"test_12"."agno_spans_v2"`: `"test_12"."gateway_resources"`,
	} {
		if got := besideSpans(in, store.ResourcesTable); got != want {
			t.Errorf("besideSpans(%s) = %s, want %s", in, got, want)
		}
	}
}

func TestDecodeAttributes(t *testing.T) {
	a := decodeAttributes([]byte(`{"user.id":12345678901234567,"n":3,"f":0.5,"s":"x","l":[1,2]}`))
	if a["user.id"] != int64(12345678901234567) || a["n"] != int64(3) || a["f"] != 0.5 || a["s"] != "x" {
		t.Errorf("exact decode: %#v", a)
	}
	if facts := semantics.Normalize(semantics.Info{}, a); facts[semantics.KeyUserID] != "12345678901234567" {
		t.Errorf("a numeric user id reads back as %v", facts[semantics.KeyUserID])
	}
	a = decodeAttributes([]byte(`{"n":3,"s":"x"}`))
	if a["n"] != float64(3) || a["s"] != "x" {
		t.Errorf("plain decode: %#v", a)
	}
	for _, bad := range []string{``, `null`, `[1]`, `"s"`, `{"a":`, `{"a":1}x`} {
		if a := decodeAttributes([]byte(bad)); a != nil {
			t.Errorf("%q decodes to %v", bad, a)
		}
	}
}

// TestCrossServiceResources reads a trace whose spans came from two
// services, the other service's spans written first: each span shows its
// own resource, whether the store kept a reference on it or took its
// trace's usual origin.
func TestCrossServiceResources(t *testing.T) {
	run := apitest.Runs(apitest.Options{Traces: 1, Seed: 5})
	other := &model.Origin{ID: "0123456789abcdef", Resource: []byte(`{"service.name":"tool-service"}`)}
	moved := map[string]bool{}
	for i := range run {
		if run[i].ParentSpanID != "" && i%2 == 1 {
			run[i].Origin = other
			moved[run[i].SpanID] = true
		}
	}
	if len(moved) == 0 || len(moved) == len(run) {
		t.Fatalf("%d of %d spans moved to the other service", len(moved), len(run))
	}
	var first, rest []model.Span
	for _, sp := range run {
		if moved[sp.SpanID] {
			first = append(first, sp)
		} else {
			rest = append(rest, sp)
		}
	}
	for _, sd := range stores {
		t.Run(sd.name, func(t *testing.T) {
			st := sd.open(t)
			apitest.Load(t, st, first)
			apitest.Load(t, st, rest)
			code, body := get(t, New(st, Options{}), "/api/traces/"+run[0].TraceID)
			if code != 200 {
				t.Fatalf("%d %s", code, body)
			}
			d := decode[TraceDetail](t, body)
			seen := 0
			var walk func([]*SpanNode)
			walk = func(ns []*SpanNode) {
				for _, n := range ns {
					seen++
					want := apitest.ServiceName
					if moved[n.SpanID] {
						want = "tool-service"
					}
					var res map[string]any
					if json.Unmarshal(n.Resource, &res) != nil || res["service.name"] != want {
						t.Errorf("span %s: resource %s, want service %s", n.SpanID, n.Resource, want)
					}
					walk(n.Children)
				}
			}
			walk(d.Spans)
			if seen != len(run) {
				t.Errorf("tree has %d spans, want %d", seen, len(run))
			}
		})
	}
}
