package semantics

import (
	"encoding/json"
	"sort"
	"strings"
)

// OpenTelemetry attributes cannot nest, so OpenInference (and older GenAI
// instrumentations) flatten lists of objects into keys such as
//
//	llm.output_messages.0.message.tool_calls.1.tool_call.function.name
//	retrieval.documents.3.document.score
//	gen_ai.completion.0.tool_calls.0.arguments
//
// The helpers here put them back together.

// splitIndex reads "N.rest" and returns N and rest. Positions above
// maxIndex are refused.
func splitIndex(s string) (int, string, bool) {
	n, i := 0, 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		n = n*10 + int(s[i]-'0')
		if n > maxIndex {
			return 0, "", false
		}
		i++
	}
	if i == 0 || i >= len(s) || s[i] != '.' {
		return 0, "", false
	}
	return n, s[i+1:], true
}

// message is one chat message rebuilt from flattened keys.
type message struct {
	Role      string
	Content   string
	ToolCalls map[int]*toolCall
}

type toolCall struct{ ID, Name, Arguments string }

// flatMessages rebuilds messages under prefix. It understands both the
// OpenInference shape (N.message.role, N.message.content,
// N.message.contents.M.message_content.text,
// N.message.tool_calls.M.tool_call.{id,function.name,function.arguments})
// and the older GenAI shape (N.role, N.content, N.tool_calls.M.{id,name,arguments}).
func (s *view) flatMessages(prefix string) []*message {
	keys := s.flatKeys(prefix)
	if len(keys) == 0 {
		return nil
	}
	if m, ok := s.msgs[prefix]; ok {
		return m
	}
	out := s.buildMessages(prefix, keys)
	if s.msgs == nil {
		s.msgs = map[string][]*message{}
	}
	s.msgs[prefix] = out
	return out
}

func (s *view) buildMessages(prefix string, keys []string) []*message {
	byIdx := map[int]*message{}
	contents := map[int]map[int]string{} // message -> part -> text
	for _, k := range keys {
		idx, rest, ok := splitIndex(k[len(prefix):])
		if !ok {
			continue
		}
		rest = strings.TrimPrefix(rest, "message.")
		get := func() *message {
			m := byIdx[idx]
			if m == nil {
				m = &message{}
				byIdx[idx] = m
			}
			return m
		}
		val, ok := text(s.attrs[k], MaxValueBytes)
		if !ok {
			continue
		}
		switch {
		case rest == "role":
			get().Role = val
		case rest == "content":
			get().Content = val
		case strings.HasPrefix(rest, "contents."):
			j, tail, ok := splitIndex(rest[len("contents."):])
			if ok && (tail == "message_content.text" || tail == "text") {
				if contents[idx] == nil {
					contents[idx] = map[int]string{}
				}
				contents[idx][j] = val
				get()
			}
		case strings.HasPrefix(rest, "tool_calls."):
			j, tail, ok := splitIndex(rest[len("tool_calls."):])
			if !ok {
				continue
			}
			m := get()
			if m.ToolCalls == nil {
				m.ToolCalls = map[int]*toolCall{}
			}
			tc := m.ToolCalls[j]
			if tc == nil {
				tc = &toolCall{}
				m.ToolCalls[j] = tc
			}
			switch strings.TrimPrefix(tail, "tool_call.") {
			case "id":
				tc.ID = val
			case "function.name", "name":
				tc.Name = val
			case "function.arguments", "arguments":
				tc.Arguments = val
			}
		}
	}
	for idx, parts := range contents {
		m := byIdx[idx]
		if m.Content != "" {
			continue
		}
		var b strings.Builder
		for _, j := range sortedKeys(parts) {
			if b.Len() > 0 {
				b.WriteByte('\n')
			}
			b.WriteString(parts[j])
		}
		m.Content = truncate(b.String(), MaxValueBytes)
	}
	out := make([]*message, 0, len(byIdx))
	for _, idx := range sortedKeys(byIdx) {
		out = append(out, byIdx[idx])
	}
	return out
}

// messagesJSON renders rebuilt messages as a JSON array of {role, content}.
func messagesJSON(msgs []*message) (string, bool) {
	list := make([]any, 0, len(msgs))
	for _, m := range msgs {
		if m.Role == "" && m.Content == "" {
			continue
		}
		obj := map[string]any{}
		if m.Role != "" {
			obj["role"] = m.Role
		}
		if m.Content != "" {
			obj["content"] = m.Content
		}
		list = append(list, obj)
	}
	if len(list) == 0 {
		return "", false
	}
	return text(list, MaxValueBytes)
}

// messagesToolCalls lists the tool calls in rebuilt messages, in order.
func messagesToolCalls(msgs []*message) []any {
	var out []any
	for _, m := range msgs {
		for _, j := range sortedKeys(m.ToolCalls) {
			tc := m.ToolCalls[j]
			if tc.Name == "" {
				continue
			}
			out = append(out, toolCallObject(tc.Name, tc.Arguments, tc.ID))
			if len(out) == MaxListItems {
				return out
			}
		}
	}
	return out
}

// toolCallJSON is a toolCallObject as a struct: encoding/json writes the
// same bytes (a map's keys sorted, these fields in that order, empty
// optional ones left out) without sorting and reflecting over a map.
type toolCallJSON struct {
	Arguments string `json:"arguments,omitempty"`
	ID        string `json:"id,omitempty"`
	Name      string `json:"name"`
}

// marshalToolCalls is json.Marshal of a list of toolCallObject maps.
func marshalToolCalls(calls []any) ([]byte, error) {
	out := make([]toolCallJSON, len(calls))
	for i, c := range calls {
		m, _ := c.(map[string]any)
		tc, ok := toolCallOf(m)
		if !ok {
			return json.Marshal(calls)
		}
		out[i] = tc
	}
	return json.Marshal(out)
}

// toolCallOf reads back a toolCallObject map; ok is false for any other
// shape.
func toolCallOf(m map[string]any) (tc toolCallJSON, ok bool) {
	n := 0
	for _, f := range []struct {
		key      string
		dst      *string
		optional bool
	}{{"arguments", &tc.Arguments, true}, {"id", &tc.ID, true}, {"name", &tc.Name, false}} {
		v, present := m[f.key]
		if !present {
			if !f.optional {
				return tc, false
			}
			continue
		}
		s, isStr := v.(string)
		if !isStr || (f.optional && s == "") {
			return tc, false
		}
		*f.dst = s
		n++
	}
	return tc, n == len(m)
}

func toolCallObject(name, args, id string) map[string]any {
	obj := map[string]any{"name": name}
	if args != "" {
		obj["arguments"] = args
	}
	if id != "" {
		obj["id"] = id
	}
	return obj
}

// document is one retrieved document rebuilt from flattened keys or JSON.
type document struct {
	ID       string
	Content  string
	Score    float64
	HasScore bool
}

// flatDocuments rebuilds N.document.{id,content,score} under prefix.
func (s *view) flatDocuments(prefix string) []*document {
	keys := s.flatKeys(prefix)
	if len(keys) == 0 {
		return nil
	}
	byIdx := map[int]*document{}
	for _, k := range keys {
		idx, rest, ok := splitIndex(k[len(prefix):])
		if !ok {
			continue
		}
		rest = strings.TrimPrefix(rest, "document.")
		d := byIdx[idx]
		if d == nil {
			d = &document{}
		}
		v := s.attrs[k]
		switch rest {
		case "id":
			if id, ok := idString(v); ok {
				d.ID = id
			}
		case "content":
			if c, ok := text(v, MaxDocContentBytes); ok {
				d.Content = c
			}
		case "score":
			if f, ok := number(v); ok {
				d.Score, d.HasScore = f, true
			}
		default:
			continue
		}
		byIdx[idx] = d
	}
	out := make([]*document, 0, len(byIdx))
	for _, idx := range sortedKeys(byIdx) {
		out = append(out, byIdx[idx])
	}
	return out
}

func sortedKeys[V any](m map[int]V) []int {
	ks := make([]int, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Ints(ks)
	return ks
}
