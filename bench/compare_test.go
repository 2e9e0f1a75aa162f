package bench

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/benchtop/benchtop/batcher"
	"github.com/benchtop/benchtop/engine/tensor"
)

func TestInProcessTarget(t *testing.T) {
	eng := simEngine(t, adaptive())
	tests := []struct {
		name           string
		runner, method string
		in             [][]tensor.Value
		want           string // error substring, "" for success
	}{
		{"example input", "sim", "predict", nil, ""},
		{"unknown runner", "nope", "predict", nil, "unknown runner"},
		{"unknown method", "sim", "nope", nil, "unknown method"},
		{"wrong input", "sim", "predict", [][]tensor.Value{{tensor.TextValue("hi")}}, `input for sim.predict: input "input": got text, want tensor float32[-1 -1]`},
		{"too few values", "sim", "predict", [][]tensor.Value{{}}, "input for sim.predict: 0 values for 1 inputs (input)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := NewInProcess(eng, tc.runner, tc.method, tc.in...)
			if tc.want != "" {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("err %v, want %q", err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			res, err := Sweep(context.Background(), p, []Level{{Concurrency: 1}, {Rate: 300, Poisson: true}}, quick())
			if err != nil {
				t.Fatal(err)
			}
			for _, l := range res.Levels {
				if l.OK == 0 || l.Server == nil {
					t.Fatalf("%s: ok %d, server %+v", l.Level, l.OK, l.Server)
				}
			}
			// One caller: each batch is one request's two rows.
			if b := res.Levels[0].Server; b.MeanRows != 2 || len(b.Sizes) != 1 {
				t.Errorf("one caller: mean batch %.2f, sizes %v; want exactly 2 rows", b.MeanRows, b.Sizes)
			}
		})
	}
}

func TestParseCompare(t *testing.T) {
	tests := []struct {
		name  string
		specs []string
		want  []string // variant labels
		err   string
	}{
		{"policies", []string{"policy=none,fixed,adaptive"}, []string{"policy=none", "policy=fixed", "policy=adaptive"}, ""},
		{"cross product", []string{"policy=none,adaptive", "max_batch_size=1,16"},
			[]string{"policy=none,max_batch_size=1", "policy=adaptive,max_batch_size=1", "policy=none,max_batch_size=16", "policy=adaptive,max_batch_size=16"}, ""},
		{"workers", []string{"workers=1,2"}, []string{"workers=1", "workers=2"}, ""},
		{"nothing", nil, nil, "nothing to compare"},
		{"no values", []string{"policy="}, nil, "want KEY=V1"},
		{"unknown key", []string{"speed=1,2"}, nil, "unknown setting"},
		{"bad policy", []string{"policy=fast"}, nil, "unknown batching policy"},
		{"zero batch", []string{"max_batch_size=0,8"}, nil, "at least 1"},
		{"twice", []string{"policy=none", "policy=fixed"}, nil, "compared twice"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			vs, err := ParseCompare(tc.specs)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, v := range vs {
				got = append(got, v.String())
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestVariantApply(t *testing.T) {
	base := batcher.DefaultConfig()
	v := Variant{{"policy", "fixed"}, {"max_batch_size", "16"}, {"max_latency_ms", "2.5"}, {"batch_wait_ms", "1"}, {"max_queue_size", "0"}, {"workers", "3"}}
	got, workers, err := v.Apply(base)
	if err != nil {
		t.Fatal(err)
	}
	want := batcher.Config{Policy: batcher.Fixed, MaxBatchSize: 16, MaxLatency: 2500 * time.Microsecond, BatchWait: time.Millisecond}
	if got != want || workers != 3 {
		t.Errorf("got %+v workers %d, want %+v workers 3", got, workers, want)
	}
}

func TestCompare(t *testing.T) {
	eng := simEngine(t, adaptive())
	p, err := NewInProcess(eng, "sim", "predict")
	if err != nil {
		t.Fatal(err)
	}
	orig, origWorkers, err := p.Batching()
	if err != nil {
		t.Fatal(err)
	}
	variants, err := ParseCompare([]string{"policy=none,adaptive"})
	if err != nil {
		t.Fatal(err)
	}
	var seen []string
	opts := quick()
	opts.Progress = func(pr Progress) {
		if len(seen) == 0 || seen[len(seen)-1] != pr.Sweep {
			seen = append(seen, pr.Sweep)
		}
	}
	res, err := Compare(context.Background(), p, variants, []Level{{Concurrency: 1}, {Concurrency: 8}}, opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 2 || res[0].Label != "policy=none" || res[1].Label != "policy=adaptive" {
		t.Fatalf("sweeps %+v", res)
	}
	if !reflect.DeepEqual(seen, []string{"policy=none", "policy=adaptive"}) {
		t.Errorf("progress named sweeps %v", seen)
	}
	for _, s := range res {
		if len(s.Levels) != 2 {
			t.Fatalf("%s: %d levels, want 2", s.Label, len(s.Levels))
		}
	}
	// none runs every request alone; adaptive with 8 callers on one
	// worker batches them.
	if b := res[0].Levels[1].Server; b == nil || b.MeanRows != 2 {
		t.Errorf("policy=none at 8 callers: %+v, want every batch one request of 2 rows", b)
	}
	if b := res[1].Levels[1].Server; b == nil || b.MeanRows <= 2 {
		t.Errorf("policy=adaptive at 8 callers: %+v, want batches of several requests", b)
	}
	if got, w, _ := p.Batching(); got != orig || w != origWorkers {
		t.Errorf("batching after compare %+v (%d workers), want it restored to %+v (%d)", got, w, orig, origWorkers)
	}
}

func TestCompareWorkers(t *testing.T) {
	eng := simEngine(t, adaptive())
	p, err := NewInProcess(eng, "sim", "predict")
	if err != nil {
		t.Fatal(err)
	}
	variants, _ := ParseCompare([]string{"workers=2"})
	res, err := Compare(context.Background(), p, variants, []Level{{Concurrency: 2}}, quick())
	if err != nil || len(res) != 1 || res[0].Levels[0].OK == 0 {
		t.Fatalf("res %+v, err %v", res, err)
	}
	if _, w, _ := p.Batching(); w != 1 {
		t.Errorf("%d workers after compare, want 1 restored", w)
	}
}

func TestCompareNeedsInProcess(t *testing.T) {
	_, ts := simServed(t, adaptive())
	h, err := NewHTTP(context.Background(), HTTPOptions{URL: ts.URL + "/predict"})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	variants, _ := ParseCompare([]string{"policy=none,adaptive"})
	_, err = Compare(context.Background(), h, variants, []Level{{Concurrency: 1}}, quick())
	if !errors.Is(err, ErrCompareNeedsInProcess) {
		t.Errorf("err %v, want ErrCompareNeedsInProcess", err)
	}
}

func TestLatencyLimitStopsSweep(t *testing.T) {
	eng := simEngine(t, adaptive())
	p, err := NewInProcess(eng, "sim", "predict")
	if err != nil {
		t.Fatal(err)
	}
	opts := quick()
	opts.LatencyLimit = time.Microsecond // sim takes 1 ms: the first level passes it
	res, err := Sweep(context.Background(), p, []Level{{Concurrency: 1}, {Concurrency: 2}}, opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Levels) != 1 || !strings.Contains(res.Stopped, "latency limit") {
		t.Errorf("%d levels, stopped %q; want 1 and the latency limit named", len(res.Levels), res.Stopped)
	}
}
