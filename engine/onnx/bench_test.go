package onnx_test

import (
	"context"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/benchtop/benchtop/batcher"
	"github.com/benchtop/benchtop/engine"
	"github.com/benchtop/benchtop/engine/enginetest"
	"github.com/benchtop/benchtop/engine/onnx"
	"github.com/benchtop/benchtop/engine/tensor"
	"github.com/benchtop/benchtop/samples/models"
)

// direct is ONNX Runtime called without benchtop: one session with the
// same threads as a runner's worker, and the same spinning setting,
// tensors bound once, Run in a loop.
type direct struct {
	sess *ort.AdvancedSession
	in   *ort.Tensor[float32]
	out  *ort.Tensor[float32]
}

func newDirect(b *testing.B, path string, m *models.MLP, rows, threads int, spinning bool) *direct {
	b.Helper()
	so, err := ort.NewSessionOptions()
	if err != nil {
		b.Fatal(err)
	}
	defer so.Destroy()
	if err := so.SetIntraOpNumThreads(threads); err != nil {
		b.Fatal(err)
	}
	if err := so.SetInterOpNumThreads(1); err != nil {
		b.Fatal(err)
	}
	if !spinning { // as the onnx runner does with spinning: false
		if err := so.AddSessionConfigEntry("session.intra_op.allow_spinning", "0"); err != nil {
			b.Fatal(err)
		}
	}
	in, err := ort.NewTensor(ort.NewShape(int64(rows), int64(m.In())), inputs(rows, m.In(), 1))
	if err != nil {
		b.Fatal(err)
	}
	out, err := ort.NewEmptyTensor[float32](ort.NewShape(int64(rows), int64(m.Out())))
	if err != nil {
		b.Fatal(err)
	}
	sess, err := ort.NewAdvancedSession(path, []string{m.Input}, []string{m.Output}, []ort.Value{in}, []ort.Value{out}, so)
	if err != nil {
		b.Fatal(err)
	}
	d := &direct{sess: sess, in: in, out: out}
	b.Cleanup(func() { sess.Destroy(); in.Destroy(); out.Destroy() })
	return d
}

func (d *direct) run(b *testing.B) {
	if err := d.sess.Run(); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkLargeMLPSaturation: mlp-large through a runner (one worker with
// every core, max batch 128) fed by 256 one-row callers, against ONNX
// Runtime running full batches of 128 in a loop with as many threads and
// the same spinning setting. of_direct is the engine's rows/s ÷ the direct
// loop's, within one run (higher is better, 1 is no cost). "adaptive" is
// the default policy; "fixed" holds batches until they are full, so both
// sides run batches of exactly 128 and the ratio is the engine's own cost.
// ns/op is the engine side's time per one-row request (the direct side's
// time is left out of it).
func BenchmarkLargeMLPSaturation(b *testing.B) {
	lib := library(b)
	m := models.Large()
	path := modelFile(b, m.ONNX)
	const batch, callers = 128, 256
	policies := []struct {
		name string
		cfg  batcher.Config
		spin bool
	}{
		{"adaptive", batcher.Config{Policy: batcher.Adaptive, MaxBatchSize: batch, MaxLatency: 10 * time.Second}, true},
		{"fixed", batcher.Config{Policy: batcher.Fixed, MaxBatchSize: batch, BatchWait: 20 * time.Millisecond, MaxLatency: 10 * time.Second}, true},
		// ONNX Runtime's threads spin after each run by default; with the
		// callers on the same cores, letting them sleep leaves the cores
		// to the engine's own work. The direct loop sleeps too, so the
		// ratio compares like with like.
		{"adaptive-nospin", batcher.Config{Policy: batcher.Adaptive, MaxBatchSize: batch, MaxLatency: 10 * time.Second}, false},
	}
	for _, p := range policies {
		b.Run(p.name, func(b *testing.B) {
			d := newDirect(b, path, m, batch, runtime.NumCPU(), p.spin)
			d.run(b) // warm up
			r := startRunnerWith(b, newEngine(b, lib), engine.Params{"path": path, "spinning": p.spin}, 0, p.cfg)
			row := f32Value(b, []int{1, m.In()}, inputs(1, m.In(), 2))
			// Rounds alternate the two sides, so a neighbour's load on a
			// shared machine weighs on both alike.
			const rounds = 4
			// Whole batches, so that the fixed policy never waits out its
			// batch_wait for the last rows of a round.
			perRound := max(callers, b.N/rounds/batch*batch)
			var directT, engineT time.Duration
			b.ResetTimer()
			for range rounds {
				t0 := time.Now()
				for range perRound / batch {
					d.run(b)
				}
				t1 := time.Now()
				closedLoop(b, callers, perRound, func() error {
					_, err := r.Run(context.Background(), "run", row)
					return err
				})
				directT += t1.Sub(t0)
				engineT += time.Since(t1)
			}
			b.StopTimer()
			directRate := float64(rounds*perRound) / directT.Seconds()
			engineRate := float64(rounds*perRound) / engineT.Seconds()
			st := r.Stats(engine.StatsOptions{}).Methods[0]
			b.ReportMetric(engineRate, "rows/s")
			b.ReportMetric(directRate, "direct_rows/s")
			b.ReportMetric(engineRate/directRate, "of_direct")
			b.ReportMetric(meanBatch(st.BatchSizes), "rows/batch")
			b.ReportMetric(float64(engineT.Nanoseconds())/float64(rounds*perRound), "ns/op")
		})
	}
}

// closedLoop makes n calls from callers goroutines, each calling again as
// soon as its last call returns.
func closedLoop(b *testing.B, callers, n int, call func() error) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range callers {
		wg.Go(func() {
			for next.Add(1) <= int64(n) {
				if err := call(); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
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

// BenchmarkLargeMLPOneCaller: the median latency of one caller sending one
// row through a runner, against a direct batch-1 Run; the target is
// p50 ≤ 1.1 × direct + 0.1 ms. Lower is better for every ratio here:
// p50_x_direct is p50 ÷ the direct p50 (1 is no cost), of_target is p50 ÷
// the target (at most 1 meets it), overhead_ms is p50 − direct p50. ns/op
// is the engine side's mean latency.
func BenchmarkLargeMLPOneCaller(b *testing.B) {
	lib := library(b)
	m := models.Large()
	path := modelFile(b, m.ONNX)
	d := newDirect(b, path, m, 1, runtime.NumCPU(), true)
	d.run(b)
	r := startRunner(b, newEngine(b, lib), engine.Params{"path": path}, 0, 128)
	row := f32Value(b, []int{1, m.In()}, inputs(1, m.In(), 3))
	if _, err := r.Run(context.Background(), "run", row); err != nil {
		b.Fatal(err)
	}
	viaEngine := make([]time.Duration, 0, b.N)
	straight := make([]time.Duration, 0, b.N)
	var engineT time.Duration
	// Alternating blocks, so both see the same machine; not single calls,
	// since one session's threads spin a while after its run and would
	// slow the other's.
	const rounds = 8
	perRound := max(1, b.N/rounds)
	b.ResetTimer()
	for range rounds {
		for range perRound {
			t0 := time.Now()
			d.run(b)
			straight = append(straight, time.Since(t0))
		}
		for range perRound {
			t0 := time.Now()
			if _, err := r.Run(context.Background(), "run", row); err != nil {
				b.Fatal(err)
			}
			took := time.Since(t0)
			viaEngine = append(viaEngine, took)
			engineT += took
		}
	}
	b.StopTimer()
	p50, d50 := median(viaEngine), median(straight)
	b.ReportMetric(float64(p50)/1e6, "p50_ms")
	b.ReportMetric(float64(d50)/1e6, "direct_p50_ms")
	b.ReportMetric(float64(p50)/float64(d50), "p50_x_direct")
	b.ReportMetric(float64(p50-d50)/1e6, "overhead_ms")
	b.ReportMetric(float64(p50)/(1.1*float64(d50)+1e5), "of_target")
	b.ReportMetric(float64(engineT.Nanoseconds())/float64(len(viaEngine)), "ns/op")
}

func median(ds []time.Duration) time.Duration {
	slices.Sort(ds)
	return ds[len(ds)/2]
}

// BenchmarkLargeMLPInstance: the onnx runner's own cost, without the
// engine: one instance called with ready batches of 128 rows (input passed
// in place, output written into Go memory, a deadline armed), against the
// direct loop. Blocks of each alternate; not single calls, since the
// runtime's threads spin a while after a run and would slow the other
// session's next one. of_direct is the instance's rows/s ÷ the direct
// loop's (higher is better, 1 is no cost); ns/op is the instance's time
// per 128-row call.
func BenchmarkLargeMLPInstance(b *testing.B) {
	lib := library(b)
	m := models.Large()
	path := modelFile(b, m.ONNX)
	const batch, rounds = 128, 4
	d := newDirect(b, path, m, batch, runtime.NumCPU(), true)
	d.run(b)
	inst, err := onnx.Type(lib).New(context.Background(), engine.Env{Params: engine.Params{"path": path}, Threads: runtime.NumCPU()})
	if err != nil {
		b.Fatal(err)
	}
	defer inst.(engine.Closer).Close()
	in := f32Value(b, []int{batch, m.In()}, inputs(batch, m.In(), 4))
	perRound := max(1, b.N/rounds)
	var directT, instT time.Duration
	b.ResetTimer()
	for range rounds {
		t0 := time.Now()
		for range perRound {
			d.run(b)
		}
		t1 := time.Now()
		for range perRound {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			if _, err := inst.Call(ctx, "run", []tensor.Value{in}); err != nil {
				b.Fatal(err)
			}
			cancel()
		}
		directT += t1.Sub(t0)
		instT += time.Since(t1)
	}
	b.StopTimer()
	rows := float64(rounds * perRound * batch)
	b.ReportMetric(rows/instT.Seconds(), "rows/s")
	b.ReportMetric(rows/directT.Seconds(), "direct_rows/s")
	b.ReportMetric(directT.Seconds()/instT.Seconds(), "of_direct")
	b.ReportMetric(float64(instT.Nanoseconds())/float64(rounds*perRound), "ns/op")
}

// recorder is an instance that notes the shape of each batch it is called
// with, so that ONNX Runtime can be called directly on the same batches.
type recorder struct {
	engine.Instance
	mu      sync.Mutex
	batches []textShape
}

// textShape is a text-classifier batch's rows and tokens per row: what its
// cost depends on (the model's work does not depend on the token ids).
type textShape struct{ rows, seq int }

func (r *recorder) Call(ctx context.Context, method string, in []tensor.Value) ([]tensor.Value, error) {
	if shape := in[0].Tensor().Shape(); len(shape) == 2 {
		r.mu.Lock()
		r.batches = append(r.batches, textShape{shape[0], shape[1]})
		r.mu.Unlock()
	}
	return r.Instance.Call(ctx, method, in)
}

func (r *recorder) Close() error { return r.Instance.(engine.Closer).Close() }

// take returns the batches recorded since the last take.
func (r *recorder) take() []textShape {
	r.mu.Lock()
	defer r.mu.Unlock()
	b := r.batches
	r.batches = nil
	return b
}

// BenchmarkTextClassifierMixed: the two-input sample (text-classifier) fed
// by 64 closed-loop callers whose requests mix sequence lengths (8, 16, 32
// and 64 tokens) and sizes (1 to 4 rows), through a runner (one worker
// with every core, adaptive batching, at most 64 rows a batch), against
// ONNX Runtime called directly, with as many threads and the same spinning
// setting, on batches of the very shapes the runner formed, in its order
// (noted as the worker is called; each shape's tensors built once before
// the clock starts; Run in a loop). A batch holds one sequence length,
// since tensors of different lengths cannot be concatenated. of_direct is
// the engine's rows/s ÷ the direct loop's, within one run: higher is
// better, 1 is no cost. rows/batch is the runner's mean batch, which the
// direct loop runs too; ns/op is the engine side's time per request.
func BenchmarkTextClassifierMixed(b *testing.B) {
	for _, spin := range []bool{true, false} {
		name := "spinning"
		if !spin {
			name = "nospin"
		}
		b.Run(name, func(b *testing.B) { benchTextClassifierMixed(b, spin) })
	}
}

func benchTextClassifierMixed(b *testing.B, spin bool) {
	lib := library(b)
	m := models.Text()
	path := modelFile(b, m.ONNX)
	const callers, maxBatch, rounds = 64, 64, 4

	rec := &recorder{}
	typ := *onnx.Type(lib)
	typ.Name = "onnx-recorded"
	base := typ.New
	typ.New = func(ctx context.Context, env engine.Env) (engine.Instance, error) {
		inst, err := base(ctx, env)
		if err != nil {
			return nil, err
		}
		rec.Instance = inst
		return rec, nil
	}
	e := enginetest.New(b, enginetest.Options{}, &typ)
	r := enginetest.Start(b, e, engine.RunnerConfig{Name: "text", Runnable: typ.Name, Params: engine.Params{"path": path, "spinning": spin}, Workers: 0,
		Batching: batcher.Config{Policy: batcher.Adaptive, MaxBatchSize: maxBatch, MaxLatency: 10 * time.Second}})

	// A pool of requests: 1 to 4 rows of 8, 16, 32 or 64 tokens.
	var pool [][]tensor.Value
	var poolRows []int
	for i := range 64 {
		rows, seq := 1+i%4, 8<<(i/4%4)
		ids, mask := tokens(rows, seq, i)
		pool = append(pool, textRequest{rows, seq, ids, mask}.values(b))
		poolRows = append(poolRows, rows)
	}
	direct := newTextDirect(b, path, runtime.NumCPU(), spin)
	// Warm both up on every sequence length.
	for _, in := range pool[:16] {
		if _, _, err := r.RunInfo(context.Background(), "run", in); err != nil {
			b.Fatal(err)
		}
	}
	warm := rec.take()
	direct.prepare(b, warm)
	direct.run(b, warm)

	// Rounds alternate the two sides, so a neighbour's load on a shared
	// machine weighs on both alike.
	perRound := max(4*callers, b.N/rounds)
	var engineT, directT time.Duration
	var engineRows, directRows, batches int
	b.ResetTimer()
	for range rounds {
		var next, rows atomic.Int64
		t0 := time.Now()
		closedLoop(b, callers, perRound, func() error {
			i := int(next.Add(1)) % len(pool)
			rows.Add(int64(poolRows[i]))
			_, _, err := r.RunInfo(context.Background(), "run", pool[i])
			return err
		})
		engineT += time.Since(t0)
		engineRows += int(rows.Load())
		b.StopTimer()
		recorded := rec.take()
		batches += len(recorded)
		direct.prepare(b, recorded)
		b.StartTimer()
		t1 := time.Now()
		directRows += direct.run(b, recorded)
		directT += time.Since(t1)
	}
	b.StopTimer()
	engineRate := float64(engineRows) / engineT.Seconds()
	directRate := float64(directRows) / directT.Seconds()
	b.ReportMetric(engineRate, "rows/s")
	b.ReportMetric(directRate, "direct_rows/s")
	b.ReportMetric(engineRate/directRate, "of_direct")
	b.ReportMetric(float64(engineRows)/float64(batches), "rows/batch")
	b.ReportMetric(float64(engineT.Nanoseconds())/float64(rounds*perRound), "ns/op")
}

// textDirect is ONNX Runtime called without benchtop on the text
// classifier: one session with the runner's threads and spinning, and the
// tensors of each batch shape, built once before the clock starts.
type textDirect struct {
	sess    *ort.DynamicAdvancedSession
	tensors map[textShape][2][]ort.Value // inputs, outputs
}

func newTextDirect(b *testing.B, path string, threads int, spin bool) *textDirect {
	so, err := ort.NewSessionOptions()
	if err != nil {
		b.Fatal(err)
	}
	defer so.Destroy()
	if err := so.SetIntraOpNumThreads(threads); err != nil {
		b.Fatal(err)
	}
	if err := so.SetInterOpNumThreads(1); err != nil {
		b.Fatal(err)
	}
	if !spin {
		if err := so.AddSessionConfigEntry("session.intra_op.allow_spinning", "0"); err != nil {
			b.Fatal(err)
		}
	}
	sess, err := ort.NewDynamicAdvancedSession(path, []string{models.InputIDs, models.AttentionMask}, []string{models.Label, models.Probabilities}, so)
	if err != nil {
		b.Fatal(err)
	}
	d := &textDirect{sess: sess, tensors: map[textShape][2][]ort.Value{}}
	b.Cleanup(func() {
		sess.Destroy()
		for _, t := range d.tensors {
			for _, v := range append(t[0], t[1]...) {
				v.Destroy()
			}
		}
	})
	return d
}

// prepare builds the tensors of the shapes it has not seen.
func (d *textDirect) prepare(b *testing.B, batches []textShape) {
	for _, sh := range batches {
		if _, ok := d.tensors[sh]; ok {
			continue
		}
		rows, seq := int64(sh.rows), int64(sh.seq)
		ids, mask := tokens(sh.rows, sh.seq, sh.rows+sh.seq)
		a, err := ort.NewTensor(ort.NewShape(rows, seq), ids)
		if err != nil {
			b.Fatal(err)
		}
		c, err := ort.NewTensor(ort.NewShape(rows, seq), mask)
		if err != nil {
			b.Fatal(err)
		}
		label, err := ort.NewEmptyTensor[int64](ort.NewShape(rows))
		if err != nil {
			b.Fatal(err)
		}
		probs, err := ort.NewEmptyTensor[float32](ort.NewShape(rows, 4))
		if err != nil {
			b.Fatal(err)
		}
		d.tensors[sh] = [2][]ort.Value{{a, c}, {label, probs}}
	}
}

// run runs every batch once and returns the rows.
func (d *textDirect) run(b *testing.B, batches []textShape) int {
	rows := 0
	for _, sh := range batches {
		t := d.tensors[sh]
		if err := d.sess.Run(t[0], t[1]); err != nil {
			b.Fatal(err)
		}
		rows += sh.rows
	}
	return rows
}
