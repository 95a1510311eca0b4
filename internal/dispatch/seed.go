package dispatch

import (
	"context"
	"slices"

	"github.com/kern-agents/trace-gateway/internal/model"
)

// seedQueue bounds the written rows waiting to be built into chunks; past
// it, rows are left to the workers, who read them back from the database.
const seedQueue = 16

// seedRow is a delivery-log row just written: its spans, still in memory,
// and the builds announced for its chunks.
type seedRow struct {
	spans   []model.Span
	flights []*flight
}

// SpansLogged builds the chunks of a delivery-log row the batcher just
// wrote from the spans it still holds (it is a batcher.LogObserver), so
// destinations following the newest writes do not read them back: loading
// them was the largest database cost of fan-out. The builds are announced
// here, before the workers are woken, and made by the seeder goroutine.
func (d *Dispatcher) SpansLogged(spans []model.Span, ids []string) {
	sizes := d.chunkSizes()
	if len(sizes) == 0 || len(ids) == 0 {
		return
	}
	row := seedRow{spans: spans}
	for _, size := range sizes {
		_, pieces := layout([][]string{ids}, 0, size)
		for _, p := range pieces {
			if f := d.shared.reserve(ids[p.from:p.to]); f != nil {
				row.flights = append(row.flights, f)
			}
		}
	}
	if len(row.flights) == 0 {
		return
	}
	select {
	case d.seeds <- row:
	default:
		// Behind: the workers build these from the database.
		for _, f := range row.flights {
			d.shared.finish(f, chunk{}, false)
		}
	}
}

// chunkSizes lists the distinct batch sizes of the running workers: each
// cuts rows into chunks of its own MaxSpans.
func (d *Dispatcher) chunkSizes() []int {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ctx == nil || d.stopped {
		return nil
	}
	var sizes []int
	for _, w := range d.workers {
		if !slices.Contains(sizes, w.p.MaxSpans) {
			sizes = append(sizes, w.p.MaxSpans)
		}
	}
	return sizes
}

// seeder builds announced chunks until ctx ends, then gives up on those
// still queued (their waiters build them).
func (d *Dispatcher) seeder(ctx context.Context) {
	for {
		select {
		case row := <-d.seeds:
			seed(d.shared, row)
		case <-ctx.Done():
			for {
				select {
				case row := <-d.seeds:
					for _, f := range row.flights {
						d.shared.finish(f, chunk{}, false)
					}
				default:
					return
				}
			}
		}
	}
}

// seed builds row's announced chunks. Only chunks whose every span converts
// are shared; otherwise the workers build them from the database, which
// dead-letters what cannot be converted.
func seed(shared *sharedChunks, row seedRow) {
	byID := make(map[string]int, len(row.spans))
	for i := len(row.spans) - 1; i >= 0; i-- {
		byID[row.spans[i].SpanID] = i // the first of repeated ids wins, as in the stores
	}
	for _, f := range row.flights {
		rows := make([]model.Span, 0, len(f.ids))
		for _, id := range f.ids {
			if i, ok := byID[id]; ok {
				rows = append(rows, row.spans[i])
			}
		}
		ch, ok := encodeRows(rows, len(f.ids))
		shared.finish(f, ch, ok)
	}
}

// encodeRows converts rows and encodes them as one chunk; ok is false unless
// all want rows were there and converted.
func encodeRows(rows []model.Span, want int) (chunk, bool) {
	if len(rows) != want {
		return chunk{}, false
	}
	ch, err := encodeChunk(rows)
	return ch, err == nil
}
