package convert

import (
	"bytes"
	"fmt"
	"hash/maphash"
	"math"
	"slices"
	"sync"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/kern-agents/trace-gateway/internal/model"
)

// Field numbers of the OTLP messages written (opentelemetry/proto
// trace/v1, resource/v1 and common/v1).
const (
	fieldTracesResourceSpans protowire.Number = 1

	fieldResourceSpansResource   protowire.Number = 1
	fieldResourceSpansScopeSpans protowire.Number = 2
	fieldResourceAttributes      protowire.Number = 1

	fieldScopeSpansScope   protowire.Number = 1
	fieldScopeSpansSpans   protowire.Number = 2
	fieldScopeName         protowire.Number = 1
	fieldScopeVersion      protowire.Number = 2
	fieldScopeAttributes   protowire.Number = 3
	fieldSpanTraceID       protowire.Number = 1
	fieldSpanSpanID        protowire.Number = 2
	fieldSpanParentSpanID  protowire.Number = 4
	fieldSpanName          protowire.Number = 5
	fieldSpanKind          protowire.Number = 6
	fieldSpanStart         protowire.Number = 7
	fieldSpanEnd           protowire.Number = 8
	fieldSpanAttributes    protowire.Number = 9
	fieldSpanDroppedAttrs  protowire.Number = 10
	fieldSpanEvents        protowire.Number = 11
	fieldSpanDroppedEvents protowire.Number = 12
	fieldSpanLinks         protowire.Number = 13
	fieldSpanDroppedLinks  protowire.Number = 14
	fieldSpanStatus        protowire.Number = 15
	fieldStatusMessage     protowire.Number = 2
	fieldStatusCode        protowire.Number = 3

	fieldEventTime         protowire.Number = 1
	fieldEventName         protowire.Number = 2
	fieldEventAttributes   protowire.Number = 3
	fieldEventDroppedAttrs protowire.Number = 4

	fieldLinkTraceID      protowire.Number = 1
	fieldLinkSpanID       protowire.Number = 2
	fieldLinkTraceState   protowire.Number = 3
	fieldLinkAttributes   protowire.Number = 4
	fieldLinkDroppedAttrs protowire.Number = 5

	fieldKeyValueKey   protowire.Number = 1
	fieldKeyValueValue protowire.Number = 2
	fieldAnyString     protowire.Number = 1
	fieldAnyBool       protowire.Number = 2
	fieldAnyInt        protowire.Number = 3
	fieldAnyDouble     protowire.Number = 4
	fieldAnyArray      protowire.Number = 5
	fieldAnyKvlist     protowire.Number = 6
	fieldArrayValues   protowire.Number = 1
	fieldKvlistValues  protowire.Number = 1
)

// EncodeOTLP returns exactly the bytes
// (&ptrace.ProtoMarshaler{}).MarshalTraces(ToOTLP(spans)) would, and
// order[i] = index into spans of the i-th span in the encoded payload (spans
// are grouped by resource and scope, so payload order can differ from input
// order). It fails where ToOTLP fails, with the same error.
//
// It reads the rows with ToOTLP's reader and helpers and writes protobuf
// straight from them. pdata's marshaler writes each message from the back of
// its buffer, so fields come out in descending field-number order (repeated
// fields keep theirs): a KeyValue is its value then its key, a span starts
// with its status, a ResourceSpans ends with its resource. Ids, status,
// Resource and Scope are always written, even empty; other empty fields are
// not.
func EncodeOTLP(spans []model.Span) (payload []byte, order []int, err error) {
	parts, order, err := EncodeOTLPParts(spans)
	if err != nil {
		return nil, nil, err
	}
	return bytes.Join(parts, nil), order, nil
}

// EncodeOTLPParts is EncodeOTLP with the payload in parts that concatenate
// to it. Spans are written once, into blocks of their scope's group, and
// the parts are those blocks between small headers: laying the groups out
// in one buffer was a copy of the whole payload into fresh memory, which
// cost the fan-out more than reading the rows.
func EncodeOTLPParts(spans []model.Span) (parts [][]byte, order []int, err error) {
	return encodeParts(spans, partBlock)
}

// partBlock is the size of the blocks spans are written into: the largest
// size class of the Go allocator, so blocks come from its caches rather
// than the page heap. A span larger than a block gets one of its own size.
const partBlock = 32 << 10

func encodeParts(spans []model.Span, block int) (parts [][]byte, order []int, err error) {
	e := encoderPool.Get().(*encoder)
	defer e.release()
	e.block = block
	for i := range spans {
		if err := e.span(&spans[i]); err != nil {
			s := &spans[i]
			return nil, nil, fmt.Errorf("span %s of trace %s: %w", s.SpanID, s.TraceID, err)
		}
	}
	parts, order = e.assemble()
	return parts, order, nil
}

var encoderPool = sync.Pool{New: func() any { return new(encoder) }}

// encoder holds the state of one EncodeOTLP call; its buffers are reused,
// except the blocks handed out as parts.
type encoder struct {
	r      reader
	sink   protoSink
	groups grouping
	block  int // see partBlock

	// stage holds the span being written, as a ScopeSpans.spans field;
	// next[i] is the span after span i in its scope group (-1: last).
	stage []byte
	next  []int

	res    []byte // Resource messages, group i ending at resEnd[i]
	resEnd []int
	// resScopes[i] and scopeNext chain the scope groups of resource i.
	resScopes, resLast []int

	scopes     []byte // InstrumentationScope messages, group i ending at scopeEnd[i]
	scopeEnd   []int
	scopeNext  []int
	head, tail []int // first and last span of each scope group
	// blocks[sg] holds scope group sg's spans, in order; spanBytes[sg]
	// their size.
	blocks    [][][]byte
	spanBytes []int

	rsSize []int // message sizes, by resource group

	scratch []byte // one span's attributes, events and links
}

// maxPooledChunk keeps one huge chunk from pinning its buffers in the pool.
const maxPooledChunk = 16 << 20

// release returns e to the pool unless one huge chunk made it big.
func (e *encoder) release() {
	for _, b := range [][]byte{e.stage, e.res, e.scopes, e.scratch, e.sink.tmp, e.sink.keys, e.r.keys, e.r.scratch} {
		if cap(b) > maxPooledChunk {
			return
		}
	}
	e.groups.reset()
	e.stage, e.next = e.stage[:0], e.next[:0]
	e.res, e.resEnd, e.resScopes, e.resLast = e.res[:0], e.resEnd[:0], e.resScopes[:0], e.resLast[:0]
	e.scopes, e.scopeEnd, e.scopeNext = e.scopes[:0], e.scopeEnd[:0], e.scopeNext[:0]
	e.head, e.tail = e.head[:0], e.tail[:0]
	for i := range e.blocks {
		clear(e.blocks[i]) // they belong to the parts handed out
		e.blocks[i] = e.blocks[i][:0]
	}
	e.blocks, e.spanBytes = e.blocks[:0], e.spanBytes[:0]
	encoderPool.Put(e)
}

// object appends the members of the JSON object in data to dst as
// repeated KeyValue fields numbered field.
func (e *encoder) object(dst []byte, field protowire.Number, data []byte) ([]byte, error) {
	e.sink.reset(dst, field)
	err := e.r.object(data, &e.sink)
	return e.sink.out, err
}

// span encodes one row, checking it in the order ToOTLP does so that the
// same error comes first.
func (e *encoder) span(s *model.Span) error {
	e.sink.reset(e.scratch[:0], fieldSpanAttributes)
	p, err := splitAttributes(&e.r, s.Attributes, &e.sink)
	p.resolveOrigin(s)
	e.scratch = e.sink.out
	if err != nil {
		return fmt.Errorf("attributes: %w", err)
	}
	attrsEnd := len(e.scratch)

	ri, si, newRes, newScope := e.groups.place(p.resource, p.scope)
	if newRes {
		if p.resource != nil {
			if e.res, err = e.object(e.res, fieldResourceAttributes, p.resource); err != nil {
				return fmt.Errorf("%s: %w", model.KeyResource, err)
			}
		}
		e.resEnd = append(e.resEnd, len(e.res))
		e.resScopes = append(e.resScopes, -1)
		e.resLast = append(e.resLast, -1)
	}
	if newScope {
		if p.scope != nil {
			if err := e.scope(p.scope); err != nil {
				return fmt.Errorf("%s: %w", model.KeyScope, err)
			}
		}
		e.scopeEnd = append(e.scopeEnd, len(e.scopes))
		e.scopeNext = append(e.scopeNext, -1)
		if last := e.resLast[ri]; last < 0 {
			e.resScopes[ri] = si
		} else {
			e.scopeNext[last] = si
		}
		e.resLast[ri] = si
		e.head = append(e.head, -1)
		e.tail = append(e.tail, -1)
		if len(e.blocks) < cap(e.blocks) {
			e.blocks = e.blocks[:len(e.blocks)+1]
		} else {
			e.blocks = append(e.blocks, nil)
		}
		e.spanBytes = append(e.spanBytes, 0)
	}

	c, err := readColumns(s)
	if err != nil {
		return err
	}
	if p.events != nil && !isNull(p.events) {
		if err := e.events(p.events); err != nil {
			return fmt.Errorf("%s: %w", model.KeyEvents, err)
		}
	}
	eventsEnd := len(e.scratch)
	if p.links != nil && !isNull(p.links) {
		if err := e.links(p.links); err != nil {
			return fmt.Errorf("%s: %w", model.KeyLinks, err)
		}
	}
	var d droppedCounts
	if p.dropped != nil && !isNull(p.dropped) {
		if d, err = readDropped(p.dropped); err != nil {
			return fmt.Errorf("%s: %w", model.KeyDropped, err)
		}
	}

	b := protowire.AppendTag(e.stage[:0], fieldScopeSpansSpans, protowire.BytesType)
	at := len(b)
	b = append(b, 0, 0) // most spans take 128 to 16383 bytes
	b = appendStatus(b, c.code, s.StatusMessage)
	b = appendUint(b, fieldSpanDroppedLinks, uint64(d.Links))
	b = append(b, e.scratch[eventsEnd:]...)
	b = appendUint(b, fieldSpanDroppedEvents, uint64(d.Events))
	b = append(b, e.scratch[attrsEnd:eventsEnd]...)
	b = appendUint(b, fieldSpanDroppedAttrs, uint64(d.Attributes))
	b = append(b, e.scratch[:attrsEnd]...)
	b = appendTime(b, fieldSpanEnd, c.end)
	b = appendTime(b, fieldSpanStart, c.start)
	b = appendUint(b, fieldSpanKind, uint64(c.kind))
	b = appendString(b, fieldSpanName, s.Name)
	b = appendID(b, fieldSpanParentSpanID, c.psid[:], c.psid.IsEmpty())
	b = appendID(b, fieldSpanSpanID, c.sid[:], c.sid.IsEmpty())
	b = appendID(b, fieldSpanTraceID, c.tid[:], c.tid.IsEmpty())
	e.stage = closeLen(b, at, 2)
	e.keep(si, e.stage)

	i := len(e.next)
	e.next = append(e.next, -1)
	if e.tail[si] < 0 {
		e.head[si] = i
	} else {
		e.next[e.tail[si]] = i
	}
	e.tail[si] = i
	return nil
}

// scope appends an InstrumentationScope message to e.scopes.
func (e *encoder) scope(raw []byte) error {
	sc, err := readScope(raw)
	if err != nil {
		return err
	}
	if sc.Attributes != nil {
		if e.scopes, err = e.object(e.scopes, fieldScopeAttributes, sc.Attributes); err != nil {
			return err
		}
	}
	e.scopes = appendString(e.scopes, fieldScopeVersion, sc.Version)
	e.scopes = appendString(e.scopes, fieldScopeName, sc.Name)
	return nil
}

// events appends Span.events fields to e.scratch.
func (e *encoder) events(raw []byte) error {
	return eachEvent(raw, func(ev *eventFields, ts pcommon.Timestamp) error {
		b := protowire.AppendTag(e.scratch, fieldSpanEvents, protowire.BytesType)
		at := len(b)
		b = append(b, 0)
		b = appendUint(b, fieldEventDroppedAttrs, uint64(ev.Dropped))
		var err error
		if ev.Attributes != nil {
			b, err = e.object(b, fieldEventAttributes, ev.Attributes)
		}
		if err == nil {
			b = appendString(b, fieldEventName, ev.Name)
			b = appendTime(b, fieldEventTime, ts)
			b = closeLen(b, at, 1)
		}
		e.scratch = b
		return err
	})
}

// links appends Span.links fields to e.scratch.
func (e *encoder) links(raw []byte) error {
	return eachLink(raw, func(l *linkFields, tid pcommon.TraceID, sid pcommon.SpanID) error {
		b := protowire.AppendTag(e.scratch, fieldSpanLinks, protowire.BytesType)
		at := len(b)
		b = append(b, 0)
		b = appendUint(b, fieldLinkDroppedAttrs, uint64(l.Dropped))
		var err error
		if l.Attributes != nil {
			b, err = e.object(b, fieldLinkAttributes, l.Attributes)
		}
		if err == nil {
			b = appendString(b, fieldLinkTraceState, l.TraceState)
			b = appendID(b, fieldLinkSpanID, sid[:], sid.IsEmpty())
			b = appendID(b, fieldLinkTraceID, tid[:], tid.IsEmpty())
			b = closeLen(b, at, 1)
		}
		e.scratch = b
		return err
	})
}

// keep appends a span to the blocks of scope group sg.
func (e *encoder) keep(sg int, span []byte) {
	bl := e.blocks[sg]
	if n := len(bl); n == 0 || cap(bl[n-1])-len(bl[n-1]) < len(span) {
		bl = append(bl, make([]byte, 0, max(e.block, len(span))))
	}
	last := &bl[len(bl)-1]
	*last = append(*last, span...)
	e.blocks[sg] = bl
	e.spanBytes[sg] += len(span)
}

// assemble lays the groups out: each ResourceSpans is its ScopeSpans then
// its Resource, each ScopeSpans its spans then its Scope. Headers and
// trailers go to one small buffer; the spans stay in their blocks.
func (e *encoder) assemble() ([][]byte, []int) {
	part := func(buf []byte, ends []int, i int) []byte {
		if i == 0 {
			return buf[:ends[0]]
		}
		return buf[ends[i-1]:ends[i]]
	}
	ssSize := func(sg int) int { return sizeField(len(part(e.scopes, e.scopeEnd, sg))) + e.spanBytes[sg] }
	e.rsSize = e.rsSize[:0]
	metaSize, nParts := 0, 0
	for g := range e.resEnd {
		n := sizeField(len(part(e.res, e.resEnd, g)))
		for sg := e.resScopes[g]; sg >= 0; sg = e.scopeNext[sg] {
			n += sizeField(ssSize(sg))
			metaSize += sizeField(ssSize(sg)) - e.spanBytes[sg]
			nParts += len(e.blocks[sg]) + 1
		}
		e.rsSize = append(e.rsSize, n)
		metaSize += 1 + protowire.SizeVarint(uint64(n)) + sizeField(len(part(e.res, e.resEnd, g)))
		nParts++
	}

	// meta holds all but the spans; parts cut from it keep its bytes even
	// if it had to grow.
	meta := make([]byte, 0, metaSize)
	parts := make([][]byte, 0, nParts)
	from := 0 // start of the meta not yet in parts
	flush := func() {
		if len(meta) > from {
			parts = append(parts, meta[from:len(meta):len(meta)])
			from = len(meta)
		}
	}
	order := make([]int, 0, len(e.next))
	for g := range e.resEnd {
		meta = protowire.AppendTag(meta, fieldTracesResourceSpans, protowire.BytesType)
		meta = protowire.AppendVarint(meta, uint64(e.rsSize[g]))
		for sg := e.resScopes[g]; sg >= 0; sg = e.scopeNext[sg] {
			meta = protowire.AppendTag(meta, fieldResourceSpansScopeSpans, protowire.BytesType)
			meta = protowire.AppendVarint(meta, uint64(ssSize(sg)))
			flush()
			parts = append(parts, e.blocks[sg]...)
			for i := e.head[sg]; i >= 0; i = e.next[i] {
				order = append(order, i)
			}
			meta = protowire.AppendTag(meta, fieldScopeSpansScope, protowire.BytesType)
			meta = protowire.AppendBytes(meta, part(e.scopes, e.scopeEnd, sg))
		}
		meta = protowire.AppendTag(meta, fieldResourceSpansResource, protowire.BytesType)
		meta = protowire.AppendBytes(meta, part(e.res, e.resEnd, g))
	}
	flush()
	return parts, order
}

// sizeField is the size of a length-delimited field (tag below 16) holding
// n bytes.
func sizeField(n int) int { return 1 + protowire.SizeVarint(uint64(n)) + n }

// tag is the one-byte tag of field f: every field written is numbered
// below 16.
func tag(f protowire.Number, t protowire.Type) byte { return byte(protowire.EncodeTag(f, t)) }

// closeLen1 is closeLen for a one-byte reservation, inlined for the common
// short content.
func closeLen1(b []byte, at int) []byte {
	if n := len(b) - at - 1; n < 0x80 {
		b[at] = byte(n)
		return b
	}
	return closeLen(b, at, 1)
}

// closeLen writes the varint length of b[at+w:] into the w bytes reserved
// for it at b[at], moving the content when the varint takes more or fewer.
func closeLen(b []byte, at, w int) []byte {
	n := len(b) - at - w
	need := protowire.SizeVarint(uint64(n))
	if need != w {
		if need > w {
			b = slices.Grow(b, need-w)[:len(b)+need-w]
		}
		copy(b[at+need:], b[at+w:at+w+n])
		b = b[:at+need+n]
	}
	protowire.AppendVarint(b[:at], uint64(n)) // in place: fits in need bytes
	return b
}

func appendUint(b []byte, f protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	b = protowire.AppendTag(b, f, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

func appendString(b []byte, f protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	b = protowire.AppendTag(b, f, protowire.BytesType)
	return protowire.AppendString(b, s)
}

func appendTime(b []byte, f protowire.Number, t pcommon.Timestamp) []byte {
	if t == 0 {
		return b
	}
	b = protowire.AppendTag(b, f, protowire.Fixed64Type)
	return protowire.AppendFixed64(b, uint64(t))
}

// appendID writes an id as pdata does: always, with no bytes when all zero.
func appendID(b []byte, f protowire.Number, id []byte, empty bool) []byte {
	b = protowire.AppendTag(b, f, protowire.BytesType)
	if empty {
		return append(b, 0)
	}
	return protowire.AppendBytes(b, id)
}

// appendStatus writes the span's status, always.
func appendStatus(b []byte, code ptrace.StatusCode, msg string) []byte {
	b = protowire.AppendTag(b, fieldSpanStatus, protowire.BytesType)
	at := len(b)
	b = append(b, 0)
	b = appendUint(b, fieldStatusCode, uint64(code))
	b = appendString(b, fieldStatusMessage, msg)
	return closeLen(b, at, 1)
}

// protoSink appends the values the reader walks as protobuf: the EncodeOTLP
// side. Lengths are reserved one byte and fixed when the container closes
// (closeLen). Like pcommon.Map.PutEmpty, a key met again in the same map
// replaces the first entry's value in place.
type protoSink struct {
	out     []byte
	stack   []protoFrame
	members []protoMember // of the open maps, outermost first
	keys    []byte        // their names
	index   []int32       // the root map's members by hash, once large (see indexRoot)
	tmp     []byte
}

type protoFrame struct {
	field   protowire.Number // of the entries: KeyValue or AnyValue fields
	at      int              // reserved length of the container's AnyValue field; -1 for the root
	first   int              // maps: index in members of the first entry
	keyMark int              // maps: len(keys) when opened
	cur     int              // start of the entry being read
	lenAt   int              // its reserved length
	valAt   int              // maps: its value's reserved length
	member  int              // maps: index in members of its name
	dup     bool             // maps: it replaces an earlier entry
	seen    bloom            // maps: the hashes of its keys
}

type protoMember struct {
	hash        uint64
	key, keyEnd int // name in keys
	start       int // entry in out
}

// reset makes out the buffer to append to, and the entries to come fields
// numbered field of the enclosing message.
func (s *protoSink) reset(out []byte, field protowire.Number) {
	s.out = out
	s.stack = append(s.stack[:0], protoFrame{field: field, at: -1})
	s.members, s.keys = s.members[:0], s.keys[:0]
	s.index = s.index[:0]
}

func (s *protoSink) top() *protoFrame { return &s.stack[len(s.stack)-1] }

func (s *protoSink) beginMember(k []byte) {
	f := s.top()
	h := maphash.Bytes(keySeed, k)
	f.member, f.dup = s.find(f, h, k)
	if !f.dup {
		f.member = len(s.members)
		s.members = append(s.members, protoMember{hash: h, key: len(s.keys), keyEnd: len(s.keys) + len(k), start: len(s.out)})
		s.keys = append(s.keys, k...)
		f.seen.add(h)
		if f.at < 0 {
			s.indexRoot()
		}
	}
	f.cur = len(s.out)
	f.lenAt, f.valAt = f.cur+1, f.cur+3
	s.out = append(s.out, tag(f.field, protowire.BytesType), 0, tag(fieldKeyValueValue, protowire.BytesType), 0)
}

var keySeed = maphash.MakeSeed()

// bloom is a 256-bit filter of key hashes, two bits each.
type bloom [4]uint64

func (b *bloom) add(h uint64) {
	b1, b2 := h>>56, h>>48&0xff
	b[b1>>6] |= 1 << (b1 & 63)
	b[b2>>6] |= 1 << (b2 & 63)
}

func (b *bloom) has(h uint64) bool {
	b1, b2 := h>>56, h>>48&0xff
	return b[b1>>6]&(1<<(b1&63)) != 0 && b[b2>>6]&(1<<(b2&63)) != 0
}

// find returns the entry of map f named k (hashed h), if any.
func (s *protoSink) find(f *protoFrame, h uint64, k []byte) (int, bool) {
	if !f.seen.has(h) {
		return 0, false // most new keys
	}
	same := func(i int) bool {
		m := &s.members[i]
		return m.hash == h && string(s.keys[m.key:m.keyEnd]) == string(k)
	}
	if f.at < 0 && len(s.index) > 0 {
		mask := uint64(len(s.index) - 1)
		for j := h & mask; s.index[j] != 0; j = (j + 1) & mask {
			if i := int(s.index[j] - 1); same(i) {
				return i, true
			}
		}
		return 0, false
	}
	for i := f.first; i < len(s.members); i++ {
		if same(i) {
			return i, true
		}
	}
	return 0, false
}

// indexRoot adds the root map's last entry to its hash index, which it
// starts once the map is big enough for searching it to cost: span and
// resource attributes may hold a thousand entries.
func (s *protoSink) indexRoot() {
	n := len(s.members)
	if n < 32 {
		return
	}
	if 2*n > len(s.index) {
		size := 64
		for size < 4*n {
			size <<= 1
		}
		s.index = slices.Grow(s.index[:0], size)[:size]
		clear(s.index)
		for i := range n - 1 {
			s.insert(i)
		}
	}
	s.insert(n - 1)
}

func (s *protoSink) insert(i int) {
	mask := uint64(len(s.index) - 1)
	j := s.members[i].hash & mask
	for s.index[j] != 0 {
		j = (j + 1) & mask
	}
	s.index[j] = int32(i + 1)
}

func (s *protoSink) endMember() {
	f := s.top()
	s.out = closeLen1(s.out, f.valAt)
	m := s.members[f.member]
	if m.keyEnd > m.key {
		s.out = append(s.out, tag(fieldKeyValueKey, protowire.BytesType))
		s.out = protowire.AppendBytes(s.out, s.keys[m.key:m.keyEnd])
	}
	s.out = closeLen1(s.out, f.lenAt)
	if !f.dup {
		return
	}
	// Move the new entry to where the first one was, dropping that one.
	end := f.cur
	if f.member+1 < len(s.members) {
		end = s.members[f.member+1].start
	}
	s.tmp = append(s.tmp[:0], s.out[f.cur:]...)
	s.tmp = append(s.tmp, s.out[end:f.cur]...)
	delta := (len(s.out) - f.cur) - (end - m.start)
	s.out = append(s.out[:m.start], s.tmp...)
	for i := f.member + 1; i < len(s.members); i++ {
		s.members[i].start += delta
	}
}

func (s *protoSink) beginElem() {
	f := s.top()
	f.lenAt = len(s.out) + 1
	s.out = append(s.out, tag(f.field, protowire.BytesType), 0)
}

func (s *protoSink) endElem() { s.out = closeLen1(s.out, s.top().lenAt) }

func (s *protoSink) beginMap() {
	s.stack = append(s.stack, protoFrame{field: fieldKvlistValues, at: len(s.out) + 1, first: len(s.members), keyMark: len(s.keys)})
	s.out = append(s.out, tag(fieldAnyKvlist, protowire.BytesType), 0)
}

func (s *protoSink) endMap() {
	f := s.top()
	s.out = closeLen1(s.out, f.at)
	s.members, s.keys = s.members[:f.first], s.keys[:f.keyMark]
	s.stack = s.stack[:len(s.stack)-1]
}

func (s *protoSink) beginSlice() {
	s.stack = append(s.stack, protoFrame{field: fieldArrayValues, at: len(s.out) + 1})
	s.out = append(s.out, tag(fieldAnyArray, protowire.BytesType), 0)
}

func (s *protoSink) endSlice() {
	s.out = closeLen1(s.out, s.top().at)
	s.stack = s.stack[:len(s.stack)-1]
}

func (s *protoSink) str(body []byte, plain bool) error {
	s.out = append(s.out, tag(fieldAnyString, protowire.BytesType))
	if plain {
		s.out = protowire.AppendBytes(s.out, body)
		return nil
	}
	// Reserve the length for text as long as the body (escapes shorten it,
	// bytes that are not UTF-8 lengthen it); closeLen fixes it up.
	at, w := len(s.out), protowire.SizeVarint(uint64(len(body)))
	s.out = append(s.out, make([]byte, w)...)
	var err error
	if s.out, err = appendStr(s.out, body); err != nil {
		return err
	}
	s.out = closeLen(s.out, at, w)
	return nil
}

func (s *protoSink) boolean(b bool) {
	s.out = append(s.out, tag(fieldAnyBool, protowire.VarintType), byte(protowire.EncodeBool(b)))
}

func (s *protoSink) integer(i int64) {
	s.out = append(s.out, tag(fieldAnyInt, protowire.VarintType))
	s.out = protowire.AppendVarint(s.out, uint64(i))
}

func (s *protoSink) double(f float64) {
	s.out = append(s.out, tag(fieldAnyDouble, protowire.Fixed64Type))
	s.out = protowire.AppendFixed64(s.out, math.Float64bits(f))
}
