package bench

import (
	"context"
	"fmt"
	"sync/atomic"
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
	inputs         [][]tensor.Value // a value per input of the method each, sent in turn
	next           atomic.Uint64
}

// NewInProcess targets runner.method of eng. Each call sends the next of
// inputs in turn, each a value per input of the method (the zero Value for
// an optional one left out), as Generate makes them; none means the
// method's example (codec.ExampleValues), every call the same.
func NewInProcess(eng *engine.Engine, runner, method string, inputs ...[]tensor.Value) (*InProcess, error) {
	r, err := eng.Runner(runner)
	if err != nil {
		return nil, err
	}
	spec, ok := r.Method(method)
	if !ok {
		return nil, fmt.Errorf("runner %q: %w %q", runner, engine.ErrUnknownMethod, method)
	}
	if len(inputs) == 0 {
		inputs = [][]tensor.Value{codec.ExampleValues(spec.Inputs)}
	}
	for _, in := range inputs {
		if err := checkInputs(spec, in); err != nil {
			return nil, fmt.Errorf("input for %s.%s: %w", runner, method, err)
		}
	}
	return &InProcess{eng: eng, runner: runner, method: method, inputs: inputs}, nil
}

// checkInputs checks a value per input against the spec, so that a wrong
// input fails before the sweep rather than as every request's error.
func checkInputs(spec engine.MethodSpec, in []tensor.Value) error {
	if len(in) != len(spec.Inputs) {
		return fmt.Errorf("%d values for %d inputs (%s)", len(in), len(spec.Inputs), spec.Inputs.Names())
	}
	for i, s := range spec.Inputs {
		if in[i].Kind() == tensor.KindInvalid && s.Optional {
			continue
		}
		if err := s.Check(in[i]); err != nil {
			return fmt.Errorf("input %q: %w", s.Name, err)
		}
	}
	return nil
}

func (p *InProcess) String() string { return p.runner + "." + p.method + " (in process)" }

// Call runs the method once, with the next of its inputs.
func (p *InProcess) Call(ctx context.Context) error {
	in := p.inputs[0]
	if len(p.inputs) > 1 {
		in = p.inputs[(p.next.Add(1)-1)%uint64(len(p.inputs))]
	}
	_, _, err := p.eng.RunInfo(ctx, p.runner, p.method, in)
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
