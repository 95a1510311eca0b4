package mlflow

import (
	"encoding/base64"
	"testing"

	"github.com/kern-agents/trace-gateway/exporters/internal/fixture"
	"github.com/kern-agents/trace-gateway/exporters/internal/otlptest"
)

const absent = otlptest.Absent

var wantAgentRun = map[string]map[string]string{
	fixture.TeamRun: {
		keySpanType: `"AGENT"`, keyInputs: `"Plan a day in Lisbon"`, keyOutputs: `"Here is your plan"`,
		keyUserID: fixture.UserID, keySessionID: fixture.SessionID, keyTokenUsage: absent,
	},
	fixture.PreHook:    {keySpanType: `"CHAIN"`, keyUserID: fixture.UserID},
	fixture.Delegation: {keySpanType: `"CHAIN"`, keyInputs: `"Check the weather in Lisbon"`, keyOutputs: absent},
	fixture.MemberRun:  {keySpanType: `"AGENT"`, keyOutputs: `"Sunny, 24°C"`},
	fixture.LLM: {
		keySpanType: `"LLM"`, keyInputs: fixture.LLMInput, keyOutputs: `"Calling get_weather"`, keyModel: `"gpt-4o-mini"`,
		keyTokenUsage: `{"input_tokens":120,"output_tokens":45,"total_tokens":165}`, fixture.SenderKey: fixture.SenderValue,
	},
	fixture.Tool: {keySpanType: `"TOOL"`, keyInputs: fixture.ToolArgs, keyOutputs: absent},
	fixture.Retrieval: {
		keySpanType: `"RETRIEVER"`, keyInputs: `"Lisbon travel tips"`,
		keyOutputs: `[{"id":"doc-1","metadata":{"score":0.91},"page_content":"Take tram 28"},{"id":"doc-2","metadata":{"score":0.87},"page_content":"Try pastel de nata"}]`,
	},
	fixture.Embedding: {keySpanType: `"EMBEDDING"`, keyTokenUsage: `{"input_tokens":4,"total_tokens":4}`},
	fixture.PostHook:  {keySpanType: `"CHAIN"`},
}

func TestMapAgentRun(t *testing.T) {
	out := otlptest.ExpectMapped(t, Map, fixture.AgentRun(), wantAgentRun)
	otlptest.ExpectToolException(t, out)
}

func TestExportAgentRun(t *testing.T) {
	srv := otlptest.NewHTTP(t)
	exp := otlptest.Configure(t, New(), map[string]any{"tracking_uri": srv.URL, "experiment_id": 123, "token": "dapi-1"})
	r := otlptest.ExportOnce(t, exp, fixture.AgentRun(), srv.Requests)
	otlptest.ExpectPost(t, r, "/v1/traces", map[string]string{
		ExperimentHeader: "123", "Authorization": "Bearer dapi-1",
		"Content-Type": "application/x-protobuf", "Content-Encoding": "",
	})
	otlptest.ExpectAttrs(t, r.Traces, wantAgentRun)
}

func TestBasicAuthAndGzip(t *testing.T) {
	srv := otlptest.NewHTTP(t)
	exp := otlptest.Configure(t, New(), map[string]any{
		"tracking_uri": srv.URL + "/mlflow/", "experiment_id": "7", "username": "alice", "password": "s3cret", "compression": "gzip",
	})
	r := otlptest.ExportOnce(t, exp, fixture.Many(1), srv.Requests)
	want := "Basic " + base64.StdEncoding.EncodeToString([]byte("alice:s3cret"))
	if r.Path != "/mlflow/v1/traces" || r.Header.Get("Authorization") != want || r.ContentEncoding != "gzip" {
		t.Fatalf("path %q, Authorization %q, encoding %q", r.Path, r.Header.Get("Authorization"), r.ContentEncoding)
	}
}

func TestErrors(t *testing.T) {
	otlptest.RunHTTPErrorSuite(t, New, func(base string) map[string]any {
		return map[string]any{"tracking_uri": base, "experiment_id": "1"}
	})
}

func TestConfig(t *testing.T) {
	otlptest.RunConfigCases(t, Parse, []otlptest.ConfigCase{
		{Name: "minimal", Raw: map[string]any{"tracking_uri": "http://mlflow:5000", "experiment_id": "0"}},
		{Name: "integer id", Raw: map[string]any{"tracking_uri": "http://mlflow:5000", "experiment_id": 42}},
		{Name: "missing both", Raw: map[string]any{}, Fields: []string{"tracking_uri", "experiment_id"}},
		{Name: "empty experiment", Raw: map[string]any{"tracking_uri": "http://m", "experiment_id": ""}, Fields: []string{"experiment_id"}},
		{Name: "fractional experiment", Raw: map[string]any{"tracking_uri": "http://m", "experiment_id": 1.5}, Fields: []string{"experiment_id"}},
		{Name: "databricks uri", Raw: map[string]any{"tracking_uri": "databricks", "experiment_id": "1"}, Fields: []string{"tracking_uri"}},
		{Name: "token and basic", Raw: map[string]any{"tracking_uri": "http://m", "experiment_id": "1", "token": "t", "username": "u", "password": "p"}, Fields: []string{"token"}},
		{Name: "username alone", Raw: map[string]any{"tracking_uri": "http://m", "experiment_id": "1", "username": "u"}, Fields: []string{"username"}},
		{Name: "unknown key", Raw: map[string]any{"tracking_uri": "http://m", "experiment_id": "1", "experiment": "x"}, Fields: []string{"experiment"}},
	})
}
