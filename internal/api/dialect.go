package api

import (
	"regexp"
	"strconv"
	"strings"
)

// The two stores speak different SQL: PostgreSQL numbers its placeholders and
// reads JSONB with ->>, SQLite uses ? and json_extract over JSON text. qb is a
// tiny query builder that hides those differences; every value travels as a
// bound argument, never as SQL text.
type qb struct {
	pg   bool
	sb   strings.Builder
	args []any
}

func newQB(dialect string) *qb { return &qb{pg: dialect == "postgres"} }

// w appends SQL text.
func (b *qb) w(parts ...string) *qb {
	for _, p := range parts {
		b.sb.WriteString(p)
	}
	return b
}

// arg binds v and returns its placeholder.
func (b *qb) arg(v any) string {
	b.args = append(b.args, v)
	if b.pg {
		return "$" + strconv.Itoa(len(b.args))
	}
	return "?"
}

func (b *qb) String() string { return b.sb.String() }

// argList binds each of vs and returns their placeholders, comma-separated
// (the inside of an IN list).
func (b *qb) argList(vs []string) string {
	marks := make([]string, len(vs))
	for i, v := range vs {
		marks[i] = b.arg(v)
	}
	return strings.Join(marks, ", ")
}

// attrKeyRE limits the attribute keys a request may name: what OTel, OpenInference,
// agno.* and kern.* keys use, and nothing that could escape a JSON path.
var attrKeyRE = regexp.MustCompile(`^[A-Za-z0-9_.:/@-]{1,128}$`)

// jsonPath is the SQLite JSON path of a top-level key. Keys hold dots
// ("openinference.span.kind"), so the label is quoted; attrKeyRE keeps quotes out.
func jsonPath(key string) string { return `$."` + key + `"` }

// attrText is the SQL expression for attributes[key] as text (NULL when
// absent). Booleans read "true"/"false" in both dialects.
func (b *qb) attrText(col, key string) string {
	if b.pg {
		return "(" + col + "->>" + b.arg(key) + "::text)"
	}
	p := jsonPath(key)
	return "(CASE json_type(" + col + ", " + b.arg(p) + ") WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' " +
		"ELSE CAST(json_extract(" + col + ", " + b.arg(p) + ") AS TEXT) END)"
}

// attrNum is attributes[key] as a number, NULL when absent or not a JSON
// number (a stray string must not fail the whole query with a cast error).
func (b *qb) attrNum(col, key string) string {
	if b.pg {
		k := b.arg(key)
		return "(CASE WHEN jsonb_typeof(" + col + "->" + k + "::text) = 'number' THEN (" + col + "->>" + k + "::text)::numeric END)"
	}
	// SQLite's ? placeholders are positional: bind the path once per use.
	p := jsonPath(key)
	return "(CASE WHEN json_type(" + col + ", " + b.arg(p) + ") IN ('integer', 'real') THEN json_extract(" + col + ", " + b.arg(p) + ") END)"
}

// attrJSON is the column read back as JSON text.
func (b *qb) attrJSON(col string) string {
	if b.pg {
		return col + "::text"
	}
	return col
}

// containsCI is a case-insensitive substring test of expr against s, with
// LIKE wildcards in s escaped.
func (b *qb) containsCI(expr, s string) string {
	pat := "%" + escapeLike(s) + "%"
	if b.pg {
		return expr + " ILIKE " + b.arg(pat) + ` ESCAPE '\'`
	}
	// SQLite's LIKE is already case-insensitive for ASCII.
	return expr + " LIKE " + b.arg(pat) + ` ESCAPE '\'`
}

func escapeLike(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return r.Replace(s)
}
