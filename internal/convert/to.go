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
// are grouped into ResourceSpans/ScopeSpans by identical kern.resource and
// kern.scope (in first-seen order). kern.resource, kern.scope, kern.events,
// kern.links and kern.dropped go back to their OTLP fields; every other key,
// kern.* annotations and kern.truncated included, stays a span attribute.
//
// JSON has fewer types than OTLP, so a few values come back changed: bytes
// and the NaN/±Inf doubles come back as the strings they were stored as, and
// trace state, flags and schema URLs are not stored at all.
func ToOTLP(spans []model.Span) (ptrace.Traces, error) {
	td := ptrace.NewTraces()
	type group struct {
		rs     ptrace.ResourceSpans
		scopes map[string]ptrace.SpanSlice
	}
	groups := map[string]*group{}
	for i := range spans {
		s := &spans[i]
		p, err := splitAttributes(s.Attributes)
		if err != nil {
			return ptrace.Traces{}, fmt.Errorf("span %s of trace %s: attributes: %w", s.SpanID, s.TraceID, err)
		}
		g := groups[string(p.resource)]
		if g == nil {
			g = &group{rs: td.ResourceSpans().AppendEmpty(), scopes: map[string]ptrace.SpanSlice{}}
			if p.resource != nil {
				if err := putObject(g.rs.Resource().Attributes(), p.resource); err != nil {
					return ptrace.Traces{}, fmt.Errorf("span %s of trace %s: %s: %w", s.SpanID, s.TraceID, model.KeyResource, err)
				}
			}
			groups[string(p.resource)] = g
		}
		sl, ok := g.scopes[string(p.scope)]
		if !ok {
			ss := g.rs.ScopeSpans().AppendEmpty()
			if p.scope != nil {
				if err := putScope(ss.Scope(), p.scope); err != nil {
					return ptrace.Traces{}, fmt.Errorf("span %s of trace %s: %s: %w", s.SpanID, s.TraceID, model.KeyScope, err)
				}
			}
			sl = ss.Spans()
			g.scopes[string(p.scope)] = sl
		}
		if err := fillSpan(sl.AppendEmpty(), s, p); err != nil {
			return ptrace.Traces{}, fmt.Errorf("span %s of trace %s: %w", s.SpanID, s.TraceID, err)
		}
	}
	return td, nil
}

// parts is a stored attributes object split into the OTLP fields: the span
// attributes already decoded, the converter's keys as raw JSON.
type parts struct {
	attrs                  pcommon.Map
	resource, scope        json.RawMessage
	events, links, dropped json.RawMessage
}

func splitAttributes(data []byte) (parts, error) {
	p := parts{attrs: pcommon.NewMap()}
	if isNull(data) {
		return p, nil
	}
	r := newReader(data)
	if err := r.expect('{'); err != nil {
		return p, err
	}
	for !r.consume('}') {
		k, err := r.str()
		if err != nil {
			return p, err
		}
		if err := r.expect(':'); err != nil {
			return p, err
		}
		var dst *json.RawMessage
		switch k {
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
			err = r.value(p.attrs.PutEmpty(k), 1)
		}
		if err != nil {
			return p, fmt.Errorf("key %q: %w", k, err)
		}
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

// putObject fills m from the JSON object in data (null: nothing).
func putObject(m pcommon.Map, data []byte) error {
	if isNull(data) {
		return nil
	}
	r := newReader(data)
	if err := r.members(m, 0); err != nil {
		return err
	}
	return r.end()
}

func isNull(data []byte) bool {
	t := bytes.TrimSpace(data)
	return len(t) == 0 || string(t) == "null"
}

func putScope(s pcommon.InstrumentationScope, raw []byte) error {
	var sc struct {
		Name       string          `json:"name"`
		Version    string          `json:"version"`
		Attributes json.RawMessage `json:"attributes"`
	}
	if err := json.Unmarshal(raw, &sc); err != nil {
		return err
	}
	s.SetName(sc.Name)
	s.SetVersion(sc.Version)
	if sc.Attributes != nil {
		return putObject(s.Attributes(), sc.Attributes)
	}
	return nil
}

func fillSpan(sp ptrace.Span, s *model.Span, p parts) error {
	var err error
	var tid pcommon.TraceID
	var sid, psid pcommon.SpanID
	if err = decodeID(tid[:], s.TraceID); err != nil {
		return fmt.Errorf("trace id: %w", err)
	}
	if err = decodeID(sid[:], s.SpanID); err != nil {
		return fmt.Errorf("span id: %w", err)
	}
	if s.ParentSpanID != "" {
		if err = decodeID(psid[:], s.ParentSpanID); err != nil {
			return fmt.Errorf("parent span id: %w", err)
		}
	}
	sp.SetTraceID(tid)
	sp.SetSpanID(sid)
	sp.SetParentSpanID(psid)
	sp.SetName(s.Name)
	sp.SetKind(kindFromString(s.SpanKind))
	sp.Status().SetCode(statusFromString(s.StatusCode))
	sp.Status().SetMessage(s.StatusMessage)
	start, err := parseTime(s.StartTime)
	if err != nil {
		return fmt.Errorf("start time: %w", err)
	}
	end, err := parseTime(s.EndTime)
	if err != nil {
		return fmt.Errorf("end time: %w", err)
	}
	sp.SetStartTimestamp(start)
	sp.SetEndTimestamp(end)

	p.attrs.MoveTo(sp.Attributes())
	if p.events != nil && !isNull(p.events) {
		if err := putEvents(sp.Events(), p.events); err != nil {
			return fmt.Errorf("%s: %w", model.KeyEvents, err)
		}
	}
	if p.links != nil && !isNull(p.links) {
		if err := putLinks(sp.Links(), p.links); err != nil {
			return fmt.Errorf("%s: %w", model.KeyLinks, err)
		}
	}
	if p.dropped != nil && !isNull(p.dropped) {
		var d struct{ Attributes, Events, Links uint32 }
		if err := json.Unmarshal(p.dropped, &d); err != nil {
			return fmt.Errorf("%s: %w", model.KeyDropped, err)
		}
		sp.SetDroppedAttributesCount(d.Attributes)
		sp.SetDroppedEventsCount(d.Events)
		sp.SetDroppedLinksCount(d.Links)
	}
	return nil
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

func putEvents(evs ptrace.SpanEventSlice, raw []byte) error {
	return eachElement(raw, func(e json.RawMessage) error {
		var ev struct {
			Name       string          `json:"name"`
			Time       string          `json:"time"`
			Attributes json.RawMessage `json:"attributes"`
			Dropped    uint32          `json:"dropped_attributes_count"`
		}
		if err := json.Unmarshal(e, &ev); err != nil {
			return err
		}
		out := evs.AppendEmpty()
		out.SetName(ev.Name)
		if ev.Time != "" {
			ts, err := parseTime(ev.Time)
			if err != nil {
				return fmt.Errorf("event %q time: %w", ev.Name, err)
			}
			out.SetTimestamp(ts)
		}
		out.SetDroppedAttributesCount(ev.Dropped)
		if ev.Attributes != nil {
			return putObject(out.Attributes(), ev.Attributes)
		}
		return nil
	})
}

func putLinks(ls ptrace.SpanLinkSlice, raw []byte) error {
	return eachElement(raw, func(e json.RawMessage) error {
		var l struct {
			TraceID    string          `json:"trace_id"`
			SpanID     string          `json:"span_id"`
			TraceState string          `json:"trace_state"`
			Attributes json.RawMessage `json:"attributes"`
			Dropped    uint32          `json:"dropped_attributes_count"`
		}
		if err := json.Unmarshal(e, &l); err != nil {
			return err
		}
		out := ls.AppendEmpty()
		var tid pcommon.TraceID
		var sid pcommon.SpanID
		if err := decodeID(tid[:], l.TraceID); err != nil {
			return fmt.Errorf("link trace id: %w", err)
		}
		if err := decodeID(sid[:], l.SpanID); err != nil {
			return fmt.Errorf("link span id: %w", err)
		}
		out.SetTraceID(tid)
		out.SetSpanID(sid)
		out.TraceState().FromRaw(l.TraceState)
		out.SetDroppedAttributesCount(l.Dropped)
		if l.Attributes != nil {
			return putObject(out.Attributes(), l.Attributes)
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
