package e2etest

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"testing"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/kern-agents/trace-gateway/exporters/internal/facts"
	"github.com/kern-agents/trace-gateway/exporters/internal/otlptest"
	"github.com/kern-agents/trace-gateway/internal/semantics"
)

// delivery is one request a fake vendor received, over HTTP or gRPC.
type delivery struct {
	Method, Path string // HTTP only
	ContentType  string // HTTP only
	Encoding     string // Content-Encoding, or the gRPC compressor ("" for none)
	header       func(key string) []string
	Traces       ptrace.Traces
	DecodeErr    error
	Refused      int // HTTP only: the status a vendor rule refused the request with
}

const protobuf = "application/x-protobuf"

// httpFake starts a fake OTLP/HTTP vendor endpoint, as strict as the
// vendor's (rules), and returns it with a reader of what it received.
func httpFake(t *testing.T, rules ...otlptest.Rule) (*otlptest.HTTPServer, func() []delivery) {
	srv := otlptest.NewHTTP(t, rules...)
	return srv, func() []delivery {
		var out []delivery
		for _, r := range srv.Requests() {
			out = append(out, delivery{
				Method: r.Method, Path: r.Path, ContentType: r.ContentType, Encoding: r.ContentEncoding,
				header: r.Header.Values, Traces: r.Traces, DecodeErr: r.DecodeErr, Refused: r.Refused,
			})
		}
		return out
	}
}

// grpcFake is httpFake for an OTLP/gRPC endpoint (plaintext).
func grpcFake(t *testing.T) (*otlptest.GRPCServer, func() []delivery) {
	srv := otlptest.NewGRPC(t)
	return srv, func() []delivery {
		var out []delivery
		for _, r := range srv.Requests() {
			out = append(out, delivery{Encoding: r.Compression, header: r.Metadata.Get, Traces: r.Traces})
		}
		return out
	}
}

// secrets are credentials handed to the gateway through the environment,
// referenced as ${NAME} in its config.
type secrets struct{ env []string }

// add makes a random secret for the environment variable name and returns
// the config reference to it and its value.
func (s *secrets) add(name string) (ref, value string) {
	var b [12]byte
	_, _ = rand.Read(b[:])
	value = strings.ToLower(name) + "-" + hex.EncodeToString(b[:])
	s.env = append(s.env, name+"="+value)
	return "${" + name + "}", value
}

// vendor is one destination of the test and the fake it sends to, with
// what the fake must see.
type vendor struct {
	name, plugin string
	config       map[string]any // the plugin's config block; secrets as ${ENV}
	received     func() []delivery

	path        string            // HTTP path of every request ("" for gRPC)
	contentType string            // "" for gRPC
	encoding    string            // "gzip", or "" when uncompressed
	headers     map[string]string // auth and routing headers (gRPC metadata), secrets expanded; "": must be absent
	resource    map[string]string // resource attributes on every batch
	// expect returns the attributes the vendor's copy of a stored span
	// must carry: key → text (see facts.Text), or otlptest.Absent.
	expect func(s storedSpan) map[string]string
}

// Projects the routing checks look for.
const (
	arizeProject   = "kern-e2e-ax"
	phoenixProject = "kern-e2e-phoenix"
	experimentID   = 17
)

// newVendors starts a fake for every built-in adapter (two transports of
// the generic otlp one, three with OTLP/JSON) and describes what each must
// receive. Every fake is plain HTTP or plaintext gRPC on 127.0.0.1: each
// adapter takes an http:// base URL (and Arize's gRPC endpoint an http://
// URL for plaintext), so no TLS is needed.
func newVendors(t *testing.T, sec *secrets) []*vendor {
	t.Helper()
	var vs []*vendor
	agentOS := map[string]string{"service.name": "agentos"}

	lf, got := httpFake(t, otlptest.LangfuseRules()...)
	pkRef, pk := sec.add("E2E_LANGFUSE_PUBLIC_KEY")
	skRef, sk := sec.add("E2E_LANGFUSE_SECRET_KEY")
	vs = append(vs, &vendor{
		name: "langfuse", plugin: "langfuse", received: got,
		config: map[string]any{"host": lf.URL, "public_key": pkRef, "secret_key": skRef},
		path:   "/api/public/otel/v1/traces", contentType: protobuf, encoding: "gzip",
		headers: map[string]string{
			"Authorization":                "Basic " + base64.StdEncoding.EncodeToString([]byte(pk+":"+sk)),
			"X-Langfuse-Ingestion-Version": "4",
			"X-Langfuse-Sdk-Name":          "", // it would mark the spans as Langfuse SDK traffic
		},
		resource: agentOS, expect: expectLangfuse,
	})

	ls, got := httpFake(t)
	lsRef, lsKey := sec.add("E2E_LANGSMITH_API_KEY")
	vs = append(vs, &vendor{
		name: "langsmith", plugin: "langsmith", received: got,
		config: map[string]any{"endpoint": ls.URL, "api_key": lsRef, "project": "kern-e2e"},
		path:   "/otel/v1/traces", contentType: protobuf, encoding: "gzip",
		headers:  map[string]string{"X-Api-Key": lsKey, "Langsmith-Project": "kern-e2e"},
		resource: agentOS, expect: expectLangSmith,
	})

	ax, got := grpcFake(t)
	spaceRef, space := sec.add("E2E_ARIZE_SPACE_ID")
	axRef, axKey := sec.add("E2E_ARIZE_API_KEY")
	vs = append(vs, &vendor{
		name: "arize", plugin: "arize", received: got,
		// http:// makes the gRPC connection plaintext; Arize AX itself is TLS.
		config:   map[string]any{"endpoint": "http://" + ax.Addr, "space_id": spaceRef, "api_key": axRef, "project": arizeProject},
		encoding: "gzip",
		headers: map[string]string{
			"authorization": axKey, "api_key": axKey, "arize-api-key": axKey,
			"arize-space-id": space, "space_id": space, "arize-interface": "otel",
		},
		resource: map[string]string{"service.name": "agentos", "openinference.project.name": arizeProject},
		expect:   expectOpenInference,
	})

	px, got := httpFake(t, otlptest.PhoenixRules()...)
	pxRef, pxKey := sec.add("E2E_PHOENIX_API_KEY")
	vs = append(vs, &vendor{
		name: "phoenix", plugin: "phoenix", received: got,
		config: map[string]any{"endpoint": px.URL, "api_key": pxRef, "project": phoenixProject},
		path:   "/v1/traces", contentType: protobuf, encoding: "gzip",
		headers:  map[string]string{"Authorization": "Bearer " + pxKey},
		resource: map[string]string{"service.name": "agentos", "openinference.project.name": phoenixProject},
		expect:   expectOpenInference,
	})

	lg, got := httpFake(t)
	lgRef, lgToken := sec.add("E2E_LOGFIRE_TOKEN")
	vs = append(vs, &vendor{
		name: "logfire", plugin: "logfire", received: got,
		config: map[string]any{"endpoint": lg.URL, "token": lgRef},
		path:   "/v1/traces", contentType: protobuf, encoding: "gzip",
		headers:  map[string]string{"Authorization": lgToken},
		resource: agentOS, expect: expectLogfire,
	})

	ml, got := httpFake(t, otlptest.MLflowRules()...)
	mlRef, mlToken := sec.add("E2E_MLFLOW_TOKEN")
	vs = append(vs, &vendor{
		name: "mlflow", plugin: "mlflow", received: got,
		// An unquoted experiment id, as people write it.
		config: map[string]any{"tracking_uri": ml.URL, "experiment_id": experimentID, "token": mlRef},
		// MLflow's default is no compression: 3.6 cannot inflate.
		path: "/v1/traces", contentType: protobuf, encoding: "",
		headers:  map[string]string{"X-Mlflow-Experiment-Id": fmt.Sprint(experimentID), "Authorization": "Bearer " + mlToken},
		resource: agentOS, expect: expectMLflow,
	})

	oh, got := httpFake(t)
	ohRef, ohToken := sec.add("E2E_OTLP_HTTP_TOKEN")
	vs = append(vs, &vendor{
		name: "otlp-http", plugin: "otlp", received: got,
		config: map[string]any{
			"endpoint": oh.URL, "protocol": "http/protobuf",
			"headers": map[string]any{"Authorization": "Bearer " + ohRef},
		},
		path: "/v1/traces", contentType: protobuf, encoding: "gzip",
		headers:  map[string]string{"Authorization": "Bearer " + ohToken},
		resource: agentOS, expect: expectAsStored,
	})

	oj, got := httpFake(t)
	ojRef, ojKey := sec.add("E2E_OTLP_JSON_KEY")
	vs = append(vs, &vendor{
		name: "otlp-json", plugin: "otlp", received: got,
		config: map[string]any{
			// A full traces URL is used as given.
			"endpoint": oj.URL + "/ingest/otlp/v1/traces", "protocol": "http/json", "compression": "none",
			"headers": map[string]any{"X-Api-Key": ojRef},
		},
		path: "/ingest/otlp/v1/traces", contentType: "application/json", encoding: "",
		headers:  map[string]string{"X-Api-Key": ojKey},
		resource: agentOS, expect: expectAsStored,
	})

	og, got := grpcFake(t)
	ogRef, ogToken := sec.add("E2E_OTLP_GRPC_TOKEN")
	vs = append(vs, &vendor{
		name: "otlp-grpc", plugin: "otlp", received: got,
		config: map[string]any{
			"endpoint": og.Addr, "protocol": "grpc", "tls": map[string]any{"insecure": true},
			"headers": map[string]any{"Authorization": "Bearer " + ogRef},
		},
		encoding: "gzip",
		headers:  map[string]string{"authorization": "Bearer " + ogToken},
		resource: agentOS, expect: expectAsStored,
	})
	return vs
}

// Each vendor's span kind for each gateway span type, from the vendor's
// documentation (see docs/exporters).
var (
	langfuseTypes = map[string]string{
		semantics.TypeRun: "agent", semantics.TypeLLM: "generation", semantics.TypeEmbedding: "embedding",
		semantics.TypeTool: "tool", semantics.TypeRetrieval: "retriever", semantics.TypePreHook: "guardrail",
		semantics.TypePostHook: "guardrail", semantics.TypeDelegation: "chain",
	}
	langsmithKinds = map[string]string{
		semantics.TypeRun: "chain", semantics.TypeLLM: "llm", semantics.TypeEmbedding: "embedding",
		semantics.TypeTool: "tool", semantics.TypeRetrieval: "retriever", semantics.TypePreHook: "chain",
		semantics.TypePostHook: "chain", semantics.TypeDelegation: "chain",
	}
	openInferenceKinds = map[string]string{
		semantics.TypeRun: "AGENT", semantics.TypeLLM: "LLM", semantics.TypeEmbedding: "EMBEDDING",
		semantics.TypeTool: "TOOL", semantics.TypeRetrieval: "RETRIEVER", semantics.TypePreHook: "GUARDRAIL",
		semantics.TypePostHook: "GUARDRAIL", semantics.TypeDelegation: "CHAIN", semantics.TypeOther: "UNKNOWN",
	}
	mlflowTypes = map[string]string{
		semantics.TypeRun: "AGENT", semantics.TypeLLM: "LLM", semantics.TypeEmbedding: "EMBEDDING",
		semantics.TypeTool: "TOOL", semantics.TypeRetrieval: "RETRIEVER", semantics.TypePreHook: "CHAIN",
		semantics.TypePostHook: "CHAIN", semantics.TypeDelegation: "CHAIN",
	}
	genAIOperations = map[string]string{
		semantics.TypeRun: "invoke_agent", semantics.TypeLLM: "chat", semantics.TypeEmbedding: "embeddings",
		semantics.TypeTool: "execute_tool",
	}
)

// orAbsent is the expectation for a derived value: absent when empty.
func orAbsent(v string) string {
	if v == "" {
		return otlptest.Absent
	}
	return v
}

// senderOr is what a vendor key must hold: the sender's own value when it
// set the key (the adapters never overwrite one), else the derived value.
func senderOr(s storedSpan, key, derived string) string {
	if s.Has(key) {
		return s.Str(key)
	}
	return orAbsent(derived)
}

func expectLangfuse(s storedSpan) map[string]string {
	m := map[string]string{
		"langfuse.observation.type":  langfuseTypes[s.Type()],
		"langfuse.observation.level": otlptest.Absent,
	}
	if s.Type() == semantics.TypeLLM {
		m["langfuse.observation.model.name"] = s.Model()
	}
	if s.Failed() {
		m["langfuse.observation.level"] = "ERROR"
		m["langfuse.observation.status_message"] = s.ErrorMessage()
	}
	return m
}

func expectLangSmith(s storedSpan) map[string]string {
	m := map[string]string{"langsmith.span.kind": langsmithKinds[s.Type()]}
	switch s.Type() {
	case semantics.TypeLLM:
		m["gen_ai.request.model"] = senderOr(s, "gen_ai.request.model", s.Model())
		m["gen_ai.operation.name"] = senderOr(s, "gen_ai.operation.name", "chat")
		// The text stored for AgentOS does not compete with the prompt
		// and completion LangSmith reads.
		for _, k := range []string{"input.value", "output.value"} {
			if s.derived(k) {
				m[k] = otlptest.Absent
			}
		}
	case semantics.TypeEmbedding:
		// LangSmith's mapping names the operation "embedding".
		m["gen_ai.operation.name"] = senderOr(s, "gen_ai.operation.name", "embedding")
	case semantics.TypeTool:
		m["gen_ai.tool.name"] = senderOr(s, "gen_ai.tool.name", s.ToolName())
	}
	return m
}

// expectOpenInference is Arize AX's and Phoenix's expectation.
func expectOpenInference(s storedSpan) map[string]string {
	m := map[string]string{"openinference.span.kind": senderOr(s, "openinference.span.kind", openInferenceKinds[s.Type()])}
	switch s.Type() {
	case semantics.TypeLLM:
		m["llm.model_name"] = senderOr(s, "llm.model_name", s.Model())
		// The whole messages, not the text stored for AgentOS.
		if in := s.fact(semantics.KeyInput); in != "" && s.derived("input.value") {
			m["input.value"] = in
		}
	case semantics.TypeTool:
		m["tool.name"] = senderOr(s, "tool.name", s.ToolName())
	}
	return m
}

func expectLogfire(s storedSpan) map[string]string {
	m := map[string]string{
		"gen_ai.operation.name": senderOr(s, "gen_ai.operation.name", genAIOperations[s.Type()]),
		"logfire.span_type":     "span",
		"logfire.level_num":     otlptest.Absent,
	}
	switch s.Type() {
	case semantics.TypeLLM:
		m["gen_ai.request.model"] = senderOr(s, "gen_ai.request.model", s.Model())
		m["logfire.msg"] = "chat " + s.Model()
	case semantics.TypeTool:
		msg := "execute_tool " + s.ToolName()
		if s.Failed() {
			msg += " failed: " + s.ErrorMessage()
		}
		m["logfire.msg"] = msg
	}
	if s.Failed() {
		m["logfire.level_num"] = "17" // Logfire's "error"
		m["error.type"] = senderOr(s, "error.type", s.ExcType())
	}
	return m
}

func expectMLflow(s storedSpan) map[string]string {
	// MLflow stores attributes JSON-encoded: strings arrive quoted.
	q := func(v string) string { b, _ := json.Marshal(v); return string(b) }
	m := map[string]string{"mlflow.spanType": q(mlflowTypes[s.Type()])}
	if s.Type() == semantics.TypeLLM {
		m["mlflow.llm.model"] = q(s.Model())
	}
	return m
}

// expectAsStored is the generic OTLP adapter's: spans go as stored (the
// sender's keys and the OpenInference keys the gateway adds), with no vendor
// mapping.
func expectAsStored(s storedSpan) map[string]string {
	m := map[string]string{
		"langfuse.observation.type": otlptest.Absent,
		"langsmith.span.kind":       otlptest.Absent,
		"mlflow.spanType":           otlptest.Absent,
		"logfire.msg":               otlptest.Absent,
	}
	for k, v := range s.Attrs {
		if str, ok := v.(string); ok && !strings.HasPrefix(k, "kern.") {
			m[k] = str
		}
	}
	return m
}

// spans returns every span the vendor received by id, and how many copies
// arrived beyond the first of each (at-least-once delivery allows some).
// The fakes here answer every decodable request that passes the vendor's
// rules with success, so every span counted was accepted.
func (v *vendor) spans() (map[string]ptrace.Span, int) {
	out := map[string]ptrace.Span{}
	dups := 0
	for _, d := range v.received() {
		if d.DecodeErr != nil || d.Refused != 0 {
			continue
		}
		facts.Each(d.Traces, func(_ pcommon.Resource, span ptrace.Span) {
			id := span.SpanID().String()
			if _, seen := out[id]; seen {
				dups++
			}
			out[id] = span
		})
	}
	return out, dups
}

// missing counts the stored spans the vendor has not received yet.
func (v *vendor) missing(stored map[string]storedSpan) int {
	got, _ := v.spans()
	n := 0
	for id := range stored {
		if _, ok := got[id]; !ok {
			n++
		}
	}
	return n
}

// findings collects one vendor's problems and reports the first few, so a
// systematic fault does not bury the log under one line per span.
type findings struct {
	list []string
}

func (f *findings) add(format string, args ...any) {
	f.list = append(f.list, fmt.Sprintf(format, args...))
}

func (f *findings) report(t *testing.T, what string) {
	t.Helper()
	const show = 12
	for i, p := range f.list {
		if i == show {
			t.Errorf("%s: ... and %d more problems", what, len(f.list)-show)
			break
		}
		t.Errorf("%s: %s", what, p)
	}
}

// checkTransport checks every request: method, path, encoding, headers and
// resource attributes. Each of the rounds was delivered separately, so at
// least that many requests arrived.
func (v *vendor) checkTransport(t *testing.T, rounds int) {
	t.Helper()
	var f findings
	reqs := v.received()
	if len(reqs) < rounds {
		t.Errorf("%d requests arrived for %d rounds delivered one after the other", len(reqs), rounds)
	}
	for i, d := range reqs {
		if d.DecodeErr != nil {
			f.add("request %d: body does not decode as OTLP: %v", i, d.DecodeErr)
		}
		if d.Refused != 0 {
			f.add("request %d: the vendor would refuse it (HTTP %d)", i, d.Refused)
		}
		if v.path != "" && (d.Method != http.MethodPost || d.Path != v.path) {
			f.add("request %d: %s %s, want POST %s", i, d.Method, d.Path, v.path)
		}
		if d.ContentType != v.contentType {
			f.add("request %d: content type %q, want %q", i, d.ContentType, v.contentType)
		}
		if d.Encoding != v.encoding {
			f.add("request %d: compression %q, want %q", i, d.Encoding, v.encoding)
		}
		keys := make([]string, 0, len(v.headers))
		for k := range v.headers {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			got, want := d.header(k), v.headers[k]
			switch {
			case want == "" && len(got) != 0:
				f.add("request %d: header %s = %q, want it absent", i, k, got)
			case want != "" && (len(got) != 1 || got[0] != want):
				f.add("request %d: header %s = %q, want %q (secrets come from ${ENV} in the config)", i, k, got, want)
			}
		}
		for _, rs := range d.Traces.ResourceSpans().All() {
			for k, want := range v.resource {
				if got := facts.Text(rs.Resource().Attributes(), k); got != want {
					f.add("request %d: resource attribute %s = %q, want %q", i, k, got, want)
				}
			}
		}
	}
	f.report(t, fmt.Sprintf("%s transport (%d requests)", v.name, len(reqs)))
}

// checkSpans checks that the vendor received exactly the stored spans, each
// unchanged in identity and status, with the vendor's attributes and the
// failed tools' exceptions.
func (v *vendor) checkSpans(t *testing.T, stored map[string]storedSpan) {
	t.Helper()
	var f findings
	got, _ := v.spans()
	for id := range got {
		if _, ok := stored[id]; !ok {
			f.add("received span %s that is not stored", id)
		}
	}
	ids := make([]string, 0, len(stored))
	for id := range stored {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		s := stored[id]
		span, ok := got[id]
		if !ok {
			f.add("%s was stored but never received", s)
			continue
		}
		if span.Name() != s.Name || span.TraceID().String() != s.TraceID {
			f.add("%s arrived as %q in trace %s, want trace %s", s, span.Name(), span.TraceID(), s.TraceID)
		}
		if st := strings.ToUpper(span.Status().Code().String()); st != s.Status {
			f.add("%s: status %s, stored %s", s, st, s.Status)
		}
		want := v.expect(s)
		keys := make([]string, 0, len(want))
		for k := range want {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			w := want[k]
			_, has := span.Attributes().Get(k)
			text := facts.Text(span.Attributes(), k)
			switch {
			case w == otlptest.Absent && has:
				f.add("%s: %s = %q, want it absent", s, k, text)
			case w != otlptest.Absent && !has:
				f.add("%s: %s missing, want %q", s, k, w)
			case w != otlptest.Absent && text != w:
				f.add("%s: %s = %q, want %q", s, k, text, w)
			}
		}
		if s.Failed() {
			if msg := exceptionProblem(span, s); msg != "" {
				f.add("%s: %s", s, msg)
			}
		}
	}
	f.report(t, v.name)
}

// exceptionProblem says what is wrong with the exception event of a failed
// span's vendor copy ("" when it carries the stored exception).
func exceptionProblem(span ptrace.Span, s storedSpan) string {
	for _, ev := range span.Events().All() {
		if ev.Name() != "exception" {
			continue
		}
		typ, msg := facts.Text(ev.Attributes(), "exception.type"), facts.Text(ev.Attributes(), "exception.message")
		if typ != s.ExcType() || msg != s.ExcMsg() {
			return fmt.Sprintf("exception event %s: %q, want %s: %q", typ, msg, s.ExcType(), s.ExcMsg())
		}
		return ""
	}
	return fmt.Sprintf("failed (%s) but no exception event arrived", s.ErrorMessage())
}
