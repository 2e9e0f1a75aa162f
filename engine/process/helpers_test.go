package process

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/benchtop/benchtop/batcher"
	"github.com/benchtop/benchtop/engine"
	"github.com/benchtop/benchtop/engine/enginetest"
	"github.com/benchtop/benchtop/engine/tensor"
	"golang.org/x/sys/unix"
)

// python finds a real interpreter, preferring the system one (a pyenv shim
// costs a shell start per worker).
func python(t testing.TB) string {
	t.Helper()
	if _, err := os.Stat("/usr/bin/python3"); err == nil {
		return "/usr/bin/python3"
	}
	p, err := exec.LookPath("python3")
	if err != nil {
		// The process runnable's tests start real Python workers.
		enginetest.Needs(t, "python3", "your system's package manager (apt-get install python3)", err)
	}
	return p
}

func sdkDir(t testing.TB) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", "..", "samples", "python"))
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// params runs a script from testdata (or any path) with the SDK importable.
func params(t testing.TB, script string, init map[string]any) engine.Params {
	t.Helper()
	if !filepath.IsAbs(script) {
		script = filepath.Join("testdata", script)
	}
	p := engine.Params{
		"command": []any{python(t), script},
		"env":     map[string]any{"PYTHONPATH": sdkDir(t)},
	}
	if init != nil {
		p["init"] = init
	}
	return p
}

// pids records every process a type starts, probes included.
type pids struct {
	mu   sync.Mutex
	list []int
}

func (p *pids) add(pid int) {
	p.mu.Lock()
	p.list = append(p.list, pid)
	p.mu.Unlock()
}

func (p *pids) all() []int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.list)
}

// testType is the process type with its starts recorded.
func testType() (*engine.RunnableType, *pids) {
	ps := &pids{}
	return newType(hooks{started: ps.add}), ps
}

// startRunner starts a runner of the process type: "py" unless cfg names
// it, with room for large queues unless cfg sets its batching.
func startRunner(t testing.TB, e *engine.Engine, cfg engine.RunnerConfig) *engine.Runner {
	t.Helper()
	if cfg.Name == "" {
		cfg.Name = "py"
	}
	cfg.Runnable = "process"
	if cfg.Batching == (batcher.Config{}) {
		cfg.Batching = batcher.Config{Policy: batcher.Adaptive, MaxBatchSize: 64, MaxQueueSize: 100000}
	}
	return enginetest.Start(t, e, cfg)
}

// newWorker builds one instance directly, as the engine would, after the
// probe the engine always runs first.
func newWorker(t testing.TB, typ *engine.RunnableType, p engine.Params, env engine.Env) *worker {
	t.Helper()
	if _, err := typ.Describe(t.Context(), p); err != nil {
		t.Fatal(err)
	}
	env.Params = p
	inst, err := typ.New(context.Background(), env)
	if err != nil {
		t.Fatal(err)
	}
	w := inst.(*worker)
	t.Cleanup(func() { _ = w.Close() })
	return w
}

func call(t testing.TB, w *worker, method string, in tensor.Value) tensor.Value {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := callOne(ctx, w, method, in)
	if err != nil {
		t.Fatalf("call %s: %v", method, err)
	}
	return out
}

func floats(t testing.TB, shape []int, data []float32) tensor.Value {
	t.Helper()
	x, err := tensor.NewTensor(shape, data)
	if err != nil {
		t.Fatal(err)
	}
	return tensor.TensorValue(x)
}

// gone reports that pid no longer exists, not even as a zombie: it was
// reaped.
func gone(pid int) bool { return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) }

// adoptOrphans makes the test process the reaper of its orphaned
// descendants until the test ends, so that the test can reap them rather
// than leave zombies to an init that may never reap them.
func adoptOrphans(t testing.TB) {
	t.Helper()
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		t.Fatalf("become a subreaper: %v", err)
	}
	t.Cleanup(func() { _ = unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0) })
}

// reaped reaps pid if it is an exited orphan adopted by adoptOrphans, and
// reports whether it is gone.
func reaped(pid int) bool {
	var ws syscall.WaitStatus
	_, _ = syscall.Wait4(pid, &ws, syscall.WNOHANG, nil)
	return gone(pid)
}

// eventually polls cond until it holds or a generous bound passes; it waits
// for something that must happen, it does not time it.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("still waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// callOne calls inst's method of one input and one output.
func callOne(ctx context.Context, inst engine.Instance, method string, in tensor.Value) (tensor.Value, error) {
	outs, err := inst.Call(ctx, method, []tensor.Value{in})
	if err != nil {
		return tensor.Value{}, err
	}
	if len(outs) != 1 {
		return tensor.Value{}, fmt.Errorf("%d outputs, want 1", len(outs))
	}
	return outs[0], nil
}
