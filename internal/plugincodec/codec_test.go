package plugincodec

import (
	"bytes"
	"slices"
	"testing"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"

	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/kern-agents/trace-gateway/plugins/pluginpb"
)

func TestMarshalMatchesProto(t *testing.T) {
	withUnknown := &pluginpb.ExportRequest{Traces: []byte("abc")}
	withUnknown.ProtoReflect().SetUnknown(protowire.AppendVarint(protowire.AppendTag(nil, 9, protowire.VarintType), 7))
	for _, tc := range []struct {
		name string
		msg  proto.Message
	}{
		{"empty", &pluginpb.ExportRequest{}},
		{"small", &pluginpb.ExportRequest{Traces: []byte{1, 2, 3}}},
		{"large", &pluginpb.ExportRequest{Traces: bytes.Repeat([]byte{0xab}, 3<<20)}},
		{"unknown fields", withUnknown},
		{"other message", &pluginpb.ExportResponse{Result: pluginpb.Result_RESULT_RETRYABLE, Message: "slow down", RetryAfterMs: 1500}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Codec{}.Marshal(tc.msg)
			if err != nil {
				t.Fatal(err)
			}
			want, err := proto.Marshal(tc.msg)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.Materialize(), want) {
				t.Fatalf("Marshal differs from proto.Marshal:\n got %x\nwant %x", head(got.Materialize()), head(want))
			}
		})
	}
}

func TestMarshalDoesNotCopyPayload(t *testing.T) {
	payload := bytes.Repeat([]byte{7}, 1<<20)
	bs, err := Codec{}.Marshal(&pluginpb.ExportRequest{Traces: payload})
	if err != nil {
		t.Fatal(err)
	}
	last := bs[len(bs)-1].ReadOnlyData()
	if &last[0] != &payload[0] {
		t.Fatal("the payload was copied")
	}
}

// TestExportPartsIsTheJoinedRequest: ExportParts goes on the wire exactly as
// an ExportRequest of its parts joined, each part sent from its own slice;
// and what the plugin decodes is one OTLP request holding every part's spans.
func TestExportPartsIsTheJoinedRequest(t *testing.T) {
	a, b := otlpRequest(t, "a1", "a2"), otlpRequest(t, "b1")
	for _, tc := range []struct {
		name  string
		parts [][]byte
	}{
		{"none", nil},
		{"empty parts", [][]byte{{}, nil}},
		{"one", [][]byte{a}},
		{"two", [][]byte{a, b}},
		{"with an empty one", [][]byte{a, {}, b}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Codec{}.Marshal(&ExportParts{Parts: tc.parts})
			if err != nil {
				t.Fatal(err)
			}
			joined := bytes.Join(tc.parts, nil)
			want, err := proto.Marshal(&pluginpb.ExportRequest{Traces: joined})
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.Materialize(), want) {
				t.Fatalf("Marshal differs from proto.Marshal of the joined parts:\n got %x\nwant %x", head(got.Materialize()), head(want))
			}
			for _, p := range tc.parts {
				if len(p) > 0 && !slices.ContainsFunc(got, func(buf mem.Buffer) bool { return &buf.ReadOnlyData()[0] == &p[0] }) {
					t.Fatal("a part was copied")
				}
			}
			var r pluginpb.ExportRequest
			if err := (Codec{}).Unmarshal(got, &r); err != nil {
				t.Fatal(err)
			}
			req := ptraceotlp.NewExportRequest()
			if err := req.UnmarshalProto(r.Traces); err != nil {
				t.Fatal(err)
			}
			var names []string
			rss := req.Traces().ResourceSpans()
			for i := range rss.Len() {
				spans := rss.At(i).ScopeSpans().At(0).Spans()
				for j := range spans.Len() {
					names = append(names, spans.At(j).Name())
				}
			}
			var wantNames []string
			for _, p := range tc.parts {
				switch {
				case len(p) == 0:
				case bytes.Equal(p, a):
					wantNames = append(wantNames, "a1", "a2")
				default:
					wantNames = append(wantNames, "b1")
				}
			}
			if !slices.Equal(names, wantNames) {
				t.Fatalf("plugin decodes spans %v, want %v", names, wantNames)
			}
		})
	}
}

// otlpRequest encodes an OTLP request with one resource holding spans named
// names.
func otlpRequest(t *testing.T, names ...string) []byte {
	t.Helper()
	td := ptrace.NewTraces()
	ss := td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty()
	for i, n := range names {
		sp := ss.Spans().AppendEmpty()
		sp.SetName(n)
		sp.SetSpanID(pcommon.SpanID{byte(i + 1)})
	}
	b, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestUnmarshalMatchesProto feeds the same bytes to the codec and to
// proto.Unmarshal: same traces, same unknown fields, an error for exactly
// the same inputs.
func TestUnmarshalMatchesProto(t *testing.T) {
	for name, in := range unmarshalSeeds() {
		t.Run(name, func(t *testing.T) { checkUnmarshal(t, in) })
	}
}

func FuzzUnmarshalMatchesProto(f *testing.F) {
	for _, in := range unmarshalSeeds() {
		f.Add(in)
	}
	f.Fuzz(checkUnmarshal)
}

func unmarshalSeeds() map[string][]byte {
	tag := func(num protowire.Number, typ protowire.Type) []byte { return protowire.AppendTag(nil, num, typ) }
	bytesField := func(num protowire.Number, v []byte) []byte {
		return protowire.AppendBytes(tag(num, protowire.BytesType), v)
	}
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	return map[string][]byte{
		"empty":                {},
		"traces":               bytesField(1, []byte("otlp")),
		"empty traces":         bytesField(1, nil),
		"last traces wins":     cat(bytesField(1, []byte("first")), bytesField(1, []byte("second"))),
		"unknown around":       cat(protowire.AppendVarint(tag(5, protowire.VarintType), 300), bytesField(1, []byte("x")), bytesField(7, []byte("y"))),
		"traces as varint":     protowire.AppendVarint(tag(1, protowire.VarintType), 3),
		"fixed fields":         cat(protowire.AppendFixed32(tag(2, protowire.Fixed32Type), 1), protowire.AppendFixed64(tag(3, protowire.Fixed64Type), 2)),
		"group":                cat(tag(4, protowire.StartGroupType), protowire.AppendVarint(tag(1, protowire.VarintType), 1), tag(4, protowire.EndGroupType)),
		"truncated length":     cat(tag(1, protowire.BytesType), protowire.AppendVarint(nil, 10), []byte("abc")),
		"truncated tag":        {0x80},
		"field zero":           protowire.AppendVarint(tag(0, protowire.VarintType), 1),
		"stray end group":      tag(4, protowire.EndGroupType),
		"reserved wire type 6": {0x0e},
	}
}

func checkUnmarshal(t *testing.T, in []byte) {
	var want pluginpb.ExportRequest
	werr := proto.Unmarshal(in, &want)
	// With Reuse, the request lands in a buffer that held a longer, other
	// request before.
	dirty := NewBuffers()
	dirty.put(bytes.Repeat([]byte{0xff}, len(in)+16))
	for _, c := range []Codec{{}, {Reuse: dirty}} {
		var got pluginpb.ExportRequest
		// Split the input like gRPC hands over a message read from several frames.
		var bs mem.BufferSlice
		for rest := in; len(rest) > 0; {
			n := min(len(rest), 5)
			bs = append(bs, mem.SliceBuffer(bytes.Clone(rest[:n])))
			rest = rest[n:]
		}
		gerr := c.Unmarshal(bs, &got)
		if (werr != nil) != (gerr != nil) {
			t.Fatalf("reuse %v, input %x: proto.Unmarshal error %v, codec error %v", c.Reuse != nil, in, werr, gerr)
		}
		if werr != nil {
			continue
		}
		if !bytes.Equal(got.Traces, want.Traces) || (got.Traces == nil) != (want.Traces == nil) {
			t.Fatalf("reuse %v, input %x: traces %x, want %x", c.Reuse != nil, in, got.Traces, want.Traces)
		}
		if !bytes.Equal(got.ProtoReflect().GetUnknown(), want.ProtoReflect().GetUnknown()) {
			t.Fatalf("reuse %v, input %x: unknown fields %x, want %x", c.Reuse != nil, in, got.ProtoReflect().GetUnknown(), want.ProtoReflect().GetUnknown())
		}
		if c.Reuse != nil {
			c.Reuse.Release(&got)
		}
	}
}

// TestReuseLendsEachBufferOnce: a request's memory is reused only after it
// was released, never while its traces may still be read.
func TestReuseLendsEachBufferOnce(t *testing.T) {
	bufs := NewBuffers()
	c := Codec{Reuse: bufs}
	receive := func(names ...string) (*pluginpb.ExportRequest, []byte) {
		t.Helper()
		traces := otlpRequest(t, names...)
		bs, err := c.Marshal(&pluginpb.ExportRequest{Traces: traces})
		if err != nil {
			t.Fatal(err)
		}
		r := new(pluginpb.ExportRequest)
		if err := c.Unmarshal(bs, r); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(r.Traces, traces) {
			t.Fatalf("received traces %x, want %x", head(r.Traces), head(traces))
		}
		return r, traces
	}
	first, firstTraces := receive("a1", "a2", "a3")
	second, _ := receive("b1", "b2", "b3")
	if &first.Traces[0] == &second.Traces[0] {
		t.Fatal("a request still lent out was received into again")
	}
	if !bytes.Equal(first.Traces, firstTraces) {
		t.Fatal("receiving the second request changed the first")
	}
	bufs.Release(first)
	if first.Traces != nil {
		t.Fatal("a released request still points at its buffer")
	}
	third, _ := receive("c1", "c2")
	bufs.Release(second)
	bufs.Release(third)
	fourth, _ := receive("d1")
	bufs.Release(fourth)
	if bufs.fresh != 2 {
		t.Fatalf("%d buffers allocated for 4 requests, at most 2 lent at once; want 2", bufs.fresh)
	}
	// Releasing twice, or a request received without Reuse, changes nothing.
	bufs.Release(fourth)
	bufs.Release(&pluginpb.ExportRequest{Traces: []byte{1}})
	if n := len(bufs.free); n > keptBuffers {
		t.Fatalf("%d free buffers kept, want at most %d", n, keptBuffers)
	}
}

func TestOtherMessagesUseStockCodec(t *testing.T) {
	in := &pluginpb.ExportResponse{Result: pluginpb.Result_RESULT_PERMANENT, Message: "bad key"}
	bs, err := Codec{}.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var out pluginpb.ExportResponse
	if err := (Codec{}).Unmarshal(bs, &out); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(in, &out) {
		t.Fatalf("round trip: got %v, want %v", &out, in)
	}
}

func head(b []byte) []byte { return b[:min(len(b), 32)] }
