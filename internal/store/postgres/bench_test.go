package postgres

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kern-agents/trace-gateway/internal/model"
	"github.com/kern-agents/trace-gateway/internal/store"
	"github.com/kern-agents/trace-gateway/internal/store/storetest"
	"github.com/kern-agents/trace-gateway/internal/testdb"
)

const benchBatchSize = 1000

// benchStore opens a store with a one-connection pool, so that the server
// process doing the work is known (see cpuMeter).
func benchStore(b *testing.B) *Store {
	dsn, schema := testdb.Postgres(b)
	u, err := url.Parse(dsn)
	if err != nil {
		b.Fatal(err)
	}
	q := u.Query()
	q.Set("pool_max_conns", "1")
	u.RawQuery = q.Encode()
	s, err := Open(context.Background(), store.Options{DSN: u.String(), Schema: schema})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

// cpuMeter measures the CPU time used by this process and by the server
// process behind the pool's only connection. On a busy machine it is a
// steadier yardstick than wall time. It reports nothing where /proc is
// not readable (a remote server, not Linux).
type cpuMeter struct {
	stat             string
	client0, server0 time.Duration
}

func newCPUMeter(b *testing.B, s *Store) *cpuMeter {
	c, err := s.Pool().Acquire(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	pid := c.Conn().PgConn().PID()
	c.Release()
	m := &cpuMeter{stat: fmt.Sprintf("/proc/%d/stat", pid)}
	m.client0, m.server0 = m.now()
	return m
}

// now returns the CPU time used so far by this process and by the server
// process (-1 when unknown).
func (m *cpuMeter) now() (client, server time.Duration) {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	client = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	data, err := os.ReadFile(m.stat)
	if err != nil {
		return client, -1
	}
	// Fields after the command name: utime and stime are the 12th and 13th.
	f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+2:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	const tick = 10 * time.Millisecond // USER_HZ is 100 on Linux
	return client, time.Duration(ut+st) * tick
}

func (m *cpuMeter) report(b *testing.B) {
	client, server := m.now()
	perOp := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) / float64(b.N) }
	b.ReportMetric(perOp(client-m.client0), "client-cpu-ms/op")
	if server >= 0 && m.server0 >= 0 {
		b.ReportMetric(perOp(server-m.server0), "server-cpu-ms/op")
	}
}

// BenchmarkWrite measures Write with batches of ~1000 spans of 11-span agent
// runs (each batch new traces).
func BenchmarkWrite(b *testing.B) {
	s := benchStore(b)
	ctx := context.Background()
	batch := storetest.NewBenchBatch(benchBatchSize)
	cpu := newCPUMeter(b, s)
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
	cpu.report(b)
}

// BenchmarkRawCopy is the floor Write is measured against: the same rows,
// trace rows computed beforehand, COPYed into the same tables (traces, then
// spans) in one transaction per batch, with no idempotency or aggregation.
func BenchmarkRawCopy(b *testing.B) {
	s := benchStore(b)
	ctx := context.Background()
	batch := storetest.NewBenchBatch(benchBatchSize)
	traces := pgx.Identifier{s.schema, "agno_traces"}
	spansTable := pgx.Identifier{s.schema, "agno_spans"}
	cpu := newCPUMeter(b, s)
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		spans, rows := batch.Next()
		now := model.FormatTime(time.Now())
		b.StartTimer()
		err := pgx.BeginFunc(ctx, s.Pool(), func(tx pgx.Tx) error {
			if _, err := tx.CopyFrom(ctx, traces, traceColumns, pgx.CopyFromSlice(len(rows), func(i int) ([]any, error) {
				r := &rows[i]
				return []any{r.TraceID, r.Name, r.Status, r.StartTime, r.EndTime, r.DurationMS,
					r.RunID, r.SessionID, r.UserID, r.AgentID, r.TeamID, r.WorkflowID, now}, nil
			})); err != nil {
				return err
			}
			_, err := tx.CopyFrom(ctx, spansTable, spanColumns, pgx.CopyFromSlice(len(spans), func(i int) ([]any, error) {
				sp := &spans[i]
				return []any{sp.SpanID, sp.TraceID, nullable(sp.ParentSpanID), sp.Name, sp.SpanKind, sp.StatusCode,
					nullable(sp.StatusMessage), sp.StartTime, sp.EndTime, sp.DurationMS, jsonOrNil(sp.Attributes), sp.CreatedAt}, nil
			}))
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*batch.Len())/b.Elapsed().Seconds(), "spans/s")
	cpu.report(b)
}
