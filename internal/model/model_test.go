package model

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

func TestAppendTimeIsTimeFormat(t *testing.T) {
	times := []time.Time{
		time.Unix(0, 0),
		time.Unix(0, math.MaxInt64),
		time.Unix(0, math.MinInt64),
		time.Unix(0, -1),
		time.Date(2025, 11, 19, 10, 30, 0, 123456789, time.UTC),
		time.Date(2025, 12, 31, 23, 59, 59, 999999999, time.FixedZone("x", 5*3600+1800)),
		time.Date(9999, 12, 31, 23, 59, 59, 999, time.UTC),
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(12, 3, 4, 5, 6, 7, 8000, time.UTC),
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 10000 {
		times = append(times, time.Unix(0, int64(r.Uint64())))
	}
	for _, tm := range times {
		want := tm.UTC().Format(TimeLayout)
		if got := string(AppendTime(nil, tm)); got != want {
			t.Fatalf("AppendTime(%v) = %q, want %q", tm, got, want)
		}
		if got := FormatUnixNano(tm.UnixNano()); tm.Year() > 1677 && tm.Year() < 2262 && got != want {
			t.Fatalf("FormatUnixNano(%d) = %q, want %q", tm.UnixNano(), got, want)
		}
	}
}
