package ui

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/x/exp/teatest"

	"github.com/benchtop/benchtop/batcher"
	"github.com/benchtop/benchtop/engine"
	"github.com/benchtop/benchtop/engine/enginetest"
	"github.com/benchtop/benchtop/engine/remote"
	"github.com/benchtop/benchtop/server"
	"github.com/benchtop/benchtop/watcher"
)

const workbenchConfig = `# kept comment
runners:
  - name: sim
    runnable: sim
    init: {fixed_ms: 1, per_row_ms: 0.01}
    workers: 1
    batching: {policy: adaptive, max_batch_size: 64, max_latency_ms: 500}
apis:
  - {name: predict, runner: sim, method: predict, input: ndarray, output: ndarray}
`

// TestWorkbenchDrivesTheEngine uses the real engine the way a person would:
// tune batching, save it, send a test input, fire a load, quit.
func TestWorkbenchDrivesTheEngine(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "benchtop.yaml")
	if err := os.WriteFile(path, []byte(workbenchConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	eng := enginetest.New(t, enginetest.Options{Samples: true})
	rl, err := watcher.NewReloader(eng, path, nil, "", watcher.Options{Getenv: func(string) string { return "" }})
	if err != nil {
		t.Fatal(err)
	}
	if err := rl.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	tm := teatest.NewTestModel(t, New(&EngineBackend{Engine: eng, Reloader: rl, URL: "http://test"}), teatest.WithInitialTermSize(120, 40))
	out := tm.Output()
	waitFor := func(what string, cond func(screen []byte) bool) {
		t.Helper()
		teatest.WaitFor(t, out, cond, teatest.WithDuration(10*time.Second), teatest.WithCheckInterval(20*time.Millisecond))
	}
	waitEngine := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("engine never showed: %s", what)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	sim := func() engine.MethodStats {
		r, err := eng.Runner("sim")
		if err != nil {
			t.Fatal(err)
		}
		return r.Stats(engine.StatsOptions{}).Methods[0]
	}
	key := func(k tea.KeyType) { tm.Send(tea.KeyMsg{Type: k}) }

	waitFor("runners table", func(b []byte) bool { return bytes.Contains(b, []byte("sim")) && bytes.Contains(b, []byte("adaptive")) })

	// Batching: focus max batch size, type 16, apply live.
	tm.Type("b")
	waitFor("batching panel", func(b []byte) bool { return bytes.Contains(b, []byte("batching · sim.predict")) })
	key(tea.KeyDown)
	tm.Type("16")
	key(tea.KeyEnter)
	waitEngine("max_batch_size 16", func() bool { return sim().Batching.MaxBatchSize == 16 })
	// Write it back to the file, comments kept.
	tm.Type("w")
	waitEngine("saved file", func() bool {
		data, _ := os.ReadFile(path)
		return strings.Contains(string(data), "max_batch_size: 16") && strings.Contains(string(data), "# kept comment")
	})
	key(tea.KeyEsc)

	// Test input: the pre-filled example is valid; send it.
	tm.Type("t")
	waitFor("test panel", func(b []byte) bool { return bytes.Contains(b, []byte("POST /predict")) })
	key(tea.KeyCtrlS)
	waitFor("a result", func(b []byte) bool {
		return bytes.Contains(b, []byte("✓ ok")) && bytes.Contains(b, []byte("[[0.2,0.4,0.6,0.8]"))
	})
	key(tea.KeyEsc)

	// Load: 2,000 requests at 32; batches grow past one request.
	tm.Type("l")
	waitFor("load panel", func(b []byte) bool { return bytes.Contains(b, []byte("concurrency 32")) })
	key(tea.KeyEnter)
	waitFor("load done", func(b []byte) bool { return bytes.Contains(b, []byte("✓ done")) })
	if m := sim(); m.Window.MeanBatchRequests <= 1 {
		t.Fatalf("mean requests per batch %.2f under a 32-way load: no batching", m.Window.MeanBatchRequests)
	}
	if m := sim(); m.Totals["ok"] < 2000 {
		t.Fatalf("only %d requests served", m.Totals["ok"])
	}
	key(tea.KeyEsc) // the panel closes at once: q reaches the main screen
	tm.Type("q")
	tm.WaitFinished(t, teatest.WithFinalTimeout(5*time.Second))
}

// TestWorkbenchShowsARemoteRunner: a front end whose runner is served by a
// real runner server over gRPC. At 80×24 the table counts the endpoint up,
// the selected runner lists it healthy beside its latency, the batching
// panel shows the server's knobs and changes none; when the server stops,
// the endpoint shows down and the events pane says so.
func TestWorkbenchShowsARemoteRunner(t *testing.T) {
	// The runner server: what `benchtop serve --runners sim` runs.
	srvEng := enginetest.New(t, enginetest.Options{Samples: true})
	ctx := t.Context()
	cfg, err := watcher.ParseAndValidate(ctx, "server.yaml", []byte(workbenchConfig), srvEng, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srvEng.Apply(ctx, cfg.Plan); err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(srvEng, server.Options{DrainTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	srvCtx, stopServer := context.WithCancel(context.Background())
	served := make(chan struct{})
	go func() { defer close(served); srv.ServeGRPC(srvCtx, ln) }()
	stop := func() { stopServer(); <-served }
	t.Cleanup(stop) // stop twice is fine: the second waits on a closed channel

	// The front end: a remote runner through a pool, as cli/stack.go builds.
	pool := remote.NewPool(remote.Options{ProbeEvery: 50 * time.Millisecond})
	reg := engine.NewRegistry()
	if err := pool.Register(reg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close) // registered first, so it runs after the engine closes
	eng := enginetest.New(t, enginetest.Options{Engine: engine.Options{Registry: reg}})
	enginetest.Start(t, eng, engine.RunnerConfig{Name: "sim", Runnable: remote.TypeName, Params: engine.Params{
		"endpoints": []string{addr}, "model": "sim", "timeout_ms": 5000,
	}})
	backend := &EngineBackend{Engine: eng, URL: "http://test", Remotes: pool}
	if err := backend.SetBatching("sim", "predict", batcher.Config{Policy: batcher.Fixed, MaxBatchSize: 8}); !errors.Is(err, ErrRemoteKnobs) {
		t.Fatalf("SetBatching on a remote runner: %v, want %v", err, ErrRemoteKnobs)
	}
	if err := backend.SetWorkers("sim", 2); !errors.Is(err, ErrRemoteKnobs) {
		t.Fatalf("SetWorkers on a remote runner: %v, want %v", err, ErrRemoteKnobs)
	}

	tm := teatest.NewTestModel(t, New(backend), teatest.WithInitialTermSize(80, 24))
	waitFor := screenWaiter(t, tm.Output())
	waitFor("the endpoint up", "⇄ 1/1", "endpoints 1/1 up", "✓ "+addr)

	tm.Type("b")
	waitFor("the server's batching, read-only", "its runner servers', read-only", "adaptive", "500ms", "benchtop serve --runners sim")
	tm.Type("w")
	waitFor("the refusal", "nothing applied, nothing saved")
	r, err := eng.Runner("sim")
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Stats(engine.StatsOptions{}).Workers; got != remote.MinConcurrency {
		t.Fatalf("workers %d after w on a remote runner, want %d untouched", got, remote.MinConcurrency)
	}
	tm.Send(tea.KeyMsg{Type: tea.KeyEsc})

	stop()
	waitFor("the endpoint down", "endpoints 0/1 up", "✗ "+addr, "endpoint "+addr+" down")
	tm.Type("q")
	tm.WaitFinished(t, teatest.WithFinalTimeout(5*time.Second))
}

const servicesConfig = `runners:
  - {name: sentiment, runnable: sentiment, init: {threshold: 0.05}, workers: 2}
  - {name: sentiment-strict, runnable: sentiment, init: {threshold: 0.5}, workers: 1}
  - {name: echo, runnable: echo, workers: 1}
apis:
  - {name: analysis, func: sentiment-analysis, runners: {model: sentiment}}
  - name: echo-twice
    steps:
      - {name: first, runner: echo, method: echo, inputs: {input: $input.x}}
      - {name: second, runner: echo, method: echo, inputs: {input: first.output}}
    outputs: {y: second.output}
    input: ndarray
    output: ndarray
  - name: judge
    steps:
      - {name: lenient, runner: sentiment, method: classify, inputs: {texts: $input.texts}}
      - {name: strict, runner: sentiment-strict, method: classify, inputs: {texts: $input.texts}}
    outputs: {lenient: lenient.positive, strict: strict.positive, scores: lenient.scores}
`

// TestWorkbenchDrivesAPipeline uses the real engine and the sample service
// types at 80×24: the APIs view lists judge's steps and what feeds them;
// a test input sent to judge comes back with each step's runner call and
// time; a load on judge reaches both of its runners.
func TestWorkbenchDrivesAPipeline(t *testing.T) {
	eng := enginetest.New(t, enginetest.Options{Samples: true})
	ctx := t.Context()
	cfg, err := watcher.ParseAndValidate(ctx, "benchtop.yaml", []byte(servicesConfig), eng, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if _, err := eng.Apply(ctx, cfg.Plan); err != nil {
		t.Fatal(err)
	}
	tm := teatest.NewTestModel(t, New(&EngineBackend{Engine: eng, URL: "http://test"}), teatest.WithInitialTermSize(80, 24))
	waitFor := screenWaiter(t, tm.Output())
	classified := func(runner string) uint64 {
		r, err := eng.Runner(runner)
		if err != nil {
			t.Fatal(err)
		}
		for _, ms := range r.Stats(engine.StatsOptions{}).Methods {
			if ms.Spec.Name == "classify" {
				return ms.Totals["ok"]
			}
		}
		t.Fatalf("runner %s has no classify method", runner)
		return 0
	}
	waitFor("the runners", "sentiment-strict")

	tm.Type("a")
	waitFor("the APIs view", "APIs (3)", "Go func sentiment-analysis", "model    → sentiment.is_positive",
		"second   echo.echo  input ← first.output")
	tm.Send(tea.KeyMsg{Type: tea.KeyDown})
	tm.Send(tea.KeyMsg{Type: tea.KeyDown})
	waitFor("judge selected", "▸ judge", "strict   sentiment-strict.classify  texts ← $input.texts")

	// The test input, on judge, pre-filled with a valid body.
	tm.Type("t")
	waitFor("the test input on judge", "to: POST /judge (pipeline of 2 steps)", `"texts": [`)
	tm.Send(tea.KeyMsg{Type: tea.KeyCtrlS})
	waitFor("the step breakdown", "✓ ok", "2 runner calls, as they finished:",
		"lenient  sentiment.classify", "strict   sentiment-strict.classify", "batch of 2 rows", "scores:")
	if classified("sentiment") != 1 || classified("sentiment-strict") != 1 {
		t.Fatalf("one test input made %d calls of sentiment.classify and %d of sentiment-strict.classify, want 1 and 1",
			classified("sentiment"), classified("sentiment-strict"))
	}
	tm.Send(tea.KeyMsg{Type: tea.KeyEsc})

	// A load on judge, from the APIs view: every request runs both steps.
	tm.Type("a")
	tm.Type("l")
	waitFor("the load panel on judge", "target      POST /judge (pipeline of 2 steps)")
	tm.Send(tea.KeyMsg{Type: tea.KeyEnter})
	waitFor("load done", "✓ done")
	if got := classified("sentiment-strict"); got != 2001 {
		t.Fatalf("sentiment-strict.classify served %d calls after a test input and a load of 2,000 on judge, want 2,001", got)
	}
	if got := classified("sentiment"); got != 2001 {
		t.Fatalf("sentiment.classify served %d calls, want 2,001", got)
	}
	tm.Send(tea.KeyMsg{Type: tea.KeyEsc})
	tm.Type("q")
	tm.WaitFinished(t, teatest.WithFinalTimeout(5*time.Second))
}

// screenWaiter waits, for at most 10 s, until what has been drawn so far
// holds every string wanted: the renderer redraws only changed lines, so a
// view is the sum of what it wrote.
func screenWaiter(t *testing.T, out io.Reader) func(what string, wants ...string) {
	var screen bytes.Buffer
	return func(what string, wants ...string) {
		t.Helper()
		teatest.WaitFor(t, out, func(b []byte) bool {
			screen.Write(b)
			for _, w := range wants {
				if !bytes.Contains(screen.Bytes(), []byte(w)) {
					return false
				}
			}
			return true
		}, teatest.WithDuration(10*time.Second), teatest.WithCheckInterval(20*time.Millisecond))
	}
}
