package onnx_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/benchtop/benchtop/batcher"
	"github.com/benchtop/benchtop/engine"
	"github.com/benchtop/benchtop/engine/onnx"
	"github.com/benchtop/benchtop/engine/tensor"
	"github.com/benchtop/benchtop/samples/models"
	"github.com/benchtop/benchtop/store/onnxpb"
)

// ortDirect is ONNX Runtime called without benchtop: a session over the
// model's inputs and the outputs named, every output allocated by the
// runtime. Run is safe from several goroutines, as the runtime's is.
type ortDirect struct {
	sess *ort.DynamicAdvancedSession
	outs int
}

func newORTDirect(t testing.TB, path string, ins, outs []string) *ortDirect {
	t.Helper()
	so, err := ort.NewSessionOptions()
	if err != nil {
		t.Fatal(err)
	}
	defer so.Destroy()
	if err := so.SetIntraOpNumThreads(1); err != nil {
		t.Fatal(err)
	}
	sess, err := ort.NewDynamicAdvancedSession(path, ins, outs, so)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sess.Destroy() })
	return &ortDirect{sess: sess, outs: len(outs)}
}

// run returns the outputs, released when the test ends.
func (d *ortDirect) run(t testing.TB, ins ...ort.Value) ([]ort.Value, error) {
	outs := make([]ort.Value, d.outs)
	if err := d.sess.Run(ins, outs); err != nil {
		return nil, err
	}
	t.Cleanup(func() {
		for _, o := range outs {
			o.Destroy()
		}
	})
	return outs, nil
}

func ortTensor[T ort.TensorData](t testing.TB, data []T, shape ...int64) *ort.Tensor[T] {
	t.Helper()
	v, err := ort.NewTensor(ort.NewShape(shape...), data)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Destroy() })
	return v
}

func i64Value(t testing.TB, shape []int, data []int64) tensor.Value {
	t.Helper()
	v, err := tensor.NewTensor(shape, data)
	if err != nil {
		t.Fatal(err)
	}
	return tensor.TensorValue(v)
}

// tokens are rows × seq token ids (some out of the vocabulary) and a
// mask that keeps a prefix of each row, as padding does: a row of seq
// tokens keeps between one and all of them.
func tokens(rows, seq, seed int) (ids, mask []int64) {
	ids = make([]int64, rows*seq)
	mask = make([]int64, rows*seq)
	for r := range rows {
		keep := 1 + (r*7+seed)%seq
		for s := range seq {
			i := r*seq + s
			ids[i] = int64((i*131 + seed*977) % 1003) // 1000..1002 read as 0
			if s < keep {
				mask[i] = 1
			}
		}
	}
	return ids, mask
}

// textRequest is one caller's rows for the text classifier.
type textRequest struct {
	rows, seq int
	ids, mask []int64
}

func (q textRequest) values(t testing.TB) []tensor.Value {
	return []tensor.Value{i64Value(t, []int{q.rows, q.seq}, q.ids), i64Value(t, []int{q.rows, q.seq}, q.mask)}
}

// TestTextClassifierThroughRunner: many concurrent callers of the
// two-input, two-output sample, of mixed sequence lengths and batch sizes
// 1..12, through one runner that batches them. Each gets exactly its own
// rows of both outputs: those ONNX Runtime returns for its rows alone.
func TestTextClassifierThroughRunner(t *testing.T) {
	lib := library(t)
	m := models.Text()
	path := modelFile(t, m.ONNX)
	e := newEngine(t, lib)
	r := startRunnerWith(t, e, engine.Params{"path": path}, 2, batcher.Config{Policy: batcher.Adaptive, MaxBatchSize: 32, MaxLatency: 10 * time.Second})
	spec, _ := r.Method("run")
	if got := spec.Inputs.String(); got != "input_ids tensor int64[-1 -1], attention_mask tensor int64[-1 -1]" {
		t.Fatalf("inputs from the model: %s", got)
	}
	if got := spec.Outputs.String(); got != "label tensor int64[-1], probabilities tensor float32[-1 4]" {
		t.Fatalf("outputs from the model: %s", got)
	}
	direct := newORTDirect(t, path, []string{models.InputIDs, models.AttentionMask}, []string{models.Label, models.Probabilities})

	seqs := []int{1, 3, 8, 17, 40}
	var reqs []textRequest
	for i := range 120 {
		q := textRequest{rows: 1 + i%12, seq: seqs[i%len(seqs)]}
		q.ids, q.mask = tokens(q.rows, q.seq, i)
		reqs = append(reqs, q)
	}
	// A first call per sequence length starts the sessions' kernels for it,
	// then every caller at once, several rounds, so batches mix callers.
	var wg sync.WaitGroup
	for round := range 3 {
		for i, q := range reqs {
			wg.Go(func() {
				if err := checkText(t, r, direct, q); err != nil {
					t.Errorf("round %d caller %d (%d rows of %d tokens): %v", round, i, q.rows, q.seq, err)
				}
			})
		}
		wg.Wait()
	}
	st := r.Stats(engine.StatsOptions{}).Methods[0]
	mixed := false
	for size := range st.BatchSizes {
		mixed = mixed || size > 12
	}
	t.Logf("%d requests in batches of %v rows", 3*len(reqs), sizes(st.BatchSizes))
	if !mixed {
		t.Log("no batch held more than one caller's rows: the test did not exercise splitting (a slow machine?)")
	}
}

// checkText calls r with q and compares both outputs with ONNX Runtime's
// for q's rows alone: the labels exactly, the probabilities to 1e-6 (a
// batch of other rows may take other kernel paths).
func checkText(t testing.TB, r *engine.Runner, direct *ortDirect, q textRequest) error {
	outs, _, err := r.RunInfo(context.Background(), "run", q.values(t))
	if err != nil {
		return err
	}
	want, err := direct.run(t, ortTensor(t, q.ids, int64(q.rows), int64(q.seq)), ortTensor(t, q.mask, int64(q.rows), int64(q.seq)))
	if err != nil {
		return fmt.Errorf("onnx runtime directly: %w", err)
	}
	if len(outs) != 2 {
		return fmt.Errorf("%d outputs, want 2", len(outs))
	}
	label, probs := outs[0].Tensor(), outs[1].Tensor()
	if !slices.Equal(label.Shape(), []int{q.rows}) || !slices.Equal(probs.Shape(), []int{q.rows, 4}) {
		return fmt.Errorf("output shapes %v and %v", label.Shape(), probs.Shape())
	}
	if got, ref := label.Int64s(), want[0].(*ort.Tensor[int64]).GetData(); !slices.Equal(got, ref) {
		return fmt.Errorf("labels %v, want %v", got, ref)
	}
	got, ref := probs.Float32s(), want[1].(*ort.Tensor[float32]).GetData()
	for i := range got {
		if d := math.Abs(float64(got[i] - ref[i])); d > 1e-6 {
			return fmt.Errorf("probability %d is %v, want %v", i, got[i], ref[i])
		}
	}
	return nil
}

// TestTextClassifierAgreesWithGo: ONNX Runtime computes what the sample's
// Go reference does, masked tokens, padding and unknown ids included.
func TestTextClassifierAgreesWithGo(t *testing.T) {
	lib := library(t)
	m := models.Text()
	inst := newInstance(t, lib, engine.Params{"path": modelFile(t, m.ONNX)}, nil)
	for _, seq := range []int{1, 5, 64} {
		rows := 9
		ids, mask := tokens(rows, seq, seq)
		if seq == 5 {
			clear(mask[:seq]) // a row the mask keeps nothing of
		}
		outs, err := inst.Call(context.Background(), "run", textRequest{rows, seq, ids, mask}.values(t))
		if err != nil {
			t.Fatal(err)
		}
		labels, probs, err := m.Forward(ids, mask, rows)
		if err != nil {
			t.Fatal(err)
		}
		if got := outs[0].Tensor().Int64s(); !slices.Equal(got, labels) {
			t.Fatalf("seq %d: labels %v, want %v", seq, got, labels)
		}
		near(t, fmt.Sprintf("seq %d", seq), outs[1].Tensor().Float32s(), probs)
	}
}

// TestTextClassifierWrongInputs: through a runner and on an instance
// alone, a request with a missing, extra, wrongly typed or wrongly shaped
// input is the caller's error, naming the input.
func TestTextClassifierWrongInputs(t *testing.T) {
	lib := library(t)
	m := models.Text()
	path := modelFile(t, m.ONNX)
	r := startRunner(t, newEngine(t, lib), engine.Params{"path": path}, 1, 16)
	inst := newInstance(t, lib, engine.Params{"path": path}, nil)
	ids := i64Value(t, []int{2, 3}, []int64{1, 2, 3, 4, 5, 6})
	mask := i64Value(t, []int{2, 3}, []int64{1, 1, 1, 1, 1, 0})
	f32 := f32Value(t, []int{2, 3}, make([]float32, 6))
	cases := []struct {
		name string
		in   []tensor.Value
		want []string // substrings of the error, by runner then by instance
	}{
		{"missing", []tensor.Value{ids, {}}, []string{`missing input "attention_mask"`, `input "attention_mask"`}},
		{"one value", []tensor.Value{ids}, []string{`missing input "attention_mask"`, "input_ids, attention_mask"}},
		{"extra", []tensor.Value{ids, mask, mask}, []string{"got 3 values", "got 3 values"}},
		{"float mask", []tensor.Value{ids, f32}, []string{`"attention_mask": dtype float32, want int64`, `input "attention_mask": dtype float32, want int64`}},
		{"rank", []tensor.Value{ids, i64Value(t, []int{6}, make([]int64, 6))}, []string{`"attention_mask": shape [6] has 1 dims, want 2`, `"attention_mask": shape [6] has 1 dims, want 2`}},
		{"text", []tensor.Value{tensor.TextValue("hello"), mask}, []string{`"input_ids": got text`, `"input_ids": got text`}},
		{"rows", []tensor.Value{ids, i64Value(t, []int{3, 3}, make([]int64, 9))}, []string{`"input_ids" and "attention_mask" disagree on the batch size: 2 rows and 3 rows`, `"input_ids" and "attention_mask" disagree on the batch size: 2 rows and 3 rows`}},
		{"seq", []tensor.Value{ids, i64Value(t, []int{2, 4}, make([]int64, 8))}, []string{`input "attention_mask" dim 1 is 4, but input "input_ids" dim 1 is 3: the model calls both "seq"`, `input "attention_mask" dim 1 is 4`}},
		{"empty", []tensor.Value{i64Value(t, []int{2, 0}, nil), i64Value(t, []int{2, 0}, nil)}, []string{`input "input_ids": shape [2 0] has no elements`, `input "input_ids": shape [2 0] has no elements`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := r.RunInfo(context.Background(), "run", c.in)
			if !errors.Is(err, engine.ErrInvalidInput) || !strings.Contains(err.Error(), c.want[0]) {
				t.Errorf("via runner: got %v, want ErrInvalidInput mentioning %q", err, c.want[0])
			}
			_, err = inst.Call(context.Background(), "run", c.in)
			if !errors.Is(err, engine.ErrInvalidInput) || !strings.Contains(err.Error(), c.want[1]) {
				t.Errorf("via instance: got %v, want ErrInvalidInput mentioning %q", err, c.want[1])
			}
		})
	}
	// The worker survived every bad call.
	q := textRequest{rows: 2, seq: 3, ids: []int64{1, 2, 3, 4, 5, 6}, mask: []int64{1, 1, 1, 1, 1, 0}}
	if err := checkText(t, r, newORTDirect(t, path, []string{models.InputIDs, models.AttentionMask}, []string{models.Label, models.Probabilities}), q); err != nil {
		t.Fatal(err)
	}
}

// TestPickOutputs: init param outputs exposes some outputs, in its order,
// and output (one name) still does what it did.
func TestPickOutputs(t *testing.T) {
	lib := library(t)
	m := models.Text()
	path := modelFile(t, m.ONNX)
	rows, seq := 3, 6
	ids, mask := tokens(rows, seq, 2)
	labels, probs, _ := m.Forward(ids, mask, rows)
	in := textRequest{rows, seq, ids, mask}
	cases := []struct {
		name   string
		params engine.Params
		check  func(t *testing.T, outs []tensor.Value)
	}{
		{"reordered", engine.Params{"path": path, "outputs": []any{models.Probabilities, models.Label}}, func(t *testing.T, outs []tensor.Value) {
			near(t, "probabilities", outs[0].Tensor().Float32s(), probs)
			if !slices.Equal(outs[1].Tensor().Int64s(), labels) {
				t.Fatalf("labels %v", outs[1].Tensor().Int64s())
			}
		}},
		{"outputs: [label]", engine.Params{"path": path, "outputs": []any{models.Label}}, func(t *testing.T, outs []tensor.Value) {
			if len(outs) != 1 || !slices.Equal(outs[0].Tensor().Int64s(), labels) {
				t.Fatalf("outputs %v", outs)
			}
		}},
		{"output: probabilities", engine.Params{"path": path, "output": models.Probabilities}, func(t *testing.T, outs []tensor.Value) {
			if len(outs) != 1 {
				t.Fatalf("%d outputs", len(outs))
			}
			near(t, "probabilities", outs[0].Tensor().Float32s(), probs)
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			inst := newInstance(t, lib, c.params, nil)
			outs, err := inst.Call(context.Background(), "run", in.values(t))
			if err != nil {
				t.Fatal(err)
			}
			c.check(t, outs)
		})
	}
}

// twoDtypes is a model of two inputs of different dtypes, a string and
// an int64 of any width, returned as they came (Identity): strings and
// outputs whose size only the run tells (the runtime allocates them)
// through a batching runner.
func twoDtypes() []byte {
	n := onnxpb.SymbolicDim("N")
	return (&onnxpb.Model{IRVersion: 8, OpsetImports: []onnxpb.OpsetID{{Version: 13}}, Graph: onnxpb.Graph{
		Nodes: []onnxpb.Node{
			{OpType: "Identity", Inputs: []string{"text"}, Outputs: []string{"text_out"}},
			{OpType: "Identity", Inputs: []string{"ids"}, Outputs: []string{"ids_out"}},
		},
		Inputs: []onnxpb.ValueInfo{
			onnxpb.TensorInfo("text", onnxpb.String, n),
			onnxpb.TensorInfo("ids", onnxpb.Int64, n, onnxpb.SymbolicDim("width")),
		},
		Outputs: []onnxpb.ValueInfo{
			onnxpb.TensorInfo("ids_out", onnxpb.Int64, n, onnxpb.SymbolicDim("width")),
			onnxpb.TensorInfo("text_out", onnxpb.String, n),
		},
	}}).Marshal()
}

func TestStringsAndDynamicOutputs(t *testing.T) {
	lib := library(t)
	r := startRunner(t, newEngine(t, lib), engine.Params{"path": modelFile(t, twoDtypes())}, 1, 64)
	var wg sync.WaitGroup
	for i := range 60 {
		wg.Go(func() {
			rows, width := 1+i%5, 1+i%3
			text := make([]string, rows)
			ids := make([]int64, rows*width)
			for j := range text {
				text[j] = fmt.Sprintf("caller %d row %d", i, j)
			}
			for j := range ids {
				ids[j] = int64(i*1000 + j)
			}
			tv, _ := tensor.NewStringTensor([]int{rows}, text)
			outs, _, err := r.RunInfo(context.Background(), "run", []tensor.Value{tensor.TensorValue(tv), i64Value(t, []int{rows, width}, ids)})
			if err != nil {
				t.Error(err)
				return
			}
			if got := outs[0].Tensor(); !slices.Equal(got.Int64s(), ids) || !slices.Equal(got.Shape(), []int{rows, width}) {
				t.Errorf("caller %d: ids_out %v %v, want its own %v", i, got.Shape(), got.Int64s(), ids)
			}
			if got := outs[1].Tensor().Strings(); !slices.Equal(got, text) {
				t.Errorf("caller %d: text_out %q, want its own %q", i, got, text)
			}
		})
	}
	wg.Wait()
}

// TestForeignModelOfSeveralInputs: a PyTorch export from outside benchtop
// (onnxruntime_go's example_multitype.onnx: uint8 InputA [1 1 1] and
// float64 InputB [1 2 2] → int16 OutputA [1 2 2] and int64 OutputB
// [1 1 1]), checked against ONNX Runtime directly. Its shapes are fixed,
// so it is served with batchable: false; int16 is not a benchtop dtype, so
// the method exposes OutputB, and says so when asked for both.
func TestForeignModelOfSeveralInputs(t *testing.T) {
	lib := library(t)
	path := foreign(t, "example_multitype.onnx")
	typ := onnx.Type(lib)
	_, err := typ.MethodsFor(t.Context(), engine.Params{"path": path, "batchable": false})
	if err == nil || !strings.Contains(err.Error(), `output "OutputA" is int16[1 2 2], which benchtop tensors cannot carry`) || !strings.Contains(err.Error(), "outputs: [OutputB]") {
		t.Fatalf("all outputs: %v", err)
	}
	params := engine.Params{"path": path, "batchable": false, "outputs": []any{"OutputB"}}
	ms, err := typ.MethodsFor(t.Context(), params)
	if err != nil {
		t.Fatal(err)
	}
	if got := ms[0].Inputs.String() + " → " + ms[0].Outputs.String(); got != "InputA tensor uint8[1 1 1], InputB tensor float64[1 2 2] → tensor int64[1 1 1]" {
		t.Fatalf("signature %s", got)
	}
	inst := newInstance(t, lib, params, nil)
	direct := newORTDirect(t, path, []string{"InputA", "InputB"}, []string{"OutputB"})
	for i, c := range []struct {
		a uint8
		b []float64
	}{{0, []float64{1, 2, 3, 4}}, {7, []float64{-1.5, 0, 2.25, 1e6}}, {255, []float64{0.5, 0.25, 0.125, 3}}} {
		a, _ := tensor.NewTensor([]int{1, 1, 1}, []uint8{c.a})
		b, _ := tensor.NewTensor([]int{1, 2, 2}, c.b)
		outs, err := inst.Call(context.Background(), "run", []tensor.Value{tensor.TensorValue(a), tensor.TensorValue(b)})
		if err != nil {
			t.Fatal(err)
		}
		want, err := direct.run(t, ortTensor(t, []uint8{c.a}, 1, 1, 1), ortTensor(t, c.b, 1, 2, 2))
		if err != nil {
			t.Fatal(err)
		}
		got, ref := outs[0].Tensor().Int64s(), want[0].(*ort.Tensor[int64]).GetData()
		if !slices.Equal(got, ref) || !slices.Equal(outs[0].Tensor().Shape(), []int{1, 1, 1}) {
			t.Fatalf("case %d: %v %v, the runtime says %v", i, outs[0].Tensor().Shape(), got, ref)
		}
	}
}

// TestForeignScikitLearnModel: a scikit-learn random forest exported with
// its default ZipMap is refused saying how to export it again; its label
// output alone is served and agrees with ONNX Runtime.
func TestForeignScikitLearnModel(t *testing.T) {
	lib := library(t)
	path := foreign(t, "sklearn_randomforest.onnx")
	_, err := onnx.Type(lib).MethodsFor(t.Context(), engine.Params{"path": path})
	for _, want := range []string{`output "output_probability" is a seq(map(int64, float32)), not a tensor`, `{"zipmap": False}`, "outputs: [output_label]"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("got %v, want an error mentioning %q", err, want)
		}
	}
	r := startRunner(t, newEngine(t, lib), engine.Params{"path": path, "outputs": []any{"output_label"}}, 1, 64)
	direct := newORTDirect(t, path, []string{"X"}, []string{"output_label"})
	var wg sync.WaitGroup
	for rows := 1; rows <= 20; rows++ {
		wg.Go(func() {
			x := inputs(rows, 4, rows)
			outs, _, err := r.RunInfo(context.Background(), "run", []tensor.Value{f32Value(t, []int{rows, 4}, x)})
			if err != nil {
				t.Error(err)
				return
			}
			want, err := direct.run(t, ortTensor(t, x, int64(rows), 4))
			if err != nil {
				t.Error(err)
				return
			}
			if got, ref := outs[0].Tensor().Int64s(), want[0].(*ort.Tensor[int64]).GetData(); !slices.Equal(got, ref) {
				t.Errorf("%d rows: labels %v, the runtime says %v", rows, got, ref)
			}
		})
	}
	wg.Wait()
}

// TestForeignStringModel: onnxruntime_go's example_strings.onnx (a string
// input, two string outputs: lower and upper case). Its StringNormalizer
// needs the en_US.UTF-8 locale, which a minimal system lacks.
func TestForeignStringModel(t *testing.T) {
	lib := library(t)
	path := foreign(t, "example_strings.onnx")
	inst, err := onnx.Type(lib).New(context.Background(), engine.Env{Params: engine.Params{"path": path}, Threads: 1})
	if err != nil {
		if strings.Contains(err.Error(), "locale") {
			t.Skipf("the runtime cannot build this model's StringNormalizer here: %v", err)
		}
		t.Fatal(err)
	}
	defer inst.(engine.Closer).Close()
	in, _ := tensor.NewStringTensor([]int{3}, []string{"Hello", "WORLD", "MiXeD 42"})
	outs, err := inst.Call(context.Background(), "run", []tensor.Value{tensor.TensorValue(in)})
	if err != nil {
		t.Fatal(err)
	}
	if lo, up := outs[0].Tensor().Strings(), outs[1].Tensor().Strings(); !slices.Equal(lo, []string{"hello", "world", "mixed 42"}) || !slices.Equal(up, []string{"HELLO", "WORLD", "MIXED 42"}) {
		t.Fatalf("outputs %q and %q", lo, up)
	}
}

// TestUnbatchedInput: an input the model fixes along the batch dim (scale
// [1] beside x [N, 4]) is passed once per batch, and requests that send
// different values never share one: every caller gets its rows times its
// own scale.
func TestUnbatchedInput(t *testing.T) {
	lib := library(t)
	n := onnxpb.SymbolicDim("N")
	model := (&onnxpb.Model{IRVersion: 8, OpsetImports: []onnxpb.OpsetID{{Version: 13}}, Graph: onnxpb.Graph{
		Nodes:   []onnxpb.Node{{OpType: "Mul", Inputs: []string{"x", "scale"}, Outputs: []string{"y"}}},
		Inputs:  []onnxpb.ValueInfo{onnxpb.TensorInfo("x", onnxpb.Float, n, onnxpb.FixedDim(4)), onnxpb.TensorInfo("scale", onnxpb.Float, onnxpb.FixedDim(1))},
		Outputs: []onnxpb.ValueInfo{onnxpb.TensorInfo("y", onnxpb.Float, n, onnxpb.FixedDim(4))},
	}}).Marshal()
	r := startRunner(t, newEngine(t, lib), engine.Params{"path": modelFile(t, model)}, 1, 64)
	spec, _ := r.Method("run")
	if got := spec.Inputs.String(); got != "x tensor float32[-1 4], scale tensor float32[1] (unbatched)" {
		t.Fatalf("inputs %s", got)
	}
	var wg sync.WaitGroup
	for i := range 80 {
		wg.Go(func() {
			rows, scale := 1+i%7, float32(1+i%3)
			x := inputs(rows, 4, i)
			outs, _, err := r.RunInfo(context.Background(), "run", []tensor.Value{f32Value(t, []int{rows, 4}, x), f32Value(t, []int{1}, []float32{scale})})
			if err != nil {
				t.Error(err)
				return
			}
			want := make([]float32, len(x))
			for j, v := range x {
				want[j] = v * scale
			}
			if got := outs[0].Tensor().Float32s(); !slices.Equal(got, want) {
				t.Errorf("caller %d (scale %v): %v, want %v", i, scale, got, want)
			}
		})
	}
	wg.Wait()
}
