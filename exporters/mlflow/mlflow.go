// Package mlflow is the gateway's adapter for an MLflow tracking server
// (3.6 or later, which ingests OTLP/HTTP at /v1/traces, with a
// database-backed tracking store). Spans carry the mlflow.* attributes
// MLflow's trace UI reads: span type, inputs, outputs and token usage.
package mlflow

import (
	"encoding/base64"
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
func New() plugins.Exporter {
	return otlpsend.Vendor(Parse, Config.sender, otlpsend.Always[Config](Map))
}

// sender posts to the tracking server and bounds the retries of a batch
// MLflow fails to store.
func (c Config) sender() (otlpsend.Sender, error) {
	s, err := otlpsend.NewHTTP(c.sendOptions())
	if err != nil {
		return nil, err
	}
	return withStoreRetries(s), nil
}

// Parse reads and validates a config block.
func Parse(raw map[string]any) (Config, error) {
	r := cfg.New(raw)
	// MLflow decompresses request bodies from 3.7.0 on; 3.6 does not, so
	// gzip is opt-in.
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
		r.BaseURL("tracking_uri", &c.TrackingURI)
	}
	if c.Token != "" && (c.Username != "" || c.Password != "") {
		r.Fail("token", "set token or username/password, not both")
	}
	if (c.Username == "") != (c.Password == "") {
		r.Fail("username", "username and password must be set together")
	}
	return cfg.Result(r, c)
}

// TracesURL is <tracking_uri>/v1/traces.
func (c Config) TracesURL() string { return otlpsend.TracesURL(c.TrackingURI, "") }

// sendOptions are where and how the spans go.
func (c Config) sendOptions() otlpsend.HTTPOptions {
	return otlpsend.HTTPOptions{URL: c.TracesURL(), Headers: c.headers(), Classify: classify}.With(c.Common)
}

func (c Config) headers() map[string]string {
	h := map[string]string{ExperimentHeader: c.ExperimentID}
	switch {
	case c.Token != "":
		h["Authorization"] = "Bearer " + c.Token
	case c.Username != "":
		h["Authorization"] = "Basic " + base64.StdEncoding.EncodeToString([]byte(c.Username+":"+c.Password))
	}
	return h
}
