package engine_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
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
	"github.com/benchtop/benchtop/gpu/placement"
	"github.com/benchtop/benchtop/samples"
)

// newEngine has the samples and extra on two CPUs, so that worker plans do
// not depend on the machine running the tests.
func newEngine(t testing.TB, extra ...*engine.RunnableType) *engine.Engine {
	t.Helper()
	return newEngineOn(t, nil, extra...)
}

// newEngineOn is newEngine with its metrics on prom.
func newEngineOn(t testing.TB, prom prometheus.Registerer, extra ...*engine.RunnableType) *engine.Engine {
	t.Helper()
	return enginetest.New(t, enginetest.Options{Samples: true, Engine: engine.Options{NumCPU: 2, Registerer: prom}}, extra...)
}

func batching(p batcher.Policy, max int, latency time.Duration) batcher.Config {
	c := batcher.DefaultConfig()
	c.Policy, c.MaxBatchSize, c.MaxLatency = p, max, latency
	return c
}

// rowsTensor builds [rows, k] float32 whose values encode (id, row, col), so
// a mixed-up row is detectable.
func rowsTensor(t testing.TB, id, rows, k int) tensor.Value {
	data := make([]float32, rows*k)
	for r := range rows {
		for c := range k {
			data[r*k+c] = float32(id*1000 + r*k + c)
		}
	}
	tt, err := tensor.NewTensor([]int{rows, k}, data)
	if err != nil {
		t.Fatal(err)
	}
	return tensor.TensorValue(tt)
}

func checkDoubled(in, out tensor.Value) error {
	a, b := in.Tensor(), out.Tensor()
	if b == nil {
		return fmt.Errorf("output is %v, want a tensor", out)
	}
	if fmt.Sprint(a.Shape()) != fmt.Sprint(b.Shape()) {
		return fmt.Errorf("output shape %v, want %v", b.Shape(), a.Shape())
	}
	x, y := a.Float32s(), b.Float32s()
	for i := range x {
		if y[i] != 2*x[i] {
			return fmt.Errorf("element %d is %v, want %v (someone else's row?)", i, y[i], 2*x[i])
		}
	}
	return nil
}

func TestThousandsOfCallersGetTheirOwnRows(t *testing.T) {
	e := newEngine(t)
	r := enginetest.Start(t, e, engine.RunnerConfig{
		Name: "sim", Runnable: "sim", Workers: 2,
		Params:   engine.Params{"fixed_ms": 1, "per_row_ms": 0.005},
		Batching: batching(batcher.Adaptive, 64, 0),
	})
	const callers = 2000
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for id := range callers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(id), 7))
			rows := 1 + rng.IntN(8)
			if id%97 == 0 {
				rows = 65 + rng.IntN(100) // larger than max_batch_size: split and reassembled
			}
			in := rowsTensor(t, id, rows, 3)
			out, err := r.Run(context.Background(), "predict", in)
			if err != nil {
				errs <- fmt.Errorf("caller %d: %w", id, err)
				return
			}
			if err := checkDoubled(in, out); err != nil {
				errs <- fmt.Errorf("caller %d: %w", id, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	st := r.Stats(engine.StatsOptions{})
	m := st.Methods[0]
	if m.Totals["ok"] != callers {
		t.Errorf("ok total %d, want %d", m.Totals["ok"], callers)
	}
	biggest := 0
	for size := range m.BatchSizes {
		biggest = max(biggest, size)
	}
	if biggest > 64 {
		t.Errorf("a batch of %d rows exceeded max_batch_size 64", biggest)
	}
	if biggest < 8 {
		t.Errorf("largest batch had %d rows: concurrent callers were not batched", biggest)
	}
}

func TestOversizedRequestIsSplitAcrossBatches(t *testing.T) {
	e := newEngine(t)
	r := enginetest.Start(t, e, engine.RunnerConfig{
		Name: "sim", Runnable: "sim", Workers: 1,
		Params:   engine.Params{"fixed_ms": 0, "per_row_ms": 0},
		Batching: batching(batcher.Adaptive, 8, 0),
	})
	in := rowsTensor(t, 1, 50, 2)
	outs, info, err := r.RunInfo(context.Background(), "predict", []tensor.Value{in})
	if err != nil {
		t.Fatal(err)
	}
	if err := checkDoubled(in, outs[0]); err != nil {
		t.Fatal(err)
	}
	if info.BatchRows > 8 {
		t.Fatalf("ran in a batch of %d rows, max is 8", info.BatchRows)
	}
	sizes := r.Stats(engine.StatsOptions{}).Methods[0].BatchSizes
	if sizes[8] != 6 || sizes[2] != 1 {
		t.Fatalf("batch sizes %v, want six of 8 rows and one of 2", sizes)
	}
}

func TestErrorsNameWhatToFix(t *testing.T) {
	e := newEngine(t)
	r := enginetest.Start(t, e, engine.RunnerConfig{Name: "sim", Runnable: "sim", Workers: 1, Batching: batching(batcher.Adaptive, 8, 0)})
	ctx := context.Background()
	cases := []struct {
		name   string
		method string
		in     tensor.Value
		is     error
		want   string
	}{
		{"unknown method", "predcit", rowsTensor(t, 1, 1, 2), engine.ErrUnknownMethod, `unknown method "predcit" (methods: predict)`},
		{"text to a tensor method", "predict", tensor.TextValue("hi"), engine.ErrInvalidInput, "want tensor float32[-1 -1]"},
		{"wrong dtype", "predict", func() tensor.Value {
			tt, _ := tensor.NewTensor([]int{1, 2}, []float64{1, 2})
			return tensor.TensorValue(tt)
		}(), engine.ErrInvalidInput, "dtype float64, want float32"},
		{"no rows", "predict", func() tensor.Value {
			tt, _ := tensor.NewTensor([]int{0, 2}, []float32{})
			return tensor.TensorValue(tt)
		}(), engine.ErrInvalidInput, "no rows"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := r.Run(ctx, c.method, c.in)
			if !errors.Is(err, c.is) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want %v containing %q", err, c.is, c.want)
			}
		})
	}
	if _, err := e.Run(ctx, "nope", "predict", rowsTensor(t, 1, 1, 2)); !errors.Is(err, engine.ErrUnknownRunner) || !strings.Contains(err.Error(), "runners: sim") {
		t.Fatalf("unknown runner: %v", err)
	}
}

// gate is a test runnable: "run" takes float32 [N,1]; a row of -1 makes the
// batch fail with an error, -2 panics, -3 blocks until released (ignoring
// ctx), -4 blocks until released or ctx ends. It records every row it sees.
type gate struct {
	mu      sync.Mutex
	seen    map[float32]int
	release chan struct{}
	started chan struct{}
}

func newGate() *gate {
	return &gate{seen: map[float32]int{}, release: make(chan struct{}), started: make(chan struct{}, 100)}
}

func (g *gate) typ() *engine.RunnableType {
	return &engine.RunnableType{
		Name: "gate",
		Methods: []engine.MethodSpec{{
			Name: "run", Batchable: true,
			Inputs:  []tensor.IOSpec{{Kind: tensor.KindTensor, DType: tensor.Float32, Shape: []int{-1, 1}}},
			Outputs: []tensor.IOSpec{{Kind: tensor.KindTensor, DType: tensor.Float32, Shape: []int{-1, 1}}},
		}},
		New: func(context.Context, engine.Env) (engine.Instance, error) { return g, nil },
	}
}

func (g *gate) Call(ctx context.Context, _ string, ins []tensor.Value) ([]tensor.Value, error) {
	in := ins[0]
	rows := in.Tensor().Float32s()
	g.mu.Lock()
	for _, v := range rows {
		g.seen[v]++
	}
	g.mu.Unlock()
	for _, v := range rows {
		switch v {
		case -1:
			return nil, errors.New("row -1 is not allowed")
		case -2:
			panic("row -2 blew up")
		case -3:
			g.started <- struct{}{}
			<-g.release
		case -4:
			g.started <- struct{}{}
			select {
			case <-g.release:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
	}
	return ins, nil
}

func (g *gate) count(v float32) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.seen[v]
}

func one(v float32) tensor.Value {
	tt, _ := tensor.NewTensor([]int{1, 1}, []float32{v})
	return tensor.TensorValue(tt)
}

func TestCancelledWhileQueuedNeverExecutes(t *testing.T) {
	g := newGate()
	e := newEngine(t, g.typ())
	r := enginetest.Start(t, e, engine.RunnerConfig{Name: "g", Runnable: "gate", Workers: 1, Batching: batching(batcher.None, 1, 0)})
	blocker := make(chan error, 1)
	go func() { _, err := r.Run(context.Background(), "run", one(-4)); blocker <- err }()
	<-g.started // the only worker is busy
	ctx, cancel := context.WithCancel(context.Background())
	queued := make(chan error, 1)
	go func() { _, err := r.Run(ctx, "run", one(42)); queued <- err }()
	waitFor(t, func() bool { return r.Stats(engine.StatsOptions{}).Methods[0].Queue.Depth == 1 })
	cancel()
	if err := <-queued; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled caller got %v", err)
	}
	close(g.release)
	if err := <-blocker; err != nil {
		t.Fatal(err)
	}
	if _, err := r.Run(context.Background(), "run", one(7)); err != nil {
		t.Fatal(err)
	}
	if n := g.count(42); n != 0 {
		t.Fatalf("a request cancelled while queued executed %d times", n)
	}
}

func TestFailuresStayInTheirBatch(t *testing.T) {
	g := newGate()
	e := newEngine(t, g.typ())
	r := enginetest.Start(t, e, engine.RunnerConfig{Name: "g", Runnable: "gate", Workers: 1, Batching: batching(batcher.None, 1, 0)})
	ctx := context.Background()

	_, err := r.Run(ctx, "run", one(-1))
	if err == nil || !strings.Contains(err.Error(), "row -1 is not allowed") {
		t.Fatalf("runnable's own message lost: %v", err)
	}
	_, err = r.Run(ctx, "run", one(-2))
	if !errors.Is(err, engine.ErrWorkerCrashed) || !strings.Contains(err.Error(), "row -2 blew up") {
		t.Fatalf("panic: got %v", err)
	}
	// The worker is replaced; service goes on.
	out, err := r.Run(ctx, "run", one(5))
	if err != nil || out.Tensor().Float32s()[0] != 5 {
		t.Fatalf("after a panic: %v %v", out, err)
	}
	if st := r.Stats(engine.StatsOptions{}); st.Restarts != 1 || st.Ready != 1 {
		t.Fatalf("restarts %d ready %d, want 1 and 1", st.Restarts, st.Ready)
	}

	// Under concurrency, a poisoned batch fails only its own callers.
	if err := r.SetBatching("run", batching(batcher.Fixed, 4, 0)); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var okCount, failCount atomic.Int64
	for i := range 200 {
		wg.Go(func() {
			v := float32(i + 1)
			if i%50 == 0 {
				v = -1
			}
			out, err := r.Run(ctx, "run", one(v))
			switch {
			case err == nil && out.Tensor().Float32s()[0] == v:
				okCount.Add(1)
			case err != nil && strings.Contains(err.Error(), "row -1"):
				failCount.Add(1)
			default:
				t.Errorf("caller %d: got %v, %v", i, out, err)
			}
		})
	}
	wg.Wait()
	if failCount.Load() < 4 || failCount.Load() > 16 || okCount.Load() < 184 {
		t.Fatalf("ok %d failed %d: a failure spread beyond its batch of ≤4", okCount.Load(), failCount.Load())
	}
}

func TestHungWorkerIsReplacedAfterTimeout(t *testing.T) {
	g := newGate()
	e := newEngine(t, g.typ())
	r := enginetest.Start(t, e, engine.RunnerConfig{Name: "g", Runnable: "gate", Workers: 1, Timeout: 50 * time.Millisecond, Batching: batching(batcher.None, 1, 0)})
	defer close(g.release)
	ctx := context.Background()
	_, err := r.Run(ctx, "run", one(-4)) // honours ctx: plain timeout
	if !errors.Is(err, engine.ErrTimeout) {
		t.Fatalf("ctx-aware call past timeout: got %v, want ErrTimeout", err)
	}
	_, err = r.Run(ctx, "run", one(-3)) // ignores ctx: abandoned after the grace period
	if !errors.Is(err, engine.ErrTimeout) || !strings.Contains(err.Error(), "replaced") {
		t.Fatalf("hung call: got %v", err)
	}
	out, err := r.Run(ctx, "run", one(9))
	if err != nil || out.Tensor().Float32s()[0] != 9 {
		t.Fatalf("after replacing a hung worker: %v %v", out, err)
	}
}

func TestOverloadIsRejectedNotQueuedForever(t *testing.T) {
	e := newEngine(t)
	r := enginetest.Start(t, e, engine.RunnerConfig{
		Name: "sim", Runnable: "sim", Workers: 1,
		Params:   engine.Params{"fixed_ms": 10, "per_row_ms": 1},
		Batching: batching(batcher.Adaptive, 4, 40*time.Millisecond),
	})
	var wg sync.WaitGroup
	var ok, overloaded atomic.Int64
	var slowest atomic.Int64
	for i := range 300 {
		wg.Go(func() {
			begin := time.Now()
			_, err := r.Run(context.Background(), "predict", rowsTensor(t, i, 1, 1))
			d := time.Since(begin)
			switch {
			case err == nil:
				ok.Add(1)
			case errors.Is(err, engine.ErrOverloaded):
				overloaded.Add(1)
				for cur := slowest.Load(); int64(d) > cur && !slowest.CompareAndSwap(cur, int64(d)); cur = slowest.Load() {
				}
			default:
				t.Errorf("unexpected error: %v", err)
			}
		})
	}
	wg.Wait()
	if ok.Load() == 0 || overloaded.Load() == 0 {
		t.Fatalf("ok %d overloaded %d: 300 callers at 14 ms per 4 rows must both succeed and shed", ok.Load(), overloaded.Load())
	}
	// A shed request learns it at once or when its deadline passes, not
	// after waiting on a queue for seconds.
	if d := time.Duration(slowest.Load()); d > time.Second {
		t.Fatalf("an overloaded request took %v to be told", d)
	}
}

func TestQueueBound(t *testing.T) {
	g := newGate()
	e := newEngine(t, g.typ())
	c := batching(batcher.None, 1, 0)
	c.MaxQueueSize = 2
	r := enginetest.Start(t, e, engine.RunnerConfig{Name: "g", Runnable: "gate", Workers: 1, Batching: c})
	go r.Run(context.Background(), "run", one(-3))
	<-g.started
	for i := range 2 {
		go r.Run(context.Background(), "run", one(float32(i)))
	}
	waitFor(t, func() bool { return r.Stats(engine.StatsOptions{}).Methods[0].Queue.Depth == 2 })
	_, err := r.Run(context.Background(), "run", one(3))
	var oe *engine.OverloadError
	if !errors.As(err, &oe) || !strings.Contains(err.Error(), "max_queue_size 2") {
		t.Fatalf("got %v, want a queue-full overload error", err)
	}
	close(g.release)
}

// TestResizeAndRetuneUnderLoad changes workers, policies and batch sizes
// while hundreds of callers run: no request fails, none gets another's rows,
// and no goroutine outlives the runner.
func TestResizeAndRetuneUnderLoad(t *testing.T) {
	before := runtime.NumGoroutine()
	e := newEngine(t)
	r := enginetest.Start(t, e, engine.RunnerConfig{
		Name: "sim", Runnable: "sim", Workers: 1,
		Params:   engine.Params{"fixed_ms": 0.5, "per_row_ms": 0.01},
		Batching: batching(batcher.Adaptive, 16, 0),
	})
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var done atomic.Int64
	for id := range 200 {
		wg.Go(func() {
			for n := 0; ctx.Err() == nil; n++ {
				in := rowsTensor(t, id*100+n%100, 1+n%5, 2)
				out, err := r.Run(context.Background(), "predict", in)
				if err != nil {
					t.Errorf("caller %d: %v", id, err)
					return
				}
				if err := checkDoubled(in, out); err != nil {
					t.Errorf("caller %d: %v", id, err)
					return
				}
				done.Add(1)
			}
		})
	}
	// Each setting serves 200 requests before the next: steps at points of
	// progress, not of time, so that they land while traffic flows
	// whatever the machine's load.
	policies := []batcher.Policy{batcher.Fixed, batcher.None, batcher.Adaptive}
	for step := range 30 {
		if err := r.SetWorkers(1 + step%4); err != nil {
			t.Fatal(err)
		}
		c := batching(policies[step%3], 1+step%40, 0)
		c.BatchWait = time.Millisecond
		if err := r.SetBatching("predict", c); err != nil {
			t.Fatal(err)
		}
		target := done.Load() + 200
		waitFor(t, func() bool { return done.Load() >= target })
	}
	stop()
	wg.Wait()
	if done.Load() < 1000 {
		t.Fatalf("only %d requests completed", done.Load())
	}
	closeCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := e.StopRunner(closeCtx, "sim"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return runtime.NumGoroutine() <= before+2 })
}

func TestStopRunnerDrainsQueuedRequests(t *testing.T) {
	e := newEngine(t)
	r := enginetest.Start(t, e, engine.RunnerConfig{
		Name: "sim", Runnable: "sim", Workers: 1,
		Params:   engine.Params{"fixed_ms": 5, "per_row_ms": 0},
		Batching: batching(batcher.None, 1, 0),
	})
	var wg sync.WaitGroup
	errs := make(chan error, 10)
	for i := range 10 {
		wg.Go(func() {
			in := rowsTensor(t, i, 1, 1)
			out, err := r.Run(context.Background(), "predict", in)
			if err == nil {
				err = checkDoubled(in, out)
			}
			errs <- err
		})
	}
	// Every request accepted (queued, running or done) before the stop.
	waitFor(t, func() bool {
		m := r.Stats(engine.StatsOptions{}).Methods[0]
		return m.Queue.Depth+m.Queue.InFlight+int(m.Totals["ok"]) == 10 && m.Queue.Depth >= 5
	})
	if err := e.StopRunner(context.Background(), "sim"); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("accepted request lost on stop: %v", err)
		}
	}
	if _, err := r.Run(context.Background(), "predict", rowsTensor(t, 1, 1, 1)); !errors.Is(err, engine.ErrRunnerClosed) {
		t.Fatalf("after stop: %v, want ErrRunnerClosed", err)
	}
}

func TestBadInitParamsSayWhichKey(t *testing.T) {
	e := newEngine(t)
	// The runnable's Validate refuses them before any worker starts, as
	// Plan does for a config.
	_, err := e.StartRunner(t.Context(), engine.RunnerConfig{Name: "sim", Runnable: "sim", Params: engine.Params{"fixd_ms": 1}})
	if err == nil || !strings.Contains(err.Error(), `init: init params: unknown field "fixd_ms"`) {
		t.Fatalf("got %v, want the unknown key named", err)
	}
	if _, err := e.StartRunner(t.Context(), engine.RunnerConfig{Name: "x", Runnable: "nope"}); err == nil || !strings.Contains(err.Error(), "registered: echo, sentiment, sim") {
		t.Fatalf("unknown runnable: %v", err)
	}
}

func TestLocalRunsWithoutTheEngine(t *testing.T) {
	reg := engine.NewRegistry()
	if err := samples.Register(reg); err != nil {
		t.Fatal(err)
	}
	l, err := engine.NewLocal(context.Background(), reg, engine.RunnerConfig{Runnable: "sentiment"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	out, err := l.Run(context.Background(), "is_positive", tensor.TextValue("I love this, it is great!"))
	if err != nil || out.JSON() != true {
		t.Fatalf("is_positive: %v, %v", out, err)
	}
	if _, err := l.Run(context.Background(), "is_positive", tensor.TextValue("  ")); !errors.Is(err, engine.ErrInvalidInput) {
		t.Fatalf("empty text: %v, want ErrInvalidInput", err)
	}
}

func TestPlanWorkers(t *testing.T) {
	single := &engine.RunnableType{Name: "s"}
	multi := &engine.RunnableType{Name: "m", MultiThreaded: true, SupportedResources: []string{engine.ResourceCPU, engine.ResourceGPU}}
	eight := placement.Visible{Count: 8}
	cases := []struct {
		name    string
		typ     *engine.RunnableType
		cfg     engine.RunnerConfig
		vis     placement.Visible
		want    engine.WorkerPlan
		gpus    [][]int // per worker
		wantErr string
	}{
		{"single-threaded: one per core", single, engine.RunnerConfig{}, eight, engine.WorkerPlan{Workers: 8, Threads: 1}, nil, ""},
		{"single-threaded with cpu 2.5", single, engine.RunnerConfig{Resources: engine.Resources{CPU: 2.5}}, eight, engine.WorkerPlan{Workers: 2, Threads: 1}, nil, ""},
		{"multi-threaded: one worker, all cores", multi, engine.RunnerConfig{}, eight, engine.WorkerPlan{Workers: 1, Threads: 8}, nil, ""},
		{"multi-threaded with cpu 3", multi, engine.RunnerConfig{Resources: engine.Resources{CPU: 3}}, eight, engine.WorkerPlan{Workers: 1, Threads: 3}, nil, ""},
		{"explicit workers split threads", multi, engine.RunnerConfig{Workers: 2}, eight, engine.WorkerPlan{Workers: 2, Threads: 4}, nil, ""},
		{"one per GPU", multi, engine.RunnerConfig{Resources: engine.Resources{GPU: 4}}, eight, engine.WorkerPlan{Workers: 4, Threads: 1}, [][]int{{0}, {1}, {2}, {3}}, ""},
		{"two per GPU", multi, engine.RunnerConfig{Resources: engine.Resources{GPU: 2}, WorkersPerResource: 2}, eight, engine.WorkerPlan{Workers: 4, Threads: 1}, [][]int{{0}, {1}, {0}, {1}}, ""},
		{"explicit device ids", multi, engine.RunnerConfig{Resources: engine.Resources{GPUIDs: []int{5, 7}}}, eight, engine.WorkerPlan{Workers: 2, Threads: 1}, [][]int{{5}, {7}}, ""},
		{"GPU on a CPU-only runnable", single, engine.RunnerConfig{Name: "r", Resources: engine.Resources{GPU: 1}}, eight, engine.WorkerPlan{}, nil, "supports only [cpu]"},
		{"more GPUs than visible", multi, engine.RunnerConfig{Name: "r", Resources: engine.Resources{GPU: 4}}, placement.Visible{Count: 2}, engine.WorkerPlan{}, nil, `runner "r" asks for 4 nvidia.com/gpu but 2 are visible`},
		{"no GPU at all", multi, engine.RunnerConfig{Name: "r", Resources: engine.Resources{GPU: 1}}, placement.Visible{}, engine.WorkerPlan{}, nil, `runner "r" asks for 1 nvidia.com/gpu`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := engine.PlanWorkers(c.typ, c.cfg, 8, c.vis)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("got %v, want error containing %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Workers != c.want.Workers || got.Threads != c.want.Threads {
				t.Fatalf("got %d workers × %d threads, want %d × %d", got.Workers, got.Threads, c.want.Workers, c.want.Threads)
			}
			if c.gpus != nil && fmt.Sprint(got.GPUs.Workers) != fmt.Sprint(c.gpus) {
				t.Fatalf("placement %v, want %v", got.GPUs.Workers, c.gpus)
			}
		})
	}
}

func waitFor(t testing.TB, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached within 10s")
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestCrashLoopIsReportedAndClears(t *testing.T) {
	g := newGate()
	e := newEngine(t, g.typ())
	r := enginetest.Start(t, e, engine.RunnerConfig{Name: "g", Runnable: "gate", Workers: 1, Batching: batching(batcher.None, 1, 0)})
	ctx := context.Background()
	for range 3 {
		if _, err := r.Run(ctx, "run", one(-2)); !errors.Is(err, engine.ErrWorkerCrashed) {
			t.Fatalf("got %v", err)
		}
	}
	// The worker's goroutine records the loop just after the caller hears.
	waitFor(t, func() bool { return r.Stats(engine.StatsOptions{}).CrashLoop != "" })
	st := r.Stats(engine.StatsOptions{})
	if !strings.Contains(st.CrashLoop, "crashed 3 times in a row") || !strings.Contains(st.CrashLoop, "row -2 blew up") {
		t.Fatalf("crash loop not reported: %q", st.CrashLoop)
	}
	waitFor(t, func() bool { // the event follows the state by a moment
		for _, ev := range e.Events().Since(0) {
			if strings.Contains(ev.Message, "3 in a row") {
				return true
			}
		}
		return false
	})
	if _, err := r.Run(ctx, "run", one(1)); err != nil {
		t.Fatal(err)
	}
	if st := r.Stats(engine.StatsOptions{}); st.CrashLoop != "" {
		t.Fatalf("crash loop still reported after a good batch: %q", st.CrashLoop)
	}
}
