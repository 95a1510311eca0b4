// Command soak runs the gateway under a steady load for a long time and
// checks that it stays flat: it starts a gateway process (from the given
// binary) with several `otlp` destinations pointing at fake OTLP/HTTP sinks
// it serves itself on 127.0.0.1 (optionally one more that is down for the
// whole run), drives the agent-run simulator through the OpenTelemetry SDK
// at a fixed rate, and every sample interval records the gateway's resident
// memory (VmRSS from /proc) and goroutine count (go_goroutines on /metrics).
//
// At the end it prints the samples, the first minute against the last
// (memory and goroutines should not trend upwards), and spans acknowledged,
// stored and delivered per destination. It exits non-zero when a span was
// lost (acknowledged but not stored, or stored but missing at a healthy
// sink) or the gateway died.
//
//	go build -o bin/ ./cmd/gateway ./cmd/soak
//	bin/soak -gateway bin/gateway -rate 200 -duration 10m
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/kern-agents/trace-gateway/internal/otlpsink"
	"github.com/kern-agents/trace-gateway/internal/procfs"
	"github.com/kern-agents/trace-gateway/internal/sim"
)

type options struct {
	gateway     string
	duration    time.Duration
	rate        float64
	sinks       int
	down        bool
	sample      time.Duration
	concurrency int
	driver      string
	dsn         string
	schema      string
	drain       time.Duration
	keep        bool
	pprof       string
}

func main() {
	var o options
	flag.StringVar(&o.gateway, "gateway", "bin/gateway", "gateway binary to run")
	flag.DurationVar(&o.duration, "duration", 10*time.Minute, "how long to send")
	flag.Float64Var(&o.rate, "rate", 200, "agent runs per second (about 11 spans each)")
	flag.IntVar(&o.sinks, "sinks", 3, "healthy OTLP destinations")
	flag.BoolVar(&o.down, "down", true, "add one destination whose endpoint refuses connections for the whole run")
	flag.DurationVar(&o.sample, "sample", 10*time.Second, "sampling interval for memory and goroutines")
	flag.IntVar(&o.concurrency, "concurrency", 2, "runs simulated in parallel")
	flag.StringVar(&o.driver, "storage", "sqlite", "storage driver: sqlite (a file in a temporary directory) or postgres")
	flag.StringVar(&o.dsn, "dsn", os.Getenv("TEST_DATABASE_URL"), "PostgreSQL DSN (with -storage postgres)")
	flag.StringVar(&o.schema, "schema", "", "PostgreSQL schema (default: a new soak_<time> schema, left in place)")
	flag.DurationVar(&o.drain, "drain", 2*time.Minute, "how long to wait after sending for the healthy destinations to catch up")
	flag.BoolVar(&o.keep, "keep", false, "keep the temporary directory (config, gateway log, SQLite file)")
	flag.StringVar(&o.pprof, "pprof", "", "serve the gateway's pprof on this loopback address (e.g. 127.0.0.1:6060), to take heap profiles during the run")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("soak: ")
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ok, err := run(ctx, o, os.Stdout)
	if err != nil {
		log.Fatal(err)
	}
	if !ok {
		os.Exit(1)
	}
}

// sample is one measurement of the running gateway.
type sample struct {
	at         time.Duration // since the load started
	rssKiB     int64
	goroutines int
	acked      int64
	stored     int64
	exported   map[string]int64
	backlog    map[string]int64
}

func run(ctx context.Context, o options, out io.Writer) (bool, error) {
	if o.rate <= 0 || o.duration <= 0 || o.sample <= 0 {
		return false, errors.New("-rate, -duration and -sample must be positive")
	}
	dir, err := os.MkdirTemp("", "kern-soak-")
	if err != nil {
		return false, err
	}
	if o.keep {
		fmt.Fprintf(out, "working directory: %s\n", dir)
	} else {
		defer os.RemoveAll(dir)
	}

	var sinks []*sink
	for i := range o.sinks {
		s, err := newSink(fmt.Sprintf("sink-%d", i))
		if err != nil {
			return false, err
		}
		defer s.Close()
		sinks = append(sinks, s)
	}
	dests := make([]destination, 0, len(sinks)+1)
	for _, s := range sinks {
		dests = append(dests, destination{name: s.name, url: s.URL()})
	}
	if o.down {
		addr, err := closedPort()
		if err != nil {
			return false, err
		}
		dests = append(dests, destination{name: "down", url: "http://" + addr + "/v1/traces"})
	}
	cfgPath := filepath.Join(dir, "gateway.yaml")
	cfgText, err := gatewayConfig(o, dir, dests)
	if err != nil {
		return false, err
	}
	if err := os.WriteFile(cfgPath, []byte(cfgText), 0o600); err != nil {
		return false, err
	}
	gw, err := startGateway(o.gateway, cfgPath, filepath.Join(dir, "gateway.log"))
	if err != nil {
		return false, err
	}
	defer gw.stop()
	fmt.Fprintf(out, "gateway pid %d, OTLP/HTTP %s, admin %s, storage %s, %d healthy destinations%s\n",
		gw.cmd.Process.Pid, gw.otlpHTTP, gw.http, o.driver, len(sinks), map[bool]string{true: " + 1 down", false: ""}[o.down])
	fmt.Fprintf(out, "sending %.0f runs/s for %s, sampling every %s\n\n", o.rate, o.duration, o.sample)

	tp, counter, err := sim.NewTracerProvider(ctx, sim.Endpoint{Protocol: sim.ProtocolHTTP, Address: "http://" + gw.otlpHTTP, Gzip: true})
	if err != nil {
		return false, err
	}
	start := time.Now()
	simDone := make(chan error, 1)
	var stats sim.Stats
	go func() {
		var err error
		stats, err = sim.Run(ctx, tp, sim.Options{Rate: o.rate, Duration: o.duration, Concurrency: o.concurrency, Seed: 1, ErrorRatio: 0.1})
		if err == nil {
			sctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			err = tp.Shutdown(sctx) // flushes what the SDK still holds
			cancel()
		}
		simDone <- err
	}()

	header := []string{"t", "RSS MiB", "goroutines", "acked", "stored"}
	for _, d := range dests {
		header = append(header, d.name)
	}
	header = append(header, "backlog "+dests[len(dests)-1].name)
	printRow(out, header)
	var samples []sample
	take := func() error {
		s, err := gw.measure()
		if err != nil {
			return err
		}
		s.at = time.Since(start)
		s.acked = counter.Exported()
		samples = append(samples, s)
		row := []string{s.at.Round(time.Second).String(), fmt.Sprintf("%.1f", float64(s.rssKiB)/1024), strconv.Itoa(s.goroutines),
			strconv.FormatInt(s.acked, 10), strconv.FormatInt(s.stored, 10)}
		for _, d := range dests {
			row = append(row, strconv.FormatInt(s.exported[d.name], 10))
		}
		row = append(row, strconv.FormatInt(s.backlog[dests[len(dests)-1].name], 10))
		printRow(out, row)
		return nil
	}
	if err := take(); err != nil {
		return false, err
	}
	ticker := time.NewTicker(o.sample)
	defer ticker.Stop()
	var simErr error
load:
	for {
		select {
		case simErr = <-simDone:
			break load
		case <-gw.exited:
			return false, fmt.Errorf("the gateway exited during the run; see %s", gw.logPath)
		case <-ticker.C:
			if err := take(); err != nil {
				return false, err
			}
		}
	}
	if err := take(); err != nil {
		return false, err
	}
	sent := time.Since(start)
	if simErr != nil {
		fmt.Fprintf(out, "\nsimulator: %v\n", simErr)
	}

	// Let the healthy destinations catch up with everything stored.
	final := samples[len(samples)-1]
	deadline := time.Now().Add(o.drain)
	for time.Now().Before(deadline) {
		caughtUp := true
		for _, s := range sinks {
			if int64(s.Count()) < final.acked {
				caughtUp = false
			}
		}
		if caughtUp {
			break
		}
		time.Sleep(500 * time.Millisecond)
		if final, err = gw.measure(); err != nil {
			return false, err
		}
		final.acked = counter.Exported()
	}

	ok := report(out, o, stats, counter.Failed(), sent, samples, final, sinks, dests)
	return ok && simErr == nil, nil
}

// printRow prints one table row, right-aligned in columns of at least 10.
func printRow(out io.Writer, cells []string) {
	var b strings.Builder
	for _, c := range cells {
		fmt.Fprintf(&b, "%*s", max(10, len(c)+2), c)
	}
	fmt.Fprintln(out, b.String())
}

// report prints the summary and says whether nothing was lost.
func report(out io.Writer, o options, stats sim.Stats, failed int64, sent time.Duration, samples []sample, final sample, sinks []*sink, dests []destination) bool {
	fmt.Fprintf(out, "\n== summary after %s of load\n", sent.Round(time.Second))
	fmt.Fprintf(out, "simulated: %d runs, %d spans (%.0f spans/s)\n", stats.Runs, stats.Spans, float64(stats.Spans)/sent.Seconds())
	fmt.Fprintf(out, "acknowledged by the gateway: %d spans (%d failed exports)\n", final.acked, failed)
	fmt.Fprintf(out, "stored: %d spans (committed, re-sent duplicates included)\n", final.stored)
	ok := final.acked == stats.Spans && failed == 0 && final.stored >= final.acked
	for _, d := range dests {
		line := fmt.Sprintf("  %-8s exported %d", d.name, final.exported[d.name])
		healthy := false
		for _, s := range sinks {
			if s.name == d.name {
				healthy = true
				n, dups := s.Count(), s.Duplicates()
				line += fmt.Sprintf(", received %d distinct (%d duplicates)", n, dups)
				if int64(n) < final.acked {
					line += fmt.Sprintf("  MISSING %d", final.acked-int64(n))
					ok = false
				}
			}
		}
		if !healthy { // the gauge is refreshed every 5s: only telling for the one that never delivers
			line += fmt.Sprintf(", backlog %d (waiting in the database)", final.backlog[d.name])
		}
		fmt.Fprintln(out, line)
	}
	first, last := window(samples, time.Minute, true), window(samples, time.Minute, false)
	if len(first) > 0 && len(last) > 0 {
		fr, lr := meanRSS(first), meanRSS(last)
		fg, lg := meanGoroutines(first), meanGoroutines(last)
		fmt.Fprintf(out, "first minute vs last minute (means of %d and %d samples):\n", len(first), len(last))
		fmt.Fprintf(out, "  RSS        %8.1f MiB -> %8.1f MiB  (%+.1f%%)\n", fr/1024, lr/1024, pct(fr, lr))
		fmt.Fprintf(out, "  goroutines %8.1f     -> %8.1f      (%+.1f%%)\n", fg, lg, pct(fg, lg))
		peak := int64(0)
		for _, s := range samples {
			peak = max(peak, s.rssKiB)
		}
		fmt.Fprintf(out, "  peak RSS   %8.1f MiB\n", float64(peak)/1024)
	}
	// The first minute includes warm-up (caches, connection pools, the
	// heap finding its size); the trend after it is what must be flat.
	if steady := afterFirstMinute(samples); len(steady) >= 3 {
		fmt.Fprintf(out, "trend after the first minute (least squares over %d samples): RSS %+.2f MiB/min, goroutines %+.2f/min\n",
			len(steady), slope(steady, func(s sample) float64 { return float64(s.rssKiB) / 1024 }),
			slope(steady, func(s sample) float64 { return float64(s.goroutines) }))
	}
	if ok {
		fmt.Fprintln(out, "no span lost")
	} else {
		fmt.Fprintln(out, "SPANS LOST or not delivered in time (see above)")
	}
	return ok
}

// window returns the samples of the first (or last) d of the run, leaving
// out the sample taken before any load.
func window(samples []sample, d time.Duration, first bool) []sample {
	if len(samples) < 2 {
		return nil
	}
	samples = samples[1:]
	end := samples[len(samples)-1].at
	var out []sample
	for _, s := range samples {
		if (first && s.at <= d) || (!first && s.at >= end-d) {
			out = append(out, s)
		}
	}
	return out
}

func afterFirstMinute(samples []sample) []sample {
	var out []sample
	for _, s := range samples {
		if s.at > time.Minute {
			out = append(out, s)
		}
	}
	return out
}

// slope is the least-squares slope of f over the samples, per minute.
func slope(ss []sample, f func(sample) float64) float64 {
	n := float64(len(ss))
	var sx, sy, sxx, sxy float64
	for _, s := range ss {
		x, y := s.at.Minutes(), f(s)
		sx, sy, sxx, sxy = sx+x, sy+y, sxx+x*x, sxy+x*y
	}
	d := n*sxx - sx*sx
	if d == 0 {
		return 0
	}
	return (n*sxy - sx*sy) / d
}

func meanRSS(ss []sample) float64 {
	var t float64
	for _, s := range ss {
		t += float64(s.rssKiB)
	}
	return t / float64(len(ss))
}

func meanGoroutines(ss []sample) float64 {
	var t float64
	for _, s := range ss {
		t += float64(s.goroutines)
	}
	return t / float64(len(ss))
}

func pct(a, b float64) float64 {
	if a == 0 {
		return 0
	}
	return (b - a) / a * 100
}

type destination struct{ name, url string }

func gatewayConfig(o options, dir string, dests []destination) (string, error) {
	var b strings.Builder
	b.WriteString("server:\n  otlp_grpc: \"\"\n  otlp_http: 127.0.0.1:0\n  http: 127.0.0.1:0\n")
	if o.pprof != "" {
		fmt.Fprintf(&b, "  pprof: %q\n", o.pprof)
	}
	b.WriteString("storage:\n")
	switch o.driver {
	case "sqlite":
		fmt.Fprintf(&b, "  driver: sqlite\n  dsn: %q\n", "file:"+filepath.Join(dir, "traces.db"))
	case "postgres":
		if o.dsn == "" {
			return "", errors.New("-storage postgres needs -dsn (or TEST_DATABASE_URL)")
		}
		schema := o.schema
		if schema == "" {
			schema = "soak_" + strconv.FormatInt(time.Now().Unix(), 36)
		}
		fmt.Fprintf(&b, "  driver: postgres\n  dsn: %q\n  schema: %s\n", o.dsn, schema)
	default:
		return "", fmt.Errorf("-storage %q: sqlite or postgres", o.driver)
	}
	b.WriteString("log:\n  level: info\n  format: text\ndestinations:\n")
	for _, d := range dests {
		fmt.Fprintf(&b, "  - name: %s\n    plugin: otlp\n    config: {endpoint: %q}\n", d.name, d.url)
	}
	return b.String(), nil
}

// closedPort returns a loopback address nothing listens on.
func closedPort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := ln.Addr().String()
	return addr, ln.Close()
}

// gateway is the gateway process under test.
type gateway struct {
	cmd            *exec.Cmd
	otlpHTTP, http string
	logPath        string
	exited         chan struct{}
	client         *http.Client
}

var readyRe = regexp.MustCompile(`gateway ready.* otlp_http=(\S+) http=(\S+)`)

func startGateway(bin, cfgPath, logPath string) (*gateway, error) {
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	g := &gateway{cmd: exec.Command(bin, "run", "--config", cfgPath), logPath: logPath,
		exited: make(chan struct{}), client: &http.Client{Timeout: 10 * time.Second}}
	stderr, err := g.cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := g.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	ready := make(chan [2]string, 1)
	go func() {
		defer logFile.Close()
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(logFile, line)
			if m := readyRe.FindStringSubmatch(line); m != nil {
				select {
				case ready <- [2]string{m[1], m[2]}:
				default:
				}
			}
		}
		_ = g.cmd.Wait()
		close(g.exited)
	}()
	select {
	case a := <-ready:
		g.otlpHTTP, g.http = a[0], a[1]
		return g, nil
	case <-g.exited:
		return nil, fmt.Errorf("the gateway exited before it was ready; see %s", logPath)
	case <-time.After(time.Minute):
		g.stop()
		return nil, fmt.Errorf("the gateway was not ready after a minute; see %s", logPath)
	}
}

func (g *gateway) stop() {
	select {
	case <-g.exited:
		return
	default:
	}
	_ = g.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-g.exited:
	case <-time.After(45 * time.Second):
		_ = g.cmd.Process.Kill()
		<-g.exited
	}
}

// measure reads the gateway's RSS from /proc and its metrics.
func (g *gateway) measure() (sample, error) {
	s := sample{exported: map[string]int64{}, backlog: map[string]int64{}}
	rss, err := procfs.StatusBytes(g.cmd.Process.Pid, "VmRSS")
	if err != nil {
		return s, fmt.Errorf("read the gateway's memory use: %w", err)
	}
	s.rssKiB = rss >> 10
	resp, err := g.client.Get("http://" + g.http + "/metrics")
	if err != nil {
		return s, fmt.Errorf("scrape metrics: %w", err)
	}
	defer resp.Body.Close()
	for _, m := range parseMetrics(resp.Body) {
		switch m.name {
		case "go_goroutines":
			s.goroutines = int(m.value)
		case "kern_gateway_spans_stored_total":
			s.stored = int64(m.value)
		case "kern_gateway_destination_spans_exported_total":
			s.exported[m.labels["destination"]] = int64(m.value)
		case "kern_gateway_destination_backlog_spans":
			s.backlog[m.labels["destination"]] = int64(m.value)
		}
	}
	return s, nil
}

// metric is one sample line of the Prometheus text format.
type metric struct {
	name   string
	labels map[string]string
	value  float64
}

var labelRe = regexp.MustCompile(`(\w+)="((?:[^"\\]|\\.)*)"`)

// parseMetrics reads the sample lines of a Prometheus text exposition; it
// skips what it does not understand.
func parseMetrics(r io.Reader) []metric {
	var out []metric
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		m := metric{labels: map[string]string{}}
		series, value := line, ""
		if i := strings.LastIndexByte(line, ' '); i > 0 {
			series, value = line[:i], line[i+1:]
		}
		if i := strings.IndexByte(series, '{'); i >= 0 {
			m.name = series[:i]
			for _, l := range labelRe.FindAllStringSubmatch(series[i:], -1) {
				m.labels[l[1]] = l[2]
			}
		} else {
			m.name = strings.TrimSpace(series)
		}
		v, err := strconv.ParseFloat(value, 64)
		if err != nil {
			continue
		}
		m.value = v
		out = append(out, m)
	}
	return out
}

// sink is a healthy destination: a fake OTLP/HTTP endpoint named as in the
// gateway's config.
type sink struct {
	name string
	*otlpsink.Sink
}

func newSink(name string) (*sink, error) {
	s, err := otlpsink.New()
	if err != nil {
		return nil, fmt.Errorf("sink %s: %w", name, err)
	}
	return &sink{name: name, Sink: s}, nil
}
