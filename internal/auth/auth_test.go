package auth

import (
	"crypto/sha256"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

const (
	tokA     = "token-a-0123456789abcdef"
	tokA2    = "token-a-rotated-fedcba9876543210"
	tokB     = "token-a-0123456789abcdef-and-more" // tokA is a prefix of tokB
	tokEmpty = ""
)

var testTokens = []Token{
	{Token: tokA, Tenant: "team-a"},
	{Token: tokB, Tenant: "team-b"},
	{Token: tokA2, Tenant: "team-a"},
}

// serve runs one request through the middleware and reports what the inner
// handler saw.
func serve(t *testing.T, a *Authenticator, header http.Header) (resp *http.Response, body string, tenant string, reached bool) {
	t.Helper()
	h := a.HTTP(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached = true
		var ok bool
		tenant, ok = TenantFrom(r.Context())
		if !ok {
			tenant = "<none>"
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	req := httptest.NewRequest(http.MethodPost, "/v1/traces", strings.NewReader("x"))
	for k, vs := range header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	resp = rec.Result()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b), tenant, reached
}

func TestHTTP(t *testing.T) {
	bearer := func(v string) http.Header { return http.Header{"Authorization": {v}} }
	tests := []struct {
		name   string
		tokens []Token
		header http.Header
		tenant string // "" means 401 expected
	}{
		{"disabled passes without header", nil, nil, "<none>"},
		{"disabled ignores a header", nil, bearer("Bearer whatever"), "<none>"},
		{"missing header", testTokens, nil, ""},
		{"empty header", testTokens, bearer(""), ""},
		{"wrong scheme", testTokens, bearer("Basic " + tokA), ""},
		{"scheme without token", testTokens, bearer("Bearer"), ""},
		{"scheme with blank token", testTokens, bearer("Bearer   "), ""},
		{"bare token without scheme", testTokens, bearer(tokA), ""},
		{"wrong token", testTokens, bearer("Bearer not-a-configured-token"), ""},
		{"right token", testTokens, bearer("Bearer " + tokA), "team-a"},
		{"scheme is case-insensitive", testTokens, bearer("bearer " + tokA), "team-a"},
		{"second token of a tenant", testTokens, bearer("Bearer " + tokA2), "team-a"},
		{"longer token whose prefix is another token", testTokens, bearer("Bearer " + tokB), "team-b"},
		{"prefix of a token", testTokens, bearer("Bearer " + tokA[:len(tokA)-1]), ""},
		{"token with a suffix", testTokens, bearer("Bearer " + tokA + "x"), ""},
		{"x-api-key", testTokens, http.Header{"X-Api-Key": {tokB}}, "team-b"},
		{"wrong x-api-key", testTokens, http.Header{"X-Api-Key": {"nope"}}, ""},
		{"authorization wins over x-api-key", testTokens,
			http.Header{"Authorization": {"Bearer wrong"}, "X-Api-Key": {tokA}}, ""},
		{"only empty tokens configured fail closed", []Token{{Token: tokEmpty, Tenant: "x"}}, bearer("Bearer "), ""},
		{"only empty tokens configured, no header", []Token{{Token: tokEmpty, Tenant: "x"}}, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body, tenant, reached := serve(t, New(tt.tokens), tt.header)
			if tt.tenant == "" {
				if reached || resp.StatusCode != http.StatusUnauthorized {
					t.Fatalf("status %d, handler reached %v; want 401 and not reached", resp.StatusCode, reached)
				}
				if got := resp.Header.Get("WWW-Authenticate"); !strings.HasPrefix(got, "Bearer") {
					t.Errorf("WWW-Authenticate = %q", got)
				}
				if body != string(unauthorizedText) {
					t.Errorf("body = %q; every failure must answer the same body", body)
				}
				return
			}
			if !reached || resp.StatusCode != http.StatusNoContent {
				t.Fatalf("status %d, reached %v; want the handler to answer", resp.StatusCode, reached)
			}
			if tenant != tt.tenant {
				t.Errorf("tenant = %q, want %q", tenant, tt.tenant)
			}
		})
	}
}

// TestUnauthorizedBody: OTLP/HTTP senders get a google.rpc.Status in their
// request's encoding, others text; the message is the same.
func TestUnauthorizedBody(t *testing.T) {
	a := New(testTokens)
	for _, ct := range []string{"application/x-protobuf", "application/json", "text/plain", ""} {
		t.Run(ct, func(t *testing.T) {
			resp, body, _, _ := serve(t, a, http.Header{"Content-Type": {ct}, "Authorization": {"Bearer nope"}})
			if resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("status %d", resp.StatusCode)
			}
			st := &spb.Status{}
			switch ct {
			case "application/x-protobuf":
				if err := proto.Unmarshal([]byte(body), st); err != nil {
					t.Fatal(err)
				}
			case "application/json":
				if err := protojson.Unmarshal([]byte(body), st); err != nil {
					t.Fatal(err)
				}
			default:
				st.Code, st.Message = int32(codes.Unauthenticated), strings.TrimSuffix(body, "\n")
			}
			if st.Code != int32(codes.Unauthenticated) || st.Message != unauthorizedMsg {
				t.Fatalf("body decodes to %v", st)
			}
			if got := resp.Header.Get("Content-Type"); ct != "" && ct != "text/plain" && got != ct {
				t.Errorf("Content-Type %q, want %q", got, ct)
			}
		})
	}
}

// TestFailuresIndistinguishable checks that an unknown token and a missing
// header get byte-identical answers, so probing cannot tell them apart.
func TestFailuresIndistinguishable(t *testing.T) {
	a := New(testTokens)
	var first *http.Response
	var firstBody string
	for _, h := range []http.Header{
		nil,
		{"Authorization": {"Bearer nope"}},
		{"Authorization": {"Bearer " + tokA[:5]}},
		{"Authorization": {"Basic abc"}},
		{"X-Api-Key": {"nope"}},
	} {
		resp, body, _, _ := serve(t, a, h)
		if first == nil {
			first, firstBody = resp, body
			continue
		}
		if resp.StatusCode != first.StatusCode || body != firstBody {
			t.Errorf("%v: answer %d %q differs from %d %q", h, resp.StatusCode, body, first.StatusCode, firstBody)
		}
		for _, k := range []string{"WWW-Authenticate", "Content-Type", "Content-Length"} {
			if resp.Header.Get(k) != first.Header.Get(k) {
				t.Errorf("%v: header %s = %q, first answer had %q", h, k, resp.Header.Get(k), first.Header.Get(k))
			}
		}
	}
}

// TestEveryTokenComparedOnDigests checks the structure that makes the check
// timing-safe: each configured token is compared exactly once per request,
// whether it matches first, last or not at all, and always as a fixed-length
// digest (so neither the position of a match nor a token's length shows).
func TestEveryTokenComparedOnDigests(t *testing.T) {
	orig := compareDigests
	t.Cleanup(func() { compareDigests = orig })
	var calls int
	var lengths []int
	compareDigests = func(x, y []byte) int {
		calls++
		lengths = append(lengths, len(x), len(y))
		return orig(x, y)
	}
	tokens := []Token{
		{Token: "short-token-0001", Tenant: "first"},
		{Token: strings.Repeat("long", 40), Tenant: "middle"},
		{Token: "", Tenant: "empty"},
		{Token: "another-token-9999", Tenant: "last"},
	}
	a := New(tokens)
	for _, tc := range []struct {
		cred, tenant string
		ok           bool
	}{
		{"short-token-0001", "first", true},
		{"another-token-9999", "last", true},
		{"no-such-token", "", false},
		{"", "", false},
		{strings.Repeat("x", 10_000), "", false},
	} {
		calls, lengths = 0, nil
		tenant, ok := a.Authenticate(tc.cred)
		if ok != tc.ok || tenant != tc.tenant {
			t.Errorf("Authenticate(%.20q) = %q, %v; want %q, %v", tc.cred, tenant, ok, tc.tenant, tc.ok)
		}
		if calls != len(tokens) {
			t.Errorf("Authenticate(%.20q) compared %d tokens, want all %d", tc.cred, calls, len(tokens))
		}
		for _, l := range lengths {
			if l != sha256.Size {
				t.Errorf("Authenticate(%.20q) compared a %d-byte value, want %d-byte digests", tc.cred, l, sha256.Size)
			}
		}
	}
}

func TestDuplicateTokenFirstWins(t *testing.T) {
	a := New([]Token{{Token: tokA, Tenant: "one"}, {Token: tokA, Tenant: "two"}})
	if tenant, ok := a.Authenticate(tokA); !ok || tenant != "one" {
		t.Fatalf("Authenticate = %q, %v; want the first entry", tenant, ok)
	}
}

// TestIdentify: the identity of a token carries its tenant and admin flag,
// and Update may turn a token into an admin token or back.
func TestIdentify(t *testing.T) {
	a := New([]Token{{Token: tokA, Tenant: "team-a"}, {Token: tokB, Tenant: "ops", Admin: true}})
	for _, c := range []struct {
		cred string
		want Identity
		ok   bool
	}{
		{tokA, Identity{Tenant: "team-a"}, true},
		{tokB, Identity{Tenant: "ops", Admin: true}, true},
		{"", Identity{}, false},
		{tokA + "x", Identity{}, false},
	} {
		if got, ok := a.Identify(c.cred); got != c.want || ok != c.ok {
			t.Errorf("Identify(%.8q) = %+v, %v; want %+v, %v", c.cred, got, ok, c.want, c.ok)
		}
	}
	a.Update([]Token{{Token: tokA, Tenant: "team-a", Admin: true}, {Token: tokB, Tenant: "ops"}})
	if id, _ := a.Identify(tokA); !id.Admin {
		t.Error("Update did not make tokA an admin token")
	}
	if id, _ := a.Identify(tokB); id.Admin {
		t.Error("Update left tokB an admin token")
	}
}

func TestUpdate(t *testing.T) {
	a := New(nil)
	if a.Enabled() {
		t.Fatal("empty list must disable authentication")
	}
	a.Update([]Token{{Token: tokA, Tenant: "team-a"}})
	if !a.Enabled() {
		t.Fatal("Update with tokens must enable authentication")
	}
	if _, ok := a.Authenticate(tokB); ok {
		t.Fatal("unknown token accepted after Update")
	}
	a.Update([]Token{{Token: tokB, Tenant: "team-b"}})
	if _, ok := a.Authenticate(tokA); ok {
		t.Fatal("removed token still accepted")
	}
	if tenant, ok := a.Authenticate(tokB); !ok || tenant != "team-b" {
		t.Fatalf("new token: %q, %v", tenant, ok)
	}

	// Concurrent readers and an updater (run with -race).
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 200; j++ {
				a.Authenticate(tokB)
			}
		}()
	}
	for j := 0; j < 50; j++ {
		a.Update(testTokens)
	}
	wg.Wait()
}

func TestObserver(t *testing.T) {
	var got []string
	a := New(testTokens, WithObserver(func(transport, reason string) { got = append(got, transport+"/"+reason) }))
	serve(t, a, nil)
	serve(t, a, http.Header{"Authorization": {"Bearer nope"}})
	serve(t, a, http.Header{"Authorization": {"Bearer " + tokA}})
	want := []string{"http/missing", "http/invalid"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("observer saw %v, want %v", got, want)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		tokens []Token
		want   []string // TokenError strings
	}{
		{"ok", testTokens, nil},
		{"empty token", []Token{{Token: "", Tenant: "a"}}, []string{"tokens[0].token: required"}},
		{"short token", []Token{{Token: "abc", Tenant: "a"}}, []string{"tokens[0].token: too short"}},
		{"duplicate", []Token{{Token: tokA, Tenant: "a"}, {Token: tokA, Tenant: "b"}},
			[]string{"tokens[1].token: same token as tokens[0]"}},
		{"bad tenant", []Token{{Token: tokA, Tenant: "has space"}}, []string{"tokens[0].tenant: want letters"}},
		{"missing tenant", []Token{{Token: tokA}}, []string{"tokens[0].tenant: want letters"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			errs := Validate(tt.tokens)
			if len(errs) != len(tt.want) {
				t.Fatalf("Validate = %v, want %d errors", errs, len(tt.want))
			}
			for i, e := range errs {
				if !strings.HasPrefix(e.Error(), tt.want[i]) {
					t.Errorf("error %d = %q, want prefix %q", i, e.Error(), tt.want[i])
				}
				for _, tok := range tt.tokens {
					if tok.Token != "" && len(tok.Token) >= 3 && strings.Contains(e.Error(), tok.Token) {
						t.Errorf("error %q reveals a token", e.Error())
					}
				}
			}
		})
	}
}
