package samples

import (
	"context"

	"github.com/benchtop/benchtop/engine"
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
				Input:     engine.IOSpec{Kind: engine.KindTensor},
				Output:    engine.IOSpec{Kind: engine.KindTensor},
			},
			{
				Name:   "echo_text",
				Doc:    "text → the same text",
				Input:  engine.IOSpec{Kind: engine.KindText},
				Output: engine.IOSpec{Kind: engine.KindText},
			},
		},
		New: func(context.Context, engine.Env) (engine.Instance, error) { return echo{}, nil },
	}
}

type echo struct{}

func (echo) Call(_ context.Context, _ string, in engine.Value) (engine.Value, error) { return in, nil }
