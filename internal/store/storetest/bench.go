package storetest

import (
	"fmt"
	"math/rand"
	"time"

	"github.com/kern-agents/trace-gateway/internal/model"
)

// BenchBatch is a batch of agent-run traces for benchmarks: Next gives the
// same spans under new trace and span ids each time, so every batch is new
// to the store, at the cost of formatting ids only.
type BenchBatch struct {
	template []model.Span
	traces   []TraceRow // one per template trace, in batch order
	n        int
	spans    []model.Span
}

// NewBenchBatch builds a batch of about size spans (whole 11-span traces).
func NewBenchBatch(size int) *BenchBatch {
	r := rand.New(rand.NewSource(1))
	b := &BenchBatch{}
	start := time.Date(2025, 5, 1, 8, 0, 0, 0, time.UTC)
	for len(b.template)+11 <= max(size, 11) {
		tr := AgentTrace(r, start.Add(time.Duration(len(b.traces))*time.Second))
		b.template = append(b.template, tr...)
		b.traces = append(b.traces, ExpectedTrace(tr))
	}
	b.spans = make([]model.Span, len(b.template))
	return b
}

// Next returns the next batch and its trace rows. Both are overwritten by
// the following call.
func (b *BenchBatch) Next() ([]model.Span, []TraceRow) {
	b.n++
	ids := map[string]string{}
	id := func(old string, bytes int) string {
		if old == "" {
			return ""
		}
		if v, ok := ids[old]; ok {
			return v
		}
		// Random-looking like real ids, so index inserts land all over.
		k := uint64(b.n)<<24 | uint64(len(ids))
		v := fmt.Sprintf("%016x", mix(k))
		if bytes == 16 {
			v += fmt.Sprintf("%016x", mix(^k))
		}
		ids[old] = v
		return v
	}
	for i, sp := range b.template {
		sp.TraceID = id(sp.TraceID, 16)
		sp.SpanID = id(sp.SpanID, 8)
		sp.ParentSpanID = id(sp.ParentSpanID, 8)
		b.spans[i] = sp
	}
	rows := make([]TraceRow, len(b.traces))
	for i, tr := range b.traces {
		tr.TraceID = ids[tr.TraceID]
		rows[i] = tr
	}
	return b.spans, rows
}

// Len is the number of spans in a batch.
func (b *BenchBatch) Len() int { return len(b.template) }

// mix is splitmix64's finaliser: a bijection that scatters its input.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}
