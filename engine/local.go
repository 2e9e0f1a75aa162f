package engine

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/benchtop/benchtop/engine/tensor"
)

// Local runs one instance of a runnable in the caller's goroutine: no queue,
// no batching, no workers — BentoML's init_local, for tests, notebooks and
// library users who want the runnable's logic alone. Calls are serialised,
// since an instance is never called concurrently.
type Local struct {
	name    string
	methods map[string]MethodSpec
	mu      sync.Mutex
	inst    Instance
}

// NewLocal builds an instance from cfg (Runnable and Params are used).
// Custom metrics go to a private registry.
func NewLocal(ctx context.Context, reg *Registry, cfg RunnerConfig) (*Local, error) {
	typ, err := reg.Lookup(cfg.Runnable)
	if err != nil {
		return nil, err
	}
	specs, err := typ.methods(ctx, cfg.Params)
	if err != nil {
		return nil, err
	}
	name := cfg.Name
	if name == "" {
		name = typ.Name
	}
	inst, err := typ.New(ctx, Env{
		Runner: name, Params: cfg.Params, Threads: 1, Methods: specs,
		Metrics: prometheus.NewRegistry(),
		Logger:  slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		return nil, fmt.Errorf("init local %q: %w", name, err)
	}
	l := &Local{name: name, methods: map[string]MethodSpec{}, inst: inst}
	for _, s := range specs {
		l.methods[s.Name] = s
	}
	return l, nil
}

// Run calls a method of one input and one output directly; see Call.
func (l *Local) Run(ctx context.Context, method string, in tensor.Value) (tensor.Value, error) {
	spec, ok := l.methods[method]
	if ok && (len(spec.Inputs) != 1 || len(spec.Outputs) != 1) {
		return tensor.Value{}, &MethodError{l.name, method, fmt.Errorf("%w: %s and returns %s: call Call with a value per input",
			ErrInvalidInput, takes(&spec), count(spec.Outputs, "output"))}
	}
	outs, err := l.Call(ctx, method, []tensor.Value{in})
	if err != nil {
		return tensor.Value{}, err
	}
	return outs[0], nil
}

// Call checks in (a value per input of the method, the zero Value for an
// absent optional one) against the signature as a runner does, calls the
// method directly, checks its outputs and returns them, a value per output.
func (l *Local) Call(ctx context.Context, method string, in []tensor.Value) ([]tensor.Value, error) {
	spec, ok := l.methods[method]
	if !ok {
		return nil, &MethodError{l.name, method, fmt.Errorf("%w %q", ErrUnknownMethod, method)}
	}
	rows, err := checkInputs(&spec, in)
	if err != nil {
		return nil, &MethodError{l.name, method, err}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	outs, err := safeCall(ctx, l.inst, method, in)
	if err != nil {
		return nil, &MethodError{l.name, method, err}
	}
	if err := checkOutputs(&spec, outs, rows); err != nil {
		return nil, &MethodError{l.name, method, err}
	}
	return outs, nil
}

// Close releases the instance.
func (l *Local) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if c, ok := l.inst.(Closer); ok {
		return c.Close()
	}
	return nil
}
