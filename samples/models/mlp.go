package models

import (
	"context"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"math"
	"strconv"
	"sync"

	"github.com/benchtop/benchtop/store"
	"github.com/benchtop/benchtop/store/onnxpb"
)

// MLP is a generated multi-layer perceptron classifier and its ONNX form.
// It is shared by every caller: do not modify it.
type MLP struct {
	Name string
	// Sizes are the layer widths, input first: {64, 256, 256, 10}.
	Sizes []int
	// Weights[l] is Sizes[l]×Sizes[l+1], row-major: MatMul's right operand.
	Weights [][]float32
	Biases  [][]float32
	// Input and Output name the graph's tensors: float32 [N, Sizes[0]] and
	// float32 [N, Sizes[last]] (softmax probabilities), N symbolic.
	Input, Output string
	// ONNX is the serialized model.
	ONNX []byte
}

// In is the input width, Out the number of classes.
func (m *MLP) In() int  { return m.Sizes[0] }
func (m *MLP) Out() int { return m.Sizes[len(m.Sizes)-1] }

// recipes say how each sample is generated; raw picks raw_data over
// float_data for the initializers, so both encodings are exercised.
var recipes = map[string]struct {
	sizes []int
	raw   bool
}{
	"mlp-small": {[]int{64, 256, 256, 10}, false},
	"mlp-large": {[]int{256, 1024, 1024, 10}, true},
}

func generate(name string) *MLP {
	r := recipes[name]
	return newMLP(name, r.sizes, r.raw)
}

var (
	small = sync.OnceValue(func() *MLP { return generate("mlp-small") })
	large = sync.OnceValue(func() *MLP { return generate("mlp-large") })
)

// Small is mlp-small: [N,64] → 256 → 256 → 10. Its initializers are written
// as float_data.
func Small() *MLP { return small() }

// Large is mlp-large: [N,256] → 1024 → 1024 → 10 (about 5 MB). Its
// initializers are written as raw_data.
func Large() *MLP { return large() }

// All is every sample MLP, small first.
func All() []*MLP { return []*MLP{Small(), Large()} }

// rng is splitmix64: tiny, and fixed forever, unlike math/rand's streams,
// so the weights (and the .onnx bytes) never change between Go releases.
type rng struct{ s uint64 }

func (r *rng) next() uint64 {
	r.s += 0x9e3779b97f4a7c15
	z := r.s
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// uniform returns a float in [-a, a).
func (r *rng) uniform(a float64) float32 {
	return float32((float64(r.next()>>11)/(1<<53)*2 - 1) * a)
}

func newMLP(name string, sizes []int, raw bool) *MLP {
	h := fnv.New64a()
	h.Write([]byte(name))
	r := &rng{s: h.Sum64()}
	m := &MLP{Name: name, Sizes: sizes, Input: "x", Output: "probs"}
	for l := 0; l+1 < len(sizes); l++ {
		in, out := sizes[l], sizes[l+1]
		// He-uniform, so activations keep their scale through the ReLUs and
		// the softmax is neither flat nor one-hot.
		a := math.Sqrt(6 / float64(in))
		w := make([]float32, in*out)
		for i := range w {
			w[i] = r.uniform(a)
		}
		b := make([]float32, out)
		for i := range b {
			b[i] = r.uniform(0.1)
		}
		m.Weights = append(m.Weights, w)
		m.Biases = append(m.Biases, b)
	}
	m.ONNX = m.model(raw).Marshal()
	return m
}

func (m *MLP) model(raw bool) *onnxpb.Model {
	g := onnxpb.Graph{
		Name:    m.Name,
		Inputs:  []onnxpb.ValueInfo{onnxpb.TensorInfo(m.Input, onnxpb.Float, onnxpb.SymbolicDim("N"), onnxpb.FixedDim(int64(m.In())))},
		Outputs: []onnxpb.ValueInfo{onnxpb.TensorInfo(m.Output, onnxpb.Float, onnxpb.SymbolicDim("N"), onnxpb.FixedDim(int64(m.Out())))},
	}
	init := func(name string, dims []int64, data []float32) onnxpb.Tensor {
		t := onnxpb.Tensor{Name: name, DataType: onnxpb.Float, Dims: dims}
		if raw {
			t.RawData = make([]byte, 4*len(data))
			for i, v := range data {
				binary.LittleEndian.PutUint32(t.RawData[4*i:], math.Float32bits(v))
			}
		} else {
			t.FloatData = data
		}
		return t
	}
	prev := m.Input
	layers := len(m.Weights)
	for l := range layers {
		w, b := "w"+strconv.Itoa(l), "b"+strconv.Itoa(l)
		g.Initializers = append(g.Initializers,
			init(w, []int64{int64(m.Sizes[l]), int64(m.Sizes[l+1])}, m.Weights[l]),
			init(b, []int64{int64(m.Sizes[l+1])}, m.Biases[l]))
		mm, add := "matmul"+strconv.Itoa(l), "add"+strconv.Itoa(l)
		g.Nodes = append(g.Nodes,
			onnxpb.Node{Name: mm, OpType: "MatMul", Inputs: []string{prev, w}, Outputs: []string{mm}},
			onnxpb.Node{Name: add, OpType: "Add", Inputs: []string{mm, b}, Outputs: []string{add}})
		prev = add
		if l < layers-1 {
			relu := "relu" + strconv.Itoa(l)
			g.Nodes = append(g.Nodes, onnxpb.Node{Name: relu, OpType: "Relu", Inputs: []string{prev}, Outputs: []string{relu}})
			prev = relu
		}
	}
	g.Nodes = append(g.Nodes, onnxpb.Node{
		Name: "softmax", OpType: "Softmax", Inputs: []string{prev}, Outputs: []string{m.Output},
		Attributes: []onnxpb.Attribute{{Name: "axis", Type: onnxpb.AttrInt, I: -1}},
	})
	return &onnxpb.Model{
		IRVersion:       8,
		OpsetImports:    []onnxpb.OpsetID{{Version: 13}},
		ProducerName:    "benchtop",
		ProducerVersion: "samples/models",
		DocString:       fmt.Sprintf("sample MLP classifier %v with ReLU and softmax; deterministic weights", m.Sizes),
		Graph:           g,
		Metadata:        []onnxpb.StringPair{{Key: "benchtop.sample", Value: m.Name}},
	}
}

// Forward computes the model in Go (float64 accumulation) for rows of
// x, which holds rows × In() values; it returns rows × Out() probabilities.
// Tests use it as the reference for what ONNX Runtime returns.
func (m *MLP) Forward(x []float32) ([]float32, error) {
	if len(x)%m.In() != 0 {
		return nil, fmt.Errorf("forward %s: %d values is not a whole number of rows of %d", m.Name, len(x), m.In())
	}
	rows := len(x) / m.In()
	act := make([]float64, len(x))
	for i, v := range x {
		act[i] = float64(v)
	}
	for l, w := range m.Weights {
		in, out := m.Sizes[l], m.Sizes[l+1]
		next := make([]float64, rows*out)
		for r := range rows {
			dst := next[r*out : (r+1)*out]
			for j := range dst {
				dst[j] = float64(m.Biases[l][j])
			}
			for k, a := range act[r*in : (r+1)*in] {
				if a == 0 {
					continue
				}
				for j, wv := range w[k*out : (k+1)*out] {
					dst[j] += a * float64(wv)
				}
			}
			if l < len(m.Weights)-1 {
				for j, v := range dst {
					dst[j] = max(v, 0)
				}
			}
		}
		act = next
	}
	out := make([]float32, len(act))
	n := m.Out()
	for r := range rows {
		row := act[r*n : (r+1)*n]
		hi := math.Inf(-1)
		for _, v := range row {
			hi = max(hi, v)
		}
		var sum float64
		for _, v := range row {
			sum += math.Exp(v - hi)
		}
		for j, v := range row {
			out[r*n+j] = float32(math.Exp(v-hi) / sum)
		}
	}
	return out, nil
}

// sample is one model EnsureSamples imports.
type sample struct {
	name, description string
	onnx              []byte
}

func samples() []sample {
	var out []sample
	for _, m := range All() {
		out = append(out, sample{m.Name, fmt.Sprintf("sample MLP classifier %v", m.Sizes), m.ONNX})
	}
	t := Text()
	return append(out, sample{t.Name, fmt.Sprintf("sample text classifier: token ids in [0, %d) and an attention mask → label and %d class probabilities", t.Vocab, t.Classes), t.ONNX})
}

// EnsureSamples imports every sample into s under its name (mlp-small,
// mlp-large, text-classifier) unless the name already has a version, and
// returns the models in that order as they are in the store afterwards.
// Concurrent first runs import each sample once.
func EnsureSamples(ctx context.Context, s *store.Store) ([]*store.Model, error) {
	var out []*store.Model
	for _, m := range samples() {
		sm, err := s.ImportData(ctx, m.onnx, store.ImportOptions{
			Name:         m.name,
			Labels:       map[string]string{"source": "benchtop-sample"},
			Metadata:     map[string]string{"description": m.description},
			KeepExisting: true,
		})
		if err != nil {
			return out, fmt.Errorf("import sample model: %w", err)
		}
		out = append(out, sm)
	}
	return out, nil
}
