package pluginhost

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"syscall"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/kern-agents/trace-gateway/internal/procfs"
	"github.com/kern-agents/trace-gateway/internal/sim"
)

// BenchmarkExportEncodedOTLP is one destination's fan-out path: chunks of
// about 2,000 simulated agent-run spans (the destinations' default batch)
// sent by ExportEncoded to the built-in otlp exporter in its own process,
// which posts them to a loopback OTLP/HTTP endpoint. Besides ns/op it
// reports the CPU the plugin process and this process (host and the
// discarding endpoint) spend per span.
func BenchmarkExportEncodedOTLP(b *testing.B) {
	td, stats, err := sim.CaptureTraces(context.Background(), sim.Options{Count: 186, Seed: 7})
	if err != nil {
		b.Fatal(err)
	}
	payload, err := (&ptrace.ProtoMarshaler{}).MarshalTraces(td)
	if err != nil {
		b.Fatal(err)
	}
	vendor := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	defer vendor.Close()

	spec, _ := testSpec(b, "bench", "otlp", map[string]any{"endpoint": vendor.URL, "compression": "none"})
	spec.BuiltinCommand = builtinCommand
	spec.ExportTimeout = time.Minute
	d := start(b, spec)
	ctx := context.Background()
	if err := d.ExportEncoded(ctx, [][]byte{payload}); err != nil { // warm up connections
		b.Fatal(err)
	}

	plugin0, host0 := cpuOf(b, d.Pid()), selfCPU()
	b.SetBytes(int64(len(payload)))
	b.ResetTimer()
	for b.Loop() {
		if err := d.ExportEncoded(ctx, [][]byte{payload}); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	spans := float64(b.N) * float64(stats.Spans)
	b.ReportMetric(float64(cpuOf(b, d.Pid())-plugin0)/spans, "plugin-cpu-ns/span")
	b.ReportMetric(float64(selfCPU()-host0)/spans, "host-cpu-ns/span")
	b.ReportMetric(float64(len(payload))/float64(stats.Spans), "bytes/span")
}

func cpuOf(b *testing.B, pid int) time.Duration {
	c, err := procfs.CPUTime(pid)
	if err != nil {
		b.Fatal(err)
	}
	return c
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
