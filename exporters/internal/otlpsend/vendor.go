package otlpsend

import (
	"net/url"
	"strings"

	"github.com/kern-agents/trace-gateway/exporters/internal/cfg"
)

// Vendor returns the exporter of one vendor adapter, made of its three
// parts: parse reads and validates the config block (a *plugins.ConfigError
// when invalid), connect builds the sender for the parsed config, and
// mapping gives the vendor's Mapper for it (a nil mapping sends spans as
// stored).
func Vendor[C any](parse func(map[string]any) (C, error), connect func(C) (Sender, error), mapping func(C) Mapper) *Adapter {
	return NewAdapter(func(raw map[string]any) (Sender, Mapper, error) {
		c, err := parse(raw)
		if err != nil {
			return nil, nil, err
		}
		s, err := connect(c)
		if err != nil {
			return nil, nil, err
		}
		if mapping == nil {
			return s, nil, nil
		}
		return s, mapping(c), nil
	})
}

// HTTPVendor is Vendor for a vendor reached over OTLP/HTTP: options gives
// the sender's settings for the parsed config.
func HTTPVendor[C any](parse func(map[string]any) (C, error), options func(C) HTTPOptions, mapping func(C) Mapper) *Adapter {
	connect := func(c C) (Sender, error) {
		s, err := NewHTTP(options(c))
		if err != nil {
			return nil, err
		}
		return s, nil
	}
	return Vendor(parse, connect, mapping)
}

// Always is a mapping that does not depend on the config.
func Always[C any](m Mapper) func(C) Mapper { return func(C) Mapper { return m } }

// With applies the settings every adapter accepts: timeout, compression,
// and the extra headers, set over the vendor's own so they can override them.
func (o HTTPOptions) With(c cfg.Common) HTTPOptions {
	o.Timeout, o.Compression = c.Timeout, c.Compression
	o.Headers = overlay(o.Headers, c.Headers, false)
	return o
}

// With is HTTPOptions.With for gRPC. Metadata keys are lower case, so the
// extra headers' keys are lowered to override the vendor's own.
func (o GRPCOptions) With(c cfg.Common) GRPCOptions {
	o.Timeout, o.Compression = c.Timeout, c.Compression
	o.Headers = overlay(o.Headers, c.Headers, true)
	return o
}

// overlay returns a copy of own with extra set over it.
func overlay(own, extra map[string]string, lower bool) map[string]string {
	out := make(map[string]string, len(own)+len(extra))
	for k, v := range own {
		out[k] = v
	}
	for k, v := range extra {
		if lower {
			k = strings.ToLower(k)
		}
		out[k] = v
	}
	return out
}

// TracesURL is the OTLP/HTTP traces URL under a vendor's base URL:
// base + prefix + "/v1/traces". A base given with "/v1/traces", with
// prefix, or with both already on it is accepted too.
func TracesURL(base, prefix string) string {
	b := strings.TrimSuffix(base, "/")
	b = strings.TrimSuffix(b, "/v1/traces")
	b = strings.TrimSuffix(b, prefix)
	u, _ := url.JoinPath(b, prefix, "/v1/traces")
	return u
}
