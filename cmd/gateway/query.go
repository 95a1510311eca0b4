package main

import (
	"context"
	"database/sql"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/kern-agents/trace-gateway/internal/config"
	"github.com/kern-agents/trace-gateway/internal/gateway"
)

// cmdQuery runs one SQL statement against the configured trace database and
// prints the result as a table, so the quick start needs no database client.
// For PostgreSQL the search_path is the configured schema, so the tables can
// be named plainly (agno_spans).
func cmdQuery(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("query", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "config.yaml", "path to the YAML config file")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, `usage: gateway query --config FILE "SELECT ..."`)
		return 2
	}
	cfg, err := config.Load(*path)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	st, err := gateway.OpenStore(ctx, cfg.Storage)
	if err != nil {
		fmt.Fprintf(stderr, "open trace database: %v\n", err)
		return 1
	}
	defer st.Close()
	conn, err := st.DB().Conn(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "connect: %v\n", err)
		return 1
	}
	defer conn.Close()
	if st.Dialect() == "postgres" {
		if _, err := conn.ExecContext(ctx, "SELECT set_config('search_path', $1, false)", cfg.Storage.Schema); err != nil {
			fmt.Fprintf(stderr, "set search_path: %v\n", err)
			return 1
		}
	}
	rows, err := conn.QueryContext(ctx, fs.Arg(0))
	if err != nil {
		fmt.Fprintf(stderr, "query: %v\n", err)
		return 1
	}
	defer rows.Close()
	if err := printRows(rows, stdout); err != nil {
		fmt.Fprintf(stderr, "query: %v\n", err)
		return 1
	}
	return 0
}

func printRows(rows *sql.Rows, w io.Writer) error {
	cols, err := rows.Columns()
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(cols, "\t"))
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	n := 0
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return err
		}
		cells := make([]string, len(cols))
		for i, v := range vals {
			switch x := v.(type) {
			case nil:
				cells[i] = "NULL"
			case []byte:
				cells[i] = string(x)
			default:
				cells[i] = fmt.Sprint(x)
			}
			if len(cells[i]) > 80 {
				cells[i] = cells[i][:77] + "..."
			}
			cells[i] = strings.NewReplacer("\t", " ", "\n", " ").Replace(cells[i])
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
		n++
	}
	if err := rows.Err(); err != nil {
		return err
	}
	fmt.Fprintf(tw, "(%d rows)\n", n)
	return tw.Flush()
}
