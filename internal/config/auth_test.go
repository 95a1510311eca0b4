package config

import (
	"fmt"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// Tokens of at least auth.MinTokenLength characters.
const (
	tokA = "token-a-0123456789abcdef"
	tokB = "token-b-0123456789abcdef"
)

// TestAuthTokenShapes: server.auth.tokens takes plain strings (tenant
// "default"), {token, tenant} mappings, or both mixed in one list; every
// other shape is an error naming file:line and the entry.
func TestAuthTokenShapes(t *testing.T) {
	vars := env(map[string]string{"TOKEN_A": tokA, "TOKEN_B": tokB, "NUMERIC": "12345678901234567890"})
	cases := []struct {
		name    string
		tokens  string // the YAML after "tokens:", starting on line 3
		want    []AuthToken
		wantErr []string
	}{
		{name: "flow list of strings", tokens: " [${TOKEN_A}, ${TOKEN_B}]",
			want: []AuthToken{{Token: tokA, Tenant: "default"}, {Token: tokB, Tenant: "default"}}},
		{name: "block list of strings", tokens: "\n      - ${TOKEN_A}\n      - \"" + tokB + "\"",
			want: []AuthToken{{Token: tokA, Tenant: "default"}, {Token: tokB, Tenant: "default"}}},
		{name: "mappings", tokens: "\n      - token: ${TOKEN_A}\n        tenant: team-a\n      - {token: ${TOKEN_B}, tenant: team-b}",
			want: []AuthToken{{Token: tokA, Tenant: "team-a"}, {Token: tokB, Tenant: "team-b"}}},
		{name: "mixed", tokens: "\n      - ${TOKEN_A}\n      - {token: ${TOKEN_B}, tenant: team-b}",
			want: []AuthToken{{Token: tokA, Tenant: "default"}, {Token: tokB, Tenant: "team-b"}}},
		{name: "admin token", tokens: "\n      - ${TOKEN_A}\n      - {token: ${TOKEN_B}, tenant: ops, admin: true}",
			want: []AuthToken{{Token: tokA, Tenant: "default"}, {Token: tokB, Tenant: "ops", Admin: true}}},
		{name: "admin false", tokens: "\n      - {token: ${TOKEN_A}, tenant: a, admin: false}",
			want: []AuthToken{{Token: tokA, Tenant: "a"}}},
		{name: "numeric-looking tokens stay as written", tokens: "\n      - ${NUMERIC}\n      - 00012345678901234567",
			want: []AuthToken{{Token: "12345678901234567890", Tenant: "default"}, {Token: "00012345678901234567", Tenant: "default"}}},
		{name: "aliases", tokens: "\n      - {token: ${TOKEN_A}, tenant: &t team}\n      - {token: ${TOKEN_B}, tenant: *t}",
			want: []AuthToken{{Token: tokA, Tenant: "team"}, {Token: tokB, Tenant: "team"}}},
		{name: "references with defaults, spaced", tokens: " [ ${TOKEN_A} ,${UNSET:-" + tokB + "}]  # [${X}]",
			want: []AuthToken{{Token: tokA, Tenant: "default"}, {Token: tokB, Tenant: "default"}}},
		{name: "quoted references", tokens: " [\"${TOKEN_A}\", '${TOKEN_B}']",
			want: []AuthToken{{Token: tokA, Tenant: "default"}, {Token: tokB, Tenant: "default"}}},

		{name: "list inside the list", tokens: "\n      - ${TOKEN_A}\n      - [" + tokB + "]",
			wantErr: []string{"c.yaml:5: server.auth.tokens[1]: want a token string, or a mapping with token and tenant; got a list"}},
		{name: "empty entry", tokens: "\n      - ${TOKEN_A}\n      -\n      - ${TOKEN_B}",
			wantErr: []string{"c.yaml:5: server.auth.tokens[1]: want a token string, or a mapping with token and tenant; got an empty entry"}},
		{name: "unknown key in a mapping", tokens: "\n      - ${TOKEN_A}\n      - {token: ${TOKEN_B}, tenat: b}",
			wantErr: []string{"c.yaml:5: server.auth.tokens[1].tenat: unknown key (known: admin, tenant, token)"}},
		{name: "tenant of the wrong type", tokens: "\n      - token: ${TOKEN_A}\n        tenant: [a]",
			wantErr: []string{"c.yaml:5: ", "cannot unmarshal !!seq into string"}},
		{name: "admin not a boolean", tokens: "\n      - {token: ${TOKEN_A}, tenant: a, admin: yes-please}",
			wantErr: []string{"c.yaml:4: ", "into bool"}},
		{name: "not a list", tokens: " ${TOKEN_A}",
			wantErr: []string{"c.yaml:3: ", "into []config.AuthToken"}},
		{name: "short plain token", tokens: " [short]",
			wantErr: []string{"c.yaml:3: server.auth.tokens[0].token: too short"}},
		{name: "same token twice, both forms", tokens: "\n      - ${TOKEN_A}\n      - {token: ${TOKEN_A}, tenant: x}",
			wantErr: []string{"c.yaml:5: server.auth.tokens[1].token: same token as tokens[0]"}},
		{name: "unset variable", tokens: " [${TOKEN_C}]",
			wantErr: []string{"c.yaml:3: server.auth.tokens[0]: environment variable TOKEN_C is not set"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			src := "server:\n  auth:\n    tokens:" + c.tokens + "\n"
			cfg, err := Parse("c.yaml", []byte(src), vars)
			if c.wantErr != nil {
				if err == nil {
					t.Fatalf("no error for\n%s", src)
				}
				for _, w := range c.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error does not contain %q:\n%v", w, err)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("%v\n%s", err, src)
			}
			got := cfg.Server.Auth.Tokens
			if len(got) != len(c.want) {
				t.Fatalf("tokens %+v, want %+v", got, c.want)
			}
			for i := range got {
				if got[i] != c.want[i] {
					t.Errorf("tokens[%d] = %+v, want %+v", i, got[i], c.want[i])
				}
			}
		})
	}
}

// TestPlainTokenTenantRateLimit: the tenant of plain tokens can be named in
// ingest.tenant_rate_limits.
func TestPlainTokenTenantRateLimit(t *testing.T) {
	src := "server:\n  auth:\n    tokens: [" + tokA + "]\ningest:\n  tenant_rate_limits:\n    - {tenant: default, spans_per_second: 10}\n"
	if _, err := Parse("c.yaml", []byte(src), env(nil)); err != nil {
		t.Fatal(err)
	}
}

// TestAuthTokenUnmarshalYAML: decoded on its own (no walk first), a token
// of the wrong shape is still an error with its line.
func TestAuthTokenUnmarshalYAML(t *testing.T) {
	var toks []AuthToken
	if err := yaml.Unmarshal([]byte("- "+tokA+"\n- {token: "+tokB+", tenant: b}\n"), &toks); err != nil {
		t.Fatal(err)
	}
	if len(toks) != 2 || toks[0] != (AuthToken{Token: tokA, Tenant: DefaultTenant}) || toks[1] != (AuthToken{Token: tokB, Tenant: "b"}) {
		t.Fatalf("decoded %+v", toks)
	}
	err := yaml.Unmarshal([]byte("- "+tokA+"\n- [x]\n"), &toks)
	if err == nil || !strings.Contains(err.Error(), "line 2: want a token string") {
		t.Fatalf("error %v, want one naming line 2", err)
	}
}

// TestFlowReferences: ${VAR} references standing alone in flow collections
// parse (YAML alone reads their braces as structure) and expand like plain
// values, typed fields included; a document broken for another reason keeps
// YAML's error, and no other value is touched.
func TestFlowReferences(t *testing.T) {
	vars := env(map[string]string{"W": "3", "TOK": "s3cret", "A": "x", "KERN_TOKEN_A": tokA, "KERN_TOKEN_B": tokB})
	src := `server: {auth: {tokens: [${KERN_TOKEN_A}, {token: ${KERN_TOKEN_B}, tenant: team-b}]}}
ingest: {writers: ${W}, max_batch_spans: ${N:-64}}
destinations:
  - {name: d, plugin: otlp, config: {headers: {authorization: ${TOK}}, list: [${A}, "${A}", '[${A}]', "a, ${A}]"]}}
`
	cfg, err := Parse("c.yaml", []byte(src), vars)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Ingest.Writers != 3 || cfg.Ingest.MaxBatchSpans != 64 {
		t.Errorf("writers %d, max_batch_spans %d; want 3, 64", cfg.Ingest.Writers, cfg.Ingest.MaxBatchSpans)
	}
	d := cfg.Destinations[0].Config
	if got := fmt.Sprint(d["headers"], d["list"]); got != "map[authorization:s3cret] [x x [x] a, x]]" {
		t.Errorf("destination config %s", got)
	}
	if l := cfg.Line("destinations[0].config"); l != 4 {
		t.Errorf("line of destinations[0].config = %d, want 4", l)
	}
	if got := cfg.Server.Auth.Tokens; len(got) != 2 || got[0] != (AuthToken{Token: tokA, Tenant: DefaultTenant}) ||
		got[1] != (AuthToken{Token: tokB, Tenant: "team-b"}) {
		t.Errorf("tokens %+v", got)
	}

	for name, broken := range map[string]string{
		"other syntax error":           "ingest: {writers: ${W}\nlog: [\n",
		"reference in a quoted string": "storage: {dsn: \"a, ${A}]\", driver: [}\n",
	} {
		_, err := Parse("c.yaml", []byte(broken), vars)
		if err == nil || strings.Contains(err.Error(), "\"${") {
			t.Errorf("%s: %v, want YAML's own error", name, err)
		}
	}
}
