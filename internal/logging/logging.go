// Package logging builds the gateway's slog logger from config.
package logging

import (
	"io"
	"log/slog"

	"github.com/kern-agents/trace-gateway/internal/redact"
)

// New returns a text or JSON slog logger at the given level.
func New(w io.Writer, level, format string) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level)) // validated by config; unknown → info
	// Secrets never reach the log: secret-named attributes and URL/DSN
	// passwords in any value are masked.
	opts := &slog.HandlerOptions{Level: l, ReplaceAttr: redact.ReplaceAttr}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
