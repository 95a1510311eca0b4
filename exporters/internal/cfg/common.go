package cfg

import "time"

// Common holds the settings every adapter accepts.
type Common struct {
	// Timeout bounds one export request. Default 10s.
	Timeout time.Duration
	// Compression is "gzip" or "none".
	Compression string
	// Headers are extra request headers (HTTP) or metadata (gRPC). They are
	// applied after the adapter's own, so they can override them.
	Headers map[string]string
}

// DefaultTimeout is the export timeout when none is configured.
const DefaultTimeout = 10 * time.Second

// ReadCommon reads timeout, compression and headers from r, with
// defaultCompression used when compression is not set.
func ReadCommon(r *Reader, defaultCompression string) Common {
	c := Common{Timeout: DefaultTimeout, Compression: defaultCompression}
	r.Duration("timeout", &c.Timeout)
	r.OneOf("compression", &c.Compression, "gzip", "none")
	r.StringMap("headers", &c.Headers)
	return c
}
