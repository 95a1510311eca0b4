package config

import (
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestParseValid(t *testing.T) {
	src := `
server:
  otlp_grpc: 127.0.0.1:4317
  otlp_http: ${HTTP_ADDR:-127.0.0.1:4318}
  http: ""
storage:
  driver: postgres
  dsn: postgres://u:${PGPASS}@127.0.0.1:5432/db
  schema: traces
ingest:
  max_request_bytes: 8MiB
  max_batch_delay: 5ms
  writers: ${WRITERS:-3}
destinations:
  - name: lf
    plugin: langfuse
    config:
      public_key: ${LF_PK}
      experiment: ${NUM}
      nested: {a: [1, 2]}
`
	cfg, err := Parse("gw.yaml", []byte(src), env(map[string]string{"PGPASS": "s3cr:et", "LF_PK": "pk-1", "NUM": "42"}))
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"http default", cfg.Server.OTLPHTTP, "127.0.0.1:4318"},
		{"http disabled", cfg.Server.HTTP, ""},
		{"dsn expanded", cfg.Storage.DSN, "postgres://u:s3cr:et@127.0.0.1:5432/db"},
		{"schema", cfg.Storage.Schema, "traces"},
		{"size", int64(cfg.Ingest.MaxRequestBytes), int64(8 << 20)},
		{"duration", cfg.Ingest.MaxBatchDelay.D(), 5 * time.Millisecond},
		{"int from env default", cfg.Ingest.Writers, 3},
		{"default kept", cfg.Ingest.MaxBatchSpans, 2048},
		{"secret into plugin config", cfg.Destinations[0].Config["public_key"], "pk-1"},
		{"numeric secret stays a string", cfg.Destinations[0].Config["experiment"], "42"},
		{"line of field", cfg.Line("storage.dsn"), 8},
		{"line of nested destination field", cfg.Line("destinations[0].config.public_key"), 18},
		{"line inside a nested config list", cfg.Line("destinations[0].config.nested.a[1]"), 20},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %#v, want %#v", c.name, c.got, c.want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	cases := []struct {
		name string
		src  string
		want []string // every one must appear, each as file:line
	}{
		{"unknown top key", "servr:\n  http: x\n", []string{"c.yaml:1: servr: unknown key"}},
		{"unknown nested key", "storage:\n  driver: sqlite\n  dns: x\n", []string{"c.yaml:3: storage.dns: unknown key"}},
		{"unknown destination key", "destinations:\n  - name: a\n    plugin: otlp\n    confg: {}\n", []string{"c.yaml:4: destinations[0].confg: unknown key"}},
		{"syntax", "server: [\n", []string{"c.yaml:"}},
		{"not a mapping", "- a\n- b\n", []string{"must be a YAML mapping"}},
		{"bad type", "ingest:\n  writers: many\n", []string{"c.yaml:2:", "many"}},
		{"bad duration", "ingest:\n  max_batch_delay: soon\n", []string{"c.yaml:2:", "duration"}},
		{"bad size", "ingest:\n  max_request_bytes: 16 parsecs\n", []string{"c.yaml:2:", "size"}},
		{"negative delay", "ingest:\n  max_batch_delay: -5ms\n", []string{"c.yaml:2: ingest.max_batch_delay: must not be negative"}},
		{"unset env", "storage:\n  dsn: ${NOPE}\n", []string{"c.yaml:2: storage.dsn: environment variable NOPE is not set"}},
		{"every validation error listed", `
server:
  otlp_grpc: nonsense
storage:
  driver: mysql
  schema: "drop table;"
ingest:
  writers: 0
log:
  level: loud
destinations:
  - name: a
    plugin: otlp
  - name: a
  - plugin: x
    sha256: abc
`, []string{
			"c.yaml:3: server.otlp_grpc: want host:port",
			"c.yaml:5: storage.driver: want sqlite or postgres",
			"c.yaml:6: storage.schema: want an SQL identifier",
			"c.yaml:8: ingest.writers: must be positive",
			"c.yaml:10: log.level:",
			"c.yaml:14: destinations[1].name: \"a\" is already used by destinations[0]",
			"c.yaml:14: destinations[1].plugin: required",
			"c.yaml:15: destinations[2].name: required",
			"c.yaml:16: destinations[2].sha256: want 64 hex",
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("c.yaml", []byte(c.src), env(nil))
			if err == nil {
				t.Fatal("want an error")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not contain %q:\n%v", w, err)
				}
			}
		})
	}
}

func TestEmptyFileIsDefaults(t *testing.T) {
	cfg, err := Parse("e.yaml", nil, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Storage.Driver != "sqlite" || cfg.Server.OTLPHTTP == "" {
		t.Fatalf("defaults not applied: %+v", cfg)
	}
	// Where AgentOS's PostgresDb looks by default (db_schema "ai").
	if cfg.Storage.Schema != "ai" || cfg.Storage.TracesTable != "agno_traces" || cfg.Storage.SpansTable != "agno_spans" {
		t.Errorf("storage defaults %+v, want AgentOS's schema and tables", cfg.Storage)
	}
}

func TestExpandedValueCannotInjectStructure(t *testing.T) {
	cfg, err := Parse("c.yaml", []byte("storage:\n  dsn: ${EVIL}\n"), env(map[string]string{"EVIL": "x\ndriver: postgres"}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Storage.Driver != "sqlite" || cfg.Storage.DSN != "x\ndriver: postgres" {
		t.Fatalf("value leaked into structure: %+v", cfg.Storage)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("server:\n  http: 127.0.0.1:1\n"))
	f.Add([]byte("destinations:\n  - name: a\n    plugin: b\n    config: {x: ${Y:-1}}\n"))
	f.Add([]byte("ingest: {max_request_bytes: 1GiB, max_batch_delay: 1s}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse("f.yaml", data, env(map[string]string{"Y": "2"}))
		if err == nil && cfg == nil {
			t.Fatal("nil config without error")
		}
	})
}
