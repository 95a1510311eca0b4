package sqlite

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/kern-agents/trace-gateway/internal/store"
	"github.com/kern-agents/trace-gateway/internal/store/storetest"
)

// BenchmarkWrite measures Write with batches of ~1000 spans of 11-span agent
// runs (each batch new traces), with the default synchronous=FULL and, for
// comparison, NORMAL.
func BenchmarkWrite(b *testing.B) {
	for _, sync := range []string{"FULL", "NORMAL"} {
		b.Run("synchronous="+sync, func(b *testing.B) {
			dsn := "file:" + filepath.Join(b.TempDir(), "bench.db") + "?_pragma=synchronous(" + sync + ")"
			s, err := Open(context.Background(), store.Options{DSN: dsn})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			ctx := context.Background()
			batch := storetest.NewBenchBatch(1000)
			b.ResetTimer()
			for range b.N {
				b.StopTimer()
				spans, _ := batch.Next()
				b.StartTimer()
				if err := s.Write(ctx, spans); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*batch.Len())/b.Elapsed().Seconds(), "spans/s")
		})
	}
}
