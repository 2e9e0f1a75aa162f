package engine_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/benchtop/benchtop/batcher"
	"github.com/benchtop/benchtop/engine"
	"github.com/benchtop/benchtop/engine/enginetest"
	"github.com/benchtop/benchtop/engine/tensor"
)

// TestRowsOfDifferentWidthsNeverFailEachOther: sim takes [-1, -1]; callers
// sending rows 1, 2 and 16 wide at once each get their own rows back,
// never a neighbour's concat error (issue 12, item 2).
func TestRowsOfDifferentWidthsNeverFailEachOther(t *testing.T) {
	e := newEngine(t)
	r := enginetest.Start(t, e, engine.RunnerConfig{
		Name: "sim", Runnable: "sim", Workers: 1,
		Params:   engine.Params{"fixed_ms": 1, "per_row_ms": 0},
		Batching: batching(batcher.Adaptive, 64, 0),
	})
	var wg sync.WaitGroup
	var failed atomic.Int32
	widths := []int{1, 2, 16}
	for c := range 12 {
		wg.Go(func() {
			k := widths[c%len(widths)]
			for i := range 30 {
				in := rowsTensor(t, c*100+i, 1+i%3, k)
				out, err := r.Run(context.Background(), "predict", in)
				if err == nil {
					err = checkDoubled(in, out)
				}
				if err != nil {
					if failed.Add(1) == 1 {
						t.Errorf("caller %d (width %d): %v", c, k, err)
					}
					return
				}
			}
		})
	}
	wg.Wait()
	if n := failed.Load(); n > 0 {
		t.Fatalf("%d callers failed", n)
	}
	sizes := r.Stats(engine.StatsOptions{}).Methods[0].BatchSizes
	batched := false
	for rows := range sizes {
		batched = batched || rows > 3
	}
	if !batched {
		t.Fatalf("batch sizes %v: callers of one width were not batched together", sizes)
	}
}

// slowOnce sleeps for as many milliseconds as the first element of a row
// says, so one request can be made far slower than the rest.
type slowOnce struct{}

func slowType() *engine.RunnableType {
	return &engine.RunnableType{
		Name: "slow",
		Methods: []engine.MethodSpec{{
			Name: "run", Batchable: true,
			Inputs:  []tensor.IOSpec{{Kind: tensor.KindTensor, DType: tensor.Float32, Shape: []int{-1, 1}}},
			Outputs: []tensor.IOSpec{{Kind: tensor.KindTensor, DType: tensor.Float32, Shape: []int{-1, 1}}},
		}},
		New: func(context.Context, engine.Env) (engine.Instance, error) { return slowOnce{}, nil },
	}
}

func (slowOnce) Call(ctx context.Context, _ string, ins []tensor.Value) ([]tensor.Value, error) {
	in := ins[0]
	var ms float32
	for _, v := range in.Tensor().Float32s() {
		ms = max(ms, v)
	}
	select {
	case <-time.After(time.Duration(ms * float32(time.Millisecond))):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return ins, nil
}

// TestSlowRequestsDoNotLockAMethodOut: a method that was slow for a while
// keeps serving the requests that find it idle, and learns from them
// until it serves a queue again (issue 12, item 1: 503 forever on an idle
// server).
func TestSlowRequestsDoNotLockAMethodOut(t *testing.T) {
	prom := prometheus.NewPedanticRegistry()
	e := newEngineOn(t, prom, slowType())
	r := enginetest.Start(t, e, engine.RunnerConfig{Name: "slow", Runnable: "slow", Workers: 1, Batching: batching(batcher.Adaptive, 8, 100*time.Millisecond)})
	ctx := context.Background()
	for range 4 {
		if _, err := r.Run(ctx, "run", one(300)); err != nil {
			t.Fatal(err)
		}
	}
	// While a slow one runs, the forecast refuses what would queue behind
	// it, and the refusal shows in the metrics and the events.
	running := make(chan error, 1)
	go func() { _, err := r.Run(ctx, "run", one(300)); running <- err }()
	waitFor(t, func() bool { return r.Stats(engine.StatsOptions{}).Methods[0].Queue.InFlight == 1 })
	_, err := r.Run(ctx, "run", one(0))
	var oe *engine.OverloadError
	if !errors.As(err, &oe) || oe.Cause != batcher.CausePredicted {
		t.Fatalf("behind a slow request: got %v, want refused by forecast", err)
	}
	// The engine's error carries the batcher's figures, for Retry-After
	// and for the front ends' messages.
	if oe.Bound != 100*time.Millisecond || oe.Forecast < 95*time.Millisecond {
		t.Fatalf("forecast %v, bound %v: want the 100ms bound and a forecast past 95%% of it", oe.Forecast, oe.Bound)
	}
	if err := <-running; err != nil {
		t.Fatal(err)
	}
	if got := refusals(t, prom, "slow", "run", "predicted"); got != 1 {
		t.Fatalf("benchtop_runner_refusals_total{cause=predicted} = %v, want 1", got)
	}
	found := false
	for _, ev := range e.Events().Since(0) {
		found = found || ev.Runner == "slow" && strings.Contains(ev.Message, "forecast") && strings.Contains(ev.Message, "max_latency 100ms")
	}
	if !found {
		t.Fatalf("no event says the forecast refused requests: %v", e.Events().Since(0))
	}
	for i := range 60 {
		if _, err := r.Run(ctx, "run", one(0)); err != nil {
			t.Fatalf("request %d to an idle method after a slow spell: %v", i, err)
		}
	}
	// Now a short queue is served too: 8 callers at once all succeed.
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			_, err := r.Run(ctx, "run", one(0))
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("after the method recovered: %v", err)
		}
	}
}

// TestWholeRequestIsPricedAndRefusedAtOnce: a request of 100,000 rows on a
// method that serves about 7,600 rows a second cannot meet a 100 ms bound:
// it is refused at once, instead of holding the worker for 13 s (item 3).
func TestWholeRequestIsPricedAndRefusedAtOnce(t *testing.T) {
	e := newEngine(t)
	r := enginetest.Start(t, e, engine.RunnerConfig{
		Name: "sim", Runnable: "sim", Workers: 1,
		Params:   engine.Params{"fixed_ms": 2, "per_row_ms": 0.1},
		Batching: batching(batcher.Adaptive, 64, 100*time.Millisecond),
	})
	ctx := context.Background()
	for i := range 12 { // teach the forecast with batches of several sizes
		if _, err := r.Run(ctx, "predict", rowsTensor(t, i, 1+i*5, 2)); err != nil {
			t.Fatal(err)
		}
	}
	ran := r.Stats(engine.StatsOptions{}).Methods[0].Cumulative.Executions
	big := rowsTensor(t, 99, 100_000, 2)
	began := time.Now()
	_, err := r.Run(ctx, "predict", big)
	took := time.Since(began)
	var oe *engine.OverloadError
	if !errors.As(err, &oe) || oe.Cause != batcher.CausePredicted {
		t.Fatalf("100,000 rows: got %v, want refused by forecast", err)
	}
	// At once: no batch of it ran, and the refusal took a small part of
	// the 13 s it would have held the worker (a loose bound: a loaded
	// machine checks 100,000 rows slowly).
	if n := r.Stats(engine.StatsOptions{}).Methods[0].Cumulative.Executions; n != ran {
		t.Fatalf("%d batches ran for a request refused at submit", n-ran)
	}
	if took > time.Second {
		t.Fatalf("refused after %v, want at once", took)
	}
	if !errors.Is(err, engine.ErrOverloaded) {
		t.Fatalf("%v does not match ErrOverloaded", err)
	}
}

// failingChunk fails any batch that holds a row of -1 and counts the rows
// it ever ran.
type failingChunk struct{ rows *atomic.Int64 }

func (f failingChunk) Call(_ context.Context, _ string, ins []tensor.Value) ([]tensor.Value, error) {
	in := ins[0]
	for _, v := range in.Tensor().Float32s() {
		if v == -1 {
			return nil, errors.New("row -1 is not allowed")
		}
	}
	f.rows.Add(int64(in.Tensor().Shape()[0]))
	time.Sleep(time.Millisecond)
	return ins, nil
}

// TestFailedChunkWithdrawsTheRest: when one chunk of a split request
// fails, its chunks still queued never run (item 3).
func TestFailedChunkWithdrawsTheRest(t *testing.T) {
	var ran atomic.Int64
	typ := &engine.RunnableType{
		Name: "chunky",
		Methods: []engine.MethodSpec{{
			Name: "run", Batchable: true,
			Inputs:  []tensor.IOSpec{{Kind: tensor.KindTensor, DType: tensor.Float32, Shape: []int{-1, 1}}},
			Outputs: []tensor.IOSpec{{Kind: tensor.KindTensor, DType: tensor.Float32, Shape: []int{-1, 1}}},
		}},
		New: func(context.Context, engine.Env) (engine.Instance, error) { return failingChunk{&ran}, nil },
	}
	e := newEngine(t, typ)
	r := enginetest.Start(t, e, engine.RunnerConfig{Name: "c", Runnable: "chunky", Workers: 1, Batching: batching(batcher.Adaptive, 10, 0)})
	data := make([]float32, 1000)
	data[5] = -1 // in the first chunk
	tt, err := tensor.NewTensor([]int{1000, 1}, data)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Run(context.Background(), "run", tensor.TensorValue(tt)); err == nil {
		t.Fatal("a request with a bad row succeeded")
	}
	// Whatever was already dispatched may finish; nothing more starts.
	waitFor(t, func() bool {
		q := r.Stats(engine.StatsOptions{}).Methods[0].Queue
		return q.Depth == 0 && q.InFlight == 0
	})
	if n := ran.Load(); n > 20 {
		t.Fatalf("%d rows of the failed request ran after its first chunk failed, want at most the one batch dispatched beside it", n)
	}
}

func refusals(t *testing.T, g prometheus.Gatherer, runner, method, cause string) float64 {
	t.Helper()
	mf := gather(t, g)["benchtop_runner_refusals_total"]
	for _, m := range mf.GetMetric() {
		l := labelsOf(m)
		if l["runner"] == runner && l["method"] == method && l["cause"] == cause {
			return m.GetCounter().GetValue()
		}
	}
	t.Fatalf("no benchtop_runner_refusals_total{runner=%q,method=%q,cause=%q}", runner, method, cause)
	return 0
}
