package samples

import (
	"context"
	"fmt"
	"runtime"
	"time"

	"github.com/benchtop/benchtop/engine"
	"github.com/benchtop/benchtop/engine/tensor"
)

// SimParams are the init params of the sim runnable.
type SimParams struct {
	// FixedMS is the cost of any batch, in milliseconds.
	FixedMS float64 `json:"fixed_ms"`
	// PerRowMS is the extra cost of each row.
	PerRowMS float64 `json:"per_row_ms"`
}

// Sim is a simulated model: predict takes float32 [N, K], sleeps
// fixed_ms + per_row_ms × N and returns every element doubled, so a test can
// tell that each caller got exactly its own rows back.
func Sim() *engine.RunnableType {
	return &engine.RunnableType{
		Name: "sim",
		Doc:  "simulated model: batch cost fixed_ms + per_row_ms × rows; predict returns each row doubled",
		Methods: []engine.MethodSpec{{
			Name:      "predict",
			Doc:       "float32 [N, K] → float32 [N, K], each element × 2",
			Batchable: true,
			Inputs:    []tensor.IOSpec{{Kind: tensor.KindTensor, DType: tensor.Float32, Shape: []int{-1, -1}}},
			Outputs:   []tensor.IOSpec{{Kind: tensor.KindTensor, DType: tensor.Float32, Shape: []int{-1, -1}}},
		}},
		Validate: func(_ context.Context, p engine.Params) error { _, err := simParams(p); return err },
		New:      newSim,
	}
}

func simParams(params engine.Params) (SimParams, error) {
	p := SimParams{FixedMS: 2, PerRowMS: 0.1}
	if err := params.Decode(&p); err != nil {
		return p, err
	}
	if p.FixedMS < 0 || p.PerRowMS < 0 {
		return p, fmt.Errorf("init params: fixed_ms and per_row_ms must not be negative (got %v, %v)", p.FixedMS, p.PerRowMS)
	}
	return p, nil
}

type sim struct {
	fixed, perRow time.Duration
}

var _ engine.Instance = (*sim)(nil)

func newSim(_ context.Context, env engine.Env) (engine.Instance, error) {
	p, err := simParams(env.Params)
	if err != nil {
		return nil, err
	}
	ms := float64(time.Millisecond)
	return &sim{fixed: time.Duration(p.FixedMS * ms), perRow: time.Duration(p.PerRowMS * ms)}, nil
}

func (s *sim) Call(ctx context.Context, method string, in []tensor.Value) ([]tensor.Value, error) {
	if method != "predict" {
		return nil, fmt.Errorf("sim has no method %q", method)
	}
	t := in[0].Tensor() // its one input
	rows := t.Shape()[0]
	if err := sleep(ctx, s.fixed+time.Duration(rows)*s.perRow); err != nil {
		return nil, err
	}
	src := t.Float32s()
	dst := make([]float32, len(src))
	for i, v := range src {
		dst[i] = 2 * v
	}
	out, err := tensor.NewTensor(t.Shape(), dst)
	if err != nil {
		return nil, err
	}
	return []tensor.Value{tensor.TensorValue(out)}, nil
}

// sleep waits like a model waiting on its accelerator, but gives up when the
// runner's timeout or shutdown cancels ctx. The last stretch is a yielding
// spin: when every goroutine is parked, Go's scheduler wakes timers through
// epoll at whole-millisecond granularity, which would stretch a 2.1 ms batch
// to 3 ms and make the model's cost unknowable. CUDA's default stream
// synchronisation spins the same way.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	deadline := time.Now().Add(d)
	if coarse := d - spinWindow; coarse > 0 {
		t := time.NewTimer(coarse)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
	}
	for time.Now().Before(deadline) {
		if err := ctx.Err(); err != nil {
			return err
		}
		runtime.Gosched()
	}
	return nil
}

// spinWindow covers the scheduler's timer granularity with a little margin.
const spinWindow = 1200 * time.Microsecond
