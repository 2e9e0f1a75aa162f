package process

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/benchtop/benchtop/batcher"
	"github.com/benchtop/benchtop/engine"
	"github.com/benchtop/benchtop/engine/enginetest"
	"github.com/benchtop/benchtop/engine/tensor"
)

// Tests of protocol 2 against workers written without the SDK: what the
// host checks of their results, and the versions the two sides agree on.

// Outputs that do not fit the method, from a worker without the SDK, fail
// that batch with a message that names what is wrong, and the worker goes
// on serving: the stream is still in step.
func TestWrongOutputsFromAWorkerWithoutTheSDK(t *testing.T) {
	typ, _ := testType()
	e := enginetest.New(t, enginetest.Options{}, typ)
	// Each request in a batch of its own, so that a row count is the
	// request's.
	r := startRunner(t, e, engine.RunnerConfig{
		Params: params(t, "raw_tuple_worker.py", nil), Workers: 1,
		Batching: batcher.Config{Policy: batcher.None, MaxBatchSize: 16, MaxQueueSize: 100},
	})
	pair := func(first float32) []tensor.Value {
		return []tensor.Value{floats(t, []int{2, 2}, []float32{first, 1, 2, 3}), floats(t, []int{2, 2}, []float32{1, 1, 1, 1})}
	}
	tests := []struct {
		name  string
		first float32
		want  string
	}{
		{"three values", -1, `returned a malformed result for "pair": a tuple of 3 values for a method of 2 outputs (sum, argmax)`},
		{"one value", -2, `returned a malformed result for "pair": one value for a method of 2 outputs (sum, argmax): send a tuple of them, in that order`},
		{"a wrong dtype", -3, `runnable returned an output "argmax" that does not match its signature: dtype float32, want int64`},
		{"rows missing", -4, `runnable returned 1 rows in output "argmax" for a batch of 2`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := r.RunInfo(context.Background(), "pair", pair(tt.first))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v,\nwant one containing %q", err, tt.want)
			}
			if errors.Is(err, engine.ErrWorkerCrashed) || errors.Is(err, engine.ErrInvalidInput) {
				t.Errorf("a wrong output is the worker's fault, not a crash or the caller's: %v", err)
			}
		})
	}
	outs, _, err := r.RunInfo(context.Background(), "pair", pair(5))
	if err != nil {
		t.Fatal(err)
	}
	if s, a := outs[0].Tensor().Float32s(), outs[1].Tensor().Int64s(); !slices.Equal(s, []float32{6, 2, 3, 4}) || !slices.Equal(a, []int64{0, 1}) {
		t.Errorf("sum %v argmax %v, want [6 2 3 4] and [0 1]", s, a)
	}
	if st := r.Stats(engine.StatsOptions{}); st.Restarts != 0 {
		t.Errorf("%d workers restarted, want none", st.Restarts)
	}
}

// A worker of protocol 1 (one slot a side, READY of protocol 1) is served
// as before: HELLO still says protocol 1 to it, and its frames have not
// changed.
func TestProtocol1WorkerStillServes(t *testing.T) {
	typ, _ := testType()
	e := enginetest.New(t, enginetest.Options{}, typ)
	r := startRunner(t, e, engine.RunnerConfig{Params: params(t, "raw_worker.py", nil), Workers: 1})
	spec, ok := r.Method("double")
	if !ok {
		t.Fatal("no method double")
	}
	if got := spec.Inputs.Names() + " → " + spec.Outputs.Names(); got != "input → output" {
		t.Errorf("slots %s, want the default names", got)
	}
	out, err := r.Run(context.Background(), "double", floats(t, []int{2, 2}, []float32{1, 2, 3, 4}))
	if err != nil {
		t.Fatal(err)
	}
	if got := out.Tensor().Float32s(); !slices.Equal(got, []float32{2, 4, 6, 8}) {
		t.Errorf("got %v, want [2 4 6 8]", got)
	}
}

// Host and worker that share no version, or a worker that claims one and
// speaks another, are refused at the handshake with what to update.
func TestProtocolMismatch(t *testing.T) {
	tests := []struct {
		name string
		init map[string]any
		want []string
	}{
		{"worker too new", map[string]any{"answer_protocol": 3}, []string{
			"worker answered in protocol 3, this benchtop speaks protocols 1 to 2",
			"update benchtop, or use the worker SDK that came with it"}},
		{"worker too old", map[string]any{"answer_protocol": 0}, []string{
			"worker answered in protocol 0, this benchtop speaks protocols 1 to 2", "update the worker's SDK"}},
		{"lists in protocol 1", map[string]any{"lists_in_v1": true}, []string{
			`method "pair": it declares "inputs", a list that came with protocol 2, in a READY of protocol 1: answer READY with protocol 2`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			typ, ps := testType()
			_, err := typ.Describe(t.Context(), params(t, "raw_tuple_worker.py", tt.init))
			for _, want := range tt.want {
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Errorf("error %v,\nwant one containing %q", err, want)
				}
			}
			for _, pid := range ps.all() {
				eventually(t, fmt.Sprintf("refused worker %d to be reaped", pid), func() bool { return gone(pid) })
			}
		})
	}
}
