package api

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"math"
	"runtime"
	"strings"
	"sync"

	"github.com/kern-agents/trace-gateway/internal/model"
	"github.com/kern-agents/trace-gateway/internal/semantics"
)

// enrich fills in what the API computes when read rather than stores: each
// span's node type and normalised facts (from its attributes, whatever
// convention the sender used) and its resource and scope (from the
// gateway's resources table, by the span's kern.resource or, without one,
// its trace's usual origin).
func (s *server) enrich(ctx context.Context, spans []*SpanNode) error {
	decoded := make([]map[string]any, len(spans))
	inParallel(len(spans), func(lo, hi int) {
		for i := lo; i < hi; i++ {
			n := spans[i]
			a := decodeAttributes(n.Attributes)
			if a == nil {
				// NULL, not an object, or not JSON: shown as it is, or as
				// a JSON string, never breaking the response.
				n.Attributes = rawJSON(n.Attributes)
			}
			decoded[i] = a
			n.Type = semantics.NodeType(a)
			if r, ok := a[model.KeyResource].(map[string]any); ok {
				// A row stored before resources were kept apart holds its
				// resource and scope inline.
				n.Resource = marshalRaw(r)
				if sc, ok := a[model.KeyScope].(map[string]any); ok {
					n.Scope = marshalRaw(sc)
				}
			}
		}
	})
	ids := make([]string, len(spans)) // each span's origin id, "" for none
	usual := make(map[string]string)  // trace id → usual origin, of spans without a reference
	for i, a := range decoded {
		if _, ok := a[model.KeyResource]; !ok && a != nil {
			usual[spans[i].TraceID] = ""
		}
	}
	if len(usual) > 0 {
		if err := s.readUsualOrigins(ctx, usual); err != nil {
			return err
		}
	}
	refs := make(map[string]*origin)
	for i, a := range decoded {
		r, present := a[model.KeyResource]
		if !present && a != nil {
			r = usual[spans[i].TraceID]
		}
		if id, ok := r.(string); ok && id != "" {
			ids[i] = id
			refs[id] = nil
		}
	}
	if len(refs) > 0 {
		if err := s.origins.load(ctx, s, refs); err != nil {
			return err
		}
	}
	inParallel(len(spans), func(lo, hi int) {
		for i := lo; i < hi; i++ {
			n, a := spans[i], decoded[i]
			var res map[string]any
			if r, ok := a[model.KeyResource].(map[string]any); ok {
				res = r
			} else if o := refs[ids[i]]; o != nil {
				n.Resource, n.Scope, res = o.resource, o.scope, o.attrs
			}
			n.Facts = semantics.Normalize(s.info(n, a, res), a)
		}
	})
	return nil
}

// parallelMin is the fewest spans per goroutine worth starting one for.
const parallelMin = 256

// inParallel calls fn on consecutive ranges of [0, n), concurrently when n
// is large enough to gain from it. fn must only touch its own range.
func inParallel(n int, fn func(lo, hi int)) {
	workers := min(runtime.GOMAXPROCS(0), n/parallelMin)
	if workers <= 1 {
		fn(0, n)
		return
	}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() { fn(n*w/workers, n*(w+1)/workers) })
	}
	wg.Wait()
}

// info is what semantics.Normalize reads of a span besides its attributes.
func (s *server) info(n *SpanNode, a, resource map[string]any) semantics.Info {
	info := semantics.Info{
		Name:       n.Name,
		Kind:       n.SpanKind,
		StatusCode: n.StatusCode,
		Resource:   resource,
	}
	if n.ParentSpanID != nil {
		info.ParentSpanID = *n.ParentSpanID
	}
	if n.StatusMessage != nil {
		info.StatusMessage = *n.StatusMessage
	}
	if t, err := model.ParseTime(n.StartTime); err == nil {
		info.StartUnixNano = t.UnixNano()
	}
	if t, err := model.ParseTime(n.EndTime); err == nil {
		info.EndUnixNano = t.UnixNano()
	}
	// Normalize reads the exception events only.
	evs, _ := a[model.KeyEvents].([]any)
	for _, e := range evs {
		m, _ := e.(map[string]any)
		if name, _ := m["name"].(string); name != "exception" {
			continue
		}
		ev := semantics.Event{Name: "exception"}
		ev.Attributes, _ = m["attributes"].(map[string]any)
		if ts, _ := m["time"].(string); ts != "" {
			if t, err := model.ParseTime(ts); err == nil {
				ev.TimeUnix = t.UnixNano()
			}
		}
		info.Events = append(info.Events, ev)
	}
	return info
}

// decodeAttributes decodes a stored attributes object into the Go values
// semantics reads. Numbers are float64, except that an object holding an
// integer too large for a float64 to keep exact (ids sent as numbers) is
// decoded again with top-level integers as int64. Anything but an object
// gives nil.
func decodeAttributes(raw []byte) map[string]any {
	if len(raw) == 0 || raw[0] != '{' {
		return nil
	}
	var a map[string]any
	if err := json.Unmarshal(raw, &a); err != nil {
		return nil
	}
	for _, v := range a {
		if f, ok := v.(float64); ok && math.Abs(f) >= 1<<53 {
			return decodeExact(raw)
		}
	}
	return a
}

// decodeExact decodes with integers as int64 where they fit (nested numbers
// stay json.Number, which semantics also reads).
func decodeExact(raw []byte) map[string]any {
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var a map[string]any
	if err := d.Decode(&a); err != nil {
		return nil
	}
	for k, v := range a {
		if num, ok := v.(json.Number); ok {
			if i, err := num.Int64(); err == nil {
				a[k] = i
			} else if f, err := num.Float64(); err == nil {
				a[k] = f
			}
		}
	}
	return a
}

func marshalRaw(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	return b
}

// origin is one row of the gateway's resources table.
type origin struct {
	resource, scope json.RawMessage // nil when the row has none
	attrs           map[string]any  // the resource decoded, for semantics
}

// originCache keeps resource rows by id. An id is a hash of the resource
// and scope it names, so a cached row never goes stale; the cache is
// dropped whole when it grows past its bound.
type originCache struct {
	mu   sync.Mutex
	byID map[string]*origin
}

const (
	maxCachedOrigins = 4096
	// originBatch bounds the ids of one lookup (SQLite's bound-variable
	// limit is far above it).
	originBatch = 500
)

// load resolves every id of refs, from the cache or the database; ids
// with no row stay nil.
func (c *originCache) load(ctx context.Context, s *server, refs map[string]*origin) error {
	var missing []string
	c.mu.Lock()
	for id := range refs {
		if o, ok := c.byID[id]; ok {
			refs[id] = o
		} else {
			missing = append(missing, id)
		}
	}
	c.mu.Unlock()
	return inBatches(missing, func(batch []string) error {
		found, err := s.readOrigins(ctx, batch)
		if err != nil {
			return err
		}
		c.mu.Lock()
		if c.byID == nil || len(c.byID)+len(found) > maxCachedOrigins {
			c.byID = make(map[string]*origin, len(found))
		}
		for id, o := range found {
			refs[id] = o
			c.byID[id] = o
		}
		c.mu.Unlock()
		return nil
	})
}

// inBatches calls fn on consecutive pieces of ids of at most originBatch.
func inBatches(ids []string, fn func(batch []string) error) error {
	for len(ids) > 0 {
		batch := ids[:min(len(ids), originBatch)]
		ids = ids[len(batch):]
		if err := fn(batch); err != nil {
			return err
		}
	}
	return nil
}

// readUsualOrigins fills in the usual origin of each trace id of usual
// (the trace resources table); traces without a row keep "".
func (s *server) readUsualOrigins(ctx context.Context, usual map[string]string) error {
	ids := make([]string, 0, len(usual))
	for id := range usual {
		ids = append(ids, id)
	}
	return inBatches(ids, func(batch []string) error {
		b := newQB(s.dialect)
		b.w("SELECT trace_id, resource_id FROM ", s.traceResources, " WHERE trace_id IN (", b.argList(batch), ")")
		rows, err := s.st.DB().QueryContext(ctx, b.String(), b.args...)
		if err != nil {
			return fmt.Errorf("read usual origins from %s: %w", s.traceResources, err)
		}
		for rows.Next() {
			var id, origin string
			if err := rows.Scan(&id, &origin); err != nil {
				rows.Close()
				return fmt.Errorf("read usual origin row: %w", err)
			}
			usual[id] = origin
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return fmt.Errorf("read usual origins from %s: %w", s.traceResources, err)
		}
		return nil
	})
}

// readOrigins reads the resource rows of ids.
func (s *server) readOrigins(ctx context.Context, ids []string) (map[string]*origin, error) {
	b := newQB(s.dialect)
	res, scope := "resource", "scope"
	if b.pg {
		res, scope = "resource::text", "scope::text"
	}
	b.w("SELECT id, ", res, ", ", scope, " FROM ", s.resources, " WHERE id IN (", b.argList(ids), ")")
	rows, err := s.st.DB().QueryContext(ctx, b.String(), b.args...)
	if err != nil {
		return nil, fmt.Errorf("read resources from %s: %w", s.resources, err)
	}
	defer rows.Close()
	out := make(map[string]*origin, len(ids))
	for rows.Next() {
		var id string
		var r, sc sql.NullString
		if err := rows.Scan(&id, &r, &sc); err != nil {
			return nil, fmt.Errorf("read resource row: %w", err)
		}
		o := &origin{}
		if r.Valid && r.String != "" && r.String != "null" {
			o.resource = rawJSON([]byte(r.String))
			_ = json.Unmarshal(o.resource, &o.attrs)
		}
		if sc.Valid && sc.String != "" && sc.String != "null" {
			o.scope = rawJSON([]byte(sc.String))
		}
		out[id] = o
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read resources from %s: %w", s.resources, err)
	}
	return out, nil
}

// besideSpans names one of the gateway's tables beside the spans table:
// in the same PostgreSQL schema, or the same SQLite file.
func besideSpans(spans, table string) string {
	inQuote := false
	dot := -1
	for i := 0; i < len(spans); i++ {
		switch spans[i] {
		case '"':
			inQuote = !inQuote
		case '.':
			if !inQuote {
				dot = i
			}
		}
	}
	if dot < 0 {
		return table
	}
	if strings.HasSuffix(spans, `"`) {
		return spans[:dot+1] + `"` + table + `"`
	}
	return spans[:dot+1] + table
}
