package apitest

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

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
	opened.Store(st, [2]string{dsn, schema})
	return st
}

// opened remembers where Postgres opened each store.
var opened sync.Map

// ReopenPostgresWithoutRollups drops the rollup tables of a store Postgres
// opened and opens the schema again, which fills them from the stored rows
// the way a gateway upgraded onto an older database does.
func ReopenPostgresWithoutRollups(t testing.TB, st store.Store) store.Store {
	t.Helper()
	v, ok := opened.Load(st)
	if !ok {
		t.Fatal("store not opened by apitest.Postgres")
	}
	where := v.([2]string)
	for _, table := range []string{store.RollupTracesTable, store.RollupModelsTable} {
		if _, err := st.DB().Exec(`DROP TABLE ` + pgx.Identifier{where[1], table}.Sanitize()); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	t0 := time.Now()
	re, err := postgres.Open(ctx, store.Options{DSN: where[0], Schema: where[1]})
	if err != nil {
		t.Fatalf("reopen postgres store: %v", err)
	}
	t.Logf("reopened with the rollups backfilled in %v", time.Since(t0).Round(time.Millisecond))
	t.Cleanup(func() { re.Close() })
	return re
}

// Load writes spans into st in one batch, failing the test on error.
func Load(t testing.TB, st store.Store, spans []model.Span) {
	t.Helper()
	if err := st.Write(context.Background(), spans); err != nil {
		t.Fatalf("load %d spans: %v", len(spans), err)
	}
}
