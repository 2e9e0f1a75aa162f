package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/benchtop/benchtop/batcher"
	"github.com/benchtop/benchtop/engine"
	"github.com/benchtop/benchtop/engine/tensor"
	"github.com/benchtop/benchtop/server/codec"
)

// InProcess is a runner method called through the engine, with no HTTP in
// between: the runner's own throughput, and the only target whose batching
// Compare can change.
type InProcess struct {
	eng            *engine.Engine
	runner, method string
	in             []tensor.Value // one value: the method's one input
}

// NewInProcess targets runner.method of eng with input in; the zero Value
// means codec.ExampleValue of the method's input.
func NewInProcess(eng *engine.Engine, runner, method string, in tensor.Value) (*InProcess, error) {
	r, err := eng.Runner(runner)
	if err != nil {
		return nil, err
	}
	spec, ok := r.Method(method)
	if !ok {
		return nil, fmt.Errorf("runner %q: %w %q", runner, engine.ErrUnknownMethod, method)
	}
	inSpec, _, err := spec.Single()
	if err != nil {
		return nil, fmt.Errorf("%s.%s: %w", runner, method, err)
	}
	if in.Kind() == tensor.KindInvalid {
		in = codec.ExampleValue(inSpec)
	}
	if err := inSpec.Check(in); err != nil {
		return nil, fmt.Errorf("input for %s.%s: %w", runner, method, err)
	}
	return &InProcess{eng: eng, runner: runner, method: method, in: []tensor.Value{in}}, nil
}

func (p *InProcess) String() string { return p.runner + "." + p.method + " (in process)" }

// Call runs the method once.
func (p *InProcess) Call(ctx context.Context) error {
	_, _, err := p.eng.RunInfo(ctx, p.runner, p.method, p.in)
	return err
}

// ServerStats reads the runner's own counters.
func (p *InProcess) ServerStats(context.Context) (ServerStats, error) {
	r, err := p.eng.Runner(p.runner)
	if err != nil {
		return ServerStats{}, err
	}
	return fromRunnerStats(r.Stats(engine.StatsOptions{}), p.method)
}

// Tunable is a target whose batching can change between sweeps.
type Tunable interface {
	Target
	Batching() (batcher.Config, int, error)
	// SetBatching applies cfg and, if workers > 0, resizes the pool and
	// waits until every worker is ready.
	SetBatching(ctx context.Context, cfg batcher.Config, workers int) error
}

// Batching is the method's batching now, and the pool size.
func (p *InProcess) Batching() (batcher.Config, int, error) {
	r, err := p.eng.Runner(p.runner)
	if err != nil {
		return batcher.Config{}, 0, err
	}
	st := r.Stats(engine.StatsOptions{})
	for _, m := range st.Methods {
		if m.Spec.Name == p.method {
			return m.Batching, st.Workers, nil
		}
	}
	return batcher.Config{}, 0, fmt.Errorf("runner %q has no method %q", p.runner, p.method)
}

// readyPoll is how often SetBatching looks whether new workers are ready.
const readyPoll = 20 * time.Millisecond

// SetBatching changes the knobs live, as the UI or a config reload would.
func (p *InProcess) SetBatching(ctx context.Context, cfg batcher.Config, workers int) error {
	r, err := p.eng.Runner(p.runner)
	if err != nil {
		return err
	}
	// A non-batchable method refuses any SetBatching, even a no-op; its
	// pool size can still be compared.
	if cur, _, err := p.Batching(); err != nil {
		return err
	} else if cur != cfg {
		if err := r.SetBatching(p.method, cfg); err != nil {
			return err
		}
	}
	if workers <= 0 {
		return nil
	}
	if err := r.SetWorkers(workers); err != nil {
		return err
	}
	tick := time.NewTicker(readyPoll)
	defer tick.Stop()
	for {
		st := r.Stats(engine.StatsOptions{})
		if st.Ready == workers {
			return nil
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return fmt.Errorf("runner %q: %d of %d workers ready: %w", p.runner, st.Ready, workers, ctx.Err())
		}
	}
}

var _ Tunable = (*InProcess)(nil)
