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
func FormatTime(t time.Time) string { return t.UTC().Format(TimeLayout) }

// FormatUnixNano renders an OTLP timestamp in TimeLayout.
func FormatUnixNano(ns int64) string { return FormatTime(time.Unix(0, ns)) }

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
	SpanKind      string // INTERNAL, SERVER, CLIENT, PRODUCER, CONSUMER, UNSPECIFIED
	StatusCode    string // UNSET, OK, ERROR
	StatusMessage string
	StartTime     string // TimeLayout
	EndTime       string // TimeLayout
	DurationMS    int64
	Attributes    []byte // a JSON object; see the Key* constants for what the gateway adds
	CreatedAt     string // TimeLayout, when the gateway stored it
}

// Keys the gateway writes into agno_spans.attributes beside the sender's own
// attributes (which are kept as sent). All live under the reserved "kern."
// prefix so they never collide with OTel, OpenInference or agno.* keys.
const (
	// KeyResource holds the resource attributes (service.name, ...) as an object.
	KeyResource = "kern.resource"
	// KeyScope holds the instrumentation scope as {"name":..,"version":..}.
	KeyScope = "kern.scope"
	// KeyEvents holds span events as [{"name":..,"time":..,"attributes":{..}}].
	KeyEvents = "kern.events"
	// KeyLinks holds span links as [{"trace_id":..,"span_id":..,"attributes":{..}}].
	KeyLinks = "kern.links"
	// KeyDroppedCounts holds the dropped attribute/event/link counts when non-zero.
	KeyDropped = "kern.dropped"
	// KeyTruncated lists attribute keys whose values the gateway truncated.
	KeyTruncated = "kern.truncated"

	// KeySpanType is the gateway's classification of the span (run, llm, ...).
	KeySpanType = "kern.span.type"

	// Normalised ids; the trace row's columns of the same name are taken from
	// these (root span first, then the earliest span that has the key).
	KeyRunID      = "kern.run_id"
	KeySessionID  = "kern.session_id"
	KeyUserID     = "kern.user_id"
	KeyAgentID    = "kern.agent_id"
	KeyTeamID     = "kern.team_id"
	KeyWorkflowID = "kern.workflow_id"
)

// TraceIDKeys maps each agno_traces id column to the attribute key it is
// derived from.
var TraceIDKeys = []struct{ Column, Key string }{
	{"run_id", KeyRunID},
	{"session_id", KeySessionID},
	{"user_id", KeyUserID},
	{"agent_id", KeyAgentID},
	{"team_id", KeyTeamID},
	{"workflow_id", KeyWorkflowID},
}
