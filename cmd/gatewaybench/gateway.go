package main

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kern-agents/trace-gateway/internal/gwbuild"
	"github.com/kern-agents/trace-gateway/internal/procfs"
)

// gatewayOpts are the gateway settings the flags choose; zero values leave
// the gateway's defaults.
type gatewayOpts struct {
	writers, maxBatch int
	destBatch         int
	batchDelay        string // ingest.max_batch_delay
	destDelay         string
	destCompression   string
	logLevel          string // empty: warn
}

// gatewayProc is a running gateway started from its binary with a
// generated config file.
type gatewayProc struct {
	cmd      *exec.Cmd
	dir      string
	otlpURL  string
	appName  string // application_name of its PostgreSQL connections
	stopped  bool
	exitErrs error
}

// withAppName sets application_name in a DSN (URL or key=value form), so
// that a process's PostgreSQL backends can be found in pg_stat_activity.
func withAppName(dsn, name string) (string, error) {
	if !strings.Contains(dsn, "://") {
		return dsn + " application_name=" + name, nil
	}
	u, err := url.Parse(dsn)
	if err != nil {
		return "", fmt.Errorf("DSN: %w", err)
	}
	q := u.Query()
	q.Set("application_name", name)
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// startGateway starts a gateway storing into schema, with one `otlp`
// destination per sink URL, and waits until it is ready and its plugin
// processes run.
func startGateway(bin, dsn, schema, appName string, o gatewayOpts, sinkURLs []string) (*gatewayProc, error) {
	otlpAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	httpAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	gwDSN, err := withAppName(dsn, appName)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "gwbench")
	if err != nil {
		return nil, err
	}
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "server:\n  otlp_grpc: \"\"\n  otlp_http: %s\n  http: %s\n", otlpAddr, httpAddr)
	if p := os.Getenv("GATEWAYBENCH_PPROF"); p != "" {
		fmt.Fprintf(&cfg, "  pprof: %s\n", p)
	}
	level := cmp.Or(o.logLevel, "warn")
	fmt.Fprintf(&cfg, "storage:\n  driver: postgres\n  dsn: %q\n  schema: %s\nlog:\n  level: %s\n", gwDSN, schema, level)
	if o.writers > 0 || o.maxBatch > 0 || o.batchDelay != "" {
		cfg.WriteString("ingest:\n")
		if o.writers > 0 {
			fmt.Fprintf(&cfg, "  writers: %d\n", o.writers)
		}
		if o.maxBatch > 0 {
			fmt.Fprintf(&cfg, "  max_batch_spans: %d\n", o.maxBatch)
		}
		if o.batchDelay != "" {
			fmt.Fprintf(&cfg, "  max_batch_delay: %s\n", o.batchDelay)
		}
	}
	if len(sinkURLs) == 0 {
		cfg.WriteString("destinations: []\n")
	} else {
		cfg.WriteString("destinations:\n")
	}
	for i, u := range sinkURLs {
		fmt.Fprintf(&cfg, "  - name: sink-%d\n    plugin: otlp\n    config: {endpoint: %q, compression: %s}\n", i, u, o.destCompression)
		var batch []string
		if o.destBatch > 0 {
			batch = append(batch, fmt.Sprintf("max_spans: %d", o.destBatch))
		}
		if o.destDelay != "" {
			batch = append(batch, "max_delay: "+o.destDelay)
		}
		if len(batch) > 0 {
			fmt.Fprintf(&cfg, "    batch: {%s}\n", strings.Join(batch, ", "))
		}
	}
	cfgPath := filepath.Join(dir, "gw.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg.String()), 0o600); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	cmd := exec.Command(bin, "run", "--config", cfgPath)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start gateway: %w", err)
	}
	g := &gatewayProc{cmd: cmd, dir: dir, otlpURL: "http://" + otlpAddr + "/v1/traces", appName: appName}
	if err := waitReady("http://"+httpAddr+"/readyz", 60*time.Second); err != nil {
		g.stop()
		return nil, fmt.Errorf("gateway: %w", err)
	}
	// The Collector's exporters are up when its receiver listens; give the
	// gateway's plugin processes the same head start (a while, not for
	// good: how the gateway runs its plugins is its own business).
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if len(gwbuild.PluginChildren(cmd.Process.Pid)["otlp"]) >= len(sinkURLs) {
			break
		}
	}
	return g, nil
}

func (g *gatewayProc) pid() int { return g.cmd.Process.Pid }

// peakRSS is the gateway process's peak resident memory so far (its
// plugins are separate processes, not included).
func (g *gatewayProc) peakRSS() int64 {
	n, _ := procfs.StatusBytes(g.pid(), "VmHWM")
	return n
}

// stop interrupts the gateway, waits for it and reports a failed exit.
func (g *gatewayProc) stop() error {
	if !g.stopped {
		g.stopped = true
		_ = g.cmd.Process.Signal(os.Interrupt)
		if err := g.cmd.Wait(); err != nil {
			g.exitErrs = fmt.Errorf("gateway exit: %w", err)
		}
		os.RemoveAll(g.dir)
	}
	return g.exitErrs
}

// countSpans counts the spans stored in schema.
func countSpans(ctx context.Context, conn *pgx.Conn, schema string) (int, error) {
	var n int
	err := conn.QueryRow(ctx, fmt.Sprintf(`SELECT count(*) FROM %s.agno_spans`, pgx.Identifier{schema}.Sanitize())).Scan(&n)
	return n, err
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func waitReady(url string, within time.Duration) error {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%s not ready within %s", url, within)
}

// sendAll posts every request to url from senders concurrent senders and
// returns when each was answered 200 (or the first failure), with the time
// the first request went and when each was answered.
func sendAll(url string, reqs [][]byte, senders int) (start time.Time, acked []time.Time, err error) {
	acked = make([]time.Time, len(reqs))
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: senders}}
	defer client.CloseIdleConnections()
	var next atomic.Int64
	var wg sync.WaitGroup
	errc := make(chan error, senders)
	start = time.Now()
	for range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(reqs) {
					return
				}
				if err := send(client, url, reqs[i]); err != nil {
					errc <- err
					return
				}
				acked[i] = time.Now()
			}
		}()
	}
	wg.Wait()
	close(errc)
	return start, acked, <-errc
}

// send posts one request, retrying on 429/503 as an OTLP exporter would.
func send(c *http.Client, url string, body []byte) error {
	for attempt := 0; ; attempt++ {
		resp, err := c.Post(url, "application/x-protobuf", bytes.NewReader(body))
		if err != nil {
			return err
		}
		msg, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		switch {
		case resp.StatusCode == http.StatusOK:
			return nil
		case (resp.StatusCode == 429 || resp.StatusCode == 503) && attempt < 100:
			time.Sleep(50 * time.Millisecond)
		default:
			return fmt.Errorf("HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(msg)))
		}
	}
}
