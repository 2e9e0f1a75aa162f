package engine_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/benchtop/benchtop/batcher"
	"github.com/benchtop/benchtop/engine"
	"github.com/benchtop/benchtop/engine/enginetest"
	"github.com/benchtop/benchtop/engine/tensor"
)

// pair is a runnable of named tensors, the shape of a text classifier:
//
//	score(ids int64 [N, S], mask float32 [N, S], scale float32 [] unbatched, optional)
//	  → total int64 [N]         the sum of a row's ids where its mask is > 0
//	    weighted float32 [N, S] ids × mask × scale (1 when absent)
//	    scale float32 []        unbatched: the scale the batch ran with
//	bad(ids, mask) → total: one row too many when an id is -7
//
// Every output is computed per row, so a caller can check that it got
// exactly its own rows. An id of -9 holds the worker until release is
// closed (after a send on started). Each call is recorded.
type pair struct {
	started, release chan struct{}

	mu      sync.Mutex
	batches []pairBatch
}

type pairBatch struct {
	method     string
	rows, seq  int
	scaled     bool
	scaleShape []int
	scale      float32
}

func newPair() *pair { return &pair{started: make(chan struct{}, 1), release: make(chan struct{})} }

var (
	idsSpec  = tensor.IOSpec{Name: "ids", Kind: tensor.KindTensor, DType: tensor.Int64, Shape: []int{-1, -1}}
	maskSpec = tensor.IOSpec{Name: "mask", Kind: tensor.KindTensor, DType: tensor.Float32, Shape: []int{-1, -1}}
	pairSpec = engine.MethodSpec{
		Name: "score", Batchable: true,
		Inputs: []tensor.IOSpec{idsSpec, maskSpec,
			{Name: "scale", Kind: tensor.KindTensor, DType: tensor.Float32, Shape: []int{}, Unbatched: true, Optional: true}},
		Outputs: []tensor.IOSpec{
			{Name: "total", Kind: tensor.KindTensor, DType: tensor.Int64, Shape: []int{-1}},
			{Name: "weighted", Kind: tensor.KindTensor, DType: tensor.Float32, Shape: []int{-1, -1}},
			{Name: "scale", Kind: tensor.KindTensor, DType: tensor.Float32, Shape: []int{}, Unbatched: true},
		},
	}
	badSpec = engine.MethodSpec{
		Name: "bad", Batchable: true,
		Inputs:  []tensor.IOSpec{idsSpec, maskSpec},
		Outputs: []tensor.IOSpec{{Name: "total", Kind: tensor.KindTensor, DType: tensor.Int64, Shape: []int{-1}}},
	}
)

func (p *pair) typ() *engine.RunnableType {
	return &engine.RunnableType{
		Name:    "pair",
		Methods: []engine.MethodSpec{pairSpec, badSpec},
		New:     func(context.Context, engine.Env) (engine.Instance, error) { return p, nil },
	}
}

func (p *pair) Call(ctx context.Context, method string, in []tensor.Value) ([]tensor.Value, error) {
	spec := pairSpec
	if method == "bad" {
		spec = badSpec
	}
	a := engine.NewArgs(spec, in)
	idsT, err := a.Tensor("ids")
	if err != nil {
		return nil, err
	}
	maskT, err := a.Tensor("mask")
	if err != nil {
		return nil, err
	}
	rows, seq := idsT.Shape()[0], idsT.Shape()[1]
	rec := pairBatch{method: method, rows: rows, seq: seq, scale: 1}
	if a.Has("scale") {
		s, err := a.Tensor("scale")
		if err != nil {
			return nil, err
		}
		rec.scaled, rec.scaleShape, rec.scale = true, slices.Clone(s.Shape()), s.Float32s()[0]
	}
	p.mu.Lock()
	p.batches = append(p.batches, rec)
	p.mu.Unlock()
	ids, mask := idsT.Int64s(), maskT.Float32s()
	if slices.Contains(ids, -9) {
		p.started <- struct{}{}
		select {
		case <-p.release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	total, weighted := rowsOut(ids, mask, rows, seq, rec.scale)
	out := engine.NewResults(spec)
	if method == "bad" {
		if slices.Contains(ids, -7) {
			total = append(total, 0)
		}
		t, err := tensor.NewTensor([]int{len(total)}, total)
		if err != nil {
			return nil, err
		}
		out.SetTensor("total", t)
		return out.Values()
	}
	tt, err := tensor.NewTensor([]int{rows}, total)
	if err != nil {
		return nil, err
	}
	wt, err := tensor.NewTensor([]int{rows, seq}, weighted)
	if err != nil {
		return nil, err
	}
	st, err := tensor.NewTensor([]int{}, []float32{rec.scale})
	if err != nil {
		return nil, err
	}
	out.SetTensor("total", tt)
	out.SetTensor("weighted", wt)
	out.SetTensor("scale", st)
	return out.Values()
}

// rowsOut computes score's batched outputs row by row: the reference the
// test checks each caller's share against.
func rowsOut(ids []int64, mask []float32, rows, seq int, scale float32) ([]int64, []float32) {
	total := make([]int64, rows)
	weighted := make([]float32, rows*seq)
	for r := range rows {
		for c := range seq {
			i := r*seq + c
			if mask[i] > 0 {
				total[r] += ids[i]
			}
			weighted[i] = float32(ids[i]) * mask[i] * scale
		}
	}
	return total, weighted
}

// request is one caller's values: rows × seq ids and mask that encode the
// caller, and a scale when scale > 0.
type request struct {
	rows, seq int
	scale     float32
	ids       []int64
	mask      []float32
}

func newRequest(t testing.TB, id, rows, seq int, scale float32) request {
	r := request{rows: rows, seq: seq, scale: scale, ids: make([]int64, rows*seq), mask: make([]float32, rows*seq)}
	for i := range r.ids {
		r.ids[i] = int64(id*10000 + i)
		r.mask[i] = float32((id+i)%3) / 2 // 0, 0.5 or 1: some ids are masked out
	}
	return r
}

func (r request) values(t testing.TB) []tensor.Value {
	t.Helper()
	ids, err := tensor.NewTensor([]int{r.rows, r.seq}, r.ids)
	if err != nil {
		t.Fatal(err)
	}
	mask, err := tensor.NewTensor([]int{r.rows, r.seq}, r.mask)
	if err != nil {
		t.Fatal(err)
	}
	in := []tensor.Value{tensor.TensorValue(ids), tensor.TensorValue(mask), {}}
	if r.scale > 0 {
		s, err := tensor.NewTensor([]int{}, []float32{r.scale})
		if err != nil {
			t.Fatal(err)
		}
		in[2] = tensor.TensorValue(s)
	}
	return in
}

// check compares outs with what the request's own rows give.
func (r request) check(outs []tensor.Value) error {
	if len(outs) != 3 {
		return fmt.Errorf("%d outputs, want 3", len(outs))
	}
	scale := float32(1)
	if r.scale > 0 {
		scale = r.scale
	}
	total, weighted := rowsOut(r.ids, r.mask, r.rows, r.seq, scale)
	if got := outs[0].Tensor(); !slices.Equal(got.Shape(), []int{r.rows}) || !slices.Equal(got.Int64s(), total) {
		return fmt.Errorf("total is %v %v, want [%d] %v (someone else's rows?)", got, got.Int64s(), r.rows, total)
	}
	if got := outs[1].Tensor(); !slices.Equal(got.Shape(), []int{r.rows, r.seq}) || !slices.Equal(got.Float32s(), weighted) {
		return fmt.Errorf("weighted is %v, want [%d %d] of the request's own rows", got, r.rows, r.seq)
	}
	if got := outs[2].Tensor(); len(got.Shape()) != 0 || got.Float32s()[0] != scale {
		return fmt.Errorf("scale is %v %v, want the scalar %v", got, got.Float32s(), scale)
	}
	return nil
}

// TestNamedTensorsEachCallerGetsItsOwnRows: many callers of a method of
// three inputs and three outputs, with mixed sequence lengths, batch sizes
// from 1 to more than max_batch_size, and scales present, absent or
// different, through one runner: each gets exactly its own rows of every
// output; a batch never mixes sequence lengths or scales; the unbatched
// scale reaches the runnable once per batch, as a scalar.
func TestNamedTensorsEachCallerGetsItsOwnRows(t *testing.T) {
	p := newPair()
	e := newEngine(t, p.typ())
	const maxBatch = 8
	r := enginetest.Start(t, e, engine.RunnerConfig{Name: "pair", Runnable: "pair", Workers: 2, Batching: batching(batcher.Adaptive, maxBatch, 0)})
	const callers, calls = 48, 8
	seqs := []int{2, 3, 5}
	scales := []float32{0, 0.5, 2} // 0: absent
	type key struct {
		seq   int
		scale float32
	}
	var mu sync.Mutex
	sent := map[key]int{}
	shared := 0 // requests that shared their batch
	var wg sync.WaitGroup
	errs := make(chan error, callers*calls)
	for c := range callers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(c), 14))
			for i := range calls {
				rows := 1 + rng.IntN(maxBatch+4) // some larger than max_batch_size: cut and reassembled
				req := newRequest(t, c*calls+i, rows, seqs[rng.IntN(len(seqs))], scales[rng.IntN(len(scales))])
				outs, info, err := r.RunInfo(context.Background(), "score", req.values(t))
				if err == nil {
					err = req.check(outs)
				}
				if err != nil {
					errs <- fmt.Errorf("caller %d call %d (%d rows, seq %d, scale %v): %w", c, i, rows, req.seq, req.scale, err)
					continue
				}
				scale := req.scale
				if scale == 0 {
					scale = 1
				}
				mu.Lock()
				sent[key{req.seq, scale}] += rows
				if info.BatchRequests > 1 {
					shared++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	seen := map[key]int{}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, b := range p.batches {
		if b.rows > maxBatch {
			t.Errorf("a batch of %d rows, max_batch_size is %d", b.rows, maxBatch)
		}
		if b.scaled && len(b.scaleShape) != 0 {
			t.Errorf("the unbatched scale reached the runnable as %v, want a scalar passed once", b.scaleShape)
		}
		seen[key{b.seq, b.scale}] += b.rows
	}
	// Each batch is one [rows, seq] tensor with one scale, so rows counted
	// by (seq, scale) match only if no batch mixed them.
	if fmt.Sprint(seen) != fmt.Sprint(sent) {
		t.Errorf("rows run by (seq, scale) %v, want those sent %v", seen, sent)
	}
	if shared == 0 {
		t.Error("no request shared a batch: batching never happened")
	}
}

// TestNamedInputsAreChecked: a request that does not fit the signature is
// refused before it queues, as invalid input (HTTP 400), with an error
// that names the input.
func TestNamedInputsAreChecked(t *testing.T) {
	p := newPair()
	e := newEngine(t, p.typ())
	r := enginetest.Start(t, e, engine.RunnerConfig{Name: "pair", Runnable: "pair", Workers: 1})
	good := newRequest(t, 1, 2, 3, 0).values(t)
	i64 := func(shape []int) tensor.Value {
		n, _ := tensor.ElemCount(shape)
		x, err := tensor.NewTensor(shape, make([]int64, n))
		if err != nil {
			t.Fatal(err)
		}
		return tensor.TensorValue(x)
	}
	f32 := func(shape []int) tensor.Value {
		n, _ := tensor.ElemCount(shape)
		x, err := tensor.NewTensor(shape, make([]float32, n))
		if err != nil {
			t.Fatal(err)
		}
		return tensor.TensorValue(x)
	}
	tests := []struct {
		name string
		in   []tensor.Value
		want []string
	}{
		{"missing", good[:1], []string{`missing input "mask"`}},
		{"required left out", []tensor.Value{good[0], {}, {}}, []string{`missing input "mask"`}},
		{"extra", append(slices.Clone(good), good[0]), []string{"got 4 values", "ids, mask, scale"}},
		{"wrong dtype", []tensor.Value{good[0], i64([]int{2, 3}), {}}, []string{`"mask"`, "dtype int64, want float32"}},
		{"wrong kind", []tensor.Value{tensor.TextValue("hi"), good[1], {}}, []string{`"ids"`, "got text"}},
		{"wrong rank", []tensor.Value{good[0], good[1], f32([]int{1})}, []string{`"scale"`, "has 1 dims, want 0"}},
		{"disagreeing batch sizes", []tensor.Value{i64([]int{2, 3}), f32([]int{3, 3}), {}}, []string{`"ids" and "mask"`, "2 rows and 3 rows"}},
		{"no rows", []tensor.Value{i64([]int{0, 3}), f32([]int{0, 3}), {}}, []string{`"ids"`, "no rows"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := r.RunInfo(context.Background(), "score", tc.in)
			if !errors.Is(err, engine.ErrInvalidInput) {
				t.Fatalf("got %v, want invalid input", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
	if _, err := r.Run(context.Background(), "score", good[0]); !errors.Is(err, engine.ErrInvalidInput) || !strings.Contains(err.Error(), "RunInfo") {
		t.Errorf("Run of a method of three inputs: %v, want invalid input pointing at RunInfo", err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.batches) != 0 {
		t.Errorf("%d refused requests reached the runnable", len(p.batches))
	}
}

// TestWrongOutputBatchSizeFailsOnlyItsBatch: a batch whose output has a
// row too many fails with an error naming the output; requests of another
// sequence length, which never share its batch, are served.
func TestWrongOutputBatchSizeFailsOnlyItsBatch(t *testing.T) {
	p := newPair()
	e := newEngine(t, p.typ())
	r := enginetest.Start(t, e, engine.RunnerConfig{Name: "pair", Runnable: "pair", Workers: 1, Batching: batching(batcher.Adaptive, 16, 0)})
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for c := range 64 {
		wg.Go(func() {
			poisoned := c%4 == 0
			seq := 3
			req := newRequest(t, c, 1+c%3, seq, 0)
			if poisoned {
				req = newRequest(t, c, 1+c%3, 5, 0)
				req.ids[0] = -7
			}
			outs, _, err := r.RunInfo(context.Background(), "bad", req.values(t)[:2])
			switch {
			case poisoned && err == nil:
				errs <- fmt.Errorf("caller %d: a batch with a row too many succeeded", c)
			case poisoned && !strings.Contains(err.Error(), `output "total"`):
				errs <- fmt.Errorf("caller %d: %v, want the output named", c, err)
			case poisoned:
			case err != nil:
				errs <- fmt.Errorf("caller %d failed beside a bad batch: %w", c, err)
			default:
				total, _ := rowsOut(req.ids, req.mask, req.rows, req.seq, 1)
				if got := outs[0].Tensor().Int64s(); !slices.Equal(got, total) {
					errs <- fmt.Errorf("caller %d: total %v, want %v", c, got, total)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestBatchesShareOnlyIdenticalUnbatchedInputs: requests queued behind a
// busy worker are batched by what they carry unbatched: those without a
// scale together, those with the same scale together, a different scale
// alone; present and absent never share.
func TestBatchesShareOnlyIdenticalUnbatchedInputs(t *testing.T) {
	p := newPair()
	e := newEngine(t, p.typ())
	r := enginetest.Start(t, e, engine.RunnerConfig{Name: "pair", Runnable: "pair", Workers: 1, Batching: batching(batcher.Adaptive, 64, 0)})
	hold := newRequest(t, 0, 1, 1, 0)
	hold.ids[0] = -9
	held := make(chan error, 1)
	go func() {
		_, _, err := r.RunInfo(context.Background(), "score", hold.values(t))
		held <- err
	}()
	<-p.started // the only worker is busy

	scales := []float32{0, 2, 0, 2, 3} // absent, 2, absent, 2, 3
	type answer struct {
		i    int
		info engine.CallInfo
		err  error
	}
	answers := make(chan answer, len(scales))
	for i, s := range scales {
		req := newRequest(t, i+1, 2, 4, s)
		go func() {
			outs, info, err := r.RunInfo(context.Background(), "score", req.values(t))
			if err == nil {
				err = req.check(outs)
			}
			answers <- answer{i, info, err}
		}()
		// One at a time, so that they queue in this order.
		waitFor(t, func() bool { return r.Stats(engine.StatsOptions{}).Methods[0].Queue.Depth == i+1 })
	}
	close(p.release)
	if err := <-held; err != nil {
		t.Fatal(err)
	}
	wantShared := []int{2, 2, 2, 2, 1}
	for range scales {
		a := <-answers
		if a.err != nil {
			t.Errorf("request %d (scale %v): %v", a.i, scales[a.i], a.err)
			continue
		}
		if a.info.BatchRequests != wantShared[a.i] {
			t.Errorf("request %d (scale %v) shared a batch of %d requests, want %d", a.i, scales[a.i], a.info.BatchRequests, wantShared[a.i])
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	var got []string
	for _, b := range p.batches[1:] {
		got = append(got, fmt.Sprintf("%d rows scaled=%v %v", b.rows, b.scaled, b.scale))
	}
	want := []string{"4 rows scaled=false 1", "4 rows scaled=true 2", "2 rows scaled=true 3"}
	if !slices.Equal(got, want) {
		t.Errorf("batches %q, want %q", got, want)
	}
}

// TestLocalCallsNamedTensors: Local checks and calls a method of several
// inputs as a runner does, without batching.
func TestLocalCallsNamedTensors(t *testing.T) {
	p := newPair()
	reg := engine.NewRegistry()
	if err := reg.Register(p.typ()); err != nil {
		t.Fatal(err)
	}
	l, err := engine.NewLocal(context.Background(), reg, engine.RunnerConfig{Runnable: "pair"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	req := newRequest(t, 3, 3, 2, 0.5)
	outs, err := l.Call(context.Background(), "score", req.values(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := req.check(outs); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Call(context.Background(), "score", req.values(t)[:1]); !errors.Is(err, engine.ErrInvalidInput) || !strings.Contains(err.Error(), `"mask"`) {
		t.Fatalf("got %v, want the missing mask named", err)
	}
	bad := newRequest(t, 3, 3, 2, 0)
	bad.ids[1] = -7
	if _, err := l.Call(context.Background(), "bad", bad.values(t)[:2]); err == nil || !strings.Contains(err.Error(), `output "total"`) {
		t.Fatalf("got %v, want the output with a row too many named", err)
	}
}

// TestMethodSpecValidate: what a signature must say to be served.
func TestMethodSpecValidate(t *testing.T) {
	f32 := func(name string, shape ...int) tensor.IOSpec {
		return tensor.IOSpec{Name: name, Kind: tensor.KindTensor, DType: tensor.Float32, Shape: shape}
	}
	unbatched := func(s tensor.IOSpec) tensor.IOSpec { s.Unbatched = true; return s }
	optional := func(s tensor.IOSpec) tensor.IOSpec { s.Optional = true; return s }
	tests := []struct {
		name string
		spec engine.MethodSpec
		want string // "" for valid
	}{
		{"one unnamed each", engine.MethodSpec{Name: "m", Inputs: []tensor.IOSpec{f32("", -1)}, Outputs: []tensor.IOSpec{f32("", -1)}, Batchable: true}, ""},
		{"named", engine.MethodSpec{Name: "m", Inputs: []tensor.IOSpec{f32("a", -1, 2), f32("b", -1)}, Outputs: []tensor.IOSpec{f32("a", -1)}, Batchable: true}, ""},
		{"no name", engine.MethodSpec{Inputs: []tensor.IOSpec{f32("")}}, "method has no name"},
		{"unnamed among several", engine.MethodSpec{Name: "m", Inputs: []tensor.IOSpec{f32("a"), f32("")}}, "input 1 has no name"},
		{"duplicate", engine.MethodSpec{Name: "m", Outputs: []tensor.IOSpec{f32("a"), f32("a")}}, `two outputs are named "a"`},
		{"batch dim outside the second input", engine.MethodSpec{Name: "m", Batchable: true, BatchDim: 1, Inputs: []tensor.IOSpec{f32("a", -1, -1), f32("b", -1)}}, `input "b": batch dim 1 is outside its shape [-1]`},
		{"batched text", engine.MethodSpec{Name: "m", Batchable: true, Inputs: []tensor.IOSpec{f32("a", -1), {Name: "t", Kind: tensor.KindText}}}, `batched input "t" must be a tensor or a JSON array`},
		{"unbatched text", engine.MethodSpec{Name: "m", Batchable: true, Inputs: []tensor.IOSpec{f32("a", -1), unbatched(tensor.IOSpec{Name: "t", Kind: tensor.KindText})}}, ""},
		{"only unbatched inputs", engine.MethodSpec{Name: "m", Batchable: true, Inputs: []tensor.IOSpec{unbatched(f32("a", 2))}}, "no batched input"},
		{"unbatched in a method that is not batchable", engine.MethodSpec{Name: "m", Inputs: []tensor.IOSpec{unbatched(f32("a", 2))}}, "not batchable"},
		{"optional output", engine.MethodSpec{Name: "m", Outputs: []tensor.IOSpec{optional(f32("a"))}}, `output "a" is optional`},
		{"optional input", engine.MethodSpec{Name: "m", Batchable: true, Inputs: []tensor.IOSpec{f32("a", -1), optional(f32("b", -1))}}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.spec.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("got %v, want an error saying %q", err, tc.want)
			}
		})
	}
}

// TestDefaultNames: a method of one unnamed input and output is served with
// them called "input" and "output", everywhere the engine hands out specs.
func TestDefaultNames(t *testing.T) {
	e := newEngine(t)
	r := enginetest.Start(t, e, engine.RunnerConfig{Name: "sim", Runnable: "sim", Params: engine.Params{"fixed_ms": 0, "per_row_ms": 0}})
	spec, _ := r.Method("predict")
	if spec.Inputs[0].Name != engine.DefaultInputName || spec.Outputs[0].Name != engine.DefaultOutputName {
		t.Fatalf("names %q → %q, want input → output", spec.Inputs.Names(), spec.Outputs.Names())
	}
	if typ, _ := e.Registry().Lookup("sim"); typ.Methods[0].Inputs[0].Name != "" {
		t.Fatal("naming the served spec changed the registered type's")
	}
	_, _, err := r.RunInfo(context.Background(), "predict", []tensor.Value{tensor.TextValue("x")})
	if err == nil || !strings.Contains(err.Error(), `invalid input "input": got text`) {
		t.Fatalf("got %v, want the input named", err)
	}
	if _, _, err := r.RunInfo(context.Background(), "predict", nil); err == nil || !strings.Contains(err.Error(), `missing input "input"`) {
		t.Fatalf("got %v, want the missing input named", err)
	}
}

// TestRunTimesOutWithNamedTensors: the runner's per-call deadline still
// reaches an instance of several inputs (the hold case).
func TestRunTimesOutWithNamedTensors(t *testing.T) {
	p := newPair()
	e := newEngine(t, p.typ())
	r := enginetest.Start(t, e, engine.RunnerConfig{Name: "pair", Runnable: "pair", Workers: 1, Timeout: 50 * time.Millisecond})
	hold := newRequest(t, 0, 1, 1, 0)
	hold.ids[0] = -9
	_, _, err := r.RunInfo(context.Background(), "score", hold.values(t))
	if !errors.Is(err, engine.ErrTimeout) {
		t.Fatalf("got %v, want a timeout", err)
	}
}
