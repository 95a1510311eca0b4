package gateway

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/kern-agents/trace-gateway/internal/config"
)

// TestTenantScopedAPI sends spans through the receiver with two tenants'
// tokens and reads them back through the gateway's HTTP listener: each
// tenant sees only its own trace, the other's answers like a missing one,
// an admin token sees both, and so does everyone once a reload removes
// the tokens.
func TestTenantScopedAPI(t *testing.T) {
	const tokenAdmin = "token-operator-0123456789"
	for _, driver := range []string{"sqlite", "postgres"} {
		t.Run(driver, func(t *testing.T) {
			cfg := testConfig(t, driver)
			cfg.Server.Auth.Tokens = []config.AuthToken{
				{Token: tokenA, Tenant: "team-a"},
				{Token: tokenB, Tenant: "team-b"},
				{Token: tokenAdmin, Tenant: "ops", Admin: true},
			}
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			g := startGateway(t, cfg)
			client := &http.Client{Timeout: 10 * time.Second}
			do := func(method, url, token string, body []byte) (int, []byte) {
				t.Helper()
				return request(t, client, method, url, token, body)
			}
			// spansBody's resource claims tenant "spoofed"; the receiver
			// stamps the token's tenant over it.
			for _, s := range []struct {
				token string
				n     int
				trace byte
			}{{tokenA, 2, 0xa1}, {tokenB, 3, 0xb1}} {
				if code, body := do(http.MethodPost, "http://"+g.Addrs().OTLPHTTP+"/v1/traces", s.token, spansBody(t, s.n, s.trace)); code != 200 {
					t.Fatalf("export: %d %s", code, body)
				}
			}
			traceA := hex.EncodeToString(append([]byte{0xa1, 1}, make([]byte, 14)...))
			traceB := hex.EncodeToString(append([]byte{0xb1, 1}, make([]byte, 14)...))
			api := "http://" + g.Addrs().HTTP + "/api/"
			traces := func(token string) []string {
				t.Helper()
				code, body := do(http.MethodGet, api+"traces", token, nil)
				if code != 200 {
					t.Fatalf("list: %d %s", code, body)
				}
				var l struct {
					Traces []struct {
						TraceID string `json:"trace_id"`
					} `json:"traces"`
				}
				if err := json.Unmarshal(body, &l); err != nil {
					t.Fatal(err)
				}
				var ids []string
				for _, tr := range l.Traces {
					ids = append(ids, tr.TraceID)
				}
				slices.Sort(ids)
				return ids
			}
			spanCount := func(token, trace string) int {
				t.Helper()
				code, body := do(http.MethodGet, api+"spans?trace_id="+trace, token, nil)
				if code != 200 {
					t.Fatalf("spans: %d %s", code, body)
				}
				var l struct {
					Spans []json.RawMessage `json:"spans"`
				}
				if err := json.Unmarshal(body, &l); err != nil {
					t.Fatal(err)
				}
				return len(l.Spans)
			}
			both := []string{traceA, traceB}
			for _, c := range []struct {
				token string
				want  []string
			}{{tokenA, []string{traceA}}, {tokenB, []string{traceB}}, {tokenAdmin, both}} {
				if got := traces(c.token); !slices.Equal(got, c.want) {
					t.Errorf("token %.12s lists %v, want %v", c.token, got, c.want)
				}
			}
			if n := spanCount(tokenA, traceA); n != 2 {
				t.Errorf("team-a reads %d spans of its trace, want 2", n)
			}
			if n := spanCount(tokenA, traceB); n != 0 {
				t.Errorf("team-a reads %d spans of team-b's trace", n)
			}
			if n := spanCount(tokenAdmin, traceB); n != 3 {
				t.Errorf("admin reads %d spans of team-b's trace, want 3", n)
			}
			codeMissing, missing := do(http.MethodGet, api+"traces/"+hex.EncodeToString(bytes.Repeat([]byte{0xee}, 16)), tokenA, nil)
			codeOther, other := do(http.MethodGet, api+"traces/"+traceB, tokenA, nil)
			if codeMissing != 404 || codeOther != 404 || !bytes.Equal(missing, other) {
				t.Errorf("team-a reading team-b's trace: %d %s; a missing one: %d %s", codeOther, other, codeMissing, missing)
			}
			if code, body := do(http.MethodGet, api+"traces/"+traceB, tokenB, nil); code != 200 {
				t.Errorf("team-b reading its trace: %d %s", code, body)
			}
			if code, _ := do(http.MethodGet, api+"traces", "", nil); code != 401 {
				t.Errorf("no token: %d", code)
			}

			// A reload that removes the tokens turns authentication off:
			// everything is visible, as without tokens from the start.
			next := *cfg
			next.Server.Auth.Tokens = nil
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if _, err := g.Reload(ctx, &next); err != nil {
				t.Fatal(err)
			}
			if got := traces(""); !slices.Equal(got, both) {
				t.Errorf("without tokens: %v, want %v", got, both)
			}
		})
	}
}

// request sends body (OTLP protobuf, or nothing) with the bearer token,
// when not "", and returns the answer.
func request(t *testing.T, client *http.Client, method, url, token string, body []byte) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-protobuf")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}
