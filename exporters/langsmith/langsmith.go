// Package langsmith is the gateway's adapter for LangSmith (cloud regions or
// self-hosted). Spans go to LangSmith's OTLP/HTTP endpoint with the
// langsmith.* and gen_ai.* attributes LangSmith maps to runs (run type,
// inputs, outputs, token usage, metadata, threads).
package langsmith

import (
	"net/url"
	"strings"

	"github.com/kern-agents/trace-gateway/exporters/internal/cfg"
	"github.com/kern-agents/trace-gateway/exporters/internal/otlpsend"
	"github.com/kern-agents/trace-gateway/plugins"
)

// DefaultEndpoint is LangSmith's US (GCP) API.
const DefaultEndpoint = "https://api.smith.langchain.com"

// Regions maps the region shortcut to LangSmith SaaS API hosts.
var Regions = map[string]string{
	"us":   "https://api.smith.langchain.com",
	"eu":   "https://eu.api.smith.langchain.com",
	"apac": "https://apac.api.smith.langchain.com",
	"aws":  "https://aws.api.smith.langchain.com",
}

// Config is the `config:` block of a langsmith destination.
type Config struct {
	cfg.Common
	// Endpoint is the API base URL; for self-hosted LangSmith include the
	// /api/v1 prefix (https://langsmith.example.com/api/v1).
	Endpoint string
	APIKey   string
	// Project receives the traces (LangSmith's "default" when empty).
	Project string
}

// New returns the langsmith exporter.
func New() plugins.Exporter { return otlpsend.NewAdapter(build) }

func build(raw map[string]any) (otlpsend.Sender, otlpsend.Mapper, error) {
	c, err := Parse(raw)
	if err != nil {
		return nil, nil, err
	}
	s, err := otlpsend.NewHTTP(otlpsend.HTTPOptions{
		URL:         c.TracesURL(),
		Headers:     c.headers(),
		Compression: c.Compression,
		Timeout:     c.Timeout,
	})
	if err != nil {
		return nil, nil, err
	}
	return s, Map, nil
}

// Parse reads and validates a config block.
func Parse(raw map[string]any) (Config, error) {
	r := cfg.New(raw)
	c := Config{Common: cfg.ReadCommon(r, "gzip"), Endpoint: DefaultEndpoint}
	var region string
	r.String("endpoint", &c.Endpoint)
	r.String("region", &region)
	r.Required("api_key", &c.APIKey)
	r.String("project", &c.Project)
	r.Done()

	if region != "" {
		host, ok := Regions[strings.ToLower(region)]
		switch {
		case !ok:
			r.Fail("region", "must be one of us, eu, apac, aws, got %q", region)
		case r.Has("endpoint"):
			r.Fail("region", "set endpoint or region, not both")
		default:
			c.Endpoint = host
		}
	}
	if u := r.URL("endpoint", c.Endpoint); u != nil {
		c.Endpoint = strings.TrimSuffix(u.String(), "/")
	}
	if err := r.Errors(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// TracesURL is the OTLP traces endpoint: <endpoint>/otel/v1/traces. An
// endpoint already ending in /otel or /otel/v1/traces is accepted too.
func (c Config) TracesURL() string {
	e := strings.TrimSuffix(c.Endpoint, "/")
	e = strings.TrimSuffix(e, "/v1/traces")
	e = strings.TrimSuffix(e, "/otel")
	u, _ := url.JoinPath(e, "/otel/v1/traces")
	return u
}

func (c Config) headers() map[string]string {
	h := map[string]string{"x-api-key": c.APIKey}
	if c.Project != "" {
		h["Langsmith-Project"] = c.Project
	}
	for k, v := range c.Headers {
		h[k] = v
	}
	return h
}
