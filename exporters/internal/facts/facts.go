// Package facts reads a span's normalised facts (internal/semantics) into
// one struct, so each vendor
// adapter maps a run's facts without knowing which OTel convention the
// sender used. It also holds the small attribute helpers the mappings share.
package facts

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/kern-agents/trace-gateway/internal/semantics"
	"github.com/kern-agents/trace-gateway/internal/spaninfo"
)

// Facts are the normalised facts of one span. Empty strings and Has*
// flags mark what the gateway did not find.
type Facts struct {
	Type    string // semantics.Type*; "" when the span was not classified
	RunKind string // agent | team | workflow

	Model  string
	Input  string // text; structured values are JSON text
	Output string

	InputTokens, OutputTokens, TotalTokens          int64
	HasInputTokens, HasOutputTokens, HasTotalTokens bool
	Temperature                                     float64
	HasTemperature                                  bool
	ToolCalls                                       string // JSON array

	ToolName, ToolArguments, ToolResult string

	ExceptionType, ExceptionMessage string

	HookName string

	RetrievalQuery, VectorStore string
	RetrievalK                  int64
	HasRetrievalK               bool
	Documents                   []Document

	DelegationMember, DelegationMode string

	RunID, SessionID, UserID, AgentID, TeamID, WorkflowID string

	// Failed is true when the span's status is ERROR or it carries an
	// exception.
	Failed        bool
	StatusMessage string
}

// Document is one retrieved document.
type Document struct {
	ID       string
	Content  string
	Score    float64
	HasScore bool
}

// Read collects the facts of span, whatever convention its sender used
// (semantics.Normalize); res is the span's resource, whose ids stand in for
// ids the span lacks.
func Read(res pcommon.Resource, span ptrace.Span) Facts {
	info := spaninfo.Info(span, res.Attributes().AsRaw())
	n := semantics.Normalize(info, span.Attributes().AsRaw())
	str := func(k string) string { s, _ := n[k].(string); return s }
	num := func(k string) (int64, bool) { v, ok := n[k].(int64); return v, ok }
	f := Facts{
		Type:             str(semantics.KeySpanType),
		RunKind:          str(semantics.KeyRunKind),
		Model:            str(semantics.KeyModel),
		Input:            str(semantics.KeyInput),
		Output:           str(semantics.KeyOutput),
		ToolName:         str(semantics.KeyToolName),
		ToolArguments:    str(semantics.KeyToolArguments),
		ToolResult:       str(semantics.KeyToolResult),
		ExceptionType:    str(semantics.KeyExceptionType),
		ExceptionMessage: str(semantics.KeyExceptionMessage),
		HookName:         str(semantics.KeyHookName),
		RetrievalQuery:   str(semantics.KeyRetrievalQuery),
		VectorStore:      str(semantics.KeyRetrievalVectorStore),
		DelegationMember: str(semantics.KeyDelegationMember),
		DelegationMode:   str(semantics.KeyDelegationMode),
		RunID:            str(semantics.KeyRunID),
		SessionID:        str(semantics.KeySessionID),
		UserID:           str(semantics.KeyUserID),
		AgentID:          str(semantics.KeyAgentID),
		TeamID:           str(semantics.KeyTeamID),
		WorkflowID:       str(semantics.KeyWorkflowID),
		StatusMessage:    span.Status().Message(),
	}
	if calls, ok := n[semantics.KeyToolCalls]; ok {
		if b, err := json.Marshal(calls); err == nil {
			f.ToolCalls = string(b)
		}
	}
	f.InputTokens, f.HasInputTokens = num(semantics.KeyInputTokens)
	f.OutputTokens, f.HasOutputTokens = num(semantics.KeyOutputTokens)
	f.TotalTokens, f.HasTotalTokens = num(semantics.KeyTotalTokens)
	f.Temperature, f.HasTemperature = n[semantics.KeyTemperature].(float64)
	f.RetrievalK, f.HasRetrievalK = num(semantics.KeyRetrievalK)
	f.Documents = documents(n[semantics.KeyRetrievalDocuments])
	f.Failed = span.Status().Code() == ptrace.StatusCodeError || f.ExceptionType != "" || f.ExceptionMessage != ""
	return f
}

// ErrorMessage is the one-line error a vendor should show: "Type: message",
// falling back to the span's status message.
func (f Facts) ErrorMessage() string {
	switch {
	case f.ExceptionType != "" && f.ExceptionMessage != "":
		return f.ExceptionType + ": " + f.ExceptionMessage
	case f.ExceptionMessage != "":
		return f.ExceptionMessage
	case f.ExceptionType != "":
		if f.StatusMessage != "" {
			return f.ExceptionType + ": " + f.StatusMessage
		}
		return f.ExceptionType
	}
	return f.StatusMessage
}

// Usage reports whether any token count is known.
func (f Facts) Usage() bool { return f.HasInputTokens || f.HasOutputTokens || f.HasTotalTokens }

// SpanInput is what the span consumed, whatever its type: the normalised
// input, else tool arguments, else the retrieval query.
func (f Facts) SpanInput() string {
	switch {
	case f.Input != "":
		return f.Input
	case f.ToolArguments != "":
		return f.ToolArguments
	}
	return f.RetrievalQuery
}

// SpanOutput is what the span produced: the normalised output, else the
// tool result, else the retrieved documents as JSON.
func (f Facts) SpanOutput() string {
	switch {
	case f.Output != "":
		return f.Output
	case f.ToolResult != "":
		return f.ToolResult
	case len(f.Documents) > 0:
		return DocumentsJSON(f.Documents)
	}
	return ""
}

// DocumentsJSON renders documents as [{"id":..,"content":..,"score":..}].
func DocumentsJSON(docs []Document) string {
	out := make([]map[string]any, len(docs))
	for i, d := range docs {
		m := map[string]any{"content": d.Content}
		if d.ID != "" {
			m["id"] = d.ID
		}
		if d.HasScore {
			m["score"] = d.Score
		}
		out[i] = m
	}
	b, _ := json.Marshal(out)
	return string(b)
}

// Text reads an attribute as text: strings as they are, other values in
// their JSON form. Absent keys read as "".
func Text(a pcommon.Map, key string) string {
	v, ok := a.Get(key)
	if !ok {
		return ""
	}
	if v.Type() == pcommon.ValueTypeStr {
		return v.Str()
	}
	if v.Type() == pcommon.ValueTypeEmpty {
		return ""
	}
	return v.AsString()
}

// Int reads an integer attribute, also accepting whole doubles and numeric
// strings (values may have travelled through JSON).
func Int(a pcommon.Map, key string) (int64, bool) {
	v, ok := a.Get(key)
	if !ok {
		return 0, false
	}
	switch v.Type() {
	case pcommon.ValueTypeInt:
		return v.Int(), true
	case pcommon.ValueTypeDouble:
		d := v.Double()
		if d == math.Trunc(d) && math.Abs(d) < 1<<53 {
			return int64(d), true
		}
	case pcommon.ValueTypeStr:
		if n, err := strconv.ParseInt(strings.TrimSpace(v.Str()), 10, 64); err == nil {
			return n, true
		}
	}
	return 0, false
}

// Float reads a number attribute.
func Float(a pcommon.Map, key string) (float64, bool) {
	v, ok := a.Get(key)
	if !ok {
		return 0, false
	}
	switch v.Type() {
	case pcommon.ValueTypeDouble:
		return v.Double(), true
	case pcommon.ValueTypeInt:
		return float64(v.Int()), true
	case pcommon.ValueTypeStr:
		if d, err := strconv.ParseFloat(strings.TrimSpace(v.Str()), 64); err == nil {
			return d, true
		}
	}
	return 0, false
}

// documents reads the normalised retrieved documents ([]any of maps).
func documents(v any) []Document {
	raw, _ := v.([]any)
	docs := make([]Document, 0, len(raw))
	for _, item := range raw {
		m, ok := item.(map[string]any)
		if !ok {
			continue
		}
		var d Document
		if id, ok := m["id"]; ok && id != nil {
			d.ID = scalarText(id)
		}
		if c, ok := m["content"]; ok && c != nil {
			d.Content = scalarText(c)
		}
		if s, ok := m["score"].(float64); ok {
			d.Score, d.HasScore = s, true
		}
		docs = append(docs, d)
	}
	if len(docs) == 0 {
		return nil
	}
	return docs
}

func scalarText(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1<<53 {
			return strconv.FormatInt(int64(x), 10)
		}
		return strconv.FormatFloat(x, 'g', -1, 64)
	case map[string]any, []any:
		b, _ := json.Marshal(x)
		return string(b)
	}
	return fmt.Sprint(v)
}
