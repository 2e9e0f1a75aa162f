package onnx

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
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
	// inputs and of the outputs. Every output, and at least one input, must
	// let that dim vary; an input the model fixes there is unbatched.
	Batchable *bool `json:"batchable,omitempty"`
	BatchDim  int   `json:"batch_dim,omitempty"`
	// Outputs, when set, are the outputs the method exposes, in this order
	// (default: all of the model's, in its order). The runtime then
	// computes only what they need, and an output benchtop cannot carry
	// can be left out. Output is the one-name form kept from when a method
	// had one output: output: probs is outputs: [probs].
	Outputs []string `json:"outputs,omitempty"`
	Output  string   `json:"output,omitempty"`
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
	params Params
	data   []byte
	spec   engine.MethodSpec
	// ins are every input the caller feeds, outs the outputs the method
	// exposes: the model's value infos, in the spec's order.
	ins, outs []onnxpb.ValueInfo
	// same lists the input dims that share a symbolic name, which ONNX
	// says are one size (input_ids and attention_mask [batch, seq]).
	same []symbol
}

// symbol is a dim_param and the input dims it names, but for the batch
// dim of batched inputs, which the batch's rows already make agree.
type symbol struct {
	name string
	dims []dimRef
}

type dimRef struct{ in, dim int }

// symbols finds the dim_params that name more than one dim of ins.
func symbols(spec *engine.MethodSpec, ins []onnxpb.ValueInfo) []symbol {
	var out []symbol
	for i, v := range ins {
		for d, dim := range v.Dims {
			if dim.Param == "" || (spec.Batchable && !spec.Inputs[i].Unbatched && d == spec.BatchDim) {
				continue
			}
			k := slices.IndexFunc(out, func(s symbol) bool { return s.name == dim.Param })
			if k < 0 {
				out = append(out, symbol{name: dim.Param})
				k = len(out) - 1
			}
			out[k].dims = append(out[k].dims, dimRef{i, d})
		}
	}
	return slices.DeleteFunc(out, func(s symbol) bool { return len(s.dims) < 2 })
}

// inNames and outNames are what the session is opened with.
func (m *modelInfo) inNames() []string  { return valueNames(m.ins) }
func (m *modelInfo) outNames() []string { return valueNames(m.outs) }

func valueNames(vs []onnxpb.ValueInfo) []string {
	s := make([]string, len(vs))
	for i, v := range vs {
		s[i] = v.Name
	}
	return s
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

// names lists value infos as "input_ids int64[batch seq], …" for messages.
func names(vs []onnxpb.ValueInfo) string {
	s := make([]string, len(vs))
	for i, v := range vs {
		s[i] = v.Name + " " + v.Type()
	}
	return strings.Join(s, ", ")
}

// methodOf builds the method from the model: every input the caller must
// feed, and every output (or those the params pick), each under the
// model's own name and dtype.
//
// Graph inputs that have an initializer are left out: they are weights
// with a default (older exporters list every weight among the inputs), and
// a caller who could send them would replace the model's weights for the
// whole batch, which no front end should offer.
//
// For a batchable method, an input the model lets vary along the batch dim
// (a symbolic or unknown size there, or an unknown rank) carries callers'
// rows; an input that it fixes there (or that has no such dim) is
// unbatched: passed once per batch, so that only requests with identical
// values share one (a threshold, a table). At least one input must be
// batched, since the rows are counted on them. Every output must vary along
// the batch dim: one the model fixes there would go whole to every caller
// of a batch, and an export that fixed a dim by mistake would then hand
// each caller the others' rows.
func methodOf(p Params, pb *onnxpb.Model) (*modelInfo, error) {
	ins := pb.Graph.GraphInputs()
	if len(ins) == 0 {
		return nil, fmt.Errorf("it has no input to feed (every graph input has an initializer), so a request has nothing to carry: serve it from a custom runnable")
	}
	outs, err := exposed(p, pb.Graph.Outputs)
	if err != nil {
		return nil, err
	}
	if err := store.CheckTensors(ins, nil); err != nil {
		return nil, err
	}
	spec := engine.MethodSpec{
		Name:    p.Method,
		Doc:     fmt.Sprintf("ONNX model %s: %s → %s", filepath.Base(p.Path), names(ins), names(outs)),
		Inputs:  make(tensor.IOSpecs, len(ins)),
		Outputs: make(tensor.IOSpecs, len(outs)),
	}
	for i, v := range ins {
		if spec.Inputs[i], err = ioSpec("input", v); err != nil {
			return nil, err
		}
	}
	for i, v := range outs {
		if spec.Outputs[i], err = outSpec(v); err != nil {
			if p.Output == "" && p.Outputs == nil {
				err = withoutHint(err, outs)
			}
			return nil, err
		}
	}
	if *p.Batchable {
		if err := batchAlong(&spec, p.BatchDim, ins, outs); err != nil {
			return nil, err
		}
	}
	return &modelInfo{params: p, spec: spec, ins: ins, outs: outs, same: symbols(&spec, ins)}, nil
}

// outSpec is ioSpec for an output, refusing one that is not a tensor.
func outSpec(v onnxpb.ValueInfo) (tensor.IOSpec, error) {
	if err := store.CheckTensors(nil, []onnxpb.ValueInfo{v}); err != nil {
		return tensor.IOSpec{}, err
	}
	return ioSpec("output", v)
}

// withoutHint adds to err, about one of outs, how to serve the others.
func withoutHint(err error, outs []onnxpb.ValueInfo) error {
	var keep []string
	for _, o := range outs {
		if _, err := outSpec(o); err == nil {
			keep = append(keep, o.Name)
		}
	}
	if len(keep) == 0 {
		return err
	}
	return fmt.Errorf("%w; or serve the other outputs alone with init param outputs: [%s]", err, strings.Join(keep, ", "))
}

// exposed picks the outputs the method returns: all of them, or those
// the params name.
func exposed(p Params, all []onnxpb.ValueInfo) ([]onnxpb.ValueInfo, error) {
	want := p.Outputs
	switch {
	case p.Output != "" && p.Outputs != nil:
		return nil, fmt.Errorf("init params: output and outputs both given: keep outputs (output: NAME is outputs: [NAME])")
	case p.Output != "":
		want = []string{p.Output}
	case p.Outputs == nil:
		if len(all) == 0 {
			return nil, fmt.Errorf("it has no output")
		}
		return all, nil
	case len(p.Outputs) == 0:
		return nil, fmt.Errorf("init params: outputs is empty: name at least one of %s, or leave it out for all", names(all))
	}
	picked := make([]onnxpb.ValueInfo, 0, len(want))
	for i, name := range want {
		j := slices.IndexFunc(all, func(v onnxpb.ValueInfo) bool { return v.Name == name })
		if j < 0 {
			return nil, fmt.Errorf("init params: output %q is not an output of the model (outputs: %s)", name, names(all))
		}
		if slices.Contains(want[:i], name) {
			return nil, fmt.Errorf("init params: outputs names %q twice", name)
		}
		picked = append(picked, all[j])
	}
	return picked, nil
}

// batchAlong makes spec batchable along dim: see methodOf for the rule.
func batchAlong(spec *engine.MethodSpec, dim int, ins, outs []onnxpb.ValueInfo) error {
	spec.Batchable, spec.BatchDim, spec.OutputBatchDim = true, dim, dim
	batched := false
	for i, v := range ins {
		spec.Inputs[i].Unbatched = !v.VariesAt(dim)
		batched = batched || !spec.Inputs[i].Unbatched
	}
	if !batched {
		err := notBatched("input", ins[0], spec.Inputs[0].Shape, dim)
		if len(ins) > 1 {
			err = fmt.Errorf("no input lets dim %d vary, so nothing counts a request's rows; the first: %w", dim, err)
		}
		return err
	}
	for i, v := range outs {
		if err := notBatched("output", v, spec.Outputs[i].Shape, dim); err != nil {
			return err
		}
	}
	return nil
}

// notBatched says why a value of shape cannot be cut into rows along dim,
// nil if it can.
func notBatched(what string, v onnxpb.ValueInfo, shape []int, dim int) error {
	switch {
	case shape == nil:
		return nil // rank unknown: the runtime will tell
	case dim >= len(shape):
		return fmt.Errorf("%s %s %s has no dim %d to batch along: set batch_dim or batchable: false", what, v.Name, v.Type(), dim)
	case shape[dim] >= 0:
		return fmt.Errorf("%s %s %s fixes dim %d at %d, so callers' rows cannot be batched along it: export the model with a dynamic batch axis, or set batchable: false", what, v.Name, v.Type(), dim, shape[dim])
	}
	return nil
}

var dtypes = map[onnxpb.ElemType]tensor.DType{
	onnxpb.Float: tensor.Float32, onnxpb.Double: tensor.Float64,
	onnxpb.Int32: tensor.Int32, onnxpb.Int64: tensor.Int64,
	onnxpb.Uint8: tensor.Uint8, onnxpb.Bool: tensor.Bool, onnxpb.String: tensor.String,
}

// ioSpec is v as a slot of the method, under the model's name.
func ioSpec(what string, v onnxpb.ValueInfo) (tensor.IOSpec, error) {
	dt, ok := dtypes[v.ElemType]
	if !ok {
		return tensor.IOSpec{}, fmt.Errorf("%s %q is %s, which benchtop tensors cannot carry (they carry float32, float64, int32, int64, uint8, bool and string): export the model so that %q is one of those, or cast it inside the graph", what, v.Name, v.Type(), v.Name)
	}
	shape := v.Shape()
	if shape != nil && len(shape) == 0 {
		// The Go bindings create and read tensors of rank 1 or more only.
		return tensor.IOSpec{}, fmt.Errorf("%s %q is a scalar (shape []), which the ONNX Runtime Go bindings cannot pass: export it with shape [1]", what, v.Name)
	}
	return tensor.IOSpec{Name: v.Name, Kind: tensor.KindTensor, DType: dt, Shape: shape}, nil
}
