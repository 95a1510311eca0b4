package postgres

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/kern-agents/trace-gateway/internal/model"
)

// copyTestSpans cover what a row may hold: NULLs, text PostgreSQL must take
// as sent, an attributes object with and without a reference to its origin
// (usual or not), empty attributes, and enough rows for several chunks.
func copyTestSpans() ([]model.Span, map[string]string) {
	usual := map[string]string{}
	var spans []model.Span
	for i := range 300 {
		trace := fmt.Sprintf("%032x", i/7+1)
		sp := model.Span{
			SpanID:     fmt.Sprintf("%016x", i+1),
			TraceID:    trace,
			Name:       []string{"chat gpt-4o", "", "outil «météo» 🌦", `quote " back \ slash`}[i%4],
			SpanKind:   "CLIENT",
			StatusCode: []string{"OK", "ERROR", "UNSET"}[i%3],
			StartTime:  "2025-11-19T10:30:00.123456+00:00",
			EndTime:    "2025-11-19T10:30:01.123456+00:00",
			DurationMS: int64(i) * 1_000_003,
			CreatedAt:  "2025-11-19T10:30:02.000001+00:00",
			Origin:     &model.Origin{ID: fmt.Sprintf("%016x", i%3)},
		}
		if i%5 != 0 {
			sp.ParentSpanID = fmt.Sprintf("%016x", i)
		}
		if i%3 == 1 {
			sp.StatusMessage = "boom: " + strings.Repeat("é", i)
		}
		switch i % 6 {
		case 0:
			sp.Attributes = nil
		case 1:
			sp.Attributes = []byte(`{}`)
		default:
			sp.Attributes = []byte(fmt.Sprintf(`{"input.value":%q,"n":%d,"f":0.5,"nested":{"a":[1,null,true]},"big":%q}`,
				sp.Name, i, strings.Repeat("x", i*40)))
		}
		usual[trace] = fmt.Sprintf("%016x", 0)
		spans = append(spans, sp)
	}
	return spans, usual
}

// The hand-written binary COPY stores exactly what pgx's CopyFrom of
// spanRows stores, into jsonb and json attributes columns alike.
func TestCopySpansMatchesPgx(t *testing.T) {
	s := openStore(t, freshOptions(t)).(*Store)
	ctx := context.Background()
	if s.spansCopy.kinds == nil {
		t.Fatal("the spans table the store created is not copied by hand")
	}
	spans, usual := copyTestSpans()
	for _, attrType := range []string{"JSONB", "JSON"} {
		t.Run(attrType, func(t *testing.T) {
			ddl := strings.Replace(stageDDL, "CREATE TEMP TABLE IF NOT EXISTS "+stageTable, "CREATE TABLE %s", 1)
			ddl = strings.Replace(ddl, "attributes JSONB", "attributes "+attrType, 1)
			ddl = strings.Replace(ddl, ") ON COMMIT DELETE ROWS", ")", 1)
			var kinds []colKind
			for _, name := range []string{"by_hand", "by_pgx"} {
				table := pgx.Identifier{s.schema, "copy_" + strings.ToLower(attrType) + "_" + name}
				if _, err := s.pool.Exec(ctx, fmt.Sprintf(ddl, table.Sanitize())); err != nil {
					t.Fatal(err)
				}
				k, err := spanKinds(ctx, s.pool, table.Sanitize())
				if err != nil || k == nil {
					t.Fatalf("kinds of %s: %v, %v", table, k, err)
				}
				kinds = k
				c := newSpanCopy(table, k)
				if name == "by_pgx" {
					c.kinds = nil // copySpans falls back to pgx
				}
				err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
					return copySpans(ctx, tx, table, c, spans, usual)
				})
				if err != nil {
					t.Fatalf("copy into %s: %v", table, err)
				}
			}
			if want := colJSONB; attrType == "JSON" {
				if kinds[attributesColumn] != colJSON {
					t.Fatalf("attributes kind %d, want json", kinds[attributesColumn])
				}
			} else if kinds[attributesColumn] != want {
				t.Fatalf("attributes kind %d, want jsonb", kinds[attributesColumn])
			}
			hand := pgx.Identifier{s.schema, "copy_" + strings.ToLower(attrType) + "_by_hand"}.Sanitize()
			viaPgx := pgx.Identifier{s.schema, "copy_" + strings.ToLower(attrType) + "_by_pgx"}.Sanitize()
			cols := strings.Join(spanColumns, ", ")
			cols = strings.Replace(cols, "attributes", "attributes::text", 1) // json has no equality
			var n, diff int
			q := fmt.Sprintf(`SELECT (SELECT count(*) FROM %[1]s),
				(SELECT count(*) FROM ((SELECT %[3]s FROM %[1]s EXCEPT ALL SELECT %[3]s FROM %[2]s)
				UNION ALL (SELECT %[3]s FROM %[2]s EXCEPT ALL SELECT %[3]s FROM %[1]s)) d)`, hand, viaPgx, cols)
			if err := s.pool.QueryRow(ctx, q).Scan(&n, &diff); err != nil {
				t.Fatal(err)
			}
			if n != len(spans) || diff != 0 {
				t.Fatalf("%d rows copied by hand (want %d), %d rows differ from pgx's", n, len(spans), diff)
			}
		})
	}
}

// A spans table with a column type the copy does not write is copied by
// pgx, which converts the values.
func TestSpanKindsOfOtherTypes(t *testing.T) {
	s := openStore(t, freshOptions(t)).(*Store)
	ctx := context.Background()
	table := pgx.Identifier{s.schema, "copy_int4"}.Sanitize()
	ddl := strings.Replace(stageDDL, "CREATE TEMP TABLE IF NOT EXISTS "+stageTable, "CREATE TABLE "+table, 1)
	ddl = strings.Replace(ddl, "duration_ms BIGINT", "duration_ms INTEGER", 1)
	ddl = strings.Replace(ddl, ") ON COMMIT DELETE ROWS", ")", 1)
	if _, err := s.pool.Exec(ctx, ddl); err != nil {
		t.Fatal(err)
	}
	kinds, err := spanKinds(ctx, s.pool, table)
	if err != nil || kinds != nil {
		t.Fatalf("kinds = %v, %v; want none (copied by pgx)", kinds, err)
	}
	if got := stageKinds; !copyable(got) {
		t.Fatalf("the staging table's kinds %v are not copyable", got)
	}
}
