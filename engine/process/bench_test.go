package process

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/benchtop/benchtop/engine"
)

// noop is the in-process yardstick: the same method with no process.
type noop struct{}

func (noop) Call(_ context.Context, _ string, in engine.Value) (engine.Value, error) { return in, nil }

// BenchmarkProtocolOverhead is the cost of one batch round trip to a worker
// process: 64 float32 rows of 256 sent to the Python sample's noop and
// returned, against the same no-op called in process. The difference is
// the protocol's cost per batch (encoding, two pipe transfers, the
// worker's decode and encode, and the Python interpreter's dispatch).
func BenchmarkProtocolOverhead(b *testing.B) {
	const rows, k = 64, 256
	data := make([]float32, rows*k)
	for i := range data {
		data[i] = float32(i)
	}
	x, err := engine.NewTensor([]int{rows, k}, data)
	if err != nil {
		b.Fatal(err)
	}
	in := engine.TensorValue(x)
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
			if out.Tensor().Len() != rows*k {
				b.Fatalf("got %v", out)
			}
		}
	}
	inProcess := testing.Benchmark(func(b *testing.B) { run(b, noop{}) })
	b.Run("inprocess", func(b *testing.B) { run(b, noop{}) })
	b.Run("process", func(b *testing.B) {
		p := engine.Params{"command": []any{python(b), filepath.Join("..", "..", "samples", "python", "sentiment_worker.py")}}
		w := newWorker(b, Type(), p, engine.Env{Threads: 1})
		run(b, w)
		perOp := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
		b.ReportMetric(perOp/1e3, "µs/roundtrip")
		if base := float64(inProcess.NsPerOp()); base > 0 {
			b.ReportMetric(perOp/base, "x_inprocess")
		}
	})
}
