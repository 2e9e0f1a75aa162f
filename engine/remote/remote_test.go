package remote_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/benchtop/benchtop/engine"
	"github.com/benchtop/benchtop/engine/enginetest"
	"github.com/benchtop/benchtop/engine/remote"
	"github.com/benchtop/benchtop/engine/tensor"
	"github.com/benchtop/benchtop/server"
	"github.com/benchtop/benchtop/watcher"
)

// A runner server here is what `benchtop serve --runners` runs: an engine
// with the samples, its config applied, served over gRPC on a real socket.
type runnerServer struct {
	addr string
	eng  *engine.Engine
	stop func()
}

const serverConfig = `
runners:
  - name: sim
    runnable: sim
    init: {fixed_ms: 1, per_row_ms: 0.01}
    workers: 1
    batching: {max_batch_size: 64, max_latency_ms: 1000}
  - name: sentiment
    runnable: sentiment
    workers: 1
`

func startServer(t testing.TB, addr, config string, types ...*engine.RunnableType) *runnerServer {
	t.Helper()
	eng := enginetest.New(t, enginetest.Options{Samples: true}, types...)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cfg, err := watcher.ParseAndValidate(ctx, "server.yaml", []byte(config), eng, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if _, err := eng.Apply(ctx, cfg.Plan); err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(eng, server.Options{DrainTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	sctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); srv.ServeGRPC(sctx, ln) }()
	var once sync.Once
	rs := &runnerServer{addr: ln.Addr().String(), eng: eng, stop: func() { once.Do(func() { stop(); <-done }) }}
	t.Cleanup(rs.stop)
	return rs
}

// front is an engine whose runners are remote, through a pool of its own.
func front(t *testing.T, opts remote.Options) (*engine.Engine, *remote.Pool) {
	t.Helper()
	pool := remote.NewPool(opts)
	reg := engine.NewRegistry()
	if err := pool.Register(reg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close) // registered first, so it runs after the engine closes
	return enginetest.New(t, enginetest.Options{Engine: engine.Options{Registry: reg}}), pool
}

func remoteRunner(name, model string, endpoints ...string) engine.RunnerConfig {
	return engine.RunnerConfig{Name: name, Runnable: remote.TypeName, Params: engine.Params{
		"endpoints": endpoints, "model": model, "timeout_ms": 5000,
	}}
}

func rows(t *testing.T, vals ...float32) tensor.Value {
	v, err := tensor.NewTensor([]int{len(vals), 1}, vals)
	if err != nil {
		t.Fatal(err)
	}
	return tensor.TensorValue(v)
}

// A remote runner has its servers' methods, signatures and all, and answers
// every caller with its own rows.
func TestRemoteRunnerIsTheServersRunner(t *testing.T) {
	srv := startServer(t, "127.0.0.1:0", serverConfig)
	eng, pool := front(t, remote.Options{})
	r := enginetest.Start(t, eng, remoteRunner("sentiment", "sentiment", srv.addr))
	local, _ := srv.eng.Runner("sentiment")
	if got, want := fmt.Sprint(r.Methods()), fmt.Sprint(local.Methods()); got != want {
		t.Errorf("remote methods\n%s\nwant the server's\n%s", got, want)
	}
	cfg := r.Config()
	if cfg.Workers != remote.MinConcurrency || cfg.Batching.MaxLatency != 0 {
		t.Errorf("remote runner config: workers %d, max_latency %v; want %d calls in flight and no front-end latency bound",
			cfg.Workers, cfg.Batching.MaxLatency, remote.MinConcurrency)
	}

	// A method of several named inputs, one optional, and a text method.
	texts, _ := tensor.NewStringTensor([]int{2}, []string{"I love this!", "awful, terrible"})
	outs, _, err := eng.RunInfo(t.Context(), "sentiment", "classify", []tensor.Value{tensor.TensorValue(texts), {}})
	if err != nil {
		t.Fatal(err)
	}
	pos, _ := tensor.TensorData[bool](outs[0].Tensor())
	if len(pos) != 2 || !pos[0] || pos[1] {
		t.Errorf("classify positive = %v, want [true false]", pos)
	}
	out, err := r.Run(t.Context(), "is_positive", tensor.TextValue("what a great day"))
	if err != nil || fmt.Sprint(out.JSON()) != "true" {
		t.Errorf("is_positive = %v, %v; want true", out, err)
	}

	// 64 callers at once: each gets exactly its own rows back.
	sim := enginetest.Start(t, eng, remoteRunner("sim", "sim", srv.addr))
	var wg sync.WaitGroup
	for i := range 64 {
		wg.Go(func() {
			v := float32(i)
			out, err := sim.Run(t.Context(), "predict", rows(t, v, v+0.5))
			if err != nil {
				t.Errorf("caller %d: %v", i, err)
				return
			}
			got := out.Tensor().Float32s()
			if len(got) != 2 || got[0] != 2*v || got[1] != 2*v+1 {
				t.Errorf("caller %d got %v, want [%v %v]", i, got, 2*v, 2*v+1)
			}
		})
	}
	wg.Wait()
	if b := pool.Batching("sim"); len(b) != 1 || b[0].Policy != "adaptive" || b[0].MaxBatchSize != 64 || b[0].MaxLatency != time.Second {
		t.Errorf("server batching = %+v, want sim's: adaptive, 64, 1s", b)
	}
	states := pool.Endpoints("sim")
	if len(states) != 1 || !states[0].Healthy || states[0].Calls == 0 {
		t.Errorf("endpoint states = %+v", states)
	}
}

// Calls spread over the endpoints; one that stops is taken out, calls go on
// through the others, and once back it is probed back in.
func TestRemoteBalancesAndFailsOver(t *testing.T) {
	a := startServer(t, "127.0.0.1:0", serverConfig)
	b := startServer(t, "127.0.0.1:0", serverConfig)
	eng, pool := front(t, remote.Options{ProbeEvery: 20 * time.Millisecond})
	sim := enginetest.Start(t, eng, remoteRunner("sim", "sim", a.addr, b.addr))
	call := func() error {
		_, err := sim.Run(t.Context(), "predict", rows(t, 1))
		return err
	}
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for range 20 {
				if err := call(); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	for _, st := range pool.Endpoints("sim") {
		if st.Calls == 0 {
			t.Errorf("endpoint %s got no calls: %+v", st.Addr, pool.Endpoints("sim"))
		}
	}

	b.stop()
	waitFor(t, "the stopped endpoint to be taken out", func() bool { return !healthy(pool, "sim", b.addr) })
	for range 50 {
		if err := call(); err != nil {
			t.Fatalf("with one endpoint down: %v", err)
		}
	}
	if got := state(pool, "sim", b.addr).LastError; got == "" {
		t.Errorf("the stopped endpoint has no reason it was taken out")
	}

	// Back on the same address: probed back in.
	startServer(t, b.addr, serverConfig)
	waitFor(t, "the endpoint back in", func() bool { return healthy(pool, "sim", b.addr) })
}

// A request that never left for an endpoint that fails (nothing listens
// there) is sent to the next one: no caller sees the failure.
func TestRemoteRetriesWhatWasNeverSent(t *testing.T) {
	a := startServer(t, "127.0.0.1:0", serverConfig)
	dead := deadAddr(t)
	// Probes far apart: only calls find out that dead is dead.
	eng, pool := front(t, remote.Options{ProbeEvery: time.Hour})
	sim := enginetest.Start(t, eng, remoteRunner("sim", "sim", dead, a.addr))
	for i := range 20 {
		if _, err := sim.Run(t.Context(), "predict", rows(t, 1)); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	st := state(pool, "sim", dead)
	if st.Healthy || !strings.Contains(st.LastError, "refused") {
		t.Errorf("dead endpoint: %+v, want taken out, saying the connection was refused", st)
	}
}

// gate holds every batch until released or its context ends, and counts
// the batches it saw and those whose context ended.
type gate struct {
	started   chan struct{}
	release   chan struct{}
	calls     atomic.Int64
	cancelled atomic.Int64
}

func newGate() *gate {
	return &gate{started: make(chan struct{}, 64), release: make(chan struct{})}
}

func (g *gate) typ() *engine.RunnableType {
	return &engine.RunnableType{
		Name: "gate",
		Methods: []engine.MethodSpec{{Name: "run", Batchable: true,
			Inputs:  tensor.IOSpecs{{Kind: tensor.KindTensor, DType: tensor.Float32, Shape: []int{-1, 1}}},
			Outputs: tensor.IOSpecs{{Kind: tensor.KindTensor, DType: tensor.Float32, Shape: []int{-1, 1}}}}},
		New: func(context.Context, engine.Env) (engine.Instance, error) { return g, nil },
	}
}

func (g *gate) Call(ctx context.Context, _ string, in []tensor.Value) ([]tensor.Value, error) {
	g.calls.Add(1)
	g.started <- struct{}{}
	select {
	case <-g.release:
		return in, nil
	case <-ctx.Done():
		g.cancelled.Add(1)
		return nil, ctx.Err()
	}
}

const gateConfig = `
runners:
  - name: gate
    runnable: gate
    workers: 1
    batching: {policy: none, max_latency_ms: 0, max_queue_size: 1}
`

// A server's overload comes back as the engine's overload error with the
// server's retry delay, and is not retried elsewhere.
func TestRemoteOverloadIsPassedThrough(t *testing.T) {
	g := newGate()
	srv := startServer(t, "127.0.0.1:0", gateConfig, g.typ())
	other := newGate()
	srv2 := startServer(t, "127.0.0.1:0", gateConfig, other.typ())
	eng, _ := front(t, remote.Options{})
	r := enginetest.Start(t, eng, remoteRunner("gate", "gate", srv.addr))

	// One runs, one waits (max_queue_size 1), the third is refused.
	held := make(chan error, 2)
	for range 2 {
		go func() { _, err := r.Run(t.Context(), "run", rows(t, 2)); held <- err }()
	}
	<-g.started
	local, _ := srv.eng.Runner("gate")
	waitFor(t, "one request queued on the server", func() bool { return local.Stats(engine.StatsOptions{}).Methods[0].Queue.Depth == 1 })
	_, err := r.Run(t.Context(), "run", rows(t, 3))
	var oe *engine.OverloadError
	if !errors.As(err, &oe) || oe.RetryAfter < time.Second || !strings.Contains(oe.Reason, srv.addr) {
		t.Fatalf("refused call: %v; want an overload error naming %s with its retry delay", err, srv.addr)
	}
	close(g.release)
	for range 2 {
		if err := <-held; err != nil {
			t.Error(err)
		}
	}
	if n := g.calls.Load(); n != 2 {
		t.Errorf("server ran %d batches, want 2: the refused call must not run", n)
	}
	_ = srv2
	if n := other.calls.Load(); n != 0 {
		t.Errorf("an unrelated server got %d calls", n)
	}
}

// A caller that gives up cancels its remote call: still queued on the
// server, it is withdrawn there and never runs.
func TestRemoteCancellationReachesTheServer(t *testing.T) {
	g := newGate()
	srv := startServer(t, "127.0.0.1:0", gateConfig, g.typ())
	eng, _ := front(t, remote.Options{})
	r := enginetest.Start(t, eng, remoteRunner("gate", "gate", srv.addr))
	local, _ := srv.eng.Runner("gate")
	held := make(chan error, 1)
	go func() { _, err := local.Run(t.Context(), "run", rows(t, 1)); held <- err }()
	<-g.started // the server's only worker is busy

	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() { _, err := r.Run(ctx, "run", rows(t, 5)); errc <- err }()
	waitFor(t, "the call queued on the server", func() bool { return local.Stats(engine.StatsOptions{}).Methods[0].Queue.Depth == 1 })
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("caller who left: %v", err)
	}
	waitFor(t, "the call withdrawn from the server's queue", func() bool { return local.Stats(engine.StatsOptions{}).Methods[0].Queue.Depth == 0 })
	close(g.release)
	if err := <-held; err != nil {
		t.Fatal(err)
	}
	if n := g.calls.Load(); n != 1 {
		t.Errorf("server ran %d batches, want 1: the cancelled call must never run", n)
	}
}

// Servers that disagree on a signature are refused, naming both.
func TestRemoteServersMustAgree(t *testing.T) {
	a := startServer(t, "127.0.0.1:0", serverConfig)
	b := startServer(t, "127.0.0.1:0", strings.Replace(serverConfig, "runnable: sim", "runnable: echo", 1))
	eng, _ := front(t, remote.Options{})
	_, err := eng.StartRunner(t.Context(), remoteRunner("sim", "sim", a.addr, b.addr))
	if err == nil || !strings.Contains(err.Error(), "runner servers disagree") ||
		!strings.Contains(err.Error(), a.addr) || !strings.Contains(err.Error(), b.addr) {
		t.Fatalf("error %v: want one saying the servers disagree, naming both", err)
	}
}

// A dns:/// name's addresses are the endpoints, followed as they change.
func TestRemoteFollowsDNS(t *testing.T) {
	a := startServer(t, "127.0.0.1:0", serverConfig)
	_, port, _ := net.SplitHostPort(a.addr)
	startServer(t, "127.0.0.2:"+port, serverConfig)
	var addrs atomic.Value
	addrs.Store([]string{"127.0.0.1"})
	eng, pool := front(t, remote.Options{ResolveEvery: 20 * time.Millisecond, ProbeEvery: 20 * time.Millisecond,
		Lookup: func(_ context.Context, host string) ([]string, error) {
			if host != "sim.default.svc.cluster.local" {
				return nil, fmt.Errorf("unexpected lookup of %q", host)
			}
			return addrs.Load().([]string), nil
		}})
	sim := enginetest.Start(t, eng, remoteRunner("sim", "sim", "dns:///sim.default.svc.cluster.local:"+port))
	if _, err := sim.Run(t.Context(), "predict", rows(t, 1)); err != nil {
		t.Fatal(err)
	}
	addrs.Store([]string{"127.0.0.1", "127.0.0.2"})
	waitFor(t, "the second address", func() bool { return len(pool.Endpoints("sim")) == 2 })
	addrs.Store([]string{"127.0.0.2"})
	waitFor(t, "the first address gone", func() bool {
		eps := pool.Endpoints("sim")
		return len(eps) == 1 && eps[0].Addr == "127.0.0.2:"+port
	})
	if _, err := sim.Run(t.Context(), "predict", rows(t, 1)); err != nil {
		t.Fatal(err)
	}
}

func deadAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func state(pool *remote.Pool, runner, addr string) remote.EndpointState {
	for _, st := range pool.Endpoints(runner) {
		if st.Addr == addr {
			return st
		}
	}
	return remote.EndpointState{}
}

func healthy(pool *remote.Pool, runner, addr string) bool { return state(pool, runner, addr).Healthy }

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("still waiting for %s after 10s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
