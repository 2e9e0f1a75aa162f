package engine_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/benchtop/benchtop/batcher"
	"github.com/benchtop/benchtop/engine"
	"github.com/benchtop/benchtop/engine/enginetest"
	"github.com/benchtop/benchtop/engine/tensor"
)

// BenchmarkPipelineOverhead: a two-step pipeline of echo (echo-a, then
// echo-b on its output) through CallAPI, against a Go client calling the
// same two runners one after the other (RunInfo twice), at 1 and 64
// callers. added_us_per_step is the pipeline's time per request minus the
// direct client's, halved; compare direct and pipeline ns/op of one run.
func BenchmarkPipelineOverhead(b *testing.B) {
	e := enginetest.New(b, enginetest.Options{Samples: true})
	// No latency bound: a stall of the machine must not turn into
	// refusals, the figure is the cost of a step.
	runners := []engine.RunnerConfig{
		{Name: "echo-a", Runnable: "echo", Workers: 1, Batching: batching(batcher.Adaptive, 64, 0)},
		{Name: "echo-b", Runnable: "echo", Workers: 1, Batching: batching(batcher.Adaptive, 64, 0)},
	}
	for _, rc := range runners {
		enginetest.Start(b, e, rc)
	}
	ctx := context.Background()
	p, err := e.Plan(ctx, engine.Config{
		Runners: runners,
		APIs: []engine.APISpec{{Name: "twice", Steps: []engine.StepSpec{
			{Name: "a", Runner: "echo-a", Method: "echo", Inputs: []engine.Binding{{Name: "input", From: "$input.x"}}},
			{Name: "b", Runner: "echo-b", Method: "echo", Inputs: []engine.Binding{{Name: "input", From: "a.output"}}},
		}, Returns: []engine.Binding{{Name: "y", From: "b.output"}}}},
	})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := e.Apply(ctx, p); err != nil {
		b.Fatal(err)
	}
	in := []tensor.Value{rowsTensor(b, 1, 1, 4)}
	direct := func(int) error {
		out, _, err := e.RunInfo(ctx, "echo-a", "echo", in)
		if err != nil {
			return err
		}
		_, _, err = e.RunInfo(ctx, "echo-b", "echo", out)
		return err
	}
	pipeline := func(int) error {
		_, _, err := e.CallAPI(ctx, "twice", in)
		return err
	}
	for _, callers := range []int{1, 64} {
		var directNs float64
		for _, c := range []struct {
			name string
			call func(int) error
		}{{"direct", direct}, {"pipeline", pipeline}} {
			b.Run(c.name+"/callers="+strconv.Itoa(callers), func(b *testing.B) {
				rate := closedLoop(b, callers, c.call)
				ns := float64(time.Second) / rate
				if c.name == "direct" {
					directNs = ns
					return
				}
				if directNs > 0 {
					b.ReportMetric((ns-directNs)/2/1e3, "added_us_per_step")
					b.ReportMetric(ns/directNs, "x_direct")
				}
			})
		}
	}
}
