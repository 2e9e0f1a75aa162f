package watcher

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/benchtop/benchtop/batcher"
	"github.com/benchtop/benchtop/engine"
	"github.com/benchtop/benchtop/engine/enginetest"
	"github.com/benchtop/benchtop/engine/tensor"
)

func simConfig(maxBatch, workers int, fixedMS float64) string {
	return fmt.Sprintf(`# a comment the user wrote
runners:
  - name: sim
    runnable: sim
    init: {fixed_ms: %v, per_row_ms: 0.01}
    workers: %d
    batching: {max_batch_size: %d, max_latency_ms: 0}
apis:
  - {name: predict, runner: sim, method: predict, input: ndarray, output: ndarray}
`, fixedMS, workers, maxBatch)
}

type fixture struct {
	t       *testing.T
	dir     string
	path    string
	eng     *engine.Engine
	rl      *Reloader
	watched *watchLog
	reloads chan Status // after every reload attempt (Subscribe)
}

func newFixture(t *testing.T, initial string) *fixture {
	t.Helper()
	return newFixtureWith(t, initial, Options{})
}

// newFixtureWith serves initial from a file in a folder of its own, with
// opts for the reloader (Debounce, Getenv and OnWatch are the fixture's).
func newFixtureWith(t *testing.T, initial string, opts Options) *fixture {
	t.Helper()
	f := newUnloadedFixture(t, initial, opts)
	if err := f.rl.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	return f
}

// newUnloadedFixture is newFixtureWith before the first reload, which the
// test makes itself (and may expect to be refused).
func newUnloadedFixture(t *testing.T, initial string, opts Options) *fixture {
	t.Helper()
	f := &fixture{t: t, dir: t.TempDir(), watched: newWatchLog(), reloads: make(chan Status, 1)}
	f.path = filepath.Join(f.dir, "benchtop.yaml")
	if err := os.WriteFile(f.path, []byte(initial), 0o644); err != nil {
		t.Fatal(err)
	}
	f.eng = enginetest.New(t, enginetest.Options{Samples: true, Engine: engine.Options{NumCPU: 2}})
	opts.Debounce, opts.Getenv, opts.OnWatch = 30*time.Millisecond, noEnv, f.watched.add
	var err error
	f.rl, err = NewReloader(f.eng, f.path, nil, "", opts)
	if err != nil {
		t.Fatal(err)
	}
	f.rl.Subscribe(f.reloads)
	return f
}

// watch runs the reloader's watch until the test ends, and returns once a
// change to the config file will be seen.
func (f *fixture) watch() {
	f.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.rl.Run(ctx) }()
	f.t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			f.t.Error(err)
		}
	})
	f.watched.wait(f.t, f.dir)
}

// waitFor returns once cond holds, checking it again after each reload
// attempt. The reloader updates what cond reads before it tells
// subscribers, and a subscriber's buffer holds one wake-up, so none is lost.
func (f *fixture) waitFor(what string, cond func() bool) {
	f.t.Helper()
	timeout := time.After(5 * time.Second)
	for !cond() {
		select {
		case <-f.reloads:
		case <-timeout:
			f.t.Fatalf("still waiting for %s (status %+v)", what, f.rl.Status())
		}
	}
}

func (f *fixture) maxBatch() int {
	r, err := f.eng.Runner("sim")
	if err != nil {
		return -1
	}
	return r.Config().Methods["predict"].MaxBatchSize
}

func (f *fixture) waitMaxBatch(want int) {
	f.t.Helper()
	f.waitFor(fmt.Sprintf("max_batch_size %d", want), func() bool { return f.maxBatch() == want })
}

// watchLog records the folders a reloader's Run watches (Options.OnWatch),
// so that a test changes a file only once the change will be seen.
type watchLog struct {
	mu      sync.Mutex
	watched map[string]bool
	changed chan struct{} // closed, and replaced, when a folder is added
}

func newWatchLog() *watchLog {
	return &watchLog{watched: map[string]bool{}, changed: make(chan struct{})}
}

func (l *watchLog) add(dir string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.watched[filepath.Clean(dir)] = true
	close(l.changed)
	l.changed = make(chan struct{})
}

// forget clears dir, so that wait can see it watched anew.
func (l *watchLog) forget(dir string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.watched, filepath.Clean(dir))
}

// wait returns once dir is watched.
func (l *watchLog) wait(t testing.TB, dir string) {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		l.mu.Lock()
		ok, changed := l.watched[filepath.Clean(dir)], l.changed
		l.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-changed:
		case <-timeout:
			t.Fatalf("%s is not watched after 5s", dir)
		}
	}
}

func TestFollowsEditorsSaveStyles(t *testing.T) {
	f := newFixture(t, simConfig(8, 1, 0))
	f.watch()

	t.Run("write in place", func(t *testing.T) {
		if err := os.WriteFile(f.path, []byte(simConfig(9, 1, 0)), 0o644); err != nil {
			t.Fatal(err)
		}
		f.waitMaxBatch(9)
	})
	t.Run("temp file and rename (vim, most IDEs)", func(t *testing.T) {
		tmp := filepath.Join(f.dir, ".benchtop.yaml.swp")
		if err := os.WriteFile(tmp, []byte(simConfig(10, 1, 0)), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, f.path); err != nil {
			t.Fatal(err)
		}
		f.waitMaxBatch(10)
	})
	t.Run("delete, then create", func(t *testing.T) {
		if err := os.Remove(f.path); err != nil {
			t.Fatal(err)
		}
		f.waitFor("the reload that finds the file gone", func() bool { return strings.Contains(f.rl.Status().Err, "is gone") })
		if f.maxBatch() != 10 {
			t.Fatal("a vanished file must not stop the runners")
		}
		if err := os.WriteFile(f.path, []byte(simConfig(11, 1, 0)), 0o644); err != nil {
			t.Fatal(err)
		}
		f.waitMaxBatch(11)
	})
	t.Run("a burst of writes ends on the last", func(t *testing.T) {
		for i := 12; i <= 20; i++ {
			if err := os.WriteFile(f.path, []byte(simConfig(i, 1, 0)), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		f.waitMaxBatch(20)
	})
	t.Run("a broken config keeps the old one serving", func(t *testing.T) {
		if err := os.WriteFile(f.path, []byte(strings.Replace(simConfig(30, 1, 0), "max_batch_size: 30", "max_batch_size: zero", 1)), 0o644); err != nil {
			t.Fatal(err)
		}
		f.waitFor("the broken config to be reported", func() bool { return !f.rl.Status().OK })
		st := f.rl.Status()
		if !strings.Contains(st.Err, `max_batch_size: want an integer, got "zero"`) || !strings.Contains(st.Err, ":7:") {
			t.Fatalf("refusal does not say where and why: %q", st.Err)
		}
		if f.maxBatch() != 20 {
			t.Fatalf("max_batch_size %d after a refused reload, want 20", f.maxBatch())
		}
		if _, err := f.eng.Run(context.Background(), "sim", "predict", row(1)); err != nil {
			t.Fatalf("old config stopped serving: %v", err)
		}
		found := false
		for _, ev := range f.eng.Events().Since(0) {
			found = found || strings.Contains(ev.Message, "config reload refused")
		}
		if !found {
			t.Fatal("no refused-reload event")
		}
	})
}

func row(id int) tensor.Value {
	tt, _ := tensor.NewTensor([]int{1, 2}, []float32{float32(id), float32(-id)})
	return tensor.TensorValue(tt)
}

// TestHundredReloadsUnderLoad alternates batching knobs, worker counts and
// init params (which restart the runner) while callers keep calling: no
// request fails, each gets its own rows, nothing leaks.
func TestHundredReloadsUnderLoad(t *testing.T) {
	before := runtime.NumGoroutine()
	f := newFixture(t, simConfig(8, 1, 0.2))
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var ok atomic.Int64
	for c := range 64 {
		wg.Go(func() {
			for n := 0; ctx.Err() == nil; n++ {
				id := c*100000 + n
				out, err := f.eng.Run(context.Background(), "sim", "predict", row(id))
				if err != nil {
					t.Errorf("caller %d: %v", c, err)
					return
				}
				got := out.Tensor().Float32s()
				if got[0] != 2*float32(id) || got[1] != -2*float32(id) {
					t.Errorf("caller %d got %v for row %d", c, got, id)
					return
				}
				ok.Add(1)
			}
		})
	}
	for i := range 100 {
		var body string
		switch i % 3 {
		case 0:
			body = simConfig(1+i%16, 1, 0.2)
		case 1:
			body = simConfig(8, 1+i%3, 0.2)
		default:
			body = simConfig(8, 1, 0.2+float64(i%2)*0.1)
		}
		if err := os.WriteFile(f.path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := f.rl.Reload(context.Background()); err != nil {
			t.Fatalf("reload %d: %v", i, err)
		}
	}
	stop()
	wg.Wait()
	if ok.Load() < 500 {
		t.Fatalf("only %d requests completed during 100 reloads", ok.Load())
	}
	closeCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := f.eng.Close(closeCtx); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before+2 {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("goroutines %d, before %d:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestSaveTweakKeepsCommentsAndLayout(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "b.yaml")
	orig := `# top comment
runners:
  - name: sim          # the simulated model
    runnable: sim
    batching: {max_batch_size: 8}   # small for now
  - name: sentiment
    runnable: sentiment
    methods:
      scores:
        batching:
          max_batch_size: 16 # per-method
`
	if err := os.WriteFile(path, []byte(orig), 0o600); err != nil {
		t.Fatal(err)
	}
	c := batcher.DefaultConfig()
	c.MaxBatchSize, c.MaxLatency = 64, 20*time.Millisecond
	if err := SaveTweak(path, Tweak{Runner: "sim", Method: "predict", Batching: &c, Workers: 3}); err != nil {
		t.Fatal(err)
	}
	c.MaxBatchSize = 128
	if err := SaveTweak(path, Tweak{Runner: "sentiment", Method: "scores", Batching: &c}); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	got := string(data)
	for _, want := range []string{"# top comment", "# the simulated model", "# small for now", "# per-method",
		"max_batch_size: 64", "max_latency_ms: 20", "workers: 3", "max_batch_size: 128"} {
		if !strings.Contains(got, want) {
			t.Errorf("saved file lacks %q:\n%s", want, got)
		}
	}
	cfg, err := ParseAndValidate(t.Context(), path, data, checker(t, registry(t)), noEnv)
	if err != nil {
		t.Fatalf("saved file no longer validates: %v\n%s", err, got)
	}
	rcs := cfg.Plan.Config().Runners
	if rcs[0].Batching.MaxBatchSize != 64 || rcs[0].Workers != 3 || rcs[1].Methods["scores"].MaxBatchSize != 128 {
		t.Fatalf("saved values not read back: %+v", rcs)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Fatalf("file mode changed to %v", fi.Mode().Perm())
	}
	if err := SaveTweak(path, Tweak{Runner: "ghost", Batching: &c}); err == nil || !strings.Contains(err.Error(), `no runner named "ghost"`) {
		t.Fatalf("unknown runner: %v", err)
	}
}
