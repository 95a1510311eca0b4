// Package model holds the row shapes the gateway stores: one Span is one row of
// agno_spans, exactly as AgentOS writes it, plus the attribute keys the gateway
// adds so that SQL and the fan-out can read normalised facts whatever OTel
// convention the sender used.
package model

import "time"

// TimeLayout is how every time column is written: ISO 8601, UTC, fixed width
// (microseconds, "+00:00" like Python's isoformat) so that string order is time
// order and MIN/MAX over the text columns are correct in SQL.
const TimeLayout = "2006-01-02T15:04:05.000000+00:00"

// FormatTime renders t in TimeLayout (UTC).
func FormatTime(t time.Time) string { return string(AppendTime(make([]byte, 0, len(TimeLayout)), t)) }

// FormatUnixNano renders an OTLP timestamp in TimeLayout.
func FormatUnixNano(ns int64) string { return FormatTime(time.Unix(0, ns)) }

// AppendTime appends t in TimeLayout (UTC), as t.UTC().Format(TimeLayout)
// would, without interpreting the layout: the converter writes two times per
// span.
func AppendTime(b []byte, t time.Time) []byte {
	t = t.UTC()
	year, month, day := t.Date()
	if year < 0 || year > 9999 {
		return t.AppendFormat(b, TimeLayout)
	}
	hour, minute, sec := t.Clock()
	b = append(b,
		byte('0'+year/1000), byte('0'+year/100%10), byte('0'+year/10%10), byte('0'+year%10), '-',
		byte('0'+month/10), byte('0'+month%10), '-',
		byte('0'+day/10), byte('0'+day%10), 'T',
		byte('0'+hour/10), byte('0'+hour%10), ':',
		byte('0'+minute/10), byte('0'+minute%10), ':',
		byte('0'+sec/10), byte('0'+sec%10), '.')
	us := t.Nanosecond() / 1000 // the layout's fraction truncates
	for div := 100000; div > 0; div /= 10 {
		b = append(b, byte('0'+us/div%10))
	}
	return append(b, "+00:00"...)
}

// ParseTime parses a TimeLayout string (or any RFC 3339 time).
func ParseTime(s string) (time.Time, error) { return time.Parse(time.RFC3339Nano, s) }

// Status codes as stored in agno_spans.status_code and agno_traces.status.
const (
	StatusUnset = "UNSET"
	StatusOK    = "OK"
	StatusError = "ERROR"
)

// Span is one agno_spans row. Empty ParentSpanID and StatusMessage are stored
// as NULL.
type Span struct {
	SpanID        string // 16 lowercase hex chars
	TraceID       string // 32 lowercase hex chars
	ParentSpanID  string
	Name          string
	SpanKind      string // INTERNAL, SERVER, CLIENT, PRODUCER, CONSUMER
	StatusCode    string // UNSET, OK, ERROR
	StatusMessage string
	StartTime     string // TimeLayout
	EndTime       string // TimeLayout
	DurationMS    int64
	Attributes    []byte // a JSON object: the sender's attributes, what AgentOS reads, and the Key* keys below
	CreatedAt     string // TimeLayout, when the gateway stored it

	// Origin is the span's resource and instrumentation scope, stored once
	// per distinct pair in the gateway's resources table. The stored
	// attributes reference it under KeyResource only when it is not the
	// trace's usual origin (store.StoredAttributes). Spans of one
	// ResourceSpans/ScopeSpans share it. Nil when the span has neither, or
	// when it was read without.
	Origin *Origin
	// Root holds the ids a root span gives its trace row (see
	// semantics.RootIDs); nil for child spans and for spans read back.
	Root *TraceIDs
	// Usage is an LLM span's model and tokens as stored (llm.model_name,
	// llm.token_count.*), for the per-minute rollups; nil for other spans.
	Usage *Usage
}

// Usage is the model and token usage of LLM calls: of one span, or summed.
type Usage struct {
	Model                string // "" when the span names none
	Calls                int64  // 0 on one span's usage (counts as 1)
	Input, Output, Total int64  // Total: the sender's, else Input + Output
}

// Origin is a resource and instrumentation scope, as stored in the
// gateway_resources table.
type Origin struct {
	ID       string // KeyResource's value: a hash of Resource and Scope
	Resource []byte // JSON object of the resource attributes; nil when none
	Scope    []byte // {"name":..,"version":..,"attributes":{..}}; nil when none
	Tenant   string // the resource's kern.tenant, "" when none
}

// TraceIDs are the id columns of an agno_traces row.
type TraceIDs struct {
	RunID, SessionID, UserID, AgentID, TeamID, WorkflowID string
}

// Fields returns pointers to the ids in column order (TraceIDColumns).
func (t *TraceIDs) Fields() []*string {
	return []*string{&t.RunID, &t.SessionID, &t.UserID, &t.AgentID, &t.TeamID, &t.WorkflowID}
}

// TraceIDColumns are the agno_traces id columns, in TraceIDs.Fields order.
var TraceIDColumns = []string{"run_id", "session_id", "user_id", "agent_id", "team_id", "workflow_id"}

// The only keys the gateway writes into agno_spans.attributes besides the
// sender's own and the OpenInference keys AgentOS reads (see package
// semantics). They live under the reserved "kern." prefix so they never
// collide with OTel, OpenInference or agno.* keys; docs/semantics.md says
// why each earns its bytes.
const (
	// KeyResource holds the id of the span's Origin (resource and scope) in
	// the gateway_resources table, so neither is copied into every span;
	// only on spans whose origin is not their trace's usual one (the
	// gateway_trace_resources table), "" for a span without an origin.
	KeyResource = "kern.resource"
	// KeyScope is where rows stored before origins were kept apart hold the
	// scope inline (read only; new rows keep it with the resource).
	KeyScope = "kern.scope"
	// KeyEvents holds span events as [{"name":..,"time":..,"attributes":{..}}].
	KeyEvents = "kern.events"
	// KeyLinks holds span links as [{"trace_id":..,"span_id":..,"attributes":{..}}].
	KeyLinks = "kern.links"
	// KeyDropped holds the dropped attribute/event/link counts when non-zero.
	KeyDropped = "kern.dropped"
	// KeyTruncated lists attribute keys whose values the gateway truncated.
	KeyTruncated = "kern.truncated"
)

// Span kinds as agno stores them; an unknown OTLP kind is INTERNAL, as in
// agno's Span.from_otel_span.
const (
	KindInternal = "INTERNAL"
	KindServer   = "SERVER"
	KindClient   = "CLIENT"
	KindProducer = "PRODUCER"
	KindConsumer = "CONSUMER"
)
