// Package plugins is the public SDK for kern trace gateway exporter plugins.
//
// A plugin is a small program that implements Exporter and calls Serve from
// main. The gateway starts it as a separate process (hashicorp/go-plugin over
// gRPC), hands it the destination's `config:` block, then streams it batches
// of spans. Keep this package small and stable: outside authors import it.
package plugins

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"
)

// Exporter is what a plugin implements.
type Exporter interface {
	// Configure receives the destination's config block (YAML decoded into
	// maps, lists, strings, numbers and bools, ${ENV} already expanded).
	// Return a *ConfigError listing every bad field.
	Configure(ctx context.Context, config map[string]any) error
	// Export sends one batch. Return nil when the destination accepted it,
	// Retryable(...) when a later try may succeed, Permanent(...) when it
	// never will (the batch goes to the dead-letter table).
	Export(ctx context.Context, traces ptrace.Traces) error
	// Shutdown flushes and releases resources.
	Shutdown(ctx context.Context) error
}

// EncodedExporter is implemented by an Exporter that can take a batch as the
// host encoded it: a protobuf OTLP ExportTraceServiceRequest
// (go.opentelemetry.io/proto/otlp/collector/trace/v1). Serve then calls
// ExportEncoded instead of Export, sparing the decode into ptrace.Traces, e.g.
// for a pass-through to an OTLP endpoint.
type EncodedExporter interface {
	// ExportEncoded sends one batch and answers as Export does. Serve does
	// not check request: bytes that do not decode must be answered with
	// Permanent(...). request is a fresh copy made for this call, which Serve
	// neither reuses nor reads after the call returns, so the exporter may
	// keep it.
	ExportEncoded(ctx context.Context, request []byte) error
}

// BorrowingExporter is an EncodedExporter that is done with request when
// ExportEncoded returns: it keeps no reference to it, and nothing it started
// reads it afterwards (an HTTP request body, for one, must have been closed
// by the transport). Serve then receives later batches into the memory of
// earlier ones instead of a fresh copy each, sparing the plugin most of its
// allocation and garbage collection per batch (a batch is up to 4 MiB).
type BorrowingExporter interface {
	EncodedExporter
	// BorrowsRequests marks the promise above; Serve never calls it.
	BorrowsRequests()
}

// FieldError is one invalid configuration field.
type FieldError struct {
	Field   string // dotted path inside the config block, e.g. "tls.ca_file"
	Message string
}

func (f FieldError) Error() string { return f.Field + ": " + f.Message }

// ConfigError lists every invalid field of a destination's config.
type ConfigError struct{ Fields []FieldError }

func (e *ConfigError) Error() string {
	parts := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		parts[i] = f.Error()
	}
	return "invalid config: " + strings.Join(parts, "; ")
}

// Add records a bad field.
func (e *ConfigError) Add(field, format string, args ...any) {
	e.Fields = append(e.Fields, FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
}

// Err returns e when it holds any field error, else nil.
func (e *ConfigError) Err() error {
	if e == nil || len(e.Fields) == 0 {
		return nil
	}
	return e
}

// RetryableError marks a failure a later attempt may fix (throttling, 5xx,
// network). After, when non-zero, is the delay the destination asked for.
type RetryableError struct {
	Err   error
	After time.Duration
}

func (e *RetryableError) Error() string {
	if e.After > 0 {
		return fmt.Sprintf("retryable (after %s): %v", e.After, e.Err)
	}
	return "retryable: " + e.Err.Error()
}
func (e *RetryableError) Unwrap() error { return e.Err }

// PermanentError marks a failure that retrying cannot fix (bad credentials,
// a rejected payload).
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string { return "permanent: " + e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// Retryable wraps err as retryable after the given delay (0: host decides).
func Retryable(err error, after time.Duration) error {
	return &RetryableError{Err: err, After: after}
}

// Permanent wraps err as permanent.
func Permanent(err error) error { return &PermanentError{Err: err} }

// IsPermanent reports whether err is marked permanent.
func IsPermanent(err error) bool {
	var p *PermanentError
	return errors.As(err, &p)
}

// RetryAfter returns the delay a retryable error asked for, if any.
func RetryAfter(err error) (time.Duration, bool) {
	var r *RetryableError
	if errors.As(err, &r) && r.After > 0 {
		return r.After, true
	}
	return 0, false
}
