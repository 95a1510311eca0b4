package postgres

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/kern-agents/trace-gateway/internal/model"
	"github.com/kern-agents/trace-gateway/internal/store"
)

// The spans are copied in PostgreSQL's binary COPY format written here
// rather than by pgx's CopyFrom, which encodes each value through its type
// map (a plan looked up by the value's type, a []any and a boxed string per
// row): that was about a tenth of the gateway's CPU per span. The bytes are
// the ones pgx would send for the same columns.

// colKind is how a column's values are written.
type colKind uint8

const (
	colText  colKind = iota + 1 // text, varchar: the UTF-8 bytes
	colInt8                     // bigint: 8 bytes, big-endian
	colJSONB                    // jsonb: version 1, then the JSON text
	colJSON                     // json: the JSON text
)

// kindOf is the colKind of a column of type oid, 0 when the copy writes no
// such column itself.
func kindOf(oid uint32) colKind {
	switch oid {
	case pgtype.TextOID, pgtype.VarcharOID:
		return colText
	case pgtype.Int8OID:
		return colInt8
	case pgtype.JSONBOID:
		return colJSONB
	case pgtype.JSONOID:
		return colJSON
	}
	return 0
}

// spanCopy is a COPY of span rows into one table.
type spanCopy struct {
	sql string
	// kinds are the columns' kinds in spanColumns order; nil when a column
	// has a type the copy does not write (then pgx's CopyFrom does it).
	kinds []colKind
}

// stageKinds are the staging table's columns (stageDDL).
var stageKinds = []colKind{colText, colText, colText, colText, colText, colText,
	colText, colText, colText, colInt8, colJSONB, colText}

func newSpanCopy(table pgx.Identifier, kinds []colKind) spanCopy {
	cols := make([]string, len(spanColumns))
	for i, c := range spanColumns {
		cols[i] = pgx.Identifier{c}.Sanitize()
	}
	return spanCopy{
		sql:   "COPY " + table.Sanitize() + " (" + strings.Join(cols, ", ") + ") FROM STDIN BINARY",
		kinds: kinds,
	}
}

// spanKinds reads the types of the spans table's columns (a table AgentOS
// created first is adopted as it is) and returns their kinds, nil when one
// is of a type the copy does not write.
func spanKinds(ctx context.Context, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}, spans string) ([]colKind, error) {
	rows, err := q.Query(ctx, "SELECT "+strings.Join(spanColumns, ", ")+" FROM "+spans+" LIMIT 0")
	if err != nil {
		return nil, fmt.Errorf("column types of %s: %w", spans, err)
	}
	fields := rows.FieldDescriptions()
	kinds := make([]colKind, len(fields))
	for i, f := range fields {
		kinds[i] = kindOf(f.DataTypeOID)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("column types of %s: %w", spans, err)
	}
	if !copyable(kinds) {
		return nil, nil
	}
	return kinds, nil
}

// Where spanColumns' values that are not text go.
const (
	durationColumn   = 9
	attributesColumn = 10
)

// copyable reports whether the copy writes every column of these kinds.
func copyable(kinds []colKind) bool {
	if len(kinds) != len(spanColumns) {
		return false
	}
	for i, k := range kinds {
		switch i {
		case durationColumn:
			if k != colInt8 {
				return false
			}
		case attributesColumn:
			if k != colJSONB && k != colJSON {
				return false
			}
		default:
			if k != colText {
				return false
			}
		}
	}
	return true
}

// copySpans copies the batch's rows (spanRows' values) into c's table.
func copySpans(ctx context.Context, tx pgx.Tx, table pgx.Identifier, c spanCopy, batch []model.Span, usual map[string]string) error {
	if c.kinds == nil {
		_, err := tx.CopyFrom(ctx, table, spanColumns, spanRows(batch, usual))
		return err
	}
	buf := copyBufs.Get().(*[]byte)
	r := &spanCopyReader{batch: batch, usual: usual, kinds: c.kinds, buf: (*buf)[:0]}
	_, err := tx.Conn().PgConn().CopyFrom(ctx, r, c.sql)
	// After a success CopyFrom has read r to the end; after some errors
	// its reading goroutine may still run, so the buffer is left to it.
	if err == nil && cap(r.buf) <= maxPooledCopyBuf {
		*buf = r.buf[:0]
		copyBufs.Put(buf)
	}
	return err
}

// copyBufs are the buffers rows are encoded in; one usually holds a chunk.
var copyBufs = sync.Pool{New: func() any {
	b := make([]byte, 0, copyChunk+8<<10)
	return &b
}}

// maxPooledCopyBuf keeps a chunk that ended with a huge row from pinning
// its buffer in the pool.
const maxPooledCopyBuf = 1 << 20

// copyChunk is about how many bytes spanCopyReader encodes at a time (the
// connection sends COPY data in messages of up to 64 KiB).
const copyChunk = 60 << 10

// spanCopyReader is the COPY data of a batch, encoded a chunk of rows at a
// time as the connection reads it.
type spanCopyReader struct {
	batch []model.Span
	usual map[string]string
	kinds []colKind

	next    int // the next row to encode
	started bool
	done    bool
	buf     []byte
	off     int // what Read handed out of buf
}

func (r *spanCopyReader) Read(p []byte) (int, error) {
	for r.off == len(r.buf) {
		if r.done {
			return 0, io.EOF
		}
		r.fill()
	}
	n := copy(p, r.buf[r.off:])
	r.off += n
	return n, nil
}

// fill encodes the next chunk of rows into buf (and the trailer after the
// last row).
func (r *spanCopyReader) fill() {
	b := r.buf[:0]
	if !r.started {
		b = append(b, "PGCOPY\n\377\r\n\000"...)
		b = binary.BigEndian.AppendUint32(b, 0) // flags
		b = binary.BigEndian.AppendUint32(b, 0) // header extension length
		r.started = true
	}
	for r.next < len(r.batch) && len(b) < copyChunk {
		b = r.row(b, &r.batch[r.next])
		r.next++
	}
	if r.next == len(r.batch) {
		b = binary.BigEndian.AppendUint16(b, 0xffff) // end of data
		r.done = true
	}
	r.buf, r.off = b, 0
}

// row appends one row, its values in spanColumns order as spanRows gives
// them: empty parent id, status message and attributes are NULL.
func (r *spanCopyReader) row(b []byte, sp *model.Span) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(spanColumns)))
	b = appendText(b, sp.SpanID, false)
	b = appendText(b, sp.TraceID, false)
	b = appendText(b, sp.ParentSpanID, true)
	b = appendText(b, sp.Name, false)
	b = appendText(b, sp.SpanKind, false)
	b = appendText(b, sp.StatusCode, false)
	b = appendText(b, sp.StatusMessage, true)
	b = appendText(b, sp.StartTime, false)
	b = appendText(b, sp.EndTime, false)
	b = binary.BigEndian.AppendUint32(b, 8)
	b = binary.BigEndian.AppendUint64(b, uint64(sp.DurationMS))
	b = appendJSON(b, r.kinds[attributesColumn] == colJSONB, store.StoredAttributes(sp, r.usual[sp.TraceID]))
	return appendText(b, sp.CreatedAt, false)
}

// nullValue is the length of a NULL.
const nullValue = 0xffffffff

func appendText(b []byte, s string, emptyIsNull bool) []byte {
	if emptyIsNull && s == "" {
		return binary.BigEndian.AppendUint32(b, nullValue)
	}
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

func appendJSON(b []byte, jsonb bool, v []byte) []byte {
	if len(v) == 0 {
		return binary.BigEndian.AppendUint32(b, nullValue)
	}
	if jsonb {
		b = binary.BigEndian.AppendUint32(b, uint32(len(v)+1))
		b = append(b, 1) // the jsonb binary format's version
		return append(b, v...)
	}
	b = binary.BigEndian.AppendUint32(b, uint32(len(v)))
	return append(b, v...)
}
