package convert

import "unsafe"

// boxChunk is how many values one allocation of a boxes chunk holds.
const boxChunk = 128

// boxes turns the strings, integers and doubles of the Go form of
// attributes into interface values with one allocation per boxChunk values
// rather than one per value (converting a string or a large integer to an
// interface copies it to the heap, and that was a tenth of the
// converter's time). A slot is written once, before it is boxed, and never
// again, so the chunks behave like the values the runtime would allocate:
// the garbage collector keeps a chunk while any value boxed from it lives.
type boxes struct {
	strs   []string
	ints   []int64
	floats []float64
}

// eface is the layout of an empty interface value.
type eface struct {
	typ, data unsafe.Pointer
}

// box returns v as an interface value whose data lives in *chunk.
func box[T string | int64 | float64](chunk *[]T, v T) any {
	if len(*chunk) == cap(*chunk) {
		*chunk = make([]T, 0, boxChunk)
	}
	*chunk = append(*chunk, v)
	var zero T
	out := any(zero) // the zero value boxes without allocating
	(*eface)(unsafe.Pointer(&out)).data = unsafe.Pointer(&(*chunk)[len(*chunk)-1])
	return out
}

func (b *boxes) str(s string) any {
	if s == "" {
		return s
	}
	return box(&b.strs, s)
}

func (b *boxes) int(i int64) any {
	if i >= 0 && i < 256 {
		return i // the runtime boxes small integers without allocating
	}
	return box(&b.ints, i)
}

func (b *boxes) float(f float64) any {
	return box(&b.floats, f)
}

// reset drops the chunks, so that a pooled writer does not keep the values
// of a past request alive.
func (b *boxes) reset() {
	*b = boxes{}
}
