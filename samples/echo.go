package samples

import (
	"context"

	"github.com/benchtop/benchtop/engine"
	"github.com/benchtop/benchtop/engine/tensor"
)

// Echo returns its input unchanged. Its only cost is the engine's: queueing,
// batching, concatenation and splitting, which makes it the yardstick for
// engine overhead.
func Echo() *engine.RunnableType {
	return &engine.RunnableType{
		Name: "echo",
		Doc:  "returns its input; a yardstick for engine overhead",
		Methods: []engine.MethodSpec{
			{
				Name:      "echo",
				Doc:       "any tensor with rows along dim 0 → the same tensor",
				Batchable: true,
				Inputs:    []tensor.IOSpec{{Kind: tensor.KindTensor}},
				Outputs:   []tensor.IOSpec{{Kind: tensor.KindTensor}},
			},
			{
				Name:    "echo_text",
				Doc:     "text → the same text",
				Inputs:  []tensor.IOSpec{{Kind: tensor.KindText}},
				Outputs: []tensor.IOSpec{{Kind: tensor.KindText}},
			},
		},
		New: func(context.Context, engine.Env) (engine.Instance, error) { return echo{}, nil },
	}
}

type echo struct{}

var _ engine.Instance = echo{}

func (echo) Call(_ context.Context, _ string, in []tensor.Value) ([]tensor.Value, error) {
	return in, nil
}
