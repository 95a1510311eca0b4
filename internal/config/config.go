// Package config loads the gateway's YAML configuration: strict (unknown keys
// are errors), ${ENV} / ${ENV:-default} expanded inside values only (so a
// secret can never inject YAML structure), and validated with every problem
// reported as file:line: field: message.
package config

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// Config is the whole configuration file.
type Config struct {
	Server       Server        `yaml:"server"`
	Storage      Storage       `yaml:"storage"`
	Ingest       Ingest        `yaml:"ingest"`
	Log          Log           `yaml:"log"`
	Destinations []Destination `yaml:"destinations"`

	// File is the path the config was read from (for messages).
	File string `yaml:"-"`
	// lines maps a field path (e.g. "storage.driver") to its line in File.
	lines map[string]int
}

// Server holds the listen addresses; an empty address disables that listener.
type Server struct {
	OTLPGRPC string `yaml:"otlp_grpc"`
	OTLPHTTP string `yaml:"otlp_http"`
	HTTP     string `yaml:"http"`
}

// Storage selects the trace database.
type Storage struct {
	Driver      string `yaml:"driver"` // sqlite | postgres
	DSN         string `yaml:"dsn"`
	Schema      string `yaml:"schema"`
	TracesTable string `yaml:"traces_table"`
	SpansTable  string `yaml:"spans_table"`
}

// Ingest bounds the receivers and the write batches.
type Ingest struct {
	MaxRequestBytes   ByteSize `yaml:"max_request_bytes"`    // after decompression
	MaxBatchSpans     int      `yaml:"max_batch_spans"`      // flush a write batch at this many spans
	MaxBatchDelay     Duration `yaml:"max_batch_delay"`      // ... or after this long
	MaxQueueSpans     int      `yaml:"max_queue_spans"`      // beyond this, answer 429 / RESOURCE_EXHAUSTED
	Writers           int      `yaml:"writers"`              // concurrent write transactions
	MaxAttrValueBytes ByteSize `yaml:"max_attr_value_bytes"` // longer values are truncated with a marker
	MaxAttributes     int      `yaml:"max_attributes"`       // per span; extra ones are dropped and counted
}

// Log configures the gateway's own logs.
type Log struct {
	Level  string `yaml:"level"`  // debug | info | warn | error
	Format string `yaml:"format"` // text | json
}

// Destination is one fan-out target, served by a plugin process.
type Destination struct {
	Name   string         `yaml:"name"`
	Plugin string         `yaml:"plugin"` // built-in name or path to a plugin binary
	SHA256 string         `yaml:"sha256"` // optional pin of the plugin binary
	Config map[string]any `yaml:"config"` // handed to the plugin, which validates it
}

// Defaults returns the configuration used for keys the file leaves out.
func Defaults() Config {
	return Config{
		Server: Server{OTLPGRPC: "127.0.0.1:4317", OTLPHTTP: "127.0.0.1:4318", HTTP: "127.0.0.1:7070"},
		Storage: Storage{
			Driver: "sqlite", DSN: "file:kern-traces.db", Schema: "agno",
			TracesTable: "agno_traces", SpansTable: "agno_spans",
		},
		Ingest: Ingest{
			MaxRequestBytes:   16 << 20,
			MaxBatchSpans:     2000,
			MaxBatchDelay:     Duration(20 * time.Millisecond),
			MaxQueueSpans:     200_000,
			Writers:           2,
			MaxAttrValueBytes: 64 << 10,
			MaxAttributes:     1024,
		},
		Log: Log{Level: "info", Format: "text"},
	}
}

var identRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,62}$`)
var nameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$`)
var sha256Re = regexp.MustCompile(`^[0-9a-fA-F]{64}$`)

// Validate checks every field and returns all problems at once.
func (c *Config) Validate() error {
	var errs Errors
	add := func(field, format string, args ...any) {
		errs = append(errs, Error{File: c.File, Line: c.Line(field), Field: field, Msg: fmt.Sprintf(format, args...)})
	}
	addr := func(field, v string) {
		if v == "" {
			return
		}
		if _, _, err := net.SplitHostPort(v); err != nil {
			add(field, "want host:port, got %q", v)
		}
	}
	addr("server.otlp_grpc", c.Server.OTLPGRPC)
	addr("server.otlp_http", c.Server.OTLPHTTP)
	addr("server.http", c.Server.HTTP)
	if c.Server.OTLPGRPC == "" && c.Server.OTLPHTTP == "" {
		add("server", "at least one of otlp_grpc and otlp_http must be set")
	}

	switch c.Storage.Driver {
	case "sqlite":
		if c.Storage.DSN == "" {
			add("storage.dsn", "required (e.g. file:kern-traces.db)")
		}
	case "postgres":
		if c.Storage.DSN == "" {
			add("storage.dsn", "required (e.g. postgres://user:pass@host:5432/db)")
		} else if u, err := url.Parse(c.Storage.DSN); err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
			if !strings.Contains(c.Storage.DSN, "=") { // key=value DSNs are fine too
				add("storage.dsn", "want a postgres:// URL or a key=value DSN")
			}
		}
	default:
		add("storage.driver", "want sqlite or postgres, got %q", c.Storage.Driver)
	}
	for _, f := range []struct{ field, v string }{
		{"storage.schema", c.Storage.Schema},
		{"storage.traces_table", c.Storage.TracesTable},
		{"storage.spans_table", c.Storage.SpansTable},
	} {
		if !identRe.MatchString(f.v) {
			add(f.field, "want an SQL identifier (letters, digits, _), got %q", f.v)
		}
	}
	if c.Storage.TracesTable == c.Storage.SpansTable {
		add("storage.spans_table", "must differ from traces_table")
	}

	in := c.Ingest
	positive := func(field string, v int64) {
		if v <= 0 {
			add(field, "must be positive, got %d", v)
		}
	}
	positive("ingest.max_request_bytes", int64(in.MaxRequestBytes))
	positive("ingest.max_batch_spans", int64(in.MaxBatchSpans))
	positive("ingest.max_batch_delay", int64(in.MaxBatchDelay))
	positive("ingest.max_queue_spans", int64(in.MaxQueueSpans))
	positive("ingest.writers", int64(in.Writers))
	positive("ingest.max_attr_value_bytes", int64(in.MaxAttrValueBytes))
	positive("ingest.max_attributes", int64(in.MaxAttributes))
	if in.MaxQueueSpans > 0 && in.MaxBatchSpans > in.MaxQueueSpans {
		add("ingest.max_batch_spans", "must not exceed max_queue_spans (%d)", in.MaxQueueSpans)
	}

	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		add("log.level", "want debug, info, warn or error, got %q", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		add("log.format", "want text or json, got %q", c.Log.Format)
	}

	seen := map[string]int{}
	for i, d := range c.Destinations {
		p := fmt.Sprintf("destinations[%d]", i)
		switch {
		case d.Name == "":
			add(p+".name", "required")
		case !nameRe.MatchString(d.Name):
			add(p+".name", "want letters, digits, '.', '_' or '-' (at most 63), got %q", d.Name)
		default:
			if j, dup := seen[d.Name]; dup {
				add(p+".name", "%q is already used by destinations[%d]", d.Name, j)
			}
			seen[d.Name] = i
		}
		if d.Plugin == "" {
			add(p+".plugin", "required: a built-in adapter name or a path to a plugin binary")
		}
		if d.SHA256 != "" && !sha256Re.MatchString(d.SHA256) {
			add(p+".sha256", "want 64 hex characters")
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return errs
}

// Line returns the line of a field path in the file, falling back to its
// nearest ancestor that appears in the file (0 when unknown).
func (c *Config) Line(field string) int {
	for f := field; f != ""; {
		if l, ok := c.lines[f]; ok {
			return l
		}
		i := strings.LastIndexAny(f, ".[")
		if i < 0 {
			break
		}
		f = f[:i]
	}
	return 0
}
