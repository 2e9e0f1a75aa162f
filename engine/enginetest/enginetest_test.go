package enginetest_test

import (
	"context"
	"errors"
	"testing"

	"github.com/benchtop/benchtop/engine"
	"github.com/benchtop/benchtop/engine/enginetest"
	"github.com/benchtop/benchtop/engine/tensor"
)

// TestWhatStartsStopsWithTheTest: a runner started in a subtest serves in
// it and is closed when it ends; the engine, with the samples and the
// types given, outlives it.
func TestWhatStartsStopsWithTheTest(t *testing.T) {
	extra := &engine.RunnableType{
		Name:    "extra",
		Methods: []engine.MethodSpec{{Name: "run", Inputs: []tensor.IOSpec{{Kind: tensor.KindJSON}}, Outputs: []tensor.IOSpec{{Kind: tensor.KindJSON}}}},
		New:     func(context.Context, engine.Env) (engine.Instance, error) { return nil, errors.New("unused") },
	}
	e := enginetest.New(t, enginetest.Options{Samples: true, Engine: engine.Options{NumCPU: 2}}, extra)
	for _, name := range []string{"sim", "sentiment", "echo", "extra"} {
		if _, err := e.Registry().Lookup(name); err != nil {
			t.Error(err)
		}
	}
	var r *engine.Runner
	t.Run("sub", func(t *testing.T) {
		r = enginetest.Start(t, e, engine.RunnerConfig{Name: "echo", Runnable: "echo", Workers: 1})
		if !r.Ready() {
			t.Fatal("Start returned before a worker was ready")
		}
		if out, err := r.Run(context.Background(), "echo_text", tensor.TextValue("hi")); err != nil || out.Text() != "hi" {
			t.Fatalf("got %v, %v", out, err)
		}
	})
	if _, err := r.Run(context.Background(), "echo_text", tensor.TextValue("hi")); !errors.Is(err, engine.ErrRunnerClosed) {
		t.Fatalf("after the subtest: %v, want ErrRunnerClosed", err)
	}
}
