package server

import (
	"fmt"
	"math"

	"github.com/benchtop/benchtop/engine/tensor"
	"github.com/benchtop/benchtop/engine/v2pb"
)

// A gRPC tensor's elements come either raw (v2pb.DecodeRaw) or in the
// typed field of InferTensorContents that matches its datatype: INT32 in
// int_contents, UINT8 in uint_contents (widened to 32 bits on the wire),
// BYTES in bytes_contents, and so on.

// contentsField names the field of InferTensorContents a dtype travels in.
func contentsField(dt tensor.DType) string {
	switch dt {
	case tensor.Float32:
		return "fp32_contents"
	case tensor.Float64:
		return "fp64_contents"
	case tensor.Int32:
		return "int_contents"
	case tensor.Int64:
		return "int64_contents"
	case tensor.Uint8:
		return "uint_contents"
	case tensor.Bool:
		return "bool_contents"
	case tensor.String:
		return "bytes_contents"
	}
	return "?"
}

// contentsLen is how many elements c holds in the field dt travels in.
func contentsLen(c *v2pb.InferTensorContents, dt tensor.DType) int {
	switch dt {
	case tensor.Float32:
		return len(c.Fp32Contents)
	case tensor.Float64:
		return len(c.Fp64Contents)
	case tensor.Int32:
		return len(c.IntContents)
	case tensor.Int64:
		return len(c.Int64Contents)
	case tensor.Uint8:
		return len(c.UintContents)
	case tensor.Bool:
		return len(c.BoolContents)
	case tensor.String:
		return len(c.BytesContents)
	}
	return 0
}

// contentsLens is how many elements each field of c holds, by field name:
// for saying which field a tensor was sent in by mistake.
func contentsLens(c *v2pb.InferTensorContents) map[string]int {
	return map[string]int{
		"bool_contents": len(c.BoolContents), "int_contents": len(c.IntContents),
		"int64_contents": len(c.Int64Contents), "uint_contents": len(c.UintContents),
		"uint64_contents": len(c.Uint64Contents), "fp32_contents": len(c.Fp32Contents),
		"fp64_contents": len(c.Fp64Contents), "bytes_contents": len(c.BytesContents),
	}
}

// decodeContents reads a tensor of dtype dt and shape from the typed field
// of c that dt travels in. The field must hold exactly the shape's
// elements; a tensor sent in another field is refused with the field it
// belongs in.
func decodeContents(c *v2pb.InferTensorContents, dt tensor.DType, shape []int) (*tensor.Tensor, error) {
	n, err := tensor.ElemCount(shape)
	if err != nil {
		return nil, err
	}
	field := contentsField(dt)
	if got := contentsLen(c, dt); got != n {
		for other, l := range contentsLens(c) {
			if other != field && l > 0 {
				return nil, fmt.Errorf("%s travels in contents.%s, but the request sets contents.%s", dt.V2(), field, other)
			}
		}
		return nil, fmt.Errorf("contents.%s has %d elements, shape %v takes %d", field, got, shape, n)
	}
	switch dt {
	case tensor.Float32:
		return tensor.NewTensor(shape, c.Fp32Contents)
	case tensor.Float64:
		return tensor.NewTensor(shape, c.Fp64Contents)
	case tensor.Int32:
		return tensor.NewTensor(shape, c.IntContents)
	case tensor.Int64:
		return tensor.NewTensor(shape, c.Int64Contents)
	case tensor.Bool:
		return tensor.NewTensor(shape, c.BoolContents)
	case tensor.Uint8:
		b := make([]uint8, n)
		for i, v := range c.UintContents {
			if v > math.MaxUint8 {
				return nil, fmt.Errorf("contents.uint_contents[%d] is %d, more than a UINT8 holds (255)", i, v)
			}
			b[i] = uint8(v)
		}
		return tensor.NewTensor(shape, b)
	case tensor.String:
		s := make([]string, n)
		for i, v := range c.BytesContents {
			s[i] = string(v)
		}
		return tensor.NewStringTensor(shape, s)
	}
	return nil, fmt.Errorf("datatype %s cannot be sent in contents", dt.V2())
}

// encodeContents puts t's elements in the field of its dtype. The numeric
// fields are copies: protobuf owns its slices.
func encodeContents(t *tensor.Tensor) (*v2pb.InferTensorContents, error) {
	c := &v2pb.InferTensorContents{}
	switch t.DType() {
	case tensor.Float32:
		c.Fp32Contents = append([]float32(nil), t.Float32s()...)
	case tensor.Float64:
		c.Fp64Contents = append([]float64(nil), t.Float64s()...)
	case tensor.Int32:
		c.IntContents = append([]int32(nil), t.Int32s()...)
	case tensor.Int64:
		c.Int64Contents = append([]int64(nil), t.Int64s()...)
	case tensor.Bool:
		b, err := tensor.TensorData[bool](t)
		if err != nil {
			return nil, err
		}
		c.BoolContents = append([]bool(nil), b...)
	case tensor.Uint8:
		c.UintContents = make([]uint32, 0, t.Len())
		for _, v := range t.Bytes() {
			c.UintContents = append(c.UintContents, uint32(v))
		}
	case tensor.String:
		c.BytesContents = make([][]byte, 0, t.Len())
		for _, s := range t.Strings() {
			c.BytesContents = append(c.BytesContents, []byte(s))
		}
	default:
		return nil, fmt.Errorf("datatype %s cannot be sent in contents", t.DType())
	}
	return c, nil
}

// shapeFromWire converts a wire shape; a dim beyond int (on 32-bit
// platforms) or below zero is refused by the caller's ElemCount, so only
// the conversion is guarded here.
func shapeFromWire(dims []int64) ([]int, error) {
	shape := make([]int, len(dims))
	for i, d := range dims {
		if d < 0 || d > math.MaxInt32 && int64(int(d)) != d {
			return nil, fmt.Errorf("shape %v: dim %d is %d, want 0 or more", dims, i, d)
		}
		shape[i] = int(d)
	}
	return shape, nil
}
