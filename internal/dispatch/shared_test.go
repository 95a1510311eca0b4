package dispatch

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fixed is a build that returns payload and counts its calls.
func fixed(payload string, share bool, calls *atomic.Int32) func() (chunk, bool, error) {
	return func() (chunk, bool, error) {
		calls.Add(1)
		return chunk{parts: [][]byte{[]byte(payload)}, size: len(payload), ids: []string{payload}}, share, nil
	}
}

func TestSharedChunks(t *testing.T) {
	ctx := context.Background()
	c := newSharedChunks(10)
	ids := []string{"a", "b"}
	var calls atomic.Int32
	if _, built, _ := c.do(ctx, ids, fixed("ab", true, &calls)); !built {
		t.Fatal("first lookup did not build")
	}

	cases := []struct {
		name string
		ids  []string
		hit  bool
	}{
		{"same ids hit", []string{"a", "b"}, true},
		{"other order misses", []string{"b", "a"}, false},
		{"subset misses", []string{"a"}, false},
		{"ids that concatenate alike miss", []string{"ab"}, false},
	}
	for _, tc := range cases {
		var n atomic.Int32
		got, built, err := c.do(ctx, tc.ids, fixed("zz", false, &n))
		if err != nil || built == tc.hit || int(n.Load()) != map[bool]int{true: 0, false: 1}[tc.hit] {
			t.Fatalf("%s: built=%v builds=%d err=%v", tc.name, built, n.Load(), err)
		}
		if tc.hit && string(got.payload()) != "ab" {
			t.Fatalf("%s: got %q", tc.name, got.payload())
		}
	}
	if hits, misses := c.stats(); hits != 1 || misses != 4 {
		t.Fatalf("stats = %d hits, %d misses; want 1, 4", hits, misses)
	}
	// A chunk that may not be shared is not kept.
	var n atomic.Int32
	c.do(ctx, []string{"dirty"}, fixed("d", false, &n))
	c.do(ctx, []string{"dirty"}, fixed("d", false, &n))
	if n.Load() != 2 {
		t.Fatalf("unshareable chunk built %d times, want 2", n.Load())
	}

	// Eviction keeps at most maxBytes of payload, least recently used first.
	for i := range 3 {
		c.do(ctx, []string{fmt.Sprint(i)}, fixed("xxxx", true, &n))
	}
	if _, built, _ := c.do(ctx, ids, fixed("ab", true, &n)); !built {
		t.Fatal("oldest entry not evicted")
	}
	// "0" went too; "1", "2" and "ab" again fill the 10 bytes.
	if c.bytes != 10 || c.order.Len() != 3 || len(c.byKey) != 3 {
		t.Fatalf("cache holds %d bytes in %d/%d entries, want 10 in 3", c.bytes, c.order.Len(), len(c.byKey))
	}
	// A chunk larger than the whole cache is not kept, and evicts nothing.
	c.do(ctx, []string{"big"}, fixed("0123456789x", true, &n))
	if c.order.Len() != 3 || c.bytes != 10 {
		t.Fatalf("oversized chunk kept (%d entries, %d bytes)", c.order.Len(), c.bytes)
	}
}

// TestSharedChunksBuildOnce: destinations asking for a chunk while another
// builds it wait for that build instead of repeating it, unless it fails.
func TestSharedChunksBuildOnce(t *testing.T) {
	cases := []struct {
		name       string
		share      bool
		fail       bool
		wantBuilds int32
	}{
		{"shared build", true, false, 1},
		{"unshareable build: each builds", false, false, 4},
		{"failed build: each builds", true, true, 4},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newSharedChunks(1 << 20)
			var builds atomic.Int32
			release := make(chan struct{})
			build := func() (chunk, bool, error) {
				if builds.Add(1) == 1 {
					<-release // the others arrive while this one builds
					if tc.fail {
						return chunk{}, false, errors.New("database gone")
					}
				}
				return chunk{parts: [][]byte{[]byte("p")}, size: 1}, tc.share, nil
			}
			var wg sync.WaitGroup
			for i := range 4 {
				wg.Go(func() { c.do(context.Background(), []string{"x"}, build) })
				if i == 0 {
					for c.buildingLen() == 0 {
						time.Sleep(time.Millisecond)
					}
				}
			}
			time.Sleep(20 * time.Millisecond) // let the others reach the wait
			close(release)
			wg.Wait()
			if got := builds.Load(); got != tc.wantBuilds {
				t.Fatalf("%d builds, want %d", got, tc.wantBuilds)
			}
		})
	}
}

func TestLayout(t *testing.T) {
	rows := [][]string{{"a", "b", "c", "d", "e"}, {"f"}, {"g", "h"}}
	cases := []struct {
		name       string
		done, size int
		want       []piece
	}{
		{"rows fit", 0, 8, []piece{{0, 5}, {5, 6}, {6, 8}}},
		{"large row cut from its start", 0, 2, []piece{{0, 2}, {2, 4}, {4, 5}, {5, 6}, {6, 8}}},
		{"resume mid-row", 3, 2, []piece{{3, 4}, {4, 5}, {5, 6}, {6, 8}}},
		{"resume at a row boundary", 5, 8, []piece{{5, 6}, {6, 8}}},
		{"all done", 8, 8, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ids, got := layout(rows, tc.done, tc.size)
			if len(ids) != 8 || ids[5] != "f" {
				t.Fatalf("ids = %v", ids)
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("pieces = %v, want %v", got, tc.want)
			}
		})
	}
}

// buildingLen is how many builds are under way.
func (c *sharedChunks) buildingLen() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.building)
}
