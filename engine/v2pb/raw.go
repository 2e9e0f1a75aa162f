package v2pb

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"strconv"

	"github.com/benchtop/benchtop/engine/tensor"
)

// Raw tensors are the bytes KServe v2 sends outside JSON: gRPC's
// raw_input_contents and raw_output_contents, and the body that follows the
// JSON header in Triton's binary data extension over HTTP. Both lay a
// tensor out the same way: numeric elements little-endian in row-major
// order, BOOL one byte each, and BYTES as each element's length (4 bytes,
// little-endian) followed by its bytes. The engine holds tensors in native
// byte order; every platform benchtop builds for is little-endian, so a
// numeric tensor is read and written without a copy.

// rawLenPrefix is the size of a BYTES element's length.
const rawLenPrefix = 4

// DecodeRaw reads one tensor of dtype dt and shape from raw, which must
// hold exactly its elements. raw is used in place where it can be (a
// numeric tensor is a view of it when aligned), so the caller must not
// modify it afterwards. Errors say what the bytes and the shape disagree on.
func DecodeRaw(raw []byte, dt tensor.DType, shape []int) (*tensor.Tensor, error) {
	if err := dt.Validate(); err != nil {
		return nil, err
	}
	n, err := tensor.ElemCount(shape)
	if err != nil {
		return nil, err
	}
	if dt != tensor.String {
		// ElemCount caps n so that n·size cannot overflow.
		if want := n * dt.Size(); len(raw) != want {
			return nil, fmt.Errorf("raw data is %s, but %s %s takes %s (%d elements × %d)",
				ByteCount(len(raw)), dt.V2(), shapeString(shape), ByteCount(want), n, dt.Size())
		}
		return tensor.NewTensorFromBytes(dt, shape, raw)
	}
	// Every element takes at least its length prefix: a shape that claims
	// more elements than the bytes could hold is refused before anything
	// is allocated for them.
	if n > len(raw)/rawLenPrefix {
		return nil, fmt.Errorf("raw data is %s, too short for the %d BYTES elements of shape %s (each takes a 4-byte length at least)",
			ByteCount(len(raw)), n, shapeString(shape))
	}
	strs := make([]string, n)
	off := 0
	for i := range strs {
		if len(raw)-off < rawLenPrefix {
			return nil, fmt.Errorf("raw data ends inside the length of BYTES element %d of %d (at byte %d)", i, n, off)
		}
		size := binary.LittleEndian.Uint32(raw[off:])
		off += rawLenPrefix
		if uint64(size) > uint64(len(raw)-off) {
			return nil, fmt.Errorf("BYTES element %d of %d says it is %s, but only %s follow (at byte %d)",
				i, n, ByteCount(int(size)), ByteCount(len(raw)-off), off-rawLenPrefix)
		}
		strs[i] = string(raw[off : off+int(size)])
		off += int(size)
	}
	if off != len(raw) {
		return nil, fmt.Errorf("raw data has %s after the %d BYTES elements of shape %s", ByteCount(len(raw)-off), n, shapeString(shape))
	}
	return tensor.NewStringTensor(shape, strs)
}

// RawSize is the number of bytes AppendRaw writes for t.
func RawSize(t *tensor.Tensor) int {
	if t.DType() != tensor.String {
		return len(t.Bytes())
	}
	size := 0
	for _, s := range t.Strings() {
		size += rawLenPrefix + len(s)
	}
	return size
}

// AppendRaw appends t in the raw layout. A BYTES element longer than 4 GiB
// cannot be framed and is an error.
func AppendRaw(buf []byte, t *tensor.Tensor) ([]byte, error) {
	if t.DType() != tensor.String {
		return append(buf, t.Bytes()...), nil
	}
	for i, s := range t.Strings() {
		if uint64(len(s)) > math.MaxUint32 {
			return buf, fmt.Errorf("BYTES element %d is %s, more than a raw tensor can frame (4 GiB)", i, ByteCount(len(s)))
		}
		buf = binary.LittleEndian.AppendUint32(buf, uint32(len(s)))
		buf = append(buf, s...)
	}
	return buf, nil
}

// RawBytes is t in the raw layout, without a copy for a numeric tensor (its
// bytes are returned as they are: the caller must not modify them).
func RawBytes(t *tensor.Tensor) ([]byte, error) {
	if t.DType() != tensor.String {
		return t.Bytes(), nil
	}
	return AppendRaw(make([]byte, 0, RawSize(t)), t)
}

func shapeString(shape []int) string {
	b := []byte{'['}
	for i, d := range shape {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = strconv.AppendInt(b, int64(d), 10)
	}
	return string(append(b, ']'))
}

// HeaderLengthHeader is the HTTP header of Triton's binary data extension
// that gives the length of the JSON before the raw tensors.
const HeaderLengthHeader = "Inference-Header-Content-Length"

// ByteCount writes n bytes exactly, which a client comparing against its
// own buffer lengths needs ("1 byte", "1024 bytes").
func ByteCount(n int) string {
	if n == 1 {
		return "1 byte"
	}
	return strconv.Itoa(n) + " bytes"
}

// V2Tensor is v as a KServe v2 tensor: a tensor as it is; a text, or a
// JSON document encoded, as a BYTES tensor of one element.
func V2Tensor(v tensor.Value) (*tensor.Tensor, error) {
	switch v.Kind() {
	case tensor.KindTensor:
		return v.Tensor(), nil
	case tensor.KindText:
		return tensor.NewStringTensor([]int{1}, []string{v.Text()})
	}
	b, err := json.Marshal(v.JSON())
	if err != nil {
		return nil, err
	}
	return tensor.NewStringTensor([]int{1}, []string{string(b)})
}

// RawRequest is a ModelInfer request for model carrying vals, a value per
// input of specs, every tensor in raw_input_contents (a text or JSON value
// as one BYTES element, V2Tensor); an optional input left out (the zero
// Value) is not sent. It names no outputs, so every output comes back, raw
// as the inputs went.
func RawRequest(model string, specs tensor.IOSpecs, vals []tensor.Value) (*ModelInferRequest, error) {
	req := &ModelInferRequest{ModelName: model}
	for i, v := range vals {
		if v.Kind() == tensor.KindInvalid {
			continue
		}
		t, err := V2Tensor(v)
		if err != nil {
			return nil, fmt.Errorf("input %q: %w", specs[i].Name, err)
		}
		raw, err := RawBytes(t)
		if err != nil {
			return nil, fmt.Errorf("input %q: %w", specs[i].Name, err)
		}
		req.Inputs = append(req.Inputs, &ModelInferRequest_InferInputTensor{Name: specs[i].Name, Datatype: t.DType().V2(), Shape: WireShape(t.Shape())})
		req.RawInputContents = append(req.RawInputContents, raw)
	}
	return req, nil
}

// WireShape is shape as the protocol's int64 dims.
func WireShape(shape []int) []int64 {
	out := make([]int64, len(shape))
	for i, d := range shape {
		out[i] = int64(d)
	}
	return out
}
