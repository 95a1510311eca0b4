package api

import (
	"slices"
	"strings"

	"github.com/kern-agents/trace-gateway/internal/semantics"
)

// nodeTypes are the span types AgentOS's trace tree shows
// (semantics.NodeType): the OpenInference span kinds, with CHAIN shown as
// WORKFLOW and an AGENT carrying a team id as TEAM.
var nodeTypes = []string{
	semantics.KindAgent, "TEAM", "WORKFLOW", semantics.KindLLM, semantics.KindEmbedding, semantics.KindTool,
	semantics.KindRetriever, semantics.KindReranker, semantics.KindGuardrail, semantics.KindEvaluator,
	semantics.KindPrompt, semantics.KindUnknown,
}

// oldSpanTypes are the type values of the gateway's earlier releases; a
// request using one is told what to ask for instead.
var oldSpanTypes = map[string]string{
	"run": "AGENT, TEAM or WORKFLOW", "pre_hook": "GUARDRAIL", "post_hook": "GUARDRAIL",
	"retrieval": "RETRIEVER", "delegation": "TOOL", "other": "UNKNOWN",
}

// parseNodeType reads the type= filter: a node type in any case, or a span
// kind a sender invented, matched as sent.
func parseNodeType(v string) (string, error) {
	if up := strings.ToUpper(v); slices.Contains(nodeTypes, up) {
		return up, nil
	}
	if instead, ok := oldSpanTypes[strings.ToLower(v)]; ok {
		return "", badParam("type", "span types are AgentOS node types now ("+strings.Join(nodeTypes, ", ")+"): use "+instead)
	}
	if !attrKeyRE.MatchString(v) {
		return "", badParam("type", "must be one of "+strings.Join(nodeTypes, ", "))
	}
	return v, nil
}

// nodeType is the SQL expression for semantics.NodeType of a row's
// attributes; the API's type= filter compares it. The keys are constants,
// written into the SQL as literals.
func (b *qb) nodeType(col string) string {
	kind := b.jsonString(col, semantics.AttrSpanKind)
	team := b.truthy(col, "agno.team.id") + " OR " + b.truthy(col, "team.id")
	return "(CASE WHEN COALESCE(" + kind + ", '') = '' THEN 'UNKNOWN'" +
		" WHEN " + kind + " = 'CHAIN' THEN 'WORKFLOW'" +
		" WHEN " + kind + " = 'AGENT' AND (" + team + ") THEN 'TEAM'" +
		" ELSE " + kind + " END)"
}

// jsonString is attributes[key] when it is a JSON string, else NULL (as
// NodeType ignores a kind that is not a string).
func (b *qb) jsonString(col, key string) string {
	if b.pg {
		return "(CASE WHEN jsonb_typeof(" + col + "->'" + key + "') = 'string' THEN " + col + "->>'" + key + "' END)"
	}
	p := "'" + jsonPath(key) + "'"
	return "(CASE WHEN json_type(" + col + ", " + p + ") = 'text' THEN json_extract(" + col + ", " + p + ") END)"
}

// truthy is Python's truth value of attributes[key], as AgentOS tests a team
// id: absent, null, false, 0, "", [] and {} are false.
func (b *qb) truthy(col, key string) string {
	if b.pg {
		v := col + "->'" + key + "'"
		return "COALESCE(" + v + " NOT IN ('null', '\"\"', 'false', '0', '[]', '{}'), false)"
	}
	p := "'" + jsonPath(key) + "'"
	v := "json_extract(" + col + ", " + p + ")"
	return "(CASE json_type(" + col + ", " + p + ") WHEN 'true' THEN 1 WHEN 'text' THEN " + v + " <> ''" +
		" WHEN 'integer' THEN " + v + " <> 0 WHEN 'real' THEN " + v + " <> 0" +
		" WHEN 'array' THEN json_array_length(" + col + ", " + p + ") > 0 WHEN 'object' THEN " + v + " <> '{}' ELSE 0 END)"
}
