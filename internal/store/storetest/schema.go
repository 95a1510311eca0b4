package storetest

import (
	"context"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/kern-agents/trace-gateway/internal/store"
)

// column is one column of the data contract (DESIGN.md, section 2).
type column struct {
	name     string
	kind     string // string, text, bigint, json
	nullable bool
}

type tableSpec struct {
	columns []column
	pk      string
	indexed []string // single-column indexes besides the primary key
	fk      string   // column referencing the traces table's trace_id
}

var tracesSpec = tableSpec{
	columns: []column{
		{"trace_id", "string", false},
		{"name", "string", false},
		{"status", "string", false},
		{"start_time", "string", false},
		{"end_time", "string", false},
		{"duration_ms", "bigint", false},
		{"run_id", "string", true},
		{"session_id", "string", true},
		{"user_id", "string", true},
		{"agent_id", "string", true},
		{"team_id", "string", true},
		{"workflow_id", "string", true},
		{"created_at", "string", false},
	},
	pk:      "trace_id",
	indexed: []string{"status", "start_time", "run_id", "session_id", "user_id", "agent_id", "team_id", "workflow_id", "created_at"},
}

var spansSpec = tableSpec{
	columns: []column{
		{"span_id", "string", false},
		{"trace_id", "string", false},
		{"parent_span_id", "string", true},
		{"name", "string", false},
		{"span_kind", "string", false},
		{"status_code", "string", false},
		{"status_message", "text", true},
		{"start_time", "string", false},
		{"end_time", "string", false},
		{"duration_ms", "bigint", false},
		{"attributes", "json", true},
		{"created_at", "string", false},
	},
	pk:      "span_id",
	indexed: []string{"trace_id", "parent_span_id", "start_time", "created_at"},
	fk:      "trace_id",
}

// typeNames maps the contract's kinds to what each database reports.
var typeNames = map[string]map[string]string{
	"postgres": {"string": "character varying", "text": "text", "bigint": "bigint", "json": "jsonb"},
	"sqlite":   {"string": "VARCHAR", "text": "TEXT", "bigint": "BIGINT", "json": "JSON"},
}

// found is what the database says about one table.
type found struct {
	columns []column // kind holds the database's type name
	pk      []string
	indexes map[string][]string // name -> columns, primary key excluded
	fks     [][3]string         // column, referenced table, referenced column
}

// CheckSchema compares s's two tables column by column (name, type,
// nullability, order), and their primary keys, indexes and foreign key, with
// the data contract: AgentOS's own tables, each index named
// idx_<table>_<column> as AgentOS names it.
func CheckSchema(t *testing.T, s store.Store) {
	t.Helper()
	checkSchema(t, s, false)
}

// checkSchema is CheckSchema; byAgentOS says AgentOS's SqliteDb created the
// SQLite tables, declaring status_message VARCHAR where the gateway
// declares TEXT (the same affinity).
func checkSchema(t *testing.T, s store.Store, byAgentOS bool) {
	t.Helper()
	tracesName, spansName := s.Tables()
	traces, spans := splitIdent(tracesName), splitIdent(spansName)
	for _, tc := range []struct {
		qualified []string
		spec      tableSpec
	}{{traces, tracesSpec}, {spans, spansSpec}} {
		table := tc.qualified[len(tc.qualified)-1]
		f := describe(t, s, tc.qualified)
		names := typeNames[s.Dialect()]
		var want []column
		for _, c := range tc.spec.columns {
			typ := names[c.kind]
			if byAgentOS && s.Dialect() == "sqlite" && c.kind == "text" {
				typ = names["string"]
			}
			want = append(want, column{c.name, typ, c.nullable})
		}
		if !slices.Equal(f.columns, want) {
			t.Errorf("%s columns:\n got  %v\n want %v", table, f.columns, want)
		}
		if !slices.Equal(f.pk, []string{tc.spec.pk}) {
			t.Errorf("%s primary key = %v, want [%s]", table, f.pk, tc.spec.pk)
		}
		wantIdx := map[string][]string{}
		for _, c := range tc.spec.indexed {
			wantIdx["idx_"+table+"_"+c] = []string{c}
		}
		if !mapsEqual(f.indexes, wantIdx) {
			t.Errorf("%s indexes:\n got  %v\n want %v", table, f.indexes, wantIdx)
		}
		var wantFK [][3]string
		if tc.spec.fk != "" {
			wantFK = [][3]string{{tc.spec.fk, traces[len(traces)-1], "trace_id"}}
		}
		if !slices.Equal(f.fks, wantFK) {
			t.Errorf("%s foreign keys = %v, want %v", table, f.fks, wantFK)
		}
	}
}

func mapsEqual(a, b map[string][]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || !slices.Equal(v, w) {
			return false
		}
	}
	return true
}

func describe(t *testing.T, s store.Store, qualified []string) found {
	t.Helper()
	switch s.Dialect() {
	case "postgres":
		if len(qualified) != 2 {
			t.Fatalf("postgres table name %v is not schema-qualified", qualified)
		}
		return describePostgres(t, s, qualified[0], qualified[1])
	case "sqlite":
		return describeSQLite(t, s, qualified[len(qualified)-1])
	}
	t.Fatalf("unknown dialect %q", s.Dialect())
	return found{}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

var indexColumns = regexp.MustCompile(`USING \w+ \((.*)\)$`)

func describePostgres(t *testing.T, s store.Store, schema, table string) found {
	t.Helper()
	ctx := context.Background()
	db := s.DB()
	f := found{indexes: map[string][]string{}}

	rows, err := db.QueryContext(ctx, `SELECT column_name, data_type, is_nullable = 'YES'
		FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position`, schema, table)
	must(t, err)
	for rows.Next() {
		var c column
		must(t, rows.Scan(&c.name, &c.kind, &c.nullable))
		f.columns = append(f.columns, c)
	}
	must(t, rows.Err())

	rows, err = db.QueryContext(ctx, `SELECT kcu.column_name
		FROM information_schema.table_constraints tc
		JOIN information_schema.key_column_usage kcu
		  ON kcu.constraint_schema = tc.constraint_schema AND kcu.constraint_name = tc.constraint_name
		WHERE tc.constraint_type = 'PRIMARY KEY' AND tc.table_schema = $1 AND tc.table_name = $2
		ORDER BY kcu.ordinal_position`, schema, table)
	must(t, err)
	for rows.Next() {
		var c string
		must(t, rows.Scan(&c))
		f.pk = append(f.pk, c)
	}
	must(t, rows.Err())

	rows, err = db.QueryContext(ctx, `SELECT i.indexname, i.indexdef
		FROM pg_indexes i
		WHERE i.schemaname = $1 AND i.tablename = $2
		AND i.indexname NOT IN (SELECT constraint_name FROM information_schema.table_constraints
			WHERE constraint_type = 'PRIMARY KEY' AND table_schema = $1 AND table_name = $2)`, schema, table)
	must(t, err)
	for rows.Next() {
		var name, def string
		must(t, rows.Scan(&name, &def))
		var cols []string
		if m := indexColumns.FindStringSubmatch(def); m != nil {
			for _, c := range strings.Split(m[1], ",") {
				cols = append(cols, strings.Trim(strings.TrimSpace(c), `"`))
			}
		}
		f.indexes[name] = cols
	}
	must(t, rows.Err())

	rows, err = db.QueryContext(ctx, `SELECT kcu.column_name, ccu.table_name, ccu.column_name
		FROM information_schema.table_constraints tc
		JOIN information_schema.key_column_usage kcu
		  ON kcu.constraint_schema = tc.constraint_schema AND kcu.constraint_name = tc.constraint_name
		JOIN information_schema.constraint_column_usage ccu
		  ON ccu.constraint_schema = tc.constraint_schema AND ccu.constraint_name = tc.constraint_name
		WHERE tc.constraint_type = 'FOREIGN KEY' AND tc.table_schema = $1 AND tc.table_name = $2
		  AND ccu.table_schema = $1`, schema, table)
	must(t, err)
	for rows.Next() {
		var fk [3]string
		must(t, rows.Scan(&fk[0], &fk[1], &fk[2]))
		f.fks = append(f.fks, fk)
	}
	must(t, rows.Err())
	return f
}

func describeSQLite(t *testing.T, s store.Store, table string) found {
	t.Helper()
	ctx := context.Background()
	db := s.DB()
	f := found{indexes: map[string][]string{}}

	type pkCol struct {
		pos  int
		name string
	}
	var pks []pkCol
	rows, err := db.QueryContext(ctx, `SELECT name, type, "notnull", pk FROM pragma_table_info(?) ORDER BY cid`, table)
	must(t, err)
	for rows.Next() {
		var c column
		var notNull bool
		var pk int
		must(t, rows.Scan(&c.name, &c.kind, &notNull, &pk))
		c.nullable = !notNull
		f.columns = append(f.columns, c)
		if pk > 0 {
			pks = append(pks, pkCol{pk, c.name})
		}
	}
	must(t, rows.Err())
	slices.SortFunc(pks, func(a, b pkCol) int { return a.pos - b.pos })
	for _, p := range pks {
		f.pk = append(f.pk, p.name)
	}

	rows, err = db.QueryContext(ctx, `SELECT l.name, i.name FROM pragma_index_list(?) l, pragma_index_info(l.name) i
		WHERE l.origin <> 'pk' ORDER BY l.name, i.seqno`, table)
	must(t, err)
	for rows.Next() {
		var name, col string
		must(t, rows.Scan(&name, &col))
		f.indexes[name] = append(f.indexes[name], col)
	}
	must(t, rows.Err())

	rows, err = db.QueryContext(ctx, `SELECT "from", "table", "to" FROM pragma_foreign_key_list(?) ORDER BY id, seq`, table)
	must(t, err)
	for rows.Next() {
		var fk [3]string
		must(t, rows.Scan(&fk[0], &fk[1], &fk[2]))
		f.fks = append(f.fks, fk)
	}
	must(t, rows.Err())
	return f
}
