package apitest

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/kern-agents/trace-gateway/internal/model"
	"github.com/kern-agents/trace-gateway/internal/store"
	"github.com/kern-agents/trace-gateway/internal/store/postgres"
	"github.com/kern-agents/trace-gateway/internal/store/sqlite"
	"github.com/kern-agents/trace-gateway/internal/testdb"
)

// SQLite opens the production SQLite store on a fresh file in t.TempDir().
func SQLite(t testing.TB) store.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := sqlite.Open(ctx, store.Options{DSN: "file:" + filepath.Join(t.TempDir(), "traces.db")})
	if err != nil {
		t.Fatalf("open sqlite store: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// Postgres opens the production PostgreSQL store on a fresh schema.
func Postgres(t testing.TB) store.Store {
	t.Helper()
	dsn, schema := testdb.Postgres(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := postgres.Open(ctx, store.Options{DSN: dsn, Schema: schema})
	if err != nil {
		t.Fatalf("open postgres store: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// Load writes spans into st in one batch, failing the test on error.
func Load(t testing.TB, st store.Store, spans []model.Span) {
	t.Helper()
	if err := st.Write(context.Background(), spans); err != nil {
		t.Fatalf("load %d spans: %v", len(spans), err)
	}
}
