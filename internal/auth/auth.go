// Package auth authenticates OTLP senders with static bearer tokens, each
// bound to a tenant, on both transports: an HTTP middleware and gRPC
// interceptors. The tenant of an authenticated request is put into its
// context (TenantFrom) so the receiver can stamp it on the stored spans
// (StampTenant).
//
// Tokens are compared in constant time: the presented token and every
// configured token are reduced to SHA-256 digests, so the comparison neither
// leaks a token's length nor stops at the first match. A failed request gets
// the same answer whatever went wrong (no header, wrong scheme, unknown
// token), so the answer never tells a caller whether a token exists.
//
// An Authenticator built from an empty token list lets every request through:
// authentication is off. A list whose entries are all empty rejects every
// request, so a secret that expanded to "" fails closed.
package auth

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"mime"
	"net/http"
	"regexp"
	"strings"
	"sync/atomic"

	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// Token is one accepted credential and the tenant it stands for. Several
// tokens may map to one tenant (that is how a token is rotated). Admin
// marks an operator's token: the trace API shows it every tenant's data.
type Token struct {
	Token  string `yaml:"token"`
	Tenant string `yaml:"tenant"`
	Admin  bool   `yaml:"admin"`
}

// Identity is who an accepted credential stands for.
type Identity struct {
	Tenant string
	Admin  bool
}

// Reasons passed to an Observer.
const (
	ReasonMissing = "missing" // no credential in the request
	ReasonInvalid = "invalid" // a credential that matches no token
)

// Observer is told about every rejected request (for metrics); transport is
// "http" or "grpc". It must be cheap and safe for concurrent use.
type Observer func(transport, reason string)

// Option configures an Authenticator.
type Option func(*Authenticator)

// WithObserver reports rejected requests to fn.
func WithObserver(fn Observer) Option { return func(a *Authenticator) { a.observe = fn } }

// Authenticator checks credentials against a set of tokens. It is safe for
// concurrent use; Update swaps the set atomically (config reload).
type Authenticator struct {
	set     atomic.Pointer[tokenSet]
	observe Observer
}

type tokenSet struct {
	enabled bool
	entries []entry
}

type entry struct {
	digest [sha256.Size]byte
	id     Identity
	usable bool // false for an empty token, which never matches
}

// New returns an Authenticator accepting tokens; an empty list disables
// authentication.
func New(tokens []Token, opts ...Option) *Authenticator {
	a := &Authenticator{}
	for _, o := range opts {
		o(a)
	}
	a.Update(tokens)
	return a
}

// Update replaces the accepted tokens; requests already authenticated keep
// their tenant.
func (a *Authenticator) Update(tokens []Token) {
	s := &tokenSet{enabled: len(tokens) > 0, entries: make([]entry, len(tokens))}
	for i, t := range tokens {
		s.entries[i] = entry{digest: sha256.Sum256([]byte(t.Token)), id: Identity{Tenant: t.Tenant, Admin: t.Admin}, usable: t.Token != ""}
	}
	a.set.Store(s)
}

// Enabled reports whether requests must carry a token.
func (a *Authenticator) Enabled() bool { return a.set.Load().enabled }

// Authenticate returns the tenant of credential, or false when it matches
// no configured token. Every configured token is compared, in constant time,
// whatever the input.
func (a *Authenticator) Authenticate(credential string) (tenant string, ok bool) {
	id, ok := a.Identify(credential)
	return id.Tenant, ok
}

// Identify is Authenticate returning the whole identity (tenant and admin
// flag).
func (a *Authenticator) Identify(credential string) (Identity, bool) {
	s := a.set.Load()
	d := sha256.Sum256([]byte(credential))
	match := -1
	for i := range s.entries {
		e := &s.entries[i]
		eq := compareDigests(d[:], e.digest[:])
		if !e.usable {
			eq = 0
		}
		// Keep the first match without branching on the comparison.
		first := eq & subtle.ConstantTimeEq(int32(match), -1)
		match = subtle.ConstantTimeSelect(first, i, match)
	}
	if match < 0 {
		return Identity{}, false
	}
	return s.entries[match].id, true
}

// compareDigests is subtle.ConstantTimeCompare; a variable so a test can
// check that every entry is compared, always on fixed-length digests.
var compareDigests = subtle.ConstantTimeCompare

// Credential extracts the token from an Authorization header value
// ("Bearer T", scheme case-insensitive) or, when that is empty, from an
// x-api-key value. It returns "" when neither holds one.
func Credential(authorization, apiKey string) string {
	if authorization != "" {
		scheme, tok, found := strings.Cut(strings.TrimSpace(authorization), " ")
		if !found || !strings.EqualFold(scheme, "Bearer") {
			return ""
		}
		return strings.TrimSpace(tok)
	}
	return strings.TrimSpace(apiKey)
}

// APIKeyHeader is the alternative header (and gRPC metadata key) carrying a
// bare token, for senders that cannot set Authorization.
const APIKeyHeader = "X-Api-Key"

// The one answer to every failed request, in the encoding of the request:
// OTLP/HTTP wants a google.rpc.Status body in the request's content type
// (protobuf or JSON), anything else gets text.
const unauthorizedMsg = "unauthorized: send a valid token as 'Authorization: Bearer <token>'"

var (
	unauthorizedText  = []byte(unauthorizedMsg + "\n")
	unauthorizedProto = mustMarshal(proto.Marshal(unauthorizedStatus()))
	unauthorizedJSON  = mustMarshal(protojson.Marshal(unauthorizedStatus()))
)

func unauthorizedStatus() *spb.Status {
	return &spb.Status{Code: int32(codes.Unauthenticated), Message: unauthorizedMsg}
}

func mustMarshal(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

// HTTP wraps next so that it only sees authenticated requests, with the
// tenant in their context. Failures get 401 with WWW-Authenticate: Bearer.
func (a *Authenticator) HTTP(next http.Handler) http.Handler { return a.guard(next, false) }

// AdminHTTP is HTTP for operations on the gateway itself (POST /-/reload):
// only an admin token passes; any other configured token gets 403, since
// a tenant's sender must not be able to change what the gateway runs.
func (a *Authenticator) AdminHTTP(next http.Handler) http.Handler { return a.guard(next, true) }

func (a *Authenticator) guard(next http.Handler, admin bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !a.Enabled() {
			next.ServeHTTP(w, r)
			return
		}
		cred := Credential(r.Header.Get("Authorization"), r.Header.Get(APIKeyHeader))
		id, ok := a.Identify(cred)
		if !ok {
			a.reject("http", cred)
			writeUnauthorized(w, r)
			return
		}
		if admin && !id.Admin {
			w.Header().Set("Content-Type", "application/json; charset=utf-8")
			w.Header().Set("Cache-Control", "no-store")
			w.WriteHeader(http.StatusForbidden)
			_, _ = w.Write([]byte(`{"error":"this operation needs an admin token (admin: true)"}` + "\n"))
			return
		}
		next.ServeHTTP(w, r.WithContext(WithTenant(r.Context(), id.Tenant)))
	})
}

func writeUnauthorized(w http.ResponseWriter, r *http.Request) {
	contentType, body := "text/plain; charset=utf-8", unauthorizedText
	switch mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt {
	case "application/x-protobuf":
		contentType, body = mt, unauthorizedProto
	case "application/json":
		contentType, body = mt, unauthorizedJSON
	}
	h := w.Header()
	h.Set("WWW-Authenticate", `Bearer realm="kern-gateway"`)
	h.Set("Content-Type", contentType)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusUnauthorized)
	_, _ = w.Write(body)
}

func (a *Authenticator) reject(transport, cred string) {
	if a.observe == nil {
		return
	}
	reason := ReasonInvalid
	if cred == "" {
		reason = ReasonMissing
	}
	a.observe(transport, reason)
}

type tenantKey struct{}

// WithTenant returns ctx carrying tenant.
func WithTenant(ctx context.Context, tenant string) context.Context {
	return context.WithValue(ctx, tenantKey{}, tenant)
}

// TenantFrom returns the tenant of an authenticated request; ok is false
// when the request was not authenticated (authentication off).
func TenantFrom(ctx context.Context) (tenant string, ok bool) {
	tenant, ok = ctx.Value(tenantKey{}).(string)
	return tenant, ok
}

// tenantRe matches a tenant name: it becomes a stored attribute value and a
// metrics label, so it is kept short and plain.
var tenantRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$`)

// MinTokenLength is the shortest token Validate accepts (16 characters; use
// e.g. `openssl rand -hex 32`).
const MinTokenLength = 16

// TokenError is one problem with a configured token, located by its index in
// the list and the field ("token" or "tenant").
type TokenError struct {
	Index int
	Field string
	Msg   string
}

func (e TokenError) Error() string { return fmt.Sprintf("tokens[%d].%s: %s", e.Index, e.Field, e.Msg) }

// Validate checks a token list for config validation: every token long
// enough and unique, every tenant a plain name. Messages never include a
// token's value.
func Validate(tokens []Token) []TokenError {
	var errs []TokenError
	seen := map[[sha256.Size]byte]int{}
	for i, t := range tokens {
		switch {
		case t.Token == "":
			errs = append(errs, TokenError{i, "token", "required (is its environment variable empty?)"})
		case len(t.Token) < MinTokenLength:
			errs = append(errs, TokenError{i, "token", fmt.Sprintf("too short: at least %d characters", MinTokenLength)})
		default:
			d := sha256.Sum256([]byte(t.Token))
			if j, dup := seen[d]; dup {
				errs = append(errs, TokenError{i, "token", fmt.Sprintf("same token as tokens[%d]", j)})
			} else {
				seen[d] = i
			}
		}
		if !tenantRe.MatchString(t.Tenant) {
			errs = append(errs, TokenError{i, "tenant",
				fmt.Sprintf("want letters, digits, '.', '_' or '-' (at most 63), got %q", t.Tenant)})
		}
	}
	return errs
}
