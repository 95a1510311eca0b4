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
	"sync"

	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/kern-agents/trace-gateway/plugins/pluginpb"
)

// Codec implements encoding.CodecV2. Use it with grpc.ForceCodecV2 on the
// host's Export calls and grpc.ForceServerCodecV2 in the plugin.
type Codec struct {
	// Reuse, when set, receives ExportRequests into its buffers instead of
	// fresh memory; the receiver hands each request back with Release once
	// nothing reads its traces any more. Nil: every request is a fresh copy.
	Reuse *Buffers
}

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
func (c Codec) Unmarshal(data mem.BufferSlice, v any) error {
	r, ok := v.(*pluginpb.ExportRequest)
	if !ok {
		return stock.Unmarshal(data, v)
	}
	if c.Reuse == nil {
		return unmarshalExport(data.Materialize(), r)
	}
	buf := c.Reuse.get(data.Len())
	data.CopyTo(buf)
	if err := unmarshalExport(buf, r); err != nil {
		c.Reuse.put(buf)
		return err
	}
	c.Reuse.lend(r, buf)
	return nil
}

// keptBuffers is how many free buffers Buffers keeps: one for the batch
// being exported, one for the next, already arriving.
const keptBuffers = 2

// maxLent bounds the requests Buffers remembers as lent: one that is never
// released (a call that did not reach the exporter) is forgotten rather
// than kept, and its buffer left to the garbage collector.
const maxLent = 16

// Buffers is the memory ExportRequests are received into when a plugin's
// exporter does not keep a request after its call: a batch is up to 4 MiB,
// and a fresh copy for each one was most of what a forwarding plugin
// allocated, cleared and collected (with the page faults of memory the Go
// runtime had just returned to the system). Safe for concurrent use.
type Buffers struct {
	mu    sync.Mutex
	free  [][]byte
	lent  map[*pluginpb.ExportRequest][]byte
	fresh int // buffers allocated, for tests
}

// NewBuffers returns an empty set of buffers.
func NewBuffers() *Buffers {
	return &Buffers{lent: map[*pluginpb.ExportRequest][]byte{}}
}

// get returns a buffer of n bytes, reused when one is big enough.
func (b *Buffers) get(n int) []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	for i, buf := range b.free {
		if cap(buf) >= n {
			b.free = append(b.free[:i], b.free[i+1:]...)
			return buf[:n]
		}
	}
	b.fresh++
	// A quarter more, so that the next, slightly larger batch fits too.
	return make([]byte, n, n+n/4)
}

// put makes buf free again; the smallest free buffer gives way when too
// many are kept.
func (b *Buffers) put(buf []byte) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.free = append(b.free, buf[:0])
	if len(b.free) > keptBuffers {
		small := 0
		for i, f := range b.free {
			if cap(f) < cap(b.free[small]) {
				small = i
			}
		}
		b.free = append(b.free[:small], b.free[small+1:]...)
	}
}

// lend records that r's traces live in buf until r is released.
func (b *Buffers) lend(r *pluginpb.ExportRequest, buf []byte) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.lent) >= maxLent {
		clear(b.lent)
	}
	b.lent[r] = buf
}

// Release gives back the memory of r, a request this codec received; r's
// traces must not be read afterwards. Requests received without Reuse are
// left alone.
func (b *Buffers) Release(r *pluginpb.ExportRequest) {
	b.mu.Lock()
	buf, ok := b.lent[r]
	delete(b.lent, r)
	b.mu.Unlock()
	if ok {
		r.Traces = nil
		b.put(buf)
	}
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
