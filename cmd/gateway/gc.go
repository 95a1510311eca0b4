package main

import (
	"os"
	"runtime/debug"
)

// Garbage collector defaults of `gateway run`. The ingest path allocates
// per request and keeps little alive (about 15 MiB under the bench load), so
// collecting at 4x the live heap instead of 2x cuts the gateway's CPU per
// span by a fifth for some 40 MiB more; the soft limit stops that headroom
// from growing with a large live heap (big batches held for a slow
// database). GOGC and GOMEMLIMIT in the environment win.
const (
	defaultGCPercent   = 400
	defaultMemoryLimit = 512 << 20
)

func tuneGC() {
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(defaultGCPercent)
	}
	if _, set := os.LookupEnv("GOMEMLIMIT"); !set {
		debug.SetMemoryLimit(defaultMemoryLimit)
	}
}
