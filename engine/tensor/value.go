package tensor

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"unsafe"
)

// DType is the element type of a tensor.
type DType uint8

const (
	DTypeInvalid DType = iota
	Float32
	Float64
	Int32
	Int64
	Uint8
	Bool
	String
)

var dtypeTable = [...]struct {
	name, v2 string
	size     int
}{
	DTypeInvalid: {"invalid", "", 0},
	Float32:      {"float32", "FP32", 4},
	Float64:      {"float64", "FP64", 8},
	Int32:        {"int32", "INT32", 4},
	Int64:        {"int64", "INT64", 8},
	Uint8:        {"uint8", "UINT8", 1},
	Bool:         {"bool", "BOOL", 1},
	String:       {"string", "BYTES", 0},
}

// dtypeNames is built once so a failed ParseDType can say what it accepts
// without rebuilding the list on every call.
var dtypeNames = func() string {
	var names, v2 []string
	for d := Float32; d <= String; d++ {
		names = append(names, dtypeTable[d].name)
		v2 = append(v2, dtypeTable[d].v2)
	}
	return strings.Join(names, ", ") + " or KServe v2 " + strings.Join(v2, ", ")
}()

// String returns the lower-case name, "invalid" for DTypeInvalid, and
// "dtype(N)" for a value outside the enum so bad data is visible in logs.
func (d DType) String() string {
	if int(d) < len(dtypeTable) {
		return dtypeTable[d].name
	}
	return "dtype(" + strconv.Itoa(int(d)) + ")"
}

// Size is the number of bytes per element; 0 for String (elements have no
// fixed size) and for invalid dtypes.
func (d DType) Size() int {
	if int(d) < len(dtypeTable) {
		return dtypeTable[d].size
	}
	return 0
}

// V2 is the KServe v2 protocol datatype name; "" for invalid dtypes.
func (d DType) V2() string {
	if int(d) < len(dtypeTable) {
		return dtypeTable[d].v2
	}
	return ""
}

// Validate reports whether d is one of the dtypes, with an error that lists
// them.
func (d DType) Validate() error {
	if d.Size() == 0 && d != String {
		return fmt.Errorf("dtype %s is not valid, want one of %s", d, dtypeNames)
	}
	return nil
}

// ParseDType accepts both the names String returns and the KServe v2
// names, ignoring case, so configs and wire requests can use either.
func ParseDType(s string) (DType, error) {
	for d := Float32; d <= String; d++ {
		if strings.EqualFold(s, dtypeTable[d].name) || strings.EqualFold(s, dtypeTable[d].v2) {
			return d, nil
		}
	}
	return DTypeInvalid, fmt.Errorf("unknown dtype %q, want one of %s (case-insensitive)", s, dtypeNames)
}

// Numeric is the set of Go element types a tensor can be viewed as without
// copying. Bool is included because it is stored one byte per element.
type Numeric interface {
	~float32 | ~float64 | ~int32 | ~int64 | ~uint8 | ~bool
}

// dtypeFor maps an element type to its dtype. The type switch on a typed
// nil pointer never allocates; reflection is only the fallback for named
// types such as `type Score float32`, which the switch cannot see through.
func dtypeFor[T Numeric]() DType {
	switch any((*T)(nil)).(type) {
	case *float32:
		return Float32
	case *float64:
		return Float64
	case *int32:
		return Int32
	case *int64:
		return Int64
	case *uint8:
		return Uint8
	case *bool:
		return Bool
	}
	switch reflect.TypeFor[T]().Kind() {
	case reflect.Float32:
		return Float32
	case reflect.Float64:
		return Float64
	case reflect.Int32:
		return Int32
	case reflect.Int64:
		return Int64
	case reflect.Uint8:
		return Uint8
	case reflect.Bool:
		return Bool
	}
	return DTypeInvalid
}

// Tensor is a dtype, a shape and row-major data. Numeric and bool elements
// live in raw in native byte order (little-endian on every platform we
// build for); string elements live in strs.
//
// Tensors are immutable once shared: constructors, Split and Slice return
// views over the caller's memory, so neither the tensor's data nor the
// slices it was built from may be written after it is handed to anyone
// else. That is what makes concurrent reads and zero-copy batching safe.
// A nil *Tensor is safe to call accessors on; it reads as empty.
type Tensor struct {
	dtype DType
	shape []int
	raw   []byte
	strs  []string
}

// maxElems caps element counts so that the byte size of any tensor (at most
// 16 bytes per element, a string header) cannot overflow an int.
const maxElems = math.MaxInt / 16

// ElemCount is the number of elements of a tensor of that shape: the
// product of its dims, rejecting negative dims and products too large for
// any tensor to hold.
func ElemCount(shape []int) (int, error) {
	n := 1
	for i, d := range shape {
		if d < 0 {
			return 0, fmt.Errorf("shape %s: dim %d is %d, want >= 0", shapeText(shape), i, d)
		}
		if d == 0 {
			n = 0
		}
	}
	if n == 0 {
		return 0, nil
	}
	for _, d := range shape {
		if n > maxElems/d {
			return 0, fmt.Errorf("shape %s has more than %d elements", shapeText(shape), maxElems)
		}
		n *= d
	}
	return n, nil
}

// viewBytes reinterprets s as its underlying bytes without copying.
func viewBytes[T any](s []T) []byte {
	var z T
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(s))), len(s)*int(unsafe.Sizeof(z)))
}

// viewAs reinterprets raw as []T without copying. raw must be aligned for
// T, which every constructor guarantees. An empty tensor gives an empty,
// non-nil slice so callers can tell it from a dtype mismatch.
func viewAs[T any](raw []byte) []T {
	if len(raw) == 0 {
		return []T{}
	}
	var z T
	return unsafe.Slice((*T)(unsafe.Pointer(unsafe.SliceData(raw))), len(raw)/int(unsafe.Sizeof(z)))
}

// allocElems allocates n elements of dt as bytes, backed by a typed slice
// so the memory is aligned for dt whatever the allocator does with []byte.
func allocElems(dt DType, n int) []byte {
	switch dt.Size() {
	case 8:
		return viewBytes(make([]uint64, n))
	case 4:
		return viewBytes(make([]uint32, n))
	default:
		return make([]byte, n*dt.Size())
	}
}

// NewTensor wraps data without copying: the tensor's bytes are a view of
// data, so data must not be modified afterwards. shape is copied.
func NewTensor[T Numeric](shape []int, data []T) (*Tensor, error) {
	n, err := ElemCount(shape)
	if err != nil {
		return nil, fmt.Errorf("new tensor: %w", err)
	}
	if len(data) != n {
		return nil, fmt.Errorf("new tensor: data has %d elements, want %d (the product of shape %s)", len(data), n, shapeText(shape))
	}
	raw := viewBytes(data)
	return &Tensor{dtype: dtypeFor[T](), shape: slices.Clone(shape), raw: raw[:len(raw):len(raw)]}, nil
}

// NewStringTensor wraps data without copying; data must not be modified
// afterwards. shape is copied.
func NewStringTensor(shape []int, data []string) (*Tensor, error) {
	n, err := ElemCount(shape)
	if err != nil {
		return nil, fmt.Errorf("new string tensor: %w", err)
	}
	if len(data) != n {
		return nil, fmt.Errorf("new string tensor: data has %d elements, want %d (the product of shape %s)", len(data), n, shapeText(shape))
	}
	return &Tensor{dtype: String, shape: slices.Clone(shape), strs: data[:n:n]}, nil
}

// NewTensorFromBytes builds a numeric or bool tensor over raw, which holds
// the elements in native byte order. raw is used in place (and must not be
// modified afterwards) unless it is misaligned for dt, as a sub-slice of a
// wire buffer often is; then it is copied, because typed views of
// misaligned memory are invalid in Go.
func NewTensorFromBytes(dt DType, shape []int, raw []byte) (*Tensor, error) {
	size := dt.Size()
	if size == 0 {
		if dt == String {
			return nil, errors.New("new tensor from bytes: dtype string has no fixed-size byte layout, use NewStringTensor")
		}
		return nil, fmt.Errorf("new tensor from bytes: dtype %s is not valid, want one of %s", dt, dtypeNames)
	}
	n, err := ElemCount(shape)
	if err != nil {
		return nil, fmt.Errorf("new tensor from bytes: %w", err)
	}
	if len(raw) != n*size {
		return nil, fmt.Errorf("new tensor from bytes: raw has %d bytes, want %d (%d elements of shape %s × %d bytes per %s)",
			len(raw), n*size, n, shapeText(shape), size, dt)
	}
	if dt == Bool {
		// Any byte but 0 or 1 is not a valid Go bool, and reading one through
		// a []bool view is undefined behaviour.
		for i, b := range raw {
			if b > 1 {
				return nil, fmt.Errorf("new tensor from bytes: byte %d is %d, want 0 or 1 for bool", i, b)
			}
		}
	}
	if n > 0 && uintptr(unsafe.Pointer(unsafe.SliceData(raw)))%uintptr(size) != 0 {
		aligned := allocElems(dt, n)
		copy(aligned, raw)
		raw = aligned
	}
	return &Tensor{dtype: dt, shape: slices.Clone(shape), raw: raw[:len(raw):len(raw)]}, nil
}

// Zeros returns a tensor of zero values (empty strings for String).
func Zeros(dt DType, shape []int) (*Tensor, error) {
	n, err := ElemCount(shape)
	if err != nil {
		return nil, fmt.Errorf("zeros: %w", err)
	}
	switch {
	case dt == String:
		return &Tensor{dtype: dt, shape: slices.Clone(shape), strs: make([]string, n)}, nil
	case dt.Size() > 0:
		return &Tensor{dtype: dt, shape: slices.Clone(shape), raw: allocElems(dt, n)}, nil
	}
	return nil, fmt.Errorf("zeros: dtype %s is not valid, want one of %s", dt, dtypeNames)
}

// DType returns the element type.
func (t *Tensor) DType() DType {
	if t == nil {
		return DTypeInvalid
	}
	return t.dtype
}

// Shape returns the dims. It is the tensor's own slice, not a copy, so the
// caller must not modify it.
func (t *Tensor) Shape() []int {
	if t == nil {
		return nil
	}
	return t.shape
}

// Len is the number of elements.
func (t *Tensor) Len() int {
	switch {
	case t == nil:
		return 0
	case t.dtype == String:
		return len(t.strs)
	case t.dtype.Size() == 0:
		return 0
	}
	return len(t.raw) / t.dtype.Size()
}

// Bytes returns the tensor's own bytes (nil for String); do not modify.
func (t *Tensor) Bytes() []byte {
	if t == nil {
		return nil
	}
	return t.raw
}

// Strings returns the tensor's own elements (nil unless String); do not
// modify.
func (t *Tensor) Strings() []string {
	if t == nil {
		return nil
	}
	return t.strs
}

// String is a short summary such as "float32[2 4]"; it never prints data,
// so it is safe to log whatever the tensor's size.
func (t *Tensor) String() string {
	if t == nil {
		return "<nil>"
	}
	b := make([]byte, 0, 32)
	b = append(b, t.dtype.String()...)
	b = appendShape(b, t.shape)
	return string(b)
}

// shapeText is shape as fmt prints it, e.g. "[2 4]". Error messages use
// it rather than handing shape to fmt, which would make every caller's
// shape escape to the heap: a decoder that keeps its shape in an array
// on its stack would then move there whole.
func shapeText(shape []int) string { return string(appendShape(nil, shape)) }

func appendShape(b []byte, shape []int) []byte {
	b = append(b, '[')
	for i, d := range shape {
		if i > 0 {
			b = append(b, ' ')
		}
		b = strconv.AppendInt(b, int64(d), 10)
	}
	return append(b, ']')
}

// TensorData returns the elements as []T without copying; do not modify.
func TensorData[T Numeric](t *Tensor) ([]T, error) {
	want := dtypeFor[T]()
	if t == nil {
		return nil, fmt.Errorf("tensor data: tensor is nil, want %s", want)
	}
	if t.dtype != want {
		return nil, fmt.Errorf("tensor data: asked for %s elements but the tensor is %s", want, t)
	}
	return viewAs[T](t.raw), nil
}

// Float32s returns the elements without copying, or nil if the tensor is
// not Float32. Do not modify the result.
func (t *Tensor) Float32s() []float32 {
	if t == nil || t.dtype != Float32 {
		return nil
	}
	return viewAs[float32](t.raw)
}

// Float64s returns the elements without copying, or nil if the tensor is
// not Float64. Do not modify the result.
func (t *Tensor) Float64s() []float64 {
	if t == nil || t.dtype != Float64 {
		return nil
	}
	return viewAs[float64](t.raw)
}

// Int32s returns the elements without copying, or nil if the tensor is not
// Int32. Do not modify the result.
func (t *Tensor) Int32s() []int32 {
	if t == nil || t.dtype != Int32 {
		return nil
	}
	return viewAs[int32](t.raw)
}

// Int64s returns the elements without copying, or nil if the tensor is not
// Int64. Do not modify the result.
func (t *Tensor) Int64s() []int64 {
	if t == nil || t.dtype != Int64 {
		return nil
	}
	return viewAs[int64](t.raw)
}

// Equal compares dtype, shape and data bit for bit, so identical NaNs are
// equal and 0.0 and -0.0 are not: it answers "same tensor", not "same
// numbers".
func (t *Tensor) Equal(o *Tensor) bool {
	if t == o {
		return true
	}
	if t == nil || o == nil {
		return false
	}
	return t.dtype == o.dtype && slices.Equal(t.shape, o.shape) &&
		bytes.Equal(t.raw, o.raw) && slices.Equal(t.strs, o.strs)
}

// checkBatchDim reports whether batchDim names a dim of t. what names t in
// the message, e.g. "tensor 0".
func checkBatchDim(op, what string, t *Tensor, batchDim int) error {
	if len(t.shape) == 0 {
		return fmt.Errorf("%s: %s is %s, a scalar with no batch dim; want rank >= 1", op, what, t)
	}
	if batchDim < 0 || batchDim >= len(t.shape) {
		return fmt.Errorf("%s: batch dim %d is out of range for %s %s, want 0..%d", op, batchDim, what, t, len(t.shape)-1)
	}
	return nil
}

// outerInner splits shape around dim d into the number of blocks before it
// (outer) and the number of elements per row of d (inner). Data along d is
// then outer blocks of shape[d]*inner contiguous elements.
func outerInner(shape []int, d int) (outer, inner int) {
	outer, inner = 1, 1
	for _, n := range shape[:d] {
		outer *= n
	}
	for _, n := range shape[d+1:] {
		inner *= n
	}
	return outer, inner
}

// sameDimsBut reports whether a and b are equal except at dim d.
func sameDimsBut(a, b []int, d int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if i != d && a[i] != b[i] {
			return false
		}
	}
	return true
}

// wildShape formats shape with "*" at dim d, for messages that say which
// dims must match.
func wildShape(shape []int, d int) string {
	b := []byte{'['}
	for i, n := range shape {
		if i > 0 {
			b = append(b, ' ')
		}
		if i == d {
			b = append(b, '*')
		} else {
			b = strconv.AppendInt(b, int64(n), 10)
		}
	}
	return string(append(b, ']'))
}

func rawField(t *Tensor) *[]byte    { return &t.raw }
func strsField(t *Tensor) *[]string { return &t.strs }

// gatherRows copies every input's block o, for each o in turn, into dst.
// With the batch dim outermost (outer == 1) that is one copy per input.
func gatherRows[E byte | string](dst []E, ts []*Tensor, field func(*Tensor) *[]E, d, outer, inner int) {
	pos := 0
	for o := range outer {
		for _, t := range ts {
			n := t.shape[d] * inner
			pos += copy(dst[pos:], (*field(t))[o*n:o*n+n])
		}
	}
}

// Concat joins ts along batchDim. All must share dtype and every dim but
// batchDim. A single input is returned as is (after the same checks, so a
// batch of one fails exactly like a batch of many); otherwise the result
// is a new tensor.
func Concat(batchDim int, ts []*Tensor) (*Tensor, error) {
	if len(ts) == 0 {
		return nil, errors.New("concat: no tensors given, want at least 1")
	}
	first := ts[0]
	if first == nil {
		return nil, errors.New("concat: tensor 0 is nil")
	}
	if err := checkBatchDim("concat", "tensor 0", first, batchDim); err != nil {
		return nil, err
	}
	if len(ts) == 1 {
		return first, nil
	}
	rows := 0
	for i, t := range ts {
		if t == nil {
			return nil, fmt.Errorf("concat: tensor %d is nil", i)
		}
		if t.dtype != first.dtype {
			return nil, fmt.Errorf("concat: tensor %d has dtype %s, want %s (the dtype of tensor 0)", i, t.dtype, first.dtype)
		}
		if !sameDimsBut(t.shape, first.shape, batchDim) {
			return nil, fmt.Errorf("concat: tensor %d has shape %v, want %s (all dims but batch dim %d must match)",
				i, t.shape, wildShape(first.shape, batchDim), batchDim)
		}
		rows += t.shape[batchDim]
	}
	shape := slices.Clone(first.shape)
	shape[batchDim] = rows
	outer, inner := outerInner(shape, batchDim)
	out := &Tensor{dtype: first.dtype, shape: shape}
	if first.dtype == String {
		out.strs = make([]string, outer*rows*inner)
		gatherRows(out.strs, ts, strsField, batchDim, outer, inner)
	} else {
		out.raw = allocElems(first.dtype, outer*rows*inner)
		gatherRows(out.raw, ts, rawField, batchDim, outer, inner*first.dtype.Size())
	}
	return out, nil
}

// checkSizes reports whether sizes are non-negative and sum to total, the
// size of dim d of t, or the length of a JSON array when t is nil. The
// context is formatted only on failure so the happy path allocates nothing.
func checkSizes(sizes []int, total int, t *Tensor, d int) error {
	if len(sizes) == 0 {
		return errors.New("split: no sizes given, want at least 1")
	}
	what := func() string {
		if t == nil {
			return "length of the JSON array"
		}
		return fmt.Sprintf("dim %d of %s", d, t)
	}
	sum := 0
	for i, s := range sizes {
		if s < 0 {
			return fmt.Errorf("split: sizes[%d] is %d, want >= 0", i, s)
		}
		// Stopping as soon as the sum passes total keeps it from overflowing.
		if s > total-sum {
			return fmt.Errorf("split: sizes[:%d] sum to more than %d, want a total of exactly %d (%s)", i+1, total, total, what())
		}
		sum += s
	}
	if sum != total {
		return fmt.Errorf("split: sizes sum to %d, want %d (%s)", sum, total, what())
	}
	return nil
}

// scatterRows points each of outs at its share of src. With the batch dim
// outermost (outer <= 1) the shares are contiguous, so they become views.
// Otherwise each share is interleaved through src, so they are gathered
// into buf, one allocation shared by all outputs.
func scatterRows[E byte | string](src, buf []E, outs []Tensor, field func(*Tensor) *[]E, sizes []int, outer, inner int) {
	if outer <= 1 {
		pos := 0
		for j, sz := range sizes {
			n := outer * sz * inner
			*field(&outs[j]) = src[pos : pos+n : pos+n]
			pos += n
		}
		return
	}
	off := 0
	for j, sz := range sizes {
		n := outer * sz * inner
		*field(&outs[j]) = buf[off : off+n : off+n]
		off += n
	}
	pos := 0
	for o := range outer {
		for j, sz := range sizes {
			n := sz * inner
			pos += copy((*field(&outs[j]))[o*n:o*n+n], src[pos:pos+n])
		}
	}
}

// split is Split without the []*Tensor, so SplitValue can point at the
// tensors directly and save an allocation.
func (t *Tensor) split(batchDim int, sizes []int) ([]Tensor, error) {
	if t == nil {
		return nil, errors.New("split: tensor is nil")
	}
	if err := checkBatchDim("split", "tensor", t, batchDim); err != nil {
		return nil, err
	}
	if err := checkSizes(sizes, t.shape[batchDim], t, batchDim); err != nil {
		return nil, err
	}
	rank := len(t.shape)
	outs := make([]Tensor, len(sizes))
	// One backing array for every output shape: fewer allocations, and the
	// capacity limit keeps each shape from growing into its neighbour.
	shapes := make([]int, len(sizes)*rank)
	for j, sz := range sizes {
		s := shapes[j*rank : (j+1)*rank : (j+1)*rank]
		copy(s, t.shape)
		s[batchDim] = sz
		// Field stores, not a struct literal: outs is freshly zeroed, and
		// storing nil pointers would only cost write barriers.
		outs[j].dtype, outs[j].shape = t.dtype, s
	}
	outer, inner := outerInner(t.shape, batchDim)
	if t.dtype == String {
		var buf []string
		if outer > 1 {
			buf = make([]string, len(t.strs))
		}
		scatterRows(t.strs, buf, outs, strsField, sizes, outer, inner)
	} else {
		var buf []byte
		if outer > 1 {
			buf = allocElems(t.dtype, t.Len())
		}
		scatterRows(t.raw, buf, outs, rawField, sizes, outer, inner*t.dtype.Size())
	}
	return outs, nil
}

// Split cuts t along batchDim into len(sizes) tensors of those sizes, which
// must sum to the size of batchDim. When batchDim is outermost (0, or every
// dim before it is 1) the results are views of t; otherwise the rows are
// interleaved in memory and are copied.
func (t *Tensor) Split(batchDim int, sizes []int) ([]*Tensor, error) {
	outs, err := t.split(batchDim, sizes)
	if err != nil {
		return nil, err
	}
	ptrs := make([]*Tensor, len(outs))
	for i := range outs {
		ptrs[i] = &outs[i]
	}
	return ptrs, nil
}

// sliceRows returns rows [start,end) of every block of src, as a view when
// there is at most one block and copied into buf otherwise.
func sliceRows[E byte | string](src, buf []E, outer, rows, start, end, inner int) []E {
	if outer == 0 {
		return src[:0:0]
	}
	if outer == 1 {
		return src[start*inner : end*inner : end*inner]
	}
	n := (end - start) * inner
	for o := range outer {
		base := o * rows * inner
		copy(buf[o*n:o*n+n], src[base+start*inner:base+end*inner])
	}
	return buf
}

// Slice returns rows [start,end) along batchDim: a view when batchDim is
// outermost (as for Split), a copy otherwise.
func (t *Tensor) Slice(batchDim, start, end int) (*Tensor, error) {
	if t == nil {
		return nil, errors.New("slice: tensor is nil")
	}
	if err := checkBatchDim("slice", "tensor", t, batchDim); err != nil {
		return nil, err
	}
	rows := t.shape[batchDim]
	if start < 0 || start > end || end > rows {
		return nil, fmt.Errorf("slice: range [%d,%d) is out of bounds for dim %d of %s, want 0 <= start <= end <= %d",
			start, end, batchDim, t, rows)
	}
	shape := slices.Clone(t.shape)
	shape[batchDim] = end - start
	outer, inner := outerInner(t.shape, batchDim)
	out := &Tensor{dtype: t.dtype, shape: shape}
	if t.dtype == String {
		var buf []string
		if outer > 1 {
			buf = make([]string, outer*(end-start)*inner)
		}
		out.strs = sliceRows(t.strs, buf, outer, rows, start, end, inner)
	} else {
		var buf []byte
		if outer > 1 {
			buf = allocElems(t.dtype, outer*(end-start)*inner)
		}
		size := t.dtype.Size()
		out.raw = sliceRows(t.raw, buf, outer, rows, start, end, inner*size)
	}
	return out, nil
}

// Kind is what sort of data a Value carries.
type Kind uint8

const (
	KindInvalid Kind = iota
	KindTensor
	KindText
	KindJSON
)

// String returns "tensor", "text", "json", or "invalid".
func (k Kind) String() string {
	switch k {
	case KindTensor:
		return "tensor"
	case KindText:
		return "text"
	case KindJSON:
		return "json"
	}
	return "invalid"
}

// ParseKind accepts "tensor" (or "ndarray", the numpy name users reach
// for), "text" and "json", ignoring case.
func ParseKind(s string) (Kind, error) {
	switch {
	case strings.EqualFold(s, "tensor"), strings.EqualFold(s, "ndarray"):
		return KindTensor, nil
	case strings.EqualFold(s, "text"):
		return KindText, nil
	case strings.EqualFold(s, "json"):
		return KindJSON, nil
	}
	return KindInvalid, fmt.Errorf("unknown kind %q, want tensor (or ndarray), text or json", s)
}

// Value is what flows through a runner method: a tensor, a text, or a
// decoded JSON value. It is small and passed by value; the zero Value has
// KindInvalid.
type Value struct {
	kind   Kind
	tensor *Tensor
	text   string
	json   any
}

// TensorValue wraps t. A nil t still makes a KindTensor value, so the
// mistake surfaces as an error where the value is used rather than as a
// silent kind change.
func TensorValue(t *Tensor) Value { return Value{kind: KindTensor, tensor: t} }

// TextValue wraps s.
func TextValue(s string) Value { return Value{kind: KindText, text: s} }

// JSONValue wraps a decoded JSON value (map[string]any, []any, string,
// float64, bool, nil) or any Go value encoding/json can marshal. Only a
// []any is batchable.
func JSONValue(v any) Value { return Value{kind: KindJSON, json: v} }

// Kind returns what v carries.
func (v Value) Kind() Kind { return v.kind }

// Tensor returns the tensor, or nil unless v is KindTensor.
func (v Value) Tensor() *Tensor { return v.tensor }

// Text returns the text, or "" unless v is KindText.
func (v Value) Text() string { return v.text }

// JSON returns the JSON value, or nil unless v is KindJSON.
func (v Value) JSON() any { return v.json }

// maxSummaryRunes bounds how much of a text a summary shows; logs and UI
// want a hint of the content, not a payload.
const maxSummaryRunes = 40

func quoteTrunc(s string) string {
	n := 0
	for i := range s {
		if n == maxSummaryRunes {
			return strconv.Quote(s[:i] + "…")
		}
		n++
	}
	return strconv.Quote(s)
}

// jsonSummary describes a JSON value by its shape rather than its content.
func jsonSummary(x any) string {
	switch x := x.(type) {
	case nil:
		return "null"
	case []any:
		if len(x) == 1 {
			return "[1 item]"
		}
		return "[" + strconv.Itoa(len(x)) + " items]"
	case map[string]any:
		if len(x) == 1 {
			return "{1 key}"
		}
		return "{" + strconv.Itoa(len(x)) + " keys}"
	case string:
		return quoteTrunc(x)
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	case bool:
		return strconv.FormatBool(x)
	}
	return fmt.Sprintf("(%T)", x)
}

// String is a short summary for logs and UI, e.g. `tensor float32[2 4]`,
// `text "hello"`, `json [3 items]`; it never prints bulk data.
func (v Value) String() string {
	switch v.kind {
	case KindTensor:
		return "tensor " + v.tensor.String()
	case KindText:
		return "text " + quoteTrunc(v.text)
	case KindJSON:
		return "json " + jsonSummary(v.json)
	}
	return "invalid value"
}

// describe names what v is for error messages, precisely enough to see why
// it was rejected (a JSON object is not a JSON array).
func (v Value) describe() string {
	switch v.kind {
	case KindTensor:
		if v.tensor == nil {
			return "nil tensor"
		}
		return "tensor " + v.tensor.String()
	case KindText:
		return "text"
	case KindJSON:
		switch x := v.json.(type) {
		case nil:
			return "json null"
		case []any:
			return "json array"
		case map[string]any:
			return "json object"
		case string:
			return "json string"
		case float64, float32, int, int32, int64, uint8:
			return "json number"
		case bool:
			return "json bool"
		default:
			return fmt.Sprintf("json %T", x)
		}
	}
	return "invalid value"
}

const notBatchable = "a batchable method needs a tensor or a JSON array"

// Rows is the number of rows along batchDim: shape[batchDim] for a tensor,
// the length for a JSON array (batchDim must then be 0, since a JSON array
// has one dim).
func (v Value) Rows(batchDim int) (int, error) {
	switch v.kind {
	case KindTensor:
		if v.tensor == nil {
			return 0, errors.New("rows: tensor is nil")
		}
		if err := checkBatchDim("rows", "tensor", v.tensor, batchDim); err != nil {
			return 0, err
		}
		return v.tensor.shape[batchDim], nil
	case KindJSON:
		if arr, ok := v.json.([]any); ok {
			if batchDim != 0 {
				return 0, fmt.Errorf("rows: batch dim %d is out of range for a JSON array, want 0", batchDim)
			}
			return len(arr), nil
		}
	}
	return 0, fmt.Errorf("rows: got %s, %s", v.describe(), notBatchable)
}

// ConcatValues joins vs into one batch: tensors via Concat, JSON arrays
// appended into a new array (batchDim must be 0). All values must be the
// same kind; a single value is returned as is after the same checks.
func ConcatValues(batchDim int, vs []Value) (Value, error) {
	if len(vs) == 0 {
		return Value{}, errors.New("concat: no values given, want at least 1")
	}
	switch vs[0].kind {
	case KindTensor:
		ts := make([]*Tensor, len(vs))
		for i, v := range vs {
			if v.kind != KindTensor {
				return Value{}, fmt.Errorf("concat: value %d is %s, want a tensor like value 0", i, v.describe())
			}
			ts[i] = v.tensor
		}
		t, err := Concat(batchDim, ts)
		if err != nil {
			return Value{}, err
		}
		return TensorValue(t), nil
	case KindJSON:
		if _, ok := vs[0].json.([]any); !ok {
			break
		}
		if batchDim != 0 {
			return Value{}, fmt.Errorf("concat: batch dim %d is out of range for JSON arrays, want 0", batchDim)
		}
		total := 0
		for i, v := range vs {
			arr, ok := v.json.([]any)
			if v.kind != KindJSON || !ok {
				return Value{}, fmt.Errorf("concat: value %d is %s, want a json array like value 0", i, v.describe())
			}
			total += len(arr)
		}
		if len(vs) == 1 {
			return vs[0], nil
		}
		out := make([]any, 0, total)
		for _, v := range vs {
			out = append(out, v.json.([]any)...)
		}
		return JSONValue(out), nil
	}
	return Value{}, fmt.Errorf("concat: value 0 is %s, %s", vs[0].describe(), notBatchable)
}

// SplitValue is the inverse of ConcatValues: it cuts v into len(sizes)
// values of those sizes along batchDim. JSON parts are views of v's array.
func SplitValue(v Value, batchDim int, sizes []int) ([]Value, error) {
	switch v.kind {
	case KindTensor:
		outs, err := v.tensor.split(batchDim, sizes)
		if err != nil {
			return nil, err
		}
		vals := make([]Value, len(outs))
		for i := range outs {
			vals[i] = TensorValue(&outs[i])
		}
		return vals, nil
	case KindJSON:
		arr, ok := v.json.([]any)
		if !ok {
			break
		}
		if batchDim != 0 {
			return nil, fmt.Errorf("split: batch dim %d is out of range for a JSON array, want 0", batchDim)
		}
		if err := checkSizes(sizes, len(arr), nil, 0); err != nil {
			return nil, err
		}
		vals := make([]Value, len(sizes))
		pos := 0
		for i, n := range sizes {
			vals[i] = JSONValue(arr[pos : pos+n : pos+n])
			pos += n
		}
		return vals, nil
	}
	return nil, fmt.Errorf("split: got %s, %s", v.describe(), notBatchable)
}

// SliceValue returns rows [start,end) of v along batchDim; see Tensor.Slice.
// A JSON part is a view of v's array.
func SliceValue(v Value, batchDim, start, end int) (Value, error) {
	switch v.kind {
	case KindTensor:
		t, err := v.tensor.Slice(batchDim, start, end)
		if err != nil {
			return Value{}, err
		}
		return TensorValue(t), nil
	case KindJSON:
		arr, ok := v.json.([]any)
		if !ok {
			break
		}
		if batchDim != 0 {
			return Value{}, fmt.Errorf("slice: batch dim %d is out of range for a JSON array, want 0", batchDim)
		}
		if start < 0 || start > end || end > len(arr) {
			return Value{}, fmt.Errorf("slice: range [%d,%d) is out of bounds for a JSON array of length %d, want 0 <= start <= end <= %d",
				start, end, len(arr), len(arr))
		}
		return JSONValue(arr[start:end:end]), nil
	}
	return Value{}, fmt.Errorf("slice: got %s, %s", v.describe(), notBatchable)
}

// IOSpec describes one input or output of a method signature. The zero
// IOSpec (KindInvalid) accepts any value, for signatures that leave a slot
// unspecified.
type IOSpec struct {
	// Name is how callers and runnables refer to the slot. The engine names
	// the sole input of a method "input" and its sole output "output" when
	// the runnable leaves them unnamed; several must each be named.
	Name  string
	Kind  Kind
	DType DType // tensors only; DTypeInvalid = any dtype
	Shape []int // tensors only; nil = any shape; -1 = any size in that dim
	// Unbatched, for a batchable method, says the value is not cut into
	// callers' rows: an input is passed to the runnable once per batch (and
	// only requests with identical values share a batch), an output goes
	// whole to every caller of the batch. The zero value, batched along the
	// method's batch dim, is the common case.
	Unbatched bool
	// Optional inputs may be absent from a request (the zero Value); the
	// runnable then gets the zero Value in that slot. Outputs are never
	// optional.
	Optional bool
}

// IOSpecs is a method's ordered list of inputs or of outputs.
type IOSpecs []IOSpec

// Index is the position of the slot called name, or -1.
func (l IOSpecs) Index(name string) int {
	for i := range l {
		if l[i].Name == name {
			return i
		}
	}
	return -1
}

// Names lists the slots' names, e.g. "input_ids, attention_mask", for
// messages.
func (l IOSpecs) Names() string {
	b := make([]byte, 0, 16*len(l))
	for i := range l {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = append(b, l[i].Name...)
	}
	return string(b)
}

// String is the list as a signature reads: a lone slot as its spec alone
// ("tensor float32[-1 4]"), several as "name spec" joined by commas
// ("ids tensor int64[-1 -1], mask tensor float32[-1 -1]"), each with
// "(unbatched)" or "(optional)" where it is; "none" for an empty list.
func (l IOSpecs) String() string {
	if len(l) == 0 {
		return "none"
	}
	b := make([]byte, 0, 32*len(l))
	for i := range l {
		if i > 0 {
			b = append(b, ", "...)
		}
		if len(l) > 1 {
			b = append(b, l[i].Name...)
			b = append(b, ' ')
		}
		b = append(b, l[i].String()...)
		if l[i].Unbatched {
			b = append(b, " (unbatched)"...)
		}
		if l[i].Optional {
			b = append(b, " (optional)"...)
		}
	}
	return string(b)
}

// String is the spec as users write it, e.g. "tensor float32[-1 4]",
// "tensor any[2]" (any dtype), "tensor" (anything), "text", "json".
func (s IOSpec) String() string {
	switch s.Kind {
	case KindInvalid:
		return "any"
	case KindTensor:
	default:
		return s.Kind.String()
	}
	if s.DType == DTypeInvalid && s.Shape == nil {
		return "tensor"
	}
	b := append(make([]byte, 0, 32), "tensor "...)
	if s.DType == DTypeInvalid {
		b = append(b, "any"...)
	} else {
		b = append(b, s.DType.String()...)
	}
	if s.Shape != nil {
		b = appendShape(b, s.Shape)
	}
	return string(b)
}

// Check reports whether v fits s, with an error that says what to fix.
func (s IOSpec) Check(v Value) error {
	if s.Kind == KindInvalid {
		return nil
	}
	if v.kind != s.Kind || (v.kind == KindTensor && v.tensor == nil) {
		return fmt.Errorf("got %s, want %s", v.describe(), s)
	}
	if s.Kind != KindTensor {
		return nil
	}
	t := v.tensor
	if s.DType != DTypeInvalid && t.dtype != s.DType {
		return fmt.Errorf("dtype %s, want %s", t.dtype, s.DType)
	}
	if s.Shape == nil {
		return nil
	}
	if len(t.shape) != len(s.Shape) {
		return fmt.Errorf("shape %v has %d dims, want %d (%v)", t.shape, len(t.shape), len(s.Shape), s.Shape)
	}
	for i, want := range s.Shape {
		if want >= 0 && t.shape[i] != want {
			return fmt.Errorf("shape %v: dim %d is %d, want %d", t.shape, i, t.shape[i], want)
		}
	}
	return nil
}
