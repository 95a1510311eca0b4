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
func New() plugins.Exporter { return otlpsend.NewAdapter(build) }

func build(raw map[string]any) (otlpsend.Sender, otlpsend.Mapper, error) {
	c, err := Parse(raw)
	if err != nil {
		return nil, nil, err
	}
	target, insecure, err := otlpsend.GRPCTarget(c.endpoint(), false)
	if err != nil {
		return nil, nil, err
	}
	s, err := otlpsend.NewGRPC(otlpsend.GRPCOptions{
		Endpoint:    target,
		Insecure:    insecure,
		Headers:     c.headers(),
		Compression: c.Compression,
		Timeout:     c.Timeout,
	})
	if err != nil {
		return nil, nil, err
	}
	return s, Map(c.Project), nil
}

// Parse reads and validates a config block.
func Parse(raw map[string]any) (Config, error) {
	r := cfg.New(raw)
	c := Config{Common: cfg.ReadCommon(r, "gzip"), Endpoint: DefaultEndpoint}
	var region string
	r.String("endpoint", &c.Endpoint)
	r.String("region", &region)
	r.Required("space_id", &c.SpaceID)
	r.Required("api_key", &c.APIKey)
	r.Required("project", &c.Project)
	r.Done()

	if region != "" {
		host, ok := Regions[strings.ToLower(region)]
		switch {
		case !ok:
			r.Fail("region", "must be one of us, eu, got %q", region)
		case r.Has("endpoint"):
			r.Fail("region", "set endpoint or region, not both")
		default:
			c.Endpoint = host
		}
	}
	if _, _, err := otlpsend.GRPCTarget(c.endpoint(), false); err != nil {
		r.Fail("endpoint", "%v", err)
	}
	if err := r.Errors(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// endpoint drops the "/v1" Arize's SDKs append; gRPC has no path.
func (c Config) endpoint() string {
	e := strings.TrimSuffix(c.Endpoint, "/")
	return strings.TrimSuffix(e, "/v1")
}

// headers are the gRPC metadata Arize's arize-otel SDK sends; the
// deprecated names are kept for older collectors.
func (c Config) headers() map[string]string {
	h := map[string]string{
		"authorization":   c.APIKey,
		"api_key":         c.APIKey,
		"arize-api-key":   c.APIKey,
		"arize-space-id":  c.SpaceID,
		"space_id":        c.SpaceID,
		"arize-interface": "otel",
	}
	for k, v := range c.Headers {
		h[strings.ToLower(k)] = v
	}
	return h
}
