package bench

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/benchtop/benchtop/batcher"
	"github.com/benchtop/benchtop/engine"
	"github.com/benchtop/benchtop/engine/enginetest"
	"github.com/benchtop/benchtop/server"
)

// quick are options for short, bounded levels: no warm-up, small windows.
func quick() Options {
	return Options{Window: 200 * time.Millisecond, MaxTime: 600 * time.Millisecond, Timeout: 5 * time.Second, Seed: 1}
}

// simEngine runs the sample sim runnable as runner "sim" with an ndarray
// API "predict", as the embedded config does, but with a 1 ms batch cost.
func simEngine(t *testing.T, cfg batcher.Config) *engine.Engine {
	t.Helper()
	return simEngineOn(t, cfg, nil)
}

// simEngineOn is simEngine with its metrics on prom.
func simEngineOn(t *testing.T, cfg batcher.Config, prom prometheus.Registerer) *engine.Engine {
	t.Helper()
	eng := enginetest.New(t, enginetest.Options{Samples: true, Engine: engine.Options{Registerer: prom}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	plan, err := eng.Plan(ctx, engine.Config{Runners: []engine.RunnerConfig{{
		Name: "sim", Runnable: "sim", Workers: 1, Batching: cfg,
		Params: engine.Params{"fixed_ms": 1.0, "per_row_ms": 0.05},
	}}, APIs: []engine.APISpec{{Name: "predict", Runner: "sim", Method: "predict", Input: engine.IONDArray, Output: engine.IONDArray}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := eng.Apply(ctx, plan); err != nil {
		t.Fatal(err)
	}
	return eng
}

// simServed is simEngine behind the real HTTP front end, both on one
// metrics registry as main has them, so /metrics shows the runner's.
func simServed(t *testing.T, cfg batcher.Config) (*engine.Engine, *httptest.Server) {
	t.Helper()
	prom := prometheus.NewRegistry()
	eng := simEngineOn(t, cfg, prom)
	srv, err := server.New(eng, server.Options{Registerer: prom, Gatherer: prom})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	return eng, ts
}

// rawTarget is an HTTP target for a plain test server: a fixed body and no
// discovery (the server has no /docs.json).
func rawTarget(t *testing.T, ts *httptest.Server, conns int) *HTTP {
	t.Helper()
	h, err := NewHTTP(context.Background(), HTTPOptions{URL: ts.URL + "/x", Body: []byte(`[1]`), Conns: conns})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return h
}

func adaptive() batcher.Config {
	c := batcher.DefaultConfig()
	c.MaxBatchSize = 64
	return c
}

var okHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) })
