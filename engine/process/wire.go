package process

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"unsafe"

	"github.com/benchtop/benchtop/engine"
	"github.com/benchtop/benchtop/engine/tensor"
)

// The worker protocol, as docs/WORKER_PROTOCOL.md specifies it. Every
// message is a frame: a 16-byte header, then its payload.
//
//	offset 0  magic    4 bytes  0x89 'B' 'T' 'W'
//	offset 4  type     u8
//	offset 5  flags    u8       0
//	offset 6  reserved u16      0
//	offset 8  id       u32 LE   the call id (0 in the handshake)
//	offset 12 length   u32 LE   payload bytes
//
// The magic's first byte can never start UTF-8 text, so a stray print() on
// the worker's stdout is caught at the first byte rather than read as a
// length.

// Protocol versions. Version 2 added methods of several named inputs and
// outputs: the READY lists "inputs" and "outputs", the tuple value that
// carries them, and the empty value of an absent optional input. A method of
// one input and one output travels exactly as in version 1, so benchtop
// serves a worker of either: HELLO offers minProtocol to maxProtocol, and
// the worker answers READY in the one it chose.
const (
	minProtocol = 1
	maxProtocol = 2
)

const (
	headerSize = 16
	// maxPayload bounds what one frame may claim, so that a corrupted
	// length cannot make the host allocate gigabytes.
	maxPayload = 1 << 30
	// maxRank matches the deepest tensor the front ends' JSON codec
	// (server/codec) accepts.
	maxRank = 32
	// valueHeaderSize is the fixed part of an encoded value; dims follow.
	valueHeaderSize = 8
)

var magic = [4]byte{0x89, 'B', 'T', 'W'}

type msgType uint8

const (
	msgHello    msgType = 1 // host → worker, JSON
	msgReady    msgType = 2 // worker → host, JSON
	msgCall     msgType = 3 // host → worker, method + value
	msgResult   msgType = 4 // worker → host, value
	msgError    msgType = 5 // worker → host, JSON
	msgShutdown msgType = 6 // host → worker, empty
)

func (t msgType) String() string {
	switch t {
	case msgHello:
		return "HELLO"
	case msgReady:
		return "READY"
	case msgCall:
		return "CALL"
	case msgResult:
		return "RESULT"
	case msgError:
		return "ERROR"
	case msgShutdown:
		return "SHUTDOWN"
	}
	return fmt.Sprintf("type %d", uint8(t))
}

// Value kinds on the wire.
const (
	wireTensor = 1
	wireText   = 2
	wireJSON   = 3
	// wireTuple holds the values of a method of several inputs (in CALL)
	// or outputs (in RESULT), in the order READY declared them. It does not
	// nest.
	wireTuple = 4
)

// tupleHeaderSize is a tuple's fixed part: kind, three zero bytes, the u32
// count. The u64 byte lengths of its values follow.
const tupleHeaderSize = 8

// wireDTypes maps wire dtype codes to engine dtypes. The codes are the
// protocol's own, so reordering the engine's enum cannot change the wire.
var wireDTypes = [...]tensor.DType{
	1: tensor.Float32,
	2: tensor.Float64,
	3: tensor.Int32,
	4: tensor.Int64,
	5: tensor.Uint8,
	6: tensor.Bool,
	7: tensor.String,
}

func wireDType(dt tensor.DType) (byte, bool) {
	for code, d := range wireDTypes {
		if code > 0 && d == dt {
			return byte(code), true
		}
	}
	return 0, false
}

type header struct {
	typ msgType
	id  uint32
	n   int // payload length
}

func appendHeader(dst []byte, typ msgType, id uint32, n int) []byte {
	dst = append(dst, magic[:]...)
	dst = append(dst, byte(typ), 0, 0, 0)
	dst = binary.LittleEndian.AppendUint32(dst, id)
	return binary.LittleEndian.AppendUint32(dst, uint32(n))
}

// errNotAFrame reports bytes that do not start with the magic: something
// other than the protocol wrote to the worker's stdout.
var errNotAFrame = errors.New("not a protocol frame")

// parseHeader checks a header strictly: any reserved bit set means the
// stream is out of step, and going on would read garbage as lengths.
func parseHeader(b []byte) (header, error) {
	if !bytes.Equal(b[:4], magic[:]) {
		return header{}, errNotAFrame
	}
	h := header{
		typ: msgType(b[4]),
		id:  binary.LittleEndian.Uint32(b[8:12]),
		n:   int(binary.LittleEndian.Uint32(b[12:16])),
	}
	if b[5] != 0 || b[6] != 0 || b[7] != 0 {
		return header{}, fmt.Errorf("frame header has reserved bytes % x set, want zeros", b[5:8])
	}
	if h.typ < msgHello || h.typ > msgShutdown {
		return header{}, fmt.Errorf("frame has unknown message type %d, want 1 to 6", uint8(h.typ))
	}
	if h.n > maxPayload {
		return header{}, fmt.Errorf("frame of type %s claims %d payload bytes, more than the %d limit", h.typ, h.n, maxPayload)
	}
	return h, nil
}

// appendCall appends a whole CALL frame: the method name, zero padding to
// a multiple of 8 so the values (and so the tensor data) stay aligned, and
// in, one value per input of the method. One input travels as the value
// itself, as in protocol 1; any other number as a tuple.
func appendCall(dst []byte, id uint32, method string, in []tensor.Value) ([]byte, error) {
	start := len(dst)
	dst = appendHeader(dst, msgCall, id, 0)
	body := len(dst)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(method)))
	dst = append(dst, method...)
	dst = pad8(dst, body)
	dst, err := appendValues(dst, in)
	if err != nil {
		return dst[:start], err
	}
	n := len(dst) - body
	if n > maxPayload {
		return dst[:start], fmt.Errorf("call of %d bytes is more than the protocol's %d limit: send smaller batches", n, maxPayload)
	}
	binary.LittleEndian.PutUint32(dst[start+12:], uint32(n))
	return dst, nil
}

// pad8 appends zeros until dst is a multiple of 8 bytes past from.
func pad8(dst []byte, from int) []byte {
	for (len(dst)-from)%8 != 0 {
		dst = append(dst, 0)
	}
	return dst
}

// appendValues encodes the values of one side of a call: the value itself
// when there is one, a tuple otherwise.
func appendValues(dst []byte, vs []tensor.Value) ([]byte, error) {
	if len(vs) == 1 {
		return appendSlot(dst, vs[0])
	}
	return appendTuple(dst, vs)
}

// appendSlot encodes one input or output: nothing at all for an absent
// optional input (the zero Value), else the value.
func appendSlot(dst []byte, v tensor.Value) ([]byte, error) {
	if v.Kind() == tensor.KindInvalid {
		return dst, nil
	}
	return appendValue(dst, v)
}

// appendTuple encodes vs as a tuple: its header, a u64 byte length per
// value (0 for an absent one), then the values, each followed by zeros up to
// a multiple of 8 so that the next one starts aligned.
func appendTuple(dst []byte, vs []tensor.Value) ([]byte, error) {
	start := len(dst)
	dst = append(dst, wireTuple, 0, 0, 0)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(vs)))
	table := len(dst)
	dst = append(dst, make([]byte, 8*len(vs))...)
	for i, v := range vs {
		at := len(dst)
		var err error
		if dst, err = appendSlot(dst, v); err != nil {
			return dst[:start], fmt.Errorf("value %d: %w", i, err)
		}
		binary.LittleEndian.PutUint64(dst[table+8*i:], uint64(len(dst)-at))
		dst = pad8(dst, start)
	}
	return dst, nil
}

// appendValue encodes v: kind, dtype, rank, a reserved byte and u32, the
// dims as i64, then the body (raw little-endian elements; u32 lengths then
// bytes for strings; UTF-8 for text and JSON).
func appendValue(dst []byte, v tensor.Value) ([]byte, error) {
	switch v.Kind() {
	case tensor.KindTensor:
		t := v.Tensor()
		if t == nil {
			return dst, errors.New("encode value: tensor is nil")
		}
		code, ok := wireDType(t.DType())
		if !ok {
			return dst, fmt.Errorf("encode value: dtype %s has no wire code", t.DType())
		}
		shape := t.Shape()
		if len(shape) > maxRank {
			return dst, fmt.Errorf("encode value: tensor %s has %d dims, the protocol carries at most %d", t, len(shape), maxRank)
		}
		dst = append(dst, wireTensor, code, byte(len(shape)), 0, 0, 0, 0, 0)
		for _, d := range shape {
			dst = binary.LittleEndian.AppendUint64(dst, uint64(d))
		}
		if t.DType() == tensor.String {
			strs := t.Strings()
			for _, s := range strs {
				if uint64(len(s)) > math.MaxUint32 {
					return dst, fmt.Errorf("encode value: a string element of %d bytes is too long for the protocol", len(s))
				}
				dst = binary.LittleEndian.AppendUint32(dst, uint32(len(s)))
			}
			for _, s := range strs {
				dst = append(dst, s...)
			}
			return dst, nil
		}
		return append(dst, t.Bytes()...), nil
	case tensor.KindText:
		dst = append(dst, wireText, 0, 0, 0, 0, 0, 0, 0)
		return append(dst, v.Text()...), nil
	case tensor.KindJSON:
		raw, err := json.Marshal(v.JSON())
		if err != nil {
			return dst, fmt.Errorf("encode value: json: %w", err)
		}
		dst = append(dst, wireJSON, 0, 0, 0, 0, 0, 0, 0)
		return append(dst, raw...), nil
	}
	return dst, fmt.Errorf("encode value: %s cannot be sent to a worker", v)
}

// decodeValue decodes a value that fills b exactly. Tensor data is used in
// place when b is aligned for its dtype (the caller allocates frames so
// that it is), so b must not be reused afterwards.
func decodeValue(b []byte) (tensor.Value, error) {
	if len(b) < valueHeaderSize {
		return tensor.Value{}, fmt.Errorf("value of %d bytes is shorter than its %d-byte header", len(b), valueHeaderSize)
	}
	kind, code, rank := b[0], b[1], int(b[2])
	if kind == wireTuple {
		return tensor.Value{}, errors.New("a tuple where one value belongs: only a method's values as a whole travel as a tuple")
	}
	if b[3] != 0 || binary.LittleEndian.Uint32(b[4:8]) != 0 {
		return tensor.Value{}, fmt.Errorf("value header has reserved bytes % x set, want zeros", b[3:8])
	}
	switch kind {
	case wireText, wireJSON:
		if code != 0 || rank != 0 {
			return tensor.Value{}, fmt.Errorf("a text or json value has dtype %d and rank %d, want 0 and 0", code, rank)
		}
		body := b[valueHeaderSize:]
		if kind == wireText {
			return tensor.TextValue(string(body)), nil
		}
		var x any
		if err := json.Unmarshal(body, &x); err != nil {
			return tensor.Value{}, fmt.Errorf("json value: %w", err)
		}
		return tensor.JSONValue(x), nil
	case wireTensor:
	default:
		return tensor.Value{}, fmt.Errorf("value has kind %d, want 1 (tensor), 2 (text) or 3 (json)", kind)
	}
	return decodeTensor(code, rank, b[valueHeaderSize:])
}

// decodeTuple decodes a tuple that fills b exactly into its values, the
// zero Value for an absent one. Each value is decoded in place, as by
// decodeValue, so b must be aligned and not reused.
func decodeTuple(b []byte) ([]tensor.Value, error) {
	if len(b) < tupleHeaderSize || b[0] != wireTuple {
		return nil, errors.New("not a tuple")
	}
	if b[1] != 0 || b[2] != 0 || b[3] != 0 {
		return nil, fmt.Errorf("tuple header has reserved bytes % x set, want zeros", b[1:4])
	}
	n := uint64(binary.LittleEndian.Uint32(b[4:8]))
	if uint64(len(b)-tupleHeaderSize) < 8*n {
		return nil, fmt.Errorf("tuple of %d values needs %d bytes of lengths, it has %d", n, 8*n, len(b)-tupleHeaderSize)
	}
	vs := make([]tensor.Value, n)
	off := uint64(tupleHeaderSize + 8*n)
	for i := range vs {
		l := binary.LittleEndian.Uint64(b[tupleHeaderSize+8*i:])
		if l > uint64(len(b))-off {
			return nil, fmt.Errorf("tuple value %d claims %d bytes, only %d are left", i, l, uint64(len(b))-off)
		}
		v := b[off : off+l]
		off += l
		end := (off + 7) &^ 7
		if end > uint64(len(b)) {
			return nil, fmt.Errorf("tuple value %d lacks the padding to a multiple of 8 after it", i)
		}
		for _, p := range b[off:end] {
			if p != 0 {
				return nil, fmt.Errorf("tuple value %d is followed by padding % x, want zeros", i, b[off:end])
			}
		}
		off = end
		if l == 0 {
			continue // absent
		}
		if v[0] == wireTuple {
			return nil, fmt.Errorf("tuple value %d is a tuple: tuples do not nest", i)
		}
		var err error
		if vs[i], err = decodeValue(v); err != nil {
			return nil, fmt.Errorf("tuple value %d: %w", i, err)
		}
	}
	if off != uint64(len(b)) {
		return nil, fmt.Errorf("tuple of %d values ends at byte %d, but %d bytes follow", n, off, uint64(len(b))-off)
	}
	return vs, nil
}

// decodeResult decodes a RESULT's payload into one value per output of
// outputs, with an error that says what the worker should have sent. nil
// outputs (a method the worker never declared) accepts either form.
func decodeResult(b []byte, outputs tensor.IOSpecs) ([]tensor.Value, error) {
	isTuple := len(b) > 0 && b[0] == wireTuple
	switch {
	case outputs == nil:
	case len(outputs) == 1 && isTuple:
		return nil, errors.New("a tuple for a method of one output: send the value itself")
	case len(outputs) != 1 && !isTuple:
		return nil, fmt.Errorf("one value for a method of %d outputs (%s): send a tuple of them, in that order", len(outputs), outputs.Names())
	}
	if !isTuple {
		if len(b) == 0 {
			return nil, errors.New("an empty value: outputs are never absent")
		}
		v, err := decodeValue(b)
		if err != nil {
			return nil, err
		}
		return []tensor.Value{v}, nil
	}
	vs, err := decodeTuple(b)
	if err != nil {
		return nil, err
	}
	if outputs != nil && len(vs) != len(outputs) {
		return nil, fmt.Errorf("a tuple of %d values for a method of %d outputs (%s)", len(vs), len(outputs), outputs.Names())
	}
	for i, v := range vs {
		if v.Kind() == tensor.KindInvalid {
			name := fmt.Sprint(i)
			if outputs != nil {
				name = fmt.Sprintf("%q", outputs[i].Name)
			}
			return nil, fmt.Errorf("output %s is empty: outputs are never absent", name)
		}
	}
	return vs, nil
}

// decodeTensor decodes a tensor's dims and data (body), as decodeValue.
func decodeTensor(code byte, rank int, body []byte) (tensor.Value, error) {
	if int(code) >= len(wireDTypes) || code == 0 {
		return tensor.Value{}, fmt.Errorf("tensor has dtype code %d, want 1 to %d", code, len(wireDTypes)-1)
	}
	dt := wireDTypes[code]
	if rank > maxRank {
		return tensor.Value{}, fmt.Errorf("tensor has %d dims, the protocol carries at most %d", rank, maxRank)
	}
	if len(body) < 8*rank {
		return tensor.Value{}, fmt.Errorf("tensor of rank %d needs %d bytes of dims, the value has %d", rank, 8*rank, len(body))
	}
	shape := make([]int, rank)
	elems := uint64(1)
	for i := range shape {
		d := binary.LittleEndian.Uint64(body[8*i:])
		// No dim can be larger than the frame, which bounds every product.
		if d > maxPayload {
			return tensor.Value{}, fmt.Errorf("tensor dim %d is %d, larger than any frame", i, int64(d))
		}
		shape[i] = int(d)
		elems *= d
		if elems > maxPayload {
			elems = maxPayload + 1
		}
	}
	body = body[8*rank:]
	if dt != tensor.String {
		want := elems * uint64(dt.Size())
		if uint64(len(body)) != want {
			return tensor.Value{}, fmt.Errorf("tensor %s%v needs %d data bytes, the value has %d", dt, shape, want, len(body))
		}
		t, err := tensor.NewTensorFromBytes(dt, shape, body)
		if err != nil {
			return tensor.Value{}, err
		}
		return tensor.TensorValue(t), nil
	}
	if uint64(len(body)) < 4*elems {
		return tensor.Value{}, fmt.Errorf("string tensor %v needs %d bytes of lengths, the value has %d", shape, 4*elems, len(body))
	}
	n := int(elems)
	lens, data := body[:4*n], body[4*n:]
	total := uint64(0)
	for i := range n {
		total += uint64(binary.LittleEndian.Uint32(lens[4*i:]))
	}
	if total != uint64(len(data)) {
		return tensor.Value{}, fmt.Errorf("string tensor %v: its lengths add up to %d bytes, the value has %d", shape, total, len(data))
	}
	// One string for all elements; each element is a substring of it.
	all := string(data)
	strs := make([]string, n)
	pos := 0
	for i := range strs {
		l := int(binary.LittleEndian.Uint32(lens[4*i:]))
		strs[i] = all[pos : pos+l]
		pos += l
	}
	t, err := tensor.NewStringTensor(shape, strs)
	if err != nil {
		return tensor.Value{}, err
	}
	return tensor.TensorValue(t), nil
}

// alignedBytes allocates n bytes on an 8-byte boundary, so that tensor
// data inside a frame can be used without a copy.
func alignedBytes(n int) []byte {
	if n == 0 {
		return []byte{}
	}
	words := make([]uint64, (n+7)/8)
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(words))), n)
}

// helloMsg is the HELLO payload: who the worker is and its init params.
// Protocol and MaxProtocol are the range of versions benchtop speaks;
// Protocol alone is what a worker of version 1 checks.
type helloMsg struct {
	Protocol    int            `json:"protocol"`
	MaxProtocol int            `json:"max_protocol"`
	Probe       bool           `json:"probe"`
	Runner      string         `json:"runner"`
	Worker      int            `json:"worker"`
	Threads     int            `json:"threads"`
	GPUs        []int          `json:"gpus"`
	Init        map[string]any `json:"init"`
}

// readyMsg is the READY payload: the version the worker chose and its
// methods.
type readyMsg struct {
	Protocol int          `json:"protocol"`
	Methods  []wireMethod `json:"methods"`
}

// wireMethod declares one method. Its inputs are either Input (one slot,
// protocol 1's form) or Inputs (a list, from protocol 2); the same for its
// outputs. Neither means one slot of any value.
type wireMethod struct {
	Name           string   `json:"name"`
	Doc            string   `json:"doc,omitempty"`
	Batchable      bool     `json:"batchable"`
	BatchDim       int      `json:"batch_dim"`
	OutputBatchDim *int     `json:"output_batch_dim,omitempty"`
	Input          *wireIO  `json:"input,omitempty"`
	Output         *wireIO  `json:"output,omitempty"`
	Inputs         []wireIO `json:"inputs,omitempty"`
	Outputs        []wireIO `json:"outputs,omitempty"`
}

// wireIO is one slot. Name, Unbatched and Optional came with protocol 2.
type wireIO struct {
	Name      string `json:"name,omitempty"`
	Kind      string `json:"kind"`
	DType     string `json:"dtype,omitempty"`
	Shape     []int  `json:"shape,omitempty"`
	Unbatched bool   `json:"unbatched,omitempty"`
	Optional  bool   `json:"optional,omitempty"`
}

// errorMsg is the ERROR payload.
type errorMsg struct {
	Message      string `json:"message"`
	InvalidInput bool   `json:"invalid_input"`
}

// decodeStrict decodes JSON refusing unknown fields, so that a worker's
// typo ("batch_dims") is an error rather than a silent default.
func decodeStrict(b []byte, dst any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("extra data after the JSON object")
	}
	return nil
}

// specsFromReady turns a READY message into method specs, checking every
// one the way the engine will.
func specsFromReady(r readyMsg) ([]engine.MethodSpec, error) {
	if r.Protocol < minProtocol || r.Protocol > maxProtocol {
		return nil, fmt.Errorf("worker answered in protocol %d, this benchtop speaks protocols %d to %d: %s",
			r.Protocol, minProtocol, maxProtocol, upgradeAdvice(r.Protocol))
	}
	if len(r.Methods) == 0 {
		return nil, errors.New("worker declared no methods")
	}
	seen := map[string]bool{}
	specs := make([]engine.MethodSpec, 0, len(r.Methods))
	for i, m := range r.Methods {
		if m.Name == "" {
			return nil, fmt.Errorf("method %d has no name", i)
		}
		if seen[m.Name] {
			return nil, fmt.Errorf("method %q is declared twice", m.Name)
		}
		seen[m.Name] = true
		in, err := slots(r.Protocol, "input", m.Input, m.Inputs)
		if err != nil {
			return nil, fmt.Errorf("method %q: %w", m.Name, err)
		}
		out, err := slots(r.Protocol, "output", m.Output, m.Outputs)
		if err != nil {
			return nil, fmt.Errorf("method %q: %w", m.Name, err)
		}
		s := engine.MethodSpec{
			Name: m.Name, Doc: m.Doc, Batchable: m.Batchable,
			BatchDim: m.BatchDim, OutputBatchDim: m.BatchDim,
			Inputs: in, Outputs: out,
		}
		if m.OutputBatchDim != nil {
			s.OutputBatchDim = *m.OutputBatchDim
		}
		if err := s.Validate(); err != nil {
			return nil, err
		}
		specs = append(specs, s)
	}
	return specs, nil
}

// upgradeAdvice says which side is behind a worker's protocol version.
func upgradeAdvice(v int) string {
	if v > maxProtocol {
		return "this benchtop is older than the worker's SDK: update benchtop, or use the worker SDK that came with it"
	}
	return "update the worker's SDK (samples/python/benchtop_worker.py for Python)"
}

// slots reads one side of a method: the one-slot form (one) or the list
// (list), which protocol 1 does not have.
func slots(protocol int, what string, one *wireIO, list []wireIO) (tensor.IOSpecs, error) {
	if one != nil && list != nil {
		return nil, fmt.Errorf("it declares both %q and %q: declare one slot with %[1]q or a list with %[2]q", what, what+"s")
	}
	if list == nil {
		var w wireIO
		if one != nil {
			w = *one
		}
		s, err := w.spec(protocol)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		return tensor.IOSpecs{s}, nil
	}
	if protocol < 2 {
		return nil, fmt.Errorf("it declares %q, a list that came with protocol 2, in a READY of protocol %d: answer READY with protocol 2 (benchtop offers it in HELLO's max_protocol)", what+"s", protocol)
	}
	specs := make(tensor.IOSpecs, len(list))
	for i, w := range list {
		s, err := w.spec(protocol)
		if err != nil {
			name := w.Name
			if name == "" {
				name = fmt.Sprint(i)
			}
			return nil, fmt.Errorf("%s %s: %w", what, name, err)
		}
		specs[i] = s
	}
	return specs, nil
}

func (w wireIO) spec(protocol int) (tensor.IOSpec, error) {
	if protocol < 2 && (w.Name != "" || w.Unbatched || w.Optional) {
		return tensor.IOSpec{}, fmt.Errorf("name, unbatched and optional came with protocol 2, and the worker answered READY in protocol %d: answer with protocol 2", protocol)
	}
	s := tensor.IOSpec{Name: w.Name, Unbatched: w.Unbatched, Optional: w.Optional}
	if w.Kind == "" || w.Kind == "any" {
		if w.DType != "" || w.Shape != nil {
			return tensor.IOSpec{}, errors.New(`dtype and shape need kind "tensor"`)
		}
		return s, nil
	}
	k, err := tensor.ParseKind(w.Kind)
	if err != nil {
		return tensor.IOSpec{}, err
	}
	s.Kind = k
	if k != tensor.KindTensor {
		if w.DType != "" || w.Shape != nil {
			return tensor.IOSpec{}, fmt.Errorf("kind %q takes no dtype or shape", w.Kind)
		}
		return s, nil
	}
	if w.DType != "" {
		if s.DType, err = tensor.ParseDType(w.DType); err != nil {
			return tensor.IOSpec{}, err
		}
	}
	if w.Shape != nil {
		if len(w.Shape) > maxRank {
			return tensor.IOSpec{}, fmt.Errorf("shape %v has more than %d dims", w.Shape, maxRank)
		}
		for i, d := range w.Shape {
			if d < -1 {
				return tensor.IOSpec{}, fmt.Errorf("shape %v: dim %d is %d, want -1 (any) or a size", w.Shape, i, d)
			}
		}
		s.Shape = w.Shape
	}
	return s, nil
}
