package process

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/benchtop/benchtop/engine"
	"github.com/benchtop/benchtop/engine/tensor"
)

// copying is the in-process yardstick: the method a worker's noop is, run
// in process with the copies the host side of the protocol makes too — the
// input copied into a reused buffer (the host encodes each CALL into one)
// and the output copied into a fresh allocation (the host reads each
// answer into one, which callers then hold). Returning the input pointer
// would cost nothing and compare with nothing.
type copying struct{ buf []byte }

func (c *copying) Call(_ context.Context, _ string, in []tensor.Value) ([]tensor.Value, error) {
	x := in[0].Tensor()
	c.buf = append(c.buf[:0], x.Bytes()...)
	t, err := tensor.NewTensorFromBytes(x.DType(), x.Shape(), bytes.Clone(c.buf))
	return []tensor.Value{tensor.TensorValue(t)}, err
}

// BenchmarkProtocolOverhead is the cost of one batch round trip to a worker
// process: a float32 batch sent to the Python sample's noop and returned,
// against the same batch copied in and out in process (copying). The
// difference is the protocol's cost per batch beyond those copies:
// encoding, two pipe transfers, the worker's decode and encode, and the
// Python interpreter's dispatch. 64×256 is the reference batch; 1×4 shows
// the fixed cost alone.
//
// Blocks of round trips and of copies alternate within one run, so both
// see the same machine. µs/roundtrip and copy_µs are the mean times of
// one of each; x_copy is their ratio and over_copy_µs their difference
// (lower is better for all). ns/op and MB/s are the process side's: MB/s
// counts the tensor's bytes both ways.
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
	p := engine.Params{"command": []any{python(b), filepath.Join("..", "..", "samples", "python", "sentiment_worker.py")}}
	w := newWorker(b, Type(), p, engine.Env{Threads: 1})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// block calls inst n times and returns the time they took.
	block := func(inst engine.Instance, n int) time.Duration {
		t0 := time.Now()
		for range n {
			out, err := inst.Call(ctx, "noop", in)
			if err != nil {
				b.Fatal(err)
			}
			if out[0].Tensor().Len() != rows*k {
				b.Fatalf("got %v", out)
			}
		}
		return time.Since(t0)
	}
	block(w, 10) // warm up: the interpreter's first calls
	const rounds = 4
	perRound := max(1, b.N/rounds)
	var procT, copyT time.Duration
	c := &copying{}
	block(c, 10)
	b.ResetTimer()
	for range rounds {
		procT += block(w, perRound)
		copyT += block(c, perRound)
	}
	b.StopTimer()
	n := float64(rounds * perRound)
	perProc := float64(procT.Nanoseconds()) / n
	perCopy := float64(copyT.Nanoseconds()) / n
	bytesBothWays := float64(2 * len(x.Bytes()))
	b.ReportMetric(perProc, "ns/op")
	b.ReportMetric(bytesBothWays/perProc*1e3, "MB/s") // bytes per ns × 1e3 = MB/s
	b.ReportMetric(perProc/1e3, "µs/roundtrip")
	b.ReportMetric(perCopy/1e3, "copy_µs")
	b.ReportMetric(perProc/perCopy, "x_copy")
	b.ReportMetric((perProc-perCopy)/1e3, "over_copy_µs")
}
