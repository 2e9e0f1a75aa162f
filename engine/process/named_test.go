package process

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/benchtop/benchtop/batcher"
	"github.com/benchtop/benchtop/engine"
	"github.com/benchtop/benchtop/engine/enginetest"
	"github.com/benchtop/benchtop/engine/tensor"
	"github.com/benchtop/benchtop/samples"
)

// Tests of methods of several named inputs and outputs through workers
// built on the Python SDK.

func int64s(t testing.TB, data ...int64) tensor.Value {
	t.Helper()
	x, err := tensor.NewTensor([]int{len(data)}, data)
	if err != nil {
		t.Fatal(err)
	}
	return tensor.TensorValue(x)
}

func scalar(t testing.TB, v float32) tensor.Value {
	t.Helper()
	x, err := tensor.NewTensor([]int{}, []float32{v})
	if err != nil {
		t.Fatal(err)
	}
	return tensor.TensorValue(x)
}

func TestDescribeReadsSeveralInputsAndOutputs(t *testing.T) {
	typ, _ := testType()
	specs, err := typ.Describe(t.Context(), params(t, "worker.py", nil))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		method string
		want   string
	}{
		{"pair", "x tensor float32[-1 -1], ids tensor int64[-1] → scaled tensor float32[-1 -1], next_ids tensor int64[-1], batchable along dim 0 → 0"},
		{"minus", "a json, b json → json, not batchable"},
		{"present", "tensor float32 (optional) → json, not batchable"},
		{"outputs_as", "json → label tensor int64[-1], score tensor float32[-1], not batchable"},
	}
	for _, tt := range tests {
		t.Run(tt.method, func(t *testing.T) {
			i := slices.IndexFunc(specs, func(s engine.MethodSpec) bool { return s.Name == tt.method })
			if i < 0 {
				t.Fatalf("no method %q in %v", tt.method, specs)
			}
			if got := signature(specs[i]); got != tt.want {
				t.Errorf("signature %q, want %q", got, tt.want)
			}
		})
	}
}

func TestSeveralInputsAndOutputsThroughAWorker(t *testing.T) {
	typ, _ := testType()
	e := enginetest.New(t, enginetest.Options{}, typ)
	r := startRunner(t, e, engine.RunnerConfig{Params: params(t, "worker.py", nil), Workers: 1})
	ctx := context.Background()
	t.Run("two in, two out", func(t *testing.T) {
		outs, _, err := r.RunInfo(ctx, "pair", []tensor.Value{floats(t, []int{2, 2}, []float32{1, 2, 3, 4}), int64s(t, 10, 20)})
		if err != nil {
			t.Fatal(err)
		}
		if got := outs[0].Tensor().Float32s(); !slices.Equal(got, []float32{3, 6, 9, 12}) {
			t.Errorf("scaled %v, want [3 6 9 12]", got)
		}
		if got := outs[1].Tensor().Int64s(); !slices.Equal(got, []int64{11, 21}) {
			t.Errorf("next_ids %v, want [11 21]", got)
		}
	})
	t.Run("called by keyword", func(t *testing.T) {
		outs, _, err := r.RunInfo(ctx, "minus", []tensor.Value{tensor.JSONValue(10.0), tensor.JSONValue(3.0)})
		if err != nil {
			t.Fatal(err)
		}
		if outs[0].JSON() != 7.0 {
			t.Errorf("a − b = %v, want 7: the arguments were passed by position, not by name", outs[0].JSON())
		}
	})
	t.Run("absent optional input", func(t *testing.T) {
		for _, tt := range []struct {
			in   tensor.Value
			want any
		}{{tensor.Value{}, nil}, {scalar(t, 2.5), 2.5}} {
			outs, _, err := r.RunInfo(ctx, "present", []tensor.Value{tt.in})
			if err != nil {
				t.Fatal(err)
			}
			if outs[0].JSON() != tt.want {
				t.Errorf("%v: got %v, want %v", tt.in, outs[0].JSON(), tt.want)
			}
		}
	})
	for _, how := range []string{"tuple", "dict"} {
		t.Run("outputs as a "+how, func(t *testing.T) {
			outs, _, err := r.RunInfo(ctx, "outputs_as", []tensor.Value{tensor.JSONValue(how)})
			if err != nil {
				t.Fatal(err)
			}
			if l, s := outs[0].Tensor().Int64s(), outs[1].Tensor().Float32s(); !slices.Equal(l, []int64{1}) || !slices.Equal(s, []float32{0.5}) {
				t.Errorf("label %v, score %v; want [1] and [0.5]", l, s)
			}
		})
	}
}

// Callers of mixed batch sizes share batches of a method of two inputs and
// two outputs; each gets exactly its own rows of each output.
func TestConcurrentCallersOfSeveralInputs(t *testing.T) {
	typ, _ := testType()
	e := enginetest.New(t, enginetest.Options{}, typ)
	r := startRunner(t, e, engine.RunnerConfig{
		Params: params(t, "worker.py", nil), Workers: 2,
		Batching: batcher.Config{Policy: batcher.Adaptive, MaxBatchSize: 64, MaxLatency: 30 * time.Second, MaxQueueSize: 100000},
	})
	const callers, calls, k = 200, 3, 4
	var shared atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for c := range callers {
		wg.Go(func() {
			for i := range calls {
				rows := 1 + (c+i)%5
				x := make([]float32, rows*k)
				for j := range x {
					x[j] = float32(c*1000 + i*100 + j)
				}
				ids := make([]int64, rows)
				for j := range ids {
					ids[j] = int64(c*1_000_000 + i*1000 + j)
				}
				outs, info, err := r.RunInfo(context.Background(), "pair", []tensor.Value{floats(t, []int{rows, k}, x), int64s(t, ids...)})
				if err != nil {
					errs <- fmt.Errorf("caller %d call %d: %w", c, i, err)
					return
				}
				if err := checkPair(outs, x, ids, rows, k); err != nil {
					errs <- fmt.Errorf("caller %d call %d: %w", c, i, err)
					return
				}
				if info.BatchRequests > 1 {
					shared.Add(1)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if shared.Load() == 0 {
		t.Error("no call shared its batch with another: batching never happened")
	}
}

// checkPair checks pair's outputs are x × 3 and ids + 1, row for row.
func checkPair(outs []tensor.Value, x []float32, ids []int64, rows, k int) error {
	if len(outs) != 2 {
		return fmt.Errorf("%d outputs, want 2", len(outs))
	}
	scaled, next := outs[0].Tensor(), outs[1].Tensor()
	if !slices.Equal(scaled.Shape(), []int{rows, k}) || !slices.Equal(next.Shape(), []int{rows}) {
		return fmt.Errorf("shapes %v and %v, want [%d %d] and [%d]", scaled.Shape(), next.Shape(), rows, k, rows)
	}
	for j, v := range scaled.Float32s() {
		if v != 3*x[j] {
			return fmt.Errorf("scaled element %d is %v, want %v (another caller's row?)", j, v, 3*x[j])
		}
	}
	for j, v := range next.Int64s() {
		if v != ids[j]+1 {
			return fmt.Errorf("next_ids element %d is %v, want %v (another caller's row?)", j, v, ids[j]+1)
		}
	}
	return nil
}

// Outputs that do not fit the method are refused by the SDK before they are
// sent, with a message that says what to return; that batch fails and the
// worker goes on serving.
func TestSDKRefusesWrongOutputs(t *testing.T) {
	typ, _ := testType()
	e := enginetest.New(t, enginetest.Options{}, typ)
	r := startRunner(t, e, engine.RunnerConfig{Params: params(t, "worker.py", nil), Workers: 1})
	tests := []struct {
		name   string
		method string
		how    string
		want   string
	}{
		{"a list", "outputs_as", "list",
			"TypeError: method 'outputs_as' has 2 outputs (label, score): return a tuple of them in that order, or a dict keyed by output name, not list"},
		{"three values", "outputs_as", "three",
			"TypeError: method 'outputs_as' returned 3 values, but it has 2 outputs (label, score): return one per output, in that order"},
		{"a misnamed output", "outputs_as", "misnamed",
			"TypeError: method 'outputs_as' returned a dict without 'score' and with 'scores', which it does not declare: its outputs are label, score"},
		{"a wrong dtype", "outputs_as", "dtype",
			"TypeError: output 'label': returned a tensor of float32 where int64 is declared: convert it (numpy: .astype('int64'))"},
		{"a wrong dtype, one output", "wrong_output", "",
			"TypeError: returned a tensor of int64 where float32 is declared"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := r.RunInfo(context.Background(), tt.method, []tensor.Value{tensor.JSONValue(tt.how)})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v,\nwant one containing %q", err, tt.want)
			}
			if errors.Is(err, engine.ErrWorkerCrashed) || errors.Is(err, engine.ErrInvalidInput) {
				t.Errorf("a wrong output is the worker's fault, not a crash or the caller's: %v", err)
			}
		})
	}
	if _, _, err := r.RunInfo(context.Background(), "outputs_as", []tensor.Value{tensor.JSONValue("tuple")}); err != nil {
		t.Fatal(err)
	}
	if st := r.Stats(engine.StatsOptions{}); st.Restarts != 0 {
		t.Errorf("%d workers restarted, want none", st.Restarts)
	}
}
func strs(t testing.TB, data ...string) tensor.Value {
	t.Helper()
	x, err := tensor.NewStringTensor([]int{len(data)}, data)
	if err != nil {
		t.Fatal(err)
	}
	return tensor.TensorValue(x)
}

func bools(t testing.TB, v tensor.Value) []bool {
	t.Helper()
	b, err := tensor.TensorData[bool](v.Tensor())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The Python sample's classify is the Go sample's, output for output, for
// concurrent callers of mixed sizes with and without their own threshold.
func TestSentimentClassifyAgreesWithGo(t *testing.T) {
	typ, _ := testType()
	e := enginetest.New(t, enginetest.Options{}, typ, samples.Sentiment())
	p := engine.Params{"command": []any{python(t), filepath.Join(sdkDir(t), "sentiment_worker.py")}, "init": map[string]any{"threshold": 0.05}}
	batching := batcher.Config{Policy: batcher.Adaptive, MaxBatchSize: 32, MaxLatency: 30 * time.Second, MaxQueueSize: 100000}
	py := startRunner(t, e, engine.RunnerConfig{Name: "py", Params: p, Workers: 2, Batching: batching})
	goRunner := enginetest.Start(t, e, engine.RunnerConfig{Name: "go", Runnable: "sentiment", Params: engine.Params{"threshold": 0.05}, Workers: 1, Batching: batching})
	texts := []string{
		"I really love this, it is great!!", "not good at all", "This is the worst, most annoying bug I have ever seen",
		"It's okay I guess", "Absolutely fantastic and wonderful! Highly recommend", "didn't enjoy it, kinda boring", "",
	}
	thresholds := []tensor.Value{{}, scalar(t, 0), scalar(t, 0.5), scalar(t, -0.3)}
	const callers = 60
	var shared atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for c := range callers {
		wg.Go(func() {
			n := 1 + c%len(texts)
			batch := make([]string, n)
			for j := range batch {
				batch[j] = texts[(c+j)%len(texts)]
			}
			in := []tensor.Value{strs(t, batch...), thresholds[c%len(thresholds)]}
			got, info, err := py.RunInfo(context.Background(), "classify", in)
			if err != nil {
				errs <- fmt.Errorf("caller %d: python: %w", c, err)
				return
			}
			if info.BatchRequests > 1 {
				shared.Add(1)
			}
			want, _, err := goRunner.RunInfo(context.Background(), "classify", in)
			if err != nil {
				errs <- fmt.Errorf("caller %d: go: %w", c, err)
				return
			}
			gp, wp := bools(t, got[0]), bools(t, want[0])
			gs, ws := got[1].Tensor().Float32s(), want[1].Tensor().Float32s()
			if !slices.Equal(gp, wp) || !slices.Equal(gs, ws) {
				errs <- fmt.Errorf("caller %d, texts %q, threshold %v: python positive %v scores %v, go %v %v", c, batch, in[1], gp, gs, wp, ws)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if shared.Load() == 0 {
		t.Error("no call to the Python classify shared its batch with another: batching never happened")
	}
	_, _, err := py.RunInfo(context.Background(), "classify", []tensor.Value{strs(t, "fine"), scalar(t, 2)})
	if !errors.Is(err, engine.ErrInvalidInput) || !strings.Contains(err.Error(), "threshold 2.0 is outside the score range [-1, 1]") {
		t.Errorf("threshold 2: %v, want invalid input", err)
	}
}
