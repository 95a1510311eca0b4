package storetest

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/kern-agents/trace-gateway/internal/model"
	"github.com/kern-agents/trace-gateway/internal/store"
)

// testCrossServiceTrace writes a trace whose spans come from two services
// and from a client that sent no resource, in batches of every order, and
// checks that the fan-out reads each span back with its own origin while
// only the spans off the trace's usual origin carry a reference.
func testCrossServiceTrace(t *testing.T, open func(t *testing.T) store.Store) {
	agent := &model.Origin{ID: "a1a1a1a1a1a1a1a1", Resource: []byte(`{"service.name":"agentos"}`), Scope: []byte(`{"name":"agno","version":"1"}`)}
	tools := &model.Origin{ID: "b2b2b2b2b2b2b2b2", Resource: []byte(`{"service.name":"tool-service"}`)}
	spans := func(trace string) []model.Span {
		mk := func(id, parent string, o *model.Origin) model.Span {
			return model.Span{
				SpanID: id, TraceID: trace, ParentSpanID: parent, Name: "span " + id, SpanKind: model.KindInternal,
				StatusCode: model.StatusOK, StartTime: at(0), EndTime: at(10), DurationMS: 10, CreatedAt: at(20),
				Attributes: []byte(`{"openinference.span.kind":"CHAIN"}`), Origin: o,
			}
		}
		return []model.Span{
			mk("1000000000000001", "", agent),
			mk("1000000000000002", "1000000000000001", agent),
			mk("1000000000000003", "1000000000000002", tools),
			mk("1000000000000004", "1000000000000002", nil),
			mk("1000000000000005", "1000000000000001", agent),
		}
	}
	// Batches as index lists into spans(); usual is the origin the first
	// batch proposes (its root's, else its first span's).
	orders := []struct {
		name    string
		batches [][]int
		usual   *model.Origin
	}{
		{"one batch", [][]int{{0, 1, 2, 3, 4}}, agent},
		{"root last", [][]int{{1, 2}, {3}, {4, 0}}, agent},
		{"other service first", [][]int{{2}, {0, 1, 3, 4}}, tools},
		{"no resource first", [][]int{{3}, {2, 4}, {0, 1}}, nil},
		{"concurrent", [][]int{{0, 1}, {2, 3, 4}}, nil}, // either may win
	}
	s := open(t)
	ctx := context.Background()
	for n, o := range orders {
		t.Run(o.name, func(t *testing.T) {
			trace := fmt.Sprintf("%032x", 0xc0ffee00+n)
			all := spans(trace)
			for i := range all {
				all[i].SpanID = fmt.Sprintf("%02x", n) + all[i].SpanID[2:]
				if all[i].ParentSpanID != "" {
					all[i].ParentSpanID = fmt.Sprintf("%02x", n) + all[i].ParentSpanID[2:]
				}
			}
			batch := func(idx []int) []model.Span {
				var out []model.Span
				for _, i := range idx {
					out = append(out, all[i])
				}
				return out
			}
			if o.name == "concurrent" {
				var wg sync.WaitGroup
				for _, idx := range o.batches {
					wg.Go(func() {
						if err := s.Write(ctx, batch(idx)); err != nil {
							t.Errorf("write: %v", err)
						}
					})
				}
				wg.Wait()
			} else {
				for _, idx := range o.batches {
					write(t, s, batch(idx)...)
				}
			}
			checkSpanOrigins(t, s, all, o.usual, o.name != "concurrent")
		})
	}
}

// checkSpanOrigins checks that every span of want reads back with its own
// Origin through the fan-out, and that the stored attributes reference an
// origin exactly where it is not the trace's usual one (when checkUsual,
// usual is that origin).
func checkSpanOrigins(t *testing.T, s store.Store, want []model.Span, usual *model.Origin, checkUsual bool) {
	t.Helper()
	ctx := context.Background()
	stored, err := ReadSpans(ctx, s, want[0].TraceID)
	if err != nil {
		t.Fatal(err)
	}
	refs := 0
	for _, sp := range stored {
		var a map[string]any
		if err := json.Unmarshal(sp.Attributes, &a); err != nil {
			t.Fatalf("span %s attributes %s: %v", sp.SpanID, sp.Attributes, err)
		}
		ref, has := a[model.KeyResource]
		if has {
			refs++
		}
		if !checkUsual {
			continue
		}
		var w *model.Origin
		for i := range want {
			if want[i].SpanID == sp.SpanID {
				w = want[i].Origin
			}
		}
		own := store.OriginID(&model.Span{Origin: w})
		switch {
		case own == store.OriginID(&model.Span{Origin: usual}):
			if has {
				t.Errorf("span %s of the usual origin stores a reference: %s", sp.SpanID, sp.Attributes)
			}
		case !has || ref != own:
			t.Errorf("span %s stores %s, want a reference to %q", sp.SpanID, sp.Attributes, own)
		}
	}
	if refs == len(want) {
		t.Errorf("every span stores a reference; the usual origin's should not")
	}
	dl, ok := s.(store.DeliveryLog)
	if !ok {
		return
	}
	ids := make([]string, len(want))
	origins := make(map[string]*model.Origin, len(want))
	for i := range want {
		ids[i] = want[i].SpanID
		origins[want[i].SpanID] = want[i].Origin
	}
	for _, sp := range loadWithOrigins(t, dl, ids, origins) {
		if strings.Contains(string(sp.Attributes), `"`+model.KeyResource+`":""`) && origins[sp.SpanID] != nil {
			t.Errorf("span %s marked as without origin", sp.SpanID)
		}
	}
}
