package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kern-agents/trace-gateway/internal/peercollector"
	"github.com/kern-agents/trace-gateway/internal/procfs"
)

// bench holds what every measured side shares.
type bench struct {
	dsn, gwBin, colBin string
	gw                 gatewayOpts
	load               *load
	senders            int
	copyConns          int
	copyBatch          int
	checkpoint         bool
	sinks              *sinkProc
	conn               *pgx.Conn // the bench's own: counting, checkpoints, finding backends
	tag                string
	runs               int // gateway runs so far, for schema and application names
	schemas            []string
	warned             bool
}

// name returns a fresh name for one run's schema and application_name.
func (b *bench) name(what string) string {
	b.runs++
	return fmt.Sprintf("bench_%s%d_%s", what, b.runs, b.tag)
}

// settle lets the previous side's writes reach disk before the next is
// measured, so neither pays for the other's checkpoint.
func (b *bench) settle(ctx context.Context) {
	if !b.checkpoint {
		return
	}
	if _, err := b.conn.Exec(ctx, "CHECKPOINT"); err != nil && !b.warned {
		b.warned = true
		fmt.Printf("(CHECKPOINT between sides failed, continuing without: %v)\n", err)
	}
}

func (b *bench) dropSchema(ctx context.Context, schema string) {
	_, _ = b.conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE")
	b.schemas = slices.DeleteFunc(b.schemas, func(s string) bool { return s == schema })
}

// ingestResult is one gateway run without destinations.
type ingestResult struct {
	rate    float64 // spans per second, first request to last 200
	peakRSS int64
	cpu     cpuSplit // per span
	schema  string   // kept for the caller when keep is set
}

// gatewayIngest sends the load to a gateway without destinations. The
// schema is dropped afterwards unless keep is set.
func (b *bench) gatewayIngest(ctx context.Context, keep bool) (ingestResult, error) {
	schema := b.name("ingest")
	b.schemas = append(b.schemas, schema)
	if !keep {
		defer b.dropSchema(ctx, schema)
	}
	g, err := startGateway(b.gwBin, b.dsn, schema, schema, b.gw, nil)
	if err != nil {
		return ingestResult{}, err
	}
	defer g.stop()
	b.settle(ctx)
	m := startCPU(ctx, cpuWho{gateway: g.pid(), sinks: b.sinks.pid(), appName: g.appName, pg: b.conn})
	start, acked, err := sendAll(g.otlpURL, b.load.reqs, b.senders)
	if err != nil {
		return ingestResult{}, fmt.Errorf("send to the gateway: %w", err)
	}
	elapsed := slices.MaxFunc(acked, time.Time.Compare).Sub(start)
	cpu := m.stop(ctx)
	if n, err := countSpans(ctx, b.conn, schema); err != nil || n != b.load.spans {
		return ingestResult{}, fmt.Errorf("gateway stored %d spans (%v), sent %d", n, err, b.load.spans)
	}
	res := ingestResult{rate: float64(b.load.spans) / elapsed.Seconds(), peakRSS: g.peakRSS(), cpu: cpu.perSpan(b.load.spans), schema: schema}
	return res, g.stop()
}

// fanResult is one side of the fan-out comparison.
type fanResult struct {
	elapsed        time.Duration // first request sent → every live sink holds every span
	ingestRate     float64       // spans per second answered 200
	lagP50, lagP99 time.Duration // 200 → first arrival, over all live sinks
	peakRSS        int64         // the gateway's or the collector's
	duplicates     int
	cpu            cpuSplit // per span
}

// gatewayFanout sends the load to a gateway with one otlp destination per
// sink, sinks sinks of which the last down are a closed port for the
// whole run, and waits until every live sink holds every span.
func (b *bench) gatewayFanout(ctx context.Context, sinks, down int) (fanResult, error) {
	urls, err := b.sinks.start(sinks - down)
	if err != nil {
		return fanResult{}, err
	}
	for range down {
		addr, err := freeAddr() // nothing listens there: connection refused throughout
		if err != nil {
			return fanResult{}, err
		}
		urls = append(urls, "http://"+addr+"/v1/traces")
	}
	schema := b.name("fanout")
	b.schemas = append(b.schemas, schema)
	defer b.dropSchema(ctx, schema)
	o := b.gw
	if down > 0 {
		o.logLevel = "error" // not a warning per retry of the sink that is down
	}
	g, err := startGateway(b.gwBin, b.dsn, schema, schema, o, urls)
	if err != nil {
		return fanResult{}, err
	}
	defer g.stop()
	b.settle(ctx)
	m := startCPU(ctx, cpuWho{gateway: g.pid(), sinks: b.sinks.pid(), appName: g.appName, pg: b.conn})
	res, err := b.deliver(ctx, g.otlpURL, m)
	if err != nil {
		return res, fmt.Errorf("gateway: %w", err)
	}
	if n, err := countSpans(ctx, b.conn, schema); err != nil || n != b.load.spans {
		return res, fmt.Errorf("gateway stored %d spans (%v), sent %d", n, err, b.load.spans)
	}
	res.peakRSS = g.peakRSS()
	return res, g.stop()
}

// collectorFanout sends the load to the peer Collector exporting to
// sinks sinks.
func (b *bench) collectorFanout(ctx context.Context, sinks int) (fanResult, error) {
	urls, err := b.sinks.start(sinks)
	if err != nil {
		return fanResult{}, err
	}
	addr, err := freeAddr()
	if err != nil {
		return fanResult{}, err
	}
	col, err := peercollector.Start(b.colBin, addr, urls, os.Stdout)
	if err != nil {
		return fanResult{}, err
	}
	defer col.Stop()
	b.settle(ctx)
	m := startCPU(ctx, cpuWho{collector: col.Pid(), sinks: b.sinks.pid()})
	res, err := b.deliver(ctx, "http://"+addr+"/v1/traces", m)
	if err != nil {
		return res, fmt.Errorf("collector: %w", err)
	}
	res.peakRSS, _ = procfs.StatusBytes(col.Pid(), "VmHWM")
	return res, nil
}

// deliver sends the load to url and waits until every live sink of the
// sink process holds every span, stopping m at that point.
func (b *bench) deliver(ctx context.Context, url string, m *cpuMeter) (fanResult, error) {
	var res fanResult
	start, acked, err := sendAll(url, b.load.reqs, b.senders)
	if err != nil {
		return res, fmt.Errorf("send: %w", err)
	}
	res.ingestRate = float64(b.load.spans) / slices.MaxFunc(acked, time.Time.Compare).Sub(start).Seconds()
	counts, dups, err := b.sinks.wait(b.load.spans, 5*time.Minute)
	res.cpu = m.stop(ctx).perSpan(b.load.spans)
	if err != nil {
		return res, err
	}
	for i, n := range counts {
		if n != b.load.spans {
			return res, fmt.Errorf("sink %d holds %d of %d spans after 5 minutes", i, n, b.load.spans)
		}
		res.duplicates += dups[i]
	}
	arrivals, err := b.sinks.arrivals()
	if err != nil {
		return res, err
	}
	ackAt := map[[8]byte]int64{}
	for i, ids := range b.load.ids {
		for _, id := range ids {
			ackAt[id] = acked[i].UnixNano()
		}
	}
	var last int64
	var lags []float64
	for _, arr := range arrivals {
		for _, a := range arr {
			ack, ok := ackAt[a.ID]
			if !ok {
				return res, fmt.Errorf("a sink received span %x, which was never sent", a.ID)
			}
			last = max(last, a.At)
			lags = append(lags, float64(a.At-ack))
		}
	}
	res.elapsed = time.Duration(last - start.UnixNano())
	slices.Sort(lags)
	res.lagP50 = time.Duration(lags[len(lags)/2])
	res.lagP99 = time.Duration(lags[len(lags)*99/100])
	return res, nil
}
