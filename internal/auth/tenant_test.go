package auth

import (
	"encoding/json"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/kern-agents/trace-gateway/internal/convert"
)

func TestStampTenant(t *testing.T) {
	tests := []struct {
		name   string
		setup  func(pcommon.Map) // resource attributes as sent
		tenant string
		want   string // value of TenantAttribute after stamping; "" means absent
	}{
		{"adds", func(m pcommon.Map) { m.PutStr("service.name", "agent") }, "team-a", "team-a"},
		{"overwrites a spoofed value", func(m pcommon.Map) { m.PutStr(TenantAttribute, "team-b") }, "team-a", "team-a"},
		{"overwrites a non-string value", func(m pcommon.Map) { m.PutInt(TenantAttribute, 7) }, "team-a", "team-a"},
		{"no tenant removes an unchecked claim", func(m pcommon.Map) { m.PutStr(TenantAttribute, "sent") }, "", ""},
		{"no tenant adds nothing", func(m pcommon.Map) {}, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			td := ptrace.NewTraces()
			for range 3 {
				tt.setup(td.ResourceSpans().AppendEmpty().Resource().Attributes())
			}
			StampTenant(td, tt.tenant)
			for i := 0; i < td.ResourceSpans().Len(); i++ {
				v, ok := td.ResourceSpans().At(i).Resource().Attributes().Get(TenantAttribute)
				got := ""
				if ok {
					got = v.AsString()
				}
				if got != tt.want {
					t.Errorf("resource %d: %s = %q, want %q", i, TenantAttribute, got, tt.want)
				}
			}
		})
	}
}

// TestStampTenantDuplicates: a wire-level duplicate key must not survive to
// be read instead of the stamped value.
func TestStampTenantDuplicates(t *testing.T) {
	// FromRaw cannot make duplicates; build them from the wire format.
	raw := []byte(`{"resourceSpans":[{"resource":{"attributes":[` +
		`{"key":"kern.tenant","value":{"stringValue":"evil-1"}},` +
		`{"key":"kern.tenant","value":{"stringValue":"evil-2"}}]}}]}`)
	td, err := (&ptrace.JSONUnmarshaler{}).UnmarshalTraces(raw)
	if err != nil {
		t.Fatal(err)
	}
	StampTenant(td, "team-a")
	attrs := td.ResourceSpans().At(0).Resource().Attributes()
	n := 0
	for k, v := range attrs.All() {
		if k == TenantAttribute {
			n++
			if v.Str() != "team-a" {
				t.Errorf("%s = %q after stamping", k, v.Str())
			}
		}
	}
	if n != 1 {
		t.Fatalf("%d %s entries, want 1", n, TenantAttribute)
	}
}

// TestStampTenantStored follows the tenant through the converter onto the
// span's origin (the gateway_resources row, where queries find it).
func TestStampTenantStored(t *testing.T) {
	td := OneSpan()
	td.ResourceSpans().At(0).Resource().Attributes().PutStr(TenantAttribute, "spoofed")
	StampTenant(td, "team-a")
	spans, rejected := convert.FromOTLP(td, time.Now(), convert.Limits{})
	if len(spans) != 1 || len(rejected) != 0 {
		t.Fatalf("converted %d spans, %d rejected", len(spans), len(rejected))
	}
	o := spans[0].Origin
	if o == nil || o.Tenant != "team-a" {
		t.Fatalf("origin %+v, want tenant team-a", o)
	}
	var res map[string]any
	if err := json.Unmarshal(o.Resource, &res); err != nil {
		t.Fatal(err)
	}
	if res[TenantAttribute] != "team-a" {
		t.Fatalf("stored resource %s = %v", TenantAttribute, res[TenantAttribute])
	}
	var attrs map[string]any
	if err := json.Unmarshal(spans[0].Attributes, &attrs); err != nil {
		t.Fatal(err)
	}
	if _, ok := attrs[TenantAttribute]; ok {
		t.Fatalf("span attributes %s hold the tenant; it belongs to the origin", spans[0].Attributes)
	}
}
