//go:build race

package dispatch

// raceEnabled: the race detector slows the pure-Go SQLite driver tenfold,
// so the largest tests shrink under it.
const raceEnabled = true
