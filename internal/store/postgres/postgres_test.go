package postgres

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/kern-agents/trace-gateway/internal/store"
	"github.com/kern-agents/trace-gateway/internal/store/storetest"
	"github.com/kern-agents/trace-gateway/internal/testdb"
)

func freshOptions(t *testing.T) store.Options {
	dsn, schema := testdb.Postgres(t)
	return store.Options{DSN: dsn, Schema: schema}
}

func openStore(t *testing.T, opts store.Options) store.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := Open(ctx, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return openStore(t, freshOptions(t)) })
}

func TestOptions(t *testing.T) {
	storetest.RunOptions(t, "postgres", freshOptions, openStore)
}

// TestOnlyProgressCommitsAsynchronously: span writes wait for the WAL flush
// (an acknowledged span is durable); the fan-out's bookkeeping does not.
func TestOnlyProgressCommitsAsynchronously(t *testing.T) {
	s := openStore(t, freshOptions(t)).(*Store)
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		pool *pgxpool.Pool
		want string
	}{
		{"writes", s.pool, "on"},
		{"fan-out progress", s.progress, "off"},
	} {
		var got string
		if err := tc.pool.QueryRow(ctx, "SHOW synchronous_commit").Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != tc.want {
			t.Errorf("%s: synchronous_commit = %s, want %s", tc.name, got, tc.want)
		}
	}
}

func TestTablesAreQuotedAndQualified(t *testing.T) {
	opts := freshOptions(t)
	opts.TracesTable = `odd "name"`
	s := openStore(t, opts)
	traces, spans := s.Tables()
	if want := `"` + opts.Schema + `"."odd ""name"""`; traces != want {
		t.Errorf("traces table = %s, want %s", traces, want)
	}
	if want := `"` + opts.Schema + `"."agno_spans"`; spans != want {
		t.Errorf("spans table = %s, want %s", spans, want)
	}
	if s.Dialect() != "postgres" {
		t.Errorf("Dialect() = %q", s.Dialect())
	}
}

func TestOpenUnreachable(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := Open(ctx, store.Options{DSN: "postgres://postgres@127.0.0.1:1/postgres?sslmode=disable&connect_timeout=2"})
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Open on a closed port: %v, want ErrUnavailable", err)
	}
}

// proxy forwards TCP connections to target until it is stopped, which drops
// every connection as a crashed or unreachable server would.
type proxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  []net.Conn
	wg     sync.WaitGroup
}

func startProxy(t *testing.T, target string) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(up, c); up.Close() }()
			go func() { _, _ = io.Copy(c, up); c.Close() }()
		}
	}()
	t.Cleanup(p.stop)
	return p
}

func (p *proxy) stop() {
	p.ln.Close()
	p.wg.Wait()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

func TestWriteWhenServerGoneIsUnavailable(t *testing.T) {
	opts := freshOptions(t)
	u, err := url.Parse(opts.DSN)
	if err != nil {
		t.Fatal(err)
	}
	p := startProxy(t, u.Host)
	u.Host = p.ln.Addr().String()
	q := u.Query()
	q.Set("connect_timeout", "2")
	u.RawQuery = q.Encode()
	opts.DSN = u.String()
	s := openStore(t, opts)

	ctx := context.Background()
	tr := storetest.AgentTrace(rand.New(rand.NewSource(1)), time.Now())
	if err := s.Write(ctx, tr[:3]); err != nil {
		t.Fatalf("Write through the proxy: %v", err)
	}
	p.stop() // the server goes away: open connections drop, new ones are refused
	err = s.Write(ctx, tr[3:])
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Write with the server gone: %v, want ErrUnavailable", err)
	}
	if err := s.Ping(ctx); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Ping with the server gone: %v, want ErrUnavailable", err)
	}
	s.Close()
	if err := s.Write(ctx, tr[3:]); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Write after Close: %v, want ErrUnavailable", err)
	}
}

func TestWriteAfterBackendTerminated(t *testing.T) {
	// A server restart kills every session; the next Write must not fail
	// because of a dead pooled connection.
	opts := freshOptions(t)
	s := openStore(t, opts).(*Store)
	ctx := context.Background()
	tr := storetest.AgentTrace(rand.New(rand.NewSource(3)), time.Now())
	if err := s.Write(ctx, tr[:3]); err != nil {
		t.Fatal(err)
	}
	var pid uint32
	conn, err := s.Pool().Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pid = conn.Conn().PgConn().PID()
	conn.Release()
	other := openStore(t, opts).(*Store)
	var ok bool
	if err := other.Pool().QueryRow(ctx, `SELECT pg_terminate_backend($1)`, pid).Scan(&ok); err != nil || !ok {
		t.Fatalf("pg_terminate_backend = %v, %v", ok, err)
	}
	err = s.Write(ctx, tr[3:])
	if err != nil && !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Write on a terminated connection: %v, want success or ErrUnavailable", err)
	}
	if err != nil {
		// The broken connection is gone from the pool now.
		if err := s.Write(ctx, tr[3:]); err != nil {
			t.Fatalf("second Write: %v", err)
		}
	}
	row, ok, err := storetest.ReadTrace(ctx, s, tr[0].TraceID)
	if err != nil || !ok {
		t.Fatalf("ReadTrace = %v, %v", ok, err)
	}
	want := storetest.ExpectedTrace(tr)
	want.CreatedAt = row.CreatedAt
	if row != want {
		t.Errorf("trace row:\n got  %+v\n want %+v", row, want)
	}
}

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{io.ErrUnexpectedEOF, true},
		{fmt.Errorf("write: %w", &pgconn.PgError{Code: "57P01"}), true},
		{&pgconn.PgError{Code: "08006"}, true},
		{&pgconn.PgError{Code: "23505"}, false},
		{&pgconn.PgError{Code: "40P01"}, false},
		{context.Canceled, false},
		{errors.New("syntax error"), false},
		{nil, false},
	} {
		if got := errors.Is(classify(tc.err), store.ErrUnavailable); got != tc.want {
			t.Errorf("classify(%v) unavailable = %v, want %v", tc.err, got, tc.want)
		}
	}
}

func TestConcurrentWritersNeverRetry(t *testing.T) {
	s := openStore(t, freshOptions(t)).(*Store)
	for seed := range int64(4) {
		storetest.WriteConcurrently(t, s, 1000+seed)
	}
	if n := s.retries.Load(); n != 0 {
		t.Errorf("%d transactions were retried (deadlocks?), want none", n)
	}
}

func TestWriteRecreatesLostStagingTable(t *testing.T) {
	opts := freshOptions(t)
	u, err := url.Parse(opts.DSN)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("pool_max_conns", "1")
	u.RawQuery = q.Encode()
	opts.DSN = u.String()
	s := openStore(t, opts).(*Store)
	ctx := context.Background()
	if _, err := s.Pool().Exec(ctx, `DISCARD TEMP`); err != nil {
		t.Fatal(err)
	}
	tr := storetest.AgentTrace(rand.New(rand.NewSource(4)), time.Now())
	if err := s.Write(ctx, tr); err != nil {
		t.Fatalf("Write after DISCARD TEMP: %v", err)
	}
	row, ok, err := storetest.ReadTrace(ctx, s, tr[0].TraceID)
	if err != nil || !ok {
		t.Fatalf("ReadTrace = %v, %v", ok, err)
	}
	want := storetest.ExpectedTrace(tr)
	want.CreatedAt = row.CreatedAt
	if row != want {
		t.Errorf("trace row:\n got  %+v\n want %+v", row, want)
	}
}

// TestDefaultSchemaIsAgentOSs: with no schema configured the tables go
// where AgentOS's PostgresDb reads them by default, schema "ai". The test
// uses a database of its own, since "ai" is not a per-test schema.
func TestDefaultSchemaIsAgentOSs(t *testing.T) {
	ctx := context.Background()
	dsn := testdb.PostgresDSN(t)
	admin, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close(context.Background()) }) // after the drop below
	var b [6]byte
	_, _ = crand.Read(b[:])
	name := "t_default_schema_" + hex.EncodeToString(b[:])
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := admin.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	s := openStore(t, store.Options{DSN: u.String()})
	defer s.Close()
	traces, spans := s.Tables()
	if traces != `"ai"."agno_traces"` || spans != `"ai"."agno_spans"` {
		t.Fatalf("Tables() = %s, %s; want AgentOS's default schema ai", traces, spans)
	}
	storetest.CheckSchema(t, s)
	tr := storetest.AgentTrace(rand.New(rand.NewSource(5)), time.Now())
	if err := s.Write(ctx, tr); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := s.DB().QueryRowContext(ctx, `SELECT count(*) FROM ai.agno_spans`).Scan(&n); err != nil || n != len(tr) {
		t.Fatalf("ai.agno_spans holds %d spans (%v), want %d", n, err, len(tr))
	}
}
