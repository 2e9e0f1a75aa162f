package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"sort"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/benchtop/benchtop/engine/tensor"
	"github.com/benchtop/benchtop/gpu/placement"
)

// Options configures an Engine; the zero value works.
type Options struct {
	// Registry holds the runnable types runners can be made of.
	Registry *Registry
	// Logger receives events; nil discards them.
	Logger *slog.Logger
	// NumCPU is the core count used to size CPU pools; 0 means runtime.NumCPU().
	NumCPU int
	// GPUs reports the GPUs visible to the process, for placing workers;
	// nil means none: a GPU runner then fails to start with a clear error
	// (Plan, not knowing the machine, checks only what the runner asks).
	GPUs func() placement.Visible
	// Registerer gets the runner metrics and what runnables register,
	// labelled per runner; a runner's series leave with it. nil keeps them
	// on a registry of the engine's own that nothing gathers.
	Registerer prometheus.Registerer
}

// Engine owns the runners, their metrics and the event log.
type Engine struct {
	registry *Registry
	prom     prometheus.Registerer
	deps     runnerDeps

	applyMu sync.Mutex     // one Apply at a time
	bg      sync.WaitGroup // drains of runners an Apply replaced or removed

	mu      sync.RWMutex
	runners map[string]*Runner
	apis    map[string]*servedAPI
	// custom outlives runner generations: a runner replaced by a reload
	// keeps its runnable's collectors, which the new instances reuse.
	custom map[string]*runnerRegisterer
	// apiCustom holds the collectors of Go APIs, by API name, as custom
	// does runnables'.
	apiCustom  map[string]*runnerRegisterer
	apiMetrics *apiMetrics
}

// New returns an engine with no runners, its runner metrics registered on
// opts.Registerer.
func New(opts Options) (*Engine, error) {
	if opts.Registry == nil {
		opts.Registry = NewRegistry()
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opts.NumCPU <= 0 {
		opts.NumCPU = runtime.NumCPU()
	}
	if opts.Registerer == nil {
		opts.Registerer = prometheus.NewRegistry()
	}
	e := &Engine{
		registry: opts.Registry, prom: opts.Registerer,
		runners: map[string]*Runner{}, apis: map[string]*servedAPI{}, custom: map[string]*runnerRegisterer{},
		apiCustom: map[string]*runnerRegisterer{},
	}
	m, err := newMetrics(e.prom, e.collectState)
	if err != nil {
		return nil, fmt.Errorf("register engine metrics: %w", err)
	}
	if e.apiMetrics, err = newAPIMetrics(e.prom); err != nil {
		return nil, fmt.Errorf("register api metrics: %w", err)
	}
	e.deps = runnerDeps{metrics: m, events: NewEventLog(opts.Logger), logger: opts.Logger, numCPU: opts.NumCPU, gpus: opts.GPUs}
	return e, nil
}

// Registry is the engine's runnable registry.
func (e *Engine) Registry() *Registry { return e.registry }

// Events is the engine's event log.
func (e *Engine) Events() *EventLog { return e.deps.events }

// StartRunner checks cfg as Plan checks a runner, creates the runner and
// starts its workers; it does not wait for them (see Runner.WaitReady).
// Resolving its methods may ask a worker: ctx bounds that.
func (e *Engine) StartRunner(ctx context.Context, cfg RunnerConfig) (*Runner, error) {
	var ps problems
	checkName(&ps, "", "runner", cfg.Name, map[string]bool{})
	pr := e.planRunner(ctx, &ps, "", cfg)
	if err := ps.err(); err != nil {
		return nil, fmt.Errorf("runner %q: %w", cfg.Name, err)
	}
	exists := func() bool { _, dup := e.runners[cfg.Name]; return dup }
	e.mu.Lock()
	if exists() {
		e.mu.Unlock()
		return nil, fmt.Errorf("runner %q already exists", cfg.Name)
	}
	custom := e.customLocked(cfg.Name)
	e.mu.Unlock()
	r, err := newRunner(e.deps, pr, custom)
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	if exists() {
		e.mu.Unlock()
		r.Close(context.Background())
		return nil, fmt.Errorf("runner %q already exists", cfg.Name)
	}
	e.runners[cfg.Name] = r
	e.mu.Unlock()
	e.deps.events.Add(slog.LevelInfo, cfg.Name, fmt.Sprintf("runner started: runnable %s, %d worker(s)", pr.typ.Name, r.plan.Workers))
	return r, nil
}

// StopRunner removes a runner: new requests fail at once with
// ErrUnknownRunner, queued and running ones finish (until ctx ends).
func (e *Engine) StopRunner(ctx context.Context, name string) error {
	e.mu.Lock()
	r, ok := e.runners[name]
	delete(e.runners, name)
	e.mu.Unlock()
	if !ok {
		return fmt.Errorf("%w %q", ErrUnknownRunner, name)
	}
	err := r.Close(ctx)
	e.forget(name)
	e.deps.events.Add(slog.LevelInfo, name, "runner stopped")
	return err
}

func (e *Engine) customLocked(name string) *runnerRegisterer {
	c, ok := e.custom[name]
	if !ok {
		c = newLabelledRegisterer(e.prom, "runner", name)
		e.custom[name] = c
	}
	return c
}

// forget drops every series of a runner name that no longer runs.
func (e *Engine) forget(name string) {
	e.mu.Lock()
	if _, back := e.runners[name]; back {
		e.mu.Unlock()
		return
	}
	unregister := takeRegisterer(e.custom, name)
	e.mu.Unlock()
	unregister()
	e.deps.metrics.forget(name)
}

// Runner finds a runner by name; the error lists the runners there are.
func (e *Engine) Runner(name string) (*Runner, error) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if r, ok := e.runners[name]; ok {
		return r, nil
	}
	names := make([]string, 0, len(e.runners))
	for n := range e.runners {
		names = append(names, n)
	}
	sort.Strings(names)
	return nil, fmt.Errorf("%w %q (runners: %s)", ErrUnknownRunner, name, strings.Join(names, ", "))
}

// Runners lists the runners sorted by name.
func (e *Engine) Runners() []*Runner {
	e.mu.RLock()
	rs := make([]*Runner, 0, len(e.runners))
	for _, r := range e.runners {
		rs = append(rs, r)
	}
	e.mu.RUnlock()
	sort.Slice(rs, func(i, j int) bool { return rs[i].name < rs[j].name })
	return rs
}

// Run calls a runner's method of one input and one output; see
// Runner.Run. Front ends should call through the engine rather than hold a
// *Runner: a reload may replace a runner with a new generation, and a
// request the old one refused because it was closing (so it never ran) is
// retried on the new one here.
func (e *Engine) Run(ctx context.Context, runner, method string, in tensor.Value) (tensor.Value, error) {
	var last *Runner
	for {
		r, err := e.next(runner, method, last)
		if err != nil {
			return tensor.Value{}, err
		}
		v, err := r.Run(ctx, method, in)
		if !errors.Is(err, ErrRunnerClosed) {
			return v, err
		}
		last = r
	}
}

// RunInfo calls any method of a runner with a value per input, returns a
// value per output and which batch served the request; see Runner.RunInfo
// and Run.
func (e *Engine) RunInfo(ctx context.Context, runner, method string, in []tensor.Value) ([]tensor.Value, CallInfo, error) {
	var last *Runner
	for {
		r, err := e.next(runner, method, last)
		if err != nil {
			return nil, CallInfo{}, err
		}
		v, info, err := r.RunInfo(ctx, method, in)
		if !errors.Is(err, ErrRunnerClosed) {
			return v, info, err
		}
		last = r
	}
}

// next is the runner to try a request on: the current generation, unless
// that is last, which refused it as closing.
func (e *Engine) next(runner, method string, last *Runner) (*Runner, error) {
	r, err := e.Runner(runner)
	if err != nil {
		return nil, err
	}
	if r == last {
		return nil, &MethodError{runner, method, ErrRunnerClosed}
	}
	return r, nil
}

// Close stops every runner in parallel, each draining until ctx ends.
func (e *Engine) Close(ctx context.Context) error {
	e.applyMu.Lock()
	defer e.applyMu.Unlock()
	e.mu.Lock()
	rs := e.runners
	e.runners = map[string]*Runner{}
	e.mu.Unlock()
	var wg sync.WaitGroup
	errs := make([]error, 0, len(rs))
	var mu sync.Mutex
	for name, r := range rs {
		wg.Go(func() {
			err := r.Close(ctx)
			e.forget(name)
			if err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	bgDone := make(chan struct{})
	go func() { e.bg.Wait(); close(bgDone) }()
	select {
	case <-bgDone:
	case <-ctx.Done():
		errs = append(errs, fmt.Errorf("runners replaced by a reload still draining: %w", ctx.Err()))
	}
	return errors.Join(errs...)
}

func (e *Engine) collectState(emit func(runner, method string, depth, inflight int), workers func(runner string, n int), looping func(runner string, yes bool)) {
	for _, r := range e.Runners() {
		r.mu.Lock()
		ready := r.ready
		r.mu.Unlock()
		workers(r.name, ready)
		looping(r.name, r.looping.Load())
		for _, m := range r.order {
			s := m.q.Stats()
			emit(r.name, m.spec.Name, s.Depth, s.InFlight)
		}
	}
}
