package onnx_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/benchtop/benchtop/batcher"
	"github.com/benchtop/benchtop/engine"
	"github.com/benchtop/benchtop/engine/enginetest"
	"github.com/benchtop/benchtop/engine/onnx"
	"github.com/benchtop/benchtop/engine/tensor"
	"github.com/benchtop/benchtop/samples/models"
	"github.com/benchtop/benchtop/store"
	"github.com/benchtop/benchtop/store/onnxpb"
)

// library loads ONNX Runtime: it is a download, not a Go module. Without it
// the test fails under CI and is skipped elsewhere, saying how to get it.
func library(t testing.TB) *onnx.Library {
	t.Helper()
	lib := onnx.Locate()
	if err := lib.Load(); err != nil {
		enginetest.Needs(t, "ONNX Runtime", "make onnxruntime (scripts/install-onnxruntime.sh)", err)
	}
	return lib
}

// modelFile writes an .onnx file for a test.
func modelFile(t testing.TB, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "model.onnx")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func newEngine(t testing.TB, lib *onnx.Library) *engine.Engine {
	t.Helper()
	return enginetest.New(t, enginetest.Options{}, onnx.Type(lib))
}

func startRunner(t testing.TB, e *engine.Engine, params engine.Params, workers, maxBatch int) *engine.Runner {
	t.Helper()
	return startRunnerWith(t, e, params, workers, batcher.Config{Policy: batcher.Adaptive, MaxBatchSize: maxBatch, MaxLatency: 10 * time.Second})
}

func startRunnerWith(t testing.TB, e *engine.Engine, params engine.Params, workers int, bc batcher.Config) *engine.Runner {
	t.Helper()
	return enginetest.Start(t, e, engine.RunnerConfig{Name: "mlp", Runnable: onnx.TypeName, Params: params, Workers: workers, Batching: bc})
}

// inputs are rows of deterministic values in [-1, 1].
func inputs(rows, width int, seed int) []float32 {
	x := make([]float32, rows*width)
	for i := range x {
		x[i] = float32(math.Sin(float64(i*7+seed*13) * 0.37))
	}
	return x
}

func f32Value(t testing.TB, shape []int, data []float32) tensor.Value {
	t.Helper()
	v, err := tensor.NewTensor(shape, data)
	if err != nil {
		t.Fatal(err)
	}
	return tensor.TensorValue(v)
}

// near compares probabilities: float32 accumulation in the runtime against
// float64 in Go.
func near(t testing.TB, what string, got, want []float32) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	for i := range got {
		if d := math.Abs(float64(got[i] - want[i])); d > 1e-5 {
			t.Fatalf("%s: value %d is %v, want %v (off by %g)", what, i, got[i], want[i], d)
		}
	}
}

// TestMLPThroughRunner: requests of 1 to 128 rows from concurrent callers,
// batched by a real runner, each get exactly their own rows' outputs.
func TestMLPThroughRunner(t *testing.T) {
	lib := library(t)
	cases := []struct {
		m     *models.MLP
		sizes []int
	}{
		{models.Small(), seq(1, 128)},
		{models.Large(), []int{1, 2, 3, 17, 64, 127, 128}},
	}
	for _, c := range cases {
		t.Run(c.m.Name, func(t *testing.T) {
			e := newEngine(t, lib)
			r := startRunner(t, e, engine.Params{"path": modelFile(t, c.m.ONNX)}, 2, 128)
			spec, _ := r.Method("run")
			if !spec.Batchable || spec.Inputs.String() != fmt.Sprintf("tensor float32[-1 %d]", c.m.In()) || spec.Outputs.String() != "tensor float32[-1 10]" {
				t.Fatalf("method from the model: %+v", spec)
			}
			// One pool of rows and its reference, computed once; each request
			// takes a window of it.
			const pool = 128
			x := inputs(pool, c.m.In(), 1)
			want, err := c.m.Forward(x)
			if err != nil {
				t.Fatal(err)
			}
			var wg sync.WaitGroup
			errs := make(chan error, len(c.sizes))
			for i, rows := range c.sizes {
				wg.Go(func() {
					off := (i * 37) % (pool - rows + 1)
					in := x[off*c.m.In() : (off+rows)*c.m.In()]
					v, err := tensor.NewTensor([]int{rows, c.m.In()}, in)
					if err != nil {
						errs <- err
						return
					}
					out, err := r.Run(context.Background(), "run", tensor.TensorValue(v))
					if err != nil {
						errs <- err
						return
					}
					if !slices.Equal(out.Tensor().Shape(), []int{rows, c.m.Out()}) {
						errs <- fmt.Errorf("%d rows: output shape %v", rows, out.Tensor().Shape())
						return
					}
					got := out.Tensor().Float32s()
					ref := want[off*c.m.Out() : (off+rows)*c.m.Out()]
					for j := range got {
						if d := math.Abs(float64(got[j] - ref[j])); d > 1e-5 {
							errs <- fmt.Errorf("%d rows at %d: value %d is %v, want %v", rows, off, j, got[j], ref[j])
							return
						}
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			st := r.Stats(engine.StatsOptions{}).Methods[0]
			t.Logf("%d requests in batches of %v rows", len(c.sizes), sizes(st.BatchSizes))
		})
	}
}

func seq(from, to int) []int {
	var s []int
	for i := from; i <= to; i++ {
		s = append(s, i)
	}
	return s
}

func sizes(m map[int]uint64) []int {
	var s []int
	for k := range m {
		s = append(s, k)
	}
	slices.Sort(s)
	return s
}

// TestEveryBatchSize calls one instance directly with each size 1..128.
func TestEveryBatchSize(t *testing.T) {
	lib := library(t)
	m := models.Small()
	inst := newInstance(t, lib, engine.Params{"path": modelFile(t, m.ONNX)}, nil)
	x := inputs(128, m.In(), 2)
	want, _ := m.Forward(x)
	for rows := 1; rows <= 128; rows++ {
		out, err := callOne(context.Background(), inst, "run", f32Value(t, []int{rows, m.In()}, x[:rows*m.In()]))
		if err != nil {
			t.Fatalf("%d rows: %v", rows, err)
		}
		near(t, fmt.Sprintf("%d rows", rows), out.Tensor().Float32s(), want[:rows*m.Out()])
	}
}

func newInstance(t testing.TB, lib *onnx.Library, p engine.Params, logger *slog.Logger) engine.Instance {
	t.Helper()
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	inst, err := onnx.Type(lib).New(context.Background(), engine.Env{Runner: "t", Params: p, Threads: 2, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { inst.(engine.Closer).Close() })
	return inst
}

// TestStoredModelRunner: `model: mlp:latest` as the lead's config will
// resolve it, through the store and ModelParams.
func TestStoredModelRunner(t *testing.T) {
	lib := library(t)
	s, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.ImportData(context.Background(), models.Small().ONNX, store.ImportOptions{Name: "mlp", Signature: &store.SignatureOptions{Method: "classify", Batchable: true}}); err != nil {
		t.Fatal(err)
	}
	m, err := s.Get("mlp:latest")
	if err != nil {
		t.Fatal(err)
	}
	params, err := onnx.ModelParams(m)
	if err != nil {
		t.Fatal(err)
	}
	r := startRunner(t, newEngine(t, lib), params, 1, 32)
	x := inputs(3, 64, 3)
	out, err := r.Run(context.Background(), "classify", f32Value(t, []int{3, 64}, x))
	if err != nil {
		t.Fatal(err)
	}
	want, _ := models.Small().Forward(x)
	near(t, "stored model", out.Tensor().Float32s(), want)
}

// ortTestData holds models exported by PyTorch and scikit-learn that ship
// with the onnxruntime_go module: models from outside benchtop.
func ortTestData(t testing.TB) string {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/yalue/onnxruntime_go").Output()
	dir := strings.TrimSpace(string(out))
	if err != nil || dir == "" {
		enginetest.Needs(t, "the onnxruntime_go module's test models", "go mod download github.com/yalue/onnxruntime_go", fmt.Errorf("go list -m printed no folder (%v)", err))
	}
	return filepath.Join(dir, "test_data")
}

func foreign(t testing.TB, name string) string {
	p := filepath.Join(ortTestData(t), name)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s is not in the onnxruntime_go release go.mod names: %v", p, err)
	}
	return p
}

// TestForeignDynamicBatchModel: a PyTorch export (sum of each row,
// input_vectors [batch, 10] → output_scalars [batch]) batches like ours.
func TestForeignDynamicBatchModel(t *testing.T) {
	lib := library(t)
	path := foreign(t, "example_dynamic_axes.onnx")
	r := startRunner(t, newEngine(t, lib), engine.Params{"path": path}, 1, 64)
	var wg sync.WaitGroup
	for rows := 1; rows <= 40; rows++ {
		wg.Go(func() {
			x := inputs(rows, 10, rows)
			out, err := r.Run(context.Background(), "run", f32Value(t, []int{rows, 10}, x))
			if err != nil {
				t.Error(err)
				return
			}
			want := make([]float32, rows)
			for i := range want {
				var s float64
				for _, v := range x[i*10 : (i+1)*10] {
					s += float64(v)
				}
				want[i] = float32(s)
			}
			near(t, fmt.Sprintf("%d rows", rows), out.Tensor().Float32s(), want)
		})
	}
	wg.Wait()
}

// TestReaderAgreesWithRuntime: for every model shipped with onnxruntime_go,
// onnxpb reads the same inputs and outputs as ONNX Runtime itself.
func TestReaderAgreesWithRuntime(t *testing.T) {
	library(t)
	files, _ := filepath.Glob(filepath.Join(ortTestData(t), "*.onnx"))
	if len(files) == 0 {
		t.Fatal("no models in onnxruntime_go's test_data")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			ins, outs, err := ort.GetInputOutputInfo(f)
			if err != nil && missingLocale(err) {
				// The model's StringNormalizer names a locale the runtime
				// builds at load; a machine without it cannot load it.
				t.Skipf("this machine lacks a locale the model needs (locale -a lists those it has; Debian/Ubuntu: apt-get install locales-all): %v", err)
			}
			if err != nil {
				t.Fatalf("ONNX Runtime cannot read a model shipped with its Go bindings: %v", err)
			}
			m, err := onnxpb.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			compareIO(t, "inputs", m.Graph.GraphInputs(), ins)
			compareIO(t, "outputs", m.Graph.Outputs, outs)
		})
	}
}

// missingLocale says whether the runtime failed because the machine lacks
// a locale (it names one, e.g. en_US.UTF-8, that the C++ library cannot
// construct).
func missingLocale(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "Failed to construct locale") || strings.Contains(msg, "_S_create_c_locale")
}

func compareIO(t *testing.T, what string, ours []onnxpb.ValueInfo, theirs []ort.InputOutputInfo) {
	t.Helper()
	if len(ours) != len(theirs) {
		t.Fatalf("%s: %d, the runtime says %d", what, len(ours), len(theirs))
	}
	for i, o := range ours {
		th := theirs[i]
		if o.Name != th.Name {
			t.Fatalf("%s %d: %q, the runtime says %q", what, i, o.Name, th.Name)
		}
		if o.Kind != onnxpb.KindTensor {
			continue
		}
		if int(o.ElemType) != int(th.DataType) {
			t.Errorf("%s %q: %s, the runtime says %v", what, o.Name, o.ElemType, th.DataType)
		}
		// The runtime infers shapes, so it may know a dim the file leaves
		// symbolic; it must never contradict one the file fixes.
		shape := o.Shape()
		if len(shape) != len(th.Dimensions) {
			t.Fatalf("%s %q: dims %v, the runtime says %v", what, o.Name, shape, th.Dimensions)
		}
		for j, d := range shape {
			if d >= 0 && int64(d) != th.Dimensions[j] {
				t.Errorf("%s %q: dims %v, the runtime says %v", what, o.Name, shape, th.Dimensions)
			}
		}
	}
}

// TestWrongInputs: a wrong dtype, shape, kind or method is the caller's
// error (ErrInvalidInput) with a message saying what to send.
func TestWrongInputs(t *testing.T) {
	lib := library(t)
	m := models.Small()
	r := startRunner(t, newEngine(t, lib), engine.Params{"path": modelFile(t, m.ONNX)}, 1, 16)
	inst := newInstance(t, lib, engine.Params{"path": modelFile(t, m.ONNX)}, nil)
	f64, _ := tensor.NewTensor([]int{1, 64}, make([]float64, 64))
	str, _ := tensor.NewStringTensor([]int{1, 64}, make([]string, 64))
	cases := []struct {
		name   string
		method string
		in     tensor.Value
		want   string
		is     error
	}{
		{"float64", "run", tensor.TensorValue(f64), "dtype float64, want float32", engine.ErrInvalidInput},
		{"string", "run", tensor.TensorValue(str), "dtype string, want float32", engine.ErrInvalidInput},
		{"width 63", "run", f32Value(t, []int{2, 63}, make([]float32, 126)), "dim 1 is 63, want 64", engine.ErrInvalidInput},
		{"rank 1", "run", f32Value(t, []int{64}, make([]float32, 64)), "has 1 dims, want 2", engine.ErrInvalidInput},
		{"rank 3", "run", f32Value(t, []int{1, 1, 64}, make([]float32, 64)), "has 3 dims, want 2", engine.ErrInvalidInput},
		{"text", "run", tensor.TextValue("hello"), "want tensor float32[-1 64]", engine.ErrInvalidInput},
		{"method", "predict", f32Value(t, []int{1, 64}, make([]float32, 64)), `"predict"`, engine.ErrUnknownMethod},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, call := range []struct {
				via string
				run func() (tensor.Value, error)
			}{
				{"runner", func() (tensor.Value, error) { return r.Run(context.Background(), c.method, c.in) }},
				{"instance", func() (tensor.Value, error) { return callOne(context.Background(), inst, c.method, c.in) }},
			} {
				_, err := call.run()
				if err == nil || !errors.Is(err, c.is) || !strings.Contains(err.Error(), c.want) {
					t.Errorf("via %s: got %v, want %v mentioning %q", call.via, err, c.is, c.want)
				}
			}
		})
	}
	// The worker survived every bad call.
	x := inputs(1, 64, 9)
	out, err := r.Run(context.Background(), "run", f32Value(t, []int{1, 64}, x))
	if err != nil {
		t.Fatal(err)
	}
	want, _ := m.Forward(x)
	near(t, "after bad inputs", out.Tensor().Float32s(), want)
}

// TestModelsItCannotServe: what the runner refuses says why and what to do.
func TestModelsItCannotServe(t *testing.T) {
	fixed := (&onnxpb.Model{IRVersion: 8, OpsetImports: []onnxpb.OpsetID{{Version: 13}}, Graph: onnxpb.Graph{
		Nodes:   []onnxpb.Node{{OpType: "Relu", Inputs: []string{"x"}, Outputs: []string{"y"}}},
		Inputs:  []onnxpb.ValueInfo{onnxpb.TensorInfo("x", onnxpb.Float, onnxpb.FixedDim(1), onnxpb.FixedDim(4))},
		Outputs: []onnxpb.ValueInfo{onnxpb.TensorInfo("y", onnxpb.Float, onnxpb.FixedDim(1), onnxpb.FixedDim(4))},
	}}).Marshal()
	n := onnxpb.SymbolicDim("N")
	oneNode := func(op string, ins, outs []onnxpb.ValueInfo) []byte {
		g := onnxpb.Graph{Inputs: ins, Outputs: outs, Nodes: []onnxpb.Node{{OpType: op}}}
		for _, v := range ins {
			g.Nodes[0].Inputs = append(g.Nodes[0].Inputs, v.Name)
		}
		for _, v := range outs {
			g.Nodes[0].Outputs = append(g.Nodes[0].Outputs, v.Name)
		}
		return (&onnxpb.Model{IRVersion: 8, OpsetImports: []onnxpb.OpsetID{{Version: 13}}, Graph: g}).Marshal()
	}
	// A classifier as skl2onnx exports it by default: the label, and the
	// probabilities as a sequence of maps from class to probability.
	zipmap := oneNode("ZipMap", []onnxpb.ValueInfo{onnxpb.TensorInfo("x", onnxpb.Float, n, onnxpb.FixedDim(4))}, []onnxpb.ValueInfo{
		onnxpb.TensorInfo("label", onnxpb.Int64, n),
		onnxpb.SequenceOf("probabilities", onnxpb.MapOf("", onnxpb.Int64, onnxpb.ValueInfo{Kind: onnxpb.KindTensor, ElemType: onnxpb.Float})),
	})
	batchSum := oneNode("ReduceSum", []onnxpb.ValueInfo{onnxpb.TensorInfo("x", onnxpb.Float, n, onnxpb.FixedDim(4))}, []onnxpb.ValueInfo{onnxpb.TensorInfo("total", onnxpb.Float, onnxpb.FixedDim(1), onnxpb.FixedDim(4))})
	scalar := oneNode("Mul", []onnxpb.ValueInfo{onnxpb.TensorInfo("x", onnxpb.Float, n), onnxpb.TensorInfo("s", onnxpb.Float)}, []onnxpb.ValueInfo{onnxpb.TensorInfo("y", onnxpb.Float, n)})
	notONNX := modelFile(t, []byte("#!/bin/sh\necho not a model\n"))
	small := modelFile(t, models.Small().ONNX)
	dir := ortTestData(t)
	cases := []struct {
		name   string
		params engine.Params
		want   string
	}{
		{"no path", engine.Params{}, "path is required"},
		{"unknown param", engine.Params{"path": small, "thread": 2}, `unknown field "thread"`},
		{"missing file", engine.Params{"path": "/nonexistent/model.onnx"}, "no such file"},
		{"not onnx", engine.Params{"path": notONNX}, "not a readable ONNX model"},
		{"fixed batch dim", engine.Params{"path": modelFile(t, fixed)}, "input x float32[1 4] fixes dim 0 at 1"},
		{"batch dim past rank", engine.Params{"path": small, "batch_dim": 2}, "no dim 2"},
		// Its three inputs are served but for the third, a bfloat16.
		{"several inputs, one bfloat16", engine.Params{"path": filepath.Join(dir, "example_several_inputs_and_outputs.onnx"), "batchable": false}, `input "input 3" is bfloat16[9], which benchtop tensors cannot carry`},
		{"float16", engine.Params{"path": filepath.Join(dir, "example_float16.onnx")}, `input "InputA" is float16[1 2 2 2], which benchtop tensors cannot carry`},
		{"no such output", engine.Params{"path": filepath.Join(dir, "sklearn_randomforest.onnx"), "output": "nope"}, `output "nope" is not an output`},
		{"no such outputs", engine.Params{"path": small, "outputs": []any{"probs", "logits"}}, `output "logits" is not an output of the model (outputs: probs float32[N 10])`},
		{"output and outputs", engine.Params{"path": small, "output": "probs", "outputs": []any{"probs"}}, "output and outputs both given"},
		{"no outputs", engine.Params{"path": small, "outputs": []any{}}, "outputs is empty"},
		{"an output twice", engine.Params{"path": small, "outputs": []any{"probs", "probs"}}, `outputs names "probs" twice`},
		{"zipmap output", engine.Params{"path": filepath.Join(dir, "sklearn_randomforest.onnx"), "output": "output_probability"}, `skl2onnx.to_onnx(model, X, options={id(model): {"zipmap": False}})`},
		{"zipmap built here", engine.Params{"path": modelFile(t, zipmap)}, `output "probabilities" is a seq(map(int64, float32)), not a tensor, and benchtop serves tensors only: it is what scikit-learn's ZipMap makes of a classifier's probabilities`},
		{"output fixed along the batch dim", engine.Params{"path": modelFile(t, batchSum)}, "output total float32[1 4] fixes dim 0 at 1"},
		{"scalar", engine.Params{"path": modelFile(t, scalar)}, `input "s" is a scalar (shape [])`},
	}
	typ := onnx.Type(onnx.Locate())
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := typ.MethodsFor(t.Context(), c.params)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an error about %q", err, c.want)
			}
			if err := typ.Validate(t.Context(), c.params); err == nil {
				t.Fatal("Validate passed it")
			}
		})
	}
	// The same fixed-batch model serves one request per call when told.
	ms, err := typ.MethodsFor(t.Context(), engine.Params{"path": modelFile(t, fixed), "batchable": false, "method": "predict"})
	if err != nil || ms[0].Batchable || ms[0].Name != "predict" {
		t.Fatalf("batchable: false: %+v, %v", ms, err)
	}
}

// TestPickOneOutput serves one output of a scikit-learn model with two.
func TestPickOneOutput(t *testing.T) {
	lib := library(t)
	path := foreign(t, "sklearn_randomforest.onnx")
	inst := newInstance(t, lib, engine.Params{"path": path, "output": "output_label"}, nil)
	out, err := callOne(context.Background(), inst, "run", f32Value(t, []int{3, 4}, inputs(3, 4, 5)))
	if err != nil {
		t.Fatal(err)
	}
	if out.Tensor().DType() != tensor.Int64 || !slices.Equal(out.Tensor().Shape(), []int{3}) {
		t.Fatalf("output %v", out.Tensor())
	}
}

// TestNoLibrary: without the runtime, an onnx runner fails to start and
// says how to install it; describing the model still works.
func TestNoLibrary(t *testing.T) {
	missing := onnx.NewLibrary(filepath.Join(t.TempDir(), "libonnxruntime.so.1"))
	typ := onnx.Type(missing)
	params := engine.Params{"path": modelFile(t, models.Small().ONNX)}
	if _, err := typ.MethodsFor(t.Context(), params); err != nil {
		t.Fatalf("describe needs no runtime: %v", err)
	}
	_, err := typ.New(context.Background(), engine.Env{Params: params, Threads: 1})
	if !errors.Is(err, onnx.ErrNoLibrary) || !strings.Contains(err.Error(), "scripts/install-onnxruntime.sh") {
		t.Fatalf("got %v, want ErrNoLibrary saying how to install it", err)
	}
	t.Setenv(onnx.EnvLibrary, "/nonexistent/libonnxruntime.so")
	if err := onnx.Locate().Load(); err == nil || !strings.Contains(err.Error(), onnx.EnvLibrary) {
		t.Fatalf("a wrong %s: %v", onnx.EnvLibrary, err)
	}
}

// TestGPUFallsBackToCPU: with a GPU assigned, the session tries CUDA and
// the log says which provider it runs on. The npm build of the runtime has
// no CUDA provider, so there it must fall back and still serve.
func TestGPUFallsBackToCPU(t *testing.T) {
	lib := library(t)
	var logs bytes.Buffer
	var mu sync.Mutex
	logger := slog.New(slog.NewTextHandler(&lockedWriter{w: &logs, mu: &mu}, nil))
	m := models.Small()
	inst, err := onnx.Type(lib).New(context.Background(), engine.Env{Params: engine.Params{"path": modelFile(t, m.ONNX)}, Threads: 1, GPUs: []int{0}, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	defer inst.(engine.Closer).Close()
	mu.Lock()
	text := logs.String()
	mu.Unlock()
	t.Log(text)
	switch {
	case strings.Contains(text, "provider=cuda:0"):
	case strings.Contains(text, "CUDA execution provider unavailable") && strings.Contains(text, "provider=cpu"):
	default:
		t.Fatalf("the log does not say which provider runs the model:\n%s", text)
	}
	x := inputs(2, 64, 4)
	out, err := callOne(context.Background(), inst, "run", f32Value(t, []int{2, 64}, x))
	if err != nil {
		t.Fatal(err)
	}
	want, _ := m.Forward(x)
	near(t, "gpu fallback", out.Tensor().Float32s(), want)
}

type lockedWriter struct {
	w  *bytes.Buffer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// TestDeadlineInterruptsRun: a batch whose deadline passes mid-run stops
// with an error wrapping the context's, and the session serves again.
func TestDeadlineInterruptsRun(t *testing.T) {
	lib := library(t)
	m := models.Large()
	inst := newInstance(t, lib, engine.Params{"path": modelFile(t, m.ONNX)}, nil)
	// About 50 GFLOP: seconds of work on any CPU.
	const rows = 20000
	big := f32Value(t, []int{rows, m.In()}, make([]float32, rows*m.In()))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := callOne(ctx, inst, "run", big); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want an error wrapping context.DeadlineExceeded", err)
	}
	done, cancel2 := context.WithCancel(context.Background())
	cancel2()
	if _, err := callOne(done, inst, "run", big); !errors.Is(err, context.Canceled) {
		t.Fatalf("a cancelled call: %v", err)
	}
	x := inputs(1, m.In(), 6)
	out, err := callOne(context.Background(), inst, "run", f32Value(t, []int{1, m.In()}, x))
	if err != nil {
		t.Fatalf("after an interrupted run: %v", err)
	}
	want, _ := m.Forward(x)
	near(t, "after interrupt", out.Tensor().Float32s(), want)
}

func TestStoreResolver(t *testing.T) {
	s, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	r := onnx.StoreResolver{Store: s}
	if _, _, err := r.ResolveModel("mlp:latest"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a missing model: %v", err)
	}
	m, err := s.ImportData(context.Background(), models.Small().ONNX, store.ImportOptions{Name: "mlp"})
	if err != nil {
		t.Fatal(err)
	}
	runnable, params, err := r.ResolveModel("mlp:latest")
	if err != nil || runnable != onnx.TypeName || params["path"] != m.Path() || params["method"] != "run" || params["batchable"] != true {
		t.Fatalf("resolved to %s %v, %v", runnable, params, err)
	}
	if dirs := r.WatchDirs(); len(dirs) != 1 || dirs[0] != s.Dir() || filepath.Dir(s.LatestFile("mlp")) != filepath.Join(s.Dir(), "mlp") {
		t.Fatalf("watch dirs %v", dirs)
	}
}

// callOne calls inst's method of one input and one output.
func callOne(ctx context.Context, inst engine.Instance, method string, in tensor.Value) (tensor.Value, error) {
	outs, err := inst.Call(ctx, method, []tensor.Value{in})
	if err != nil {
		return tensor.Value{}, err
	}
	if len(outs) != 1 {
		return tensor.Value{}, fmt.Errorf("%d outputs, want 1", len(outs))
	}
	return outs[0], nil
}
