// Command gatewaybench measures the gateway against what users would run
// instead, on the same machine in the same run (`make bench` runs it):
//
//   - Ingest: agent spans over OTLP/HTTP protobuf from several senders into
//     a gateway storing in PostgreSQL (a span counts when its request was
//     answered 200, which the gateway only sends once it is committed),
//     against a raw pgx COPY of the same spans, with the attributes the
//     sender sent, into a fresh table LIKE the stored one.
//   - Fan-out: the same spans delivered to fake OTLP/HTTP vendors, by the
//     gateway (stored first, one `otlp` destination per sink) and by an
//     OpenTelemetry Collector (otlp receiver → batch → otlphttp exporters,
//     nothing persisted) built from the module proxy by the Collector's
//     builder; the time until every sink holds every span.
//
// Sides alternate over a few rounds and medians are reported, with where
// the CPU went per span (from /proc).
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kern-agents/trace-gateway/internal/peercollector"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == sinkModeArg {
		if err := serveSinks(os.Stdin, os.Stdout); err != nil {
			log.Fatal(err)
		}
		return
	}
	var (
		dsn      = flag.String("dsn", envOr("TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"), "PostgreSQL DSN")
		gwBin    = flag.String("gateway", "bin/gateway", "gateway binary")
		spans    = flag.Int("spans", 110000, "spans to send (whole simulated agent runs of about 11 spans)")
		perReq   = flag.Int("traces-per-request", 50, "traces per OTLP request")
		senders  = flag.Int("senders", 4, "concurrent senders")
		rounds   = flag.Int("rounds", 3, "alternating rounds; medians are reported")
		sinks    = flag.Int("sinks", 5, "fake OTLP/HTTP vendors of the fan-out comparison")
		parts    = flag.String("parts", "ingest,fanout,down", "what to measure: ingest (vs raw COPY), fanout (vs the Collector), down (one sink down)")
		colBin   = flag.String("collector", "", "OpenTelemetry Collector binary to compare with (default: build v"+peercollector.Version+" with its builder, cached)")
		colCache = flag.String("collector-cache", "", "where the built Collector is cached (default: the user cache directory, $XDG_CACHE_HOME or ~/.cache)")
		cConns   = flag.Int("copy-conns", 2, "connections of the raw COPY")
		cBatch   = flag.Int("copy-batch", 512, "rows per COPY statement")
		ckpt     = flag.Bool("checkpoint", true, "CHECKPOINT before each measured side, so none pays for another's writes")
		writers  = flag.Int("writers", 0, "ingest.writers of the gateway (0: its default)")
		bDelay   = flag.String("batch-delay", "", "ingest.max_batch_delay of the gateway (empty: its default)")
		batch    = flag.Int("batch", 0, "ingest.max_batch_spans of the gateway (0: its default)")
		dBatch   = flag.Int("dest-batch", 0, "batch.max_spans of each destination (0: the gateway's default)")
		dDelay   = flag.String("dest-delay", "", "batch.max_delay of each destination (empty: the gateway's default)")
		dComp    = flag.String("dest-compression", "none", "compression of each destination: none (as the Collector's exporters here) or gzip")
	)
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: gatewaybench [flags]\n\nCompares the gateway with a raw PostgreSQL COPY (ingest) and with an\nOpenTelemetry Collector (fan-out) in alternating rounds.\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	want := map[string]bool{}
	for _, p := range strings.Split(*parts, ",") {
		switch p = strings.TrimSpace(p); p {
		case "ingest", "fanout", "down":
			want[p] = true
		case "":
		default:
			log.Fatalf("-parts: unknown part %q (want ingest, fanout, down)", p)
		}
	}
	if *spans < 1 || *perReq < 1 || *senders < 1 || *rounds < 1 || *cConns < 1 || *cBatch < 1 || *sinks < 0 {
		log.Fatal("-spans, -traces-per-request, -senders, -rounds, -copy-conns and -copy-batch must be at least 1, -sinks at least 0")
	}
	if *sinks < 2 {
		delete(want, "down")
	}
	if *sinks == 0 {
		delete(want, "fanout")
	}
	b := &bench{
		dsn: *dsn, gwBin: *gwBin, colBin: *colBin, senders: *senders,
		copyConns: *cConns, copyBatch: *cBatch, checkpoint: *ckpt,
		gw:  gatewayOpts{writers: *writers, maxBatch: *batch, batchDelay: *bDelay, destBatch: *dBatch, destDelay: *dDelay, destCompression: *dComp},
		tag: strconv.FormatInt(time.Now().UnixNano()%1e9, 36),
	}
	if err := run(context.Background(), b, want, *spans, *perReq, *rounds, *sinks, *colCache); err != nil {
		log.Fatal(err)
	}
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func run(ctx context.Context, b *bench, want map[string]bool, spans, perReq, rounds, sinks int, colCache string) error {
	if want["fanout"] && b.colBin == "" {
		dir := colCache
		if dir == "" {
			var err error
			if dir, err = peercollector.CacheDir(); err != nil {
				return err
			}
		}
		bin, err := peercollector.Build(ctx, dir, os.Stdout)
		if err != nil {
			return err
		}
		b.colBin = bin
	}
	fmt.Printf("generating %d spans of simulated agent runs with the OpenTelemetry SDK...\n", spans)
	l, err := generate(ctx, spans, perReq)
	if err != nil {
		return err
	}
	b.load = l
	fmt.Printf("%d spans in %d traces, %d OTLP/HTTP protobuf requests of %d traces, %d senders\n",
		l.spans, l.traces, len(l.reqs), perReq, b.senders)
	if b.sinks, err = startSinkProc(); err != nil {
		return err
	}
	defer b.sinks.close()
	if b.conn, err = pgx.Connect(ctx, b.dsn); err != nil {
		return fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	defer b.conn.Close(ctx)
	defer func() {
		for _, s := range slices.Clone(b.schemas) {
			b.dropSchema(ctx, s)
		}
	}()

	var ing []ingestResult
	var cp []copyResult
	var gwFan, colFan []fanResult
	var template string
	var rows [][]any
	for r := range rounds {
		fmt.Printf("\n-- round %d of %d\n", r+1, rounds)
		if want["ingest"] {
			gwFirst := r%2 == 0 || rows == nil
			gateway := func() error {
				res, err := b.gatewayIngest(ctx, template == "")
				if err != nil {
					return fmt.Errorf("gateway ingest: %w", err)
				}
				if template == "" {
					template = res.schema
					if rows, err = copyRows(ctx, b.conn, template, l.attrs); err != nil {
						return err
					}
				}
				ing = append(ing, res)
				fmt.Printf("ingest   gateway   %8.0f spans/s, peak RSS %5.1f MiB; CPU µs/span: %s\n", res.rate, mib(res.peakRSS), res.cpu)
				return nil
			}
			copyRun := func() error {
				res, err := b.rawCopy(ctx, template, rows)
				if err != nil {
					return fmt.Errorf("raw COPY: %w", err)
				}
				cp = append(cp, res)
				fmt.Printf("ingest   raw COPY  %8.0f rows/s;  CPU µs/row: %s\n", res.rate, res.cpu)
				return nil
			}
			if err := inOrder(gwFirst, gateway, copyRun); err != nil {
				return err
			}
			fmt.Printf("ingest   ratio gateway / raw COPY %.2f\n", ing[len(ing)-1].rate/cp[len(cp)-1].rate)
		}
		if want["fanout"] {
			gateway := func() error {
				res, err := b.gatewayFanout(ctx, sinks, 0)
				if err != nil {
					return fmt.Errorf("gateway fan-out: %w", err)
				}
				gwFan = append(gwFan, res)
				printFan("gateway  ", res)
				return nil
			}
			collector := func() error {
				res, err := b.collectorFanout(ctx, sinks)
				if err != nil {
					return fmt.Errorf("collector fan-out: %w", err)
				}
				colFan = append(colFan, res)
				printFan("collector", res)
				return nil
			}
			if err := inOrder(r%2 == 0, collector, gateway); err != nil {
				return err
			}
			fmt.Printf("fan-out  ratio collector / gateway time %.2f\n",
				colFan[len(colFan)-1].elapsed.Seconds()/gwFan[len(gwFan)-1].elapsed.Seconds())
		}
	}
	var down fanResult
	if want["down"] {
		fmt.Printf("\n-- one of %d sinks down for the whole run (the gateway only)\n", sinks)
		if down, err = b.gatewayFanout(ctx, sinks, 1); err != nil {
			return fmt.Errorf("gateway with a sink down: %w", err)
		}
		printFan("gateway  ", down)
	}

	fmt.Printf("\n== summary: medians of %d rounds; targets of issue 15 in brackets\n", rounds)
	if len(ing) > 0 {
		ratios := make([]float64, len(ing))
		for i := range ing {
			ratios[i] = ing[i].rate / cp[i].rate
		}
		fmt.Printf("ingest, gateway / raw COPY:              %6.2f  [>= 0.8]   (gateway %.0f spans/s, COPY %.0f rows/s; rounds %s)\n",
			median(ratios), median(field(ing, func(x ingestResult) float64 { return x.rate })),
			median(field(cp, func(x copyResult) float64 { return x.rate })), list(ratios, "%.2f"))
		fmt.Printf("gateway peak RSS, ingest:                %6.1f MiB  [<= 200]\n", median(field(ing, func(x ingestResult) float64 { return mib(x.peakRSS) })))
	}
	if len(gwFan) > 0 {
		ratios := make([]float64, len(gwFan))
		for i := range gwFan {
			ratios[i] = colFan[i].elapsed.Seconds() / gwFan[i].elapsed.Seconds()
		}
		secs := func(xs []fanResult) float64 {
			return median(field(xs, func(x fanResult) float64 { return x.elapsed.Seconds() }))
		}
		fmt.Printf("fan-out to %d sinks, collector / gateway: %6.2f  [>= 0.7]   (every sink has every span after: collector %.1f s, gateway %.1f s; rounds %s)\n",
			sinks, median(ratios), secs(colFan), secs(gwFan), list(ratios, "%.2f"))
		fmt.Printf("gateway peak RSS, fan-out:               %6.1f MiB  [<= 250]   (collector %.1f MiB)\n",
			median(field(gwFan, func(x fanResult) float64 { return mib(x.peakRSS) })),
			median(field(colFan, func(x fanResult) float64 { return mib(x.peakRSS) })))
		lag := func(xs []fanResult, f func(fanResult) time.Duration) float64 {
			return median(field(xs, func(x fanResult) float64 { return f(x).Seconds() }))
		}
		p50 := func(x fanResult) time.Duration { return x.lagP50 }
		p99 := func(x fanResult) time.Duration { return x.lagP99 }
		fmt.Printf("delivery lag (200 → sink) p50 / p99:     %.2f / %.2f s  [p99 <= 1 s]   (collector %.2f / %.2f s)\n",
			lag(gwFan, p50), lag(gwFan, p99), lag(colFan, p50), lag(colFan, p99))
	}
	if want["down"] {
		fmt.Printf("gateway peak RSS, one sink down:         %6.1f MiB  [<= 250]   (the %d live sinks got every span; lag p99 %.2f s)\n",
			mib(down.peakRSS), sinks-1, down.lagP99.Seconds())
	}
	if len(ing) > 0 && len(gwFan) > 0 {
		// Secondary: the gateway against itself.
		fmt.Printf("(secondary) gateway ingest rate with %d destinations / without: %.2f\n", sinks,
			median(field(gwFan, func(x fanResult) float64 { return x.ingestRate }))/median(field(ing, func(x ingestResult) float64 { return x.rate })))
		own := func(s cpuSplit) float64 { return us(s.role[roleGateway] + s.role[rolePlugins]) }
		fmt.Printf("(secondary) gateway+plugins CPU: %.1f µs per span to ingest, %.1f more per span per destination\n",
			median(field(ing, func(x ingestResult) float64 { return own(x.cpu) })),
			(median(field(gwFan, func(x fanResult) float64 { return own(x.cpu) }))-median(field(ing, func(x ingestResult) float64 { return own(x.cpu) })))/float64(sinks))
	}
	if len(ing) > 0 || len(gwFan) > 0 {
		// Wall-time ratios move with whatever else the machine runs; the
		// CPU each side's own processes spent per span does much less.
		fmt.Printf("(secondary) CPU per span of each side's own processes (all but \"PostgreSQL rest\" and \"other\" below):")
		if len(ing) > 0 {
			fmt.Printf(" raw COPY / gateway ingest %.2f;", median(field(cp, func(x copyResult) float64 { return us(x.cpu.own()) }))/
				median(field(ing, func(x ingestResult) float64 { return us(x.cpu.own()) })))
		}
		if len(gwFan) > 0 {
			fmt.Printf(" collector / gateway fan-out %.2f", median(field(colFan, func(x fanResult) float64 { return us(x.cpu.own()) }))/
				median(field(gwFan, func(x fanResult) float64 { return us(x.cpu.own()) })))
		}
		fmt.Println()
	}
	printCPUTable(ing, cp, gwFan, colFan)
	return nil
}

// inOrder runs a then b, or b then a.
func inOrder(aFirst bool, a, b func() error) error {
	if !aFirst {
		a, b = b, a
	}
	if err := a(); err != nil {
		return err
	}
	return b()
}

func printFan(who string, r fanResult) {
	fmt.Printf("fan-out  %s every sink has every span after %5.2f s; lag p50 / p99 %.2f / %.2f s; peak RSS %5.1f MiB; %d duplicates; CPU µs/span: %s\n",
		who, r.elapsed.Seconds(), r.lagP50.Seconds(), r.lagP99.Seconds(), mib(r.peakRSS), r.duplicates, r.cpu)
}

// printCPUTable prints the median CPU time per span of each side by role.
func printCPUTable(ing []ingestResult, cp []copyResult, gwFan, colFan []fanResult) {
	type col struct {
		name  string
		split cpuSplit
	}
	var cols []col
	if len(ing) > 0 {
		cols = append(cols,
			col{"gateway ingest", medianSplit(field(ing, func(x ingestResult) cpuSplit { return x.cpu }))},
			col{"raw COPY", medianSplit(field(cp, func(x copyResult) cpuSplit { return x.cpu }))})
	}
	if len(gwFan) > 0 {
		cols = append(cols,
			col{"gateway fan-out", medianSplit(field(gwFan, func(x fanResult) cpuSplit { return x.cpu }))},
			col{"collector fan-out", medianSplit(field(colFan, func(x fanResult) cpuSplit { return x.cpu }))})
	}
	if len(cols) == 0 {
		return
	}
	fmt.Printf("\nCPU µs per span (median; from first request to last 200 for ingest, to the last span in the last sink for fan-out)\n")
	fmt.Printf("%-18s", "")
	for _, c := range cols {
		fmt.Printf("%18s", c.name)
	}
	fmt.Println()
	row := func(name string, f func(cpuSplit) time.Duration) {
		fmt.Printf("%-18s", name)
		for _, c := range cols {
			fmt.Printf("%18.1f", us(f(c.split)))
		}
		fmt.Println()
	}
	for r := range nRoles {
		row(roleNames[r], func(s cpuSplit) time.Duration { return s.role[r] })
	}
	row("other", func(s cpuSplit) time.Duration { return s.unaccounted })
	row("machine busy", func(s cpuSplit) time.Duration { return s.busy })
	row("machine idle", func(s cpuSplit) time.Duration { return s.idle })
	fmt.Println(`("PostgreSQL" is the side's own connections; "PostgreSQL rest" the server's other processes, such as the WAL writer, and other clients of a shared server; "other" is everything else the machine ran)`)
}

func field[T, V any](xs []T, f func(T) V) []V {
	out := make([]V, len(xs))
	for i, x := range xs {
		out[i] = f(x)
	}
	return out
}

func list(xs []float64, format string) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = fmt.Sprintf(format, x)
	}
	return strings.Join(s, " ")
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }
