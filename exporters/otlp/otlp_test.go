package otlp

import (
	"context"
	"encoding/pem"
	"errors"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/kern-agents/trace-gateway/exporters/internal/fixture"
	"github.com/kern-agents/trace-gateway/exporters/internal/otlptest"
	"github.com/kern-agents/trace-gateway/plugins"
)

func TestExportHTTPProtobuf(t *testing.T) {
	srv := otlptest.NewHTTP(t)
	exp := otlptest.Configure(t, New(), map[string]any{
		"endpoint": srv.URL, // no path: /v1/traces is added
		"headers":  map[string]any{"x-tenant": "acme"},
	})
	r := otlptest.ExportOnce(t, exp, fixture.AgentRun(), srv.Requests)
	otlptest.ExpectPost(t, r, "/v1/traces", map[string]string{
		"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip", "x-tenant": "acme",
	})
	if !strings.HasPrefix(r.Header.Get("User-Agent"), "kern-trace-gateway") {
		t.Fatalf("User-Agent = %q", r.Header.Get("User-Agent"))
	}
	// The generic adapter sends spans exactly as stored.
	if !otlptest.Same(r.Traces, fixture.AgentRun()) {
		t.Fatal("received spans differ from the stored ones")
	}
}

func TestExportHTTPJSONWithoutCompression(t *testing.T) {
	srv := otlptest.NewHTTP(t)
	exp := otlptest.Configure(t, New(), map[string]any{
		"endpoint": srv.URL + "/custom/traces", "protocol": "http/json", "compression": "none",
	})
	r := otlptest.ExportOnce(t, exp, fixture.AgentRun(), srv.Requests)
	if r.Path != "/custom/traces" || r.ContentType != "application/json" || r.ContentEncoding != "" {
		t.Fatalf("got path %q, Content-Type %q, Content-Encoding %q", r.Path, r.ContentType, r.ContentEncoding)
	}
	if !otlptest.Same(r.Traces, fixture.AgentRun()) {
		t.Fatal("received spans differ from the stored ones")
	}
}

func TestExportGRPC(t *testing.T) {
	srv := otlptest.NewGRPC(t)
	exp := otlptest.Configure(t, New(), map[string]any{
		"endpoint": srv.Addr, "protocol": "grpc", "tls": map[string]any{"insecure": true},
		"headers": map[string]any{"x-tenant": "acme"},
	})
	r := otlptest.ExportOnce(t, exp, fixture.AgentRun(), srv.Requests)
	otlptest.ExpectMetadata(t, r.Metadata, map[string]string{"x-tenant": "acme"})
	if r.Compression != "gzip" {
		t.Fatalf("compression = %q, want gzip", r.Compression)
	}
	if !otlptest.Same(r.Traces, fixture.AgentRun()) {
		t.Fatal("received spans differ from the stored ones")
	}
}

// TestExportEncoded checks that the otlp exporter takes batches as the host
// encodes them (Serve then skips the decode into pdata) and delivers them
// unchanged over every protocol.
func TestExportEncoded(t *testing.T) {
	request, err := (&ptrace.ProtoMarshaler{}).MarshalTraces(fixture.AgentRun())
	if err != nil {
		t.Fatal(err)
	}
	for _, protocol := range []string{ProtocolHTTPProtobuf, ProtocolHTTPJSON, ProtocolGRPC} {
		t.Run(protocol, func(t *testing.T) {
			var config map[string]any
			var received func() []ptrace.Traces
			if protocol == ProtocolGRPC {
				srv := otlptest.NewGRPC(t)
				config = map[string]any{"endpoint": srv.Addr, "protocol": protocol, "tls": map[string]any{"insecure": true}}
				received = func() (out []ptrace.Traces) {
					for _, r := range srv.Requests() {
						out = append(out, r.Traces)
					}
					return out
				}
			} else {
				srv := otlptest.NewHTTP(t)
				config = map[string]any{"endpoint": srv.URL, "protocol": protocol}
				received = func() (out []ptrace.Traces) {
					for _, r := range srv.Requests() {
						out = append(out, r.Traces)
					}
					return out
				}
			}
			exp, ok := otlptest.Configure(t, New(), config).(plugins.EncodedExporter)
			if !ok {
				t.Fatal("the otlp exporter does not take encoded batches")
			}
			if err := exp.ExportEncoded(context.Background(), request); err != nil {
				t.Fatalf("ExportEncoded: %v", err)
			}
			got := received()
			if len(got) != 1 || !otlptest.Same(got[0], fixture.AgentRun()) {
				t.Fatalf("want the stored spans in one request, got %d requests", len(got))
			}
		})
	}
}

func TestExportHTTPSWithCAFile(t *testing.T) {
	srv := otlptest.NewHTTP(t)
	tlsSrv := httptest.NewTLSServer(srv.Handler())
	t.Cleanup(tlsSrv.Close)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: tlsSrv.Certificate().Raw})
	if err := os.WriteFile(caFile, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}

	exp := otlptest.Configure(t, New(), map[string]any{"endpoint": tlsSrv.URL + "/v1/traces", "tls": map[string]any{"ca_file": caFile}})
	if err := exp.Export(context.Background(), fixture.Many(2)); err != nil {
		t.Fatalf("export with the server's CA: %v", err)
	}

	// Without the CA the certificate is not trusted.
	untrusting := otlptest.Configure(t, New(), map[string]any{"endpoint": tlsSrv.URL + "/v1/traces"})
	err := untrusting.Export(context.Background(), fixture.Many(2))
	otlptest.ExpectRetryable(t, err, 0)
	otlptest.ExpectMessage(t, err, "certificate")
}

func TestHTTPErrors(t *testing.T) {
	otlptest.RunHTTPErrorSuite(t, New, func(base string) map[string]any {
		return map[string]any{"endpoint": base + "/v1/traces", "timeout": "5s"}
	})
}

func TestHTTPJSONErrors(t *testing.T) {
	otlptest.RunHTTPErrorSuite(t, New, func(base string) map[string]any {
		return map[string]any{"endpoint": base + "/v1/traces", "protocol": "http/json"}
	})
}

func TestGRPCErrors(t *testing.T) {
	otlptest.RunGRPCErrorSuite(t, New, func(addr string) map[string]any {
		return map[string]any{"endpoint": "http://" + addr, "protocol": "grpc", "timeout": "5s"}
	})
}

func TestConfigValidation(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "bad.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Fields lists every field error expected, in order.
	otlptest.RunConfigCases(t, Parse, []otlptest.ConfigCase{
		{Name: "missing endpoint", Raw: map[string]any{}, Fields: []string{"endpoint"}},
		{Name: "empty endpoint from unset env", Raw: map[string]any{"endpoint": ""}, Fields: []string{"endpoint"}},
		{Name: "http endpoint not a URL", Raw: map[string]any{"endpoint": "collector:4318"}, Fields: []string{"endpoint"}},
		{Name: "ftp scheme", Raw: map[string]any{"endpoint": "ftp://x/v1/traces"}, Fields: []string{"endpoint"}},
		{Name: "unknown protocol", Raw: map[string]any{"endpoint": "http://x", "protocol": "thrift"}, Fields: []string{"protocol"}},
		{Name: "grpc endpoint without port", Raw: map[string]any{"endpoint": "collector", "protocol": "grpc"}, Fields: []string{"endpoint"}},
		{Name: "grpc endpoint with path", Raw: map[string]any{"endpoint": "https://c:4317/v1", "protocol": "grpc"}, Fields: []string{"endpoint"}},
		{Name: "bad duration", Raw: map[string]any{"endpoint": "http://x", "timeout": "soon"}, Fields: []string{"timeout"}},
		{Name: "number duration", Raw: map[string]any{"endpoint": "http://x", "timeout": 10}, Fields: []string{"timeout"}},
		{Name: "bad compression", Raw: map[string]any{"endpoint": "http://x", "compression": "zstd"}, Fields: []string{"compression"}},
		{Name: "headers not a map", Raw: map[string]any{"endpoint": "http://x", "headers": "a=b"}, Fields: []string{"headers"}},
		{Name: "header value a map", Raw: map[string]any{"endpoint": "http://x", "headers": map[string]any{"a": map[string]any{}}}, Fields: []string{"headers.a"}},
		{Name: "unknown keys everywhere", Raw: map[string]any{"endpoint": "http://x", "endpont": "y", "tls": map[string]any{"ca": "z"}}, Fields: []string{"tls.ca", "endpont"}},
		{Name: "insecure for http", Raw: map[string]any{"endpoint": "http://x", "tls": map[string]any{"insecure": true}}, Fields: []string{"tls.insecure"}},
		{Name: "tls for plain http", Raw: map[string]any{"endpoint": "http://x", "tls": map[string]any{"insecure_skip_verify": true}}, Fields: []string{"tls"}},
		{Name: "cert without key", Raw: map[string]any{"endpoint": "https://x", "tls": map[string]any{"cert_file": notPEM}}, Fields: []string{"tls"}},
		{Name: "missing ca file", Raw: map[string]any{"endpoint": "https://x", "tls": map[string]any{"ca_file": filepath.Join(dir, "nope.pem")}}, Fields: []string{"tls"}},
		{Name: "ca file not PEM", Raw: map[string]any{"endpoint": "https://x", "tls": map[string]any{"ca_file": notPEM}}, Fields: []string{"tls"}},
		{Name: "several at once", Raw: map[string]any{"protocol": "udp", "timeout": "-1s", "compression": 1}, Fields: []string{"timeout", "compression", "endpoint", "protocol"}},
		{Name: "valid http", Raw: map[string]any{"endpoint": "https://collector.example.com:4318/v1/traces"}},
		{Name: "valid grpc", Raw: map[string]any{"endpoint": "collector:4317", "protocol": "grpc", "compression": "none", "timeout": "3s"}},
	})
}

func TestConfigureRejectsInvalidConfig(t *testing.T) {
	err := New().Configure(context.Background(), map[string]any{"protocol": "grpc"})
	var ce *plugins.ConfigError
	if !errors.As(err, &ce) {
		t.Fatalf("want *plugins.ConfigError, got %v", err)
	}
}

func TestExportBeforeConfigureIsRetryable(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	otlptest.ExpectRetryable(t, New().Export(ctx, fixture.Many(1)), 0)
}
