package onnxpb

import (
	"math"

	"google.golang.org/protobuf/encoding/protowire"
)

// Marshal serializes m as a ModelProto. Only the fields this package models
// are written; empty strings, zero numbers and empty lists are left out, as
// proto3 does.
func (m *Model) Marshal() []byte {
	var b []byte
	b = appendVarint(b, 1, uint64(m.IRVersion))
	b = appendString(b, 2, m.ProducerName)
	b = appendString(b, 3, m.ProducerVersion)
	b = appendString(b, 4, m.Domain)
	b = appendVarint(b, 5, uint64(m.ModelVersion))
	b = appendString(b, 6, m.DocString)
	b = appendMessage(b, 7, m.Graph.marshal())
	for _, o := range m.OpsetImports {
		var ob []byte
		ob = appendString(ob, 1, o.Domain)
		ob = protowire.AppendTag(ob, 2, protowire.VarintType)
		ob = protowire.AppendVarint(ob, uint64(o.Version))
		b = appendMessage(b, 8, ob)
	}
	for _, p := range m.Metadata {
		var pb []byte
		pb = appendString(pb, 1, p.Key)
		pb = appendString(pb, 2, p.Value)
		b = appendMessage(b, 14, pb)
	}
	return b
}

func (g *Graph) marshal() []byte {
	var b []byte
	for _, n := range g.Nodes {
		b = appendMessage(b, 1, n.marshal())
	}
	b = appendString(b, 2, g.Name)
	for _, t := range g.Initializers {
		b = appendMessage(b, 5, t.marshal())
	}
	b = appendString(b, 10, g.DocString)
	for _, v := range g.Inputs {
		b = appendMessage(b, 11, v.marshal())
	}
	for _, v := range g.Outputs {
		b = appendMessage(b, 12, v.marshal())
	}
	return b
}

func (n *Node) marshal() []byte {
	var b []byte
	for _, s := range n.Inputs {
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendString(b, s)
	}
	for _, s := range n.Outputs {
		b = protowire.AppendTag(b, 2, protowire.BytesType)
		b = protowire.AppendString(b, s)
	}
	b = appendString(b, 3, n.Name)
	b = appendString(b, 4, n.OpType)
	for _, a := range n.Attributes {
		b = appendMessage(b, 5, a.marshal())
	}
	b = appendString(b, 7, n.Domain)
	return b
}

func (a *Attribute) marshal() []byte {
	var b []byte
	b = appendString(b, 1, a.Name)
	switch a.Type {
	case AttrFloat:
		b = protowire.AppendTag(b, 2, protowire.Fixed32Type)
		b = protowire.AppendFixed32(b, math.Float32bits(a.F))
	case AttrInt:
		b = protowire.AppendTag(b, 3, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(a.I))
	case AttrString:
		b = protowire.AppendTag(b, 4, protowire.BytesType)
		b = protowire.AppendBytes(b, a.S)
	case AttrFloats:
		b = appendPackedFloats(b, 7, a.Floats)
	case AttrInts:
		b = appendPackedInt64s(b, 8, a.Ints)
	}
	b = protowire.AppendTag(b, 20, protowire.VarintType)
	return protowire.AppendVarint(b, uint64(a.Type))
}

func (t *Tensor) marshal() []byte {
	b := make([]byte, 0, 64+4*len(t.FloatData)+len(t.RawData))
	b = appendPackedInt64s(b, 1, t.Dims)
	b = appendVarint(b, 2, uint64(t.DataType))
	b = appendPackedFloats(b, 4, t.FloatData)
	b = appendPackedInt64s(b, 7, t.Int64Data)
	b = appendString(b, 8, t.Name)
	if len(t.RawData) > 0 {
		b = protowire.AppendTag(b, 9, protowire.BytesType)
		b = protowire.AppendBytes(b, t.RawData)
	}
	return b
}

func (v *ValueInfo) marshal() []byte {
	var b []byte
	b = appendString(b, 1, v.Name)
	if t := v.typeProto(); t != nil {
		b = appendMessage(b, 2, t)
	}
	b = appendString(b, 3, v.Doc)
	return b
}

// typeProto is v's TypeProto, nil for a kind it does not write.
func (v *ValueInfo) typeProto() []byte {
	inner := func(e *ValueInfo) []byte {
		if e == nil {
			return nil
		}
		return e.typeProto()
	}
	switch v.Kind {
	case KindTensor:
		var tt []byte
		tt = appendVarint(tt, 1, uint64(v.ElemType))
		if v.HasShape {
			var shape []byte
			for _, d := range v.Dims {
				var db []byte
				if d.Param != "" {
					db = appendString(db, 2, d.Param)
				} else if d.Known {
					db = protowire.AppendTag(db, 1, protowire.VarintType)
					db = protowire.AppendVarint(db, uint64(d.Value))
				}
				shape = appendMessage(shape, 1, db)
			}
			tt = appendMessage(tt, 2, shape)
		}
		return appendMessage(nil, 1, tt)
	case KindSequence, KindOptional:
		num := protowire.Number(4)
		if v.Kind == KindOptional {
			num = 9
		}
		return appendMessage(nil, num, appendMessage(nil, 1, inner(v.Elem)))
	case KindMap:
		m := appendVarint(nil, 1, uint64(v.KeyType))
		m = appendMessage(m, 2, inner(v.Elem))
		return appendMessage(nil, 5, m)
	}
	return nil
}

func appendVarint(b []byte, num protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

func appendString(b []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

// appendMessage writes a nested message, even an empty one: an empty
// message is how a Dimension of unknown size or a shape of rank 0 is said.
func appendMessage(b []byte, num protowire.Number, msg []byte) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, msg)
}

func appendPackedInt64s(b []byte, num protowire.Number, vs []int64) []byte {
	if len(vs) == 0 {
		return b
	}
	n := 0
	for _, v := range vs {
		n += protowire.SizeVarint(uint64(v))
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(n))
	for _, v := range vs {
		b = protowire.AppendVarint(b, uint64(v))
	}
	return b
}

func appendPackedFloats(b []byte, num protowire.Number, vs []float32) []byte {
	if len(vs) == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(4*len(vs)))
	for _, v := range vs {
		b = protowire.AppendFixed32(b, math.Float32bits(v))
	}
	return b
}
