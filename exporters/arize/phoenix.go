package arize

import (
	"net/url"
	"strings"

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
func NewPhoenix() plugins.Exporter { return otlpsend.NewAdapter(buildPhoenix) }

func buildPhoenix(raw map[string]any) (otlpsend.Sender, otlpsend.Mapper, error) {
	c, err := ParsePhoenix(raw)
	if err != nil {
		return nil, nil, err
	}
	headers := map[string]string{}
	if c.APIKey != "" {
		headers["Authorization"] = "Bearer " + c.APIKey
	}
	for k, v := range c.Headers {
		headers[k] = v
	}
	s, err := otlpsend.NewHTTP(otlpsend.HTTPOptions{
		URL:         c.TracesURL(),
		Headers:     headers,
		Compression: c.Compression,
		Timeout:     c.Timeout,
	})
	if err != nil {
		return nil, nil, err
	}
	return s, Map(c.Project), nil
}

// ParsePhoenix reads and validates a config block.
func ParsePhoenix(raw map[string]any) (PhoenixConfig, error) {
	r := cfg.New(raw)
	c := PhoenixConfig{Common: cfg.ReadCommon(r, "gzip"), Endpoint: DefaultPhoenixEndpoint, Project: DefaultPhoenixProject}
	r.String("endpoint", &c.Endpoint)
	r.String("api_key", &c.APIKey)
	r.String("project", &c.Project)
	r.Done()
	if u := r.URL("endpoint", c.Endpoint); u != nil {
		c.Endpoint = strings.TrimSuffix(u.String(), "/")
	}
	if c.Project == "" {
		r.Fail("project", "must not be empty")
	}
	if err := r.Errors(); err != nil {
		return PhoenixConfig{}, err
	}
	return c, nil
}

// TracesURL is <endpoint>/v1/traces.
func (c PhoenixConfig) TracesURL() string {
	e := strings.TrimSuffix(c.Endpoint, "/")
	if strings.HasSuffix(e, "/v1/traces") {
		return e
	}
	u, _ := url.JoinPath(e, "/v1/traces")
	return u
}
