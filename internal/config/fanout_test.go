package config

import (
	"strings"
	"testing"
	"time"
)

func TestParseFanout(t *testing.T) {
	src := `
storage:
  retention: 168h
destinations:
  - name: lf
    plugin: langfuse
    filter:
      include:
        services: [agentos]
        span_types: [llm, tool]
        attributes: {gen_ai.system: openai}
      exclude:
        agent_ids: [noisy-agent]
        span_types: [TEAM, WORKFLOW, pre_hook]
    sampling: ${RATIO:-0.25}
    redact:
      - {key: input.value, action: hash}
      - key: user.email
      - {key: "secret.*", action: drop}
    batch: {max_spans: 100, max_bytes: 1MiB, max_delay: 2s}
    retry: {initial: 1s, max: 1m, max_elapsed: 1h}
    circuit_breaker: {failures: 3, cool_down: 10s}
    timeout: 5s
    lease: 10s
  - name: plain
    plugin: otlp
`
	cfg, err := Parse("f.yaml", []byte(src), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	d := cfg.Destinations[0].WithDefaults()
	plain := cfg.Destinations[1].WithDefaults()
	checks := []struct {
		name      string
		got, want any
	}{
		{"retention", cfg.Storage.Retention.D(), 168 * time.Hour},
		{"include services", strings.Join(d.Filter.Include.Services, ","), "agentos"},
		{"include types", strings.Join(d.Filter.Include.SpanTypes, ","), "llm,tool"},
		{"include attribute", d.Filter.Include.Attributes["gen_ai.system"], "openai"},
		{"exclude agents", strings.Join(d.Filter.Exclude.AgentIDs, ","), "noisy-agent"},
		{"exclude AgentOS node types and a span type", strings.Join(d.Filter.Exclude.SpanTypes, ","), "TEAM,WORKFLOW,pre_hook"},
		{"sampling from env default", *d.Sampling, 0.25},
		{"redact hash", d.Redact[0].Action, RedactHash},
		{"redact default action", d.Redact[1].Action, RedactMask},
		{"redact prefix", d.Redact[2].Key, "secret.*"},
		{"batch spans", d.Batch.MaxSpans, 100},
		{"batch bytes", int64(d.Batch.MaxBytes), int64(1 << 20)},
		{"batch delay", d.Batch.MaxDelay.D(), 2 * time.Second},
		{"retry", [3]time.Duration{d.Retry.Initial.D(), d.Retry.Max.D(), d.Retry.MaxElapsed.D()}, [3]time.Duration{time.Second, time.Minute, time.Hour}},
		{"breaker", [2]any{d.Breaker.Failures, d.Breaker.CoolDown.D()}, [2]any{3, 10 * time.Second}},
		{"timeout", d.Timeout.D(), 5 * time.Second},
		{"lease", d.Lease.D(), 10 * time.Second},
		{"line of filter", cfg.Line("destinations[0].filter.include.span_types"), 10},
		{"default sampling", plain.Sampling == nil, true},
		{"default batch", plain.Batch, Batch{DefaultBatchMaxSpans, DefaultBatchMaxBytes, DefaultBatchMaxDelay}},
		{"default retry", plain.Retry, Retry{Initial: DefaultRetryInitial, Max: DefaultRetryMax}},
		{"default breaker", plain.Breaker, CircuitBreaker{DefaultBreakerFailures, DefaultBreakerCoolDown}},
		{"default timeout", plain.Timeout, DefaultExportTimeout},
		{"default lease", plain.Lease, DefaultLease},
		{"default retention keeps forever", Defaults().Storage.Retention, Duration(0)},
		{"no filter", plain.Filter.Include.IsZero() && plain.Filter.Exclude.IsZero(), true},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %#v, want %#v", c.name, c.got, c.want)
		}
	}
}

func TestRetryMaxDefaultsAboveInitial(t *testing.T) {
	d := Destination{Retry: Retry{Initial: Duration(time.Minute)}}.WithDefaults()
	if d.Retry.Max.D() != time.Minute {
		t.Fatalf("retry.max = %s, want initial (1m) when initial exceeds the default", d.Retry.Max.D())
	}
}

func TestParseFanoutErrors(t *testing.T) {
	cases := []struct {
		name string
		src  string
		want []string
	}{
		{"unknown filter key", `destinations:
  - name: a
    plugin: otlp
    filter:
      include:
        servces: [x]
`, []string{"f.yaml:6: destinations[0].filter.include.servces: unknown key"}},
		{"unknown batch key", `destinations:
  - name: a
    plugin: otlp
    batch: {max_span: 3}
`, []string{"f.yaml:4: destinations[0].batch.max_span: unknown key"}},
		{"bad values", `storage:
  retention: -1h
destinations:
  - name: a
    plugin: otlp
    filter:
      exclude:
        span_types: [llm, lmm, Team]
        services: [""]
    sampling: 1.5
    redact:
      - {key: input.value, action: scramble}
      - {key: input.value}
      - {action: drop}
    batch:
      max_spans: -1
      max_bytes: 10
    retry:
      initial: 10s
      max: 1s
    circuit_breaker:
      failures: -2
    lease: 100ms
`, []string{
			"f.yaml:2: storage.retention: must not be negative",
			"f.yaml:8: destinations[0].filter.exclude.span_types[1]: want one of run, llm",
			`f.yaml:8: destinations[0].filter.exclude.span_types[2]: want one of run, llm, embedding, tool, pre_hook, post_hook, retrieval, delegation, other, or an AgentOS node type: AGENT, TEAM, WORKFLOW, LLM, EMBEDDING, TOOL, RETRIEVER, RERANKER, GUARDRAIL, EVALUATOR, PROMPT, UNKNOWN; got "Team"`,
			`f.yaml:9: destinations[0].filter.exclude.services[0]: must not be empty`,
			"f.yaml:10: destinations[0].sampling: want a share of traces in (0, 1], got 1.5",
			`f.yaml:12: destinations[0].redact[0].action: want drop, mask or hash, got "scramble"`,
			`f.yaml:13: destinations[0].redact[1].key: "input.value" is already redacted by redact[0]`,
			"f.yaml:14: destinations[0].redact[2].key: required",
			"f.yaml:16: destinations[0].batch.max_spans: must not be negative",
			"f.yaml:17: destinations[0].batch.max_bytes: must be at least 1KiB",
			"f.yaml:19: destinations[0].retry.initial: must not exceed retry.max (1s)",
			"f.yaml:22: destinations[0].circuit_breaker.failures: must not be negative",
			"f.yaml:23: destinations[0].lease: must be at least 1s",
		}},
		{"zero sampling", "destinations:\n  - name: a\n    plugin: otlp\n    sampling: 0\n",
			[]string{"f.yaml:4: destinations[0].sampling: want a share of traces in (0, 1], got 0"}},
		{"sampling not a number", "destinations:\n  - name: a\n    plugin: otlp\n    sampling: half\n",
			[]string{"f.yaml:4:", "half"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("f.yaml", []byte(c.src), env(nil))
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
