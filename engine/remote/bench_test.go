package remote_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/benchtop/benchtop/batcher"
	"github.com/benchtop/benchtop/engine"
	"github.com/benchtop/benchtop/engine/enginetest"
	"github.com/benchtop/benchtop/engine/remote"
	"github.com/benchtop/benchtop/engine/tensor"
)

const benchServerConfig = `
runners:
  - name: sim
    runnable: sim
    init: {fixed_ms: 2, per_row_ms: 0.1}
    workers: 1
    batching: {policy: adaptive, max_batch_size: 64, max_latency_ms: 100}
  - name: echo
    runnable: echo
    workers: 1
    batching: {max_batch_size: 64, max_latency_ms: 0}
`

// closedLoop runs callers, each calling run again as soon as it returns,
// for dur, and returns the successes per second and the errors.
func closedLoop(callers int, dur time.Duration, run func() error) (float64, int64) {
	var ok, failed atomic.Int64
	deadline := time.Now().Add(dur)
	start := time.Now()
	var wg sync.WaitGroup
	for range callers {
		wg.Go(func() {
			for time.Now().Before(deadline) {
				if run() != nil {
					failed.Add(1)
					continue
				}
				ok.Add(1)
			}
		})
	}
	wg.Wait()
	return float64(ok.Load()) / time.Since(start).Seconds(), failed.Load()
}

// BenchmarkRemoteCoalescing: 64 closed-loop callers of one row each,
// through a front end's remote runner to a runner server on this machine,
// with the front end's batcher adaptive on its default slots (the
// default: calls that queue for one of the 8 slots leave as one call) or
// off (policy none: one call per request),
// against the server's runner called in its own process (local: no hop).
// of_local is each rate ÷ local's; calls_per_req is how many remote calls
// a request cost (below 1: coalesced). Rounds interleave the three so that
// drift on a shared machine favours none. Run with -benchtime=1x.
func BenchmarkRemoteCoalescing(b *testing.B) {
	for _, model := range []string{"sim", "echo"} {
		b.Run(model, func(b *testing.B) {
			srv := startServer(b, "127.0.0.1:0", benchServerConfig)
			eng := benchFront(b)
			adaptive := startBench(b, eng, "adaptive", model, srv, batcher.Config{})
			none := startBench(b, eng, "none", model, srv, batcher.Config{Policy: batcher.None, MaxBatchSize: 64})
			local, _ := srv.eng.Runner(model)
			method := local.Methods()[0].Name
			row, _ := tensor.NewTensor([]int{1, 4}, []float32{1, 2, 3, 4})
			in := tensor.TensorValue(row)
			call := func(r *engine.Runner) func() error {
				return func() error { _, err := r.Run(context.Background(), method, in); return err }
			}
			const callers, window = 64, 2 * time.Second
			closedLoop(callers, time.Second, call(adaptive)) // warm up: connections, cost models
			closedLoop(callers, time.Second, call(none))
			closedLoop(callers, time.Second, call(local))
			var rates [3]float64
			var calls [2]float64
			var errs int64
			for range b.N {
				for _, i := range []int{0, 1, 2, 2, 1, 0} {
					r := []*engine.Runner{adaptive, none, local}[i]
					sentBefore := remoteCalls(r)
					rate, e := closedLoop(callers, window, call(r))
					rates[i] += rate
					errs += e
					if i < 2 {
						calls[i] += float64(remoteCalls(r)-sentBefore) / (rate * window.Seconds())
					}
				}
			}
			n := float64(2 * b.N)
			b.ReportMetric(rates[0]/n, "adaptive_req/s")
			b.ReportMetric(rates[1]/n, "none_req/s")
			b.ReportMetric(rates[2]/n, "local_req/s")
			b.ReportMetric(rates[0]/rates[2], "adaptive_of_local")
			b.ReportMetric(rates[1]/rates[2], "none_of_local")
			b.ReportMetric(calls[0]/n, "adaptive_calls_per_req")
			b.ReportMetric(calls[1]/n, "none_calls_per_req")
			b.ReportMetric(float64(errs), "errors")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// remoteCalls is how many batches a front-end runner has sent: one remote
// call each.
func remoteCalls(r *engine.Runner) uint64 {
	if r.Runnable().Name != remote.TypeName {
		return 0
	}
	return r.Stats(engine.StatsOptions{}).Methods[0].Cumulative.Executions
}

func benchFront(b *testing.B) *engine.Engine {
	pool := remote.NewPool(remote.Options{})
	reg := engine.NewRegistry()
	if err := pool.Register(reg); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(pool.Close)
	return enginetest.New(b, enginetest.Options{Engine: engine.Options{Registry: reg}})
}

func startBench(b *testing.B, eng *engine.Engine, name, model string, srv *runnerServer, bc batcher.Config) *engine.Runner {
	cfg := remoteRunner(name, model, srv.addr)
	cfg.Batching = bc
	return enginetest.Start(b, eng, cfg)
}
