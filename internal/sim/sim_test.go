package sim

import (
	"context"
	"math/rand/v2"
	"sort"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/kern-agents/trace-gateway/internal/model"
	"github.com/kern-agents/trace-gateway/internal/semantics"
)

func TestPlanNestingAndTimes(t *testing.T) {
	w := newWorld(5, 10, 3)
	var check func(t *testing.T, n *node, depth int)
	check = func(t *testing.T, n *node, depth int) {
		if n.end <= n.start {
			t.Errorf("%q ends at %v, not after its start %v", n.name, n.end, n.start)
		}
		var prevEnd time.Duration
		for i, c := range n.children {
			if c.start < n.start || c.end > n.end {
				t.Errorf("%q [%v,%v] is not within its parent %q [%v,%v]", c.name, c.start, c.end, n.name, n.start, n.end)
			}
			if i > 0 && c.start < prevEnd {
				t.Errorf("%q starts before its previous sibling ended", c.name)
			}
			prevEnd = c.end
			check(t, c, depth+1)
		}
	}
	for seed := range uint64(200) {
		p := planRun(rand.New(rand.NewPCG(seed, seed)), w, 0.5)
		check(t, p.root, 0)
		if p.spans < 11 || p.spans > 12 {
			t.Errorf("seed %d: %d spans, want 11 or 12", seed, p.spans)
		}
		if d := p.root.end; d < 500*time.Millisecond || d > 60*time.Second {
			t.Errorf("seed %d: run takes %v, not plausible", seed, d)
		}
	}
}

type capturedSpan struct {
	scope  string
	span   ptrace.Span
	attrs  map[string]any
	typ    string
	kind   string
	annot  map[string]any // the normalised facts
	stored map[string]any // the attributes as the gateway stores them
	traceI string
}

// captured flattens pdata into spans with their classification and
// annotation, the way the converter will see them.
func captured(t *testing.T, td ptrace.Traces) []capturedSpan {
	t.Helper()
	var out []capturedSpan
	rss := td.ResourceSpans()
	for i := 0; i < rss.Len(); i++ {
		rs := rss.At(i)
		res := rs.Resource().Attributes().AsRaw()
		for j := 0; j < rs.ScopeSpans().Len(); j++ {
			ss := rs.ScopeSpans().At(j)
			for k := 0; k < ss.Spans().Len(); k++ {
				sp := ss.Spans().At(k)
				info := semantics.Info{
					Name: sp.Name(), Kind: sp.Kind().String(), StatusCode: statusName(sp.Status().Code()),
					StatusMessage: sp.Status().Message(), Resource: res,
				}
				for e := 0; e < sp.Events().Len(); e++ {
					ev := sp.Events().At(e)
					info.Events = append(info.Events, semantics.Event{Name: ev.Name(), Attributes: ev.Attributes().AsRaw()})
				}
				attrs := sp.Attributes().AsRaw()
				typ, kind := semantics.Classify(info, attrs)
				stored := sp.Attributes().AsRaw()
				semantics.Annotate(info, stored)
				out = append(out, capturedSpan{
					scope: ss.Scope().Name(), span: sp, attrs: attrs, typ: typ, kind: kind,
					annot: semantics.Normalize(info, attrs), stored: stored,
					traceI: sp.TraceID().String(),
				})
			}
		}
	}
	return out
}

func statusName(c ptrace.StatusCode) string {
	switch c {
	case ptrace.StatusCodeOk:
		return model.StatusOK
	case ptrace.StatusCodeError:
		return model.StatusError
	}
	return model.StatusUnset
}

func TestCaptureIsRealisticAndNormalisable(t *testing.T) {
	const runs = 60
	td, stats, err := CaptureTraces(context.Background(), Options{Count: runs, ErrorRatio: 0.3, Seed: 7, Agents: 3})
	if err != nil {
		t.Fatal(err)
	}
	spans := captured(t, td)
	if stats.Runs != runs || int64(len(spans)) != stats.Spans || len(spans) < runs*11 {
		t.Fatalf("stats %+v, captured %d spans for %d runs", stats, len(spans), runs)
	}

	// Every span is recognised, in both conventions.
	seen := map[string]map[string]int{} // scope -> type(/kind) -> count
	for _, s := range spans {
		key := s.typ
		if s.kind != "" {
			key += "/" + s.kind
		}
		if seen[s.scope] == nil {
			seen[s.scope] = map[string]int{}
		}
		seen[s.scope][key]++
		if s.typ == semantics.TypeOther {
			t.Errorf("span %q (%s) was not recognised", s.span.Name(), s.scope)
		}
	}
	for _, scope := range []string{scopeGenAI, scopeOpenInference} {
		for _, want := range []string{"run/agent", "run/team", "llm", "embedding", "tool", "pre_hook", "post_hook", "retrieval", "delegation"} {
			if seen[scope][want] == 0 {
				t.Errorf("%s runs have no %s span; saw %v", scope, want, seen[scope])
			}
		}
	}

	// Traces are well formed: one root, parents in the same trace, children
	// inside their parents' time.
	byID := map[string]capturedSpan{}
	for _, s := range spans {
		byID[s.span.SpanID().String()] = s
	}
	roots := map[string]int{}
	for _, s := range spans {
		if s.span.ParentSpanID().IsEmpty() {
			roots[s.traceI]++
			if s.typ != semantics.TypeRun {
				t.Errorf("root %q is a %s, want a run", s.span.Name(), s.typ)
			}
			continue
		}
		p, ok := byID[s.span.ParentSpanID().String()]
		if !ok || p.traceI != s.traceI {
			t.Fatalf("span %q has no parent in its trace", s.span.Name())
		}
		if s.span.StartTimestamp() < p.span.StartTimestamp() || s.span.EndTimestamp() > p.span.EndTimestamp() {
			t.Errorf("span %q is outside its parent %q", s.span.Name(), p.span.Name())
		}
	}
	if len(roots) != runs {
		t.Errorf("%d traces, want %d", len(roots), runs)
	}
	for tr, n := range roots {
		if n != 1 {
			t.Errorf("trace %s has %d roots", tr, n)
		}
	}

	// Failed tools carry the exception event and status the converter reads.
	var failedTools int64
	for _, s := range spans {
		if s.span.Status().Code() != ptrace.StatusCodeError {
			continue
		}
		if s.typ != semantics.TypeTool {
			t.Errorf("%s span %q failed; only tools should", s.typ, s.span.Name())
		}
		failedTools++
		if s.annot[semantics.KeyExceptionType] == nil || s.annot[semantics.KeyExceptionMessage] == nil {
			t.Errorf("failed tool %q has no normalised exception: %v", s.span.Name(), s.annot)
		}
	}
	if failedTools != stats.FailedTools || failedTools == 0 {
		t.Errorf("%d failed tool spans, stats say %d", failedTools, stats.FailedTools)
	}

	// What AgentOS and the docs' queries read is stored on every span.
	for _, s := range spans {
		if k, _ := s.stored[semantics.AttrSpanKind].(string); k == "" || k == semantics.KindUnknown {
			t.Errorf("span %q is stored without a span kind AgentOS knows: %v", s.span.Name(), s.stored[semantics.AttrSpanKind])
		}
		if s.typ == semantics.TypeLLM {
			if s.stored[semantics.AttrModelName] == nil || s.stored[semantics.AttrTokensPrompt] == nil || s.stored[semantics.AttrTokensCompletion] == nil {
				t.Errorf("llm span %q is stored without model or tokens: %v", s.span.Name(), s.stored)
			}
		}
	}

	// The normalised facts the explorer and the vendors read are present.
	for _, s := range spans {
		switch s.typ {
		case semantics.TypeLLM:
			in, _ := s.annot[semantics.KeyInputTokens].(int64)
			out, _ := s.annot[semantics.KeyOutputTokens].(int64)
			if in <= 0 || out <= 0 || s.annot[semantics.KeyModel] == nil || s.annot[semantics.KeyAgentID] != nil && s.annot[semantics.KeySessionID] == nil {
				t.Errorf("llm span %q: tokens %d/%d, annotation %v", s.span.Name(), in, out, s.annot)
			}
		case semantics.TypeRun:
			for _, k := range []string{semantics.KeyRunID, semantics.KeySessionID, semantics.KeyUserID} {
				if s.annot[k] == nil {
					t.Errorf("run %q lacks %s", s.span.Name(), k)
				}
			}
			if s.kind == semantics.RunAgent && s.annot[semantics.KeyAgentID] == nil {
				t.Errorf("agent run %q lacks an agent id", s.span.Name())
			}
			if s.kind == semantics.RunTeam && s.annot[semantics.KeyTeamID] == nil {
				t.Errorf("team run %q lacks a team id", s.span.Name())
			}
		case semantics.TypeDelegation:
			if s.annot[semantics.KeyDelegationMember] == nil || s.annot[semantics.KeyDelegationMode] == nil {
				t.Errorf("delegation %q: %v", s.span.Name(), s.annot)
			}
		case semantics.TypeRetrieval:
			if docs, _ := s.annot[semantics.KeyRetrievalDocuments].([]any); len(docs) == 0 {
				t.Errorf("retrieval %q has no documents", s.span.Name())
			}
		case semantics.TypeTool:
			if s.annot[semantics.KeyToolName] == nil || s.annot[semantics.KeyToolArguments] == nil {
				t.Errorf("tool %q: %v", s.span.Name(), s.annot)
			}
		}
	}
}

func TestErrorRatioBounds(t *testing.T) {
	for _, tc := range []struct {
		ratio float64
		check func(failed, tools int) bool
	}{
		{0, func(failed, _ int) bool { return failed == 0 }},
		{1, func(failed, tools int) bool { return failed == tools }},
	} {
		td, err := Capture(context.Background(), Options{Count: 10, ErrorRatio: tc.ratio, Seed: 1})
		if err != nil {
			t.Fatal(err)
		}
		var failed, tools int
		for _, s := range captured(t, td) {
			if s.typ == semantics.TypeTool {
				tools++
				if s.span.Status().Code() == ptrace.StatusCodeError {
					failed++
				}
			}
		}
		if tools == 0 || !tc.check(failed, tools) {
			t.Errorf("ratio %v: %d of %d tool spans failed", tc.ratio, failed, tools)
		}
	}
}

// signature describes a capture without ids and times.
func signature(t *testing.T, td ptrace.Traces) []string {
	var sig []string
	for _, s := range captured(t, td) {
		keys := make([]string, 0, len(s.attrs))
		for k, v := range s.attrs {
			if k == "agno.run.id" || k == "graph.node.id" {
				continue
			}
			keys = append(keys, k+"="+toString(v))
		}
		sort.Strings(keys)
		sig = append(sig, s.span.Name()+"|"+strings.Join(keys, ","))
	}
	sort.Strings(sig)
	return sig
}

func toString(v any) string {
	val := pcommon.NewValueEmpty()
	_ = val.FromRaw(v)
	return val.AsString()
}

func TestSameSeedSameRuns(t *testing.T) {
	ctx := context.Background()
	a, err := Capture(ctx, Options{Count: 8, Seed: 42, ErrorRatio: 0.2, Concurrency: 3})
	if err != nil {
		t.Fatal(err)
	}
	b, err := Capture(ctx, Options{Count: 8, Seed: 42, ErrorRatio: 0.2, Concurrency: 1})
	if err != nil {
		t.Fatal(err)
	}
	c, err := Capture(ctx, Options{Count: 8, Seed: 43, ErrorRatio: 0.2})
	if err != nil {
		t.Fatal(err)
	}
	sa, sb, sc := signature(t, a), signature(t, b), signature(t, c)
	if strings.Join(sa, "\n") != strings.Join(sb, "\n") {
		t.Error("the same seed produced different runs")
	}
	if strings.Join(sa, "\n") == strings.Join(sc, "\n") {
		t.Error("different seeds produced the same runs")
	}
}

func TestSpreadPlacesRunsInThePast(t *testing.T) {
	now := time.Date(2025, 3, 10, 12, 0, 0, 0, time.UTC)
	td, err := Capture(context.Background(), Options{Count: 30, Spread: 72 * time.Hour, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	days := map[string]bool{}
	for _, s := range captured(t, td) {
		end := s.span.EndTimestamp().AsTime()
		if end.After(now) || end.Before(now.Add(-73*time.Hour)) {
			t.Fatalf("span ends at %v, outside the spread", end)
		}
		days[end.Format(time.DateOnly)] = true
	}
	if len(days) < 3 {
		t.Errorf("runs spread over %d days, want at least 3", len(days))
	}
}

func TestRunStopsOnDurationAndCancel(t *testing.T) {
	tpOpts := Options{Rate: 50, Duration: 200 * time.Millisecond}
	td, stats, err := CaptureTraces(context.Background(), tpOpts)
	if err != nil {
		t.Fatal(err)
	}
	// 50 runs/s for 0.2 s: about 10, never wildly more.
	if stats.Runs < 3 || stats.Runs > 15 || int64(td.SpanCount()) != stats.Spans {
		t.Errorf("rate-limited run produced %+v (%d spans captured)", stats, td.SpanCount())
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	start := time.Now()
	_, stats, err = CaptureTraces(ctx, Options{Count: 1_000_000})
	if err != nil || time.Since(start) > 2*time.Second || stats.Runs > 10 {
		t.Errorf("cancelled run: %+v, %v after %v", stats, err, time.Since(start))
	}
}

func TestOptionsValidate(t *testing.T) {
	bad := []Options{{Rate: -1}, {Count: -1}, {ErrorRatio: 1.5}, {Users: -2}, {Duration: -time.Second}}
	for _, o := range bad {
		if o.Validate() == nil {
			t.Errorf("%+v: want an error", o)
		}
	}
	if _, err := Capture(context.Background(), Options{}); err == nil {
		t.Error("unbounded capture: want an error")
	}
}
