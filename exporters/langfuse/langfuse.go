// Package langfuse is the gateway's adapter for Langfuse (cloud or
// self-hosted). Spans go to Langfuse's OTLP/HTTP endpoint with the
// langfuse.* attributes that make a run show as a trace of typed
// observations (agent, generation, tool, retriever, guardrail...).
package langfuse

import (
	"encoding/base64"
	"net/url"
	"strings"

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

// otelPath is where Langfuse serves OTLP/HTTP traces under its host.
const otelPath = "/api/public/otel/v1/traces"

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
func New() plugins.Exporter { return otlpsend.NewAdapter(build) }

func build(raw map[string]any) (otlpsend.Sender, otlpsend.Mapper, error) {
	c, err := Parse(raw)
	if err != nil {
		return nil, nil, err
	}
	s, err := otlpsend.NewHTTP(otlpsend.HTTPOptions{
		URL:             c.TracesURL(),
		Headers:         c.headers(),
		Compression:     c.Compression,
		Timeout:         c.Timeout,
		MaxRequestBytes: MaxRequestBytes,
	})
	if err != nil {
		return nil, nil, err
	}
	return s, Map, nil
}

// Parse reads and validates a config block.
func Parse(raw map[string]any) (Config, error) {
	r := cfg.New(raw)
	c := Config{Common: cfg.ReadCommon(r, "gzip"), Host: DefaultHost}
	var region string
	r.String("host", &c.Host)
	r.String("region", &region)
	r.Required("public_key", &c.PublicKey)
	r.Required("secret_key", &c.SecretKey)
	r.Done()

	if region != "" {
		host, ok := Regions[strings.ToLower(region)]
		switch {
		case !ok:
			r.Fail("region", "must be one of eu, us, jp, hipaa, got %q", region)
		case r.Has("host"):
			r.Fail("region", "set host or region, not both")
		default:
			c.Host = host
		}
	}
	if u := r.URL("host", c.Host); u != nil {
		c.Host = strings.TrimSuffix(u.String(), "/")
	}
	if err := r.Errors(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// TracesURL is the OTLP traces endpoint under Host. A host given with the
// OTLP prefix (…/api/public/otel) is accepted too.
func (c Config) TracesURL() string {
	h := strings.TrimSuffix(c.Host, "/")
	h = strings.TrimSuffix(h, "/v1/traces")
	h = strings.TrimSuffix(h, "/api/public/otel")
	u, _ := url.JoinPath(h, otelPath)
	return u
}

func (c Config) headers() map[string]string {
	h := map[string]string{
		"Authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte(c.PublicKey+":"+c.SecretKey)),
		// Without it Langfuse v4 may delay directly ingested OTel data.
		"x-langfuse-ingestion-version": "4",
		"x-langfuse-sdk-name":          otlpsend.UserAgent,
	}
	for k, v := range c.Headers {
		h[k] = v
	}
	return h
}
