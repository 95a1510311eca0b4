package mlflow

import (
	"context"
	"encoding/base64"
	"fmt"
	"testing"

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/kern-agents/trace-gateway/exporters/internal/fixture"
	"github.com/kern-agents/trace-gateway/exporters/internal/otlptest"
	"github.com/kern-agents/trace-gateway/plugins"
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

// newServer is a fake MLflow tracking server, as strict as MLflow's
// /v1/traces.
func newServer(t *testing.T) *otlptest.HTTPServer {
	return otlptest.NewHTTP(t, otlptest.MLflowRules()...)
}

func TestExportAgentRun(t *testing.T) {
	srv := newServer(t)
	exp := otlptest.Configure(t, New(), map[string]any{"tracking_uri": srv.URL, "experiment_id": 123, "token": "dapi-1"})
	r := otlptest.ExportOnce(t, exp, fixture.AgentRun(), srv.Requests)
	otlptest.ExpectPost(t, r, "/v1/traces", map[string]string{
		ExperimentHeader: "123", "Authorization": "Bearer dapi-1",
		"Content-Type": "application/x-protobuf", "Content-Encoding": "",
	})
	otlptest.ExpectAttrs(t, r.Traces, wantAgentRun)
}

func TestBasicAuthAndGzip(t *testing.T) {
	srv := newServer(t)
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
	}, otlptest.MLflowRules()...)
}

// answer is a JSON error body as MLflow's FastAPI app sends it.
func answer(status int, body string) otlptest.Reply {
	return otlptest.Reply{Status: status, Header: map[string]string{"Content-Type": "application/json"}, Body: []byte(body)}
}

// exportTo configures an exporter for srv and returns a function exporting
// a batch through Export or, encoded as the host sends it, ExportEncoded.
func exportTo(t *testing.T, srv *otlptest.HTTPServer) func(td ptrace.Traces, encoded bool) error {
	exp := otlptest.Configure(t, New(), map[string]any{"tracking_uri": srv.URL, "experiment_id": "1"})
	return func(td ptrace.Traces, encoded bool) error {
		if !encoded {
			return exp.Export(context.Background(), td)
		}
		b, err := (&ptrace.ProtoMarshaler{}).MarshalTraces(td)
		if err != nil {
			t.Fatal(err)
		}
		return exp.(plugins.EncodedExporter).ExportEncoded(context.Background(), b)
	}
}

func TestRefusals(t *testing.T) {
	for _, tc := range []struct {
		name    string
		reply   otlptest.Reply
		mention []string
	}{
		{"file store", answer(501, `{"detail":"REST OTLP span logging is not supported by FileStore"}`),
			[]string{"database-backed tracking store", "not supported by FileStore"}},
		{"span it cannot convert", answer(422, `{"detail":"Cannot convert OpenTelemetry span to MLflow span"}`),
			[]string{"cannot convert a span", "HTTP 422"}},
		{"missing experiment header", answer(422, `{"detail":[{"type":"missing","loc":["header","x-mlflow-experiment-id"],"msg":"Field required","input":null}]}`),
			[]string{"requires the x-mlflow-experiment-id header"}},
		{"experiment not found", answer(404, `{"error_code":"RESOURCE_DOES_NOT_EXIST","message":"No Experiment with id=1 exists"}`),
			[]string{"HTTP 404", "No Experiment"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newServer(t)
			srv.SetResponder(func(otlptest.Request) otlptest.Reply { return tc.reply })
			err := exportTo(t, srv)(fixture.Many(2), false)
			otlptest.ExpectPermanent(t, err)
			otlptest.ExpectMessage(t, err, tc.mention...)
			if n := len(srv.Requests()); n != 1 {
				t.Fatalf("%d requests, want 1", n)
			}
		})
	}
}

// storeFailures are MLflow's answers when storing spans raised: 3.6 to 3.x
// name the trace and the error, later versions only log them.
var storeFailures = []otlptest.Reply{
	answer(422, `{"detail":"Failed to log OpenTelemetry spans: Trace tr-4bf92f3577b34da6a3ce929d0e0e4736: (sqlalchemy.exc.OperationalError) server closed the connection unexpectedly"}`),
	answer(422, `{"detail":"Failed to log OpenTelemetry spans"}`),
}

func TestStoreFailureIsRetriedThenAccepted(t *testing.T) {
	for i, failure := range storeFailures {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			srv := newServer(t)
			srv.SetResponder(func(otlptest.Request) otlptest.Reply {
				if len(srv.Requests()) <= 2 {
					return failure // the database recovers after two attempts
				}
				return otlptest.OK()
			})
			export := exportTo(t, srv)
			td := fixture.Many(3)
			for attempt := 1; attempt <= 2; attempt++ {
				err := export(td, attempt == 2)
				otlptest.ExpectRetryable(t, err, 0)
				otlptest.ExpectMessage(t, err, "HTTP 422", "Failed to log OpenTelemetry spans")
			}
			if err := export(td, false); err != nil {
				t.Fatalf("third attempt: %v", err)
			}
		})
	}
}

func TestStoreFailureIsRetriedABoundedNumberOfTimes(t *testing.T) {
	srv := newServer(t)
	srv.SetResponder(func(otlptest.Request) otlptest.Reply { return storeFailures[0] })
	export := exportTo(t, srv)
	a, b := fixture.Many(3), fixture.Many(2)
	// The host retries a batch as it was, through either path; another
	// batch failing in between has its own count.
	for attempt := 1; attempt < MaxStoreAttempts; attempt++ {
		otlptest.ExpectRetryable(t, export(a, attempt%2 == 0), 0)
		otlptest.ExpectRetryable(t, export(b, false), 0)
	}
	err := export(a, true)
	otlptest.ExpectPermanent(t, err)
	otlptest.ExpectMessage(t, err, fmt.Sprintf("failed to store these spans %d times", MaxStoreAttempts), "OperationalError")
	otlptest.ExpectPermanent(t, export(b, false))
	// A batch sent again later (requeued) gets its attempts afresh.
	otlptest.ExpectRetryable(t, export(a, false), 0)
	if n, want := len(srv.Requests()), 2*MaxStoreAttempts+1; n != want {
		t.Fatalf("%d requests, want %d", n, want)
	}
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
