package convert

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/kern-agents/trace-gateway/internal/model"
)

// ToOTLP rebuilds OTLP trace data from stored rows, for the fan-out. Spans
// are grouped into ResourceSpans/ScopeSpans by identical resource and scope
// (in first-seen order): the span's Origin, which kern.resource references.
// kern.resource, kern.events, kern.links and kern.dropped go back to their
// OTLP fields; every other key, the OpenInference keys the gateway added and
// kern.truncated included, stays a span attribute.
//
// JSON has fewer types than OTLP, so a few values come back changed: bytes
// and the NaN/±Inf doubles come back as the strings they were stored as, and
// trace state, flags and schema URLs are not stored at all.
func ToOTLP(spans []model.Span) (ptrace.Traces, error) {
	td := ptrace.NewTraces()
	var (
		r      reader
		sink   pdataSink
		groups grouping
		lists  []ptrace.SpanSlice // by scope group
	)
	for i := range spans {
		s := &spans[i]
		attrs := pcommon.NewMap()
		sink.reset(attrs)
		p, err := splitAttributes(&r, s.Attributes, &sink)
		if err != nil {
			return ptrace.Traces{}, fmt.Errorf("span %s of trace %s: attributes: %w", s.SpanID, s.TraceID, err)
		}
		p.resolveOrigin(s)
		ri, si, newRes, newScope := groups.place(p.resource, p.scope)
		if newRes {
			rs := td.ResourceSpans().AppendEmpty()
			if p.resource != nil {
				sink.reset(rs.Resource().Attributes())
				if err := r.object(p.resource, &sink); err != nil {
					return ptrace.Traces{}, fmt.Errorf("span %s of trace %s: %s: %w", s.SpanID, s.TraceID, model.KeyResource, err)
				}
			}
		}
		if newScope {
			ss := td.ResourceSpans().At(ri).ScopeSpans().AppendEmpty()
			if p.scope != nil {
				if err := putScope(&r, &sink, ss.Scope(), p.scope); err != nil {
					return ptrace.Traces{}, fmt.Errorf("span %s of trace %s: %s: %w", s.SpanID, s.TraceID, model.KeyScope, err)
				}
			}
			lists = append(lists, ss.Spans())
		}
		if err := fillSpan(&r, &sink, lists[si].AppendEmpty(), s, p, attrs); err != nil {
			return ptrace.Traces{}, fmt.Errorf("span %s of trace %s: %w", s.SpanID, s.TraceID, err)
		}
	}
	return td, nil
}

// grouping assigns spans to ResourceSpans and ScopeSpans by the exact text
// of their kern.resource and kern.scope (absent is not null, nor "{}" "{ }"),
// numbering the groups in first-seen order.
type grouping struct {
	res    map[string]int   // resource text → resource group
	scopes []map[string]int // by resource group: scope text → scope group
	nScope int
}

// place returns the resource group and scope group (numbered across all
// resources) of a span, and whether either is new.
func (g *grouping) place(res, scope []byte) (ri, si int, newRes, newScope bool) {
	if g.res == nil {
		g.res = map[string]int{}
	}
	ri, ok := g.res[string(res)]
	if !ok {
		ri, newRes = len(g.scopes), true
		g.res[string(res)] = ri
		g.scopes = append(g.scopes, map[string]int{})
	}
	si, ok = g.scopes[ri][string(scope)]
	if !ok {
		si, newScope = g.nScope, true
		g.scopes[ri][string(scope)] = si
		g.nScope++
	}
	return ri, si, newRes, newScope
}

// reset forgets the groups, keeping the memory.
func (g *grouping) reset() {
	clear(g.res)
	clear(g.scopes)
	g.scopes, g.nScope = g.scopes[:0], 0
}

// parts holds the converter's keys of a stored attributes object, as raw
// JSON (nil when absent).
type parts struct {
	resource, scope        json.RawMessage
	events, links, dropped json.RawMessage
}

// resolveOrigin puts the span's resource and scope in p: as the row holds
// them inline under kern.resource (rows stored before origins were kept
// apart), else from its Origin, which the store loaded by the row's
// reference (a JSON string under kern.resource) or, without one, by its
// trace's usual origin. No Origin gives an empty resource and scope.
func (p *parts) resolveOrigin(s *model.Span) {
	if len(p.resource) > 0 && p.resource[0] != '"' || len(p.resource) == 0 && len(p.scope) > 0 {
		return // inline (kern.scope alone: an old row of a span with no resource)
	}
	p.resource, p.scope = nil, nil
	if s.Origin != nil {
		p.resource, p.scope = s.Origin.Resource, s.Origin.Scope
	}
}

// splitAttributes walks a stored attributes object: the converter's keys go
// to parts, every other member to s as a span attribute.
func splitAttributes(r *reader, data []byte, s valueSink) (parts, error) {
	var p parts
	if isNull(data) {
		return p, nil
	}
	r.reset(data)
	if err := r.expect('{'); err != nil {
		return p, err
	}
	for !r.consume('}') {
		k, mark, err := r.key()
		if err != nil {
			return p, err
		}
		if err := r.expect(':'); err != nil {
			return p, err
		}
		var dst *json.RawMessage
		switch string(k) {
		case model.KeyResource:
			dst = &p.resource
		case model.KeyScope:
			dst = &p.scope
		case model.KeyEvents:
			dst = &p.events
		case model.KeyLinks:
			dst = &p.links
		case model.KeyDropped:
			dst = &p.dropped
		}
		if dst != nil {
			*dst, err = r.skip()
		} else {
			s.beginMember(k)
			if err = r.value(s, 1); err == nil {
				s.endMember()
			}
		}
		if err != nil {
			return p, fmt.Errorf("key %q: %w", k, err)
		}
		r.keys = r.keys[:mark]
		if err := r.separator('}'); err != nil {
			return p, err
		}
	}
	return p, r.end()
}

// eachElement calls fn for each element of the JSON array in data.
func eachElement(data []byte, fn func(raw json.RawMessage) error) error {
	var elems []json.RawMessage
	if err := json.Unmarshal(data, &elems); err != nil {
		return err
	}
	for _, e := range elems {
		if err := fn(e); err != nil {
			return err
		}
	}
	return nil
}

const maxReadDepth = 64

func isNull(data []byte) bool {
	t := bytes.TrimSpace(data)
	return len(t) == 0 || string(t) == "null"
}

// scopeFields is kern.scope. This and the other shapes read with
// encoding/json are unnamed types, as they always were: its errors name the
// type.
type scopeFields = struct {
	Name       string          `json:"name"`
	Version    string          `json:"version"`
	Attributes json.RawMessage `json:"attributes"`
}

func readScope(raw []byte) (scopeFields, error) {
	var sc scopeFields
	err := json.Unmarshal(raw, &sc)
	return sc, err
}

func putScope(r *reader, sink *pdataSink, s pcommon.InstrumentationScope, raw []byte) error {
	sc, err := readScope(raw)
	if err != nil {
		return err
	}
	s.SetName(sc.Name)
	s.SetVersion(sc.Version)
	if sc.Attributes != nil {
		sink.reset(s.Attributes())
		return r.object(sc.Attributes, sink)
	}
	return nil
}

// columns are a row's own columns as OTLP values.
type columns struct {
	tid        pcommon.TraceID
	sid, psid  pcommon.SpanID
	kind       ptrace.SpanKind
	code       ptrace.StatusCode
	start, end pcommon.Timestamp
}

func readColumns(s *model.Span) (columns, error) {
	var c columns
	var err error
	if err = decodeID(c.tid[:], s.TraceID); err != nil {
		return c, fmt.Errorf("trace id: %w", err)
	}
	if err = decodeID(c.sid[:], s.SpanID); err != nil {
		return c, fmt.Errorf("span id: %w", err)
	}
	if s.ParentSpanID != "" {
		if err = decodeID(c.psid[:], s.ParentSpanID); err != nil {
			return c, fmt.Errorf("parent span id: %w", err)
		}
	}
	c.kind = kindFromString(s.SpanKind)
	c.code = statusFromString(s.StatusCode)
	if c.start, err = parseTime(s.StartTime); err != nil {
		return c, fmt.Errorf("start time: %w", err)
	}
	if c.end, err = parseTime(s.EndTime); err != nil {
		return c, fmt.Errorf("end time: %w", err)
	}
	return c, nil
}

func fillSpan(r *reader, sink *pdataSink, sp ptrace.Span, s *model.Span, p parts, attrs pcommon.Map) error {
	c, err := readColumns(s)
	if err != nil {
		return err
	}
	sp.SetTraceID(c.tid)
	sp.SetSpanID(c.sid)
	sp.SetParentSpanID(c.psid)
	sp.SetName(s.Name)
	sp.SetKind(c.kind)
	sp.Status().SetCode(c.code)
	sp.Status().SetMessage(s.StatusMessage)
	sp.SetStartTimestamp(c.start)
	sp.SetEndTimestamp(c.end)

	attrs.MoveTo(sp.Attributes())
	if p.events != nil && !isNull(p.events) {
		if err := putEvents(r, sink, sp.Events(), p.events); err != nil {
			return fmt.Errorf("%s: %w", model.KeyEvents, err)
		}
	}
	if p.links != nil && !isNull(p.links) {
		if err := putLinks(r, sink, sp.Links(), p.links); err != nil {
			return fmt.Errorf("%s: %w", model.KeyLinks, err)
		}
	}
	if p.dropped != nil && !isNull(p.dropped) {
		d, err := readDropped(p.dropped)
		if err != nil {
			return fmt.Errorf("%s: %w", model.KeyDropped, err)
		}
		sp.SetDroppedAttributesCount(d.Attributes)
		sp.SetDroppedEventsCount(d.Events)
		sp.SetDroppedLinksCount(d.Links)
	}
	return nil
}

// droppedCounts is kern.dropped.
type droppedCounts = struct{ Attributes, Events, Links uint32 }

func readDropped(raw []byte) (droppedCounts, error) {
	var d droppedCounts
	err := json.Unmarshal(raw, &d)
	return d, err
}

func decodeID(dst []byte, s string) error {
	if hex.DecodedLen(len(s)) != len(dst) {
		return fmt.Errorf("%q: want %d hex characters", s, 2*len(dst))
	}
	_, err := hex.Decode(dst, []byte(s))
	return err
}

func parseTime(s string) (pcommon.Timestamp, error) {
	t, err := model.ParseTime(s)
	if err != nil {
		return 0, err
	}
	return pcommon.NewTimestampFromTime(t), nil
}

// eventFields is one element of kern.events.
type eventFields = struct {
	Name       string          `json:"name"`
	Time       string          `json:"time"`
	Attributes json.RawMessage `json:"attributes"`
	Dropped    uint32          `json:"dropped_attributes_count"`
}

// eachEvent calls fn for each element of kern.events, with its time.
func eachEvent(raw []byte, fn func(ev *eventFields, ts pcommon.Timestamp) error) error {
	return eachElement(raw, func(e json.RawMessage) error {
		var ev eventFields
		if err := json.Unmarshal(e, &ev); err != nil {
			return err
		}
		var ts pcommon.Timestamp
		if ev.Time != "" {
			var err error
			if ts, err = parseTime(ev.Time); err != nil {
				return fmt.Errorf("event %q time: %w", ev.Name, err)
			}
		}
		return fn(&ev, ts)
	})
}

func putEvents(r *reader, sink *pdataSink, evs ptrace.SpanEventSlice, raw []byte) error {
	return eachEvent(raw, func(ev *eventFields, ts pcommon.Timestamp) error {
		out := evs.AppendEmpty()
		out.SetName(ev.Name)
		out.SetTimestamp(ts)
		out.SetDroppedAttributesCount(ev.Dropped)
		if ev.Attributes != nil {
			sink.reset(out.Attributes())
			return r.object(ev.Attributes, sink)
		}
		return nil
	})
}

// linkFields is one element of kern.links.
type linkFields = struct {
	TraceID    string          `json:"trace_id"`
	SpanID     string          `json:"span_id"`
	TraceState string          `json:"trace_state"`
	Attributes json.RawMessage `json:"attributes"`
	Dropped    uint32          `json:"dropped_attributes_count"`
}

// eachLink calls fn for each element of kern.links, with its ids.
func eachLink(raw []byte, fn func(l *linkFields, tid pcommon.TraceID, sid pcommon.SpanID) error) error {
	return eachElement(raw, func(e json.RawMessage) error {
		var l linkFields
		if err := json.Unmarshal(e, &l); err != nil {
			return err
		}
		var tid pcommon.TraceID
		var sid pcommon.SpanID
		if err := decodeID(tid[:], l.TraceID); err != nil {
			return fmt.Errorf("link trace id: %w", err)
		}
		if err := decodeID(sid[:], l.SpanID); err != nil {
			return fmt.Errorf("link span id: %w", err)
		}
		return fn(&l, tid, sid)
	})
}

func putLinks(r *reader, sink *pdataSink, ls ptrace.SpanLinkSlice, raw []byte) error {
	return eachLink(raw, func(l *linkFields, tid pcommon.TraceID, sid pcommon.SpanID) error {
		out := ls.AppendEmpty()
		out.SetTraceID(tid)
		out.SetSpanID(sid)
		out.TraceState().FromRaw(l.TraceState)
		out.SetDroppedAttributesCount(l.Dropped)
		if l.Attributes != nil {
			sink.reset(out.Attributes())
			return r.object(l.Attributes, sink)
		}
		return nil
	})
}

func kindFromString(s string) ptrace.SpanKind {
	switch s {
	case "INTERNAL":
		return ptrace.SpanKindInternal
	case "SERVER":
		return ptrace.SpanKindServer
	case "CLIENT":
		return ptrace.SpanKindClient
	case "PRODUCER":
		return ptrace.SpanKindProducer
	case "CONSUMER":
		return ptrace.SpanKindConsumer
	}
	return ptrace.SpanKindUnspecified
}

func statusFromString(s string) ptrace.StatusCode {
	switch s {
	case model.StatusOK:
		return ptrace.StatusCodeOk
	case model.StatusError:
		return ptrace.StatusCodeError
	}
	return ptrace.StatusCodeUnset
}

// pdataSink fills pcommon values from the reader: the ToOTLP side.
type pdataSink struct {
	cur   pcommon.Value // the value being read
	stack []pdataFrame  // open containers, the map being filled first
	buf   []byte
}

type pdataFrame struct {
	m pcommon.Map
	s pcommon.Slice
}

// reset makes m the map to fill.
func (p *pdataSink) reset(m pcommon.Map) {
	p.stack = append(p.stack[:0], pdataFrame{m: m})
}

func (p *pdataSink) top() *pdataFrame { return &p.stack[len(p.stack)-1] }

func (p *pdataSink) beginMember(k []byte) { p.cur = p.top().m.PutEmpty(string(k)) }
func (p *pdataSink) endMember()           {}
func (p *pdataSink) beginElem()           { p.cur = p.top().s.AppendEmpty() }
func (p *pdataSink) endElem()             {}

func (p *pdataSink) beginMap() {
	p.stack = append(p.stack, pdataFrame{m: p.cur.SetEmptyMap()})
}

func (p *pdataSink) beginSlice() {
	p.stack = append(p.stack, pdataFrame{s: p.cur.SetEmptySlice()})
}

func (p *pdataSink) endMap()   { p.stack = p.stack[:len(p.stack)-1] }
func (p *pdataSink) endSlice() { p.stack = p.stack[:len(p.stack)-1] }

func (p *pdataSink) str(body []byte, plain bool) error {
	if plain {
		p.cur.SetStr(string(body))
		return nil
	}
	b, err := appendStr(p.buf[:0], body)
	if err != nil {
		return err
	}
	p.buf = b
	p.cur.SetStr(string(b))
	return nil
}

func (p *pdataSink) boolean(b bool)   { p.cur.SetBool(b) }
func (p *pdataSink) integer(i int64)  { p.cur.SetInt(i) }
func (p *pdataSink) double(f float64) { p.cur.SetDouble(f) }
