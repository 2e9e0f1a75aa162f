package onnx_test

import (
	"context"
	"testing"

	"github.com/benchtop/benchtop/engine"
	"github.com/benchtop/benchtop/engine/onnx"
	"github.com/benchtop/benchtop/engine/tensor"
	"github.com/benchtop/benchtop/samples/models"
	"github.com/benchtop/benchtop/store/onnxpb"
)

// TestCallsReleaseEveryValue: successful and failed calls, of one input
// or several, with outputs written into Go memory (the MLP, the text
// classifier) or allocated by the runtime (models whose output width is
// dynamic, strings), leave no runtime value behind.
func TestCallsReleaseEveryValue(t *testing.T) {
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
