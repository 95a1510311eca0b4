package main

import (
	"strings"
	"testing"
	"time"

	"github.com/kern-agents/trace-gateway/internal/config"
)

func TestParseMetrics(t *testing.T) {
	text := `# HELP go_goroutines Number of goroutines that currently exist.
# TYPE go_goroutines gauge
go_goroutines 84
kern_gateway_spans_stored_total 5769
kern_gateway_destination_spans_exported_total{destination="sink-0"} 1.2e+06
kern_gateway_destination_backlog_spans{destination="we \"quote\""} 12
garbage line
`
	got := map[string]metric{}
	for _, m := range parseMetrics(strings.NewReader(text)) {
		got[m.name+"/"+m.labels["destination"]] = m
	}
	for key, want := range map[string]float64{
		"go_goroutines/":                                       84,
		"kern_gateway_spans_stored_total/":                     5769,
		"kern_gateway_destination_spans_exported_total/sink-0": 1.2e6,
		`kern_gateway_destination_backlog_spans/we \"quote\"`:  12,
	} {
		if m, ok := got[key]; !ok || m.value != want {
			t.Errorf("%s = %v (found %v), want %v", key, m.value, ok, want)
		}
	}
	if len(got) != 4 {
		t.Errorf("parsed %d series, want 4: %v", len(got), got)
	}
}

func TestWindow(t *testing.T) {
	var ss []sample
	for i := range 13 { // 0s .. 120s every 10s
		ss = append(ss, sample{at: time.Duration(i) * 10 * time.Second, rssKiB: int64(i)})
	}
	first, last := window(ss, time.Minute, true), window(ss, time.Minute, false)
	if len(first) != 6 || first[0].at != 10*time.Second || first[5].at != time.Minute {
		t.Fatalf("first minute: %v", first)
	}
	if len(last) != 7 || last[0].at != time.Minute || last[6].at != 2*time.Minute {
		t.Fatalf("last minute: %v", last)
	}
	if window(ss[:1], time.Minute, true) != nil {
		t.Fatal("a single sample has no window")
	}
}

// TestGatewayConfigIsValid: the config the soak writes loads cleanly.
func TestGatewayConfigIsValid(t *testing.T) {
	for _, o := range []options{{driver: "sqlite"}, {driver: "postgres", dsn: "postgres://u@127.0.0.1/db"}} {
		text, err := gatewayConfig(o, t.TempDir(), []destination{{"sink-0", "http://127.0.0.1:1/v1/traces"}, {"down", "http://127.0.0.1:2/v1/traces"}})
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := config.Parse("soak.yaml", []byte(text), func(string) (string, bool) { return "", false })
		if err != nil {
			t.Fatalf("%s:\n%s\n%v", o.driver, text, err)
		}
		if len(cfg.Destinations) != 2 || cfg.Storage.Driver != o.driver || cfg.Server.OTLPGRPC != "" {
			t.Fatalf("%s: parsed %+v", o.driver, cfg)
		}
	}
	if _, err := gatewayConfig(options{driver: "postgres"}, t.TempDir(), nil); err == nil {
		t.Fatal("postgres without a DSN accepted")
	}
}

func TestSlope(t *testing.T) {
	var ss []sample
	for i := range 10 {
		ss = append(ss, sample{at: time.Duration(i) * 30 * time.Second, rssKiB: 1024 * int64(100+3*i)}) // +3 MiB per 30s
	}
	if got := slope(ss, func(s sample) float64 { return float64(s.rssKiB) / 1024 }); got < 5.999 || got > 6.001 {
		t.Fatalf("slope = %v MiB/min, want 6", got)
	}
	if got := slope(ss[:1], func(sample) float64 { return 1 }); got != 0 {
		t.Fatalf("slope of one sample = %v", got)
	}
}
