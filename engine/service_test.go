package engine_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/benchtop/benchtop/engine"
	"github.com/benchtop/benchtop/engine/enginetest"
	"github.com/benchtop/benchtop/engine/tensor"
)

// passType is a runnable of one method that passes its input through,
// calling hook first (from the worker, with the worker's ctx).
func passType(name string, hook func(ctx context.Context)) *engine.RunnableType {
	return &engine.RunnableType{
		Name:    name,
		Methods: []engine.MethodSpec{{Name: "pass", Inputs: tensor.IOSpecs{{Kind: tensor.KindTensor}}, Outputs: tensor.IOSpecs{{Kind: tensor.KindTensor}}}},
		New: func(context.Context, engine.Env) (engine.Instance, error) {
			return instanceFunc(func(ctx context.Context, in []tensor.Value) ([]tensor.Value, error) {
				hook(ctx)
				return in, nil
			}), nil
		},
	}
}

type instanceFunc func(ctx context.Context, in []tensor.Value) ([]tensor.Value, error)

func (f instanceFunc) Call(ctx context.Context, _ string, in []tensor.Value) ([]tensor.Value, error) {
	return f(ctx, in)
}

func applyConfig(t *testing.T, e *engine.Engine, cfg engine.Config) {
	t.Helper()
	ctx := context.Background()
	p, err := e.Plan(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Apply(ctx, p); err != nil {
		t.Fatal(err)
	}
}

// TestPipelineCancelStopsLaterSteps: a caller gone while the first step
// runs gets its error at once, naming the step, and the second step never
// starts; the same call with the caller there runs both.
func TestPipelineCancelStopsLaterSteps(t *testing.T) {
	entered := make(chan struct{}, 1)
	release := make(chan struct{})
	var counted atomic.Int64
	hold := passType("hold", func(ctx context.Context) {
		entered <- struct{}{}
		select {
		case <-release:
		case <-ctx.Done():
		}
	})
	count := passType("count", func(context.Context) { counted.Add(1) })
	e := enginetest.New(t, enginetest.Options{}, hold, count)
	applyConfig(t, e, engine.Config{
		Runners: []engine.RunnerConfig{{Name: "hold", Runnable: "hold", Workers: 1}, {Name: "count", Runnable: "count", Workers: 1}},
		APIs: []engine.APISpec{{Name: "p", Steps: []engine.StepSpec{
			{Runner: "hold", Method: "pass", Inputs: []engine.Binding{{Name: "input", From: "$input.x"}}},
			{Runner: "count", Method: "pass", Inputs: []engine.Binding{{Name: "input", From: "hold.output"}}},
		}, Returns: []engine.Binding{{Name: "y", From: "count.output"}}}},
	})
	in := []tensor.Value{rowsTensor(t, 1, 1, 2)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, _, err := e.CallAPI(ctx, "p", in)
		done <- err
	}()
	<-entered
	cancel()
	err := <-done
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), `step "hold" (hold.pass)`) {
		t.Fatalf("cancelled call: %v, want context.Canceled naming step hold", err)
	}
	close(release)
	if n := counted.Load(); n != 0 {
		t.Fatalf("the second step ran %d times after its caller left", n)
	}
	outs, info, err := e.CallAPI(context.Background(), "p", in)
	<-entered
	if err != nil || len(outs) != 1 || counted.Load() != 1 {
		t.Fatalf("call: %v %v, second step ran %d times, want once", outs, err, counted.Load())
	}
	if len(info.Steps) != 2 || info.Steps[0].Name != "hold" || info.Steps[1].Name != "count" {
		t.Fatalf("steps: %+v", info.Steps)
	}
}

// TestPlanComposedAPIs: every problem of a Go API or a pipeline is
// reported at its path, saying what to fix.
func TestPlanComposedAPIs(t *testing.T) {
	wrong := &engine.RunnableType{
		Name: "wrong",
		Methods: []engine.MethodSpec{{Name: "is_positive",
			Inputs:  tensor.IOSpecs{{Kind: tensor.KindTensor, DType: tensor.Float32}},
			Outputs: tensor.IOSpecs{{Kind: tensor.KindJSON}}}},
		New: func(context.Context, engine.Env) (engine.Instance, error) { return nil, errors.New("never started") },
	}
	e := enginetest.New(t, enginetest.Options{Samples: true}, wrong)
	runners := []engine.RunnerConfig{
		{Name: "sentiment", Runnable: "sentiment"}, {Name: "echo", Runnable: "echo"},
		{Name: "sim", Runnable: "sim"}, {Name: "wrong", Runnable: "wrong"},
	}
	step := func(name, runner, method string, bind ...string) engine.StepSpec {
		s := engine.StepSpec{Name: name, Runner: runner, Method: method}
		for i := 0; i+1 < len(bind); i += 2 {
			s.Inputs = append(s.Inputs, engine.Binding{Name: bind[i], From: bind[i+1]})
		}
		return s
	}
	out := func(name, from string) []engine.Binding { return []engine.Binding{{Name: name, From: from}} }
	for _, tc := range []struct {
		name      string
		api       engine.APISpec
		path, msg string
	}{
		{"unknown func", engine.APISpec{Name: "a", Func: "nope"}, "apis[0].func", `unknown service api func "nope" (registered: sentiment-analysis, sentiment-compare)`},
		{"role unbound", engine.APISpec{Name: "a", Func: "sentiment-analysis", Runners: map[string]string{}}, "apis[0].runners", `role "model" is not bound`},
		{"unknown role", engine.APISpec{Name: "a", Func: "sentiment-analysis", Runners: map[string]string{"model": "sentiment", "modle": "sentiment"}}, "apis[0].runners.modle", `has no role "modle" (roles: model)`},
		{"role's runner lacks the method", engine.APISpec{Name: "a", Func: "sentiment-analysis", Runners: map[string]string{"model": "echo"}}, "apis[0].runners.model.method", `runner "echo" has no method "is_positive"`},
		{"role's method does not fit", engine.APISpec{Name: "a", Func: "sentiment-analysis", Runners: map[string]string{"model": "wrong"}}, "apis[0].runners.model", `runner "wrong" does not fit: role "model" passes "input" as text, but method is_positive takes tensor float32`},
		{"role bound to no runner", engine.APISpec{Name: "a", Func: "sentiment-analysis", Runners: map[string]string{"model": "nope"}}, "apis[0].runners.model.runner", `"nope" is not a runner in this config`},
		{"two forms", engine.APISpec{Name: "a", Runner: "echo", Method: "echo", Func: "sentiment-analysis"}, "apis[0]", "say what the api calls, one way"},
		{"cycle", engine.APISpec{Name: "a", Steps: []engine.StepSpec{
			step("one", "echo", "echo", "input", "two.output"), step("two", "echo", "echo", "input", "one.output"),
		}, Returns: out("y", "two.output")}, "apis[0].steps[1]", "steps form a cycle (two → one → two)"},
		{"own output", engine.APISpec{Name: "a", Steps: []engine.StepSpec{step("one", "echo", "echo", "input", "one.output")}, Returns: out("y", "one.output")},
			"apis[0].steps[0].inputs.input", `step "one" takes its own output`},
		{"dtype along an edge", engine.APISpec{Name: "a", Steps: []engine.StepSpec{
			step("s", "sentiment", "scores", "input", "$input.t"), step("c", "sentiment", "classify", "texts", "s.output"),
		}, Returns: out("y", "c.positive")}, "apis[0].steps[1].inputs.texts", "s.output is tensor float32[-1], but sentiment.classify takes \"texts\" as tensor string[-1]: dtype float32 is not string"},
		{"rank along an edge", engine.APISpec{Name: "a", Steps: []engine.StepSpec{
			step("s", "sentiment", "scores", "input", "$input.t"), step("p", "sim", "predict", "input", "s.output"),
		}, Returns: out("y", "p.output")}, "apis[0].steps[1].inputs.input", "shape [-1] has 1 dims, not 2"},
		{"one input, two wants", engine.APISpec{Name: "a", Steps: []engine.StepSpec{
			step("s", "sentiment", "scores", "input", "$input.x"), step("p", "sim", "predict", "input", "$input.x"),
		}, Returns: out("y", "p.output")}, "apis[0].steps[1].inputs.input", "$input.x feeds inputs that want tensor string[-1] and tensor float32[-1 -1]"},
		{"unknown step", engine.APISpec{Name: "a", Steps: []engine.StepSpec{step("one", "echo", "echo", "input", "zero.output")}, Returns: out("y", "one.output")},
			"apis[0].steps[0].inputs.input", `"zero.output" is neither $input.NAME (an input of the api) nor STEP.OUTPUT (steps: one)`},
		{"unknown output", engine.APISpec{Name: "a", Steps: []engine.StepSpec{step("one", "echo", "echo", "input", "$input.x")}, Returns: out("y", "one.result")},
			"apis[0].outputs.y", `step "one" (echo.echo) has no output "result" (it returns 1 output)`},
		{"unbound input", engine.APISpec{Name: "a", Steps: []engine.StepSpec{step("c", "sentiment", "classify", "threshold", "$input.t")}, Returns: out("y", "c.positive")},
			"apis[0].steps[0].inputs", `sentiment.classify needs input "texts" (tensor string[-1])`},
		{"unknown input", engine.APISpec{Name: "a", Steps: []engine.StepSpec{step("one", "echo", "echo", "input", "$input.x", "inptu", "$input.y")}, Returns: out("y", "one.output")},
			"apis[0].steps[0].inputs.inptu", `echo.echo has no input "inptu"`},
		{"no outputs", engine.APISpec{Name: "a", Steps: []engine.StepSpec{step("one", "echo", "echo", "input", "$input.x")}}, "apis[0]", "a pipeline needs outputs"},
		{"steps of one name", engine.APISpec{Name: "a", Steps: []engine.StepSpec{step("", "echo", "echo", "input", "$input.x"), step("", "echo", "echo", "input", "$input.x")}, Returns: out("y", "echo.output")},
			"apis[0].steps[1]", `steps 0 and 1 are both called "echo": give each a name`},
		{"kind cannot carry two inputs", engine.APISpec{Name: "a", Input: engine.IONDArray, Steps: []engine.StepSpec{step("c", "sentiment", "classify", "texts", "$input.t", "threshold", "$input.h")}, Returns: out("y", "c.positive")},
			"apis[0].input", "ndarray does not fit api \"a\", which takes 2 inputs (t, h): use object"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.Plan(context.Background(), engine.Config{Runners: runners, APIs: []engine.APISpec{tc.api}})
			var ps engine.Problems
			if !errors.As(err, &ps) {
				t.Fatalf("Plan: %v, want Problems", err)
			}
			for _, p := range ps {
				if p.Path == tc.path && strings.Contains(p.Err.Error(), tc.msg) {
					return
				}
			}
			t.Fatalf("problems:\n%v\nwant at %s: %s", err, tc.path, tc.msg)
		})
	}
}

// TestPipelineSignature: a pipeline's inputs are as specific as every step
// they feed wants; its outputs are the named step outputs; kinds default.
func TestPipelineSignature(t *testing.T) {
	e := enginetest.New(t, enginetest.Options{Samples: true})
	p, err := e.Plan(context.Background(), engine.Config{
		Runners: []engine.RunnerConfig{{Name: "sentiment", Runnable: "sentiment"}, {Name: "echo", Runnable: "echo"}},
		APIs: []engine.APISpec{{Name: "a", Steps: []engine.StepSpec{
			{Name: "same", Runner: "echo", Method: "echo", Inputs: []engine.Binding{{Name: "input", From: "$input.texts"}}},
			{Name: "c", Runner: "sentiment", Method: "classify", Inputs: []engine.Binding{{Name: "texts", From: "same.output"}, {Name: "threshold", From: "$input.threshold"}}},
			{Name: "s", Runner: "sentiment", Method: "scores", Inputs: []engine.Binding{{Name: "input", From: "$input.texts"}}},
		}, Returns: []engine.Binding{{Name: "positive", From: "c.positive"}, {Name: "scores", From: "s.output"}}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	a := p.Config().APIs[0]
	if got := a.Inputs.String(); got != "texts tensor string[-1], threshold tensor float32[] (optional)" {
		t.Errorf("inputs: %s", got)
	}
	if got := a.Outputs.String(); got != "positive tensor bool[-1], scores tensor float32[-1]" {
		t.Errorf("outputs: %s", got)
	}
	if a.Input != engine.IOObject || a.Output != engine.IOObject {
		t.Errorf("kinds %s → %s, want object → object", a.Input, a.Output)
	}
}

// TestGoAPIMetricsLeaveWithIt: a Go API's own collectors and the engine's
// benchtop_api_* series of an API leave when a reload removes it.
func TestGoAPIMetricsLeaveWithIt(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	e := newEngineOn(t, reg)
	runners := []engine.RunnerConfig{{Name: "sentiment", Runnable: "sentiment", Workers: 1}}
	applyConfig(t, e, engine.Config{Runners: runners, APIs: []engine.APISpec{
		{Name: "analysis", Func: "sentiment-analysis", Runners: map[string]string{"model": "sentiment"}},
	}})
	outs, info, err := e.CallAPI(context.Background(), "analysis", []tensor.Value{tensor.TextValue("I love it")})
	if err != nil {
		t.Fatal(err)
	}
	if m, _ := outs[0].JSON().(map[string]any); m["is_positive"] != true || len(info.Steps) != 1 || info.Steps[0].Runner != "sentiment" {
		t.Fatalf("analysis: %v, steps %+v", outs[0], info.Steps)
	}
	lintMetrics(t, reg)
	has := func(name string) bool {
		for n, mf := range gather(t, reg) {
			if n != name {
				continue
			}
			for _, m := range mf.GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == "api" && l.GetValue() == "analysis" {
						return true
					}
				}
			}
		}
		return false
	}
	names := []string{"sentiment_analysis_polarity_total", "benchtop_api_calls_total", "benchtop_api_call_duration_seconds", "benchtop_api_step_duration_seconds"}
	for _, n := range names {
		if !has(n) {
			t.Errorf("%s{api=analysis} missing", n)
		}
	}
	applyConfig(t, e, engine.Config{Runners: runners})
	for _, n := range names {
		if has(n) {
			t.Errorf("%s{api=analysis} still there after the api left", n)
		}
	}
	if _, _, err := e.CallAPI(context.Background(), "analysis", nil); !errors.Is(err, engine.ErrUnknownAPI) {
		t.Errorf("call of a removed api: %v, want ErrUnknownAPI", err)
	}
}
