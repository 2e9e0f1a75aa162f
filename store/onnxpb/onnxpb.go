package onnxpb

import (
	"fmt"
	"strconv"
	"strings"
)

// ElemType is TensorProto.DataType: the element type of a tensor.
type ElemType int32

// The element types of onnx.proto3.
const (
	Undefined  ElemType = 0
	Float      ElemType = 1
	Uint8      ElemType = 2
	Int8       ElemType = 3
	Uint16     ElemType = 4
	Int16      ElemType = 5
	Int32      ElemType = 6
	Int64      ElemType = 7
	String     ElemType = 8
	Bool       ElemType = 9
	Float16    ElemType = 10
	Double     ElemType = 11
	Uint32     ElemType = 12
	Uint64     ElemType = 13
	Complex64  ElemType = 14
	Complex128 ElemType = 15
	BFloat16   ElemType = 16
)

var elemNames = map[ElemType]string{
	Undefined: "undefined", Float: "float32", Uint8: "uint8", Int8: "int8",
	Uint16: "uint16", Int16: "int16", Int32: "int32", Int64: "int64",
	String: "string", Bool: "bool", Float16: "float16", Double: "float64",
	Uint32: "uint32", Uint64: "uint64", Complex64: "complex64",
	Complex128: "complex128", BFloat16: "bfloat16",
}

// String is the numpy-style name (float32, int64, string, …), or
// "elem_type(N)" for a type this package does not name (the float8 family).
func (t ElemType) String() string {
	if s, ok := elemNames[t]; ok {
		return s
	}
	return "elem_type(" + strconv.Itoa(int(t)) + ")"
}

// ParseElemType is the inverse of String.
func ParseElemType(s string) (ElemType, error) {
	for t, name := range elemNames {
		if name == s {
			return t, nil
		}
	}
	if n, ok := strings.CutPrefix(s, "elem_type("); ok {
		if v, err := strconv.Atoi(strings.TrimSuffix(n, ")")); err == nil {
			return ElemType(v), nil
		}
	}
	return Undefined, fmt.Errorf("unknown element type %q", s)
}

// TypeKind says what a graph input or output carries; benchtop serves tensors.
type TypeKind uint8

const (
	KindUnknown TypeKind = iota
	KindTensor
	KindSequence
	KindMap
	KindOptional
	KindSparseTensor
)

func (k TypeKind) String() string {
	return [...]string{"unknown", "tensor", "sequence", "map", "optional", "sparse tensor"}[k]
}

// Model is ModelProto.
type Model struct {
	IRVersion       int64
	OpsetImports    []OpsetID
	ProducerName    string
	ProducerVersion string
	Domain          string
	ModelVersion    int64
	DocString       string
	Graph           Graph
	Metadata        []StringPair
}

// OpsetID is OperatorSetIdProto; Domain "" is the default ai.onnx domain.
type OpsetID struct {
	Domain  string
	Version int64
}

// StringPair is StringStringEntryProto (metadata_props).
type StringPair struct{ Key, Value string }

// Graph is GraphProto.
type Graph struct {
	Name         string
	Nodes        []Node
	Initializers []Tensor
	DocString    string
	Inputs       []ValueInfo
	Outputs      []ValueInfo
}

// Node is NodeProto.
type Node struct {
	Inputs, Outputs []string
	Name            string
	OpType          string
	Domain          string
	Attributes      []Attribute
}

// AttrType is AttributeProto.AttributeType, for the kinds written here.
type AttrType int32

const (
	AttrFloat   AttrType = 1
	AttrInt     AttrType = 2
	AttrString  AttrType = 3
	AttrFloats  AttrType = 6
	AttrInts    AttrType = 7
	AttrStrings AttrType = 8
)

// Attribute is AttributeProto, limited to scalars and lists of them.
type Attribute struct {
	Name   string
	Type   AttrType
	F      float32
	I      int64
	S      []byte
	Floats []float32
	Ints   []int64
}

// Tensor is TensorProto with its data as float_data, int64_data or raw_data
// (little-endian). Reading keeps RawData as a view of the input bytes.
type Tensor struct {
	Name      string
	DataType  ElemType
	Dims      []int64
	FloatData []float32
	Int64Data []int64
	RawData   []byte
	// External is set when the data lives in a separate file.
	External bool
}

// ValueInfo is ValueInfoProto: a named graph input or output.
type ValueInfo struct {
	Name string
	Kind TypeKind
	// ElemType and Dims are set for tensors. HasShape is false when the
	// model leaves the rank itself unknown.
	ElemType ElemType
	HasShape bool
	Dims     []Dim
	// Elem is what a sequence or an optional holds, and a map's value type;
	// KeyType is a map's key type. They are read so that a message can say
	// what a value that is not a tensor is (scikit-learn's ZipMap returns
	// a sequence of maps from int64 to float32), and written so that tests
	// can build such a model.
	Elem    *ValueInfo
	KeyType ElemType
	Doc     string
}

// Dim is one dimension: a fixed size, a symbolic name, or neither (unknown).
type Dim struct {
	Value int64 // valid when Param == "" and Known
	Param string
	Known bool // Value was given
}

// Size is the dim as benchtop shapes write it: the fixed size, or -1 for a
// symbolic or unknown dim.
func (d Dim) Size() int {
	if d.Param != "" || !d.Known || d.Value < 0 {
		return -1
	}
	return int(d.Value)
}

// Shape is the dims as sizes with -1 for dynamic ones; nil when the rank is
// unknown.
func (v ValueInfo) Shape() []int {
	if !v.HasShape {
		return nil
	}
	s := make([]int, len(v.Dims))
	for i, d := range v.Dims {
		s[i] = d.Size()
	}
	return s
}

// VariesAt reports whether the model lets dim vary: true when the dim is
// symbolic or unknown, and when the rank itself is unknown (only the
// runtime can tell then); false when the dim is fixed or the rank is
// known and has no such dim. A value that varies along the batch dim can
// carry several callers' rows.
func (v ValueInfo) VariesAt(dim int) bool {
	if !v.HasShape {
		return true
	}
	return dim >= 0 && dim < len(v.Dims) && v.Dims[dim].Size() < 0
}

// Type describes a value info as users read it, e.g. "float32[N 64]", or
// for values that are not tensors "seq(map(int64, float32))".
func (v ValueInfo) Type() string {
	switch v.Kind {
	case KindTensor:
	case KindSequence:
		return "seq(" + v.Elem.inner() + ")"
	case KindOptional:
		return "optional(" + v.Elem.inner() + ")"
	case KindMap:
		return "map(" + v.KeyType.String() + ", " + v.Elem.inner() + ")"
	default:
		return v.Kind.String()
	}
	if !v.HasShape {
		return v.ElemType.String() + "[?]"
	}
	parts := make([]string, len(v.Dims))
	for i, d := range v.Dims {
		switch {
		case d.Param != "":
			parts[i] = d.Param
		case d.Known:
			parts[i] = strconv.FormatInt(d.Value, 10)
		default:
			parts[i] = "?"
		}
	}
	return v.ElemType.String() + "[" + strings.Join(parts, " ") + "]"
}

// inner is a nested type as Type writes it, a tensor of unknown shape by
// its element type alone ("float32"), "?" when the model does not say.
func (v *ValueInfo) inner() string {
	switch {
	case v == nil:
		return "?"
	case v.Kind == KindTensor && !v.HasShape:
		return v.ElemType.String()
	}
	return v.Type()
}

// FixedDim returns a known dim of size n.
func FixedDim(n int64) Dim { return Dim{Value: n, Known: true} }

// SymbolicDim returns a dim named p (dim_param), such as "N" for a batch.
func SymbolicDim(p string) Dim { return Dim{Param: p} }

// TensorInfo builds a tensor ValueInfo.
func TensorInfo(name string, t ElemType, dims ...Dim) ValueInfo {
	return ValueInfo{Name: name, Kind: KindTensor, ElemType: t, HasShape: true, Dims: dims}
}

// SequenceOf builds a sequence ValueInfo holding elem (its name unused).
func SequenceOf(name string, elem ValueInfo) ValueInfo {
	return ValueInfo{Name: name, Kind: KindSequence, Elem: &elem}
}

// MapOf builds a map ValueInfo from key to value (its name unused), such as
// ZipMap's map(int64, float32): MapOf("", Int64, ValueInfo{Kind:
// KindTensor, ElemType: Float}).
func MapOf(name string, key ElemType, value ValueInfo) ValueInfo {
	return ValueInfo{Name: name, Kind: KindMap, KeyType: key, Elem: &value}
}

// GraphInputs are the graph inputs a caller feeds: ONNX (IR < 4 notably)
// lists initializers among the inputs too, and those have defaults.
func (g *Graph) GraphInputs() []ValueInfo {
	inits := make(map[string]bool, len(g.Initializers))
	for _, t := range g.Initializers {
		inits[t.Name] = true
	}
	var out []ValueInfo
	for _, in := range g.Inputs {
		if !inits[in.Name] {
			out = append(out, in)
		}
	}
	return out
}

// Opset returns the version imported for the default domain, 0 if none.
func (m *Model) Opset() int64 {
	for _, o := range m.OpsetImports {
		if o.Domain == "" || o.Domain == "ai.onnx" {
			return o.Version
		}
	}
	return 0
}
