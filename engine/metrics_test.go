package engine_test

import (
	"context"
	"strings"
	"testing"

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
