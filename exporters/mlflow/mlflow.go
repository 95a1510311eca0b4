// Package mlflow is the gateway's adapter for an MLflow tracking server
// (3.6 or later, which ingests OTLP/HTTP at /v1/traces). Spans carry the
// mlflow.* attributes MLflow's trace UI reads: span type, inputs, outputs
// and token usage.
package mlflow

import (
	"encoding/base64"
	"net/url"
	"strings"

	"github.com/kern-agents/trace-gateway/exporters/internal/cfg"
	"github.com/kern-agents/trace-gateway/exporters/internal/otlpsend"
	"github.com/kern-agents/trace-gateway/plugins"
)

// ExperimentHeader routes spans to an experiment; MLflow requires it.
const ExperimentHeader = "x-mlflow-experiment-id"

// Config is the `config:` block of an mlflow destination.
type Config struct {
	cfg.Common
	TrackingURI  string
	ExperimentID string
	// Token is sent as a bearer token; Username/Password as basic auth
	// (MLflow's built-in authentication). At most one of the two.
	Token    string
	Username string
	Password string
}

// New returns the mlflow exporter.
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
	// Older MLflow servers may not decompress request bodies: opt in to gzip.
	c := Config{Common: cfg.ReadCommon(r, "none")}
	r.Required("tracking_uri", &c.TrackingURI)
	if !r.Has("experiment_id") {
		r.Fail("experiment_id", "is required")
	}
	r.StringOrInt("experiment_id", &c.ExperimentID)
	r.String("token", &c.Token)
	r.String("username", &c.Username)
	r.String("password", &c.Password)
	r.Done()

	if s, isStr := raw["experiment_id"].(string); isStr && strings.TrimSpace(s) == "" {
		r.Fail("experiment_id", "must not be empty")
	}
	if c.TrackingURI != "" {
		if u := r.URL("tracking_uri", c.TrackingURI); u != nil {
			c.TrackingURI = strings.TrimSuffix(u.String(), "/")
		}
	}
	if c.Token != "" && (c.Username != "" || c.Password != "") {
		r.Fail("token", "set token or username/password, not both")
	}
	if (c.Username == "") != (c.Password == "") {
		r.Fail("username", "username and password must be set together")
	}
	if err := r.Errors(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// TracesURL is <tracking_uri>/v1/traces.
func (c Config) TracesURL() string {
	e := strings.TrimSuffix(c.TrackingURI, "/")
	if strings.HasSuffix(e, "/v1/traces") {
		return e
	}
	u, _ := url.JoinPath(e, "/v1/traces")
	return u
}

func (c Config) headers() map[string]string {
	h := map[string]string{ExperimentHeader: c.ExperimentID}
	switch {
	case c.Token != "":
		h["Authorization"] = "Bearer " + c.Token
	case c.Username != "":
		h["Authorization"] = "Basic " + base64.StdEncoding.EncodeToString([]byte(c.Username+":"+c.Password))
	}
	for k, v := range c.Headers {
		h[k] = v
	}
	return h
}
