package samples_test

import (
	"context"
	"errors"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/benchtop/benchtop/engine"
	"github.com/benchtop/benchtop/engine/enginetest"
	"github.com/benchtop/benchtop/engine/tensor"
	"github.com/benchtop/benchtop/samples"
)

func TestCompound(t *testing.T) {
	cases := []struct {
		text     string
		positive bool
		negative bool
	}{
		{"I love this product, it is great", true, false},
		{"This is terrible and I hate it", false, true},
		{"not good", false, true},
		{"not bad at all", true, false},
		{"the sky is blue", false, false},
		{"very good!!!", true, false},
	}
	for _, c := range cases {
		t.Run(c.text, func(t *testing.T) {
			s := samples.Compound(c.text)
			if s < -1 || s > 1 {
				t.Fatalf("score %v outside [-1, 1]", s)
			}
			if (s >= 0.05) != c.positive || (s <= -0.05) != c.negative {
				t.Fatalf("score %v: want positive=%v negative=%v", s, c.positive, c.negative)
			}
		})
	}
	if samples.Compound("very good") <= samples.Compound("good") {
		t.Fatal("an intensifier should raise the score")
	}
	if samples.Compound("good!!") <= samples.Compound("good") {
		t.Fatal("exclamation should raise the score")
	}
}

func local(t *testing.T, runnable string, p engine.Params) *engine.Local {
	t.Helper()
	reg := engine.NewRegistry()
	if err := samples.Register(reg); err != nil {
		t.Fatal(err)
	}
	l, err := engine.NewLocal(context.Background(), reg, engine.RunnerConfig{Runnable: runnable, Params: p})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func TestSimDoublesRows(t *testing.T) {
	l := local(t, "sim", engine.Params{"fixed_ms": 0, "per_row_ms": 0})
	in, _ := tensor.NewTensor([]int{2, 2}, []float32{1, 2, 3, 4})
	out, err := l.Run(context.Background(), "predict", tensor.TensorValue(in))
	if err != nil {
		t.Fatal(err)
	}
	want, _ := tensor.NewTensor([]int{2, 2}, []float32{2, 4, 6, 8})
	if !out.Tensor().Equal(want) {
		t.Fatalf("got %v", out.Tensor().Float32s())
	}
	if _, err := engine.NewLocal(context.Background(), engineRegistry(t), engine.RunnerConfig{Runnable: "sim", Params: engine.Params{"fixed_ms": -1}}); err == nil {
		t.Fatal("negative fixed_ms accepted")
	}
}

func TestSentimentScoresBatch(t *testing.T) {
	l := local(t, "sentiment", nil)
	in, _ := tensor.NewStringTensor([]int{3}, []string{"great", "awful", "a chair"})
	out, err := l.Run(context.Background(), "scores", tensor.TensorValue(in))
	if err != nil {
		t.Fatal(err)
	}
	s := out.Tensor().Float32s()
	if len(s) != 3 || s[0] <= 0 || s[1] >= 0 || s[2] != 0 {
		t.Fatalf("scores %v: want positive, negative, zero", s)
	}
}

func engineRegistry(t *testing.T) *engine.Registry {
	reg := engine.NewRegistry()
	if err := samples.Register(reg); err != nil {
		t.Fatal(err)
	}
	return reg
}

// TestSentimentClassify: the two-input method through a batching runner:
// callers with and without their own threshold each get their own texts'
// verdicts and scores.
func TestSentimentClassify(t *testing.T) {
	e := enginetest.New(t, enginetest.Options{Samples: true})
	r := enginetest.Start(t, e, engine.RunnerConfig{Name: "sentiment", Runnable: "sentiment", Workers: 2, Params: engine.Params{"threshold": 0.05}})
	texts := []string{"great", "awful", "a chair", "not bad at all", "very good!!!", "slow and buggy"}
	thresholds := []float32{0, 0.5, -0.9} // 0: absent, the runner's 0.05
	var wg sync.WaitGroup
	for c := range 30 {
		wg.Go(func() {
			mine := texts[c%len(texts):]
			th := thresholds[c%len(thresholds)]
			in, _ := tensor.NewStringTensor([]int{len(mine)}, mine)
			args := []tensor.Value{tensor.TensorValue(in), {}}
			want := 0.05
			if th != 0 {
				s, _ := tensor.NewTensor([]int{}, []float32{th})
				args[1], want = tensor.TensorValue(s), float64(th)
			}
			outs, _, err := r.RunInfo(context.Background(), "classify", args)
			if err != nil {
				t.Errorf("caller %d: %v", c, err)
				return
			}
			positive, scores := outs[0].Tensor(), outs[1].Tensor()
			pv, _ := tensor.TensorData[bool](positive)
			for i, text := range mine {
				score := samples.Compound(text)
				if scores.Float32s()[i] != float32(score) || pv[i] != (score >= want) {
					t.Errorf("caller %d: %q got %v %v, want %v %v", c, text, pv[i], scores.Float32s()[i], score >= want, float32(score))
				}
			}
		})
	}
	wg.Wait()
	s, _ := tensor.NewTensor([]int{}, []float32{2})
	in, _ := tensor.NewStringTensor([]int{1}, []string{"great"})
	if _, _, err := r.RunInfo(context.Background(), "classify", []tensor.Value{tensor.TensorValue(in), tensor.TensorValue(s)}); !errors.Is(err, engine.ErrInvalidInput) {
		t.Fatalf("threshold 2: %v, want invalid input", err)
	}
}

// TestSimCostsWhatItSays: a batch of the default sim (fixed_ms 2,
// per_row_ms 0.1) of 64 rows takes 8.4 ms: never less (it waits until its
// deadline), and within 5% in at least one of a few tries — a loaded
// machine may delay any one of them, not all.
func TestSimCostsWhatItSays(t *testing.T) {
	l := local(t, "sim", nil)
	in, _ := tensor.NewTensor([]int{64, 4}, make([]float32, 64*4))
	const want = 8400 * time.Microsecond
	best := time.Duration(math.MaxInt64)
	for try := 0; try < 20 && best > want+want/20; try++ {
		start := time.Now()
		if _, err := l.Run(context.Background(), "predict", tensor.TensorValue(in)); err != nil {
			t.Fatal(err)
		}
		took := time.Since(start)
		if took < want {
			t.Fatalf("a batch of 64 rows took %v, less than the 8.4ms it costs", took)
		}
		best = min(best, took)
	}
	if best > want+want/20 {
		t.Fatalf("a batch of 64 rows took at best %v in 20 tries, want 8.4ms ± 5%%", best)
	}
}
