// Package logfire is the gateway's adapter for Pydantic Logfire. Spans go to
// Logfire's OTLP/HTTP endpoint (US or EU region) with OpenTelemetry GenAI
// semantic-convention attributes, which Logfire renders as LLM
// conversations, plus logfire.msg for a readable line in the Live view.
package logfire

import (
	"regexp"
	"strings"

	"github.com/kern-agents/trace-gateway/exporters/internal/cfg"
	"github.com/kern-agents/trace-gateway/exporters/internal/otlpsend"
	"github.com/kern-agents/trace-gateway/plugins"
)

// Regions maps Logfire regions to their base URLs.
var Regions = map[string]string{
	"us": "https://logfire-us.pydantic.dev",
	"eu": "https://logfire-eu.pydantic.dev",
}

// tokenRegion reads the region Logfire encodes in write tokens
// (pylf_v<version>_<region>_...), as Logfire's SDKs do.
var tokenRegion = regexp.MustCompile(`^pylf_v[0-9]+_([a-z]+)_`)

// Config is the `config:` block of a logfire destination.
type Config struct {
	cfg.Common
	// Endpoint is the base URL. Empty: from Region, else from the token's
	// region, else US.
	Endpoint string
	Region   string
	Token    string
}

// New returns the logfire exporter.
func New() plugins.Exporter {
	return otlpsend.HTTPVendor(Parse, Config.sendOptions, otlpsend.Always[Config](Map))
}

// Parse reads and validates a config block.
func Parse(raw map[string]any) (Config, error) {
	r := cfg.New(raw)
	// Logfire's SDK sends gzip.
	c := Config{Common: cfg.ReadCommon(r, "gzip")}
	r.String("endpoint", &c.Endpoint)
	r.String("region", &c.Region)
	r.Required("token", &c.Token)
	r.Done()

	c.Region = strings.ToLower(c.Region)
	switch {
	case c.Region != "" && Regions[c.Region] == "":
		r.Fail("region", "must be us or eu, got %q", c.Region)
	case c.Region != "" && c.Endpoint != "":
		r.Fail("region", "set endpoint or region, not both")
	case c.Endpoint != "":
		r.BaseURL("endpoint", &c.Endpoint)
	case c.Region != "":
		c.Endpoint = Regions[c.Region]
	default:
		c.Endpoint = Regions["us"]
		if m := tokenRegion.FindStringSubmatch(c.Token); m != nil && Regions[m[1]] != "" {
			c.Endpoint = Regions[m[1]]
		}
	}
	return cfg.Result(r, c)
}

// TracesURL is <endpoint>/v1/traces.
func (c Config) TracesURL() string { return otlpsend.TracesURL(c.Endpoint, "") }

// sendOptions are where and how the spans go.
func (c Config) sendOptions() otlpsend.HTTPOptions {
	// No request size limit of our own: the 5 MiB Logfire's SDK splits
	// at is its batching target, well under what Logfire accepts (the
	// gateway's batch.max_bytes bounds requests; a 413 still splits).
	return otlpsend.HTTPOptions{URL: c.TracesURL(), Headers: map[string]string{"Authorization": c.Token}}.With(c.Common)
}
