package otlptest

import (
	"context"
	"maps"
	"net/http"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"
	"google.golang.org/grpc/metadata"

	"github.com/kern-agents/trace-gateway/exporters/internal/facts"
	"github.com/kern-agents/trace-gateway/exporters/internal/fixture"
	"github.com/kern-agents/trace-gateway/plugins"
)

// Configure configures exp with raw, failing the test when the config is
// refused, and shuts exp down when the test ends.
func Configure(t testing.TB, exp plugins.Exporter, raw map[string]any) plugins.Exporter {
	t.Helper()
	if err := exp.Configure(context.Background(), raw); err != nil {
		t.Fatalf("configure: %v", err)
	}
	t.Cleanup(func() { _ = exp.Shutdown(context.Background()) })
	return exp
}

// export sends td through exp within a bounded time.
func export(exp plugins.Exporter, td ptrace.Traces) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return exp.Export(ctx, td)
}

// ExportOnce exports td through exp, which must succeed in exactly one
// request to the fake whose received requests are given; it returns that
// request.
func ExportOnce[R any](t testing.TB, exp plugins.Exporter, td ptrace.Traces, received func() []R) R {
	t.Helper()
	if err := export(exp, td); err != nil {
		t.Fatalf("export: %v", err)
	}
	reqs := received()
	if len(reqs) != 1 {
		t.Fatalf("want 1 request, got %d", len(reqs))
	}
	return reqs[0]
}

// ExpectPost fails unless r is a POST to path carrying the given headers
// ("" for a header that must be absent).
func ExpectPost(t testing.TB, r Request, path string, headers map[string]string) {
	t.Helper()
	if r.Method != http.MethodPost || r.Path != path {
		t.Fatalf("got %s %s, want POST %s", r.Method, r.Path, path)
	}
	for k, want := range headers {
		if got := r.Header.Get(k); got != want {
			t.Errorf("header %s = %q, want %q", k, got, want)
		}
	}
}

// ExpectMetadata fails unless md holds each key once with the given value.
func ExpectMetadata(t testing.TB, md metadata.MD, want map[string]string) {
	t.Helper()
	for k, w := range want {
		if got := md.Get(k); len(got) != 1 || got[0] != w {
			t.Errorf("metadata %s = %v, want %q", k, got, w)
		}
	}
}

// ExpectMapped runs mapping on in and checks the attributes of the result
// (see ExpectAttrs) and that in was left as it was. It returns the result.
func ExpectMapped(t testing.TB, mapping func(ptrace.Traces) ptrace.Traces, in ptrace.Traces, want map[string]map[string]string) ptrace.Traces {
	t.Helper()
	before := facts.Copy(in)
	out := mapping(in)
	ExpectAttrs(t, out, want)
	if !Same(in, before) {
		t.Fatal("the mapping modified its input")
	}
	return out
}

// ExpectToolException fails unless the shared agent run's failing tool span
// in td carries the OTel "exception" event with the fixture's exception.
func ExpectToolException(t testing.TB, td ptrace.Traces) {
	t.Helper()
	ExpectEvent(t, td, fixture.Tool, "exception", map[string]string{
		"exception.type": fixture.ExcType, "exception.message": fixture.ExcMessage,
	})
}

// Merge returns a copy of base with extra set over it, for config tables
// built from one valid block.
func Merge(base, extra map[string]any) map[string]any {
	out := maps.Clone(base)
	maps.Copy(out, extra)
	return out
}
