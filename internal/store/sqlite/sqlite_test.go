package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"math/rand"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kern-agents/trace-gateway/internal/store"
	"github.com/kern-agents/trace-gateway/internal/store/storetest"
)

func freshOptions(t *testing.T) store.Options {
	return store.Options{DSN: "file:" + filepath.Join(t.TempDir(), "traces.db")}
}

func openStore(t *testing.T, opts store.Options) store.Store {
	t.Helper()
	s, err := Open(context.Background(), opts)
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
	storetest.RunOptions(t, "sqlite", freshOptions, openStore)
}

func TestPlainPathDSN(t *testing.T) {
	path := filepath.Join(t.TempDir(), "plain.db")
	s := openStore(t, store.Options{DSN: path})
	storetest.CheckSchema(t, s)
	var mode string
	if err := s.DB().QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil {
		t.Fatal(err)
	}
	if mode != "wal" {
		t.Errorf("journal_mode = %q, want wal", mode)
	}
	if traces, spans := s.Tables(); traces != `"agno_traces"` || spans != `"agno_spans"` {
		t.Errorf("Tables() = %s, %s", traces, spans)
	}
}

func TestConnectionSettings(t *testing.T) {
	for _, tc := range []struct {
		name, dsn string
		want      map[string]string
	}{
		{"defaults", "file:x.db", map[string]string{"synchronous": "2", "foreign_keys": "1", "journal_mode": "wal", "busy_timeout": "10000"}},
		{"the DSN wins", "file:x.db?_pragma=synchronous(NORMAL)", map[string]string{"synchronous": "1", "foreign_keys": "1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dsn := strings.Replace(tc.dsn, "x.db", filepath.Join(t.TempDir(), "x.db"), 1)
			s := openStore(t, store.Options{DSN: dsn}).(*Store)
			for name, want := range tc.want {
				for pool, db := range map[string]*sql.DB{"writer": s.w, "reader": s.r} {
					var got string
					if err := db.QueryRow(`PRAGMA ` + name).Scan(&got); err != nil {
						t.Fatal(err)
					}
					if !strings.EqualFold(got, want) {
						t.Errorf("%s: PRAGMA %s = %s, want %s", pool, name, got, want)
					}
				}
			}
		})
	}
}

func TestInMemoryRejected(t *testing.T) {
	if _, err := Open(context.Background(), store.Options{DSN: ":memory:"}); err == nil {
		t.Fatal("Open(:memory:) succeeded")
	}
}

func TestWriteAfterCloseIsUnavailable(t *testing.T) {
	s := openStore(t, freshOptions(t))
	s.Close()
	if err := s.Write(context.Background(), storetest.AgentTrace(rand.New(rand.NewSource(1)), time.Now())); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Write after Close = %v, want ErrUnavailable", err)
	}
}
