// Package otlpsend is what every vendor adapter shares: converting pdata to
// the OTLP protobuf types, sending them with the OpenTelemetry otlptrace
// clients (HTTP or gRPC) with their own retry disabled, and translating what
// the vendor answered into the plugin SDK's error classes (retryable with the
// vendor's Retry-After, permanent naming the cause, or split-and-resend when
// the payload is too large).
package otlpsend

import (
	"fmt"

	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/kern-agents/trace-gateway/plugins"
)

// ToProto converts pdata traces into the OTLP protobuf structs the otlptrace
// clients upload. pdata and go.opentelemetry.io/proto/otlp generate from the
// same .proto files, so a marshal/unmarshal round trip is exact.
func ToProto(td ptrace.Traces) ([]*tracepb.ResourceSpans, error) {
	b, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
	if err != nil {
		return nil, fmt.Errorf("encode traces: %w", err)
	}
	var req coltracepb.ExportTraceServiceRequest
	if err := proto.Unmarshal(b, &req); err != nil {
		return nil, fmt.Errorf("decode traces into OTLP request: %w", err)
	}
	return req.ResourceSpans, nil
}

// decodeTraces reads a protobuf OTLP ExportTraceServiceRequest into pdata.
// Bytes that are not one can never be sent: the error is permanent.
func decodeTraces(request []byte) (ptrace.Traces, error) {
	td, err := (&ptrace.ProtoUnmarshaler{}).UnmarshalTraces(request)
	if err != nil {
		return ptrace.Traces{}, plugins.Permanent(fmt.Errorf("decoding batch: %w", err))
	}
	return td, nil
}

// decodeRequest reads a protobuf OTLP ExportTraceServiceRequest into the
// structs the otlptrace clients upload (see decodeTraces for errors).
func decodeRequest(request []byte) ([]*tracepb.ResourceSpans, error) {
	var req coltracepb.ExportTraceServiceRequest
	if err := proto.Unmarshal(request, &req); err != nil {
		return nil, plugins.Permanent(fmt.Errorf("decoding batch: %w", err))
	}
	return req.ResourceSpans, nil
}

// spanCount counts the spans in rs.
func spanCount(rs []*tracepb.ResourceSpans) int {
	n := 0
	for _, r := range rs {
		for _, ss := range r.GetScopeSpans() {
			n += len(ss.GetSpans())
		}
	}
	return n
}

// requestSize is the serialized size of the request that would carry rs.
func requestSize(rs []*tracepb.ResourceSpans) int {
	return proto.Size(&coltracepb.ExportTraceServiceRequest{ResourceSpans: rs})
}
