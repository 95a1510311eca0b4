package dispatch

import (
	"container/list"
	"hash/maphash"
	"slices"
	"sync"

	"go.opentelemetry.io/collector/pdata/ptrace"
)

// sharedBatches keeps the last few converted chunks of stored spans so that
// destinations reading the same delivery-log rows at about the same time
// (the usual case: they all follow the newest writes) load and convert them
// once instead of once each. Converting rows back to OTLP is most of a
// destination's CPU; a hit costs a deep copy. Entries are immutable masters:
// callers always get their own copy, because routing changes it.
// sharedChunks is how many converted chunks are kept.
const sharedChunks = 16

type sharedBatches struct {
	mu    sync.Mutex
	seed  maphash.Seed
	max   int
	order *list.List // front = most recent; values are *sharedEntry
	byKey map[uint64]*list.Element
}

type sharedEntry struct {
	key uint64
	ids []string
	td  ptrace.Traces
}

func newSharedBatches(max int) *sharedBatches {
	return &sharedBatches{seed: maphash.MakeSeed(), max: max, order: list.New(), byKey: map[uint64]*list.Element{}}
}

func (c *sharedBatches) key(ids []string) uint64 {
	var h maphash.Hash
	h.SetSeed(c.seed)
	for _, id := range ids {
		h.WriteString(id)
		h.WriteByte(0)
	}
	return h.Sum64()
}

// get returns a private copy of the chunk converted for exactly ids.
func (c *sharedBatches) get(ids []string) (ptrace.Traces, bool) {
	if c == nil {
		return ptrace.Traces{}, false
	}
	k := c.key(ids)
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.byKey[k]
	if !ok || !slices.Equal(el.Value.(*sharedEntry).ids, ids) {
		return ptrace.Traces{}, false
	}
	c.order.MoveToFront(el)
	out := ptrace.NewTraces()
	el.Value.(*sharedEntry).td.CopyTo(out)
	return out, true
}

// put remembers a copy of td as the conversion of ids.
func (c *sharedBatches) put(ids []string, td ptrace.Traces) {
	if c == nil || c.max <= 0 {
		return
	}
	master := ptrace.NewTraces()
	td.CopyTo(master)
	k := c.key(ids)
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.byKey[k]; ok {
		c.order.Remove(el)
	}
	c.byKey[k] = c.order.PushFront(&sharedEntry{key: k, ids: slices.Clone(ids), td: master})
	for c.order.Len() > c.max {
		last := c.order.Back()
		c.order.Remove(last)
		delete(c.byKey, last.Value.(*sharedEntry).key)
	}
}
