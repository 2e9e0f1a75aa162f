package codec

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"unicode/utf8"
	"unsafe"

	"github.com/benchtop/benchtop/engine/tensor"
)

// This file is the JSON codec for tensors: numpy's nested-list form
// (tolist()) and KServe v2's flat "data" lists. Request bodies pass through
// it on every call, so it is a hand-rolled single-pass parser: no
// reflection, no encoding/json, one allocation per tensor for the
// elements (plus one for string contents), and never more memory than a
// constant times the size of the input.

// maxNDArrayDims is the deepest nesting DecodeNDArray and DecodeTensorData
// accept; deeper input is rejected before it can cost stack or memory.
const maxNDArrayDims = 32

// ndKind is the JSON kind of an element, for dtype inference.
type ndKind uint8

const (
	ndNoKind ndKind = iota
	ndNumber
	ndBool
	ndString
)

func (k ndKind) String() string {
	switch k {
	case ndNumber:
		return "a number"
	case ndBool:
		return "a bool"
	case ndString:
		return "a string"
	}
	return "nothing"
}

// ndNum is a scanned JSON number literal: text data[start:end], value
// ±mant×10^exp unless big (more significant digits than a uint64 holds).
type ndNum struct {
	start, end int
	neg        bool
	big        bool
	integral   bool // no '.', 'e' or 'E' in the literal
	mant       uint64
	exp        int
}

// ndDecoder parses one JSON value into typed element storage while
// tracking the shape. It is iterative: depth is bounded by
// maxNDArrayDims and the index path lives in fixed arrays.
type ndDecoder struct {
	data []byte
	pos  int
	op   string // error prefix: "ndarray" or "data"

	dt    tensor.DType // storage dtype; DTypeInvalid until the first element when inferring
	infer bool
	// Inference state: the first element's kind and index path (for
	// mixed-kind messages), whether a non-integral number was seen, and
	// the first integer too big for int64, which is an error unless a
	// non-integral number turns the tensor into float64.
	kind      ndKind
	firstPath []int
	sawFrac   bool
	overflow  error
	capHint   int

	// Element storage; only the slice for dt is used. Strings are decoded
	// into one buffer, ends[i] marking where element i ends.
	f32  []float32
	f64  []float64
	i32  []int32
	i64  []int64
	u8   []uint8
	b    []bool
	sbuf []byte
	ends []int

	rank  int // -1 until the first element or empty list fixes it
	depth int // open lists
	shape [maxNDArrayDims]int
	idx   [maxNDArrayDims]int // index of the element being parsed at each open depth
}

// newNDDecoder returns the decoder by value so that it can live on the
// caller's stack.
func newNDDecoder(op string, data []byte, dt tensor.DType, maxElems int) ndDecoder {
	d := ndDecoder{data: data, op: op, dt: dt, infer: dt == tensor.DTypeInvalid, rank: -1}
	for i := range d.shape {
		d.shape[i] = -1
	}
	// Every element but the last is followed by a comma, so this bounds the
	// element count (commas inside strings only make it larger) while
	// costing one vectorised pass. It lets storage be allocated once.
	d.capHint = bytes.Count(data, []byte{','}) + 1
	if maxElems >= 0 && maxElems < d.capHint {
		d.capHint = maxElems
	}
	return d
}

// DecodeNDArray parses a JSON nested list (numpy's tolist() form, e.g.
// [[1,2],[3,4]]; a bare scalar is a rank-0 tensor) into a tensor that fits
// spec.
//
// The shape is inferred from the nesting and must be rectangular. The dtype
// is spec.DType; when that is DTypeInvalid it is inferred like numpy: all
// bools give Bool, all strings String, all integral literals (no '.', 'e'
// or 'E') Int64, other numbers Float64 (an integer -0 still reads as 0),
// and mixing kinds is an error.
// Empty lists are allowed ([] has shape [0], [[],[]] shape [2 0]) and take
// spec.DType, or Float64.
//
// Conversions are checked: integer dtypes take only integral literals
// within range, float32 only values within its finite range, bool only
// true and false, string only JSON strings (escapes decoded, invalid UTF-8
// and lone surrogates replaced by U+FFFD as encoding/json does). The
// result is then checked with spec.Check. Every error names the element's
// index path or the byte offset (from 0) of a syntax error.
//
// The result owns its memory: nothing aliases data, which may be reused.
// Memory is O(len(data)) whatever the input claims.
func DecodeNDArray(data []byte, spec tensor.IOSpec) (*tensor.Tensor, error) {
	if spec.Kind != tensor.KindTensor && spec.Kind != tensor.KindInvalid {
		return nil, fmt.Errorf("ndarray: got a tensor, want %s", spec)
	}
	if spec.DType != tensor.DTypeInvalid {
		if err := spec.DType.Validate(); err != nil {
			return nil, fmt.Errorf("ndarray: spec %w", err)
		}
	}
	d := newNDDecoder("ndarray", data, spec.DType, -1)
	if err := d.run(); err != nil {
		return nil, err
	}
	t, err := d.tensor(d.shape[:d.rank])
	if err != nil {
		return nil, err
	}
	if err := spec.Check(tensor.TensorValue(t)); err != nil {
		return nil, fmt.Errorf("ndarray: %w", err)
	}
	return t, nil
}

// DecodeTensorData builds a tensor of dtype dt and the given shape from a
// JSON list that is either flat ([1,2,3,4]) or nested in any rectangular
// way, with product(shape) elements in row-major order: the KServe v2
// "data" field. A bare scalar is accepted where product(shape) is 1.
// Element conversions and messages are those of DecodeNDArray.
func DecodeTensorData(data []byte, dt tensor.DType, shape []int) (*tensor.Tensor, error) {
	if err := dt.Validate(); err != nil {
		return nil, fmt.Errorf("data: %w", err)
	}
	n, err := tensor.ElemCount(shape)
	if err != nil {
		return nil, fmt.Errorf("data: %w", err)
	}
	d := newNDDecoder("data", data, dt, n)
	if err := d.run(); err != nil {
		return nil, err
	}
	if got := d.count(); got != n {
		return nil, fmt.Errorf("data: has %d elements, want %d (the product of shape %v)", got, n, shape)
	}
	return d.tensor(shape)
}

// count is the number of elements decoded so far.
func (d *ndDecoder) count() int {
	switch d.dt {
	case tensor.Float32:
		return len(d.f32)
	case tensor.Float64:
		return len(d.f64)
	case tensor.Int32:
		return len(d.i32)
	case tensor.Int64:
		return len(d.i64)
	case tensor.Uint8:
		return len(d.u8)
	case tensor.Bool:
		return len(d.b)
	case tensor.String:
		return len(d.ends)
	}
	return 0
}

// tensor wraps the decoded elements without copying them; the
// constructors copy shape.
func (d *ndDecoder) tensor(shape []int) (*tensor.Tensor, error) {
	if d.dt == tensor.DTypeInvalid {
		d.dt = tensor.Float64 // only empty lists were seen while inferring
	}
	var t *tensor.Tensor
	var err error
	switch d.dt {
	case tensor.Float32:
		t, err = tensor.NewTensor(shape, d.f32)
	case tensor.Float64:
		t, err = tensor.NewTensor(shape, d.f64)
	case tensor.Int32:
		t, err = tensor.NewTensor(shape, d.i32)
	case tensor.Int64:
		t, err = tensor.NewTensor(shape, d.i64)
	case tensor.Uint8:
		t, err = tensor.NewTensor(shape, d.u8)
	case tensor.Bool:
		t, err = tensor.NewTensor(shape, d.b)
	case tensor.String:
		// One string over the whole buffer, which nothing writes again,
		// so the elements share a single allocation.
		all := unsafe.String(unsafe.SliceData(d.sbuf), len(d.sbuf))
		strs := make([]string, len(d.ends))
		start := 0
		for i, end := range d.ends {
			strs[i] = all[start:end]
			start = end
		}
		t, err = tensor.NewStringTensor(shape, strs)
	}
	if err != nil {
		// The decoder counted the elements against the shape itself, so
		// this is a bug here, not a bad body.
		return nil, fmt.Errorf("%s: %w", d.op, err)
	}
	return t, nil
}

// alloc makes the storage for dt once its dtype is known.
func (d *ndDecoder) alloc() {
	n := d.capHint
	switch d.dt {
	case tensor.Float32:
		d.f32 = make([]float32, 0, n)
	case tensor.Float64:
		d.f64 = make([]float64, 0, n)
	case tensor.Int32:
		d.i32 = make([]int32, 0, n)
	case tensor.Int64:
		d.i64 = make([]int64, 0, n)
	case tensor.Uint8:
		d.u8 = make([]uint8, 0, n)
	case tensor.Bool:
		d.b = make([]bool, 0, n)
	case tensor.String:
		d.ends = make([]int, 0, n)
		d.sbuf = make([]byte, 0, len(d.data))
	}
}

func isJSONSpace(c byte) bool { return c == ' ' || c == '\n' || c == '\r' || c == '\t' }

func (d *ndDecoder) skipSpace() {
	for d.pos < len(d.data) && isJSONSpace(d.data[d.pos]) {
		d.pos++
	}
}

// run parses the whole input.
func (d *ndDecoder) run() error {
	data := d.data
	d.skipSpace()
	afterValue := false
	for {
		if !afterValue {
			if d.pos >= len(data) {
				return d.syntaxErr(d.pos, "a value")
			}
			if data[d.pos] == '[' {
				empty, err := d.openList()
				if err != nil {
					return err
				}
				afterValue = empty
				continue
			}
			if d.rank < 0 {
				d.rank = d.depth
			} else if d.depth != d.rank {
				return d.nestErr(d.describeAt(d.pos))
			}
			if err := d.element(); err != nil {
				return err
			}
			afterValue = true
			continue
		}
		if d.depth == 0 {
			d.skipSpace()
			if d.pos != len(data) {
				return d.syntaxErr(d.pos, "end of input after the value")
			}
			if d.overflow != nil && !d.sawFrac {
				return d.overflow
			}
			return nil
		}
		d.idx[d.depth-1]++
		d.skipSpace()
		if d.pos >= len(data) {
			return d.syntaxErr(d.pos, "',' or ']'")
		}
		switch data[d.pos] {
		case ',':
			d.pos++
			d.skipSpace()
			afterValue = false
		case ']':
			d.pos++
			if err := d.closeList(); err != nil {
				return err
			}
		default:
			return d.syntaxErr(d.pos, "',' or ']'")
		}
	}
}

// openList enters the list whose '[' is at d.pos. An empty list is closed
// at once, so that run goes straight on to what follows it; empty reports
// that. It is its own function because lists are rare next to elements:
// run's per-element loop stays small.
func (d *ndDecoder) openList() (empty bool, err error) {
	if d.rank >= 0 && d.depth >= d.rank {
		return false, d.nestErr("a list")
	}
	if d.depth == maxNDArrayDims {
		return false, fmt.Errorf("%s: list at byte %d nests deeper than %d dims, the most allowed", d.op, d.pos, maxNDArrayDims)
	}
	d.idx[d.depth] = 0
	d.depth++
	d.pos++
	d.skipSpace()
	if d.pos < len(d.data) && d.data[d.pos] == ']' {
		d.pos++
		return true, d.closeList()
	}
	return false, nil
}

// closeList ends the innermost open list, whose length is the count of its
// elements, and checks that length against the other lists at its depth.
func (d *ndDecoder) closeList() error {
	k := d.depth - 1
	n := d.idx[k]
	if d.rank < 0 {
		d.rank = d.depth // an empty list before any element fixes the rank
	}
	switch {
	case d.shape[k] < 0:
		d.shape[k] = n
	case d.shape[k] != n:
		return fmt.Errorf("%s: row %v has %d elements, want %d (every row must have the same length)",
			d.op, d.path(k), n, d.shape[k])
	}
	d.depth--
	return nil
}

// element parses the scalar at d.pos into storage.
func (d *ndDecoder) element() error {
	switch c := d.data[d.pos]; {
	case c == '-' || c >= '0' && c <= '9':
		return d.number()
	case c == '"':
		return d.str()
	case c == 't' || c == 'f':
		return d.boolean(c == 't')
	case c == 'n':
		start := d.pos
		if err := d.literal("null"); err != nil {
			return err
		}
		if d.infer || d.dt == tensor.Float32 || d.dt == tensor.Float64 {
			return fmt.Errorf("%s: %s is null, want %s (JSON has no NaN or Infinity)", d.op, d.where(), d.want())
		}
		return d.kindErr(start)
	case c == '{':
		if d.depth == 0 {
			return fmt.Errorf("%s: the value is a JSON object, want a nested list such as [[1,2],[3,4]] (or a bare scalar)", d.op)
		}
		return fmt.Errorf("%s: %s is an object, want %s", d.op, d.where(), d.want())
	}
	return d.syntaxErr(d.pos, "a value")
}

// where names the element being parsed: "element [1 0]", or "the value"
// for a bare scalar.
func (d *ndDecoder) where() string {
	if d.depth == 0 {
		return "the value"
	}
	return "element " + d.path(d.depth)
}

// path formats the index path of the first k open lists, e.g. "[1 0]".
// It copies, so error paths do not make the decoder escape to the heap.
func (d *ndDecoder) path(k int) string { return string(appendInts(nil, d.idx[:k])) }

// appendInts appends xs as fmt prints an []int, e.g. "[1 0]".
func appendInts(b []byte, xs []int) []byte {
	b = append(b, '[')
	for i, x := range xs {
		if i > 0 {
			b = append(b, ' ')
		}
		b = strconv.AppendInt(b, int64(x), 10)
	}
	return append(b, ']')
}

// at is where as a suffix for messages that lead with the literal.
func (d *ndDecoder) at() string {
	if d.depth == 0 {
		return ""
	}
	return " at " + d.path(d.depth)
}

// want says what element kind the dtype takes, or while inferring what
// the first element was.
func (d *ndDecoder) want() string {
	if d.infer {
		if d.kind != ndNoKind {
			return d.kind.String()
		}
		return "a number, a bool or a string"
	}
	switch d.dt {
	case tensor.Float32, tensor.Float64:
		return "a number (" + d.dt.String() + ")"
	case tensor.Int32, tensor.Int64, tensor.Uint8:
		return "an integer (" + d.dt.String() + ")"
	case tensor.Bool:
		return "true or false (bool)"
	case tensor.String:
		return "a JSON string (string)"
	}
	return "a number, a bool or a string"
}

// describeAt names the JSON kind of the value starting at pos.
func (d *ndDecoder) describeAt(pos int) string {
	switch c := d.data[pos]; {
	case c == '-' || c >= '0' && c <= '9':
		return "a number"
	case c == '"':
		return "a string"
	case c == 't' || c == 'f':
		return "a bool"
	case c == 'n':
		return "null"
	case c == '{':
		return "an object"
	case c == '[':
		return "a list"
	}
	return "invalid JSON"
}

// nestErr reports an element at the wrong depth: rows must nest equally.
func (d *ndDecoder) nestErr(got string) error {
	want := "a list"
	if d.depth >= d.rank {
		want = d.want()
	}
	return fmt.Errorf("%s: %s is %s, want %s (rows must nest to the same depth, here %d dims)",
		d.op, d.where(), got, want, d.rank)
}

// snippet quotes up to 40 bytes of the literal at data[start:d.pos] for
// a message, cut at a rune boundary and made valid UTF-8.
func (d *ndDecoder) snippet(start int) string {
	s := d.data[start:d.pos]
	const max = 40
	tail := ""
	if len(s) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s, tail = s[:cut], "…"
	}
	return string(bytes.ToValidUTF8(s, []byte("\uFFFD"))) + tail
}

// kindErr reports the literal at data[start:d.pos] as the wrong kind for
// the dtype.
func (d *ndDecoder) kindErr(start int) error {
	return fmt.Errorf("%s: %s is %s, want %s", d.op, d.where(), d.snippet(start), d.want())
}

// inferKind records the first element's kind and storage dtype, or
// rejects an element of another kind. It is only the test that every
// element after the first passes, so that it inlines into the per-element
// paths; newKind does the rest.
func (d *ndDecoder) inferKind(k ndKind, start int) error {
	if d.kind == k {
		return nil
	}
	return d.newKind(k, start)
}

// newKind is inferKind for an element whose kind differs from the first
// element's, or that is the first.
func (d *ndDecoder) newKind(k ndKind, start int) error {
	if d.kind != ndNoKind {
		return fmt.Errorf("%s: %s is %s, want %s like element %v (elements must be all numbers, all bools or all strings)",
			d.op, d.where(), d.snippet(start), d.kind, d.firstPath)
	}
	d.kind = k
	d.firstPath = slices.Clone(d.idx[:d.depth])
	switch k {
	case ndNumber:
		d.dt = tensor.Int64
	case ndBool:
		d.dt = tensor.Bool
	case ndString:
		d.dt = tensor.String
	}
	d.alloc()
	return nil
}

func (d *ndDecoder) syntaxErr(pos int, want string) error {
	what := "end of input"
	if pos < len(d.data) {
		r, size := utf8.DecodeRune(d.data[pos:])
		if r == utf8.RuneError && size <= 1 {
			what = fmt.Sprintf("byte 0x%02x", d.data[pos])
		} else {
			what = strconv.QuoteRune(r)
		}
	}
	msg := fmt.Sprintf("%s: invalid JSON at byte %d: unexpected %s", d.op, pos, what)
	if want != "" {
		msg += ", want " + want
	}
	return errors.New(msg)
}

// literal consumes the keyword lit (true, false or null).
func (d *ndDecoder) literal(lit string) error {
	for i := 0; i < len(lit); i++ {
		if d.pos+i >= len(d.data) || d.data[d.pos+i] != lit[i] {
			return d.syntaxErr(d.pos+i, strconv.Quote(lit))
		}
	}
	d.pos += len(lit)
	return nil
}

func (d *ndDecoder) boolean(v bool) error {
	start := d.pos
	lit := "false"
	if v {
		lit = "true"
	}
	if err := d.literal(lit); err != nil {
		return err
	}
	if d.infer {
		if err := d.inferKind(ndBool, start); err != nil {
			return err
		}
	}
	if d.dt != tensor.Bool {
		return d.kindErr(start)
	}
	if d.b == nil {
		d.alloc()
	}
	d.b = append(d.b, v)
	return nil
}

func (d *ndDecoder) str() error {
	start := d.pos
	if d.infer && d.kind == ndNoKind {
		_ = d.inferKind(ndString, start) // the first element cannot clash
	}
	if d.dt != tensor.String {
		if err := d.scanString(false); err != nil {
			return err
		}
		if d.infer {
			return d.inferKind(ndString, start)
		}
		return d.kindErr(start)
	}
	if d.ends == nil {
		d.alloc()
	}
	if err := d.scanString(true); err != nil {
		return err
	}
	d.ends = append(d.ends, len(d.sbuf))
	return nil
}

// scanString consumes the JSON string at d.pos, appending its decoded text
// to d.sbuf if store is set. Invalid UTF-8 and lone surrogates become
// U+FFFD, as encoding/json decodes them.
func (d *ndDecoder) scanString(store bool) error {
	data := d.data
	i := d.pos + 1
	for {
		run := i
		for i < len(data) {
			c := data[i]
			if c == '"' || c == '\\' || c < 0x20 || c >= utf8.RuneSelf {
				break
			}
			i++
		}
		if store {
			d.sbuf = append(d.sbuf, data[run:i]...)
		}
		if i >= len(data) {
			return d.syntaxErr(i, `'"' to end the string`)
		}
		switch c := data[i]; {
		case c == '"':
			d.pos = i + 1
			return nil
		case c < 0x20:
			return d.syntaxErr(i, `no control characters in a string (escape them, e.g. \n)`)
		case c >= utf8.RuneSelf:
			r, size := utf8.DecodeRune(data[i:])
			if store {
				if r == utf8.RuneError && size == 1 {
					d.sbuf = utf8.AppendRune(d.sbuf, utf8.RuneError)
				} else {
					d.sbuf = append(d.sbuf, data[i:i+size]...)
				}
			}
			i += size
		default: // backslash
			if b := jsonEscapes[byteAt(data, i+1)]; b != 0 {
				if store {
					d.sbuf = append(d.sbuf, b)
				}
				i += 2
				continue
			}
			var err error
			if i, err = d.scanUnicodeEscape(i, store); err != nil {
				return err
			}
		}
	}
}

// jsonEscapes maps the byte after a backslash to the byte it stands for,
// 0 for bytes that do not form an escape (and for 'u', which is longer).
// A table makes the common escapes one load in scanString's loop instead
// of a switch of eight.
var jsonEscapes = [256]byte{
	'"': '"', '\\': '\\', '/': '/', 'b': '\b', 'f': '\f', 'n': '\n', 'r': '\r', 't': '\t',
}

// scanUnicodeEscape consumes the escape at data[i] that jsonEscapes does
// not cover, \uXXXX, joining it with a following low surrogate escape into
// one rune; a surrogate that does not pair becomes U+FFFD, as encoding/json
// decodes it. A backslash with anything else after it is an error. Being
// rare, these are kept out of scanString's loop.
func (d *ndDecoder) scanUnicodeEscape(i int, store bool) (int, error) {
	data := d.data
	if i+1 >= len(data) {
		return 0, d.syntaxErr(i+1, "an escape after '\\'")
	}
	if data[i+1] != 'u' {
		return 0, d.syntaxErr(i+1, `an escape: one of \" \\ \/ \b \f \n \r \t \uXXXX`)
	}
	u, ok := hex4(data, i+2)
	if !ok {
		return 0, d.syntaxErr(hexErrPos(data, i+2), "4 hex digits after \\u")
	}
	i += 6
	r := rune(u)
	if utf16IsSurrogate(r) {
		r = utf8.RuneError
		if u < 0xdc00 && i+1 < len(data) && data[i] == '\\' && data[i+1] == 'u' {
			if lo, ok := hex4(data, i+2); ok && lo >= 0xdc00 && lo < 0xe000 {
				r = (rune(u)-0xd800)<<10 | (rune(lo) - 0xdc00) + 0x10000
				i += 6
			}
		}
	}
	if store {
		d.sbuf = utf8.AppendRune(d.sbuf, r)
	}
	return i, nil
}

func utf16IsSurrogate(r rune) bool { return r >= 0xd800 && r < 0xe000 }

// hex4 reads 4 hex digits at data[i:].
func hex4(data []byte, i int) (uint16, bool) {
	if i+4 > len(data) {
		return 0, false
	}
	var v uint16
	for _, c := range data[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		v = v<<4 | uint16(c)
	}
	return v, true
}

// hexErrPos is the first byte of data[i:i+4] that is not a hex digit.
func hexErrPos(data []byte, i int) int {
	for ; i < len(data); i++ {
		c := data[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return i
		}
	}
	return i
}

// scanNumber consumes a JSON number, validating the grammar
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? and accumulating its
// decimal mantissa and exponent on the way. It works on locals, not on n,
// so the hot loop stays in registers.
func (d *ndDecoder) scanNumber(n *ndNum) error {
	data := d.data
	i := d.pos
	start := i
	neg := false
	if data[i] == '-' {
		neg = true
		i++
	}
	var mant uint64
	nd, exp := 0, 0 // significant digits in mant (19 always fit a uint64); decimal exponent
	big, integral := false, true
	if i >= len(data) { // a lone '-'
		return d.syntaxErr(i, "a digit")
	}
	switch c := data[i]; {
	case c == '0':
		i++
	case c-'1' < 9:
		for ; i < len(data); i++ {
			c := data[i] - '0'
			if c > 9 {
				break
			}
			if nd < 19 {
				mant = mant*10 + uint64(c)
				nd++
			} else {
				big = true
			}
		}
	default:
		return d.syntaxErr(i, "a digit")
	}
	if i < len(data) && data[i] == '.' {
		integral = false
		i++
		if byteAt(data, i)-'0' > 9 {
			return d.syntaxErr(i, "a digit after '.'")
		}
		// Eight digits at a time while they fit: decimals are the bulk of
		// a float body. nd may overcount leading zeros here, which only
		// sends a rare long literal to the slow path.
		for nd <= 11 && i+8 <= len(data) {
			v := binary.LittleEndian.Uint64(data[i:])
			if !isEightDigits(v) {
				break
			}
			mant = mant*1e8 + eightDigitsValue(v)
			exp -= 8
			nd += 8
			i += 8
		}
		for ; i < len(data); i++ {
			c := data[i] - '0'
			if c > 9 {
				break
			}
			if nd < 19 {
				mant = mant*10 + uint64(c)
				exp--
				if mant != 0 { // leading zeros are not significant
					nd++
				}
			} else {
				big = true
			}
		}
	}
	d.pos = i
	*n = ndNum{start: start, end: i, neg: neg, big: big, integral: integral, mant: mant, exp: exp}
	if i < len(data) && data[i]|0x20 == 'e' {
		return d.scanExponent(n)
	}
	return nil
}

// byteAt is data[i], or 0, which no JSON token starts with, past the end,
// for the checks that lead to a syntax error. On the hot path an explicit
// i < len(data) && ... compiles to one branch fewer, so it stays there.
func byteAt(data []byte, i int) byte {
	if uint(i) < uint(len(data)) {
		return data[i]
	}
	return 0
}

// isEightDigits reports whether v, eight bytes read little-endian, is
// eight ASCII decimal digits, testing all eight at once (SWAR).
func isEightDigits(v uint64) bool {
	return v&0xf0f0f0f0f0f0f0f0 == 0x3030303030303030 &&
		(v+0x0606060606060606)&0xf0f0f0f0f0f0f0f0 == 0x3030303030303030
}

// eightDigitsValue is the number that v, eight ASCII decimal digits read
// little-endian, spells, in three multiplies instead of eight loop turns.
func eightDigitsValue(v uint64) uint64 {
	v -= 0x3030303030303030
	v = v*10 + v>>8 // pairs
	return ((v&0x000000ff000000ff)*(100+1000000<<32) + (v>>16&0x000000ff000000ff)*(1+10000<<32)) >> 32
}

// scanExponent consumes the exponent of n, whose 'e' or 'E' is at
// data[n.end], and adds it to n, clamped far past any float's range so
// that it cannot overflow. Few numbers have one, so it is kept out of
// scanNumber, whose last act it is: nothing there is live across the call.
func (d *ndDecoder) scanExponent(n *ndNum) error {
	data := d.data
	i := n.end + 1
	neg := false
	if c := byteAt(data, i); c == '+' || c == '-' {
		neg = c == '-'
		i++
	}
	if byteAt(data, i)-'0' > 9 {
		return d.syntaxErr(i, "a digit in the exponent")
	}
	e := 0
	for ; i < len(data); i++ {
		c := data[i] - '0'
		if c > 9 {
			break
		}
		if e < 1e6 {
			e = e*10 + int(c)
		}
	}
	if neg {
		e = -e
	}
	n.integral = false
	n.exp += e
	n.end = i
	d.pos = i
	return nil
}

var ndPow10f = [...]float64{1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
	1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22}

// parseFloat64 converts n exactly as strconv.ParseFloat(text, 64) does.
// ok is false when the value is beyond float64's range.
func (d *ndDecoder) parseFloat64(n *ndNum) (float64, bool) {
	// Clinger's fast path: the mantissa and the power of ten are both
	// exact float64s, so one IEEE multiply or divide rounds correctly.
	if !n.big && n.mant <= 1<<53 && n.exp >= -22 && n.exp <= 22 {
		f := float64(n.mant)
		if n.exp < 0 {
			f /= ndPow10f[-n.exp]
		} else {
			f *= ndPow10f[n.exp]
		}
		if n.neg {
			f = -f
		}
		return f, true
	}
	f, err := strconv.ParseFloat(unsafe.String(&d.data[n.start], n.end-n.start), 64)
	return f, err == nil
}

// parseFloat32 converts n exactly as strconv.ParseFloat(text, 32) does.
func (d *ndDecoder) parseFloat32(n *ndNum) (float32, bool) {
	if !n.big && n.mant <= 1<<53 && n.exp >= -22 && n.exp <= 22 {
		// Clinger's fast path gives the correctly rounded float64, which is
		// then rounded again to float32. Two roundings agree with one
		// unless the float64 lands exactly on a float32 midpoint (its low
		// 29 mantissa bits are 1 followed by zeros): a midpoint has 25
		// significant bits, so it is a float64 and rounding to float64
		// cannot carry a value across it. Values here are within 1e-22 to
		// 1e38, float32's normal range, where that bit pattern is the test.
		f := float64(n.mant)
		if n.exp < 0 {
			f /= ndPow10f[-n.exp]
		} else {
			f *= ndPow10f[n.exp]
		}
		if math.Float64bits(f)&(1<<29-1) != 1<<28 {
			if n.neg {
				f = -f
			}
			return float32(f), true
		}
	}
	f, err := strconv.ParseFloat(unsafe.String(&d.data[n.start], n.end-n.start), 32)
	return float32(f), err == nil
}

// int64Of returns n as an int64 if it is an integral literal in range.
func (n *ndNum) int64Of() (int64, bool) {
	if n.big || !n.integral {
		return 0, false
	}
	if n.neg {
		if n.mant > 1<<63 {
			return 0, false
		}
		return int64(-n.mant), true // two's complement: 1<<63 gives MinInt64
	}
	if n.mant > math.MaxInt64 {
		return 0, false
	}
	return int64(n.mant), true
}

func (d *ndDecoder) rangeErr(n *ndNum, dt tensor.DType) error {
	var r string
	switch dt {
	case tensor.Float32:
		r = "±" + strconv.FormatFloat(math.MaxFloat32, 'g', -1, 32)
	case tensor.Float64:
		r = "±" + strconv.FormatFloat(math.MaxFloat64, 'g', -1, 64)
	case tensor.Int32:
		r = "-2147483648..2147483647"
	case tensor.Int64:
		r = "-9223372036854775808..9223372036854775807"
	case tensor.Uint8:
		r = "0..255"
	}
	return fmt.Errorf("%s: %s%s is out of range for %s (%s)", d.op, d.snippet(n.start), d.at(), dt, r)
}

func (d *ndDecoder) notIntErr(n *ndNum) error {
	hint := ""
	if f, err := strconv.ParseFloat(string(d.data[n.start:n.end]), 64); err == nil && f == math.Trunc(f) && math.Abs(f) < 1e15 {
		hint = " (write it as " + strconv.FormatFloat(f, 'f', -1, 64) + ")"
	}
	return fmt.Errorf("%s: %s%s is not an integer, want %s%s", d.op, d.snippet(n.start), d.at(), d.dt, hint)
}

// toFloat64 switches inferred int64 storage to float64 once a
// non-integral number shows the tensor is float64 after all.
func (d *ndDecoder) toFloat64() {
	f := make([]float64, len(d.i64), cap(d.i64))
	for i, v := range d.i64 {
		f[i] = float64(v)
	}
	d.f64, d.i64, d.dt = f, nil, tensor.Float64
}

func (d *ndDecoder) number() error {
	var n ndNum
	if err := d.scanNumber(&n); err != nil {
		return err
	}
	if d.infer {
		if err := d.inferNumber(&n); err != nil || d.dt == tensor.Int64 {
			return err // stored as int64 or refused; float64 goes on below
		}
	}
	switch d.dt {
	case tensor.Float32:
		f, ok := d.parseFloat32(&n)
		if !ok {
			return d.rangeErr(&n, tensor.Float32)
		}
		if d.f32 == nil {
			d.alloc()
		}
		d.f32 = append(d.f32, f)
	case tensor.Float64:
		f, ok := d.parseFloat64(&n)
		if !ok {
			return d.rangeErr(&n, tensor.Float64)
		}
		if d.f64 == nil {
			d.alloc()
		}
		d.f64 = append(d.f64, f)
	case tensor.Int32, tensor.Int64, tensor.Uint8:
		return d.integer(&n)
	default:
		return d.kindErr(n.start)
	}
	return nil
}

// inferNumber takes n while inferring the dtype: it stores n as an int64
// while every number so far was integral, and switches the storage to
// float64, leaving n for the caller to store, once one is not. It is apart
// from number so that a spec with a dtype, the common case, skips it in
// one test.
func (d *ndDecoder) inferNumber(n *ndNum) error {
	if err := d.inferKind(ndNumber, n.start); err != nil {
		return err
	}
	if !n.integral {
		d.sawFrac = true
	} else if n.mant == 0 {
		// An integer -0 is 0, as in numpy: the tensor must not depend
		// on whether a fraction came before it or after.
		n.neg = false
	}
	if d.dt != tensor.Int64 {
		return nil
	}
	if v, ok := n.int64Of(); ok {
		d.i64 = append(d.i64, v)
		return nil
	}
	if n.integral && d.overflow == nil {
		d.overflow = d.rangeErr(n, tensor.Int64)
	}
	d.toFloat64()
	return nil
}

// integer stores n in integer storage of d.dt, refusing fractions and
// values out of the dtype's range. The integer dtypes share it because
// they differ only in their bounds.
func (d *ndDecoder) integer(n *ndNum) error {
	if !n.integral {
		return d.notIntErr(n)
	}
	v, ok := n.int64Of()
	switch d.dt {
	case tensor.Int32:
		if !ok || v < math.MinInt32 || v > math.MaxInt32 {
			return d.rangeErr(n, tensor.Int32)
		}
		if d.i32 == nil {
			d.alloc()
		}
		d.i32 = append(d.i32, int32(v))
	case tensor.Int64:
		if !ok {
			return d.rangeErr(n, tensor.Int64)
		}
		if d.i64 == nil {
			d.alloc()
		}
		d.i64 = append(d.i64, v)
	default:
		if !ok || v < 0 || v > math.MaxUint8 {
			return d.rangeErr(n, tensor.Uint8)
		}
		if d.u8 == nil {
			d.alloc()
		}
		d.u8 = append(d.u8, uint8(v))
	}
	return nil
}

// AppendNDArray appends t as a JSON nested list (a rank-0 tensor as a bare
// scalar; a nil tensor as null). Floats use the shortest text that parses
// back to the same value at their precision (strconv 'g', -1, with 32 bits
// for float32), with ".0" added to integral values so the text still reads
// as a float (numpy and DecodeNDArray then infer a float dtype again). NaN
// and ±Inf, which JSON cannot carry, are written as null. Strings are
// JSON-escaped, invalid UTF-8 becoming U+FFFD.
func AppendNDArray(dst []byte, t *tensor.Tensor) []byte {
	if t == nil {
		return append(dst, "null"...)
	}
	dst = slices.Grow(dst, ndSizeHint(t))
	if len(t.Shape()) == 0 {
		return ndAppendElems(dst, t, 0, 1)
	}
	return ndAppendNested(dst, t, 0, 0)
}

// AppendFlat appends t's elements in row-major order as one flat JSON list
// (KServe v2 output "data"), formatted as AppendNDArray formats them. A
// nil tensor is written as [].
func AppendFlat(dst []byte, t *tensor.Tensor) []byte {
	if t == nil {
		return append(dst, "[]"...)
	}
	dst = slices.Grow(dst, ndSizeHint(t))
	dst = append(dst, '[')
	dst = ndAppendElems(dst, t, 0, t.Len())
	return append(dst, ']')
}

// ndSizeHint guesses the encoded size so the output grows at most once or
// twice; it need not be exact.
func ndSizeHint(t *tensor.Tensor) int {
	per := 0
	switch t.DType() {
	case tensor.Float32:
		per = 12
	case tensor.Float64:
		per = 20
	case tensor.Int32, tensor.Int64:
		per = 6
	case tensor.Uint8:
		per = 4
	case tensor.Bool:
		per = 6
	case tensor.String:
		per = 4
	}
	return t.Len() * per
}

func ndAppendNested(dst []byte, t *tensor.Tensor, dim, off int) []byte {
	shape := t.Shape()
	dst = append(dst, '[')
	if dim == len(shape)-1 {
		dst = ndAppendElems(dst, t, off, shape[dim])
		return append(dst, ']')
	}
	inner := 1
	for _, s := range shape[dim+1:] {
		inner *= s
	}
	for i := range shape[dim] {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = ndAppendNested(dst, t, dim+1, off+i*inner)
	}
	return append(dst, ']')
}

// ndAppendElems appends elements [off, off+n) comma-separated. It only
// picks the loop for the dtype, once a row; each loop is a function of its
// own so that adding a dtype does not grow one long switch of loops. The
// loops that call a formatter write the first element before the loop:
// with no index live across the call, they run fewer instructions per
// element than the usual if i > 0 form.
func ndAppendElems(dst []byte, t *tensor.Tensor, off, n int) []byte {
	switch t.DType() {
	case tensor.Float32:
		return ndAppendFloats(dst, t.Float32s()[off:off+n], 32)
	case tensor.Float64:
		return ndAppendFloats(dst, t.Float64s()[off:off+n], 64)
	case tensor.Int32:
		return ndAppendInts(dst, t.Int32s()[off:off+n])
	case tensor.Int64:
		return ndAppendInts(dst, t.Int64s()[off:off+n])
	case tensor.Uint8:
		return ndAppendUints(dst, t.Bytes()[off:off+n])
	case tensor.Bool:
		return ndAppendBools(dst, t.Bytes()[off:off+n])
	case tensor.String:
		return ndAppendStrings(dst, t.Strings()[off:off+n])
	}
	for i := range n {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, "null"...)
	}
	return dst
}

// ndAppendFloats appends xs at the given precision, comma-separated.
func ndAppendFloats[T float32 | float64](dst []byte, xs []T, bits int) []byte {
	if len(xs) == 0 {
		return dst
	}
	dst = ndAppendFloat(dst, float64(xs[0]), bits)
	for _, v := range xs[1:] {
		dst = append(dst, ',')
		dst = ndAppendFloat(dst, float64(v), bits)
	}
	return dst
}

// ndAppendInts appends xs, comma-separated.
func ndAppendInts[T int32 | int64](dst []byte, xs []T) []byte {
	if len(xs) == 0 {
		return dst
	}
	dst = strconv.AppendInt(dst, int64(xs[0]), 10)
	for _, v := range xs[1:] {
		dst = append(dst, ',')
		dst = strconv.AppendInt(dst, int64(v), 10)
	}
	return dst
}

// ndAppendUints appends xs, comma-separated.
func ndAppendUints(dst []byte, xs []uint8) []byte {
	if len(xs) == 0 {
		return dst
	}
	dst = strconv.AppendUint(dst, uint64(xs[0]), 10)
	for _, v := range xs[1:] {
		dst = append(dst, ',')
		dst = strconv.AppendUint(dst, uint64(v), 10)
	}
	return dst
}

// ndAppendBools appends xs, bool elements stored one byte each, as
// comma-separated true and false.
func ndAppendBools(dst []byte, xs []uint8) []byte {
	for i, v := range xs {
		if i > 0 {
			dst = append(dst, ',')
		}
		if v != 0 {
			dst = append(dst, "true"...)
		} else {
			dst = append(dst, "false"...)
		}
	}
	return dst
}

// ndAppendStrings appends xs as JSON strings, comma-separated.
func ndAppendStrings(dst []byte, xs []string) []byte {
	if len(xs) == 0 {
		return dst
	}
	dst = ndAppendString(dst, xs[0])
	for _, s := range xs[1:] {
		dst = append(dst, ',')
		dst = ndAppendString(dst, s)
	}
	return dst
}

// ndAppendFloat appends f's shortest round-tripping text at the given
// precision, with ".0" if it would otherwise read as an integer, and null
// for NaN and ±Inf.
func ndAppendFloat(dst []byte, f float64, bits int) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(dst, "null"...)
	}
	start := len(dst)
	dst = strconv.AppendFloat(dst, f, 'g', -1, bits)
	for _, c := range dst[start:] {
		if c != '-' && (c < '0' || c > '9') {
			return dst
		}
	}
	return append(dst, ".0"...)
}

const ndHex = "0123456789abcdef"

// ndAppendString appends s as a JSON string. It escapes what JSON requires
// plus U+2028 and U+2029 (as encoding/json does, for JavaScript), and
// writes invalid UTF-8 as \ufffd; it does not HTML-escape.
func ndAppendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	run := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[run:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			default:
				dst = append(dst, '\\', 'u', '0', '0', ndHex[c>>4], ndHex[c&0xf])
			}
			i++
			run = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[run:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			run = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[run:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', ndHex[r&0xf])
			i += size
			run = i
			continue
		}
		i += size
	}
	dst = append(dst, s[run:]...)
	return append(dst, '"')
}

// ndExampleTexts are the example strings, cycled through for string
// tensors.
var ndExampleTexts = [...]string{"I love this!", "This is awful."}

// ExampleValue returns a small value that passes spec.Check, to pre-fill a
// test input or a curl example. Tensors take spec's dtype (float32 when
// any) and shape, with 2 for a -1 in dim 0 and 4 for a -1 elsewhere, or
// one row of 4 ([1 4]) when the shape is nil; elements count up: 0.1, 0.2,
// … for floats, 1, 2, … for integers (wrapping for uint8), true, false, …
// for bools, and sentences alternating "I love this!" and "This is
// awful." for strings. Text is "I love this!" and JSON is
// {"text": "I love this!"}. A spec that accepts anything gets the float32
// [1 4] tensor. A spec whose fixed dims are too big to allocate gets the
// zero Value.
func ExampleValue(spec tensor.IOSpec) tensor.Value {
	switch spec.Kind {
	case tensor.KindText:
		return tensor.TextValue(ndExampleTexts[0])
	case tensor.KindJSON:
		return tensor.JSONValue(map[string]any{"text": ndExampleTexts[0]})
	case tensor.KindTensor, tensor.KindInvalid:
	default:
		return tensor.Value{}
	}
	dt := spec.DType
	if dt == tensor.DTypeInvalid {
		dt = tensor.Float32
	}
	t, err := tensor.Zeros(dt, exampleShape(spec.Shape))
	if err != nil {
		return tensor.Value{}
	}
	fillExample(t)
	return tensor.TensorValue(t)
}

// exampleShape is the shape ExampleValue gives a spec's shape: its free
// dims filled in, or one row of 4 when the spec leaves the shape open.
func exampleShape(spec []int) []int {
	if spec == nil {
		return []int{1, 4}
	}
	shape := make([]int, len(spec))
	for i, s := range spec {
		switch {
		case s >= 0:
			shape[i] = s
		case i == 0:
			shape[i] = 2
		default:
			shape[i] = 4
		}
	}
	return shape
}

// fillExample writes ExampleValue's counting elements into t, which is
// all zeros.
func fillExample(t *tensor.Tensor) {
	switch t.DType() {
	case tensor.Float32:
		xs := t.Float32s()
		for i := range xs {
			xs[i] = float32(float64(i+1) / 10)
		}
	case tensor.Float64:
		xs := t.Float64s()
		for i := range xs {
			xs[i] = float64(i+1) / 10
		}
	case tensor.Int32:
		xs := t.Int32s()
		for i := range xs {
			xs[i] = int32(i + 1)
		}
	case tensor.Int64:
		xs := t.Int64s()
		for i := range xs {
			xs[i] = int64(i + 1)
		}
	case tensor.Uint8:
		xs := t.Bytes()
		for i := range xs {
			xs[i] = uint8(i + 1)
		}
	case tensor.Bool:
		xs := t.Bytes()
		for i := range xs {
			xs[i] = uint8(1 - i%2)
		}
	case tensor.String:
		xs := t.Strings()
		for i := range xs {
			xs[i] = ndExampleTexts[i%len(ndExampleTexts)]
		}
	}
}
