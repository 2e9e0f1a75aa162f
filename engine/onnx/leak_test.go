package onnx_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/benchtop/benchtop/engine"
	"github.com/benchtop/benchtop/engine/onnx"
	"github.com/benchtop/benchtop/engine/tensor"
	"github.com/benchtop/benchtop/samples/models"
	"github.com/benchtop/benchtop/store/onnxpb"
)

// TestCallsReleaseEveryValue: successful calls, with outputs written into
// Go memory (the MLP) or allocated by the runtime (a model whose output
// width is dynamic), and calls that fail after their values were made (a
// run its deadline interrupts) leave no runtime value behind. Each path is
// first shown to make values at all, so that a count back at its start
// means they were released.
func TestCallsReleaseEveryValue(t *testing.T) {
	lib := library(t)
	m := models.Small()
	mlp := newInstance(t, lib, engine.Params{"path": modelFile(t, m.ONNX)}, nil)
	dyn := newInstance(t, lib, engine.Params{"path": foreign(t, "example_dynamic_axes.onnx")}, nil)
	large := models.Large()
	slow := newInstance(t, lib, engine.Params{"path": modelFile(t, large.ONNX)}, nil)
	ctx := context.Background()
	// check runs call n times and fails unless each call made at least
	// perCall values and all were released.
	check := func(t *testing.T, what string, n int, perCall int64, call func(i int)) {
		t.Helper()
		live, made := onnx.LiveValues(), onnx.MadeValues()
		for i := range n {
			call(i)
		}
		if got := onnx.MadeValues() - made; got < int64(n)*perCall {
			t.Fatalf("%s: %d calls made %d runtime values, want at least %d each: the path no longer allocates, so this checks nothing", what, n, got, perCall)
		}
		if after := onnx.LiveValues(); after != live {
			t.Fatalf("%s: %d runtime values were not released", what, after-live)
		}
	}
	check(t, "MLP, output into Go memory", 50, 2, func(i int) {
		if _, err := callOne(ctx, mlp, "run", f32Value(t, []int{i%8 + 1, 64}, inputs(i%8+1, 64, i))); err != nil {
			t.Fatal(err)
		}
	})
	check(t, "dynamic output, allocated by the runtime", 50, 2, func(i int) {
		if _, err := callOne(ctx, dyn, "run", f32Value(t, []int{i%8 + 1, 10}, inputs(i%8+1, 10, i))); err != nil {
			t.Fatal(err)
		}
	})
	// About 50 GFLOP a call: seconds of work, stopped after 20 ms with its
	// input and output made.
	const rows = 20000
	big := f32Value(t, []int{rows, large.In()}, make([]float32, rows*large.In()))
	check(t, "run interrupted by its deadline", 3, 2, func(int) {
		ctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
		defer cancel()
		if _, err := callOne(ctx, slow, "run", big); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("got %v, want a run interrupted by its deadline", err)
		}
	})
	// A call refused before the runtime is asked makes nothing.
	made := onnx.MadeValues()
	if _, err := callOne(ctx, mlp, "run", f32Value(t, []int{1, 63}, make([]float32, 63))); err == nil {
		t.Fatal("a bad input was accepted")
	}
	if onnx.MadeValues() != made {
		t.Fatal("a call refused for its shape made runtime values")
	}
}

// TestCallsOfSeveralInputsReleaseEveryValue: successful and failed calls,
// of one input or several, with outputs written into Go memory (the MLP,
// the text classifier) or allocated by the runtime (models whose output
// width is dynamic, strings), leave no runtime value behind.
func TestCallsOfSeveralInputsReleaseEveryValue(t *testing.T) {
	lib := library(t)
	m := models.Small()
	mlp := newInstance(t, lib, engine.Params{"path": modelFile(t, m.ONNX)}, nil)
	dyn := newInstance(t, lib, engine.Params{"path": foreign(t, "example_dynamic_axes.onnx")}, nil)
	text := newInstance(t, lib, engine.Params{"path": modelFile(t, models.Text().ONNX)}, nil)
	two := newInstance(t, lib, engine.Params{"path": modelFile(t, twoDtypes())}, nil)
	reshape := newInstance(t, lib, engine.Params{"path": modelFile(t, rowsOfFour())}, nil)
	before := onnx.LiveValues()
	ctx := context.Background()
	for i := range 50 {
		ids, mask := tokens(i%4+1, i%9+1, i)
		if _, err := text.Call(ctx, "run", textRequest{i%4 + 1, i%9 + 1, ids, mask}.values(t)); err != nil {
			t.Fatal(err)
		}
		if _, err := text.Call(ctx, "run", []tensor.Value{i64Value(t, []int{1, 2}, []int64{1, 2}), f32Value(t, []int{1, 2}, []float32{1, 1})}); err == nil {
			t.Fatal("a bad input was accepted")
		}
		// The runtime fails: inputs and outputs were made before it ran.
		if _, err := reshape.Call(ctx, "run", []tensor.Value{f32Value(t, []int{1, 3}, []float32{1, 2, 3}), i64Value(t, []int{1}, []int64{7})}); err == nil {
			t.Fatal("three values reshaped to rows of four")
		}
		if _, err := reshape.Call(ctx, "run", []tensor.Value{f32Value(t, []int{2, 4}, make([]float32, 8)), i64Value(t, []int{2}, []int64{7, 8})}); err != nil {
			t.Fatal(err)
		}
		strs, _ := tensor.NewStringTensor([]int{2}, []string{"a", "b"})
		if _, err := two.Call(ctx, "run", []tensor.Value{tensor.TensorValue(strs), i64Value(t, []int{2, i%3 + 1}, make([]int64, 2*(i%3+1)))}); err != nil {
			t.Fatal(err)
		}
		if _, err := callOne(ctx, mlp, "run", f32Value(t, []int{i%8 + 1, 64}, inputs(i%8+1, 64, i))); err != nil {
			t.Fatal(err)
		}
		if _, err := callOne(ctx, dyn, "run", f32Value(t, []int{i%8 + 1, 10}, inputs(i%8+1, 10, i))); err != nil {
			t.Fatal(err)
		}
		if _, err := callOne(ctx, mlp, "run", f32Value(t, []int{1, 63}, make([]float32, 63))); err == nil {
			t.Fatal("a bad input was accepted")
		}
	}
	if after := onnx.LiveValues(); after != before {
		t.Fatalf("%d runtime values were not released", after-before)
	}
}

// rowsOfFour reshapes x [N, W] into rows of four, y [N, 4], and passes
// tag [N] through: the runtime fails when W is not 4, after every input
// and output was made.
func rowsOfFour() []byte {
	n := onnxpb.SymbolicDim("N")
	return (&onnxpb.Model{IRVersion: 8, OpsetImports: []onnxpb.OpsetID{{Version: 13}}, Graph: onnxpb.Graph{
		Nodes: []onnxpb.Node{
			{OpType: "Reshape", Inputs: []string{"x", "shape"}, Outputs: []string{"y"}},
			{OpType: "Identity", Inputs: []string{"tag"}, Outputs: []string{"tag_out"}},
		},
		Initializers: []onnxpb.Tensor{{Name: "shape", DataType: onnxpb.Int64, Dims: []int64{2}, Int64Data: []int64{-1, 4}}},
		Inputs:       []onnxpb.ValueInfo{onnxpb.TensorInfo("x", onnxpb.Float, n, onnxpb.SymbolicDim("W")), onnxpb.TensorInfo("tag", onnxpb.Int64, n)},
		Outputs:      []onnxpb.ValueInfo{onnxpb.TensorInfo("y", onnxpb.Float, n, onnxpb.FixedDim(4)), onnxpb.TensorInfo("tag_out", onnxpb.Int64, n)},
	}}).Marshal()
}
