package models

import (
	"fmt"
	"hash/fnv"
	"math"
	"strconv"
	"sync"

	"github.com/benchtop/benchtop/store/onnxpb"
)

// TextClassifier is a generated tiny text classifier of the shape a
// tokenizer-fed model has: two int64 inputs of dynamic sequence length
// (token ids and an attention mask, [batch, seq]) and two outputs of
// different dtypes (the label, int64 [batch], and the class probabilities,
// float32 [batch, classes]). It embeds each token (Gather), averages the
// embeddings of the tokens the mask keeps (a masked mean), and classifies
// the average with one linear layer and a softmax. It is shared by every
// caller: do not modify it.
type TextClassifier struct {
	Name string
	// Vocab is the vocabulary size: token ids are in [0, Vocab). An id
	// outside it reads as id 0, the unknown token, as a tokenizer's [UNK]:
	// the model never fails on a token id, so one caller's bad id cannot
	// fail the others batched with it.
	Vocab, Dim, Classes int
	// Embedding is Vocab×Dim, row-major; Weight is Dim×Classes (MatMul's
	// right operand); Bias is Classes.
	Embedding, Weight, Bias []float32
	// ONNX is the serialized model.
	ONNX []byte
}

// The text classifier's tensor names, as a tokenizer-fed model has them.
const (
	InputIDs      = "input_ids"
	AttentionMask = "attention_mask"
	Label         = "label"
	Probabilities = "probabilities"
)

// VocabKey is the model metadata key (metadata_props; the store shows it as
// onnx.meta.vocab_size) that holds the vocabulary size, for a client that
// generates valid token ids.
const VocabKey = "vocab_size"

var text = sync.OnceValue(func() *TextClassifier { return newTextClassifier("text-classifier", 1000, 64, 4) })

// Text is text-classifier: int64 input_ids and attention_mask [batch, seq]
// → int64 label [batch] and float32 probabilities [batch, 4], over a
// vocabulary of 1000 tokens embedded in 64 dims.
func Text() *TextClassifier { return text() }

func newTextClassifier(name string, vocab, dim, classes int) *TextClassifier {
	h := fnv.New64a()
	h.Write([]byte(name))
	r := &rng{s: h.Sum64()}
	m := &TextClassifier{Name: name, Vocab: vocab, Dim: dim, Classes: classes}
	fill := func(n int, a float64) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = r.uniform(a)
		}
		return v
	}
	m.Embedding = fill(vocab*dim, 1)
	// Wide enough that averages of a few tokens give probabilities that
	// are neither flat nor one-hot.
	m.Weight = fill(dim*classes, 3*math.Sqrt(6/float64(dim)))
	m.Bias = fill(classes, 0.1)
	m.ONNX = m.model().Marshal()
	return m
}

func (m *TextClassifier) model() *onnxpb.Model {
	batch, seq := onnxpb.SymbolicDim("batch"), onnxpb.SymbolicDim("seq")
	i64 := func(name string, dims []int64, v ...int64) onnxpb.Tensor {
		return onnxpb.Tensor{Name: name, DataType: onnxpb.Int64, Dims: dims, Int64Data: v}
	}
	f32 := func(name string, dims []int64, v ...float32) onnxpb.Tensor {
		return onnxpb.Tensor{Name: name, DataType: onnxpb.Float, Dims: dims, FloatData: v}
	}
	node := func(op string, ins []string, out string, attrs ...onnxpb.Attribute) onnxpb.Node {
		return onnxpb.Node{Name: out, OpType: op, Inputs: ins, Outputs: []string{out}, Attributes: attrs}
	}
	attr := func(name string, v int64) onnxpb.Attribute {
		return onnxpb.Attribute{Name: name, Type: onnxpb.AttrInt, I: v}
	}
	g := onnxpb.Graph{
		Name: m.Name,
		Inputs: []onnxpb.ValueInfo{
			onnxpb.TensorInfo(InputIDs, onnxpb.Int64, batch, seq),
			onnxpb.TensorInfo(AttentionMask, onnxpb.Int64, batch, seq),
		},
		Outputs: []onnxpb.ValueInfo{
			onnxpb.TensorInfo(Label, onnxpb.Int64, batch),
			onnxpb.TensorInfo(Probabilities, onnxpb.Float, batch, onnxpb.FixedDim(int64(m.Classes))),
		},
		Initializers: []onnxpb.Tensor{
			f32("embedding", []int64{int64(m.Vocab), int64(m.Dim)}, m.Embedding...),
			f32("weight", []int64{int64(m.Dim), int64(m.Classes)}, m.Weight...),
			f32("bias", []int64{int64(m.Classes)}, m.Bias...),
			i64("zero", nil, 0),
			i64("vocab", nil, int64(m.Vocab)),
			i64("axis_seq", []int64{1}, 1),
			i64("axis_dim", []int64{1}, 2),
			f32("one", nil, 1),
		},
		Nodes: []onnxpb.Node{
			// ids outside [0, vocab) → 0: Gather would fail the whole batch.
			node("GreaterOrEqual", []string{InputIDs, "zero"}, "id_not_negative"),
			node("Less", []string{InputIDs, "vocab"}, "id_below_vocab"),
			node("And", []string{"id_not_negative", "id_below_vocab"}, "id_known"),
			node("Where", []string{"id_known", InputIDs, "zero"}, "ids"),
			node("Gather", []string{"embedding", "ids"}, "embedded", attr("axis", 0)), // [batch, seq, dim]
			// The masked mean over seq: Σ mask·e / max(Σ mask, 1), so that a
			// row the mask keeps nothing of averages to zeros, not NaN.
			node("Cast", []string{AttentionMask}, "mask", attr("to", int64(onnxpb.Float))), // [batch, seq]
			node("Unsqueeze", []string{"mask", "axis_dim"}, "mask3"),                       // [batch, seq, 1]
			node("Mul", []string{"embedded", "mask3"}, "masked"),
			node("ReduceSum", []string{"masked", "axis_seq"}, "summed", attr("keepdims", 0)), // [batch, dim]
			node("ReduceSum", []string{"mask", "axis_seq"}, "count", attr("keepdims", 1)),    // [batch, 1]
			node("Max", []string{"count", "one"}, "divisor"),
			node("Div", []string{"summed", "divisor"}, "pooled"),
			node("MatMul", []string{"pooled", "weight"}, "scaled"),
			node("Add", []string{"scaled", "bias"}, "logits"), // [batch, classes]
			node("Softmax", []string{"logits"}, Probabilities, attr("axis", -1)),
			node("ArgMax", []string{"logits"}, Label, attr("axis", 1), attr("keepdims", 0)),
		},
	}
	return &onnxpb.Model{
		IRVersion:       8,
		OpsetImports:    []onnxpb.OpsetID{{Version: 13}},
		ProducerName:    "benchtop",
		ProducerVersion: "samples/models",
		DocString: fmt.Sprintf("sample text classifier: int64 %s and %s [batch, seq] → int64 %s [batch] and float32 %s [batch, %d]; "+
			"token ids in [0, %d) (others read as 0), embedding dim %d, masked mean, linear, softmax; deterministic weights",
			InputIDs, AttentionMask, Label, Probabilities, m.Classes, m.Vocab, m.Dim),
		Graph: g,
		Metadata: []onnxpb.StringPair{
			{Key: "benchtop.sample", Value: m.Name},
			{Key: VocabKey, Value: strconv.Itoa(m.Vocab)},
		},
	}
}

// Forward computes the model in Go (float64 accumulation) for rows of ids
// and mask, each holding rows × seq values; it returns each row's label
// and its Classes probabilities. Tests use it as a reference.
func (m *TextClassifier) Forward(ids, mask []int64, rows int) (labels []int64, probs []float32, err error) {
	if rows <= 0 || len(ids) != len(mask) || len(ids)%rows != 0 {
		return nil, nil, fmt.Errorf("forward %s: %d ids and %d mask values are not %d rows of one length", m.Name, len(ids), len(mask), rows)
	}
	seq := len(ids) / rows
	labels = make([]int64, rows)
	probs = make([]float32, rows*m.Classes)
	pooled := make([]float64, m.Dim)
	logits := make([]float64, m.Classes)
	for r := range rows {
		clear(pooled)
		var count float64
		for t := range seq {
			id, w := ids[r*seq+t], float64(mask[r*seq+t])
			if id < 0 || id >= int64(m.Vocab) {
				id = 0
			}
			count += w
			for d, e := range m.Embedding[int(id)*m.Dim : (int(id)+1)*m.Dim] {
				pooled[d] += w * float64(e)
			}
		}
		for d := range pooled {
			pooled[d] /= max(count, 1)
		}
		for c := range logits {
			logits[c] = float64(m.Bias[c])
			for d, p := range pooled {
				logits[c] += p * float64(m.Weight[d*m.Classes+c])
			}
		}
		hi := 0
		for c, v := range logits {
			if v > logits[hi] {
				hi = c
			}
		}
		labels[r] = int64(hi)
		var sum float64
		for _, v := range logits {
			sum += math.Exp(v - logits[hi])
		}
		for c, v := range logits {
			probs[r*m.Classes+c] = float32(math.Exp(v-logits[hi]) / sum)
		}
	}
	return labels, probs, nil
}
