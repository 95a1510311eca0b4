// Package plugincodec is the gRPC codec between the gateway and its plugins.
// It is the protobuf codec, except for ExportRequest: that message is one
// bytes field holding a whole OTLP batch (up to the 4 MiB message limit), and
// the stock codec copies it once more on each side. Here the host sends the
// batch from the caller's slice (the encoded chunk every destination
// shares) and the plugin keeps the one copy gRPC has to make when it hands
// the message over, instead of copying it again into the field.
//
// The wire format is unchanged, so hosts and plugins built with or without
// this codec talk to each other.
package plugincodec

import (
	"fmt"

	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/kern-agents/trace-gateway/plugins/pluginpb"
)

// Codec implements encoding.CodecV2. Use it with grpc.ForceCodecV2 on the
// host's Export calls and grpc.ForceServerCodecV2 in the plugin.
type Codec struct{}

var _ encoding.CodecV2 = Codec{}

// stock is gRPC's own protobuf codec, for every other message.
var stock = encoding.GetCodecV2(proto.Name)

// tracesField is ExportRequest.traces.
const tracesField protowire.Number = 1

// Name is the content-subtype; "proto" keeps the stock wire contract.
func (Codec) Name() string { return proto.Name }

// ExportParts is an ExportRequest whose traces field is Parts concatenated,
// for the host to send. Each part is an encoded OTLP
// ExportTraceServiceRequest; a protobuf message's encodings concatenated are
// the message with their repeated fields appended, so the parts together are
// one request holding all their spans. Marshal sends the parts' own slices,
// so a batch of shared chunks is never joined into a copy per destination.
type ExportParts struct {
	Parts [][]byte
}

// Marshal encodes v. An ExportRequest (or ExportParts) becomes its field
// header followed by the payload slices themselves: gRPC only reads the
// buffers it is given, and payloads are never written to after they are
// handed to Export.
func (Codec) Marshal(v any) (mem.BufferSlice, error) {
	if p, ok := v.(*ExportParts); ok {
		return marshalParts(p.Parts), nil
	}
	r, ok := v.(*pluginpb.ExportRequest)
	if !ok || len(r.ProtoReflect().GetUnknown()) > 0 {
		return stock.Marshal(v)
	}
	return marshalParts([][]byte{r.Traces}), nil
}

// marshalParts encodes an ExportRequest whose traces are parts concatenated.
func marshalParts(parts [][]byte) mem.BufferSlice {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	if n == 0 {
		return nil // proto3 leaves an empty bytes field out
	}
	hdr := protowire.AppendTag(make([]byte, 0, 16), tracesField, protowire.BytesType)
	hdr = protowire.AppendVarint(hdr, uint64(n))
	out := make(mem.BufferSlice, 1, 1+len(parts))
	out[0] = mem.SliceBuffer(hdr)
	for _, p := range parts {
		if len(p) > 0 {
			out = append(out, mem.SliceBuffer(p))
		}
	}
	return out
}

// Unmarshal decodes data into v. For an ExportRequest the message is copied
// out of gRPC's pooled buffers once and the traces field points into that
// copy; fields this version does not know are kept as unknown fields, as
// proto.Unmarshal keeps them.
func (Codec) Unmarshal(data mem.BufferSlice, v any) error {
	r, ok := v.(*pluginpb.ExportRequest)
	if !ok {
		return stock.Unmarshal(data, v)
	}
	return unmarshalExport(data.Materialize(), r)
}

func unmarshalExport(b []byte, r *pluginpb.ExportRequest) error {
	r.Reset()
	var unknown []byte
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("plugincodec: ExportRequest: %w", protowire.ParseError(n))
		}
		if num > protowire.MaxValidNumber {
			return fmt.Errorf("plugincodec: ExportRequest: field number %d out of range", num)
		}
		if num == tracesField && typ == protowire.BytesType {
			v, m := protowire.ConsumeBytes(b[n:])
			if m < 0 {
				return fmt.Errorf("plugincodec: ExportRequest.traces: %w", protowire.ParseError(m))
			}
			r.Traces = v // the last one wins, as in proto.Unmarshal
			if len(v) == 0 {
				r.Traces = nil // proto3 bytes: empty decodes as nil
			}
			b = b[n+m:]
			continue
		}
		m := protowire.ConsumeFieldValue(num, typ, b[n:])
		if m < 0 {
			return fmt.Errorf("plugincodec: ExportRequest field %d: %w", num, protowire.ParseError(m))
		}
		unknown = protowire.AppendTag(unknown, num, typ) // re-encoded minimally, as proto.Unmarshal does
		unknown = append(unknown, b[n:n+m]...)
		b = b[n+m:]
	}
	if len(unknown) > 0 {
		r.ProtoReflect().SetUnknown(unknown)
	}
	return nil
}
