package process

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/benchtop/benchtop/engine"
	"github.com/benchtop/benchtop/engine/tensor"
)

// noop is the in-process yardstick: the same method with no process.
type noop struct{}

func (noop) Call(_ context.Context, _ string, in []tensor.Value) ([]tensor.Value, error) {
	return in, nil
}

// BenchmarkProtocolOverhead is the cost of one batch round trip to a worker
// process: a float32 batch sent to the Python sample's noop and returned,
// against the same no-op called in process. The difference is the
// protocol's cost per batch: encoding, two pipe transfers, the worker's
// decode and encode, and the Python interpreter's dispatch. 64×256 is the
// reference batch; 1×4 shows the fixed cost alone.
func BenchmarkProtocolOverhead(b *testing.B) {
	for _, size := range []struct{ rows, k int }{{64, 256}, {1, 4}} {
		b.Run(fmt.Sprintf("%dx%d", size.rows, size.k), func(b *testing.B) {
			benchRoundTrip(b, size.rows, size.k)
		})
	}
}

func benchRoundTrip(b *testing.B, rows, k int) {
	data := make([]float32, rows*k)
	for i := range data {
		data[i] = float32(i)
	}
	x, err := tensor.NewTensor([]int{rows, k}, data)
	if err != nil {
		b.Fatal(err)
	}
	in := []tensor.Value{tensor.TensorValue(x)}
	run := func(b *testing.B, inst engine.Instance) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		b.SetBytes(int64(2 * len(x.Bytes())))
		b.ReportAllocs()
		for b.Loop() {
			out, err := inst.Call(ctx, "noop", in)
			if err != nil {
				b.Fatal(err)
			}
			if out[0].Tensor().Len() != rows*k {
				b.Fatalf("got %v", out)
			}
		}
	}
	// The sub-benchmarks run in order, each last with its final b.N, so
	// "process" can report its ratio to "inprocess" from the same run.
	var inProcessNs float64
	b.Run("inprocess", func(b *testing.B) {
		run(b, noop{})
		inProcessNs = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	})
	b.Run("process", func(b *testing.B) {
		p := engine.Params{"command": []any{python(b), filepath.Join("..", "..", "samples", "python", "sentiment_worker.py")}}
		w := newWorker(b, Type(), p, engine.Env{Threads: 1})
		run(b, w)
		perOp := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
		b.ReportMetric(perOp/1e3, "µs/roundtrip")
		if inProcessNs > 0 {
			b.ReportMetric(perOp/inProcessNs, "x_inprocess")
		}
	})
}
