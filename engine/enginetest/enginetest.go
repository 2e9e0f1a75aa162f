package enginetest

import (
	"context"
	"testing"
	"time"

	"github.com/benchtop/benchtop/engine"
	"github.com/benchtop/benchtop/samples"
)

// closeTimeout bounds how long the cleanup New and Start register waits for
// runners to drain and workers (processes, sessions) to stop.
const closeTimeout = 30 * time.Second

// readyTimeout bounds how long Start waits for a runner's first worker: a
// generous bound on something that must happen (a Python worker importing
// its model on a loaded machine), not a timing.
const readyTimeout = 30 * time.Second

// Options say what New builds.
type Options struct {
	// Samples registers the sample runnables (sim, sentiment, echo), as the
	// embedded config has them.
	Samples bool
	// Engine is handed to engine.New: NumCPU, GPUs, Registerer, Logger.
	// Without a Registry, New makes one; either way it gets the samples
	// (if asked) and the types given to New.
	Engine engine.Options
}

// New returns an engine whose registry holds types (and the samples when
// opts asks for them). It is closed when the test ends; a close that fails
// (workers still busy after closeTimeout) fails the test.
func New(t testing.TB, opts Options, types ...*engine.RunnableType) *engine.Engine {
	t.Helper()
	eo := opts.Engine
	if eo.Registry == nil {
		eo.Registry = engine.NewRegistry()
	}
	if opts.Samples {
		if err := samples.Register(eo.Registry); err != nil {
			t.Fatal(err)
		}
	}
	for _, typ := range types {
		if err := eo.Registry.Register(typ); err != nil {
			t.Fatal(err)
		}
	}
	e, err := engine.New(eo)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
		defer cancel()
		if err := e.Close(ctx); err != nil {
			t.Errorf("close engine: %v", err)
		}
	})
	return e
}

// Start starts a runner on e and waits until a worker is ready to serve.
// The runner is stopped when the test ends, unless the test stopped it or
// the engine was closed first.
func Start(t testing.TB, e *engine.Engine, cfg engine.RunnerConfig) *engine.Runner {
	t.Helper()
	r, err := e.StartRunner(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
		defer cancel()
		if err := r.Close(ctx); err != nil {
			t.Errorf("close runner %q: %v", cfg.Name, err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	if err := r.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	return r
}
