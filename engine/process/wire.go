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

const (
	protocolVersion = 1
	headerSize      = 16
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
)

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
// a multiple of 8 so the value (and so the tensor data) stays aligned, and
// the value.
func appendCall(dst []byte, id uint32, method string, v tensor.Value) ([]byte, error) {
	start := len(dst)
	dst = appendHeader(dst, msgCall, id, 0)
	body := len(dst)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(method)))
	dst = append(dst, method...)
	for (len(dst)-body)%8 != 0 {
		dst = append(dst, 0)
	}
	dst, err := appendValue(dst, v)
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
type helloMsg struct {
	Protocol int            `json:"protocol"`
	Probe    bool           `json:"probe"`
	Runner   string         `json:"runner"`
	Worker   int            `json:"worker"`
	Threads  int            `json:"threads"`
	GPUs     []int          `json:"gpus"`
	Init     map[string]any `json:"init"`
}

// readyMsg is the READY payload: the worker's methods.
type readyMsg struct {
	Protocol int          `json:"protocol"`
	Methods  []wireMethod `json:"methods"`
}

type wireMethod struct {
	Name           string `json:"name"`
	Doc            string `json:"doc,omitempty"`
	Batchable      bool   `json:"batchable"`
	BatchDim       int    `json:"batch_dim"`
	OutputBatchDim *int   `json:"output_batch_dim,omitempty"`
	Input          wireIO `json:"input"`
	Output         wireIO `json:"output"`
}

type wireIO struct {
	Kind  string `json:"kind"`
	DType string `json:"dtype,omitempty"`
	Shape []int  `json:"shape,omitempty"`
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
	if r.Protocol != protocolVersion {
		return nil, fmt.Errorf("worker speaks protocol %d, this benchtop speaks %d", r.Protocol, protocolVersion)
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
		in, err := m.Input.spec()
		if err != nil {
			return nil, fmt.Errorf("method %q input: %w", m.Name, err)
		}
		out, err := m.Output.spec()
		if err != nil {
			return nil, fmt.Errorf("method %q output: %w", m.Name, err)
		}
		s := engine.MethodSpec{
			Name: m.Name, Doc: m.Doc, Batchable: m.Batchable,
			BatchDim: m.BatchDim, OutputBatchDim: m.BatchDim,
			Inputs: []tensor.IOSpec{in}, Outputs: []tensor.IOSpec{out},
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

func (w wireIO) spec() (tensor.IOSpec, error) {
	if w.Kind == "" || w.Kind == "any" {
		if w.DType != "" || w.Shape != nil {
			return tensor.IOSpec{}, errors.New(`dtype and shape need kind "tensor"`)
		}
		return tensor.IOSpec{}, nil
	}
	k, err := tensor.ParseKind(w.Kind)
	if err != nil {
		return tensor.IOSpec{}, err
	}
	s := tensor.IOSpec{Kind: k}
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
