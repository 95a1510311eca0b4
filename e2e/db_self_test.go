package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// recorder collects what a check reports.
type recorder struct{ errs []string }

func (r *recorder) Helper() {}
func (r *recorder) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

// checkStored must catch each kind of damage a fault could do.
func TestCheckStoredCatchesDamage(t *testing.T) {
	const tr = "0af7651916cd43dd8448eb211c80319c"
	root := storedSpan{SpanID: "00f067aa0ba902b7", TraceID: tr, Name: "Agent.run", Status: "OK",
		Start: "2025-01-01T00:00:00.000000+00:00", End: "2025-01-01T00:00:02.500000+00:00"}
	child := storedSpan{SpanID: "00f067aa0ba902b8", TraceID: tr, Parent: root.SpanID, Name: "chat", Status: "ERROR",
		Start: "2025-01-01T00:00:01.000000+00:00", End: "2025-01-01T00:00:03.000000+00:00"}
	goodTrace := storedTrace{TraceID: tr, Name: "Agent.run", Status: "ERROR", Start: root.Start, End: child.End, DurationMS: 3000}
	now := time.Now()
	acked := map[string]time.Time{root.SpanID: now, child.SpanID: now}
	sent := map[string]string{root.SpanID: tr, child.SpanID: tr}
	good := func() dbSnapshot {
		return dbSnapshot{SpanRows: 2, Spans: map[string]storedSpan{root.SpanID: root, child.SpanID: child},
			Traces: map[string]storedTrace{tr: goodTrace}}
	}
	cases := []struct {
		name   string
		damage func(*dbSnapshot)
		want   string // substring of a reported error; "" = no error
	}{
		{"intact", func(*dbSnapshot) {}, ""},
		{"lost span", func(s *dbSnapshot) { delete(s.Spans, child.SpanID); s.SpanRows = 1 }, "not stored"},
		{"duplicate rows", func(s *dbSnapshot) { s.SpanRows = 3 }, "distinct span ids"},
		{"wrong status", func(s *dbSnapshot) { g := goodTrace; g.Status = "OK"; s.Traces[tr] = g }, "imply"},
		{"wrong name", func(s *dbSnapshot) { g := goodTrace; g.Name = "chat"; s.Traces[tr] = g }, "imply"},
		{"wrong end", func(s *dbSnapshot) { g := goodTrace; g.End = root.End; s.Traces[tr] = g }, "imply"},
		{"wrong duration", func(s *dbSnapshot) { g := goodTrace; g.DurationMS = 2500; s.Traces[tr] = g }, "imply"},
		{"missing trace row", func(s *dbSnapshot) { delete(s.Traces, tr) }, "no agno_traces row"},
		{"empty trace row", func(s *dbSnapshot) { s.Traces["ffffffffffffffffffffffffffffffff"] = storedTrace{} }, "no stored span"},
		{"foreign span", func(s *dbSnapshot) {
			s.Spans["1111111111111111"] = storedSpan{SpanID: "1111111111111111", TraceID: tr, Parent: root.SpanID, Start: root.Start, End: root.End}
			s.SpanRows = 3
		}, "never sent"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			snap := good()
			tc.damage(&snap)
			var r recorder
			checkStored(&r, snap, acked, sent)
			all := strings.Join(r.errs, "\n")
			switch {
			case tc.want == "" && len(r.errs) > 0:
				t.Errorf("intact data reported: %s", all)
			case tc.want != "" && !strings.Contains(all, tc.want):
				t.Errorf("damage not caught: want %q, got %q", tc.want, all)
			}
		})
	}
}
