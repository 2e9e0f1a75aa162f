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
		`apis[1].input: "csv": want json, text or ndarray`,
		`apis[1].runner: "ghost" is not a runner in this config (runners: broken, sentiment, sim)`,
		`apis[2]: api "classify": sentiment.classify: method "classify" takes 2 inputs (texts, threshold) and returns 2 outputs (positive, scores); this front end serves only methods of one input and one output`,
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
