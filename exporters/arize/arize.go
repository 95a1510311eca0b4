// Package arize holds the gateway's adapters for Arize: Arize AX (the hosted
// platform, OTLP/gRPC with space id and API key) and Arize Phoenix (open
// source or Phoenix Cloud, OTLP/HTTP). Both read OpenInference attributes,
// which Map adds; the project is the resource attribute
// openinference.project.name.
package arize

import (
	"strings"

	"github.com/kern-agents/trace-gateway/exporters/internal/cfg"
	"github.com/kern-agents/trace-gateway/exporters/internal/otlpsend"
	"github.com/kern-agents/trace-gateway/plugins"
)

// DefaultEndpoint is Arize AX's OTLP endpoint (gRPC over TLS).
const DefaultEndpoint = "https://otlp.arize.com"

// Regions maps the region shortcut to Arize AX OTLP endpoints.
var Regions = map[string]string{
	"us": "https://otlp.arize.com",
	"eu": "https://otlp.eu-west-1a.arize.com",
}

// Config is the `config:` block of an arize (AX) destination.
type Config struct {
	cfg.Common
	// Endpoint is https://host[:port] (TLS), http://host:port (plaintext)
	// or host:port (TLS). Arize's own "/v1" suffix is accepted.
	Endpoint string
	SpaceID  string
	APIKey   string
	Project  string
}

// New returns the Arize AX exporter.
func New() plugins.Exporter { return otlpsend.Vendor(Parse, Config.sender, Config.mapper) }

func (c Config) sender() (otlpsend.Sender, error) {
	target, insecure, err := otlpsend.GRPCTarget(c.endpoint(), false)
	if err != nil {
		return nil, err
	}
	s, err := otlpsend.NewGRPC(otlpsend.GRPCOptions{Endpoint: target, Insecure: insecure, Headers: c.headers()}.With(c.Common))
	if err != nil {
		return nil, err
	}
	return s, nil
}

func (c Config) mapper() otlpsend.Mapper { return Map(c.Project) }

// Parse reads and validates a config block.
func Parse(raw map[string]any) (Config, error) {
	r := cfg.New(raw)
	c := Config{Common: cfg.ReadCommon(r, "gzip"), Endpoint: DefaultEndpoint}
	region := r.RegionalURL("endpoint", &c.Endpoint, Regions, "us", "eu")
	r.Required("space_id", &c.SpaceID)
	r.Required("api_key", &c.APIKey)
	r.Required("project", &c.Project)
	r.Done()
	region.Resolve()
	if _, _, err := otlpsend.GRPCTarget(c.endpoint(), false); err != nil {
		r.Fail("endpoint", "%v", err)
	}
	return cfg.Result(r, c)
}

// endpoint drops the "/v1" Arize's SDKs append; gRPC has no path.
func (c Config) endpoint() string {
	e := strings.TrimSuffix(c.Endpoint, "/")
	return strings.TrimSuffix(e, "/v1")
}

// headers are the gRPC metadata Arize's arize-otel SDK sends; the
// deprecated names are kept for older collectors.
func (c Config) headers() map[string]string {
	return map[string]string{
		"authorization":   c.APIKey,
		"api_key":         c.APIKey,
		"arize-api-key":   c.APIKey,
		"arize-space-id":  c.SpaceID,
		"space_id":        c.SpaceID,
		"arize-interface": "otel",
	}
}
