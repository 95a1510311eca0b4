package api

import (
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// cond writes one SQL condition, binding its values on b.
type cond func(b *qb) string

// rowScanner is a *sql.Rows or a *sql.Row.
type rowScanner = interface{ Scan(...any) error }

// listSpec is one keyset-paginated list query. Conditions in indexed are
// ones an index serves (time range, id columns); the list is read in index
// order from the cursor on and stops after limit+1 rows. Conditions in window
// cannot use an index (JSON attributes, substring search): they are applied
// to a window of at most scanWindow rows in index order, so a page never
// reads more than that however rare the matches are.
type listSpec struct {
	scope      string // "traces" or "spans": the list its cursors belong to
	action     string // what the query does, for errors: "list traces"
	table      string
	cols       func(b *qb) string // the select list (may bind arguments)
	idCol      string
	sortCol    string
	desc       bool
	after      *cursor
	indexed    []cond
	window     []cond
	limit      int
	scanWindow int
}

// readCursor sets after from the cursor parameter, which must come from
// this list with the same settings (named in the error).
func (ls *listSpec) readCursor(p *params, idLen int, settings string) error {
	c := p.str("cursor")
	if c == "" {
		return nil
	}
	var err error
	if ls.after, err = decodeCursor(c, ls.scope, ls.sortCol, ls.desc, idLen); err != nil {
		return badParam("cursor", "malformed, or from a list with another "+settings)
	}
	return nil
}

func (ls *listSpec) orderBy() string {
	dir := " ASC"
	if ls.desc {
		dir = " DESC"
	}
	return " ORDER BY " + ls.sortCol + dir + ", " + ls.idCol + dir
}

// where writes the indexed conditions and the keyset condition. The keyset
// is spelled "col <= k AND (col < k OR id < i)" so the planner sees a plain
// range on the sort column it can hand to the index.
func (ls *listSpec) where(b *qb) {
	var parts []string
	for _, c := range ls.indexed {
		parts = append(parts, c(b))
	}
	if ls.after != nil {
		le, lt := "<=", "<"
		if !ls.desc {
			le, lt = ">=", ">"
		}
		k1 := b.arg(ls.after.keyArg())
		k2 := b.arg(ls.after.keyArg())
		id := b.arg(ls.after.ID)
		parts = append(parts, ls.sortCol+" "+le+" "+k1+" AND ("+ls.sortCol+" "+lt+" "+k2+" OR "+ls.idCol+" "+lt+" "+id+")")
	}
	if len(parts) > 0 {
		b.w(" WHERE ", strings.Join(parts, " AND "))
	}
}

// query builds the page query. LIMIT values are integers computed here, not
// request text; they are written literally so the planner knows how few
// rows are wanted and picks the ordered index scan.
func (ls *listSpec) query(dialect string) *qb {
	b := newQB(dialect)
	if len(ls.window) == 0 {
		b.w("SELECT ", ls.cols(b), " FROM ", ls.table)
		ls.where(b)
		b.w(ls.orderBy(), " LIMIT ", strconv.Itoa(ls.limit+1))
		return b
	}
	// The window selects whole rows so that the outer conditions and select
	// list see the table's own column types (JSONB stays JSONB).
	b.w("SELECT ", ls.cols(b), " FROM (SELECT * FROM ", ls.table)
	ls.where(b)
	b.w(ls.orderBy(), " LIMIT ", strconv.Itoa(ls.scanWindow), ") w WHERE ")
	for i, c := range ls.window {
		if i > 0 {
			b.w(" AND ")
		}
		b.w(c(b))
	}
	b.w(ls.orderBy(), " LIMIT ", strconv.Itoa(ls.limit+1))
	return b
}

// windowEnd finds the last row of a full scan window: the next page starts
// after it even when the window held fewer matches than the page size. The
// OFFSET is bounded by scanWindow and walks the same index range.
func (ls *listSpec) windowEnd(ctx context.Context, db *sql.DB, dialect string) (*cursor, error) {
	b := newQB(dialect)
	b.w("SELECT ", ls.sortCol, ", ", ls.idCol, " FROM ", ls.table)
	ls.where(b)
	b.w(ls.orderBy(), " LIMIT 1 OFFSET ", strconv.Itoa(ls.scanWindow-1))
	var key any
	var id string
	err := db.QueryRowContext(ctx, b.String(), b.args...).Scan(&key, &id)
	if err == sql.ErrNoRows {
		return nil, nil // the window was not full: nothing after it
	}
	if err != nil {
		return nil, err
	}
	return &cursor{Sort: ls.sortCol, Desc: ls.desc, Key: keyString(key), ID: id}, nil
}

func keyString(v any) string {
	switch k := v.(type) {
	case int64:
		return strconv.FormatInt(k, 10)
	case []byte:
		return string(k)
	case string:
		return k
	case float64:
		return strconv.FormatInt(int64(k), 10)
	}
	return ""
}

// serveList answers a list endpoint: spec turns the query string into a
// list, read reads its page and write sends it.
func serveList[P any](s *server, w http.ResponseWriter, r *http.Request,
	spec func(map[string][]string) (*listSpec, error), read func(context.Context, *listSpec) (P, error),
	write func(http.ResponseWriter, P)) {
	ls, err := spec(r.URL.Query())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if t := viewerTenant(r); t != nil {
		s.scopeList(ls, *t)
	}
	ctx, cancel := s.ctx(r)
	defer cancel()
	out, err := read(ctx, ls)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	write(w, out)
}

// readPage runs ls and decodes at most ls.limit rows with scan. next is
// the encoded cursor of the following page, "" when there is none; key
// gives a row's sort key and id for it.
func readPage[T any](ctx context.Context, s *server, ls *listSpec,
	scan func(rowScanner) (T, error), key func(T) (sortKey, id string)) (page []T, next string, err error) {
	q := ls.query(s.dialect)
	rows, err := s.st.DB().QueryContext(ctx, q.String(), q.args...)
	if err != nil {
		return nil, "", fmt.Errorf("%s in %s: %w", ls.action, ls.table, err)
	}
	defer rows.Close()
	page = make([]T, 0, ls.limit)
	more := false
	for rows.Next() {
		if len(page) == ls.limit {
			more = true
			break
		}
		row, err := scan(rows)
		if err != nil {
			// The scope's singular: "trace" or "span".
			return nil, "", fmt.Errorf("read %s row: %w", strings.TrimSuffix(ls.scope, "s"), err)
		}
		page = append(page, row)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("%s in %s: %w", ls.action, ls.table, err)
	}
	rows.Close()
	var c *cursor
	if more {
		k, id := key(page[len(page)-1])
		c = &cursor{Sort: ls.sortCol, Desc: ls.desc, Key: k, ID: id}
	} else if len(ls.window) > 0 {
		// The page is not full, but a windowed filter may have used up its
		// scan window: the next page then starts after the window.
		if c, err = ls.windowEnd(ctx, s.st.DB(), s.dialect); err != nil {
			return nil, "", fmt.Errorf("%s in %s: %w", ls.action, ls.table, err)
		}
	}
	if c != nil {
		c.Scope = ls.scope
		next = c.encode()
	}
	return page, next, nil
}
