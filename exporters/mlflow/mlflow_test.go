package mlflow

import (
	"context"
	"encoding/base64"
	"testing"

	"github.com/kern-agents/trace-gateway/exporters/internal/fixture"
	"github.com/kern-agents/trace-gateway/exporters/internal/otlptest"
	"github.com/kern-agents/trace-gateway/plugins"
)

const absent = otlptest.Absent

func configure(t testing.TB, raw map[string]any) plugins.Exporter {
	t.Helper()
	exp := New()
	if err := exp.Configure(context.Background(), raw); err != nil {
		t.Fatalf("configure: %v", err)
	}
	t.Cleanup(func() { _ = exp.Shutdown(context.Background()) })
	return exp
}

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
	fixture.Embedding: {keySpanType: `"EMBEDDING"`, keyTokenUsage: `{"input_tokens":4}`},
	fixture.PostHook:  {keySpanType: `"CHAIN"`},
}

func TestMapAgentRun(t *testing.T) {
	in := fixture.AgentRun()
	out := Map(in)
	otlptest.ExpectAttrs(t, out, wantAgentRun)
	otlptest.ExpectEvent(t, out, fixture.Tool, "exception", map[string]string{
		"exception.type": fixture.ExcType, "exception.message": fixture.ExcMessage,
	})
	if !otlptest.Same(in, fixture.AgentRun()) {
		t.Fatal("Map modified its input")
	}
}

func TestExportAgentRun(t *testing.T) {
	srv := otlptest.NewHTTP(t)
	exp := configure(t, map[string]any{"tracking_uri": srv.URL, "experiment_id": 123, "token": "dapi-1"})
	if err := exp.Export(context.Background(), fixture.AgentRun()); err != nil {
		t.Fatalf("export: %v", err)
	}
	reqs := srv.Requests()
	if len(reqs) != 1 {
		t.Fatalf("want 1 request, got %d", len(reqs))
	}
	r := reqs[0]
	if r.Method != "POST" || r.Path != "/v1/traces" {
		t.Fatalf("got %s %s", r.Method, r.Path)
	}
	for k, want := range map[string]string{
		ExperimentHeader: "123", "Authorization": "Bearer dapi-1",
		"Content-Type": "application/x-protobuf", "Content-Encoding": "",
	} {
		if got := r.Header.Get(k); got != want {
			t.Errorf("header %s = %q, want %q", k, got, want)
		}
	}
	otlptest.ExpectAttrs(t, r.Traces, wantAgentRun)
}

func TestBasicAuthAndGzip(t *testing.T) {
	srv := otlptest.NewHTTP(t)
	exp := configure(t, map[string]any{
		"tracking_uri": srv.URL + "/mlflow/", "experiment_id": "7", "username": "alice", "password": "s3cret", "compression": "gzip",
	})
	if err := exp.Export(context.Background(), fixture.Many(1)); err != nil {
		t.Fatal(err)
	}
	r := srv.Requests()[0]
	want := "Basic " + base64.StdEncoding.EncodeToString([]byte("alice:s3cret"))
	if r.Path != "/mlflow/v1/traces" || r.Header.Get("Authorization") != want || r.ContentEncoding != "gzip" {
		t.Fatalf("path %q, Authorization %q, encoding %q", r.Path, r.Header.Get("Authorization"), r.ContentEncoding)
	}
}

func TestErrors(t *testing.T) {
	otlptest.RunHTTPErrorSuite(t, func(t testing.TB, base string) plugins.Exporter {
		return configure(t, map[string]any{"tracking_uri": base, "experiment_id": "1"})
	})
}

func TestConfig(t *testing.T) {
	otlptest.RunConfigCases(t, func(raw map[string]any) error { _, err := Parse(raw); return err }, []otlptest.ConfigCase{
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
