package process

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/benchtop/benchtop/batcher"
	"github.com/benchtop/benchtop/engine"
	"github.com/benchtop/benchtop/engine/enginetest"
	"github.com/benchtop/benchtop/engine/tensor"
	"github.com/benchtop/benchtop/samples"
)

func TestDescribeReadsTheWorkersMethods(t *testing.T) {
	typ, _ := testType()
	specs, err := typ.Describe(t.Context(), params(t, "worker.py", nil))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]engine.MethodSpec{}
	for _, s := range specs {
		got[s.Name] = s
	}
	tests := []struct {
		name string
		want string
	}{
		{"double", "tensor float32[-1 -1] → tensor float32[-1 -1], batchable along dim 0 → 0"},
		{"echo", "tensor → tensor, batchable along dim 0 → 0"},
		{"echo_text", "text → text, not batchable"},
		{"wrap_rows", "json → json, batchable along dim 0 → 0"},
		{"pid", "json → json, not batchable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, ok := got[tt.name]
			if !ok {
				t.Fatalf("no method %q in %v", tt.name, specs)
			}
			if got := signature(s); got != tt.want {
				t.Errorf("signature %q, want %q", got, tt.want)
			}
		})
	}
	if specs[0].Name != "double" || specs[0].Doc == "" {
		t.Errorf("first method %q with doc %q: want double, in declaration order, with its docstring", specs[0].Name, specs[0].Doc)
	}
}

func TestValuesRoundTripThroughAWorker(t *testing.T) {
	typ, _ := testType()
	e := enginetest.New(t, enginetest.Options{}, typ)
	r := startRunner(t, e, engine.RunnerConfig{Params: params(t, "worker.py", nil), Workers: 1})
	mustTensor := func(x *tensor.Tensor, err error) tensor.Value {
		if err != nil {
			t.Fatal(err)
		}
		return tensor.TensorValue(x)
	}
	tests := []struct {
		name   string
		method string
		in     tensor.Value
	}{
		{"float32", "echo", mustTensor(tensor.NewTensor([]int{2, 3}, []float32{1.5, -2, 3e-7, 0, 1e30, -0.25}))},
		{"float64", "echo", mustTensor(tensor.NewTensor([]int{3}, []float64{1.0 / 3, -1e300, 5e-324}))},
		{"int32", "echo", mustTensor(tensor.NewTensor([]int{2, 2}, []int32{-1 << 31, 1<<31 - 1, 0, 7}))},
		{"int64", "echo", mustTensor(tensor.NewTensor([]int{2}, []int64{-1 << 63, 1<<63 - 1}))},
		{"uint8", "echo", mustTensor(tensor.NewTensor([]int{1, 4}, []uint8{0, 1, 254, 255}))},
		{"bool", "echo", mustTensor(tensor.NewTensor([]int{3}, []bool{true, false, true}))},
		{"string", "echo", mustTensor(tensor.NewStringTensor([]int{2, 2}, []string{"", "héllo", "日本", "a\x00b"}))},
		{"rank 3", "echo", mustTensor(tensor.NewTensor([]int{2, 1, 2}, []int64{1, 2, 3, 4}))},
		{"text", "echo_text", tensor.TextValue("ünïcode ✓\nline two")},
		{"empty text", "echo_text", tensor.TextValue("")},
		{"json", "echo_json", tensor.JSONValue(map[string]any{"a": []any{1.0, "x", nil, true}, "b": map[string]any{}})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := r.Run(context.Background(), tt.method, tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if out.Kind() != tt.in.Kind() {
				t.Fatalf("got %s, want %s", out, tt.in)
			}
			switch out.Kind() {
			case tensor.KindTensor:
				if !out.Tensor().Equal(tt.in.Tensor()) {
					t.Errorf("got %v %v %v, want %v", out, out.Tensor().Bytes(), out.Tensor().Strings(), tt.in)
				}
			case tensor.KindText:
				if out.Text() != tt.in.Text() {
					t.Errorf("got %q, want %q", out.Text(), tt.in.Text())
				}
			default:
				if fmt.Sprint(out.JSON()) != fmt.Sprint(tt.in.JSON()) {
					t.Errorf("got %v, want %v", out.JSON(), tt.in.JSON())
				}
			}
		})
	}
	t.Run("batchable json", func(t *testing.T) {
		out, err := r.Run(context.Background(), "wrap_rows", tensor.JSONValue([]any{"a", 2.0}))
		if err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprint(out.JSON()); got != "[map[row:a] map[row:2]]" {
			t.Errorf("got %s", got)
		}
	})
}

// Hundreds of callers send distinct rows at once; batching merges them into
// shared calls, and each must get exactly its own rows back, doubled.
func TestConcurrentCallersGetTheirOwnRows(t *testing.T) {
	typ, _ := testType()
	e := enginetest.New(t, enginetest.Options{}, typ)
	r := startRunner(t, e, engine.RunnerConfig{
		Params: params(t, "worker.py", nil), Workers: 2,
		Batching: batcher.Config{Policy: batcher.Adaptive, MaxBatchSize: 64, MaxLatency: 30 * time.Second, MaxQueueSize: 100000},
	})
	const callers, calls, k = 300, 3, 8
	var shared atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for c := range callers {
		wg.Go(func() {
			for i := range calls {
				rows := 1 + (c+i)%4
				data := make([]float32, rows*k)
				for j := range data {
					data[j] = float32(c*1000 + i*100 + j)
				}
				in := floats(t, []int{rows, k}, data)
				outs, info, err := r.RunInfo(context.Background(), "double", []tensor.Value{in})
				if err != nil {
					errs <- fmt.Errorf("caller %d call %d: %w", c, i, err)
					return
				}
				got := outs[0].Tensor()
				if !slices.Equal(got.Shape(), []int{rows, k}) {
					errs <- fmt.Errorf("caller %d call %d: shape %v, want [%d %d]", c, i, got.Shape(), rows, k)
					return
				}
				for j, v := range got.Float32s() {
					if v != 2*data[j] {
						errs <- fmt.Errorf("caller %d call %d: element %d is %v, want %v (another caller's row?)", c, i, j, v, 2*data[j])
						return
					}
				}
				if info.BatchRequests > 1 {
					shared.Add(1)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if shared.Load() == 0 {
		t.Error("no call shared its batch with another: batching never happened")
	}
}

func TestWorkerErrors(t *testing.T) {
	typ, _ := testType()
	w := newWorker(t, typ, params(t, "worker.py", nil), engine.Env{})
	pid := w.PID()
	tests := []struct {
		name     string
		method   string
		in       tensor.Value
		want     string
		invalid  bool
		crashed  bool
		malforms bool
	}{
		{name: "exception", method: "fail", in: tensor.JSONValue("boom"), want: "ValueError: boom"},
		{name: "invalid input", method: "fail", in: tensor.JSONValue("invalid"), want: "the input is bad: send a positive number", invalid: true},
		{name: "nan in json", method: "fail", in: tensor.JSONValue("nan"), want: "ValueError: Out of range float values are not JSON compliant"},
		{name: "unknown method", method: "nope", in: tensor.JSONValue(1.0), want: `this worker has no method 'nope'`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := callOne(context.Background(), w, tt.method, tt.in)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
			if got := errors.Is(err, engine.ErrInvalidInput); got != tt.invalid {
				t.Errorf("errors.Is(err, ErrInvalidInput) = %v, want %v", got, tt.invalid)
			}
			if errors.Is(err, engine.ErrWorkerCrashed) {
				t.Errorf("a reported error is not a crash: %v", err)
			}
		})
	}
	t.Run("print goes to stderr", func(t *testing.T) {
		out := call(t, w, "shout", tensor.JSONValue("hello from print()"))
		if out.JSON() != float64(pid) {
			t.Errorf("pid %v, want %d", out.JSON(), pid)
		}
	})
	t.Run("still the same process", func(t *testing.T) {
		if out := call(t, w, "pid", tensor.JSONValue(nil)); out.JSON() != float64(pid) {
			t.Errorf("pid %v, want %d: errors must not replace the worker", out.JSON(), pid)
		}
	})
}

// stderrLines collects what a worker logs.
type stderrLines struct{ ch chan string }

func (h stderrLines) Enabled(context.Context, slog.Level) bool { return true }
func (h stderrLines) Handle(_ context.Context, r slog.Record) error {
	h.ch <- r.Message
	return nil
}
func (h stderrLines) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h stderrLines) WithGroup(string) slog.Handler      { return h }

func TestStderrLinesGoToTheLogger(t *testing.T) {
	typ, _ := testType()
	lines := stderrLines{ch: make(chan string, 100)}
	w := newWorker(t, typ, params(t, "worker.py", nil), engine.Env{Logger: slog.New(lines)})
	call(t, w, "shout", tensor.JSONValue("a line for the log"))
	timeout := time.After(20 * time.Second)
	for {
		select {
		case l := <-lines.ch:
			if l == "a line for the log" {
				return
			}
		case <-timeout:
			t.Fatal("the worker's print() never reached the logger")
		}
	}
}

func TestWorkerEnvironment(t *testing.T) {
	typ, _ := testType()
	p := params(t, "worker.py", nil)
	p["env"].(map[string]any)["MY_SETTING"] = 42.0
	w := newWorker(t, typ, p, engine.Env{Runner: "envtest", Worker: 7, Threads: 3, GPUs: []int{2, 0}, CUDAVisibleDevices: "GPU-c,GPU-a"})
	out := call(t, w, "env", tensor.JSONValue([]any{"OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "CUDA_VISIBLE_DEVICES", "MY_SETTING", protocolEnv}))
	got := fmt.Sprint(out.JSON())
	want := "map[context:map[gpus:[2 0] runner:envtest threads:3 worker:7] env:map[BENCHTOP_WORKER_PROTOCOL:2 CUDA_VISIBLE_DEVICES:GPU-c,GPU-a MY_SETTING:42 OMP_NUM_THREADS:3 TF_NUM_INTRAOP_THREADS:3]]"
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

// Only the batch with the poisoned row fails, with the worker's last words
// and how it died; the callers queued behind it are served by the
// replacement.
func TestWorkerKilledMidBatch(t *testing.T) {
	typ, _ := testType()
	e := enginetest.New(t, enginetest.Options{}, typ)
	r := startRunner(t, e, engine.RunnerConfig{
		Params: params(t, "worker.py", nil), Workers: 1,
		Batching: batcher.Config{Policy: batcher.None, MaxBatchSize: 1, MaxQueueSize: 1000},
	})
	before, err := r.Run(context.Background(), "pid", tensor.JSONValue(nil))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	goodErrs := make(chan error, 40)
	for i := range 40 {
		wg.Go(func() {
			in := floats(t, []int{1, 2}, []float32{float32(i), 1})
			out, err := r.Run(context.Background(), "double", in)
			if err == nil && out.Tensor().Float32s()[0] != float32(2*i) {
				err = fmt.Errorf("got %v for row %d", out.Tensor().Float32s(), i)
			}
			if err != nil {
				goodErrs <- err
			}
		})
	}
	_, err = r.Run(context.Background(), "double", floats(t, []int{1, 2}, []float32{-1000, 0}))
	wg.Wait()
	close(goodErrs)
	if !errors.Is(err, engine.ErrWorkerCrashed) {
		t.Fatalf("error %v, want ErrWorkerCrashed", err)
	}
	for _, want := range []string{"dying on purpose", "killed by signal 9", `while running "double"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	for err := range goodErrs {
		t.Errorf("a caller outside the poisoned batch failed: %v", err)
	}
	after, err := r.Run(context.Background(), "pid", tensor.JSONValue(nil))
	if err != nil {
		t.Fatal(err)
	}
	if after.JSON() == before.JSON() {
		t.Errorf("pid %v after the crash: want a new process", after.JSON())
	}
	if !gone(int(before.JSON().(float64))) {
		t.Errorf("the killed worker %v was not reaped", before.JSON())
	}
	if st := r.Stats(engine.StatsOptions{}); st.Restarts < 1 {
		t.Errorf("restarts %d, want the crashed worker counted", st.Restarts)
	}
}

func TestWorkerThatHangsPastTheTimeout(t *testing.T) {
	typ, _ := testType()
	e := enginetest.New(t, enginetest.Options{}, typ)
	r := startRunner(t, e, engine.RunnerConfig{Params: params(t, "worker.py", nil), Workers: 1, Timeout: 300 * time.Millisecond})
	before, err := r.Run(context.Background(), "pid", tensor.JSONValue(nil))
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.Run(context.Background(), "double", floats(t, []int{1, 1}, []float32{-2000}))
	if !errors.Is(err, engine.ErrTimeout) {
		t.Fatalf("error %v, want ErrTimeout", err)
	}
	out, err := r.Run(context.Background(), "double", floats(t, []int{1, 2}, []float32{1, 2}))
	if err != nil {
		t.Fatalf("after the timeout: %v", err)
	}
	if got := out.Tensor().Float32s(); !slices.Equal(got, []float32{2, 4}) {
		t.Errorf("got %v, want [2 4]", got)
	}
	if pid := int(before.JSON().(float64)); !gone(pid) {
		t.Errorf("the hung worker %d is still there", pid)
	}
}

func TestTimeoutKillsTheCallDirectly(t *testing.T) {
	typ, _ := testType()
	w := newWorker(t, typ, params(t, "worker.py", nil), engine.Env{})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := callOne(ctx, w, "double", floats(t, []int{1, 1}, []float32{-2000}))
	if !errors.Is(err, engine.ErrWorkerCrashed) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error %v, want both ErrWorkerCrashed and DeadlineExceeded", err)
	}
	if !strings.Contains(err.Error(), "hanging on purpose") {
		t.Errorf("error %q does not quote the worker's stderr", err)
	}
	if !gone(w.PID()) {
		t.Errorf("worker %d still exists after the timeout", w.PID())
	}
	if _, err2 := callOne(context.Background(), w, "pid", tensor.JSONValue(nil)); !errors.Is(err2, engine.ErrWorkerCrashed) {
		t.Errorf("a call on the killed worker: %v, want ErrWorkerCrashed again", err2)
	}
}

func TestGarbageOnStdout(t *testing.T) {
	t.Run("mid-call", func(t *testing.T) {
		typ, _ := testType()
		e := enginetest.New(t, enginetest.Options{}, typ)
		r := startRunner(t, e, engine.RunnerConfig{Params: params(t, "raw_worker.py", nil), Workers: 1})
		_, err := r.Run(context.Background(), "double", floats(t, []int{1, 2}, []float32{-3000, 1}))
		if !errors.Is(err, engine.ErrWorkerCrashed) {
			t.Fatalf("error %v, want ErrWorkerCrashed", err)
		}
		for _, want := range []string{`wrote "debug: got a batch of shape (1, 2)\n`, "reserved for the benchtop worker protocol", "print to stderr"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not say %q", err, want)
			}
		}
		out, err := r.Run(context.Background(), "double", floats(t, []int{1, 2}, []float32{1, 2}))
		if err != nil {
			t.Fatalf("after the replacement: %v", err)
		}
		if got := out.Tensor().Float32s(); !slices.Equal(got, []float32{2, 4}) {
			t.Errorf("got %v, want [2 4]", got)
		}
	})
	t.Run("before the handshake", func(t *testing.T) {
		typ, _ := testType()
		_, err := typ.Describe(t.Context(), params(t, "raw_worker.py", map[string]any{"banner": true}))
		if err == nil || !strings.Contains(err.Error(), `wrote "Loading the model, please wait...\n"`) || !strings.Contains(err.Error(), "stdout, which is reserved") {
			t.Fatalf("error %v, want one quoting the banner and saying stdout is reserved", err)
		}
	})
}

func TestHandshakeThatLies(t *testing.T) {
	typ, _ := testType()
	p := params(t, "raw_worker.py", map[string]any{"lie": true})
	specs, err := typ.Describe(t.Context(), p)
	if err != nil {
		t.Fatal(err)
	}
	if len(specs) != 1 || specs[0].Name != "double" {
		t.Fatalf("probe saw %v, want double", specs)
	}
	_, err = typ.New(context.Background(), engine.Env{Params: p})
	if err == nil {
		t.Fatal("a worker declaring other methods than its probe was accepted")
	}
	for _, want := range []string{`method "double" is gone`, `method "triple" is new`, "reload the config"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}

func TestWorkerThatFailsToStart(t *testing.T) {
	typ, ps := testType()
	t.Run("exits before its handshake", func(t *testing.T) {
		_, err := typ.Describe(t.Context(), params(t, "exit_at_start.py", nil))
		for _, want := range []string{"exited before its handshake (exit status 3)", "fatal: CUDA driver not found"} {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("error %v does not say %q", err, want)
			}
		}
	})
	t.Run("exits after the probe", func(t *testing.T) {
		p := params(t, "raw_worker.py", map[string]any{"exit_at_init": true})
		if _, err := typ.Describe(t.Context(), p); err != nil {
			t.Fatal(err)
		}
		_, err := typ.New(context.Background(), engine.Env{Params: p})
		for _, want := range []string{"exited before its handshake (exit status 3)", "cannot load model weights: /nope/model.bin"} {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("error %v does not say %q", err, want)
			}
		}
	})
	t.Run("init raises", func(t *testing.T) {
		p := params(t, "worker.py", map[string]any{"fail_init": true})
		if _, err := typ.Describe(t.Context(), p); err != nil {
			t.Fatal(err)
		}
		_, err := typ.New(context.Background(), engine.Env{Params: p})
		for _, want := range []string{"refused to start: init: FileNotFoundError: model file /nonexistent/model.bin not found", "Traceback"} {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("error %v does not say %q", err, want)
			}
		}
	})
	t.Run("unknown init param", func(t *testing.T) {
		p := params(t, "worker.py", map[string]any{"treshold": 0.5})
		if _, err := typ.Describe(t.Context(), p); err != nil {
			t.Fatal(err)
		}
		_, err := typ.New(context.Background(), engine.Env{Params: p})
		if err == nil || !strings.Contains(err.Error(), "unexpected keyword argument 'treshold'") {
			t.Errorf("error %v, want it to name the unknown init param", err)
		}
	})
	t.Run("never answers", func(t *testing.T) {
		p := engine.Params{"command": []any{python(t), "-c", "import time; time.sleep(60)"}, "handshake_timeout_ms": 300}
		_, err := typ.Describe(t.Context(), p)
		if err == nil || !strings.Contains(err.Error(), "did not answer its handshake within 300ms") {
			t.Errorf("error %v, want a handshake timeout", err)
		}
	})
	for _, pid := range ps.all() {
		if !gone(pid) {
			t.Errorf("worker %d that failed to start was not reaped", pid)
		}
	}
}

// TestProbeStopsWithItsContext: a config check or reload that gives up ends
// the probe's worker with it, instead of waiting out the handshake timeout.
func TestProbeStopsWithItsContext(t *testing.T) {
	typ, ps := testType()
	p := engine.Params{"command": []any{python(t), "-c", "import time; time.sleep(60)"}, "handshake_timeout_ms": 30000}
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := typ.Describe(ctx, p)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want the context's end", err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("the probe took %v: it waited for its handshake timeout, not its context", took)
	}
	if len(ps.all()) != 1 {
		t.Fatalf("started %d processes, want the one probe", len(ps.all()))
	}
	for _, pid := range ps.all() {
		if !gone(pid) {
			t.Errorf("probe %d outlived its context", pid)
		}
	}
}

func TestResizeUnderLoad(t *testing.T) {
	typ, ps := testType()
	e := enginetest.New(t, enginetest.Options{}, typ)
	r := startRunner(t, e, engine.RunnerConfig{
		Params: params(t, "worker.py", nil), Workers: 1,
		Batching: batcher.Config{Policy: batcher.Adaptive, MaxBatchSize: 16, MaxQueueSize: 100000},
	})
	const callers, calls = 8, 120
	var done atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for c := range callers {
		wg.Go(func() {
			for i := range calls {
				v := float32(c*calls + i)
				out, err := r.Run(context.Background(), "double", floats(t, []int{1, 2}, []float32{v, -v}))
				if err == nil && !slices.Equal(out.Tensor().Float32s(), []float32{2 * v, -2 * v}) {
					err = fmt.Errorf("got %v for %v", out.Tensor().Float32s(), v)
				}
				if err != nil {
					errs <- fmt.Errorf("caller %d call %d: %w", c, i, err)
					return
				}
				done.Add(1)
			}
		})
	}
	// Resize at points of progress, not of time, so the steps land while
	// traffic flows whatever the machine's speed.
	for i, n := range []int{3, 1, 4, 2, 1, 3} {
		target := int64((i + 1) * callers * calls / 8)
		for done.Load() < target && done.Load() < callers*calls {
			time.Sleep(time.Millisecond)
		}
		if err := r.SetWorkers(n); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := done.Load(); got != callers*calls {
		t.Errorf("%d calls completed, want %d", got, callers*calls)
	}
	if len(ps.all()) < 5 {
		t.Errorf("%d processes started, want the resizes to have started several", len(ps.all()))
	}
}

// After the engine closes, every process it started is gone and reaped,
// and so is whatever those processes started.
func TestNoProcessOutlivesClose(t *testing.T) {
	adoptOrphans(t)
	typ, ps := testType()
	e := enginetest.New(t, enginetest.Options{}, typ)
	r := enginetest.Start(t, e, engine.RunnerConfig{Name: "py", Runnable: "process", Params: params(t, "worker.py", nil), Workers: 3})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := r.Run(ctx, "spawn", tensor.JSONValue(nil))
	if err != nil {
		t.Fatal(err)
	}
	grandchild := int(out.JSON().(float64))
	if _, err := r.Run(ctx, "double", floats(t, []int{1, 1}, []float32{-1000})); !errors.Is(err, engine.ErrWorkerCrashed) {
		t.Fatalf("crash: %v", err)
	}
	eventually(t, "the crashed worker's replacement", func() bool {
		st := r.Stats(engine.StatsOptions{})
		return st.Restarts == 1 && st.Ready == 3
	})
	if err := e.Close(ctx); err != nil {
		t.Fatal(err)
	}
	started := ps.all()
	if len(started) < 5 {
		t.Fatalf("%d processes recorded, want a probe, three workers and a replacement", len(started))
	}
	for _, pid := range started {
		if !gone(pid) {
			t.Errorf("worker process %d survived Close (or was left a zombie)", pid)
		}
	}
	eventually(t, fmt.Sprintf("grandchild %d to die with its worker's process group", grandchild), func() bool { return reaped(grandchild) })
}

func TestShutdownEscalates(t *testing.T) {
	typ, _ := testType()
	w := newWorker(t, typ, params(t, "worker.py", map[string]any{"stubborn": true}), engine.Env{})
	err := w.c.shutdown(200 * time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "ignored SHUTDOWN and SIGTERM; killed it") {
		t.Fatalf("error %v, want the escalation to SIGKILL reported", err)
	}
	if !gone(w.PID()) {
		t.Errorf("worker %d survived", w.PID())
	}
}

// The parent-death signal: when benchtop itself is killed (no Close, no
// deferred cleanup), its workers die with it. A helper process plays
// benchtop: it starts a worker, prints its pid, and is killed with SIGKILL.
func TestWorkersDieWithBenchtop(t *testing.T) {
	python(t)
	adoptOrphans(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperBenchtop$")
	cmd.Env = append(os.Environ(), "BENCHTOP_PROCESS_HELPER="+strings.Join([]string{python(t), sdkDir(t)}, "\x1f"))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("helper: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "worker ")))
	if err != nil {
		t.Fatalf("helper said %q", line)
	}
	if gone(pid) {
		t.Fatalf("worker %d is not running before the helper is killed", pid)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	eventually(t, fmt.Sprintf("worker %d to die with its parent", pid), func() bool { return reaped(pid) })
}

// TestHelperBenchtop is the helper process of TestWorkersDieWithBenchtop;
// it does nothing in a normal run.
func TestHelperBenchtop(t *testing.T) {
	spec := os.Getenv("BENCHTOP_PROCESS_HELPER")
	if spec == "" {
		t.Skip("helper process for TestWorkersDieWithBenchtop")
	}
	py, sdk, _ := strings.Cut(spec, "\x1f")
	p := engine.Params{
		"command": []any{py, filepath.Join("testdata", "worker.py")},
		"env":     map[string]any{"PYTHONPATH": sdk},
	}
	typ := Type()
	if _, err := typ.Describe(t.Context(), p); err != nil {
		t.Fatal(err)
	}
	inst, err := typ.New(context.Background(), engine.Env{Params: p})
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("worker %d\n", inst.(*worker).PID())
	select {} // until killed
}

// The Python sample is the Go sentiment sample, bit for bit.
func TestSentimentWorkerAgreesWithGo(t *testing.T) {
	typ, _ := testType()
	e := enginetest.New(t, enginetest.Options{}, typ)
	root := filepath.Join("..", "..")
	p := engine.Params{"command": []any{python(t), filepath.Join(root, "samples", "python", "sentiment_worker.py")}, "init": map[string]any{"threshold": 0.05}}
	r := startRunner(t, e, engine.RunnerConfig{Params: p, Workers: 2})
	texts := []string{
		"I really love this, it is great!!",
		"not good at all",
		"This is the worst, most annoying bug I have ever seen",
		"It's okay I guess",
		"Absolutely fantastic and wonderful! Highly recommend",
		"didn't enjoy it, kinda boring",
		"",
	}
	in, err := tensor.NewStringTensor([]int{len(texts)}, texts)
	if err != nil {
		t.Fatal(err)
	}
	out, err := r.Run(context.Background(), "scores", tensor.TensorValue(in))
	if err != nil {
		t.Fatal(err)
	}
	for i, got := range out.Tensor().Float32s() {
		if want := float32(samples.Compound(texts[i])); got != want {
			t.Errorf("score of %q: Python %v, Go %v", texts[i], got, want)
		}
	}
	tests := []struct {
		text    string
		want    any
		invalid bool
	}{
		{"what a great day", true, false},
		{"this is terrible", false, false},
		{"   ", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.text, func(t *testing.T) {
			out, err := r.Run(context.Background(), "is_positive", tensor.TextValue(tt.text))
			if tt.invalid {
				if !errors.Is(err, engine.ErrInvalidInput) || !strings.Contains(err.Error(), "text is empty") {
					t.Fatalf("error %v, want invalid input", err)
				}
				return
			}
			if err != nil || out.JSON() != tt.want {
				t.Fatalf("got %v, %v; want %v", out.JSON(), err, tt.want)
			}
		})
	}
	x := floats(t, []int{2, 3}, []float32{1, 2, 3, 4, 5, 6})
	for _, m := range []struct {
		name string
		want []float32
	}{{"double", []float32{2, 4, 6, 8, 10, 12}}, {"noop", []float32{1, 2, 3, 4, 5, 6}}} {
		out, err := r.Run(context.Background(), m.name, x)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(out.Tensor().Float32s(), m.want) {
			t.Errorf("%s: got %v, want %v", m.name, out.Tensor().Float32s(), m.want)
		}
	}
}

func TestDescribeReusesAFreshProbe(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "w.py")
	src, err := os.ReadFile(filepath.Join("testdata", "worker.py"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(script, src, 0o644); err != nil {
		t.Fatal(err)
	}
	typ, ps := testType()
	p := params(t, script, nil)
	for range 3 {
		if _, err := typ.Describe(t.Context(), p); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(ps.all()); n != 1 {
		t.Errorf("%d probes for one config, want 1", n)
	}
	// An edited script is probed afresh.
	later := time.Now().Add(time.Minute)
	if err := os.Chtimes(script, later, later); err != nil {
		t.Fatal(err)
	}
	if _, err := typ.Describe(t.Context(), p); err != nil {
		t.Fatal(err)
	}
	if n := len(ps.all()); n != 2 {
		t.Errorf("%d probes after the script changed, want 2", n)
	}
}

// The SDK's unit tests pass run from their folder and from the repository
// root, the two ways its README gives.
func TestPythonSDKUnitTests(t *testing.T) {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ name, dir, module string }{
		{"from its folder", sdkDir(t), "test_benchtop_worker"},
		{"from the root", root, filepath.Join("samples", "python", "test_benchtop_worker.py")},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(python(t), "-m", "unittest", "-q", tt.module)
			cmd.Dir = tt.dir
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("python unit tests: %v\n%s", err, out)
			}
			if !strings.Contains(string(out), "OK") || strings.Contains(string(out), "Ran 0 tests") {
				t.Fatalf("python unit tests ran nothing:\n%s", out)
			}
		})
	}
}

// A worker killed between calls (the OOM killer, a user's kill) is noticed:
// Done closes at once, and the next call reports how it died.
func TestWorkerDiesWhileIdle(t *testing.T) {
	typ, _ := testType()
	w := newWorker(t, typ, params(t, "worker.py", nil), engine.Env{})
	if err := syscall.Kill(w.PID(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-w.Done()
	_, err := callOne(context.Background(), w, "pid", tensor.JSONValue(nil))
	if !errors.Is(err, engine.ErrWorkerCrashed) || !strings.Contains(err.Error(), "killed by signal 9") {
		t.Fatalf("error %v, want ErrWorkerCrashed with the signal", err)
	}
	if !gone(w.PID()) {
		t.Errorf("worker %d was not reaped", w.PID())
	}
}
