package api

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"strconv"

	"github.com/kern-agents/trace-gateway/internal/model"
)

// cursor is the position after the last row of a page: the sort key and the
// id that breaks ties. Keyset pagination from it is stable under inserts (a
// new row lands before or after the cursor, never shifts a page) and reads
// only the index range after it, unlike OFFSET.
type cursor struct {
	Sort  string `json:"s"` // column the list is sorted by
	Desc  bool   `json:"d"`
	Key   string `json:"k"` // the sort column's value (time text or integer)
	ID    string `json:"i"` // trace_id or span_id
	Scope string `json:"p"` // which list it belongs to: "traces" or "spans"
}

func (c cursor) encode() string {
	b, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString(b)
}

var errBadCursor = errors.New("malformed or foreign cursor")

// decodeCursor parses s and checks it belongs to this list and sort order,
// so a cursor cannot smuggle an unexpected key into the query.
func decodeCursor(s, scope, sort string, desc bool, idLen int) (*cursor, error) {
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, errBadCursor
	}
	var c cursor
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, errBadCursor
	}
	if c.Scope != scope || c.Sort != sort || c.Desc != desc || !isHex(c.ID, idLen) {
		return nil, errBadCursor
	}
	switch sort {
	case "start_time":
		if _, err := model.ParseTime(c.Key); err != nil {
			return nil, errBadCursor
		}
	case "duration_ms":
		if _, err := strconv.ParseInt(c.Key, 10, 64); err != nil {
			return nil, errBadCursor
		}
	default:
		return nil, errBadCursor
	}
	return &c, nil
}

// keyArg is the cursor key as the value bound against the sort column.
func (c *cursor) keyArg() any {
	if c.Sort == "duration_ms" {
		n, _ := strconv.ParseInt(c.Key, 10, 64)
		return n
	}
	return c.Key
}

func isHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
