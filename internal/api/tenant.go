package api

import (
	"github.com/kern-agents/trace-gateway/internal/auth"
	"github.com/kern-agents/trace-gateway/internal/model"
)

// A span belongs to the tenant the receiver stamped on its resource
// (auth.TenantAttribute). The resource is stored once in the resources
// table, whose tenant column holds it. A span names its row by its
// kern.resource, or, without one, by its trace's usual origin (the trace
// resources table); a row stored before resources were kept apart holds
// the resource inline as an object under kern.resource instead. A trace
// belongs to a tenant when one of its spans does. Spans stored without
// authentication carry no tenant and are shown to admin tokens only.

// spanOfTenant is the SQL condition "the span whose attributes and trace
// id are in columns attrs and traceID belongs to tenant".
func (s *server) spanOfTenant(b *qb, attrs, traceID, tenant string) string {
	ref := "coalesce(" + s.resourceRef(b, attrs) + ", (SELECT u.resource_id FROM " + s.traceResources +
		" u WHERE u.trace_id = " + traceID + "))"
	return s.originOfTenant(b, ref, attrs, tenant)
}

// traceOfTenant is the SQL condition "the trace whose id is in column
// traceID has a span of tenant": its usual origin is the tenant's, or one
// of its spans references (or holds inline) a resource of the tenant. The
// trace resources table's key and the spans table's trace_id index serve it.
func (s *server) traceOfTenant(b *qb, traceID, tenant string) string {
	return "(EXISTS (SELECT 1 FROM " + s.traceResources + " tu WHERE tu.trace_id = " + traceID +
		" AND tu.resource_id IN (SELECT id FROM " + s.resources + " WHERE tenant = " + b.arg(tenant) + "))" +
		" OR EXISTS (SELECT 1 FROM " + s.spans + " ts WHERE ts.trace_id = " + traceID +
		" AND " + s.originOfTenant(b, s.resourceRef(b, "ts.attributes"), "ts.attributes", tenant) + "))"
}

// resourceRef is the SQL expression of the kern.resource of attrs: the
// referenced id, an inline resource as JSON text, or NULL.
func (s *server) resourceRef(b *qb, attrs string) string {
	if b.pg {
		return attrs + "->>'" + model.KeyResource + "'"
	}
	return "json_extract(" + attrs + `, '$."` + model.KeyResource + `"')`
}

// originOfTenant is the SQL condition "origin id ref, or the resource
// inline in attrs, is tenant's". The two branches are exclusive: an id is a
// string, an inline resource an object.
func (s *server) originOfTenant(b *qb, ref, attrs, tenant string) string {
	inline := attrs + "->'" + model.KeyResource + "'->>'" + auth.TenantAttribute + "'"
	if !b.pg {
		inline = "json_extract(" + attrs + `, '$."` + model.KeyResource + `"."` + auth.TenantAttribute + `"')`
	}
	return "(" + ref + " IN (SELECT id FROM " + s.resources + " WHERE tenant = " + b.arg(tenant) + ") OR " +
		inline + " = " + b.arg(tenant) + ")"
}

// scopeList restricts a list to tenant's rows. The condition has no index
// of its own, so it is applied within the list's bounded scan window (the
// window's rows are aliased w).
func (s *server) scopeList(ls *listSpec, tenant string) {
	switch ls.scope {
	case "traces":
		ls.window = append(ls.window, func(b *qb) string { return s.traceOfTenant(b, "w.trace_id", tenant) })
	case "spans":
		ls.window = append(ls.window, func(b *qb) string { return s.spanOfTenant(b, "w.attributes", "w.trace_id", tenant) })
	default:
		panic("api: no tenant scope for list " + ls.scope)
	}
}
