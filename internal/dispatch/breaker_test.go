package dispatch

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"go.opentelemetry.io/collector/pdata/ptrace"
)

func TestBreakerTransitions(t *testing.T) {
	b := breaker{threshold: 3, coolDown: time.Minute}
	now := time.Unix(1000, 0)
	steps := []struct {
		name   string
		do     func() bool // returns "opened" for failures
		opened bool
		state  State
		wait   time.Duration // wait() at now after the step
	}{
		{"first failure", func() bool { return b.failure(now) }, false, Closed, 0},
		{"second failure", func() bool { return b.failure(now) }, false, Closed, 0},
		{"success resets", func() bool { b.success(); return false }, false, Closed, 0},
		{"failure 1", func() bool { return b.failure(now) }, false, Closed, 0},
		{"failure 2", func() bool { return b.failure(now) }, false, Closed, 0},
		{"failure 3 opens", func() bool { return b.failure(now) }, true, Open, time.Minute},
		{"half the cool-down", func() bool { now = now.Add(30 * time.Second); return false }, false, Open, 30 * time.Second},
		{"cool-down over: half-open", func() bool { now = now.Add(30 * time.Second); return false }, false, HalfOpen, 0},
		{"probe fails: open again", func() bool { return b.failure(now) }, true, Open, time.Minute},
		{"cool-down over again", func() bool { now = now.Add(time.Minute); return false }, false, HalfOpen, 0},
		{"probe succeeds: closed", func() bool { b.success(); return false }, false, Closed, 0},
	}
	for _, s := range steps {
		if opened := s.do(); opened != s.opened {
			t.Fatalf("%s: opened = %t, want %t", s.name, opened, s.opened)
		}
		if w := b.wait(now); w != s.wait {
			t.Fatalf("%s: wait = %s, want %s", s.name, w, s.wait)
		}
		if b.state != s.state {
			t.Fatalf("%s: state = %s, want %s", s.name, b.state, s.state)
		}
	}
}

func TestBackoff(t *testing.T) {
	initial, maxWait := 100*time.Millisecond, 2*time.Second
	for n, base := range []time.Duration{100, 200, 400, 800, 1600, 2000, 2000} {
		base *= time.Millisecond
		if n >= 5 {
			base = maxWait
		}
		for range 50 {
			d := backoff(n+1, initial, maxWait)
			if d < base/2 || d > base {
				t.Fatalf("backoff(%d) = %s, want within [%s, %s]", n+1, d, base/2, base)
			}
		}
	}
	seen := map[time.Duration]bool{}
	for range 20 {
		seen[backoff(3, initial, maxWait)] = true
	}
	if len(seen) < 5 {
		t.Fatalf("backoff has no jitter: %v", seen)
	}
}

func TestSplitBytes(t *testing.T) {
	td := ptrace.NewTraces()
	for r := range 3 {
		rs := td.ResourceSpans().AppendEmpty()
		rs.Resource().Attributes().PutStr("service.name", string(rune('a'+r)))
		for s := range 2 {
			ss := rs.ScopeSpans().AppendEmpty()
			ss.Scope().SetName(string(rune('x' + s)))
			for i := range 40 {
				sp := ss.Spans().AppendEmpty()
				sp.SetSpanID([8]byte{byte(r), byte(s), byte(i), 1})
				sp.SetTraceID([16]byte{1})
				sp.Attributes().PutStr("payload", string(make([]byte, 200)))
			}
		}
	}
	total := td.SpanCount()
	whole := ptrace.NewTraces()
	td.CopyTo(whole)
	var sizer ptrace.ProtoMarshaler
	const limit = 4096
	parts := splitBytes(td, limit)
	if len(parts) < 2 {
		t.Fatalf("split into %d parts", len(parts))
	}
	n := 0
	seen := map[string]bool{}
	for _, p := range parts {
		if size := sizer.TracesSize(p); size > limit {
			t.Fatalf("part of %d bytes exceeds %d", size, limit)
		}
		for _, id := range spanIDs(p) {
			seen[id] = true
		}
		n += p.SpanCount()
		// Resource and scope travel with their spans.
		rs := p.ResourceSpans().At(0)
		if _, ok := rs.Resource().Attributes().Get("service.name"); !ok || rs.ScopeSpans().At(0).Scope().Name() == "" {
			t.Fatal("part lost its resource or scope")
		}
	}
	if n != total || len(seen) != total {
		t.Fatalf("parts hold %d spans (%d distinct), want %d", n, len(seen), total)
	}
	if got := splitBytes(whole, 1<<30); len(got) != 1 || got[0].SpanCount() != total {
		t.Fatal("a batch that fits must come back whole")
	}
	// A span larger than the limit goes alone.
	big := ptrace.NewTraces()
	ss := big.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty()
	for i := range 3 {
		sp := ss.Spans().AppendEmpty()
		sp.SetSpanID([8]byte{byte(i), 9})
		sp.Attributes().PutStr("payload", string(make([]byte, 3*limit)))
	}
	if got := splitBytes(big, limit); len(got) != 3 {
		t.Fatalf("3 oversize spans split into %d parts, want 3", len(got))
	}
}

func TestHalveSpans(t *testing.T) {
	for _, n := range []int{2, 3, 7, 80} {
		td := ptrace.NewTraces()
		for i := range n {
			// a new resource every 3 spans and a new scope every 2
			rss := td.ResourceSpans()
			if i%3 == 0 {
				rss.AppendEmpty().Resource().Attributes().PutInt("r", int64(i))
			}
			rs := rss.At(rss.Len() - 1)
			if i%2 == 0 || rs.ScopeSpans().Len() == 0 {
				rs.ScopeSpans().AppendEmpty().Scope().SetName(fmt.Sprint("s", i))
			}
			sss := rs.ScopeSpans()
			sp := sss.At(sss.Len() - 1).Spans().AppendEmpty()
			sp.SetSpanID([8]byte{byte(i), 1})
		}
		want := spanIDs(td)
		parts := halveSpans(td)
		if len(parts) != 2 || parts[0].SpanCount() != n/2 || parts[1].SpanCount() != n-n/2 {
			t.Fatalf("%d spans halved into %d parts", n, len(parts))
		}
		if got := append(spanIDs(parts[0]), spanIDs(parts[1])...); !slices.Equal(got, want) {
			t.Fatalf("%d spans: halves hold %v, want %v", n, got, want)
		}
		for _, p := range parts {
			if _, ok := p.ResourceSpans().At(0).Resource().Attributes().Get("r"); !ok || p.ResourceSpans().At(0).ScopeSpans().At(0).Scope().Name() == "" {
				t.Fatalf("%d spans: a half lost its resource or scope", n)
			}
		}
	}
}

func TestCleanReason(t *testing.T) {
	long := strings.Repeat("é", maxReason) // 2 bytes each
	cases := []struct{ in, want string }{
		{"plain", "plain"},
		{"nul\x00byte", "nulbyte"},
		{"bad \xff utf8", "bad \uFFFD utf8"},
	}
	for _, c := range cases {
		if got := cleanReason(c.in); got != c.want {
			t.Errorf("cleanReason(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	got := cleanReason(long)
	if !utf8.ValidString(got) || len(got) > maxReason+len("…") || !strings.HasSuffix(got, "…") {
		t.Errorf("cut reason is %d bytes, valid %t", len(got), utf8.ValidString(got))
	}
}
