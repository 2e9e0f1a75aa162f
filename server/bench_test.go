package server_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/benchtop/benchtop/engine/enginetest"
	"github.com/benchtop/benchtop/engine/tensor"
	"github.com/benchtop/benchtop/server"
	"github.com/benchtop/benchtop/server/codec"
	"github.com/benchtop/benchtop/watcher"
)

const benchConfig = `
runners:
  - name: sim
    runnable: sim
    init: {fixed_ms: 2, per_row_ms: 0.1}
    workers: 1
    batching: {policy: adaptive, max_batch_size: 64, max_latency_ms: 100}
  - name: echo
    runnable: echo
    workers: 1
    batching: {max_batch_size: 64, max_latency_ms: 0}
apis:
  - {name: predict, runner: sim, method: predict, input: ndarray, output: ndarray}
  - {name: echo, runner: echo, method: echo, input: ndarray, output: ndarray}
`

const simIdeal = 64 / 0.0084 // rows/s: 64 rows per 2 ms + 64 × 0.1 ms

func benchServer(b *testing.B) string {
	b.Helper()
	eng := enginetest.New(b, enginetest.Options{Samples: true})
	cfg, err := watcher.ParseAndValidate("bench.yaml", []byte(benchConfig), eng.Registry(), func(string) string { return "" })
	if err != nil {
		b.Fatal(err)
	}
	if _, err := eng.Apply(b.Context(), cfg.RunnerConfigs(), cfg.APISpecs()); err != nil {
		b.Fatal(err)
	}
	srv, err := server.New(eng, server.Options{})
	if err != nil {
		b.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	b.Cleanup(ts.Close) // before the engine closes
	return ts.URL
}

func client(conns int) *http.Client {
	return &http.Client{Transport: &http.Transport{MaxIdleConns: conns, MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns}}
}

// load sends requests from conns keep-alive connections until n are done or
// the deadline passes; it returns the rate, the latencies and the errors.
func load(b *testing.B, url string, body []byte, conns, n int, dur time.Duration) (float64, []time.Duration, int64) {
	c := client(conns)
	var next, errs atomic.Int64
	var mu sync.Mutex
	var lat []time.Duration
	var wg sync.WaitGroup
	deadline := time.Now().Add(dur)
	begin := time.Now()
	for range conns {
		wg.Go(func() {
			mine := make([]time.Duration, 0, 1024)
			for next.Add(1) <= int64(n) && time.Now().Before(deadline) {
				t0 := time.Now()
				resp, err := c.Post(url, "application/json", bytes.NewReader(body))
				if err != nil {
					errs.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					errs.Add(1)
					continue
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		})
	}
	wg.Wait()
	elapsed := time.Since(begin)
	slices.Sort(lat)
	return float64(len(lat)) / elapsed.Seconds(), lat, errs.Load()
}

func BenchmarkHTTPSim128Connections(b *testing.B) {
	url := benchServer(b) + "/predict"
	body := []byte(`[[0.1, 0.2, 0.3, 0.4]]`)
	load(b, url, body, 128, 2000, 5*time.Second) // warm up: connections and the cost model
	b.ResetTimer()
	rate, lat, errs := load(b, url, body, 128, b.N, time.Minute)
	b.ReportMetric(rate, "req/s")
	b.ReportMetric(rate/simIdeal, "of_ideal")
	b.ReportMetric(float64(errs), "errors")
	b.ReportMetric(float64(lat[len(lat)*99/100])/1e6, "p99_ms")
}

// BenchmarkHTTPSimClosedLoop: c keep-alive connections, one row each,
// each sending when its last answer arrives. The closed-loop ideal is one
// batch of c rows per its own cost: c / (2 ms + c × 0.1 ms). Run with
// -benchtime=1x: each level is a 2 s warm-up and a 4 s measurement.
func BenchmarkHTTPSimClosedLoop(b *testing.B) {
	body := []byte(`[[0.1, 0.2, 0.3, 0.4]]`)
	for _, conns := range []int{8, 16, 32, 64} {
		b.Run(fmt.Sprintf("conns=%d", conns), func(b *testing.B) {
			url := benchServer(b) + "/predict"
			load(b, url, body, conns, 1<<30, 2*time.Second)
			rate, lat, errs := load(b, url, body, conns, 1<<30, 4*time.Second)
			ideal := float64(conns) / (0.002 + float64(conns)*0.0001)
			b.ReportMetric(rate, "req/s")
			b.ReportMetric(rate/ideal, "of_closed_loop_ideal")
			b.ReportMetric(float64(lat[len(lat)/2])/1e6, "p50_ms")
			b.ReportMetric(float64(errs), "errors")
		})
	}
}

func BenchmarkHTTPSimOneConnection(b *testing.B) {
	url := benchServer(b) + "/predict"
	body := []byte(`[[0.1, 0.2, 0.3, 0.4]]`)
	load(b, url, body, 1, 100, 5*time.Second)
	b.ResetTimer()
	_, lat, errs := load(b, url, body, 1, b.N, time.Minute)
	b.ReportMetric(float64(lat[len(lat)/2])/1e6, "p50_ms")
	b.ReportMetric(float64(errs), "errors")
}

// BenchmarkEchoAPIVsBareHandler runs the same JSON work (decode an ndarray,
// encode it back) through a bare net/http handler and through the engine's
// echo API, at the same concurrency, and reports the ratio of their rates.
func BenchmarkEchoAPIVsBareHandler(b *testing.B) {
	body := []byte(`[[0.1, 0.2, 0.3, 0.4]]`)
	spec := tensor.IOSpec{Kind: tensor.KindTensor}
	bare := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		data, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		t, err := codec.DecodeNDArray(data, spec)
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(append(codec.AppendNDArray(nil, t), '\n'))
	}))
	defer bare.Close()
	api := benchServer(b) + "/echo"
	const conns, dur = 64, 3 * time.Second
	load(b, bare.URL, body, conns, 5000, time.Second)
	load(b, api, body, conns, 5000, time.Second)
	b.ResetTimer()
	for range b.N {
		bareRate, _, e1 := load(b, bare.URL, body, conns, 1<<30, dur)
		apiRate, _, e2 := load(b, api, body, conns, 1<<30, dur)
		b.ReportMetric(bareRate, "bare_req/s")
		b.ReportMetric(apiRate, "api_req/s")
		b.ReportMetric(apiRate/bareRate, "api/bare")
		b.ReportMetric(float64(e1+e2), "errors")
	}
}
