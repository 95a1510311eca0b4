package logfire

import (
	"encoding/json"
	"strings"
	"unicode/utf8"

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/kern-agents/trace-gateway/exporters/internal/facts"
	"github.com/kern-agents/trace-gateway/internal/semantics"
)

// OpenTelemetry GenAI semantic conventions and Logfire's own keys.
const (
	keyOperation      = "gen_ai.operation.name"
	keyRequestModel   = "gen_ai.request.model"
	keyInputTokens    = "gen_ai.usage.input_tokens"
	keyOutputTokens   = "gen_ai.usage.output_tokens"
	keyTemperature    = "gen_ai.request.temperature"
	keyInputMessages  = "gen_ai.input.messages"
	keyOutputMessages = "gen_ai.output.messages"
	keyToolName       = "gen_ai.tool.name"
	keyToolArguments  = "gen_ai.tool.call.arguments"
	keyToolResult     = "gen_ai.tool.call.result"
	keyAgentID        = "gen_ai.agent.id"
	keyConversationID = "gen_ai.conversation.id"
	keyUserID         = "user.id"
	keySessionID      = "session.id"
	keyErrorType      = "error.type"
	keyMsg            = "logfire.msg"
	keySpanType       = "logfire.span_type"
	keyLevelNum       = "logfire.level_num"
)

// levelError is Logfire's level number for "error".
const levelError = 17

// Map returns a copy of td with GenAI and Logfire attributes added; the
// sender's own attributes are kept and win over derived ones.
func Map(td ptrace.Traces) ptrace.Traces { return facts.MapSpans(td, mapSpan) }

// operations are the GenAI operation names; "" where none fits.
var operations = facts.Kinds{Agent: "invoke_agent", LLM: "chat", Embedding: "embeddings", Tool: "execute_tool"}

// Operation is the gen_ai.operation.name for a span.
func Operation(f facts.Facts) string { return operations.Of(f) }

func mapSpan(span ptrace.Span, f facts.Facts, tf *facts.TraceFacts) {
	a := span.Attributes()
	facts.PutStr(a, keyOperation, Operation(f))
	facts.PutStr(a, keySpanType, "span")
	facts.PutStr(a, keyMsg, Message(span.Name(), f))

	switch f.Type {
	case semantics.TypeLLM, semantics.TypeEmbedding:
		facts.PutStr(a, keyRequestModel, f.Model)
		facts.PutInt(a, keyInputTokens, f.InputTokens, f.HasInputTokens)
		facts.PutInt(a, keyOutputTokens, f.OutputTokens, f.HasOutputTokens)
		facts.PutDouble(a, keyTemperature, f.Temperature, f.HasTemperature)
		if f.Type == semantics.TypeLLM {
			facts.PutStr(a, keyInputMessages, InputMessages(f.Input))
			facts.PutStr(a, keyOutputMessages, OutputMessages(f.Output, f.ToolCalls))
		}
	case semantics.TypeTool:
		facts.PutStr(a, keyToolName, f.ToolName)
		facts.PutStr(a, keyToolArguments, f.ToolArguments)
		facts.PutStr(a, keyToolResult, f.ToolResult)
	case semantics.TypeRun:
		facts.PutStr(a, keyRequestModel, f.Model)
		id := f.AgentID
		if f.RunKind == "team" {
			id = f.TeamID
		}
		facts.PutStr(a, keyAgentID, id)
	}

	if f.Failed {
		facts.PutInt(a, keyLevelNum, levelError, true)
		facts.PutStr(a, keyErrorType, f.ExceptionType)
	}
	facts.EnsureExceptionEvent(span, f)

	if tf != nil {
		facts.PutStr(a, keyConversationID, tf.SessionID)
		facts.PutStr(a, keySessionID, tf.SessionID)
		facts.PutStr(a, keyUserID, tf.UserID)
	}
}

// Message is the readable line Logfire shows for a span ("" to keep the
// span name).
func Message(name string, f facts.Facts) string {
	var msg string
	switch f.Type {
	case semantics.TypeRun:
		id := first(f.AgentID, f.TeamID, f.WorkflowID)
		if f.RunKind == "team" {
			id = first(f.TeamID, f.AgentID)
		}
		if f.RunKind == "workflow" {
			id = first(f.WorkflowID, f.AgentID)
		}
		kind := first(f.RunKind, "agent")
		msg = strings.TrimSpace(kind + " run " + first(id, name))
	case semantics.TypeLLM:
		msg = strings.TrimSpace("chat " + f.Model)
	case semantics.TypeEmbedding:
		msg = strings.TrimSpace("embeddings " + f.Model)
	case semantics.TypeTool:
		msg = "execute_tool " + first(f.ToolName, name)
	case semantics.TypeRetrieval:
		msg = "retrieval"
		if f.VectorStore != "" {
			msg += " from " + f.VectorStore
		}
		if f.RetrievalQuery != "" {
			msg += ": " + shorten(f.RetrievalQuery, 80)
		}
	case semantics.TypePreHook, semantics.TypePostHook:
		msg = f.Type + " " + first(f.HookName, name)
	case semantics.TypeDelegation:
		msg = "delegate to " + first(f.DelegationMember, "member")
		if f.DelegationMode != "" {
			msg += " (" + f.DelegationMode + ")"
		}
	default:
		return ""
	}
	if f.Failed {
		if e := f.ErrorMessage(); e != "" {
			msg += " failed: " + shorten(e, 200)
		}
	}
	return msg
}

// part and message follow the GenAI semantic conventions' message schema.
type part struct {
	Type      string `json:"type"`
	Content   string `json:"content,omitempty"`
	ID        string `json:"id,omitempty"`
	Name      string `json:"name,omitempty"`
	Arguments any    `json:"arguments,omitempty"`
}

type message struct {
	Role  string `json:"role"`
	Parts []part `json:"parts"`
}

// InputMessages renders the LLM input as gen_ai.input.messages: chat
// messages ([{"role","content"}]) are converted, anything else becomes one
// user message.
func InputMessages(input string) string {
	if input == "" {
		return ""
	}
	var chat []struct {
		Role    string `json:"role"`
		Content any    `json:"content"`
	}
	if facts.IsJSON(input) && json.Unmarshal([]byte(input), &chat) == nil && len(chat) > 0 {
		msgs := make([]message, 0, len(chat))
		for _, m := range chat {
			if m.Role == "" {
				msgs = nil
				break
			}
			text, ok := m.Content.(string)
			if !ok && m.Content != nil {
				text = facts.MarshalJSON(m.Content)
			}
			msgs = append(msgs, message{Role: m.Role, Parts: []part{{Type: "text", Content: text}}})
		}
		if msgs != nil {
			return facts.MarshalJSON(msgs)
		}
	}
	return facts.MarshalJSON([]message{{Role: "user", Parts: []part{{Type: "text", Content: input}}}})
}

// OutputMessages renders the LLM output and its tool calls as
// gen_ai.output.messages.
func OutputMessages(output, toolCalls string) string {
	var parts []part
	if output != "" {
		parts = append(parts, part{Type: "text", Content: output})
	}
	var calls []struct {
		ID        string `json:"id"`
		Name      string `json:"name"`
		Arguments any    `json:"arguments"`
	}
	if toolCalls != "" && json.Unmarshal([]byte(toolCalls), &calls) == nil {
		for _, c := range calls {
			parts = append(parts, part{Type: "tool_call", ID: c.ID, Name: c.Name, Arguments: c.Arguments})
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return facts.MarshalJSON([]message{{Role: "assistant", Parts: parts}})
}

func first(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}

func shorten(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n]) + "…"
}
