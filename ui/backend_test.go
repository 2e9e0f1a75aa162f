package ui

import (
	"context"
	"errors"
	"testing"

	"github.com/benchtop/benchtop/engine"
	"github.com/benchtop/benchtop/engine/tensor"
	"github.com/benchtop/benchtop/server/codec"
)

// TestSendRefusesAsHTTPDoes: the test input refuses a body exactly where,
// and with the words, the HTTP front end refuses it, because both decode
// with codec.Decode (whose own test holds the rules).
func TestSendRefusesAsHTTPDoes(t *testing.T) {
	target := func(kind engine.IOKind, spec tensor.IOSpec) Target {
		return Target{Runner: "r", Method: "m", Input: kind, Spec: engine.MethodSpec{Name: "m", Inputs: []tensor.IOSpec{spec}, Outputs: []tensor.IOSpec{{}}}}
	}
	rows := tensor.IOSpec{Kind: tensor.KindTensor, DType: tensor.Float32, Shape: []int{-1, 2}}
	tests := []struct {
		name   string
		target Target
		body   string
	}{
		{"text not UTF-8", target(engine.IOText, tensor.IOSpec{Kind: tensor.KindText}), "caf\xe9"},
		{"ndarray of the wrong width", target(engine.IONDArray, rows), "[[1, 2, 3]]"},
		{"json cut short", target(engine.IOJSON, tensor.IOSpec{Kind: tensor.KindJSON}), `{"text"`},
	}
	// No engine: a body that does not decode never reaches it.
	b := &EngineBackend{}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, want := codec.Decode(tc.target.Input, tc.target.Spec.Inputs[0], []byte(tc.body))
			if want == nil {
				t.Fatalf("codec.Decode accepts %q; the case is wrong", tc.body)
			}
			got := b.Send(context.Background(), tc.target, tc.body).Err
			if got == nil || got.Error() != want.Error() {
				t.Fatalf("Send refused with %v, want %v", got, want)
			}
			if !errors.Is(got, engine.ErrInvalidInput) {
				t.Errorf("error %q does not match engine.ErrInvalidInput", got)
			}
		})
	}
}
