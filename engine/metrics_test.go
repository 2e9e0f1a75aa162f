package engine_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/benchtop/benchtop/batcher"
	"github.com/benchtop/benchtop/engine"
	"github.com/benchtop/benchtop/engine/enginetest"
	"github.com/benchtop/benchtop/engine/tensor"
)

func gather(t *testing.T, g prometheus.Gatherer) map[string]*dto.MetricFamily {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*dto.MetricFamily{}
	for _, mf := range mfs {
		out[mf.GetName()] = mf
	}
	return out
}

func labelsOf(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, l := range m.GetLabel() {
		out[l.GetName()] = l.GetValue()
	}
	return out
}

func TestMetricsExposition(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	e := newEngineOn(t, reg)
	sim := enginetest.Start(t, e, engine.RunnerConfig{Name: "sim", Runnable: "sim", Workers: 1, Params: engine.Params{"fixed_ms": 0, "per_row_ms": 0}, Batching: batching(batcher.Adaptive, 1, 0)})
	lenient := enginetest.Start(t, e, engine.RunnerConfig{Name: "sentiment", Runnable: "sentiment", Workers: 2})
	strict := enginetest.Start(t, e, engine.RunnerConfig{Name: "strict", Runnable: "sentiment", Workers: 1, Params: engine.Params{"threshold": 0.6}})
	ctx := context.Background()
	for i := range 5 {
		if _, err := sim.Run(ctx, "predict", rowsTensor(t, i, 1, 2)); err != nil {
			t.Fatal(err)
		}
	}
	// Two runners of one runnable, different init params, different answers.
	text := tensor.TextValue("it is good")
	a, err := lenient.Run(ctx, "is_positive", text)
	if err != nil {
		t.Fatal(err)
	}
	b, err := strict.Run(ctx, "is_positive", text)
	if err != nil {
		t.Fatal(err)
	}
	if a.JSON() != true || b.JSON() != false {
		t.Fatalf("threshold 0.05 said %v, threshold 0.6 said %v; want true, false", a.JSON(), b.JSON())
	}

	lintMetrics(t, reg)
	checkExposition(t, gather(t, reg))

	// A stopped runner leaves no series behind, custom ones included.
	if err := e.StopRunner(ctx, "strict"); err != nil {
		t.Fatal(err)
	}
	for name, mf := range gather(t, reg) {
		for _, m := range mf.GetMetric() {
			if labelsOf(m)["runner"] == "strict" {
				t.Errorf("%s still reports the stopped runner", name)
			}
		}
	}
}

// lintMetrics: benchtop's metrics and the sample runnables' pass the
// Prometheus lint.
func lintMetrics(t *testing.T, reg prometheus.Gatherer) {
	t.Helper()
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		if strings.HasPrefix(p.Metric, "benchtop_") || strings.HasPrefix(p.Metric, "sentiment_") {
			t.Errorf("metric lint: %s: %s", p.Metric, p.Text)
		}
	}
}

// checkExposition: the families TestMetricsExposition's traffic should
// have made, with the values it should have left.
func checkExposition(t *testing.T, mfs map[string]*dto.MetricFamily) {
	t.Helper()
	for _, name := range []string{
		"benchtop_runner_requests_total", "benchtop_runner_request_duration_seconds",
		"benchtop_runner_queue_duration_seconds", "benchtop_runner_execution_duration_seconds",
		"benchtop_runner_batch_size", "benchtop_runner_queue_depth", "benchtop_runner_in_flight",
		"benchtop_runner_workers", "sentiment_inference_duration_seconds", "sentiment_polarity_total",
	} {
		if mfs[name] == nil {
			t.Errorf("metric %s missing", name)
		}
	}
	// max_batch_size 1: every batch lands in the first bucket.
	for _, m := range mfs["benchtop_runner_batch_size"].GetMetric() {
		if labelsOf(m)["runner"] != "sim" {
			continue
		}
		h := m.GetHistogram()
		if h.GetSampleCount() != 5 || h.GetBucket()[0].GetUpperBound() != 1 || h.GetBucket()[0].GetCumulativeCount() != 5 {
			t.Errorf("batch size histogram for max 1: %v", h)
		}
	}
	polarity := map[string]bool{}
	for _, m := range mfs["sentiment_polarity_total"].GetMetric() {
		l := labelsOf(m)
		polarity[l["runner"]+"/"+l["polarity"]] = true
	}
	if !polarity["sentiment/positive"] || !polarity["strict/neutral"] {
		t.Errorf("custom metric series per runner: %v", polarity)
	}
	workers := map[string]float64{}
	for _, m := range mfs["benchtop_runner_workers"].GetMetric() {
		workers[labelsOf(m)["runner"]] = m.GetGauge().GetValue()
	}
	if workers["sentiment"] != 2 || workers["strict"] != 1 {
		t.Errorf("workers gauge %v", workers)
	}
}

// series finds the series of family name whose labels include want.
func series(t *testing.T, mfs map[string]*dto.MetricFamily, name string, want map[string]string) *dto.Metric {
	t.Helper()
next:
	for _, m := range mfs[name].GetMetric() {
		l := labelsOf(m)
		for k, v := range want {
			if l[k] != v {
				continue next
			}
		}
		return m
	}
	t.Fatalf("no %s%v", name, want)
	return nil
}

// TestMetricsValues: the runner metrics count what happened — requests by
// outcome, queue and execution time summed over what ran, the batches in
// flight and the requests queued while they are — and agree with the
// runner's own cumulative stats (what /v2/models/{m}/stats serves).
func TestMetricsValues(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	g := newGate()
	e := newEngineOn(t, reg, g.typ())
	c := batching(batcher.None, 1, 0)
	c.MaxQueueSize = 1
	r := enginetest.Start(t, e, engine.RunnerConfig{Name: "g", Runnable: "gate", Workers: 1, Batching: c})
	timing := enginetest.Start(t, e, engine.RunnerConfig{Name: "t", Runnable: "gate", Workers: 1, Timeout: 20 * time.Millisecond, Batching: batching(batcher.None, 1, 0)})
	g1 := map[string]string{"runner": "g", "method": "run"}
	gauges := func(stage string, inflight, depth float64) {
		t.Helper()
		mfs := gather(t, reg)
		gotIn := series(t, mfs, "benchtop_runner_in_flight", g1).GetGauge().GetValue()
		gotDepth := series(t, mfs, "benchtop_runner_queue_depth", g1).GetGauge().GetValue()
		if gotIn != inflight || gotDepth != depth {
			t.Fatalf("%s: in_flight %v, queue_depth %v; want %v and %v", stage, gotIn, gotDepth, inflight, depth)
		}
	}

	sendEachOutcome(t, g, r, timing)
	gauges("idle", 0, 0)
	seen := holdQueueAndRefuse(t, g, r, func() { gauges("one batch running, one request queued", 1, 1) })
	gauges("idle again", 0, 0)

	mfs := gather(t, reg)
	ms := r.Stats(engine.StatsOptions{}).Methods[0]
	wantRequestCounts(t, mfs, ms)
	wantDurations(t, mfs, g1, ms, seen)
}

// sendEachOutcome makes runner r answer once with each outcome but
// overloaded, and runner timing time out once.
func sendEachOutcome(t *testing.T, g *gate, r, timing *engine.Runner) {
	t.Helper()
	ctx := context.Background()
	if _, err := r.Run(ctx, "run", one(1)); err != nil { // ok
		t.Fatal(err)
	}
	if _, err := r.Run(ctx, "run", one(-1)); err == nil { // error
		t.Fatal("row -1 succeeded")
	}
	if _, err := r.Run(ctx, "run", rowsTensor(t, 1, 1, 2)); !errors.Is(err, engine.ErrInvalidInput) { // invalid
		t.Fatalf("a [1 2] input: %v", err)
	}
	gone, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := r.Run(gone, "run", one(2)); !errors.Is(err, context.Canceled) { // cancelled
		t.Fatalf("a cancelled caller: %v", err)
	}
	if _, err := timing.Run(ctx, "run", one(-4)); !errors.Is(err, engine.ErrTimeout) { // timeout, on runner t
		t.Fatalf("past the timeout: %v", err)
	}
	<-g.started // the batch that timed out started
}

// heldTimes are what the test saw of the held batch and the request queued
// behind it.
type heldTimes struct{ heldFrom, queuedFrom, released time.Time }

// holdQueueAndRefuse holds one batch, queues one request behind it, has a
// third refused (max_queue_size 1), calls during while that holds, and lets
// both finish.
func holdQueueAndRefuse(t *testing.T, g *gate, r *engine.Runner, during func()) heldTimes {
	t.Helper()
	ctx := context.Background()
	var release sync.Once
	open := func() { release.Do(func() { close(g.release) }) }
	defer open() // a held call ignores its ctx: let it go if the test fails
	var seen heldTimes
	held := make(chan error, 1)
	go func() { _, err := r.Run(ctx, "run", one(-3)); held <- err }()
	<-g.started
	seen.heldFrom = time.Now()
	queued := make(chan error, 1)
	go func() { _, err := r.Run(ctx, "run", one(3)); queued <- err }()
	waitFor(t, func() bool { return r.Stats(engine.StatsOptions{}).Methods[0].Queue.Depth == 1 })
	seen.queuedFrom = time.Now()
	during()
	if _, err := r.Run(ctx, "run", one(4)); !errors.Is(err, engine.ErrOverloaded) { // overloaded
		t.Fatalf("past max_queue_size: %v", err)
	}
	seen.released = time.Now() // the held batch ends, and the queued one starts, after this
	open()
	if err := <-held; err != nil {
		t.Fatal(err)
	}
	if err := <-queued; err != nil {
		t.Fatal(err)
	}
	return seen
}

// wantRequestCounts: requests_total by status, on both runners, and the
// runner's own totals agree.
func wantRequestCounts(t *testing.T, mfs map[string]*dto.MetricFamily, ms engine.MethodStats) {
	t.Helper()
	want := map[string]float64{"ok": 3, "error": 1, "invalid": 1, "cancelled": 1, "overloaded": 1, "timeout": 0}
	for status, n := range want {
		l := map[string]string{"runner": "g", "method": "run", "status": status}
		if got := series(t, mfs, "benchtop_runner_requests_total", l).GetCounter().GetValue(); got != n {
			t.Errorf("requests_total%v = %v, want %v", l, got, n)
		}
		if got := ms.Totals[status]; got != uint64(n) {
			t.Errorf("Stats Totals[%s] = %d, the metric says %v", status, got, n)
		}
	}
	if got := series(t, mfs, "benchtop_runner_requests_total", map[string]string{"runner": "t", "status": "timeout"}).GetCounter().GetValue(); got != 1 {
		t.Errorf("requests_total{runner=t,status=timeout} = %v, want 1", got)
	}
}

// wantDurations: queue time is summed over successful requests, execution
// time over batches (the failed one included): each at least what the test
// saw; the cumulative stats are the same sums.
func wantDurations(t *testing.T, mfs map[string]*dto.MetricFamily, labels map[string]string, ms engine.MethodStats, seen heldTimes) {
	t.Helper()
	queue := series(t, mfs, "benchtop_runner_queue_duration_seconds", labels).GetHistogram()
	exec := series(t, mfs, "benchtop_runner_execution_duration_seconds", labels).GetHistogram()
	e2e := series(t, mfs, "benchtop_runner_request_duration_seconds", labels).GetHistogram()
	if queue.GetSampleCount() != 3 || e2e.GetSampleCount() != 3 || exec.GetSampleCount() != 4 {
		t.Fatalf("samples: queue %d, request %d, execution %d; want 3, 3 and 4 (three successes; four batches ran, one failed)",
			queue.GetSampleCount(), e2e.GetSampleCount(), exec.GetSampleCount())
	}
	if q := seen.released.Sub(seen.queuedFrom).Seconds(); queue.GetSampleSum() < q {
		t.Errorf("queue time sum %vs, less than the %vs the test saw a request queued", queue.GetSampleSum(), q)
	}
	held := seen.released.Sub(seen.heldFrom).Seconds()
	if exec.GetSampleSum() < held {
		t.Errorf("execution time sum %vs, less than the %vs the test held a batch", exec.GetSampleSum(), held)
	}
	if e2e.GetSampleSum() < max(queue.GetSampleSum(), held) {
		t.Errorf("request time sum %vs: less than the time queued (%vs) or the batch the test held", e2e.GetSampleSum(), queue.GetSampleSum())
	}
	near := func(what string, d time.Duration, secs float64) {
		if diff := d.Seconds() - secs; diff < -1e-6 || diff > 1e-6 {
			t.Errorf("%s: Stats says %v, the metric %vs", what, d, secs)
		}
	}
	near("queue", ms.Cumulative.Queue, queue.GetSampleSum())
	near("execution", ms.Cumulative.Exec, exec.GetSampleSum())
	near("success", ms.Cumulative.Success, e2e.GetSampleSum())
	if ms.Cumulative.Executions != 4 {
		t.Errorf("Stats executions %d, want 4", ms.Cumulative.Executions)
	}
}
