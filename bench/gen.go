package bench

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"

	"github.com/benchtop/benchtop/engine"
	"github.com/benchtop/benchtop/engine/tensor"
	"github.com/benchtop/benchtop/engine/v2pb"
	"github.com/benchtop/benchtop/server/codec"
)

// This file makes request inputs from a method's signature: a pool of
// different requests (rows, sequence lengths, token ids) that the targets
// send in turn, so that a load looks like a model's real traffic rather
// than one example repeated.

// Span is a range of sizes, both ends included: "8..64", or "16" for
// exactly 16. The zero Span means "as the example": 2 rows, 4 along any
// other open dim.
type Span struct{ Min, Max int }

// ParseSpan reads "N" or "MIN..MAX" (1 ≤ MIN ≤ MAX).
func ParseSpan(s string) (Span, error) {
	lo, hi, isRange := strings.Cut(strings.TrimSpace(s), "..")
	if !isRange {
		hi = lo
	}
	a, err1 := strconv.Atoi(strings.TrimSpace(lo))
	b, err2 := strconv.Atoi(strings.TrimSpace(hi))
	switch {
	case err1 != nil || err2 != nil:
		return Span{}, fmt.Errorf("%q: want N or MIN..MAX, such as 16 or 8..64", s)
	case a < 1 || b < a:
		return Span{}, fmt.Errorf("%q: want 1 ≤ MIN ≤ MAX", s)
	}
	return Span{a, b}, nil
}

func (s Span) String() string {
	if s.Min == s.Max {
		return strconv.Itoa(s.Min)
	}
	return fmt.Sprintf("%d..%d", s.Min, s.Max)
}

// pick draws a size from the span, or def for the zero Span.
func (s Span) pick(r *rand.Rand, def int) int {
	if s == (Span{}) {
		return def
	}
	return s.Min + r.IntN(s.Max-s.Min+1)
}

// The sizes of codec.ExampleValue, which a zero Span keeps.
const (
	exampleRows = 2
	exampleSeq  = 4
)

// GenOptions say how Generate fills a method's inputs.
type GenOptions struct {
	// Rows is each request's size along the batch dim; SeqLen the size of
	// every other open dim of its batched inputs (their sequence length),
	// drawn once per request so that a request's inputs agree.
	Rows, SeqLen Span
	// Vocab bounds integer inputs: token ids are drawn from [0, Vocab).
	// Required when the method has an integer input that is not a mask.
	Vocab int
	// Seed makes the pool reproducible; 0 draws one.
	Seed uint64
}

// PoolSize is how many different requests Generate makes by default: the
// targets send them in turn.
const PoolSize = 64

// Generate makes n requests for a method, a value per input each, that
// pass its checks: batched tensors of opts.Rows rows and opts.SeqLen along
// their other open dims, integer ids below opts.Vocab, masks
// (codec.IsMask) of ones followed by zeros along their last dim — at least
// one 1, as a tokenizer's padding does — bools and floats at random,
// strings from a few sentences; optional ones too. Unbatched inputs, text
// and JSON keep their example (codec.ExampleValues): requests share a
// batch only with identical unbatched inputs, so varying them would
// measure something other than batching.
func Generate(spec engine.MethodSpec, opts GenOptions, n int) ([][]tensor.Value, error) {
	if opts.Vocab < 0 {
		return nil, fmt.Errorf("vocab %d: want a positive size", opts.Vocab)
	}
	seed := opts.Seed
	if seed == 0 {
		seed = rand.Uint64()
	}
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	examples := codec.ExampleValues(spec.Inputs)
	batchDim := 0
	if spec.Batchable {
		batchDim = spec.BatchDim
	}
	out := make([][]tensor.Value, n)
	for k := range out {
		rows, seq := opts.Rows.pick(r, exampleRows), opts.SeqLen.pick(r, exampleSeq)
		vals := make([]tensor.Value, len(spec.Inputs))
		for i, s := range spec.Inputs {
			if s.Unbatched || (s.Kind != tensor.KindTensor && s.Kind != tensor.KindInvalid) {
				vals[i] = examples[i]
				continue
			}
			t, err := generateTensor(r, s, batchDim, rows, seq, opts.Vocab)
			if err != nil {
				return nil, fmt.Errorf("input %q: %w", s.Name, err)
			}
			vals[i] = tensor.TensorValue(t)
		}
		out[k] = vals
	}
	return out, nil
}

// sentences are the strings a string tensor is filled from.
var sentences = [...]string{
	"I love this!", "This is awful.", "Not bad at all, would buy again.",
	"The service was slow and the food was cold.", "Absolutely wonderful experience from start to finish.",
}

// generateTensor makes one batched tensor: a spec of any shape reads as
// [rows, seq], one of any dtype as float32.
func generateTensor(r *rand.Rand, s tensor.IOSpec, batchDim, rows, seq, vocab int) (*tensor.Tensor, error) {
	dt := s.DType
	if dt == tensor.DTypeInvalid {
		dt = tensor.Float32
	}
	shape := []int{rows, seq}
	if s.Shape != nil {
		shape = make([]int, len(s.Shape))
		for d, n := range s.Shape {
			switch {
			case n >= 0:
				shape[d] = n
			case d == batchDim:
				shape[d] = rows
			default:
				shape[d] = seq
			}
		}
	}
	t, err := tensor.Zeros(dt, shape)
	if err != nil {
		return nil, err
	}
	if codec.IsMask(tensor.IOSpec{Name: s.Name, Kind: tensor.KindTensor, DType: dt}) {
		fillMask(r, t)
		return t, nil
	}
	switch dt {
	case tensor.Int32, tensor.Int64:
		if vocab == 0 {
			return nil, errors.New("an integer input (token ids?) needs a range: give --vocab N, the model's vocabulary size, and ids are drawn below it")
		}
		if dt == tensor.Int32 {
			for i := range t.Int32s() {
				t.Int32s()[i] = int32(r.IntN(vocab))
			}
		} else {
			for i := range t.Int64s() {
				t.Int64s()[i] = int64(r.IntN(vocab))
			}
		}
	case tensor.Uint8:
		for i := range t.Bytes() {
			t.Bytes()[i] = uint8(r.IntN(256))
		}
	case tensor.Bool:
		for i := range t.Bytes() {
			t.Bytes()[i] = uint8(r.IntN(2))
		}
	case tensor.Float32:
		for i := range t.Float32s() {
			t.Float32s()[i] = 2*r.Float32() - 1
		}
	case tensor.Float64:
		for i := range t.Float64s() {
			t.Float64s()[i] = 2*r.Float64() - 1
		}
	case tensor.String:
		for i := range t.Strings() {
			t.Strings()[i] = sentences[r.IntN(len(sentences))]
		}
	}
	return t, nil
}

// fillMask sets, along the last dim of t, a run of ones of random length
// (at least one) followed by zeros: a padded sequence's attention mask.
func fillMask(r *rand.Rand, t *tensor.Tensor) {
	shape := t.Shape()
	if len(shape) == 0 {
		set(t, 0)
		return
	}
	width := shape[len(shape)-1]
	if width == 0 {
		return
	}
	for start := 0; start < t.Len(); start += width {
		k := 1 + r.IntN(width)
		for j := range k {
			set(t, start+j)
		}
	}
}

// set makes element i of an integer or bool tensor 1.
func set(t *tensor.Tensor, i int) {
	switch t.DType() {
	case tensor.Int32:
		t.Int32s()[i] = 1
	case tensor.Int64:
		t.Int64s()[i] = 1
	default:
		t.Bytes()[i] = 1
	}
}

// v2Body is a KServe v2 inference request carrying vals, a value per spec:
// a tensor flat with its shape and datatype, a text or JSON value as one
// BYTES element; absent optional inputs left out.
func v2Body(specs tensor.IOSpecs, vals []tensor.Value) ([]byte, error) {
	type v2Tensor struct {
		Name     string          `json:"name"`
		Shape    []int           `json:"shape"`
		Datatype string          `json:"datatype"`
		Data     json.RawMessage `json:"data"`
	}
	var ins []v2Tensor
	for i, v := range vals {
		if v.Kind() == tensor.KindInvalid {
			continue // an optional input left out
		}
		t, err := v2pb.V2Tensor(v)
		if err != nil {
			return nil, fmt.Errorf("input %q: %w", specs[i].Name, err)
		}
		shape := t.Shape()
		if shape == nil {
			shape = []int{} // rank 0: [], not null
		}
		ins = append(ins, v2Tensor{specs[i].Name, shape, t.DType().V2(), codec.AppendFlat(nil, t)})
	}
	return json.Marshal(map[string]any{"inputs": ins})
}

// v2HeaderLength is the HTTP header of Triton's binary data extension
// that gives the length of the JSON before the raw tensors.
const v2HeaderLength = v2pb.HeaderLengthHeader

// v2BinaryBody is a KServe v2 inference request carrying vals in Triton's
// binary data extension: a JSON header of headerLen bytes naming each
// tensor and its binary_data_size, then the raw tensors in that order. It
// asks for every output as binary data too.
func v2BinaryBody(specs tensor.IOSpecs, vals []tensor.Value) (body []byte, headerLen int, err error) {
	type params struct {
		BinaryDataSize int `json:"binary_data_size"`
	}
	type v2Tensor struct {
		Name       string  `json:"name"`
		Shape      []int64 `json:"shape"`
		Datatype   string  `json:"datatype"`
		Parameters params  `json:"parameters"`
	}
	// The tensors as gRPC sends them raw: the same layout, the same
	// inputs left out.
	req, err := v2pb.RawRequest("", specs, vals)
	if err != nil {
		return nil, 0, err
	}
	ins := make([]v2Tensor, len(req.Inputs))
	var raw []byte
	for i, in := range req.Inputs {
		ins[i] = v2Tensor{in.Name, in.Shape, in.Datatype, params{len(req.RawInputContents[i])}}
		raw = append(raw, req.RawInputContents[i]...)
	}
	header, err := json.Marshal(map[string]any{"inputs": ins, "parameters": map[string]any{"binary_data_output": true}})
	if err != nil {
		return nil, 0, err
	}
	return append(header, raw...), len(header), nil
}
