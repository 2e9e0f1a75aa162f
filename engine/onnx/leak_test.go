package onnx_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/benchtop/benchtop/engine"
	"github.com/benchtop/benchtop/engine/onnx"
	"github.com/benchtop/benchtop/samples/models"
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
