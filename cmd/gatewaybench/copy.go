package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// The raw COPY baseline: the spans a gateway run just stored, with every
// column as stored except attributes, which are the sender's (the span's
// attributes as sent, a JSON object), loaded with pgx CopyFrom into a fresh
// table created LIKE the stored spans table INCLUDING ALL (its keys,
// defaults and indexes), over a few connections in batches. Only the COPY
// is timed.

// copyColumns are AgentOS's agno_spans columns.
var copyColumns = []string{"span_id", "trace_id", "parent_span_id", "name", "span_kind", "status_code",
	"status_message", "start_time", "end_time", "duration_ms", "created_at", "attributes"}

// copyRows reads the spans stored in schema and puts the sender's
// attributes in place of the stored ones.
func copyRows(ctx context.Context, conn *pgx.Conn, schema string, attrs map[string]string) ([][]any, error) {
	rows, err := conn.Query(ctx, fmt.Sprintf(`SELECT span_id, trace_id, parent_span_id, name, span_kind, status_code,
		status_message, start_time, end_time, duration_ms, created_at FROM %s.agno_spans`, pgx.Identifier{schema}.Sanitize()))
	if err != nil {
		return nil, fmt.Errorf("read stored spans: %w", err)
	}
	defer rows.Close()
	var out [][]any
	for rows.Next() {
		v, err := rows.Values()
		if err != nil {
			return nil, fmt.Errorf("read stored spans: %w", err)
		}
		id, _ := v[0].(string)
		a, ok := attrs[id]
		if !ok {
			return nil, fmt.Errorf("stored span %q is not one the senders sent", id)
		}
		out = append(out, append(v, a))
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read stored spans: %w", err)
	}
	if len(out) != len(attrs) {
		return nil, fmt.Errorf("%d spans stored, %d sent", len(out), len(attrs))
	}
	return out, nil
}

// copyResult is one raw COPY run.
type copyResult struct {
	rate float64  // rows per second
	cpu  cpuSplit // per row
}

// rawCopy loads rows into a new table LIKE template.agno_spans.
func (b *bench) rawCopy(ctx context.Context, template string, rows [][]any) (copyResult, error) {
	schema := b.name("copy")
	b.schemas = append(b.schemas, schema)
	defer b.dropSchema(ctx, schema)
	table := pgx.Identifier{schema, "agno_spans"}
	if _, err := b.conn.Exec(ctx, fmt.Sprintf(`CREATE SCHEMA %s; CREATE TABLE %s (LIKE %s INCLUDING ALL)`,
		pgx.Identifier{schema}.Sanitize(), table.Sanitize(), pgx.Identifier{template, "agno_spans"}.Sanitize())); err != nil {
		return copyResult{}, fmt.Errorf("create the COPY table: %w", err)
	}
	dsn, err := withAppName(b.dsn, schema)
	if err != nil {
		return copyResult{}, err
	}
	conns := make([]*pgx.Conn, b.copyConns)
	for i := range conns {
		if conns[i], err = pgx.Connect(ctx, dsn); err != nil {
			return copyResult{}, fmt.Errorf("COPY connection: %w", err)
		}
		defer conns[i].Close(ctx)
	}
	batches := make(chan [][]any, (len(rows)+b.copyBatch-1)/b.copyBatch)
	for i := 0; i < len(rows); i += b.copyBatch {
		batches <- rows[i:min(i+b.copyBatch, len(rows))]
	}
	close(batches)
	b.settle(ctx)
	m := startCPU(ctx, cpuWho{sinks: b.sinks.pid(), appName: schema, pg: b.conn})
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, len(conns))
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for batch := range batches {
				if _, err := c.CopyFrom(ctx, table, copyColumns, pgx.CopyFromRows(batch)); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu := m.stop(ctx)
	close(errs)
	if err := <-errs; err != nil {
		return copyResult{}, fmt.Errorf("COPY: %w", err)
	}
	var n int
	if err := b.conn.QueryRow(ctx, "SELECT count(*) FROM "+table.Sanitize()).Scan(&n); err != nil || n != len(rows) {
		return copyResult{}, fmt.Errorf("COPY stored %d rows (%v), want %d", n, err, len(rows))
	}
	return copyResult{rate: float64(len(rows)) / elapsed.Seconds(), cpu: cpu.perSpan(len(rows))}, nil
}
