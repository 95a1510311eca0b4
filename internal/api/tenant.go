package api

import (
	"github.com/kern-agents/trace-gateway/internal/auth"
	"github.com/kern-agents/trace-gateway/internal/model"
)

// A span belongs to the tenant the receiver stamped on its resource
// (auth.TenantAttribute). The resource is stored once in the resources
// table, whose tenant column holds it, and the span's kern.resource names
// its row; a row stored before resources were kept apart holds the
// resource inline as an object under kern.resource instead. A trace belongs
// to a tenant when one of its spans does. Spans stored without
// authentication carry no tenant and are shown to admin tokens only.

// spanOfTenant is the SQL condition "the span whose attributes are in
// column attrs belongs to tenant". The two branches are exclusive: an id is
// a string, an inline resource an object.
func (s *server) spanOfTenant(b *qb, attrs, tenant string) string {
	if b.pg {
		return "(" + attrs + "->>'" + model.KeyResource + "' IN (SELECT id FROM " + s.resources +
			" WHERE tenant = " + b.arg(tenant) + ") OR " +
			attrs + "->'" + model.KeyResource + "'->>'" + auth.TenantAttribute + "' = " + b.arg(tenant) + ")"
	}
	return "(json_extract(" + attrs + `, '$."` + model.KeyResource + `"') IN (SELECT id FROM ` + s.resources +
		" WHERE tenant = " + b.arg(tenant) + ") OR json_extract(" + attrs +
		`, '$."` + model.KeyResource + `"."` + auth.TenantAttribute + `"') = ` + b.arg(tenant) + ")"
}

// traceOfTenant is the SQL condition "the trace whose id is in column
// traceID has a span of tenant"; the spans table's trace_id index serves it.
func (s *server) traceOfTenant(b *qb, traceID, tenant string) string {
	return "EXISTS (SELECT 1 FROM " + s.spans + " ts WHERE ts.trace_id = " + traceID +
		" AND " + s.spanOfTenant(b, "ts.attributes", tenant) + ")"
}

// scopeList restricts a list to tenant's rows. The condition has no index
// of its own, so it is applied within the list's bounded scan window (the
// window's rows are aliased w).
func (s *server) scopeList(ls *listSpec, tenant string) {
	switch ls.scope {
	case "traces":
		ls.window = append(ls.window, func(b *qb) string { return s.traceOfTenant(b, "w.trace_id", tenant) })
	case "spans":
		ls.window = append(ls.window, func(b *qb) string { return s.spanOfTenant(b, "w.attributes", tenant) })
	default:
		panic("api: no tenant scope for list " + ls.scope)
	}
}
