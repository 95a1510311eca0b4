package redact

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func TestIsSecretKey(t *testing.T) {
	secret := []string{
		"password", "db_password", "PASSWORD", "secret", "client_secret", "secret_key", "public_key",
		"api_key", "apiKey", "APIKey", "X-Api-Key", "x-api-key", "key", "authorization", "Authorization",
		"auth", "token", "tokens", "access_token", "TOKEN_A", "refreshToken", "credentials", "passwd",
		"pwd", "cookie", "private_key", "LANGFUSE_SECRET_KEY", "passphrase",
	}
	innocent := []string{
		"", "host", "dsn", "tenant", "name", "plugin", "token_file", "key_file", "cert_file",
		"client_ca_file", "secret_name", "password_file", "token_url", "max_tokens", "keepalive",
		"monkey", "gen_ai.usage.input_tokens", "llm.token_count.prompt", "kern.usage.total_tokens",
		"spans", "schema", "err", "msg", "tokenizer", "author", "keys_total",
	}
	for _, k := range secret {
		if !IsSecretKey(k) {
			t.Errorf("IsSecretKey(%q) = false, want true", k)
		}
	}
	for _, k := range innocent {
		if IsSecretKey(k) {
			t.Errorf("IsSecretKey(%q) = true, want false", k)
		}
	}
}

func TestString(t *testing.T) {
	tests := []struct{ in, want string }{
		{"postgres://user:pa55@db:5432/traces", "postgres://user:***@db:5432/traces"},
		{"postgresql://kern:p@ss:w0rd@db/traces?sslmode=require", "postgresql://kern:***@db/traces?sslmode=require"},
		{"postgres://user@db/traces", "postgres://user@db/traces"},
		{"https://example.com/a?b=c&d=e", "https://example.com/a?b=c&d=e"},
		{"https://user@example.com", "https://user@example.com"},
		{"mail me at ops@example.com", "mail me at ops@example.com"},
		{"host=db user=kern password=s3cret dbname=traces", "host=db user=kern password=*** dbname=traces"},
		{"host=db password='s3 cret' sslmode=disable", "host=db password=*** sslmode=disable"},
		{"postgres://db/traces?user=kern&password=s3cret&sslmode=require",
			"postgres://db/traces?user=kern&password=***&sslmode=require"},
		{"https://api.example.com/v1?api_key=abc123&x=1", "https://api.example.com/v1?api_key=***&x=1"},
		{"sslpassword = hunter2;", "sslpassword = ***;"},
		{"token=abc max_tokens=5", "token=*** max_tokens=5"},
		{"Authorization: Bearer eyJhbGciOi.abc-def_ghi", "Authorization: Bearer ***"},
		{"authorization: basic dXNlcjpwYXNz", "authorization: basic ***"},
		{"from http://a:1@h1 to https://b:2@h2/x", "from http://a:***@h1 to https://b:***@h2/x"},
		{`{"dsn":"postgres://u:p@h/db","n":1}`, `{"dsn":"postgres://u:***@h/db","n":1}`},
		{"plain text, nothing here", "plain text, nothing here"},
		{"a = b", "a = b"},
	}
	for _, tt := range tests {
		if got := String(tt.in); got != tt.want {
			t.Errorf("String(%q)\n got %q\nwant %q", tt.in, got, tt.want)
		}
	}
}

// Stand-ins shaped like the gateway's config (package config is not
// imported so this package stays a leaf).
type duration time.Duration

func (d duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

func (d *duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	*d = duration(v)
	return err
}

type testConfig struct {
	Server struct {
		HTTP string `yaml:"http"`
		Auth struct {
			Tokens []struct {
				Token  string `yaml:"token"`
				Tenant string `yaml:"tenant"`
			} `yaml:"tokens"`
		} `yaml:"auth"`
		TLS struct {
			CertFile string `yaml:"cert_file"`
			KeyFile  string `yaml:"key_file"`
		} `yaml:"tls"`
	} `yaml:"server"`
	Storage struct {
		Driver string `yaml:"driver"`
		DSN    string `yaml:"dsn"`
	} `yaml:"storage"`
	Ingest struct {
		MaxBatchDelay duration `yaml:"max_batch_delay"`
	} `yaml:"ingest"`
	Destinations []struct {
		Name   string         `yaml:"name"`
		Config map[string]any `yaml:"config"`
	} `yaml:"destinations"`
	File string `yaml:"-"`
}

const configYAML = `
server:
  http: 0.0.0.0:7070
  auth:
    tokens:
      - {token: tok-aaaaaaaaaaaaaaaa, tenant: team-a}
      - {token: tok-bbbbbbbbbbbbbbbb, tenant: team-b}
  tls:
    cert_file: /etc/kern/tls/tls.crt
    key_file: /etc/kern/tls/tls.key
storage:
  driver: postgres
  dsn: postgres://kern:dbpass-123@db.internal:5432/traces?sslmode=require
ingest:
  max_batch_delay: 20ms
destinations:
  - name: langfuse-prod
    config:
      host: https://cloud.langfuse.com
      public_key: pk-lf-0001
      secret_key: sk-lf-0002
      enabled: true
      password: 123456
      empty_secret: ""
      headers:
        Authorization: Bearer hdr-token-3
        x-tenant: acme
      api_keys: [ak-4, ak-5]
`

var configSecrets = []string{
	"tok-aaaaaaaaaaaaaaaa", "tok-bbbbbbbbbbbbbbbb", "dbpass-123", "pk-lf-0001", "sk-lf-0002",
	"123456", "hdr-token-3", "ak-4", "ak-5",
}

var configKept = []string{
	"team-a", "team-b", "db.internal:5432/traces", "https://cloud.langfuse.com", "acme",
	"/etc/kern/tls/tls.key", "20ms", "langfuse-prod", "0.0.0.0:7070",
}

func loadTestConfig(t *testing.T) *testConfig {
	t.Helper()
	var cfg testConfig
	if err := yaml.Unmarshal([]byte(configYAML), &cfg); err != nil {
		t.Fatal(err)
	}
	cfg.File = "secret-path-should-not-matter.yaml"
	return &cfg
}

func TestYAML(t *testing.T) {
	cfg := loadTestConfig(t)
	before := *cfg
	out, err := YAML(cfg)
	if err != nil {
		t.Fatal(err)
	}
	text := string(out)
	for _, s := range configSecrets {
		if strings.Contains(text, s) {
			t.Errorf("output reveals %q:\n%s", s, text)
		}
	}
	for _, s := range configKept {
		if !strings.Contains(text, s) {
			t.Errorf("output lost %q:\n%s", s, text)
		}
	}
	if cfg.Storage.DSN != before.Storage.DSN {
		t.Error("YAML modified its input")
	}

	// The output is valid YAML of the same shape, with masks where the
	// secrets were, and unset/boolean values left visible.
	var back map[string]any
	if err := yaml.Unmarshal(out, &back); err != nil {
		t.Fatalf("output is not YAML: %v\n%s", err, text)
	}
	dest := back["destinations"].([]any)[0].(map[string]any)["config"].(map[string]any)
	for k, want := range map[string]any{
		"secret_key": Mask, "public_key": Mask, "password": Mask, "host": "https://cloud.langfuse.com",
		"enabled": true, "empty_secret": "",
	} {
		if dest[k] != want {
			t.Errorf("config.%s = %#v, want %#v", k, dest[k], want)
		}
	}
	if got := dest["headers"].(map[string]any)["Authorization"]; got != Mask {
		t.Errorf("headers.Authorization = %v", got)
	}
	if got := dest["api_keys"].([]any); len(got) != 2 || got[0] != Mask || got[1] != Mask {
		t.Errorf("api_keys = %v", got)
	}
	tok := back["server"].(map[string]any)["auth"].(map[string]any)["tokens"].([]any)[1].(map[string]any)
	if tok["token"] != Mask || tok["tenant"] != "team-b" {
		t.Errorf("tokens[1] = %v", tok)
	}
}

func TestConfigJSON(t *testing.T) {
	tree, err := Config(loadTestConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(tree)
	if err != nil {
		t.Fatalf("tree does not encode as JSON: %v", err)
	}
	for _, s := range configSecrets {
		if strings.Contains(string(b), s) {
			t.Errorf("JSON reveals %q: %s", s, b)
		}
	}
	for _, s := range configKept {
		if !strings.Contains(string(b), s) {
			t.Errorf("JSON lost %q: %s", s, b)
		}
	}
}
