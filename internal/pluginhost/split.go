package pluginhost

import (
	"fmt"
	"strings"

	"go.opentelemetry.io/collector/pdata/ptrace"
)

// requestSize is the encoded size of an ExportRequest carrying a payload of
// n bytes: one tag byte, the length varint, the payload.
func requestSize(n int) int {
	size := 1 + n
	for v := uint64(n); ; v >>= 7 {
		size++
		if v < 0x80 {
			return size
		}
	}
}

// oversizeSpan is a span that does not fit in one message even alone.
type oversizeSpan struct {
	traceID, spanID, name string
	size                  int
}

// splitter cuts batches so every ExportRequest stays within limit bytes.
type splitter struct {
	limit int
	sizer ptrace.ProtoMarshaler
}

// split returns td in parts that each fit, plus the spans that cannot fit on
// their own. A batch that fits comes back whole. Halving (resources, then
// scopes, then spans) keeps spans of one resource and scope together as much
// as the limit allows.
func (s splitter) split(td ptrace.Traces) ([]ptrace.Traces, []oversizeSpan) {
	var parts []ptrace.Traces
	var over []oversizeSpan
	s.splitInto(td, &parts, &over)
	return parts, over
}

func (s splitter) fits(td ptrace.Traces) bool {
	return requestSize(s.sizer.TracesSize(td)) <= s.limit
}

func (s splitter) splitInto(td ptrace.Traces, parts *[]ptrace.Traces, over *[]oversizeSpan) {
	if s.fits(td) {
		*parts = append(*parts, td)
		return
	}
	rss := td.ResourceSpans()
	if rss.Len() > 1 {
		mid := rss.Len() / 2
		for _, r := range [][2]int{{0, mid}, {mid, rss.Len()}} {
			part := ptrace.NewTraces()
			for i := r[0]; i < r[1]; i++ {
				rss.At(i).CopyTo(part.ResourceSpans().AppendEmpty())
			}
			s.splitInto(part, parts, over)
		}
		return
	}
	if rss.Len() == 0 {
		return // cannot be too big; unreachable
	}
	rs := rss.At(0)
	sss := rs.ScopeSpans()
	if sss.Len() > 1 {
		mid := sss.Len() / 2
		for _, r := range [][2]int{{0, mid}, {mid, sss.Len()}} {
			part := ptrace.NewTraces()
			prs := part.ResourceSpans().AppendEmpty()
			rs.Resource().CopyTo(prs.Resource())
			prs.SetSchemaUrl(rs.SchemaUrl())
			for i := r[0]; i < r[1]; i++ {
				sss.At(i).CopyTo(prs.ScopeSpans().AppendEmpty())
			}
			s.splitInto(part, parts, over)
		}
		return
	}
	if sss.Len() == 0 {
		return // a resource without spans has nothing to deliver
	}
	ss := sss.At(0)
	spans := ss.Spans()
	if spans.Len() > 1 {
		mid := spans.Len() / 2
		for _, r := range [][2]int{{0, mid}, {mid, spans.Len()}} {
			part := ptrace.NewTraces()
			prs := part.ResourceSpans().AppendEmpty()
			rs.Resource().CopyTo(prs.Resource())
			prs.SetSchemaUrl(rs.SchemaUrl())
			pss := prs.ScopeSpans().AppendEmpty()
			ss.Scope().CopyTo(pss.Scope())
			pss.SetSchemaUrl(ss.SchemaUrl())
			for i := r[0]; i < r[1]; i++ {
				spans.At(i).CopyTo(pss.Spans().AppendEmpty())
			}
			s.splitInto(part, parts, over)
		}
		return
	}
	if spans.Len() == 1 {
		sp := spans.At(0)
		*over = append(*over, oversizeSpan{
			traceID: sp.TraceID().String(),
			spanID:  sp.SpanID().String(),
			name:    sp.Name(),
			size:    s.sizer.TracesSize(td),
		})
	}
}

// describeOversize names the first few oversize spans for an error message.
func describeOversize(over []oversizeSpan, limit int) string {
	const show = 3
	var b strings.Builder
	fmt.Fprintf(&b, "%d span(s) exceed the %d-byte message limit even alone and were not sent:", len(over), limit)
	for i, o := range over {
		if i == show {
			fmt.Fprintf(&b, " and %d more", len(over)-show)
			break
		}
		fmt.Fprintf(&b, " span %s %q of trace %s (%d bytes);", o.spanID, o.name, o.traceID, o.size)
	}
	return strings.TrimSuffix(b.String(), ";")
}
