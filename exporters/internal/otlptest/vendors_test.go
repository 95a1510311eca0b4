package otlptest

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"

	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"

	"github.com/kern-agents/trace-gateway/exporters/internal/fixture"
)

// ruleCase is a request to a fake with a vendor's rules and the status the
// vendor answers it with.
type ruleCase struct {
	name        string
	contentType string
	headers     map[string]string
	body        []byte
	want        int
	mention     string // in the answer's body
}

// runRuleCases posts each case to a fake enforcing rules.
func runRuleCases(t *testing.T, rules []Rule, cases []ruleCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := NewHTTP(t, rules...)
			req, err := http.NewRequest(http.MethodPost, srv.URL+"/v1/traces", bytes.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			if tc.contentType != "" {
				req.Header.Set("Content-Type", tc.contentType)
			}
			for k, v := range tc.headers {
				req.Header.Set(k, v)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.want || !strings.Contains(string(body), tc.mention) {
				t.Fatalf("answered %d %q, want %d mentioning %q", resp.StatusCode, body, tc.want, tc.mention)
			}
			reqs := srv.Requests()
			if wantRefused := tc.want != http.StatusOK; len(reqs) != 1 || (reqs[0].Refused != 0) != wantRefused {
				t.Fatalf("recorded %+v, want one request refused=%v", reqs, wantRefused)
			}
		})
	}
}

// bodies of one span, and of none, in both OTLP encodings.
func bodies(t *testing.T) (proto, json, empty []byte) {
	t.Helper()
	req := ptraceotlp.NewExportRequestFromTraces(fixture.Many(1))
	proto, err := req.MarshalProto()
	if err != nil {
		t.Fatal(err)
	}
	if json, err = req.MarshalJSON(); err != nil {
		t.Fatal(err)
	}
	if empty, err = ptraceotlp.NewExportRequestFromTraces(ptrace.NewTraces()).MarshalProto(); err != nil {
		t.Fatal(err)
	}
	return proto, json, empty
}

func TestMLflowRules(t *testing.T) {
	proto, json, empty := bodies(t)
	exp := map[string]string{"x-mlflow-experiment-id": "1"}
	runRuleCases(t, MLflowRules(), []ruleCase{
		{name: "protobuf with experiment", contentType: "application/x-protobuf", headers: exp, body: proto, want: 200},
		{name: "parameters aside", contentType: "application/x-protobuf; charset=utf-8", headers: exp, body: proto, want: 200},
		{name: "no experiment header", contentType: "application/x-protobuf", body: proto, want: 422, mention: "x-mlflow-experiment-id"},
		{name: "JSON", contentType: "application/json", headers: exp, body: json, want: 400, mention: "Invalid Content-Type"},
		{name: "no content type", headers: exp, body: proto, want: 400, mention: "Invalid Content-Type"},
		{name: "garbage", contentType: "application/x-protobuf", headers: exp, body: []byte{0xff, 0xff, 0xff}, want: 400, mention: "Invalid OpenTelemetry format"},
		{name: "no spans", contentType: "application/x-protobuf", headers: exp, body: empty, want: 400, mention: "no spans found"},
	})
}

func TestLangfuseRules(t *testing.T) {
	proto, json, _ := bodies(t)
	auth := func(extra map[string]string) map[string]string {
		h := map[string]string{"Authorization": "Basic cGs6c2s="}
		for k, v := range extra {
			h[k] = v
		}
		return h
	}
	version := func(v string) map[string]string { return auth(map[string]string{"x-langfuse-ingestion-version": v}) }
	runRuleCases(t, LangfuseRules(), []ruleCase{
		{name: "protobuf, version 4", contentType: "application/x-protobuf", headers: version("4"), body: proto, want: 200},
		{name: "JSON without version", contentType: "application/json", headers: auth(nil), body: json, want: 200},
		{name: "older version", contentType: "application/x-protobuf", headers: version("3"), body: proto, want: 200},
		{name: "version 5", contentType: "application/x-protobuf", headers: version("5"), body: proto, want: 400, mention: "Maximum supported"},
		{name: "version not a number", contentType: "application/x-protobuf", headers: version("v4"), body: proto, want: 400, mention: "Unsupported x-langfuse-ingestion-version"},
		{name: "no credentials", contentType: "application/x-protobuf", body: proto, want: 401},
		{name: "other content type", contentType: "text/plain", headers: auth(nil), body: proto, want: 400, mention: "Invalid content type"},
		{name: "garbage", contentType: "application/x-protobuf", headers: auth(nil), body: []byte{0xff, 0xff, 0xff}, want: 400, mention: "Failed to parse"},
	})
}

func TestPhoenixRules(t *testing.T) {
	proto, json, _ := bodies(t)
	runRuleCases(t, PhoenixRules(), []ruleCase{
		{name: "protobuf", contentType: "application/x-protobuf", body: proto, want: 200},
		{name: "JSON", contentType: "application/json", body: json, want: 415, mention: "Unsupported content type"},
		{name: "protobuf with parameters", contentType: "application/x-protobuf; charset=utf-8", body: proto, want: 415},
		{name: "no content type", body: proto, want: 415},
		{name: "brotli", contentType: "application/x-protobuf", headers: map[string]string{"Content-Encoding": "br"}, body: proto, want: 415, mention: "content encoding"},
		{name: "garbage", contentType: "application/x-protobuf", body: []byte{0xff, 0xff, 0xff}, want: 422},
	})
}
