package engine

import (
	"slices"
	"sort"
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
	// CrashLoop, when set, says workers keep dying right after they start.
	CrashLoop string
	// WorkerList is every live worker: where it is placed, its process.
	WorkerList []WorkerInfo
	Methods    []MethodStats
}

// WorkerInfo is one worker of a runner.
type WorkerInfo struct {
	ID    int
	Ready bool
	GPUs  []int // device ids, visible numbering
	PID   int   // of its process, 0 for an in-process worker
}

// MethodStats is one method's state and recent behaviour.
type MethodStats struct {
	Spec     MethodSpec
	Batching batcher.Config
	Queue    batcher.Stats
	// Totals counts requests since start by outcome: ok, error,
	// overloaded, timeout, cancelled, invalid.
	Totals map[string]uint64
	// BatchSizes counts executed batches by exact rows, since start, and
	// BatchExec sums their execution time.
	BatchSizes map[int]uint64
	BatchExec  map[int]time.Duration
	Cumulative Cumulative
	Window     WindowStats
}

// Cumulative sums since the runner started (Triton's statistics extension).
type Cumulative struct {
	Success, Fail, Queue, Exec time.Duration // summed over requests (exec: over batches)
	Executions                 uint64        // batches run
	LastRequest                time.Time     // zero if none yet
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
	st.CrashLoop = r.crashLoop
	for _, w := range r.workers {
		st.WorkerList = append(st.WorkerList, WorkerInfo{ID: w.id, Ready: w.ready, GPUs: slices.Clone(w.gpus), PID: w.pid})
	}
	r.mu.Unlock()
	sort.Slice(st.WorkerList, func(i, j int) bool { return st.WorkerList[i].ID < st.WorkerList[j].ID })
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
		ms.Cumulative = Cumulative{
			Success: time.Duration(m.cum.successNs.Load()), Fail: time.Duration(m.cum.failNs.Load()),
			Queue: time.Duration(m.cum.queueNs.Load()), Exec: time.Duration(m.cum.execNs.Load()),
			Executions: m.cum.executions.Load(),
		}
		if ns := m.cum.lastNs.Load(); ns != 0 {
			ms.Cumulative.LastRequest = time.Unix(0, ns)
		}
		m.sizesMu.Lock()
		ms.BatchSizes = make(map[int]uint64, len(m.sizes))
		ms.BatchExec = make(map[int]time.Duration, len(m.sizes))
		for size, t := range m.sizes {
			ms.BatchSizes[size] = t.count
			ms.BatchExec[size] = time.Duration(t.execNs)
		}
		m.sizesMu.Unlock()
		st.Methods = append(st.Methods, ms)
	}
	return st
}
