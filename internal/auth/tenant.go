package auth

import (
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// TenantAttribute is the resource attribute carrying the authenticated
// tenant on stored spans. The resource is stored once in the gateway's
// resources table, whose tenant column holds it, and a span's
// kern.resource attribute names that row (rows stored by older versions
// hold the resource inline: attributes->'kern.resource'->>'kern.tenant').
const TenantAttribute = "kern.tenant"

// StampTenant sets TenantAttribute on every resource of td, replacing any
// value the sender put there, so one tenant can never label its spans as
// another's. An empty tenant (authentication off, or a token without a
// tenant) removes the sender's value: a claim nobody checked would make the
// spans the tenant's once tokens are turned on.
//
// Call it on the decoded request before converting it to rows.
func StampTenant(td ptrace.Traces, tenant string) {
	rss := td.ResourceSpans()
	for i := 0; i < rss.Len(); i++ {
		attrs := rss.At(i).Resource().Attributes()
		// RemoveIf drops wire-level duplicates too, which PutStr alone
		// would leave behind.
		attrs.RemoveIf(func(k string, _ pcommon.Value) bool { return k == TenantAttribute })
		if tenant != "" {
			attrs.PutStr(TenantAttribute, tenant)
		}
	}
}
