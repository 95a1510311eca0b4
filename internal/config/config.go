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
	"slices"
	"strings"
	"time"

	"github.com/kern-agents/trace-gateway/internal/auth"
	"github.com/kern-agents/trace-gateway/internal/semantics"
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
	// Pprof serves net/http/pprof on its own listener; empty (the default)
	// disables it. Keep it on loopback.
	Pprof string `yaml:"pprof"`
	// MaxConnections caps open connections per listener (0: no cap).
	MaxConnections int      `yaml:"max_connections"`
	Auth           Auth     `yaml:"auth"`
	TLS            TLS      `yaml:"tls"`
	GRPC           GRPCConn `yaml:"grpc"`
}

// Auth lists the tokens OTLP senders must present; none disables auth.
type Auth struct {
	Tokens []AuthToken `yaml:"tokens"`
}

// AuthTokens returns the tokens as package auth takes them.
func (a Auth) AuthTokens() []auth.Token {
	out := make([]auth.Token, len(a.Tokens))
	for i, t := range a.Tokens {
		out[i] = auth.Token{Token: t.Token, Tenant: t.Tenant, Admin: t.Admin}
	}
	return out
}

// DefaultTenant is the tenant of a token written as a plain string.
const DefaultTenant = "default"

// AuthToken is one accepted bearer token and the tenant it stands for. In
// YAML it is either a mapping ({token, tenant, admin}) or, the shape most
// users write first, the token alone as a string, standing for
// DefaultTenant. An admin token reads every tenant's traces through the
// trace API; any other token only its own tenant's.
type AuthToken struct {
	Token  string `yaml:"token"`
	Tenant string `yaml:"tenant"`
	Admin  bool   `yaml:"admin"`
}

// TLS serves the listeners over TLS from files re-read when they change.
type TLS struct {
	CertFile          string   `yaml:"cert_file"`
	KeyFile           string   `yaml:"key_file"`
	ClientCAFile      string   `yaml:"client_ca_file"`      // verify client certificates against these CAs
	RequireClientCert bool     `yaml:"require_client_cert"` // mTLS on the OTLP listeners
	ReloadInterval    Duration `yaml:"reload_interval"`
}

// GRPCConn bounds OTLP/gRPC connections.
type GRPCConn struct {
	MaxConcurrentStreams  int      `yaml:"max_concurrent_streams"`
	MaxConnectionIdle     Duration `yaml:"max_connection_idle"`
	MaxConnectionAge      Duration `yaml:"max_connection_age"`
	MaxConnectionAgeGrace Duration `yaml:"max_connection_age_grace"`
	KeepaliveTime         Duration `yaml:"keepalive_time"`
	KeepaliveTimeout      Duration `yaml:"keepalive_timeout"`
}

// RateLimit is a sustained spans-per-second rate with a burst (0: unlimited).
type RateLimit struct {
	SpansPerSecond float64 `yaml:"spans_per_second"`
	Burst          int     `yaml:"burst"`
}

// TenantRateLimit overrides the rate limit for one tenant.
type TenantRateLimit struct {
	Tenant         string  `yaml:"tenant"`
	SpansPerSecond float64 `yaml:"spans_per_second"`
	Burst          int     `yaml:"burst"`
}

// Storage selects the trace database.
type Storage struct {
	Driver      string `yaml:"driver"` // sqlite | postgres
	DSN         string `yaml:"dsn"`
	Schema      string `yaml:"schema"`
	TracesTable string `yaml:"traces_table"`
	SpansTable  string `yaml:"spans_table"`
	// Retention deletes spans stored longer ago than this (and the traces
	// left without spans, old delivery-log rows and dead letters), in the
	// background in small batches. 0 keeps everything.
	Retention Duration `yaml:"retention"`
}

// Ingest bounds the receivers and the write batches.
type Ingest struct {
	MaxRequestBytes   ByteSize `yaml:"max_request_bytes"`    // after decompression
	MaxBatchSpans     int      `yaml:"max_batch_spans"`      // a write batch grows to this many spans while the writers are busy
	MaxBatchDelay     Duration `yaml:"max_batch_delay"`      // while a writer is free, wait this long for more (0: none)
	MaxQueueSpans     int      `yaml:"max_queue_spans"`      // beyond this, answer 429 / RESOURCE_EXHAUSTED
	Writers           int      `yaml:"writers"`              // concurrent write transactions
	MaxAttrValueBytes ByteSize `yaml:"max_attr_value_bytes"` // longer values are truncated with a marker
	MaxAttributes     int      `yaml:"max_attributes"`       // per span; extra ones are dropped and counted

	MaxSpansPerRequest int               `yaml:"max_spans_per_request"` // beyond: 413 / RESOURCE_EXHAUSTED
	RateLimit          RateLimit         `yaml:"rate_limit"`            // per tenant, unless overridden
	TenantRateLimits   []TenantRateLimit `yaml:"tenant_rate_limits"`
}

// Log configures the gateway's own logs.
type Log struct {
	Level  string `yaml:"level"`  // debug | info | warn | error
	Format string `yaml:"format"` // text | json
}

// Destination is one fan-out target, served by a plugin process. Zero
// fan-out settings take the defaults of WithDefaults.
type Destination struct {
	Name   string         `yaml:"name"`
	Plugin string         `yaml:"plugin"` // built-in name or path to a plugin binary
	SHA256 string         `yaml:"sha256"` // optional pin of the plugin binary
	Config map[string]any `yaml:"config"` // handed to the plugin, which validates it

	Filter Filter `yaml:"filter"`
	// Sampling is the share of traces sent, decided per trace id so a trace
	// goes whole or not at all; nil sends everything.
	Sampling *float64       `yaml:"sampling"`
	Redact   []Redaction    `yaml:"redact"`
	Batch    Batch          `yaml:"batch"`
	Retry    Retry          `yaml:"retry"`
	Breaker  CircuitBreaker `yaml:"circuit_breaker"`
	Timeout  Duration       `yaml:"timeout"` // bound on one export call
	// Lease is how long a replica's claim on a batch lasts without renewal;
	// when a replica dies, another takes its batch over after this long.
	Lease Duration `yaml:"lease"`
}

// Filter selects the spans a destination receives: a span is sent when it
// matches Include (or Include is empty) and does not match Exclude.
type Filter struct {
	Include Match `yaml:"include"`
	Exclude Match `yaml:"exclude"`
}

// Match is a span pattern. Every field that is set must match (AND); a field
// matches when the span has any of its values (OR). An empty Match matches
// nothing when used as Exclude and everything as Include.
type Match struct {
	Services   []string          `yaml:"services"`   // resource service.name
	AgentIDs   []string          `yaml:"agent_ids"`  // the span's agent id (see docs/fanout.md)
	SpanTypes  []string          `yaml:"span_types"` // SpanTypes or NodeTypes
	Attributes map[string]string `yaml:"attributes"` // span attribute key: value
}

// IsZero reports whether the match sets no field.
func (m Match) IsZero() bool {
	return len(m.Services) == 0 && len(m.AgentIDs) == 0 && len(m.SpanTypes) == 0 && len(m.Attributes) == 0
}

// Redaction rewrites one attribute key (span, event and resource attributes)
// before spans leave for a destination. A key ending in "*" matches every
// key with that prefix.
type Redaction struct {
	Key    string `yaml:"key"`
	Action string `yaml:"action"` // drop | mask ("***") | hash (hex SHA-256); default mask
}

// Redaction actions.
const (
	RedactDrop = "drop"
	RedactMask = "mask"
	RedactHash = "hash"
)

// Batch bounds one export to a destination.
type Batch struct {
	MaxSpans int      `yaml:"max_spans"`
	MaxBytes ByteSize `yaml:"max_bytes"` // encoded OTLP size
	// MaxDelay is how long stored spans wait for a fuller batch.
	MaxDelay Duration `yaml:"max_delay"`
}

// Retry is the backoff after a retryable export failure: exponential from
// Initial up to Max, with jitter; a Retry-After from the destination wins.
// MaxElapsed, when set, dead-letters a batch that failed for that long.
type Retry struct {
	Initial    Duration `yaml:"initial"`
	Max        Duration `yaml:"max"`
	MaxElapsed Duration `yaml:"max_elapsed"`
}

// CircuitBreaker opens after Failures consecutive failed exports, waits
// CoolDown, then lets one export through as a probe.
type CircuitBreaker struct {
	Failures int      `yaml:"failures"`
	CoolDown Duration `yaml:"cool_down"`
}

// Fan-out defaults for a destination's zero settings.
const (
	// Collector-sized rather than SDK-sized (512) batches: a quarter of the
	// requests per span for the vendor, about a fifth less fan-out CPU per
	// span; max_bytes still bounds every request.
	DefaultBatchMaxSpans   = 2048
	DefaultBatchMaxBytes   = ByteSize(4 << 20)
	DefaultBatchMaxDelay   = Duration(500 * time.Millisecond)
	DefaultRetryInitial    = Duration(500 * time.Millisecond)
	DefaultRetryMax        = Duration(30 * time.Second)
	DefaultBreakerFailures = 5
	DefaultBreakerCoolDown = Duration(30 * time.Second)
	DefaultExportTimeout   = Duration(30 * time.Second)
	DefaultLease           = Duration(30 * time.Second)
)

// WithDefaults fills the fan-out settings left at zero.
func (d Destination) WithDefaults() Destination {
	set := func(v *Duration, def Duration) {
		if *v == 0 {
			*v = def
		}
	}
	if d.Batch.MaxSpans == 0 {
		d.Batch.MaxSpans = DefaultBatchMaxSpans
	}
	if d.Batch.MaxBytes == 0 {
		d.Batch.MaxBytes = DefaultBatchMaxBytes
	}
	set(&d.Batch.MaxDelay, DefaultBatchMaxDelay)
	set(&d.Retry.Initial, DefaultRetryInitial)
	set(&d.Retry.Max, max(DefaultRetryMax, d.Retry.Initial))
	if d.Breaker.Failures == 0 {
		d.Breaker.Failures = DefaultBreakerFailures
	}
	set(&d.Breaker.CoolDown, DefaultBreakerCoolDown)
	set(&d.Timeout, DefaultExportTimeout)
	set(&d.Lease, DefaultLease)
	for i := range d.Redact {
		if d.Redact[i].Action == "" {
			d.Redact[i].Action = RedactMask
		}
	}
	return d
}

// SpanTypes are the span types (semantics.Classify) a filter may name.
var SpanTypes = []string{
	semantics.TypeRun, semantics.TypeLLM, semantics.TypeEmbedding, semantics.TypeTool,
	semantics.TypePreHook, semantics.TypePostHook, semantics.TypeRetrieval,
	semantics.TypeDelegation, semantics.TypeOther,
}

// NodeTypes are the types AgentOS's trace view shows (semantics.NodeType),
// which a filter may name too; they are upper case, span types lower case.
var NodeTypes = []string{
	semantics.KindAgent, "TEAM", "WORKFLOW", semantics.KindLLM, semantics.KindEmbedding, semantics.KindTool,
	semantics.KindRetriever, semantics.KindReranker, semantics.KindGuardrail, semantics.KindEvaluator,
	semantics.KindPrompt, semantics.KindUnknown,
}

// Defaults returns the configuration used for keys the file leaves out.
func Defaults() Config {
	return Config{
		Server: Server{
			OTLPGRPC: "127.0.0.1:4317", OTLPHTTP: "127.0.0.1:4318", HTTP: "127.0.0.1:7070",
			TLS: TLS{ReloadInterval: Duration(10 * time.Second)},
			GRPC: GRPCConn{
				MaxConcurrentStreams:  100,
				MaxConnectionIdle:     Duration(5 * time.Minute),
				MaxConnectionAge:      Duration(10 * time.Minute),
				MaxConnectionAgeGrace: Duration(30 * time.Second),
				KeepaliveTime:         Duration(time.Minute),
				KeepaliveTimeout:      Duration(20 * time.Second),
			},
		},
		Storage: Storage{
			Driver: "sqlite", DSN: "file:kern-traces.db", Schema: "ai",
			TracesTable: "agno_traces", SpansTable: "agno_spans",
		},
		Ingest: Ingest{
			MaxRequestBytes:    16 << 20,
			MaxBatchSpans:      2048,
			MaxQueueSpans:      200_000,
			Writers:            2,
			MaxAttrValueBytes:  64 << 10,
			MaxAttributes:      1024,
			MaxSpansPerRequest: 50_000,
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
	addr("server.pprof", c.Server.Pprof)
	if c.Server.MaxConnections < 0 {
		add("server.max_connections", "must not be negative, got %d", c.Server.MaxConnections)
	}
	tenants := map[string]bool{}
	for _, t := range c.Server.Auth.Tokens {
		tenants[t.Tenant] = true
	}
	for _, e := range auth.Validate(c.Server.Auth.AuthTokens()) {
		add(fmt.Sprintf("server.auth.tokens[%d].%s", e.Index, e.Field), "%s", e.Msg)
	}
	tl := c.Server.TLS
	switch {
	case (tl.CertFile == "") != (tl.KeyFile == ""):
		add("server.tls", "cert_file and key_file go together")
	case tl.CertFile == "" && (tl.ClientCAFile != "" || tl.RequireClientCert):
		add("server.tls", "client_ca_file and require_client_cert need cert_file and key_file")
	case tl.RequireClientCert && tl.ClientCAFile == "":
		add("server.tls.require_client_cert", "needs client_ca_file")
	}
	g := c.Server.GRPC
	for _, f := range []struct {
		field string
		v     int64
	}{
		{"server.grpc.max_concurrent_streams", int64(g.MaxConcurrentStreams)},
		{"server.grpc.max_connection_idle", int64(g.MaxConnectionIdle)},
		{"server.grpc.max_connection_age", int64(g.MaxConnectionAge)},
		{"server.grpc.max_connection_age_grace", int64(g.MaxConnectionAgeGrace)},
		{"server.grpc.keepalive_time", int64(g.KeepaliveTime)},
		{"server.grpc.keepalive_timeout", int64(g.KeepaliveTimeout)},
	} {
		if f.v < 0 {
			add(f.field, "must not be negative")
		}
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
	if c.Storage.Retention < 0 {
		add("storage.retention", "must not be negative (0 keeps spans forever)")
	}

	in := c.Ingest
	positive := func(field string, v int64) {
		if v <= 0 {
			add(field, "must be positive, got %d", v)
		}
	}
	positive("ingest.max_request_bytes", int64(in.MaxRequestBytes))
	positive("ingest.max_batch_spans", int64(in.MaxBatchSpans))
	if in.MaxBatchDelay < 0 {
		add("ingest.max_batch_delay", "must not be negative (0 writes at once when a writer is free), got %v", in.MaxBatchDelay.D())
	}
	positive("ingest.max_queue_spans", int64(in.MaxQueueSpans))
	positive("ingest.writers", int64(in.Writers))
	positive("ingest.max_attr_value_bytes", int64(in.MaxAttrValueBytes))
	positive("ingest.max_attributes", int64(in.MaxAttributes))
	if in.MaxQueueSpans > 0 && in.MaxBatchSpans > in.MaxQueueSpans {
		add("ingest.max_batch_spans", "must not exceed max_queue_spans (%d)", in.MaxQueueSpans)
	}
	if in.MaxSpansPerRequest < 0 {
		add("ingest.max_spans_per_request", "must not be negative (0 disables), got %d", in.MaxSpansPerRequest)
	}
	if in.RateLimit.SpansPerSecond < 0 || in.RateLimit.Burst < 0 {
		add("ingest.rate_limit", "spans_per_second and burst must not be negative")
	}
	seenTenant := map[string]int{}
	for i, r := range in.TenantRateLimits {
		p := fmt.Sprintf("ingest.tenant_rate_limits[%d]", i)
		switch j, dup := seenTenant[r.Tenant]; {
		case !tenants[r.Tenant]:
			add(p+".tenant", "%q is not the tenant of any server.auth.tokens entry", r.Tenant)
		case dup:
			add(p+".tenant", "%q already has a limit at tenant_rate_limits[%d]", r.Tenant, j)
		}
		seenTenant[r.Tenant] = i
		if r.SpansPerSecond < 0 || r.Burst < 0 {
			add(p, "spans_per_second and burst must not be negative")
		}
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
		validateFanout(p, d, add)
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

// validateFanout checks a destination's routing, batching and failure
// settings. Zero values mean "default" and are fine.
func validateFanout(p string, d Destination, add func(field, format string, args ...any)) {
	for _, m := range []struct {
		field string
		m     Match
	}{{p + ".filter.include", d.Filter.Include}, {p + ".filter.exclude", d.Filter.Exclude}} {
		for i, v := range m.m.Services {
			if v == "" {
				add(fmt.Sprintf("%s.services[%d]", m.field, i), "must not be empty")
			}
		}
		for i, v := range m.m.AgentIDs {
			if v == "" {
				add(fmt.Sprintf("%s.agent_ids[%d]", m.field, i), "must not be empty")
			}
		}
		for i, v := range m.m.SpanTypes {
			if !slices.Contains(SpanTypes, v) && !slices.Contains(NodeTypes, v) {
				add(fmt.Sprintf("%s.span_types[%d]", m.field, i), "want one of %s, or an AgentOS node type: %s; got %q",
					strings.Join(SpanTypes, ", "), strings.Join(NodeTypes, ", "), v)
			}
		}
		for k := range m.m.Attributes {
			if k == "" {
				add(m.field+".attributes", "attribute keys must not be empty")
			}
		}
	}
	if d.Sampling != nil && !(*d.Sampling > 0 && *d.Sampling <= 1) {
		add(p+".sampling", "want a share of traces in (0, 1], got %g (remove the destination to send nothing)", *d.Sampling)
	}
	keys := map[string]int{}
	for i, r := range d.Redact {
		f := fmt.Sprintf("%s.redact[%d]", p, i)
		switch {
		case r.Key == "" || r.Key == "*":
			add(f+".key", "required: an attribute key, or a prefix ending in *")
		default:
			if j, dup := keys[r.Key]; dup {
				add(f+".key", "%q is already redacted by redact[%d]", r.Key, j)
			}
			keys[r.Key] = i
		}
		switch r.Action {
		case "", RedactDrop, RedactMask, RedactHash:
		default:
			add(f+".action", "want drop, mask or hash, got %q", r.Action)
		}
	}
	nonNegative := func(field string, v int64) {
		if v < 0 {
			add(field, "must not be negative (0 takes the default)")
		}
	}
	nonNegative(p+".batch.max_spans", int64(d.Batch.MaxSpans))
	nonNegative(p+".batch.max_bytes", int64(d.Batch.MaxBytes))
	nonNegative(p+".batch.max_delay", int64(d.Batch.MaxDelay))
	nonNegative(p+".retry.initial", int64(d.Retry.Initial))
	nonNegative(p+".retry.max", int64(d.Retry.Max))
	nonNegative(p+".retry.max_elapsed", int64(d.Retry.MaxElapsed))
	nonNegative(p+".circuit_breaker.failures", int64(d.Breaker.Failures))
	nonNegative(p+".circuit_breaker.cool_down", int64(d.Breaker.CoolDown))
	nonNegative(p+".timeout", int64(d.Timeout))
	nonNegative(p+".lease", int64(d.Lease))
	if d.Batch.MaxBytes > 0 && d.Batch.MaxBytes < 1024 {
		add(p+".batch.max_bytes", "must be at least 1KiB, got %d", int64(d.Batch.MaxBytes))
	}
	if d.Retry.Max > 0 && d.Retry.Initial > d.Retry.Max {
		add(p+".retry.initial", "must not exceed retry.max (%s)", d.Retry.Max.D())
	}
	if d.Lease > 0 && d.Lease.D() < time.Second {
		add(p+".lease", "must be at least 1s, got %s", d.Lease.D())
	}
}
