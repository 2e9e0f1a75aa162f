package engine_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/benchtop/benchtop/batcher"
	"github.com/benchtop/benchtop/engine"
	"github.com/benchtop/benchtop/engine/tensor"
)

// BenchmarkOverload2x offers sim twice the rows it can serve, open loop
// (Poisson), with one-row requests and with requests of 1 to 32 rows, and
// measures what issue 12 asks of admission under overload: the runner-side
// time of accepted requests against max_latency (100 ms), how fast a
// refusal comes, and the accepted rows against the ideal. Times are taken
// around Runner.Run, from the moment of the call. Run with -benchtime=1x.
func BenchmarkOverload2x(b *testing.B) {
	for _, mix := range []struct {
		name    string
		maxRows int
	}{{"one-row", 1}, {"mixed-1-32", 32}} {
		b.Run(mix.name, func(b *testing.B) {
			e := newEngine(b)
			r := simRunner(b, e, batching(batcher.Adaptive, simMax, 100*time.Millisecond))
			res := overload(b, r, mix.maxRows, 2, 4*time.Second)
			b.ReportMetric(float64(res.acceptedP99)/1e6, "accepted_p99_ms")
			b.ReportMetric(float64(res.acceptedMax)/1e6, "accepted_max_ms")
			b.ReportMetric(float64(res.refusedP99)/1e6, "refused_p99_ms")
			b.ReportMetric(res.rowsPerSec/simIdealRS, "of_ideal")
			b.ReportMetric(res.refusedShare, "refused_share")
			b.ReportMetric(float64(res.late), "refused_after_queueing")
			b.ReportMetric(0, "ns/op") // one fixed-length trial: ns/op would be its length
		})
	}
}

type overloadResult struct {
	acceptedP99, acceptedMax, refusedP99 time.Duration
	rowsPerSec, refusedShare             float64
	late                                 int
}

func overload(b *testing.B, r *engine.Runner, maxRows int, factor float64, dur time.Duration) overloadResult {
	ins := make([]tensor.Value, maxRows+1)
	for n := 1; n <= maxRows; n++ {
		ins[n] = rowsTensor(b, n, n, 4)
	}
	meanRows := float64(1+maxRows) / 2
	rate := factor * simIdealRS / meanRows // requests per second
	rng := rand.New(rand.NewPCG(3, 4))
	var mu sync.Mutex
	var accepted, refused []time.Duration
	var rows, late int
	var wg sync.WaitGroup
	ctx := context.Background()
	// A warm-up second teaches the forecast; then the measured run.
	for phase, d := range []time.Duration{time.Second, dur} {
		measure := phase == 1
		begin := time.Now()
		next := begin
		for next.Sub(begin) < d {
			if w := time.Until(next); w > 0 {
				time.Sleep(w)
			}
			n := 1 + rng.IntN(maxRows)
			wg.Go(func() {
				sent := time.Now()
				_, err := r.Run(ctx, "predict", ins[n])
				took := time.Since(sent)
				if !measure {
					return
				}
				var oe *engine.OverloadError
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					accepted = append(accepted, took)
					rows += n
				case errors.As(err, &oe):
					refused = append(refused, took)
					if oe.Cause == batcher.CauseExpired {
						late++
					}
				default:
					b.Errorf("request of %d rows: %v", n, err)
				}
			})
			next = next.Add(time.Duration(rng.ExpFloat64() / rate * float64(time.Second)))
		}
		wg.Wait()
		if measure {
			elapsed := time.Since(begin)
			slices.Sort(accepted)
			slices.Sort(refused)
			res := overloadResult{rowsPerSec: float64(rows) / elapsed.Seconds(), late: late}
			if len(accepted) > 0 {
				res.acceptedP99 = accepted[len(accepted)*99/100]
				res.acceptedMax = accepted[len(accepted)-1]
			}
			if len(refused) > 0 {
				res.refusedP99 = refused[len(refused)*99/100]
			}
			res.refusedShare = float64(len(refused)) / float64(len(accepted)+len(refused))
			return res
		}
	}
	panic(fmt.Sprint("unreachable"))
}
