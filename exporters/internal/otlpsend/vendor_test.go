package otlpsend

import (
	"context"
	"errors"
	"maps"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/kern-agents/trace-gateway/exporters/internal/cfg"
	"github.com/kern-agents/trace-gateway/exporters/internal/fixture"
	"github.com/kern-agents/trace-gateway/plugins"
)

func TestVendor(t *testing.T) {
	type config struct{ tag string }
	parse := func(raw map[string]any) (config, error) {
		if raw["bad"] != nil {
			ce := &plugins.ConfigError{}
			ce.Add("bad", "is bad")
			return config{}, ce
		}
		tag, _ := raw["tag"].(string)
		return config{tag: tag}, nil
	}
	errConnect := errors.New("no route")
	var sender *fakeSender
	connect := func(c config) (Sender, error) {
		if c.tag == "unreachable" {
			return nil, errConnect
		}
		sender = &fakeSender{}
		return sender, nil
	}
	// The mapping sees the parsed config.
	mapping := func(c config) Mapper {
		return func(td ptrace.Traces) ptrace.Traces {
			out := ptrace.NewTraces()
			td.CopyTo(out)
			out.ResourceSpans().At(0).Resource().Attributes().PutStr("tag", c.tag)
			return out
		}
	}
	ctx := context.Background()

	for _, tt := range []struct {
		name    string
		mapping func(config) Mapper
		raw     map[string]any
		wantErr func(error) bool
		wantTag string // "" when the batch must go unmapped
	}{
		{name: "config error passes through", mapping: mapping, raw: map[string]any{"bad": true},
			wantErr: func(err error) bool { var ce *plugins.ConfigError; return errors.As(err, &ce) }},
		{name: "connect error passes through", mapping: mapping, raw: map[string]any{"tag": "unreachable"},
			wantErr: func(err error) bool { return errors.Is(err, errConnect) }},
		{name: "mapping from the config", mapping: mapping, raw: map[string]any{"tag": "a"}, wantTag: "a"},
		{name: "no mapping sends as stored", raw: map[string]any{"tag": "b"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			sender = nil
			exp := Vendor(parse, connect, tt.mapping)
			err := exp.Configure(ctx, tt.raw)
			if tt.wantErr != nil {
				if !tt.wantErr(err) || sender != nil {
					t.Fatalf("configure: %v (sender built: %v)", err, sender != nil)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := exp.Export(ctx, fixture.Many(1)); err != nil {
				t.Fatal(err)
			}
			v, mapped := sender.sent[0].ResourceSpans().At(0).Resource().Attributes().Get("tag")
			if mapped != (tt.wantTag != "") || (mapped && v.Str() != tt.wantTag) {
				t.Fatalf("tag %v (set %v), want %q", v.AsString(), mapped, tt.wantTag)
			}
		})
	}
}

func TestHTTPVendorRefusesABadURL(t *testing.T) {
	exp := HTTPVendor(func(map[string]any) (string, error) { return "not a url", nil },
		func(u string) HTTPOptions { return HTTPOptions{URL: u} }, nil)
	if err := exp.Configure(context.Background(), nil); err == nil {
		t.Fatal("want an error for an invalid traces URL")
	}
}

func TestWithCommon(t *testing.T) {
	common := cfg.Common{Timeout: 3 * time.Second, Compression: "none", Headers: map[string]string{"Authorization": "extra", "X-Tenant": "acme"}}
	own := map[string]string{"Authorization": "own", "authorization": "own-grpc", "x-kept": "1"}

	h := HTTPOptions{URL: "http://x", Headers: maps.Clone(own), MaxRequestBytes: 7}.With(common)
	if h.Timeout != 3*time.Second || h.Compression != "none" || h.URL != "http://x" || h.MaxRequestBytes != 7 {
		t.Fatalf("HTTP options %+v", h)
	}
	// HTTP header names are kept as written: the extra header replaces the
	// one spelled the same.
	wantHTTP := map[string]string{"Authorization": "extra", "authorization": "own-grpc", "x-kept": "1", "X-Tenant": "acme"}
	if !maps.Equal(h.Headers, wantHTTP) {
		t.Fatalf("HTTP headers %v, want %v", h.Headers, wantHTTP)
	}

	g := GRPCOptions{Endpoint: "x:1", Headers: maps.Clone(own)}.With(common)
	if g.Timeout != 3*time.Second || g.Compression != "none" || g.Endpoint != "x:1" {
		t.Fatalf("gRPC options %+v", g)
	}
	// gRPC metadata keys are lower case, so the extra header overrides.
	wantGRPC := map[string]string{"Authorization": "own", "authorization": "extra", "x-kept": "1", "x-tenant": "acme"}
	if !maps.Equal(g.Headers, wantGRPC) {
		t.Fatalf("gRPC headers %v, want %v", g.Headers, wantGRPC)
	}
	if own["Authorization"] != "own" || len(own) != 3 {
		t.Fatalf("the vendor's own headers were modified: %v", own)
	}
}

func TestTracesURL(t *testing.T) {
	for _, tt := range []struct{ base, prefix, want string }{
		{"http://localhost:6006", "", "http://localhost:6006/v1/traces"},
		{"http://localhost:6006/", "", "http://localhost:6006/v1/traces"},
		{"https://app.phoenix.arize.com/s/me", "", "https://app.phoenix.arize.com/s/me/v1/traces"},
		{"https://x/v1/traces", "", "https://x/v1/traces"},
		{"https://x", "/otel", "https://x/otel/v1/traces"},
		{"https://x/otel", "/otel", "https://x/otel/v1/traces"},
		{"https://x/otel/v1/traces", "/otel", "https://x/otel/v1/traces"},
		{"https://x/api/v1/otel/", "/otel", "https://x/api/v1/otel/v1/traces"},
		{"https://x/v1/traces", "/otel", "https://x/otel/v1/traces"},
	} {
		if got := TracesURL(tt.base, tt.prefix); got != tt.want {
			t.Errorf("TracesURL(%q, %q) = %q, want %q", tt.base, tt.prefix, got, tt.want)
		}
	}
}
