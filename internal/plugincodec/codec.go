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

// Marshal encodes v. An ExportRequest becomes its field header followed by
// the payload slice itself: gRPC only reads the buffers it is given, and the
// payload is never written to after it is handed to Export.
func (Codec) Marshal(v any) (mem.BufferSlice, error) {
	r, ok := v.(*pluginpb.ExportRequest)
	if !ok || len(r.ProtoReflect().GetUnknown()) > 0 {
		return stock.Marshal(v)
	}
	if len(r.Traces) == 0 {
		return nil, nil // proto3 leaves an empty bytes field out
	}
	hdr := protowire.AppendTag(make([]byte, 0, 16), tracesField, protowire.BytesType)
	hdr = protowire.AppendVarint(hdr, uint64(len(r.Traces)))
	return mem.BufferSlice{mem.SliceBuffer(hdr), mem.SliceBuffer(r.Traces)}, nil
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
