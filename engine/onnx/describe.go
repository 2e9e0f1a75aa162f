package onnx

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/benchtop/benchtop/engine"
	"github.com/benchtop/benchtop/engine/tensor"
	"github.com/benchtop/benchtop/store"
	"github.com/benchtop/benchtop/store/onnxpb"
)

// TypeName is the runnable's name in configs.
const TypeName = "onnx"

// Params are the init params of an onnx runner.
type Params struct {
	// Path is the .onnx file. A config's `model: mlp:latest` resolves to it
	// through the store (ModelParams).
	Path string `json:"path"`
	// Method names the one method; default "run".
	Method string `json:"method,omitempty"`
	// Batchable (default true) batches callers' rows along BatchDim of the
	// input and of the output, which the model must leave dynamic.
	Batchable *bool `json:"batchable,omitempty"`
	BatchDim  int   `json:"batch_dim,omitempty"`
	// Output picks one output of a model that has several.
	Output string `json:"output,omitempty"`
	// Spinning (default true, the runtime's own default) keeps the
	// runtime's threads spinning for a moment after each parallel section
	// instead of sleeping, at the price of cores busy-waiting, which other
	// processes on a shared machine may want (false). Whether it pays
	// depends on the machine; BenchmarkLargeMLPSaturation measures both.
	Spinning *bool `json:"spinning,omitempty"`
}

// ModelParams are the init params that run a stored model: its file and its
// signature (method, batchable, batch_dim) as imported.
func ModelParams(m *store.Model) (engine.Params, error) {
	methods := m.Methods()
	if len(methods) != 1 {
		return nil, fmt.Errorf("model %s has %d signatures (%s): the onnx runner serves one", m.Tag(), len(methods), strings.Join(methods, ", "))
	}
	if m.Framework != store.FrameworkONNX {
		return nil, fmt.Errorf("model %s is %q, not %q", m.Tag(), m.Framework, store.FrameworkONNX)
	}
	sig := m.Signatures[methods[0]]
	return engine.Params{"path": m.Path(), "method": methods[0], "batchable": sig.Batchable, "batch_dim": sig.BatchDim}, nil
}

func decodeParams(p engine.Params) (Params, error) {
	var out Params
	if err := p.Decode(&out); err != nil {
		return out, err
	}
	if out.Path == "" {
		return out, fmt.Errorf("init params: path is required (the .onnx file, or `model: name:version` from the store)")
	}
	if out.Method == "" {
		out.Method = "run"
	}
	t := true
	if out.Batchable == nil {
		out.Batchable = &t
	}
	if out.Spinning == nil {
		out.Spinning = &t
	}
	if out.BatchDim < 0 {
		return out, fmt.Errorf("init params: batch_dim %d: want 0 or more", out.BatchDim)
	}
	return out, nil
}

// modelInfo is what a worker needs to know about the model file.
type modelInfo struct {
	params  Params
	data    []byte
	spec    engine.MethodSpec
	in, out onnxpb.ValueInfo
}

// describe reads the model and builds its method. It needs no runtime, so
// a config check can run it on a machine without the library.
func describe(p engine.Params) (*modelInfo, error) {
	params, err := decodeParams(p)
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(params.Path)
	if err != nil {
		return nil, fmt.Errorf("load model: %w", err)
	}
	pb, err := onnxpb.Read(data)
	if err != nil {
		return nil, fmt.Errorf("load model %s: %w", params.Path, err)
	}
	info, err := methodOf(params, pb)
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", params.Path, err)
	}
	info.data = data
	return info, nil
}

func names(vs []onnxpb.ValueInfo) string {
	s := make([]string, len(vs))
	for i, v := range vs {
		s[i] = v.Name + " " + v.Type()
	}
	return strings.Join(s, ", ")
}

func methodOf(p Params, pb *onnxpb.Model) (*modelInfo, error) {
	ins := pb.Graph.GraphInputs()
	if len(ins) != 1 {
		return nil, fmt.Errorf("it has %d inputs (%s), but an onnx runner feeds the model one tensor per call, so it serves single-input models only: fold the other inputs into the graph as initializers, or serve the model from a custom runnable", len(ins), names(ins))
	}
	outs := pb.Graph.Outputs
	var out onnxpb.ValueInfo
	switch {
	case p.Output != "":
		found := false
		for _, o := range outs {
			if o.Name == p.Output {
				out, found = o, true
			}
		}
		if !found {
			return nil, fmt.Errorf("init params: output %q is not an output of the model (outputs: %s)", p.Output, names(outs))
		}
	case len(outs) == 1:
		out = outs[0]
	default:
		return nil, fmt.Errorf("it has %d outputs (%s), and a call returns one tensor: pick one with init param output: NAME", len(outs), names(outs))
	}
	inSpec, err := ioSpec("input", ins[0])
	if err != nil {
		return nil, err
	}
	outSpec, err := ioSpec("output", out)
	if err != nil {
		return nil, err
	}
	spec := engine.MethodSpec{
		Name: p.Method,
		Doc:  fmt.Sprintf("ONNX model %s: %s %s → %s %s", filepath.Base(p.Path), ins[0].Name, ins[0].Type(), out.Name, out.Type()),
		// Unnamed for now, so "input" and "output" (engine.DefaultInputName)
		// as the v2 front end has always called them.
		Inputs:  []tensor.IOSpec{inSpec},
		Outputs: []tensor.IOSpec{outSpec},
	}
	if *p.Batchable {
		spec.Batchable, spec.BatchDim, spec.OutputBatchDim = true, p.BatchDim, p.BatchDim
		for _, side := range []struct {
			what string
			v    onnxpb.ValueInfo
			io   tensor.IOSpec
		}{{"input", ins[0], inSpec}, {"output", out, outSpec}} {
			if side.io.Shape == nil {
				continue
			}
			if p.BatchDim >= len(side.io.Shape) {
				return nil, fmt.Errorf("%s %s %s has no dim %d to batch along: set batch_dim or batchable: false", side.what, side.v.Name, side.v.Type(), p.BatchDim)
			}
			if d := side.io.Shape[p.BatchDim]; d >= 0 {
				return nil, fmt.Errorf("%s %s %s fixes dim %d at %d, so callers' rows cannot be batched along it: export the model with a dynamic batch axis, or set batchable: false", side.what, side.v.Name, side.v.Type(), p.BatchDim, d)
			}
		}
	}
	return &modelInfo{params: p, spec: spec, in: ins[0], out: out}, nil
}

var dtypes = map[onnxpb.ElemType]tensor.DType{
	onnxpb.Float: tensor.Float32, onnxpb.Double: tensor.Float64,
	onnxpb.Int32: tensor.Int32, onnxpb.Int64: tensor.Int64,
	onnxpb.Uint8: tensor.Uint8, onnxpb.Bool: tensor.Bool, onnxpb.String: tensor.String,
}

func ioSpec(what string, v onnxpb.ValueInfo) (tensor.IOSpec, error) {
	if v.Kind != onnxpb.KindTensor {
		return tensor.IOSpec{}, fmt.Errorf("%s %s is a %s; the onnx runner serves tensors only", what, v.Name, v.Kind)
	}
	dt, ok := dtypes[v.ElemType]
	if !ok {
		return tensor.IOSpec{}, fmt.Errorf("%s %s is %s, which benchtop tensors cannot carry (they carry float32, float64, int32, int64, uint8, bool and string)", what, v.Name, v.ElemType)
	}
	shape := v.Shape()
	if shape != nil && len(shape) == 0 {
		return tensor.IOSpec{}, fmt.Errorf("%s %s is a scalar; the onnx runner serves tensors of rank 1 or more", what, v.Name)
	}
	return tensor.IOSpec{Kind: tensor.KindTensor, DType: dt, Shape: shape}, nil
}
