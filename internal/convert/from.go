// Package convert turns OTLP trace data (pdata) into agno_spans rows and back.
//
// FromOTLP is the ingest hot path: it writes each span's attributes column as
// one JSON object, walking the pdata values directly, and builds the Go map
// that semantics.Annotate reads exactly once per span. ToOTLP rebuilds OTLP
// data from stored rows for the fan-out; EncodeOTLP writes the same data
// straight as OTLP protobuf.
//
// The attributes column holds the sender's span attributes as sent (every
// OTLP value type kept: int64 as an exact JSON integer, doubles always with a
// fraction or exponent so they read back as doubles, NaN/±Inf as the strings
// "NaN", "Infinity", "-Infinity", bytes as base64 strings, arrays and kvlists
// as JSON arrays and objects), the OpenInference keys semantics.Annotate
// adds, and the converter's own keys: kern.events, kern.links, kern.dropped
// (only when a count is non-zero) and kern.truncated. The resource and scope
// go to the span's Origin; the store references it from the attributes
// (kern.resource) only where it is not the trace's usual one.
//
// Limits protect the database and the process from oversized input:
//
//   - MaxAttrValueBytes (default 64 KiB): a string or bytes value longer than
//     this is cut (on a UTF-8 boundary; bytes before base64) and the suffix
//     "…[truncated N bytes]" appended, N being the bytes removed. The
//     attribute's path is listed in kern.truncated: the key for span
//     attributes, "kern.resource.<key>", "kern.scope.<key>",
//     "kern.events.<i>.<key>" and "kern.links.<i>.<key>" otherwise.
//   - MaxAttributes (default 1024): per attribute map (span, resource, scope,
//     event, link); entries beyond it are dropped and, for the span's own
//     attributes, added to kern.dropped.attributes.
//   - Arrays and kvlists nested deeper than 32 levels are stored as null and
//     reported as truncated.
//
// A negative limit disables it. Everything else is bounded by the request
// size the receivers accept.
//
// Data hygiene: PostgreSQL rejects NUL and invalid UTF-8 in text and jsonb,
// so both are replaced by U+FFFD in names, messages, keys and string values.
// Duplicate keys within one attribute map keep the first value (as
// pcommon.Map.Get does). A sender attribute named like one of the converter's
// own keys (kern.resource, kern.scope, kern.events, kern.links, kern.dropped,
// kern.truncated) is dropped and counted in kern.dropped.
//
// Validation: a span whose trace id or span id is all zero is rejected (see
// Rejection). A span whose parent id equals its own span id is stored as a
// root (parent NULL): a self-reference would make the span its own ancestor
// in every tree view. An empty name is stored as "".
package convert

import (
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/kern-agents/trace-gateway/internal/model"
	"github.com/kern-agents/trace-gateway/internal/semantics"
)

// Default limits.
const (
	DefaultMaxAttrValueBytes = 64 << 10
	DefaultMaxAttributes     = 1024
)

// Limits bound what one span may store; see the package comment.
type Limits struct {
	// MaxAttrValueBytes caps each string/bytes value (0: default, <0: none).
	MaxAttrValueBytes int
	// MaxAttributes caps the entries of each attribute map (0: default,
	// <0: none).
	MaxAttributes int
}

// WithDefaults fills zero fields with the defaults.
func (l Limits) WithDefaults() Limits {
	if l.MaxAttrValueBytes == 0 {
		l.MaxAttrValueBytes = DefaultMaxAttrValueBytes
	}
	if l.MaxAttributes == 0 {
		l.MaxAttributes = DefaultMaxAttributes
	}
	return l
}

// Rejection is a span that was not converted, with why. The ids are the
// lower-case hex of what was sent (possibly empty or of the wrong length).
type Rejection struct {
	TraceID string
	SpanID  string
	Reason  string
}

func (r Rejection) String() string {
	return "span " + r.SpanID + " of trace " + r.TraceID + ": " + r.Reason
}

// reserved reports whether k is one of the keys the converter writes itself.
func reserved(k string) bool {
	if !strings.HasPrefix(k, "kern.") {
		return false
	}
	switch k {
	case model.KeyResource, model.KeyScope, model.KeyEvents, model.KeyLinks, model.KeyDropped, model.KeyTruncated:
		return true
	}
	return false
}

var writerPool = sync.Pool{New: func() any { return &writer{buf: make([]byte, 0, 4096)} }}

// maxPooledBuf keeps one huge span from pinning its buffer in the pool.
const maxPooledBuf = 1 << 20

// FromOTLP converts every span of td into an agno_spans row. now becomes
// created_at. Spans that cannot be stored are returned as rejections; the
// others are converted regardless.
func FromOTLP(td ptrace.Traces, now time.Time, lim Limits) (spans []model.Span, rejected []Rejection) {
	lim = lim.WithDefaults()
	w := writerPool.Get().(*writer)
	defer func() {
		if cap(w.buf) <= maxPooledBuf {
			w.buf = w.buf[:0]
			w.truncated = w.truncated[:0]
			clear(w.keys)
			w.keys = w.keys[:0]
			writerPool.Put(w)
		}
	}()
	w.limit, w.maxN = lim.MaxAttrValueBytes, lim.MaxAttributes

	c := conv{w: w, created: model.FormatTime(now)}
	spans = make([]model.Span, 0, td.SpanCount())
	rss := td.ResourceSpans()
	for i := range rss.Len() {
		rs := rss.At(i)
		c.setResource(rs.Resource())
		sss := rs.ScopeSpans()
		for j := range sss.Len() {
			ss := sss.At(j)
			c.setScope(ss.Scope())
			sps := ss.Spans()
			for k := range sps.Len() {
				s, rej, ok := c.span(sps.At(k))
				if !ok {
					rejected = append(rejected, rej)
					continue
				}
				spans = append(spans, s)
			}
		}
	}
	return spans, rejected
}

// conv carries per-request state: the current resource and scope (encoded
// once, shared by their spans) and a cache of the last trace id's hex.
type conv struct {
	w       *writer
	created string

	resJSON  []byte
	resMap   map[string]any
	resTrunc []string

	scopeJSON  []byte
	scopeTrunc []string

	// origin is the current resource and scope pair, shared by their spans;
	// nil until a span needs it, and when both are empty.
	origin *model.Origin

	lastTrace    pcommon.TraceID
	lastTraceHex string

	// attrs is the Go form of the current span's attributes, handed to
	// Annotate; reused (emptied) from span to span of a request. Nothing
	// keeps it past span.
	attrs map[string]any
}

// maxReusedAttrs keeps a span with a huge attribute map from making every
// later span of the request pay for clearing it.
const maxReusedAttrs = 64

func (c *conv) setResource(r pcommon.Resource) {
	w := c.w
	c.resJSON, c.resMap, c.resTrunc, c.origin = nil, nil, nil, nil
	if r.Attributes().Len() == 0 {
		return
	}
	w.buf, w.truncated = w.buf[:0], w.truncated[:0]
	// The map is shared by every span of this resource; Annotate only reads it.
	c.resMap, _ = w.object(r.Attributes(), 1, true, true, w.maxN, nil)
	c.resJSON = slices.Clone(w.buf)
	for _, k := range w.truncated {
		c.resTrunc = append(c.resTrunc, model.KeyResource+"."+k)
	}
}

func (c *conv) setScope(s pcommon.InstrumentationScope) {
	w := c.w
	c.scopeJSON, c.scopeTrunc, c.origin = nil, nil, nil
	if s.Name() == "" && s.Version() == "" && s.Attributes().Len() == 0 {
		return
	}
	w.buf, w.truncated = w.buf[:0], w.truncated[:0]
	w.buf = append(w.buf, `{"name":`...)
	w.str(s.Name())
	w.buf = append(w.buf, `,"version":`...)
	w.str(s.Version())
	if s.Attributes().Len() > 0 {
		w.buf = append(w.buf, `,"attributes":`...)
		w.object(s.Attributes(), 1, false, true, w.maxN, nil)
	}
	w.buf = append(w.buf, '}')
	c.scopeJSON = slices.Clone(w.buf)
	for _, k := range w.truncated {
		c.scopeTrunc = append(c.scopeTrunc, model.KeyScope+"."+k)
	}
}

// currentOrigin returns the Origin of the current resource and scope,
// made once for all their spans.
func (c *conv) currentOrigin() *model.Origin {
	if c.origin != nil || (c.resJSON == nil && c.scopeJSON == nil) {
		return c.origin
	}
	c.origin = NewOrigin(c.resJSON, c.scopeJSON)
	if t, ok := c.resMap[TenantKey].(string); ok {
		c.origin.Tenant = t
	}
	return c.origin
}

// TenantKey is the resource attribute carrying the authenticated tenant.
const TenantKey = "kern.tenant"

// NewOrigin makes the Origin of a resource and scope (JSON objects, nil when
// absent); its id is a hash of both, so the same pair always gets the same id
// in every replica.
func NewOrigin(resource, scope []byte) *model.Origin {
	h := sha256.New()
	h.Write(resource)
	h.Write([]byte{0})
	h.Write(scope)
	var sum [sha256.Size]byte
	return &model.Origin{ID: hex.EncodeToString(h.Sum(sum[:0])[:8]), Resource: resource, Scope: scope}
}

func kindString(k ptrace.SpanKind) string {
	switch k {
	case ptrace.SpanKindInternal:
		return "INTERNAL"
	case ptrace.SpanKindServer:
		return "SERVER"
	case ptrace.SpanKindClient:
		return "CLIENT"
	case ptrace.SpanKindProducer:
		return "PRODUCER"
	case ptrace.SpanKindConsumer:
		return "CONSUMER"
	}
	return "INTERNAL" // as agno stores an unspecified kind
}

func statusString(s ptrace.StatusCode) string {
	switch s {
	case ptrace.StatusCodeOk:
		return model.StatusOK
	case ptrace.StatusCodeError:
		return model.StatusError
	}
	return model.StatusUnset
}

func (c *conv) traceHex(id pcommon.TraceID) string {
	if id != c.lastTrace || c.lastTraceHex == "" {
		c.lastTrace, c.lastTraceHex = id, hex.EncodeToString(id[:])
	}
	return c.lastTraceHex
}

func (c *conv) span(sp ptrace.Span) (model.Span, Rejection, bool) {
	tid, sid := sp.TraceID(), sp.SpanID()
	if tid.IsEmpty() || sid.IsEmpty() {
		rej := Rejection{TraceID: hex.EncodeToString(tid[:]), SpanID: hex.EncodeToString(sid[:])}
		switch {
		case tid.IsEmpty() && sid.IsEmpty():
			rej.Reason = "trace id and span id are all zero"
		case tid.IsEmpty():
			rej.Reason = "trace id is all zero"
		default:
			rej.Reason = "span id is all zero"
		}
		rej.Reason += " (span " + strconv.Quote(cleanString(sp.Name())) + ")"
		return model.Span{}, rej, false
	}

	out := model.Span{
		TraceID:       c.traceHex(tid),
		Name:          cleanString(sp.Name()),
		SpanKind:      kindString(sp.Kind()),
		StatusCode:    statusString(sp.Status().Code()),
		StatusMessage: cleanString(sp.Status().Message()),
		CreatedAt:     c.created,
	}
	start, end := int64(sp.StartTimestamp()), int64(sp.EndTimestamp())
	// The span id, parent id and both times share one allocation.
	var fixed [2*16 + 2*len(model.TimeLayout)]byte
	b := hex.AppendEncode(fixed[:0], sid[:])
	idEnd, parentEnd := len(b), len(b)
	if psid := sp.ParentSpanID(); !psid.IsEmpty() && psid != sid {
		b = hex.AppendEncode(b, psid[:])
		parentEnd = len(b)
	}
	b = model.AppendTime(b, time.Unix(0, start))
	startEnd := len(b)
	b = model.AppendTime(b, time.Unix(0, end))
	str := string(b)
	out.SpanID, out.ParentSpanID = str[:idEnd], str[idEnd:parentEnd]
	out.StartTime, out.EndTime = str[parentEnd:startEnd], str[startEnd:]
	if end > start {
		out.DurationMS = (end - start) / int64(time.Millisecond)
	}

	w := c.w
	w.buf, w.truncated = w.buf[:0], w.truncated[:0]
	if c.attrs == nil || len(c.attrs) > maxReusedAttrs {
		c.attrs = make(map[string]any, sp.Attributes().Len()+8) // room for Annotate's keys
	} else {
		clear(c.attrs)
	}
	w.keys = w.keys[:0]
	attrs, dropped := w.objectInto(c.attrs, sp.Attributes(), 1, true, true, w.maxN, reserved)
	info := semantics.Info{
		Name:          out.Name,
		Kind:          out.SpanKind,
		ParentSpanID:  out.ParentSpanID,
		StatusCode:    out.StatusCode,
		StatusMessage: out.StatusMessage,
		StartUnixNano: start,
		EndUnixNano:   end,
		Events:        c.eventsOf(sp.Events()),
		Resource:      c.resMap,
		Keys:          w.keys,
	}
	wrote := safeAnnotate(info, attrs)
	if c.replaced(sp, wrote) {
		// Rare: the sender sent a key AgentOS reads with a type it cannot
		// read; write the sender's keys again without it.
		w.buf, w.truncated = w.buf[:0], w.truncated[:0]
		skip := func(k string) bool { return reserved(k) || slices.Contains(wrote, k) }
		w.object(sp.Attributes(), 1, false, true, w.maxN, skip)
	}
	w.buf = w.buf[:len(w.buf)-1] // reopen the object to append our keys
	for _, k := range wrote {
		if v, ok := attrs[k]; ok && !reserved(k) {
			w.key(k)
			w.goValue(v, 0)
		}
	}
	// The reference to the origin is the store's to add, and only where the
	// span's origin is not its trace's usual one (store.StoredAttributes).
	out.Origin = c.currentOrigin()
	c.events(sp.Events())
	c.links(sp.Links())
	if out.ParentSpanID == "" {
		ids := semantics.RootIDs(attrs)
		out.Root = &ids
	}
	out.Usage = usageOf(attrs)

	c.dropped(int(sp.DroppedAttributesCount())+dropped, sp.DroppedEventsCount(), sp.DroppedLinksCount())
	if n := len(c.resTrunc) + len(c.scopeTrunc) + len(w.truncated); n > 0 {
		w.key(model.KeyTruncated)
		w.buf = append(w.buf, '[')
		i := 0
		for _, list := range [][]string{c.resTrunc, c.scopeTrunc, w.truncated} {
			for _, k := range list {
				if i > 0 {
					w.buf = append(w.buf, ',')
				}
				w.str(k)
				i++
			}
		}
		w.buf = append(w.buf, ']')
	}
	w.buf = append(w.buf, '}')
	out.Attributes = slices.Clone(w.buf)
	return out, Rejection{}, true
}

// key appends `,"k":` (or `"k":` right after the opening brace).
func (w *writer) key(k string) {
	if w.buf[len(w.buf)-1] != '{' {
		w.buf = append(w.buf, ',')
	}
	w.str(k)
	w.buf = append(w.buf, ':')
}

// eventsOf returns the span's events for Annotate (names and attributes
// only of "exception" events, the only ones it reads).
func (c *conv) eventsOf(evs ptrace.SpanEventSlice) []semantics.Event {
	var out []semantics.Event
	for i := range evs.Len() {
		ev := evs.At(i)
		if ev.Name() != "exception" {
			continue
		}
		out = append(out, semantics.Event{Name: "exception", TimeUnix: int64(ev.Timestamp()), Attributes: ev.Attributes().AsRaw()})
	}
	return out
}

// events appends kern.events.
func (c *conv) events(evs ptrace.SpanEventSlice) {
	if evs.Len() == 0 {
		return
	}
	w := c.w
	w.key(model.KeyEvents)
	w.buf = append(w.buf, '[')
	for i := range evs.Len() {
		ev := evs.At(i)
		if i > 0 {
			w.buf = append(w.buf, ',')
		}
		w.buf = append(w.buf, `{"name":`...)
		w.str(cleanString(ev.Name()))
		w.buf = append(w.buf, `,"time":"`...)
		w.buf = model.AppendTime(w.buf, time.Unix(0, int64(ev.Timestamp())))
		w.buf = append(w.buf, `","attributes":`...)
		mark := len(w.truncated)
		_, dropped := w.object(ev.Attributes(), 1, false, true, w.maxN, nil)
		c.prefixTruncated(mark, model.KeyEvents, i)
		if n := int(ev.DroppedAttributesCount()) + dropped; n > 0 {
			w.buf = append(w.buf, `,"dropped_attributes_count":`...)
			w.buf = strconv.AppendInt(w.buf, int64(n), 10)
		}
		w.buf = append(w.buf, '}')
	}
	w.buf = append(w.buf, ']')
}

// links appends kern.links.
func (c *conv) links(ls ptrace.SpanLinkSlice) {
	if ls.Len() == 0 {
		return
	}
	w := c.w
	w.key(model.KeyLinks)
	w.buf = append(w.buf, '[')
	for i := range ls.Len() {
		l := ls.At(i)
		if i > 0 {
			w.buf = append(w.buf, ',')
		}
		tid, sid := l.TraceID(), l.SpanID()
		w.buf = append(w.buf, `{"trace_id":"`...)
		w.buf = hex.AppendEncode(w.buf, tid[:])
		w.buf = append(w.buf, `","span_id":"`...)
		w.buf = hex.AppendEncode(w.buf, sid[:])
		w.buf = append(w.buf, '"')
		if ts := l.TraceState().AsRaw(); ts != "" {
			w.buf = append(w.buf, `,"trace_state":`...)
			w.str(ts)
		}
		w.buf = append(w.buf, `,"attributes":`...)
		mark := len(w.truncated)
		_, dropped := w.object(l.Attributes(), 1, false, true, w.maxN, nil)
		c.prefixTruncated(mark, model.KeyLinks, i)
		if n := int(l.DroppedAttributesCount()) + dropped; n > 0 {
			w.buf = append(w.buf, `,"dropped_attributes_count":`...)
			w.buf = strconv.AppendInt(w.buf, int64(n), 10)
		}
		w.buf = append(w.buf, '}')
	}
	w.buf = append(w.buf, ']')
}

// prefixTruncated turns the keys recorded since mark into "list.i.key" paths.
func (c *conv) prefixTruncated(mark int, list string, i int) {
	w := c.w
	if len(w.truncated) == mark {
		return
	}
	prefix := list + "." + strconv.Itoa(i) + "."
	for j := mark; j < len(w.truncated); j++ {
		w.truncated[j] = prefix + w.truncated[j]
	}
}

func (c *conv) dropped(attrs int, events, links uint32) {
	if attrs == 0 && events == 0 && links == 0 {
		return
	}
	w := c.w
	w.key(model.KeyDropped)
	w.buf = append(w.buf, '{')
	for _, f := range []struct {
		name string
		n    int64
	}{{"attributes", int64(attrs)}, {"events", int64(events)}, {"links", int64(links)}} {
		if f.n == 0 {
			continue
		}
		if w.buf[len(w.buf)-1] != '{' {
			w.buf = append(w.buf, ',')
		}
		w.buf = append(w.buf, '"')
		w.buf = append(w.buf, f.name...)
		w.buf = append(w.buf, `":`...)
		w.buf = strconv.AppendInt(w.buf, f.n, 10)
	}
	w.buf = append(w.buf, '}')
}

// usageOf is an LLM span's usage as stored: the keys AgentOS reads, which
// Annotate filled from the sender's convention.
func usageOf(attrs map[string]any) *model.Usage {
	if k, _ := attrs[semantics.AttrSpanKind].(string); k != semantics.KindLLM {
		return nil
	}
	u := &model.Usage{}
	u.Model, _ = attrs[semantics.AttrModelName].(string)
	count := func(k string) (int64, bool) {
		switch v := attrs[k].(type) {
		case int64:
			return v, true
		case float64:
			return int64(v), true
		}
		return 0, false
	}
	u.Input, _ = count(semantics.AttrTokensPrompt)
	u.Output, _ = count(semantics.AttrTokensCompletion)
	if t, ok := count(semantics.AttrTokensTotal); ok {
		u.Total = t
	} else {
		u.Total = u.Input + u.Output
	}
	return u
}

// replaced reports whether Annotate replaced a key the sender sent.
func (c *conv) replaced(sp ptrace.Span, wrote []string) bool {
	for _, k := range wrote {
		if _, sent := sp.Attributes().Get(k); sent {
			return true
		}
	}
	return false
}

// safeAnnotate keeps a bug in classification from failing ingest: a panic is
// logged and the span stored with whatever annotations were made.
func safeAnnotate(info semantics.Info, attrs map[string]any) (wrote []string) {
	defer func() {
		if r := recover(); r != nil {
			slog.Error("span annotation panicked; storing the span without annotations",
				"span", info.Name, "panic", r)
			wrote = nil
		}
	}()
	return annotateFunc(info, attrs)
}

// annotateFunc is semantics.Annotate; tests replace it to exercise the
// safety nets above.
var annotateFunc = semantics.Annotate
