package engine

import (
	"maps"
	"time"

	"github.com/benchtop/benchtop/batcher"
)

// RunnerStats is a cheap snapshot of a runner for the UI and the stats API.
type RunnerStats struct {
	Name     string
	Runnable string
	// Workers is the planned pool size, Ready how many can serve now.
	Workers, Ready int
	Threads        int
	Restarts       int
	// StartError is the last failure to start a worker, if it persists.
	StartError string
	Methods    []MethodStats
}

// MethodStats is one method's state and recent behaviour.
type MethodStats struct {
	Spec     MethodSpec
	Batching batcher.Config
	Queue    batcher.Stats
	// Totals counts requests since start by outcome: ok, error,
	// overloaded, timeout, cancelled, invalid.
	Totals map[string]uint64
	// BatchSizes counts executed batches by exact rows, since start.
	BatchSizes map[int]uint64
	Window     WindowStats
}

// StatsOptions chooses how much recent history a snapshot covers.
type StatsOptions struct {
	// Window is the span of the percentiles and rates (1 to 15 s; 0 = 5 s).
	Window time.Duration
	// History is how many per-second entries to include (0 to 63).
	History int
}

// Stats returns a snapshot; it costs a few microseconds per method.
func (r *Runner) Stats(opts StatsOptions) RunnerStats {
	span := int(opts.Window / time.Second)
	if span <= 0 {
		span = 5
	}
	r.mu.Lock()
	st := RunnerStats{
		Name: r.name, Runnable: r.typ.Name,
		Workers: r.plan.Workers, Ready: r.ready, Threads: r.plan.Threads, Restarts: r.restarts,
	}
	if r.startErr != nil {
		st.StartError = r.startErr.Error()
	}
	r.mu.Unlock()
	now := time.Now()
	for _, m := range r.order {
		ms := MethodStats{
			Spec:     m.spec,
			Batching: m.q.Config(),
			Queue:    m.q.Stats(),
			Totals:   make(map[string]uint64, len(statusIndex)),
			Window:   m.window.snapshot(now, span, opts.History),
		}
		for s, i := range statusIndex {
			ms.Totals[s] = m.totals[i].Load()
		}
		m.sizesMu.Lock()
		ms.BatchSizes = maps.Clone(m.sizes)
		m.sizesMu.Unlock()
		st.Methods = append(st.Methods, ms)
	}
	return st
}
