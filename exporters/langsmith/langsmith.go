// Package langsmith is the gateway's adapter for LangSmith (cloud regions or
// self-hosted). Spans go to LangSmith's OTLP/HTTP endpoint with the
// langsmith.* and gen_ai.* attributes LangSmith maps to runs (run type,
// inputs, outputs, token usage, metadata, threads).
package langsmith

import (
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
	// WorkspaceID selects the workspace for an organisation-scoped API key
	// (sent as x-tenant-id, as LangSmith's SDKs do).
	WorkspaceID string
}

// New returns the langsmith exporter.
func New() plugins.Exporter {
	return otlpsend.HTTPVendor(Parse, Config.sendOptions, otlpsend.Always[Config](Map))
}

// Parse reads and validates a config block.
func Parse(raw map[string]any) (Config, error) {
	r := cfg.New(raw)
	c := Config{Common: cfg.ReadCommon(r, "gzip"), Endpoint: DefaultEndpoint}
	region := r.RegionalURL("endpoint", &c.Endpoint, Regions, "us", "eu", "apac", "aws")
	r.Required("api_key", &c.APIKey)
	r.String("project", &c.Project)
	if r.Has("workspace_id") {
		// Present but empty is an unset ${ENV}: say so rather than send
		// an org-scoped key without its workspace.
		r.Required("workspace_id", &c.WorkspaceID)
	}
	r.Done()
	region.Resolve()
	r.BaseURL("endpoint", &c.Endpoint)
	return cfg.Result(r, c)
}

// TracesURL is the OTLP traces endpoint: <endpoint>/otel/v1/traces. An
// endpoint already ending in /otel or /otel/v1/traces is accepted too.
func (c Config) TracesURL() string { return otlpsend.TracesURL(c.Endpoint, "/otel") }

// sendOptions are where and how the spans go.
func (c Config) sendOptions() otlpsend.HTTPOptions {
	return otlpsend.HTTPOptions{URL: c.TracesURL(), Headers: c.headers()}.With(c.Common)
}

func (c Config) headers() map[string]string {
	h := map[string]string{"x-api-key": c.APIKey}
	if c.Project != "" {
		h["Langsmith-Project"] = c.Project
	}
	if c.WorkspaceID != "" {
		h["x-tenant-id"] = c.WorkspaceID
	}
	return h
}
