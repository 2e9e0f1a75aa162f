package engine_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/benchtop/benchtop/batcher"
	"github.com/benchtop/benchtop/engine"
	"github.com/benchtop/benchtop/engine/enginetest"
	"github.com/benchtop/benchtop/engine/tensor"
	"github.com/benchtop/benchtop/samples"
)

// The reference workload of the issue: sim at 2 ms + 0.1 ms per row, max
// batch 64, max latency 100 ms, one worker. Its ideal is 64 rows per 8.4 ms.
const (
	simFixed   = 2 * time.Millisecond
	simPerRow  = 100 * time.Microsecond
	simMax     = 64
	simIdealRS = float64(simMax) / (float64(simFixed+simMax*simPerRow) / float64(time.Second))
)

func simRunner(b *testing.B, e *engine.Engine, c batcher.Config) *engine.Runner {
	return enginetest.Start(b, e, engine.RunnerConfig{
		Name: "sim", Runnable: "sim", Workers: 1,
		Params:   engine.Params{"fixed_ms": 2, "per_row_ms": 0.1},
		Batching: c,
	})
}

// closedLoop runs b.N requests from callers goroutines and returns the rate.
func closedLoop(b *testing.B, callers int, call func(id int) error) float64 {
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	begin := time.Now()
	for id := range callers {
		wg.Go(func() {
			for next.Add(1) <= int64(b.N) {
				if err := call(id); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(begin)
	b.StopTimer()
	return float64(b.N) / elapsed.Seconds()
}

// BenchmarkSim256Callers: throughput of 256 one-row callers vs the ideal;
// of_ideal is rows/s ÷ the ideal (higher is better, 1 is the ceiling).
func BenchmarkSim256Callers(b *testing.B) {
	e := newEngine(b)
	r := simRunner(b, e, batching(batcher.Adaptive, simMax, 100*time.Millisecond))
	in := rowsTensor(b, 1, 1, 4)
	rate := closedLoop(b, 256, func(int) error {
		_, err := r.Run(context.Background(), "predict", in)
		return err
	})
	st := r.Stats(engine.StatsOptions{}).Methods[0]
	b.ReportMetric(rate, "rows/s")
	b.ReportMetric(rate/simIdealRS, "of_ideal")
	b.ReportMetric(meanBatch(st.BatchSizes), "rows/batch")
}

func meanBatch(sizes map[int]uint64) float64 {
	var n, rows uint64
	for s, c := range sizes {
		n += c
		rows += uint64(s) * c
	}
	if n == 0 {
		return 0
	}
	return float64(rows) / float64(n)
}

// BenchmarkSimOneCaller: the median latency of a lone caller through the
// engine, against its floor: the same sim instance called directly for
// the same one row (the same wait — a timer, then a yielding spin for the
// last stretch — and the same doubling, no engine). Blocks of each
// alternate, so both see the same machine. p50_ms and floor_p50_ms are
// the medians; over_floor_ms is their difference, the engine's cost to a
// lone caller (lower is better); p50/row_cost is p50 ÷ the nominal cost of
// one row, 2.1 ms (1 would be no cost at all). ns/op is the engine side's
// mean latency.
func BenchmarkSimOneCaller(b *testing.B) {
	e := newEngine(b)
	r := simRunner(b, e, batching(batcher.Adaptive, simMax, 100*time.Millisecond))
	inst, err := samples.Sim().New(context.Background(), engine.Env{Params: engine.Params{"fixed_ms": 2, "per_row_ms": 0.1}})
	if err != nil {
		b.Fatal(err)
	}
	in := rowsTensor(b, 1, 1, 4)
	if _, err := r.Run(context.Background(), "predict", in); err != nil {
		b.Fatal(err) // warm up: the worker is ready and the batcher has a cost
	}
	args := []tensor.Value{in} // the instance's own call takes a list
	const rounds = 4
	perRound := max(1, b.N/rounds)
	lat := make([]time.Duration, 0, rounds*perRound)
	floor := make([]time.Duration, 0, rounds*perRound)
	var engineT time.Duration
	b.ResetTimer()
	for range rounds {
		for range perRound {
			t0 := time.Now()
			if _, err := inst.Call(context.Background(), "predict", args); err != nil {
				b.Fatal(err)
			}
			floor = append(floor, time.Since(t0))
		}
		for range perRound {
			t0 := time.Now()
			if _, err := r.Run(context.Background(), "predict", in); err != nil {
				b.Fatal(err)
			}
			d := time.Since(t0)
			lat = append(lat, d)
			engineT += d
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	slices.Sort(floor)
	p50, f50 := lat[len(lat)/2], floor[len(floor)/2]
	oneRow := simFixed + simPerRow
	b.ReportMetric(float64(p50)/1e6, "p50_ms")
	b.ReportMetric(float64(f50)/1e6, "floor_p50_ms")
	b.ReportMetric(float64(p50-f50)/1e6, "over_floor_ms")
	b.ReportMetric(float64(p50)/float64(oneRow), "p50/row_cost")
	b.ReportMetric(float64(engineT.Nanoseconds())/float64(len(lat)), "ns/op")
}

// BenchmarkEngineOverhead: a no-op batchable method; ns/op at one caller is
// the engine's cost per request, req/s at 256 callers its throughput.
func BenchmarkEngineOverhead(b *testing.B) {
	for _, callers := range []int{1, 256} {
		b.Run(fmt.Sprintf("callers=%d", callers), func(b *testing.B) {
			e := newEngine(b)
			r := enginetest.Start(b, e, engine.RunnerConfig{Name: "echo", Runnable: "echo", Workers: 1, Batching: batching(batcher.Adaptive, 64, 0)})
			in := rowsTensor(b, 1, 1, 4)
			b.ReportAllocs()
			rate := closedLoop(b, callers, func(int) error {
				_, err := r.Run(context.Background(), "echo", in)
				return err
			})
			b.ReportMetric(rate, "req/s")
			b.ReportMetric(meanBatch(r.Stats(engine.StatsOptions{}).Methods[0].BatchSizes), "rows/batch")
		})
	}
}

// BenchmarkPolicySweep compares policies under open-loop Poisson load from
// 10% to 100% of the sim runner's saturation. Latency counts from each
// request's intended send time, so a stalled generator cannot hide queueing.
// Run it with -benchtime=1x: each sub-benchmark is one fixed-length trial.
func BenchmarkPolicySweep(b *testing.B) {
	policies := []struct {
		name string
		cfg  batcher.Config
	}{
		{"adaptive", batching(batcher.Adaptive, simMax, 100*time.Millisecond)},
		{"fixed-2ms", withWait(batching(batcher.Fixed, simMax, 100*time.Millisecond), 2*time.Millisecond)},
		{"fixed-10ms", withWait(batching(batcher.Fixed, simMax, 100*time.Millisecond), 10*time.Millisecond)},
		{"none", batching(batcher.None, simMax, 100*time.Millisecond)},
	}
	for _, load := range []float64{0.1, 0.25, 0.5, 0.75, 0.9, 1.0} {
		for _, p := range policies {
			b.Run(fmt.Sprintf("load=%.0f%%/%s", load*100, p.name), func(b *testing.B) {
				e := newEngine(b)
				r := simRunner(b, e, p.cfg)
				res := openLoop(b, r, load*simIdealRS, 2*time.Second)
				b.ReportMetric(res.throughput, "req/s")
				b.ReportMetric(float64(res.p50)/1e6, "p50_ms")
				b.ReportMetric(float64(res.p99)/1e6, "p99_ms")
				b.ReportMetric(res.errRatio, "err_ratio")
				b.ReportMetric(meanBatch(r.Stats(engine.StatsOptions{}).Methods[0].BatchSizes), "rows/batch")
				b.ReportMetric(0, "ns/op") // one fixed-length trial: ns/op would be its length
			})
		}
	}
}

func withWait(c batcher.Config, d time.Duration) batcher.Config {
	c.BatchWait = d
	return c
}

type loadResult struct {
	throughput float64
	p50, p99   time.Duration
	errRatio   float64
}

func openLoop(b *testing.B, r *engine.Runner, rate float64, dur time.Duration) loadResult {
	in := rowsTensor(b, 1, 1, 4)
	rng := rand.New(rand.NewPCG(1, 2))
	var mu sync.Mutex
	var lat []time.Duration
	var errs int
	var wg sync.WaitGroup
	begin := time.Now()
	next := begin
	sent := 0
	for next.Sub(begin) < dur {
		if d := time.Until(next); d > 0 {
			time.Sleep(d)
		}
		intended := next
		sent++
		wg.Go(func() {
			_, err := r.Run(context.Background(), "predict", in)
			d := time.Since(intended)
			mu.Lock()
			if err != nil {
				errs++
			} else {
				lat = append(lat, d)
			}
			mu.Unlock()
		})
		next = next.Add(time.Duration(rng.ExpFloat64() / rate * float64(time.Second)))
	}
	wg.Wait()
	elapsed := time.Since(begin)
	slices.Sort(lat)
	res := loadResult{throughput: float64(len(lat)) / elapsed.Seconds(), errRatio: float64(errs) / float64(sent)}
	if len(lat) > 0 {
		res.p50 = lat[len(lat)/2]
		res.p99 = lat[len(lat)*99/100]
	}
	return res
}
