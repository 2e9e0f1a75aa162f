package onnx_test

import (
	"context"
	"testing"

	"github.com/benchtop/benchtop/engine"
	"github.com/benchtop/benchtop/engine/onnx"
	"github.com/benchtop/benchtop/samples/models"
)

// TestCallsReleaseEveryValue: successful and failed calls, with outputs
// written into Go memory (the MLP) or allocated by the runtime (a model
// whose output width is dynamic), leave no runtime value behind.
func TestCallsReleaseEveryValue(t *testing.T) {
	lib := library(t)
	m := models.Small()
	mlp := newInstance(t, lib, engine.Params{"path": modelFile(t, m.ONNX)}, nil)
	dyn := newInstance(t, lib, engine.Params{"path": foreign(t, "example_dynamic_axes.onnx")}, nil)
	before := onnx.LiveValues()
	ctx := context.Background()
	for i := range 50 {
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
