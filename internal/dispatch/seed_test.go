package dispatch

import (
	"context"
	"reflect"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/kern-agents/trace-gateway/internal/convert"
	"github.com/kern-agents/trace-gateway/internal/sim"
)

// spanView is what a destination learns of one span, attribute order aside.
type spanView struct {
	TraceID, ParentID, Name, Kind, Status, StatusMsg string
	Start, End                                       uint64
	Attrs, Resource                                  map[string]any
	Scope                                            string
	Events                                           []any
}

func views(t *testing.T, payload []byte) map[string]spanView {
	t.Helper()
	td, err := (&ptrace.ProtoUnmarshaler{}).UnmarshalTraces(payload)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]spanView{}
	for _, rs := range td.ResourceSpans().All() {
		for _, ss := range rs.ScopeSpans().All() {
			for _, sp := range ss.Spans().All() {
				var events []any
				for _, ev := range sp.Events().All() {
					events = append(events, []any{ev.Name(), uint64(ev.Timestamp()), ev.Attributes().AsRaw()})
				}
				out[sp.SpanID().String()] = spanView{
					TraceID: sp.TraceID().String(), ParentID: sp.ParentSpanID().String(), Name: sp.Name(),
					Kind: sp.Kind().String(), Status: sp.Status().Code().String(), StatusMsg: sp.Status().Message(),
					Start: uint64(sp.StartTimestamp()), End: uint64(sp.EndTimestamp()),
					Attrs: sp.Attributes().AsRaw(), Resource: rs.Resource().Attributes().AsRaw(),
					Scope: ss.Scope().Name(), Events: events,
				}
			}
		}
	}
	return out
}

// TestSeededChunkMatchesStored: a chunk built from the spans as written says
// the same of every span as one built from the rows read back from the
// database (PostgreSQL's jsonb reorders keys; the content must not change).
func TestSeededChunkMatchesStored(t *testing.T) {
	ctx := context.Background()
	td, _, err := sim.CaptureTraces(ctx, sim.Options{Count: 20, Seed: 3, ErrorRatio: 0.3})
	if err != nil {
		t.Fatal(err)
	}
	rows, rejected := convert.FromOTLP(td, time.Now(), convert.Limits{})
	if len(rejected) > 0 || len(rows) == 0 {
		t.Fatalf("%d rows, %d rejected", len(rows), len(rejected))
	}
	eachStore(t, func(t *testing.T, s testStore) {
		logged, err := s.WriteLogged(ctx, rows)
		if err != nil || len(logged) != len(rows) {
			t.Fatalf("WriteLogged = %d ids, %v", len(logged), err)
		}
		shared := newSharedChunks(sharedChunkBytes)
		seed(shared, seedRow{spans: rows, flights: []*flight{shared.reserve(logged)}})
		seeded, built, err := shared.do(ctx, logged, func() (chunk, bool, error) {
			t.Fatal("the seeded chunk was not kept")
			return chunk{}, false, nil
		})
		if err != nil || built {
			t.Fatalf("seeded chunk: built=%v err=%v", built, err)
		}
		stored, err := s.Spans(ctx, logged)
		if err != nil {
			t.Fatal(err)
		}
		fromDB, ok := encodeRows(stored, len(logged))
		if !ok {
			t.Fatal("rows read back do not convert")
		}
		want, got := views(t, fromDB.payload()), views(t, seeded.payload())
		if len(got) != len(rows) || len(want) != len(rows) {
			t.Fatalf("seeded %d spans, read back %d, wrote %d", len(got), len(want), len(rows))
		}
		for id, w := range want {
			if !reflect.DeepEqual(got[id], w) {
				t.Fatalf("span %s differs:\nseeded %+v\nstored %+v", id, got[id], w)
			}
		}
	})
}
