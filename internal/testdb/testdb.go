// Package testdb gives tests a real PostgreSQL server and an isolated schema
// in it. The server is TEST_DATABASE_URL, else the local default; when neither
// answers, scripts/test-postgres.sh is run once per test process to start one.
// Without a server the test is skipped, or fails when CI=true.
package testdb

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// DefaultDSN is the server tried when TEST_DATABASE_URL is not set.
const DefaultDSN = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

var (
	once     sync.Once
	foundDSN string
	findErr  error
)

// PostgresDSN returns the DSN of a PostgreSQL server that answers.
func PostgresDSN(t testing.TB) string {
	t.Helper()
	once.Do(func() { foundDSN, findErr = find() })
	if findErr != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("testdb: no PostgreSQL server: %v", findErr)
		}
		t.Skipf("testdb: no PostgreSQL server (set TEST_DATABASE_URL): %v", findErr)
	}
	return foundDSN
}

// Postgres returns the server's DSN and the name of a fresh, empty schema in
// it, which is dropped with everything in it when the test ends.
func Postgres(t testing.TB) (dsn, schema string) {
	t.Helper()
	dsn = PostgresDSN(t)
	var b [8]byte
	_, _ = rand.Read(b[:])
	schema = "t_" + hex.EncodeToString(b[:])
	ident := pgx.Identifier{schema}.Sanitize()
	run := func(ctx context.Context, sql string) error {
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			return err
		}
		defer conn.Close(context.Background())
		_, err = conn.Exec(ctx, sql)
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := run(ctx, "CREATE SCHEMA "+ident); err != nil {
		t.Fatalf("testdb: create schema %s: %v", schema, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := run(ctx, "DROP SCHEMA IF EXISTS "+ident+" CASCADE"); err != nil {
			t.Errorf("testdb: drop schema %s: %v", schema, err)
		}
	})
	return dsn, schema
}

// PostgresURL returns a DSN whose connections use a fresh schema (dropped
// when the test ends) as their search_path, for code that takes only a DSN.
func PostgresURL(t testing.TB) string {
	t.Helper()
	dsn, schema := Postgres(t)
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatalf("testdb: DSN %q is not a URL: %v", dsn, err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

func find() (string, error) {
	dsn := os.Getenv("TEST_DATABASE_URL")
	if dsn == "" {
		dsn = DefaultDSN
	}
	if err := ping(dsn); err == nil {
		return dsn, nil
	}
	root, err := repoRoot()
	if err != nil {
		return "", err
	}
	script := filepath.Join(root, "scripts", "test-postgres.sh")
	cmd := exec.Command("bash", script)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%s: %w: %s", script, err, strings.TrimSpace(stderr.String()))
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	dsn = strings.TrimSpace(lines[len(lines)-1])
	if err := ping(dsn); err != nil {
		return "", fmt.Errorf("%s printed %q, which does not answer: %w", script, dsn, err)
	}
	return dsn, nil
}

func ping(dsn string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	return conn.Ping(ctx)
}

// repoRoot walks up from the working directory (the test's package) to go.mod.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found above the working directory")
		}
		dir = parent
	}
}
