package onnxpb_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/benchtop/benchtop/engine/enginetest"
	"github.com/benchtop/benchtop/store/onnxpb"
)

func sample() *onnxpb.Model {
	return &onnxpb.Model{
		IRVersion:    8,
		OpsetImports: []onnxpb.OpsetID{{Version: 13}, {Domain: "com.example", Version: 2}},
		ProducerName: "test",
		Graph: onnxpb.Graph{
			Name: "g",
			Nodes: []onnxpb.Node{
				{Name: "mm", OpType: "MatMul", Inputs: []string{"x", "w"}, Outputs: []string{"y"}},
				{Name: "sm", OpType: "Softmax", Inputs: []string{"y"}, Outputs: []string{"p"},
					Attributes: []onnxpb.Attribute{{Name: "axis", Type: onnxpb.AttrInt, I: -1}, {Name: "fs", Type: onnxpb.AttrFloats, Floats: []float32{1.5, -2}}}},
			},
			Initializers: []onnxpb.Tensor{
				{Name: "w", DataType: onnxpb.Float, Dims: []int64{3, 2}, FloatData: []float32{1, 2, 3, 4, 5, 6}},
				{Name: "r", DataType: onnxpb.Float, Dims: []int64{1}, RawData: []byte{0, 0, 128, 63}},
			},
			Inputs: []onnxpb.ValueInfo{
				onnxpb.TensorInfo("x", onnxpb.Float, onnxpb.SymbolicDim("N"), onnxpb.FixedDim(3)),
				// Older exporters list initializers among inputs.
				onnxpb.TensorInfo("w", onnxpb.Float, onnxpb.FixedDim(3), onnxpb.FixedDim(2)),
			},
			Outputs: []onnxpb.ValueInfo{onnxpb.TensorInfo("p", onnxpb.Float, onnxpb.SymbolicDim("N"), onnxpb.Dim{})},
		},
		Metadata: []onnxpb.StringPair{{Key: "k", Value: "v"}},
	}
}

func TestRoundTrip(t *testing.T) {
	in := sample()
	got, err := onnxpb.Read(in.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	if got.IRVersion != 8 || got.Opset() != 13 || got.ProducerName != "test" || got.Graph.Name != "g" {
		t.Fatalf("header: %+v", got)
	}
	if len(got.Metadata) != 1 || got.Metadata[0] != (onnxpb.StringPair{Key: "k", Value: "v"}) {
		t.Fatalf("metadata %v", got.Metadata)
	}
	if len(got.Graph.Nodes) != 2 || got.Graph.Nodes[1].OpType != "Softmax" {
		t.Fatalf("nodes %+v", got.Graph.Nodes)
	}
	attrs := got.Graph.Nodes[1].Attributes
	if attrs[0].I != -1 || attrs[0].Type != onnxpb.AttrInt || !slices.Equal(attrs[1].Floats, []float32{1.5, -2}) {
		t.Fatalf("attributes %+v", attrs)
	}
	w := got.Graph.Initializers[0]
	if !slices.Equal(w.Dims, []int64{3, 2}) || !slices.Equal(w.FloatData, []float32{1, 2, 3, 4, 5, 6}) {
		t.Fatalf("float_data initializer %+v", w)
	}
	if r := got.Graph.Initializers[1]; !bytes.Equal(r.RawData, []byte{0, 0, 128, 63}) {
		t.Fatalf("raw_data initializer %+v", r)
	}
	ins := got.Graph.GraphInputs()
	if len(ins) != 1 || ins[0].Name != "x" {
		t.Fatalf("graph inputs %+v: an initializer listed as input is not fed by callers", ins)
	}
	if s := ins[0].Shape(); !slices.Equal(s, []int{-1, 3}) {
		t.Fatalf("input shape %v", s)
	}
	out := got.Graph.Outputs[0]
	if s := out.Shape(); !slices.Equal(s, []int{-1, -1}) || out.Type() != "float32[N ?]" {
		t.Fatalf("output %v %s: an unknown dim reads as -1", s, out.Type())
	}
}

func TestReadRefusesNonModels(t *testing.T) {
	valid := sample().Marshal()
	cases := []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"png", []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")},
		{"text", []byte("hello, this is not a model")},
		{"truncated", valid[:len(valid)/2]},
		{"no graph", []byte{0x08, 0x08}}, // ir_version 8 and nothing else
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := onnxpb.Read(c.data)
			if err == nil || !strings.Contains(err.Error(), "not a readable ONNX model") {
				t.Fatalf("got %v, want a not-a-model error", err)
			}
		})
	}
}

// ortTestData is the test models directory of the onnxruntime_go module:
// ONNX files exported by PyTorch and scikit-learn, from outside benchtop.
func ortTestData(t *testing.T) string {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/yalue/onnxruntime_go").Output()
	dir := filepath.Join(strings.TrimSpace(string(out)), "test_data")
	if err != nil || strings.TrimSpace(string(out)) == "" {
		enginetest.Needs(t, "the onnxruntime_go module's test models", "go mod download github.com/yalue/onnxruntime_go", fmt.Errorf("go list -m printed no folder (%v)", err))
	}
	return dir
}

func TestReadForeignModels(t *testing.T) {
	dir := ortTestData(t)
	cases := []struct {
		file    string
		inputs  string
		outputs string
	}{
		{"example_dynamic_axes.onnx", "input_vectors float32[input_vectors_dynamic_axes_1 10]", "output_scalars float32[output_scalars_dynamic_axes_1]"},
		{"example_several_inputs_and_outputs.onnx", "input 1 int32[2 5 2 5], input 2 float32[2 3 20], input 3 bfloat16[9]", "output 1 int64[10 10], output 2 float64[1 2 3 4 5]"},
		{"sklearn_randomforest.onnx", "X float32[? 4]", "output_label int64[?], output_probability seq(map(int64, float32))"},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			path := filepath.Join(dir, c.file)
			if _, err := os.Stat(path); err != nil {
				t.Fatalf("%s is not in the onnxruntime_go release go.mod names: %v", path, err)
			}
			m, err := onnxpb.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if got := describe(m.Graph.GraphInputs()); got != c.inputs {
				t.Errorf("inputs %q, want %q", got, c.inputs)
			}
			if got := describe(m.Graph.Outputs); got != c.outputs {
				t.Errorf("outputs %q, want %q", got, c.outputs)
			}
		})
	}
}

func describe(vs []onnxpb.ValueInfo) string {
	s := make([]string, len(vs))
	for i, v := range vs {
		s[i] = v.Name + " " + v.Type()
	}
	return strings.Join(s, ", ")
}

// TestTypesThatAreNotTensors: a ZipMap's seq(map(int64, float32)) and an
// optional tensor survive a write and a read, and say what they are.
func TestTypesThatAreNotTensors(t *testing.T) {
	m := sample()
	zipmap := onnxpb.SequenceOf("probabilities", onnxpb.MapOf("", onnxpb.Int64, onnxpb.ValueInfo{Kind: onnxpb.KindTensor, ElemType: onnxpb.Float}))
	opt := onnxpb.ValueInfo{Name: "maybe", Kind: onnxpb.KindOptional, Elem: &onnxpb.ValueInfo{Kind: onnxpb.KindTensor, ElemType: onnxpb.Int64, HasShape: true, Dims: []onnxpb.Dim{onnxpb.SymbolicDim("N")}}}
	m.Graph.Outputs = append(m.Graph.Outputs, zipmap, opt)
	got, err := onnxpb.Read(m.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	want := "p float32[N ?], probabilities seq(map(int64, float32)), maybe optional(int64[N])"
	if d := describe(got.Graph.Outputs); d != want {
		t.Fatalf("outputs %q, want %q", d, want)
	}
	if k := got.Graph.Outputs[1].Kind; k != onnxpb.KindSequence {
		t.Fatalf("kind %v", k)
	}
}

func TestVariesAt(t *testing.T) {
	cases := []struct {
		v    onnxpb.ValueInfo
		dim  int
		want bool
	}{
		{onnxpb.TensorInfo("x", onnxpb.Float, onnxpb.SymbolicDim("N"), onnxpb.FixedDim(4)), 0, true},
		{onnxpb.TensorInfo("x", onnxpb.Float, onnxpb.SymbolicDim("N"), onnxpb.FixedDim(4)), 1, false},
		{onnxpb.TensorInfo("x", onnxpb.Float, onnxpb.Dim{}, onnxpb.FixedDim(4)), 0, true},
		{onnxpb.TensorInfo("x", onnxpb.Float, onnxpb.FixedDim(1)), 0, false},
		{onnxpb.TensorInfo("x", onnxpb.Float, onnxpb.SymbolicDim("N")), 1, false},
		{onnxpb.TensorInfo("x", onnxpb.Float), 0, false},
		{onnxpb.ValueInfo{Name: "x", Kind: onnxpb.KindTensor, ElemType: onnxpb.Float}, 3, true},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%s/%d", c.v.Type(), c.dim), func(t *testing.T) {
			if got := c.v.VariesAt(c.dim); got != c.want {
				t.Fatalf("VariesAt(%d) = %v, want %v", c.dim, got, c.want)
			}
		})
	}
}

func TestElemTypeNames(t *testing.T) {
	for _, et := range []onnxpb.ElemType{onnxpb.Float, onnxpb.Double, onnxpb.Int64, onnxpb.String, onnxpb.Bool, onnxpb.Float16, 19} {
		t.Run(et.String(), func(t *testing.T) {
			got, err := onnxpb.ParseElemType(et.String())
			if err != nil || got != et {
				t.Fatalf("ParseElemType(%q) = %v, %v", et.String(), got, err)
			}
		})
	}
}
