// Package langfuse is the gateway's adapter for Langfuse (cloud or
// self-hosted). Spans go to Langfuse's OTLP/HTTP endpoint with the
// langfuse.* attributes that make a run show as a trace of typed
// observations (agent, generation, tool, retriever, guardrail...).
package langfuse

import (
	"encoding/base64"
	"fmt"
	"net/http"

	"github.com/kern-agents/trace-gateway/exporters/internal/cfg"
	"github.com/kern-agents/trace-gateway/exporters/internal/otlpsend"
	"github.com/kern-agents/trace-gateway/plugins"
)

// DefaultHost is Langfuse Cloud's EU region.
const DefaultHost = "https://cloud.langfuse.com"

// Regions maps the region shortcut to Langfuse Cloud hosts.
var Regions = map[string]string{
	"eu":    "https://cloud.langfuse.com",
	"us":    "https://us.cloud.langfuse.com",
	"jp":    "https://jp.cloud.langfuse.com",
	"hipaa": "https://hipaa.cloud.langfuse.com",
}

// otelPrefix is where Langfuse serves OTLP/HTTP under its host.
const otelPrefix = "/api/public/otel"

// MaxRequestBytes keeps requests under Langfuse Cloud's documented 5 MB
// payload limit.
const MaxRequestBytes = 5_000_000

// Config is the `config:` block of a langfuse destination.
type Config struct {
	cfg.Common
	Host      string
	PublicKey string
	SecretKey string
}

// New returns the langfuse exporter.
func New() plugins.Exporter {
	return otlpsend.HTTPVendor(Parse, Config.sendOptions, otlpsend.Always[Config](Map))
}

// Parse reads and validates a config block.
func Parse(raw map[string]any) (Config, error) {
	r := cfg.New(raw)
	c := Config{Common: cfg.ReadCommon(r, "gzip"), Host: DefaultHost}
	region := r.RegionalURL("host", &c.Host, Regions, "eu", "us", "jp", "hipaa")
	r.Required("public_key", &c.PublicKey)
	r.Required("secret_key", &c.SecretKey)
	r.Done()
	region.Resolve()
	r.BaseURL("host", &c.Host)
	return cfg.Result(r, c)
}

// TracesURL is the OTLP traces endpoint under Host. A host given with the
// OTLP prefix (…/api/public/otel) is accepted too.
func (c Config) TracesURL() string { return otlpsend.TracesURL(c.Host, otelPrefix) }

// sendOptions are where and how the spans go.
func (c Config) sendOptions() otlpsend.HTTPOptions {
	return otlpsend.HTTPOptions{
		URL: c.TracesURL(), Headers: c.headers(), MaxRequestBytes: MaxRequestBytes, Classify: classify,
	}.With(c.Common)
}

// headers authenticate and opt in to Langfuse v4's direct ingestion.
// x-langfuse-sdk-name is deliberately not sent: Langfuse takes any value
// of it as traffic of its own SDKs, which changes the ingestion path it
// chooses and attributes the data to an SDK the gateway is not.
func (c Config) headers() map[string]string {
	return map[string]string{
		"Authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte(c.PublicKey+":"+c.SecretKey)),
		// Without it Langfuse v4 may delay directly ingested OTel data.
		"x-langfuse-ingestion-version": "4",
	}
}

// classify words Langfuse's 403, which it answers both for keys that may
// not ingest and for a project whose ingestion is suspended because the
// organisation exceeded its plan's usage threshold.
func classify(a otlpsend.Answer) error {
	if a.Status != http.StatusForbidden {
		return nil
	}
	return plugins.Permanent(fmt.Errorf("check credentials (public_key, secret_key, host), or whether Langfuse "+
		"suspended ingestion because the organisation exceeded its plan's usage threshold (%s)", a.Detail))
}
