package dispatch

import (
	"bytes"
	"container/list"
	"context"
	"fmt"
	"hash/maphash"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/kern-agents/trace-gateway/internal/convert"
	"github.com/kern-agents/trace-gateway/internal/model"
)

// chunk is a run of stored spans made ready for export: one delivery-log
// row (or a MaxSpans piece of one) loaded, converted back to OTLP and
// encoded. Chunks are immutable once built, so destinations share them.
type chunk struct {
	// parts concatenated are a protobuf OTLP ExportTraceServiceRequest of
	// size bytes; they go to the exporter as they are, never joined.
	// Requests concatenate: the bytes of several chunks in a row are one
	// valid request holding all their spans.
	parts [][]byte
	size  int
	ids   []string // hex ids of the spans in parts, for dead letters
}

// payload returns the chunk's request in one piece, a copy unless it is
// one part: for the rare paths that decode it.
func (c chunk) payload() []byte {
	if len(c.parts) == 1 {
		return c.parts[0]
	}
	return bytes.Join(c.parts, nil)
}

// encodeChunk encodes stored rows as a chunk straight to protobuf, with
// the bytes ToOTLP and the pdata marshaler would give at a third of the cost;
// it fails when any row does not convert.
func encodeChunk(rows []model.Span) (chunk, error) {
	parts, order, err := convert.EncodeOTLPParts(rows)
	if err != nil {
		return chunk{}, err
	}
	ids := make([]string, len(order))
	for i, j := range order {
		ids[i] = strings.ToLower(rows[j].SpanID)
	}
	size := 0
	for _, p := range parts {
		size += len(p)
	}
	return chunk{parts: parts, size: size, ids: ids}, nil
}

// newChunk encodes td as a chunk.
func newChunk(td ptrace.Traces) (chunk, error) {
	payload, err := (&ptrace.ProtoMarshaler{}).MarshalTraces(td)
	if err != nil {
		return chunk{}, fmt.Errorf("encoding stored spans: %w", err)
	}
	return chunk{parts: [][]byte{payload}, size: len(payload), ids: spanIDs(td)}, nil
}

// sharedChunkBytes bounds the encoded chunks kept for other destinations.
// Destinations that keep up read the same rows within moments of each
// other, so a few batches' worth is enough.
const sharedChunkBytes = 32 << 20

// sharedChunks keeps recently built chunks so that destinations reading the
// same delivery-log rows load, convert and encode them once instead of once
// each: that work is most of a destination's CPU. Keys are the claimed span
// ids of the chunk; every destination claims whole log rows and cuts chunks
// at row boundaries, so they ask for the same keys.
type sharedChunks struct {
	mu       sync.Mutex
	seed     maphash.Seed
	maxBytes int
	bytes    int
	order    *list.List // front = most recent; values are *sharedEntry
	byKey    map[uint64]*list.Element
	// building holds chunks being built: destinations woken by the same
	// commit ask for the same chunk at the same moment, and all but one wait
	// for it instead of building it again.
	building map[uint64]*flight

	hits, misses atomic.Uint64
}

// flight is a chunk under construction.
type flight struct {
	key  uint64
	ids  []string
	done chan struct{} // closed when the build ended
	c    chunk
	ok   bool // the build succeeded and may be shared
}

type sharedEntry struct {
	key uint64
	ids []string // the claimed ids the chunk was built for
	c   chunk
}

func newSharedChunks(maxBytes int) *sharedChunks {
	return &sharedChunks{seed: maphash.MakeSeed(), maxBytes: maxBytes, order: list.New(), byKey: map[uint64]*list.Element{}, building: map[uint64]*flight{}}
}

func (c *sharedChunks) key(ids []string) uint64 {
	var h maphash.Hash
	h.SetSeed(c.seed)
	for _, id := range ids {
		h.WriteString(id)
		h.WriteByte(0)
	}
	return h.Sum64()
}

// do returns the chunk of ids: kept from an earlier build, awaited from a
// build under way, or made by build here (built is then true). build
// reports whether its chunk may be shared; when a build this call waited
// for fails or may not be shared, build runs here too.
func (c *sharedChunks) do(ctx context.Context, ids []string, build func() (chunk, bool, error)) (ch chunk, built bool, err error) {
	k := c.key(ids)
	c.mu.Lock()
	if el, ok := c.byKey[k]; ok && slices.Equal(el.Value.(*sharedEntry).ids, ids) {
		c.order.MoveToFront(el)
		c.mu.Unlock()
		c.hits.Add(1)
		return el.Value.(*sharedEntry).c, false, nil
	}
	if f, ok := c.building[k]; ok && slices.Equal(f.ids, ids) {
		c.mu.Unlock()
		select {
		case <-f.done:
		case <-ctx.Done():
			return chunk{}, false, context.Cause(ctx)
		}
		if f.ok {
			c.hits.Add(1)
			return f.c, false, nil
		}
		c.misses.Add(1)
		ch, _, err := build()
		return ch, true, err
	}
	f := c.start(k, ids)
	c.mu.Unlock()
	c.misses.Add(1)

	ch, share, err := build()
	c.finish(f, ch, err == nil && share)
	return ch, true, err
}

// reserve announces a build of the chunk of ids, so that destinations
// asking for it meanwhile wait for it; nil when the chunk is kept or being
// built already. The caller must finish the flight.
func (c *sharedChunks) reserve(ids []string) *flight {
	k := c.key(ids)
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.byKey[k]; ok {
		return nil
	}
	if _, ok := c.building[k]; ok {
		return nil
	}
	return c.start(k, ids)
}

// start registers a build; c.mu is held.
func (c *sharedChunks) start(k uint64, ids []string) *flight {
	f := &flight{key: k, ids: ids, done: make(chan struct{})}
	c.building[k] = f
	return f
}

// finish ends a build: a chunk that may be shared is kept and handed to
// those waiting, who otherwise build it themselves.
func (c *sharedChunks) finish(f *flight, ch chunk, share bool) {
	c.mu.Lock()
	if c.building[f.key] == f {
		delete(c.building, f.key)
	}
	if share {
		f.c, f.ok = ch, true
		c.put(f.key, f.ids, ch)
	}
	c.mu.Unlock()
	close(f.done)
}

// put remembers ch as the chunk of ids; c.mu is held.
func (c *sharedChunks) put(k uint64, ids []string, ch chunk) {
	if ch.size > c.maxBytes {
		return
	}
	if el, ok := c.byKey[k]; ok {
		c.remove(el)
	}
	c.byKey[k] = c.order.PushFront(&sharedEntry{key: k, ids: slices.Clone(ids), c: ch})
	c.bytes += ch.size
	for c.bytes > c.maxBytes {
		c.remove(c.order.Back())
	}
}

func (c *sharedChunks) remove(el *list.Element) {
	e := c.order.Remove(el).(*sharedEntry)
	delete(c.byKey, e.key)
	c.bytes -= e.c.size
}

// stats reports lookups that found a chunk and lookups that did not.
func (c *sharedChunks) stats() (hits, misses uint64) { return c.hits.Load(), c.misses.Load() }
