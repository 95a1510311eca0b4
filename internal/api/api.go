// Package api serves the trace database as a read-only JSON API: a trace
// list with filters and keyset pagination, one trace as a span tree, a span
// search and a summary over a time range. It reads the AgentOS tables
// (agno_traces, agno_spans) through store.Store and works on both
// PostgreSQL and SQLite. docs/api.md and docs/openapi.yaml describe it.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/kern-agents/trace-gateway/internal/auth"
	"github.com/kern-agents/trace-gateway/internal/store"
)

// Options tune the API. The zero value is usable.
type Options struct {
	// Auth, when not nil and enabled, checks the bearer token every
	// request must present ("Authorization: Bearer <token>") and names its
	// tenant: a tenant's token reads only its own tenant's traces and
	// spans, an admin token everything. Nil or disabled means no
	// authentication, and everything is visible. Its token set may change
	// while the API serves (config reload).
	Auth *auth.Authenticator
	// QueryTimeout bounds each request's database work. Default 15s.
	QueryTimeout time.Duration
	// MaxSpans caps how many spans one trace response carries (the earliest
	// by start time); the response says when it was truncated. Default 10000.
	MaxSpans int
	// ScanWindow caps how many rows one page examines when a filter cannot
	// use an index (trace name search, span type/name/attribute filters).
	// A page may then hold fewer rows than asked and still have a next
	// cursor. Default 20000.
	ScanWindow int
	// Now is the clock for default time ranges; tests set it. Default time.Now.
	Now func() time.Time
	// Logger receives database errors. Default slog.Default().
	Logger *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.QueryTimeout <= 0 {
		o.QueryTimeout = 15 * time.Second
	}
	if o.MaxSpans <= 0 {
		o.MaxSpans = 10000
	}
	if o.ScanWindow <= 0 {
		o.ScanWindow = 20000
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// Limits of a page.
const (
	defaultLimit = 50
	maxLimit     = 500
)

type server struct {
	st        store.Store
	opts      Options
	traces    string // qualified table names
	spans     string
	resources string
	// traceResources is the trace resources table (each trace's usual
	// origin), beside the spans table.
	traceResources string
	origins        originCache
	dialect        string
}

// New returns the handler for /api/traces, /api/traces/{trace_id},
// /api/spans and /api/summary. Mount it at the root of the HTTP server (or
// under "/api/"); paths are matched in full.
func New(st store.Store, opts Options) http.Handler {
	s := newServer(st, opts)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/traces", s.listTraces)
	mux.HandleFunc("GET /api/traces/{trace_id}", s.getTrace)
	mux.HandleFunc("GET /api/spans", s.listSpans)
	mux.HandleFunc("GET /api/summary", s.summary)
	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			writeJSON(w, http.StatusMethodNotAllowed, apiError{Error: "the API is read-only: use GET"})
			return
		}
		writeJSON(w, http.StatusNotFound, apiError{Error: "no such endpoint"})
	})
	return s.authenticate(mux)
}

func newServer(st store.Store, opts Options) *server {
	opts = opts.withDefaults()
	s := &server{st: st, opts: opts, dialect: st.Dialect()}
	s.traces, s.spans = st.Tables()
	s.resources = besideSpans(s.spans, store.ResourcesTable)
	s.traceResources = besideSpans(s.spans, store.TraceResourcesTable)
	return s
}

// authenticate checks the bearer token (auth.Authenticator compares it in
// constant time against every configured token) and answers 401 the same
// way whether the token is missing, unknown or malformed. An accepted
// request carries whose data it may read (viewerFrom).
func (s *server) authenticate(next http.Handler) http.Handler {
	a := s.opts.Auth
	if a == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !a.Enabled() {
			next.ServeHTTP(w, r)
			return
		}
		// Only the Authorization header: the API never took x-api-key.
		id, ok := a.Identify(auth.Credential(r.Header.Get("Authorization"), ""))
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="kern-trace-gateway"`)
			writeJSON(w, http.StatusUnauthorized, apiError{Error: "missing or invalid bearer token"})
			return
		}
		if !id.Admin {
			r = r.WithContext(context.WithValue(r.Context(), tenantKey{}, id.Tenant))
		}
		next.ServeHTTP(w, r)
	})
}

type tenantKey struct{}

// viewerTenant is the one tenant whose data the request may read; nil when
// it may read every tenant's (an admin token, or no authentication).
func viewerTenant(r *http.Request) *string {
	if t, ok := r.Context().Value(tenantKey{}).(string); ok {
		return &t
	}
	return nil
}

// apiError is every error body: what is wrong and, for a bad request, which
// parameter.
type apiError struct {
	Error string `json:"error"`
	Param string `json:"param,omitempty"`
}

// paramError is a client mistake in one query parameter; it becomes a 400.
type paramError struct {
	param string
	msg   string
}

func (e *paramError) Error() string { return e.param + ": " + e.msg }

func badParam(param, msg string) error { return &paramError{param: param, msg: msg} }

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(true)
	_ = enc.Encode(v)
}

// fail maps err to a response: 400 for parameter errors, 503 when the
// database is unavailable or the query timed out, 500 otherwise (details go
// to the log, not to the client).
func (s *server) fail(w http.ResponseWriter, r *http.Request, err error) {
	var pe *paramError
	switch {
	case errors.As(err, &pe):
		writeJSON(w, http.StatusBadRequest, apiError{Error: pe.msg, Param: pe.param})
	case errors.Is(err, store.ErrUnavailable), errors.Is(err, context.DeadlineExceeded), s.unreachable(r.Context()):
		s.opts.Logger.Warn("api: database unavailable", "path", r.URL.Path, "err", err)
		writeJSON(w, http.StatusServiceUnavailable, apiError{Error: "trace database unavailable"})
	case errors.Is(err, context.Canceled):
		// The client went away; nobody reads the answer.
		w.WriteHeader(499)
	default:
		s.opts.Logger.Error("api: query failed", "path", r.URL.Path, "err", err)
		writeJSON(w, http.StatusInternalServerError, apiError{Error: "internal error"})
	}
}

// unreachable reports whether the database fails a ping, so that a query
// error caused by a lost connection answers 503 rather than 500.
func (s *server) unreachable(ctx context.Context) bool {
	if ctx.Err() != nil {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	return s.st.Ping(ctx) != nil
}

func (s *server) ctx(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), s.opts.QueryTimeout)
}
