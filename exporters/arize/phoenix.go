package arize

import (
	"github.com/kern-agents/trace-gateway/exporters/internal/cfg"
	"github.com/kern-agents/trace-gateway/exporters/internal/otlpsend"
	"github.com/kern-agents/trace-gateway/plugins"
)

// DefaultPhoenixEndpoint is a local Phoenix server.
const DefaultPhoenixEndpoint = "http://localhost:6006"

// DefaultPhoenixProject is Phoenix's own default project.
const DefaultPhoenixProject = "default"

// PhoenixConfig is the `config:` block of a phoenix destination.
type PhoenixConfig struct {
	cfg.Common
	// Endpoint is Phoenix's base URL (http://localhost:6006, or
	// https://app.phoenix.arize.com/s/<space> for Phoenix Cloud);
	// /v1/traces is appended unless present.
	Endpoint string
	// APIKey is sent as a bearer token when set (Phoenix Cloud, or a
	// self-hosted Phoenix with authentication on).
	APIKey  string
	Project string
}

// NewPhoenix returns the Arize Phoenix exporter.
func NewPhoenix() plugins.Exporter {
	return otlpsend.HTTPVendor(ParsePhoenix, PhoenixConfig.sendOptions, PhoenixConfig.mapper)
}

func (c PhoenixConfig) sendOptions() otlpsend.HTTPOptions {
	headers := map[string]string{}
	if c.APIKey != "" {
		headers["Authorization"] = "Bearer " + c.APIKey
	}
	return otlpsend.HTTPOptions{URL: c.TracesURL(), Headers: headers}.With(c.Common)
}

func (c PhoenixConfig) mapper() otlpsend.Mapper { return Map(c.Project) }

// ParsePhoenix reads and validates a config block.
func ParsePhoenix(raw map[string]any) (PhoenixConfig, error) {
	r := cfg.New(raw)
	c := PhoenixConfig{Common: cfg.ReadCommon(r, "gzip"), Endpoint: DefaultPhoenixEndpoint, Project: DefaultPhoenixProject}
	r.String("endpoint", &c.Endpoint)
	r.String("api_key", &c.APIKey)
	r.String("project", &c.Project)
	r.Done()
	r.BaseURL("endpoint", &c.Endpoint)
	if c.Project == "" {
		r.Fail("project", "must not be empty")
	}
	return cfg.Result(r, c)
}

// TracesURL is <endpoint>/v1/traces.
func (c PhoenixConfig) TracesURL() string { return otlpsend.TracesURL(c.Endpoint, "") }
