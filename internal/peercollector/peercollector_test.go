package peercollector

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"gopkg.in/yaml.v3"

	"github.com/kern-agents/trace-gateway/internal/otlpsink"
)

func TestBuilderConfigPinsOneVersion(t *testing.T) {
	var m struct {
		Dist struct {
			OutputPath string `yaml:"output_path"`
			Version    string
		}
		Receivers, Processors, Exporters, Providers []struct{ Gomod string }
	}
	if err := yaml.Unmarshal([]byte(BuilderConfig("/out")), &m); err != nil {
		t.Fatal(err)
	}
	if m.Dist.OutputPath != "/out" || m.Dist.Version != Version {
		t.Errorf("dist = %+v, want output_path /out and version %s", m.Dist, Version)
	}
	c := "go.opentelemetry.io/collector/"
	for _, tc := range []struct {
		list []struct{ Gomod string }
		want []string
	}{
		{m.Receivers, []string{c + "receiver/otlpreceiver v" + Version}},
		{m.Processors, []string{c + "processor/batchprocessor v" + Version}},
		{m.Exporters, []string{c + "exporter/otlphttpexporter v" + Version}},
		{m.Providers, []string{c + "confmap/provider/envprovider v" + ProvidersVersion, c + "confmap/provider/fileprovider v" + ProvidersVersion}},
	} {
		var got []string
		for _, x := range tc.list {
			got = append(got, x.Gomod)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("components %q, want exactly %q", got, tc.want)
		}
	}
}

func TestConfigHasOneExporterPerSink(t *testing.T) {
	sinks := []string{"http://127.0.0.1:1/v1/traces", "http://127.0.0.1:2/v1/traces"}
	var c struct {
		Receivers struct {
			OTLP struct {
				Protocols map[string]struct{ Endpoint string }
			} `yaml:"otlp"`
		}
		Processors map[string]any
		Exporters  map[string]struct {
			TracesEndpoint string `yaml:"traces_endpoint"`
			Compression    string
		}
		Service struct {
			Pipelines map[string]struct{ Receivers, Processors, Exporters []string }
		}
	}
	if err := yaml.Unmarshal([]byte(Config("127.0.0.1:9", sinks)), &c); err != nil {
		t.Fatal(err)
	}
	if p := c.Receivers.OTLP.Protocols; len(p) != 1 || p["http"].Endpoint != "127.0.0.1:9" {
		t.Errorf("receiver protocols %+v, want http only on 127.0.0.1:9", p)
	}
	if _, ok := c.Processors["batch"]; !ok || len(c.Processors) != 1 {
		t.Errorf("processors %v, want batch only", c.Processors)
	}
	pipe := c.Service.Pipelines["traces"]
	if len(c.Exporters) != len(sinks) || len(pipe.Exporters) != len(sinks) {
		t.Fatalf("exporters %v in the pipeline %v, want %d", c.Exporters, pipe.Exporters, len(sinks))
	}
	for i, name := range pipe.Exporters {
		e := c.Exporters[name]
		if !strings.HasPrefix(name, "otlp_http/") || e.TracesEndpoint != sinks[i] || e.Compression != "none" {
			t.Errorf("exporter %s = %+v, want otlphttp to %s without compression", name, e, sinks[i])
		}
	}
	if strings.Join(pipe.Receivers, ",") != "otlp" || strings.Join(pipe.Processors, ",") != "batch" {
		t.Errorf("pipeline %+v, want otlp → batch", pipe)
	}
}

// TestCollectorDeliversToEverySink runs the cached Collector with Config:
// every sink gets every span. Building takes minutes and the module proxy,
// so the test only runs when `make bench` has cached the binary.
func TestCollectorDeliversToEverySink(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the Collector")
	}
	dir, err := CacheDir()
	if err != nil {
		t.Skip(err)
	}
	bin, ok := Cached(context.Background(), dir)
	if !ok {
		t.Skipf("no Collector v%s cached in %s (make bench builds it)", Version, dir)
	}
	var sinks []*otlpsink.Sink
	var urls []string
	for range 3 {
		s, err := otlpsink.New()
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		sinks = append(sinks, s)
		urls = append(urls, s.URL())
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	logs, err := os.Create(filepath.Join(t.TempDir(), "otelcol.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logs.Close()
	output := func() string { b, _ := os.ReadFile(logs.Name()); return string(b) }
	p, err := Start(bin, addr, urls, logs)
	if err != nil {
		t.Fatalf("%v\n%s", err, output())
	}
	defer func() {
		p.Stop()
		if t.Failed() {
			t.Logf("collector output:\n%s", output())
		}
	}()

	td := ptrace.NewTraces()
	spans := td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty().Spans()
	for i := range 10 {
		sp := spans.AppendEmpty()
		sp.SetTraceID(pcommon.TraceID{1})
		sp.SetSpanID(pcommon.SpanID{byte(i + 1)})
		sp.SetName("step")
	}
	body, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post("http://"+addr+"/v1/traces", "application/x-protobuf", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("collector answered %d", resp.StatusCode)
	}
	deadline := time.Now().Add(30 * time.Second)
	for i, s := range sinks {
		for s.Count() < 10 {
			if time.Now().After(deadline) {
				t.Fatalf("sink %d holds %d of 10 spans after 30s", i, s.Count())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}
