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

	"github.com/kern-agents/trace-gateway/exporters/internal/fixture"
	"github.com/kern-agents/trace-gateway/exporters/internal/otlptest"
	"github.com/kern-agents/trace-gateway/plugins"
)

func configure(t testing.TB, raw map[string]any) plugins.Exporter {
	t.Helper()
	exp := New()
	if err := exp.Configure(context.Background(), raw); err != nil {
		t.Fatalf("configure: %v", err)
	}
	t.Cleanup(func() { _ = exp.Shutdown(context.Background()) })
	return exp
}

func TestExportHTTPProtobuf(t *testing.T) {
	srv := otlptest.NewHTTP(t)
	exp := configure(t, map[string]any{
		"endpoint": srv.URL, // no path: /v1/traces is added
		"headers":  map[string]any{"x-tenant": "acme"},
	})
	td := fixture.AgentRun()
	if err := exp.Export(context.Background(), td); err != nil {
		t.Fatalf("export: %v", err)
	}
	reqs := srv.Requests()
	if len(reqs) != 1 {
		t.Fatalf("want 1 request, got %d", len(reqs))
	}
	r := reqs[0]
	if r.Method != "POST" || r.Path != "/v1/traces" {
		t.Fatalf("got %s %s, want POST /v1/traces", r.Method, r.Path)
	}
	if r.ContentType != "application/x-protobuf" || r.ContentEncoding != "gzip" {
		t.Fatalf("got Content-Type %q, Content-Encoding %q", r.ContentType, r.ContentEncoding)
	}
	if got := r.Header.Get("x-tenant"); got != "acme" {
		t.Fatalf("x-tenant header = %q", got)
	}
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
	exp := configure(t, map[string]any{
		"endpoint": srv.URL + "/custom/traces", "protocol": "http/json", "compression": "none",
	})
	if err := exp.Export(context.Background(), fixture.AgentRun()); err != nil {
		t.Fatalf("export: %v", err)
	}
	r := srv.Requests()[0]
	if r.Path != "/custom/traces" || r.ContentType != "application/json" || r.ContentEncoding != "" {
		t.Fatalf("got path %q, Content-Type %q, Content-Encoding %q", r.Path, r.ContentType, r.ContentEncoding)
	}
	if !otlptest.Same(r.Traces, fixture.AgentRun()) {
		t.Fatal("received spans differ from the stored ones")
	}
}

func TestExportGRPC(t *testing.T) {
	srv := otlptest.NewGRPC(t)
	exp := configure(t, map[string]any{
		"endpoint": srv.Addr, "protocol": "grpc", "tls": map[string]any{"insecure": true},
		"headers": map[string]any{"x-tenant": "acme"},
	})
	if err := exp.Export(context.Background(), fixture.AgentRun()); err != nil {
		t.Fatalf("export: %v", err)
	}
	reqs := srv.Requests()
	if len(reqs) != 1 {
		t.Fatalf("want 1 call, got %d", len(reqs))
	}
	if got := reqs[0].Metadata.Get("x-tenant"); len(got) != 1 || got[0] != "acme" {
		t.Fatalf("x-tenant metadata = %v", got)
	}
	if reqs[0].Compression != "gzip" {
		t.Fatalf("compression = %q, want gzip", reqs[0].Compression)
	}
	if !otlptest.Same(reqs[0].Traces, fixture.AgentRun()) {
		t.Fatal("received spans differ from the stored ones")
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

	exp := configure(t, map[string]any{"endpoint": tlsSrv.URL + "/v1/traces", "tls": map[string]any{"ca_file": caFile}})
	if err := exp.Export(context.Background(), fixture.Many(2)); err != nil {
		t.Fatalf("export with the server's CA: %v", err)
	}

	// Without the CA the certificate is not trusted.
	untrusting := configure(t, map[string]any{"endpoint": tlsSrv.URL + "/v1/traces"})
	err := untrusting.Export(context.Background(), fixture.Many(2))
	otlptest.ExpectRetryable(t, err, 0)
	otlptest.ExpectMessage(t, err, "certificate")
}

func TestHTTPErrors(t *testing.T) {
	otlptest.RunHTTPErrorSuite(t, func(t testing.TB, base string) plugins.Exporter {
		return configure(t, map[string]any{"endpoint": base + "/v1/traces", "timeout": "5s"})
	})
}

func TestHTTPJSONErrors(t *testing.T) {
	otlptest.RunHTTPErrorSuite(t, func(t testing.TB, base string) plugins.Exporter {
		return configure(t, map[string]any{"endpoint": base + "/v1/traces", "protocol": "http/json"})
	})
}

func TestGRPCErrors(t *testing.T) {
	otlptest.RunGRPCErrorSuite(t, func(t testing.TB, addr string) plugins.Exporter {
		return configure(t, map[string]any{"endpoint": "http://" + addr, "protocol": "grpc", "timeout": "5s"})
	})
}

func TestConfigValidation(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "bad.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		raw    map[string]any
		fields []string // every field error expected, in order
	}{
		{"missing endpoint", map[string]any{}, []string{"endpoint"}},
		{"empty endpoint from unset env", map[string]any{"endpoint": ""}, []string{"endpoint"}},
		{"http endpoint not a URL", map[string]any{"endpoint": "collector:4318"}, []string{"endpoint"}},
		{"ftp scheme", map[string]any{"endpoint": "ftp://x/v1/traces"}, []string{"endpoint"}},
		{"unknown protocol", map[string]any{"endpoint": "http://x", "protocol": "thrift"}, []string{"protocol"}},
		{"grpc endpoint without port", map[string]any{"endpoint": "collector", "protocol": "grpc"}, []string{"endpoint"}},
		{"grpc endpoint with path", map[string]any{"endpoint": "https://c:4317/v1", "protocol": "grpc"}, []string{"endpoint"}},
		{"bad duration", map[string]any{"endpoint": "http://x", "timeout": "soon"}, []string{"timeout"}},
		{"number duration", map[string]any{"endpoint": "http://x", "timeout": 10}, []string{"timeout"}},
		{"bad compression", map[string]any{"endpoint": "http://x", "compression": "zstd"}, []string{"compression"}},
		{"headers not a map", map[string]any{"endpoint": "http://x", "headers": "a=b"}, []string{"headers"}},
		{"header value a map", map[string]any{"endpoint": "http://x", "headers": map[string]any{"a": map[string]any{}}}, []string{"headers.a"}},
		{"unknown keys everywhere", map[string]any{"endpoint": "http://x", "endpont": "y", "tls": map[string]any{"ca": "z"}}, []string{"tls.ca", "endpont"}},
		{"insecure for http", map[string]any{"endpoint": "http://x", "tls": map[string]any{"insecure": true}}, []string{"tls.insecure"}},
		{"tls for plain http", map[string]any{"endpoint": "http://x", "tls": map[string]any{"insecure_skip_verify": true}}, []string{"tls"}},
		{"cert without key", map[string]any{"endpoint": "https://x", "tls": map[string]any{"cert_file": notPEM}}, []string{"tls"}},
		{"missing ca file", map[string]any{"endpoint": "https://x", "tls": map[string]any{"ca_file": filepath.Join(dir, "nope.pem")}}, []string{"tls"}},
		{"ca file not PEM", map[string]any{"endpoint": "https://x", "tls": map[string]any{"ca_file": notPEM}}, []string{"tls"}},
		{"several at once", map[string]any{"protocol": "udp", "timeout": "-1s", "compression": 1}, []string{"timeout", "compression", "endpoint", "protocol"}},
		{"valid http", map[string]any{"endpoint": "https://collector.example.com:4318/v1/traces"}, nil},
		{"valid grpc", map[string]any{"endpoint": "collector:4317", "protocol": "grpc", "compression": "none", "timeout": "3s"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(tt.raw)
			if tt.fields == nil {
				if err != nil {
					t.Fatalf("want valid, got %v", err)
				}
				return
			}
			var ce *plugins.ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("want *plugins.ConfigError, got %v", err)
			}
			var got []string
			for _, f := range ce.Fields {
				got = append(got, f.Field)
			}
			if strings.Join(got, ",") != strings.Join(tt.fields, ",") {
				t.Fatalf("fields = %v, want %v (%v)", got, tt.fields, err)
			}
		})
	}
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
