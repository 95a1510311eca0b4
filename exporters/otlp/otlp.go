// Package otlp is the gateway's adapter for any OTLP endpoint (an
// OpenTelemetry Collector, Jaeger, Tempo, a vendor not covered by its own
// adapter): spans are sent as stored, over OTLP/HTTP (protobuf or JSON) or
// OTLP/gRPC.
package otlp

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/url"
	"os"

	"github.com/kern-agents/trace-gateway/exporters/internal/cfg"
	"github.com/kern-agents/trace-gateway/exporters/internal/otlpsend"
	"github.com/kern-agents/trace-gateway/plugins"
)

// Protocols.
const (
	ProtocolHTTPProtobuf = "http/protobuf"
	ProtocolHTTPJSON     = "http/json"
	ProtocolGRPC         = "grpc"
)

// Config is the `config:` block of an otlp destination.
type Config struct {
	cfg.Common
	// Endpoint: the full traces URL for HTTP (a URL without a path gets
	// /v1/traces), host:port or http(s)://host:port for gRPC.
	Endpoint string
	Protocol string
	TLS      TLSConfig
}

// TLSConfig are the transport security settings.
type TLSConfig struct {
	CAFile             string
	CertFile           string
	KeyFile            string
	InsecureSkipVerify bool
	// Insecure sends gRPC in plaintext. For HTTP the URL scheme decides.
	Insecure bool
}

// New returns the otlp exporter. It maps nothing: spans go as stored.
func New() plugins.Exporter { return otlpsend.Vendor(Parse, Config.sender, nil) }

// Parse reads and validates a config block.
func Parse(raw map[string]any) (Config, error) {
	r := cfg.New(raw)
	c := Config{Common: cfg.ReadCommon(r, "gzip"), Protocol: ProtocolHTTPProtobuf}
	r.Required("endpoint", &c.Endpoint)
	r.OneOf("protocol", &c.Protocol, ProtocolHTTPProtobuf, ProtocolHTTPJSON, ProtocolGRPC)
	t := r.Sub("tls")
	t.String("ca_file", &c.TLS.CAFile)
	t.String("cert_file", &c.TLS.CertFile)
	t.String("key_file", &c.TLS.KeyFile)
	t.Bool("insecure_skip_verify", &c.TLS.InsecureSkipVerify)
	t.Bool("insecure", &c.TLS.Insecure)
	t.Done()
	r.Done()

	if c.Endpoint != "" {
		if c.Protocol == ProtocolGRPC {
			if _, _, err := otlpsend.GRPCTarget(c.Endpoint, c.TLS.Insecure); err != nil {
				r.Fail("endpoint", "%v", err)
			}
		} else if u := r.URL("endpoint", c.Endpoint); u != nil {
			if u.Scheme == "http" && c.TLS.any() {
				r.Fail("tls", "TLS settings need an https:// endpoint")
			}
		}
	}
	if c.TLS.Insecure && c.Protocol != ProtocolGRPC {
		r.Fail("tls.insecure", "applies to grpc only; for HTTP use an http:// endpoint")
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		r.Fail("tls", "cert_file and key_file must be set together")
	}
	if _, err := c.TLS.load(); err != nil {
		r.Fail("tls", "%v", err)
	}
	return cfg.Result(r, c)
}

func (c Config) sender() (otlpsend.Sender, error) {
	tlsCfg, err := c.TLS.load()
	if err != nil {
		return nil, err
	}
	if c.Protocol == ProtocolGRPC {
		target, insecure, err := otlpsend.GRPCTarget(c.Endpoint, c.TLS.Insecure)
		if err != nil {
			return nil, err
		}
		return otlpsend.NewGRPC(otlpsend.GRPCOptions{
			Endpoint: target, Insecure: insecure, TLS: tlsCfg,
			Headers: c.Headers, Compression: c.Compression, Timeout: c.Timeout,
		})
	}
	return otlpsend.NewHTTP(otlpsend.HTTPOptions{
		URL: TracesURL(c.Endpoint), Headers: c.Headers, Compression: c.Compression,
		JSON: c.Protocol == ProtocolHTTPJSON, Timeout: c.Timeout, TLS: tlsCfg,
	})
}

// TracesURL appends /v1/traces to a URL that has no path.
func TracesURL(endpoint string) string {
	u, err := url.Parse(endpoint)
	if err != nil {
		return endpoint
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/v1/traces"
	}
	return u.String()
}

func (t TLSConfig) any() bool {
	return t.CAFile != "" || t.CertFile != "" || t.KeyFile != "" || t.InsecureSkipVerify
}

// load builds the tls.Config (nil when nothing is set), reading the files.
func (t TLSConfig) load() (*tls.Config, error) {
	if !t.any() {
		return nil, nil
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: t.InsecureSkipVerify} //nolint:gosec // explicit opt-in
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("read ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ca_file %s holds no PEM certificate", t.CAFile)
		}
		c.RootCAs = pool
	}
	if t.CertFile != "" && t.KeyFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("load cert_file/key_file: %w", err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}
