// Package logging builds the gateway's slog logger from config.
package logging

import (
	"io"
	"log/slog"
)

// New returns a text or JSON slog logger at the given level.
func New(w io.Writer, level, format string) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level)) // validated by config; unknown → info
	opts := &slog.HandlerOptions{Level: l}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
