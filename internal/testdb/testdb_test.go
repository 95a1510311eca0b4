package testdb

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
)

func schemaExists(t *testing.T, dsn, schema string) bool {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM information_schema.schemata WHERE schema_name = $1`, schema).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n == 1
}

func TestPostgresSchemaLifecycle(t *testing.T) {
	var dsn, schema string
	t.Run("inner", func(t *testing.T) {
		dsn, schema = Postgres(t)
		if !schemaExists(t, dsn, schema) {
			t.Fatalf("schema %s was not created", schema)
		}
		_, other := Postgres(t)
		if other == schema {
			t.Fatalf("two calls returned the same schema %s", schema)
		}
	})
	if schema == "" {
		t.Skip("inner test was skipped")
	}
	if schemaExists(t, dsn, schema) {
		t.Fatalf("schema %s still exists after the test ended", schema)
	}
}

func TestPostgresURLSetsSearchPath(t *testing.T) {
	u := PostgresURL(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `CREATE TABLE probe (x int)`); err != nil {
		t.Fatal(err)
	}
	var schema string
	var found bool
	if err := conn.QueryRow(ctx, `SELECT current_schema(), to_regclass(quote_ident(current_schema()) || '.probe') IS NOT NULL`).Scan(&schema, &found); err != nil {
		t.Fatal(err)
	}
	if len(schema) < 3 || schema[:2] != "t_" || !found {
		t.Fatalf("current schema %q (table found there: %v), want the fresh test schema", schema, found)
	}
}
