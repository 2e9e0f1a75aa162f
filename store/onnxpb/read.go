package onnxpb

import (
	"errors"
	"fmt"
	"math"
	"os"

	"google.golang.org/protobuf/encoding/protowire"
)

// ReadFile reads the model at path. See Read.
func ReadFile(path string) (*Model, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	m, err := Read(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}

// Read parses a serialized ModelProto. Initializer raw_data stays a view of
// data, so data must not be modified while the model is in use. It fails on
// anything that is not a well-formed ONNX model with a graph.
func Read(data []byte) (*Model, error) {
	var m Model
	hasGraph := false
	err := fields(data, "ModelProto", func(num protowire.Number, typ protowire.Type, b []byte, v uint64) error {
		var err error
		switch num {
		case 1:
			m.IRVersion, err = int64Field(typ, v)
		case 2:
			m.ProducerName, err = stringField(typ, b)
		case 3:
			m.ProducerVersion, err = stringField(typ, b)
		case 4:
			m.Domain, err = stringField(typ, b)
		case 5:
			m.ModelVersion, err = int64Field(typ, v)
		case 6:
			m.DocString, err = stringField(typ, b)
		case 7:
			if err = want(typ, protowire.BytesType); err == nil {
				hasGraph = true
				err = readGraph(b, &m.Graph)
			}
		case 8:
			var o OpsetID
			if err = want(typ, protowire.BytesType); err == nil {
				o, err = readOpset(b)
				m.OpsetImports = append(m.OpsetImports, o)
			}
		case 14:
			var p StringPair
			if err = want(typ, protowire.BytesType); err == nil {
				p, err = readPair(b)
				m.Metadata = append(m.Metadata, p)
			}
		}
		return err
	})
	if err != nil {
		return nil, notONNX(err)
	}
	if !hasGraph || m.IRVersion <= 0 {
		return nil, notONNX(errors.New("no ir_version or graph"))
	}
	return &m, nil
}

func notONNX(err error) error {
	return fmt.Errorf("not a readable ONNX model (want a serialized onnx.ModelProto): %w", err)
}

// fields walks the top-level fields of one message. For length-delimited
// fields b is the payload; for varint and fixed fields v is the value.
func fields(data []byte, msg string, f func(num protowire.Number, typ protowire.Type, b []byte, v uint64) error) error {
	for len(data) > 0 {
		num, typ, n := protowire.ConsumeTag(data)
		if n < 0 {
			return fmt.Errorf("%s: bad tag: %w", msg, protowire.ParseError(n))
		}
		data = data[n:]
		var b []byte
		var v uint64
		switch typ {
		case protowire.VarintType:
			v, n = protowire.ConsumeVarint(data)
		case protowire.Fixed32Type:
			var x uint32
			x, n = protowire.ConsumeFixed32(data)
			v = uint64(x)
		case protowire.Fixed64Type:
			v, n = protowire.ConsumeFixed64(data)
		case protowire.BytesType:
			b, n = protowire.ConsumeBytes(data)
		default:
			n = protowire.ConsumeFieldValue(num, typ, data)
		}
		if n < 0 {
			return fmt.Errorf("%s field %d: %w", msg, num, protowire.ParseError(n))
		}
		data = data[n:]
		if err := f(num, typ, b, v); err != nil {
			return fmt.Errorf("%s field %d: %w", msg, num, err)
		}
	}
	return nil
}

func want(got, want protowire.Type) error {
	if got != want {
		return fmt.Errorf("wire type %d, want %d", got, want)
	}
	return nil
}

func int64Field(typ protowire.Type, v uint64) (int64, error) {
	return int64(v), want(typ, protowire.VarintType)
}

func stringField(typ protowire.Type, b []byte) (string, error) {
	return string(b), want(typ, protowire.BytesType)
}

func readOpset(data []byte) (OpsetID, error) {
	var o OpsetID
	err := fields(data, "OperatorSetIdProto", func(num protowire.Number, typ protowire.Type, b []byte, v uint64) error {
		var err error
		switch num {
		case 1:
			o.Domain, err = stringField(typ, b)
		case 2:
			o.Version, err = int64Field(typ, v)
		}
		return err
	})
	return o, err
}

func readPair(data []byte) (StringPair, error) {
	var p StringPair
	err := fields(data, "StringStringEntryProto", func(num protowire.Number, typ protowire.Type, b []byte, _ uint64) error {
		var err error
		switch num {
		case 1:
			p.Key, err = stringField(typ, b)
		case 2:
			p.Value, err = stringField(typ, b)
		}
		return err
	})
	return p, err
}

func readGraph(data []byte, g *Graph) error {
	return fields(data, "GraphProto", func(num protowire.Number, typ protowire.Type, b []byte, _ uint64) error {
		var err error
		switch num {
		case 1:
			var n Node
			if err = want(typ, protowire.BytesType); err == nil {
				n, err = readNode(b)
				g.Nodes = append(g.Nodes, n)
			}
		case 2:
			g.Name, err = stringField(typ, b)
		case 5:
			var t Tensor
			if err = want(typ, protowire.BytesType); err == nil {
				t, err = readTensor(b)
				g.Initializers = append(g.Initializers, t)
			}
		case 10:
			g.DocString, err = stringField(typ, b)
		case 11, 12:
			var vi ValueInfo
			if err = want(typ, protowire.BytesType); err == nil {
				vi, err = readValueInfo(b)
				if num == 11 {
					g.Inputs = append(g.Inputs, vi)
				} else {
					g.Outputs = append(g.Outputs, vi)
				}
			}
		}
		return err
	})
}

func readNode(data []byte) (Node, error) {
	var n Node
	err := fields(data, "NodeProto", func(num protowire.Number, typ protowire.Type, b []byte, _ uint64) error {
		var err error
		var s string
		switch num {
		case 1:
			s, err = stringField(typ, b)
			n.Inputs = append(n.Inputs, s)
		case 2:
			s, err = stringField(typ, b)
			n.Outputs = append(n.Outputs, s)
		case 3:
			n.Name, err = stringField(typ, b)
		case 4:
			n.OpType, err = stringField(typ, b)
		case 5:
			var a Attribute
			if err = want(typ, protowire.BytesType); err == nil {
				a, err = readAttribute(b)
				n.Attributes = append(n.Attributes, a)
			}
		case 7:
			n.Domain, err = stringField(typ, b)
		}
		return err
	})
	return n, err
}

func readAttribute(data []byte) (Attribute, error) {
	var a Attribute
	err := fields(data, "AttributeProto", func(num protowire.Number, typ protowire.Type, b []byte, v uint64) error {
		var err error
		switch num {
		case 1:
			a.Name, err = stringField(typ, b)
		case 2:
			a.F = math.Float32frombits(uint32(v))
			err = want(typ, protowire.Fixed32Type)
		case 3:
			a.I, err = int64Field(typ, v)
		case 4:
			a.S, err = []byte(string(b)), want(typ, protowire.BytesType)
		case 7:
			a.Floats, err = appendFloats(a.Floats, typ, b, v)
		case 8:
			a.Ints, err = appendInt64s(a.Ints, typ, b, v)
		case 20:
			var t int64
			t, err = int64Field(typ, v)
			a.Type = AttrType(t)
		}
		return err
	})
	return a, err
}

func readTensor(data []byte) (Tensor, error) {
	var t Tensor
	err := fields(data, "TensorProto", func(num protowire.Number, typ protowire.Type, b []byte, v uint64) error {
		var err error
		switch num {
		case 1:
			t.Dims, err = appendInt64s(t.Dims, typ, b, v)
		case 2:
			var dt int64
			dt, err = int64Field(typ, v)
			t.DataType = ElemType(dt)
		case 4:
			t.FloatData, err = appendFloats(t.FloatData, typ, b, v)
		case 7:
			t.Int64Data, err = appendInt64s(t.Int64Data, typ, b, v)
		case 8:
			t.Name, err = stringField(typ, b)
		case 9:
			t.RawData, err = b, want(typ, protowire.BytesType)
		case 13:
			t.External = true
		case 14:
			var loc int64
			loc, err = int64Field(typ, v)
			t.External = t.External || loc == 1
		}
		return err
	})
	return t, err
}

// appendInt64s reads a repeated int64 field, packed or not.
func appendInt64s(dst []int64, typ protowire.Type, b []byte, v uint64) ([]int64, error) {
	switch typ {
	case protowire.VarintType:
		return append(dst, int64(v)), nil
	case protowire.BytesType:
		for len(b) > 0 {
			x, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return dst, protowire.ParseError(n)
			}
			dst = append(dst, int64(x))
			b = b[n:]
		}
		return dst, nil
	}
	return dst, fmt.Errorf("wire type %d for repeated int64", typ)
}

// appendFloats reads a repeated float field, packed or not.
func appendFloats(dst []float32, typ protowire.Type, b []byte, v uint64) ([]float32, error) {
	switch typ {
	case protowire.Fixed32Type:
		return append(dst, math.Float32frombits(uint32(v))), nil
	case protowire.BytesType:
		if len(b)%4 != 0 {
			return dst, fmt.Errorf("packed floats: %d bytes is not a multiple of 4", len(b))
		}
		dst = append(make([]float32, 0, len(dst)+len(b)/4), dst...)
		for len(b) > 0 {
			x, _ := protowire.ConsumeFixed32(b)
			dst = append(dst, math.Float32frombits(x))
			b = b[4:]
		}
		return dst, nil
	}
	return dst, fmt.Errorf("wire type %d for repeated float", typ)
}

func readValueInfo(data []byte) (ValueInfo, error) {
	var vi ValueInfo
	err := fields(data, "ValueInfoProto", func(num protowire.Number, typ protowire.Type, b []byte, _ uint64) error {
		var err error
		switch num {
		case 1:
			vi.Name, err = stringField(typ, b)
		case 2:
			if err = want(typ, protowire.BytesType); err == nil {
				err = readType(b, &vi)
			}
		case 3:
			vi.Doc, err = stringField(typ, b)
		}
		return err
	})
	return vi, err
}

func readType(data []byte, vi *ValueInfo) error {
	return fields(data, "TypeProto", func(num protowire.Number, typ protowire.Type, b []byte, _ uint64) error {
		switch num {
		case 1:
			vi.Kind = KindTensor
			if err := want(typ, protowire.BytesType); err != nil {
				return err
			}
			return readTensorType(b, vi)
		case 4, 9: // Sequence and Optional: elem_type = 1
			vi.Kind = KindSequence
			if num == 9 {
				vi.Kind = KindOptional
			}
			if err := want(typ, protowire.BytesType); err != nil {
				return err
			}
			return fields(b, "TypeProto.Sequence", func(num protowire.Number, typ protowire.Type, b []byte, _ uint64) error {
				if num != 1 {
					return nil
				}
				return readInner(typ, b, &vi.Elem)
			})
		case 5:
			vi.Kind = KindMap
			if err := want(typ, protowire.BytesType); err != nil {
				return err
			}
			return fields(b, "TypeProto.Map", func(num protowire.Number, typ protowire.Type, b []byte, v uint64) error {
				switch num {
				case 1:
					t, err := int64Field(typ, v)
					vi.KeyType = ElemType(t)
					return err
				case 2:
					return readInner(typ, b, &vi.Elem)
				}
				return nil
			})
		case 8:
			vi.Kind = KindSparseTensor
		}
		return nil
	})
}

// readInner reads a nested TypeProto into *dst.
func readInner(typ protowire.Type, b []byte, dst **ValueInfo) error {
	if err := want(typ, protowire.BytesType); err != nil {
		return err
	}
	var inner ValueInfo
	if err := readType(b, &inner); err != nil {
		return err
	}
	*dst = &inner
	return nil
}

func readTensorType(data []byte, vi *ValueInfo) error {
	return fields(data, "TypeProto.Tensor", func(num protowire.Number, typ protowire.Type, b []byte, v uint64) error {
		switch num {
		case 1:
			t, err := int64Field(typ, v)
			vi.ElemType = ElemType(t)
			return err
		case 2:
			if err := want(typ, protowire.BytesType); err != nil {
				return err
			}
			vi.HasShape = true
			return fields(b, "TensorShapeProto", func(num protowire.Number, typ protowire.Type, b []byte, _ uint64) error {
				if num != 1 {
					return nil
				}
				if err := want(typ, protowire.BytesType); err != nil {
					return err
				}
				d, err := readDim(b)
				vi.Dims = append(vi.Dims, d)
				return err
			})
		}
		return nil
	})
}

func readDim(data []byte) (Dim, error) {
	var d Dim
	err := fields(data, "TensorShapeProto.Dimension", func(num protowire.Number, typ protowire.Type, b []byte, v uint64) error {
		var err error
		switch num {
		case 1:
			d.Value, err = int64Field(typ, v)
			d.Known = true
		case 2:
			d.Param, err = stringField(typ, b)
		}
		return err
	})
	return d, err
}
