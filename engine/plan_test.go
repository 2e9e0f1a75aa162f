package engine_test

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/benchtop/benchtop/batcher"
	"github.com/benchtop/benchtop/engine"
	"github.com/benchtop/benchtop/engine/tensor"
)

// TestPlanProblemPaths: every problem is reported at once, each at the path
// of the setting at fault in the config given, as the file spells it.
func TestPlanProblemPaths(t *testing.T) {
	e := newEngine(t)
	cfg := engine.Config{
		Runners: []engine.RunnerConfig{
			{Name: "sim", Runnable: "sim"},
			{Name: "sentiment", Runnable: "sentiment", Methods: map[string]batcher.Config{"is_positive": batcher.DefaultConfig()}},
			{
				Name: "broken", Runnable: "sim", Params: engine.Params{"fixd_ms": 1}, Workers: -1, Timeout: -time.Second,
				Batching: batcher.Config{Policy: batcher.Fixed, MaxQueueSize: 10},
				Methods:  map[string]batcher.Config{"forecast": batcher.DefaultConfig()},
			},
			{Name: "sim", Runnable: "nope"},
		},
		APIs: []engine.APISpec{
			{Name: "predict", Runner: "sim", Method: "run", Input: engine.IONDArray, Output: engine.IONDArray},
			{Name: "Bad", Runner: "ghost", Method: "x", Input: "csv", Output: engine.IOJSON},
			{Name: "classify", Runner: "sentiment", Method: "classify", Input: engine.IONDArray, Output: engine.IONDArray},
		},
	}
	_, err := e.Plan(t.Context(), cfg)
	var ps engine.Problems
	if !errors.As(err, &ps) {
		t.Fatalf("got %v, want engine.Problems", err)
	}
	want := []string{
		`runners[1].methods.is_positive: method "is_positive" is not batchable, so it has no batching to set`,
		`runners[2].workers: -1: want 1 to 256, or leave it out to size the pool from resources`,
		`runners[2].timeout: -1s: want a positive duration, or leave it out for 1m0s`,
		`runners[2].batching.max_batch_size: 0: want at least 1`,
		`runners[2].init: init params: unknown field "fixd_ms"`,
		`runners[2].methods.forecast: runnable "sim" has no method "forecast" (methods: predict)`,
		`runners[3].name: "sim" is used by another runner`,
		`runners[3].runnable: unknown runnable "nope" (registered: echo, sentiment, sim)`,
		`apis[0].method: runner "sim" has no method "run" (methods: predict)`,
		`apis[1].name: "Bad": use lower-case letters, digits and -._ (1 to 63 characters, starting and ending with a letter or digit)`,
		`apis[1].input: "csv": want json, text, ndarray or object`,
		`apis[1].runner: "ghost" is not a runner in this config (runners: broken, sentiment, sim)`,
		`apis[2]: api "classify": input ndarray does not fit sentiment.classify, which takes 2 inputs (texts, threshold): use object, a JSON object keyed by input name`,
	}
	if got := strings.Split(err.Error(), "\n"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if ps[0].Path != "runners[1].methods.is_positive" {
		t.Errorf("first path %q", ps[0].Path)
	}
	if len(e.Runners()) != 0 || len(e.APIs()) != 0 {
		t.Fatal("a refused plan changed the engine")
	}
}

// TestPlanChangesNothing: Plan fills in defaults in the plan, not in the
// config it was given, and starts nothing; Apply serves the plan.
func TestPlanChangesNothing(t *testing.T) {
	e := newEngine(t)
	build := func() engine.Config {
		return engine.Config{
			Runners: []engine.RunnerConfig{{
				Name: "sim", Runnable: "sim", Workers: 1, Params: engine.Params{"fixed_ms": 0.5},
				Methods: map[string]batcher.Config{"predict": batcher.DefaultConfig()},
			}},
			APIs: []engine.APISpec{{Name: "predict", Runner: "sim", Method: "predict", Input: "NDArray", Output: engine.IONDArray}},
		}
	}
	cfg := build()
	p, err := e.Plan(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cfg, build()) {
		t.Fatalf("Plan changed its input: %+v", cfg)
	}
	if len(e.Runners()) != 0 || len(e.APIs()) != 0 {
		t.Fatal("Plan changed the engine")
	}
	planned := p.Config()
	if rc := planned.Runners[0]; rc.Batching != batcher.DefaultConfig() || rc.Timeout != engine.DefaultTimeout {
		t.Fatalf("plan without defaults: %+v", rc)
	}
	if planned.APIs[0].Input != engine.IONDArray {
		t.Fatalf("api input %q, want it parsed", planned.APIs[0].Input)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	res, err := e.Apply(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Changes) != 2 {
		t.Fatalf("changes %q, want the runner and the api added", res.Changes)
	}
	r, err := e.Runner("sim")
	if err != nil {
		t.Fatal(err)
	}
	if r.Config().Timeout != engine.DefaultTimeout {
		t.Fatalf("runner timeout %v", r.Config().Timeout)
	}
	if _, ok := e.API("predict"); !ok {
		t.Fatal("api not served")
	}
	// The same plan again is a no-op: Apply diffs against what serves.
	if res, err := e.Apply(ctx, p); err != nil || len(res.Changes) != 0 {
		t.Fatalf("reapplied: %q, %v", res.Changes, err)
	}
}

func TestApplyTakesOnlyItsEnginesPlans(t *testing.T) {
	a, b := newEngine(t), newEngine(t)
	p, err := a.Plan(t.Context(), engine.Config{Runners: []engine.RunnerConfig{{Name: "sim", Runnable: "sim", Workers: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Apply(t.Context(), p); err == nil {
		t.Fatal("applied another engine's plan")
	}
	if _, err := b.Apply(t.Context(), nil); err == nil {
		t.Fatal("applied no plan")
	}
}

// TestCheckAPI: an object body fits any method; any other kind carries one
// value, so a method of several inputs or outputs needs object on that side.
func TestCheckAPI(t *testing.T) {
	rows := tensor.IOSpec{Name: "input", Kind: tensor.KindTensor, DType: tensor.Float32, Shape: []int{-1, 4}}
	one := engine.MethodSpec{Name: "predict", Inputs: tensor.IOSpecs{rows}, Outputs: tensor.IOSpecs{{Name: "output", Kind: tensor.KindTensor}}}
	two := engine.MethodSpec{Name: "classify",
		Inputs:  tensor.IOSpecs{{Name: "ids", Kind: tensor.KindTensor}, {Name: "mask", Kind: tensor.KindTensor, Optional: true}},
		Outputs: tensor.IOSpecs{{Name: "label", Kind: tensor.KindTensor}, {Name: "probs", Kind: tensor.KindTensor}}}
	tests := []struct {
		name          string
		m             engine.MethodSpec
		input, output engine.IOKind
		want          string
	}{
		{"one in, one out", one, engine.IONDArray, engine.IONDArray, ""},
		{"object around one input", one, engine.IOObject, engine.IONDArray, ""},
		{"object around one output", one, engine.IONDArray, engine.IOObject, ""},
		{"text for a tensor", one, engine.IOText, engine.IONDArray, `api "a": input text does not fit r.predict, which takes tensor float32[-1 4] (use ndarray)`},
		{"several, as objects", two, engine.IOObject, engine.IOObject, ""},
		{"several inputs, one body", two, engine.IONDArray, engine.IOObject, `api "a": input ndarray does not fit r.classify, which takes 2 inputs (ids, mask): use object, a JSON object keyed by input name`},
		{"several outputs, one body", two, engine.IOObject, engine.IOJSON, `api "a": output json does not fit r.classify, which returns 2 outputs (label, probs): use object, a JSON object keyed by output name`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := engine.CheckAPI(engine.APISpec{Name: "a", Runner: "r", Method: tc.m.Name, Input: tc.input, Output: tc.output}, tc.m)
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}
