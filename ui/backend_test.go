package ui

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/benchtop/benchtop/engine"
	"github.com/benchtop/benchtop/engine/enginetest"
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

// TestTargetsAreMethodsOfOneInput: every runner method the test input can
// send a body to is a target, with a valid example; a method of several
// inputs (sentiment.classify) is not one yet.
func TestTargetsAreMethodsOfOneInput(t *testing.T) {
	e := enginetest.New(t, enginetest.Options{Samples: true})
	enginetest.Start(t, e, engine.RunnerConfig{Name: "sentiment", Runnable: "sentiment", Workers: 1})
	b := &EngineBackend{Engine: e}
	var got []string
	for _, tg := range b.Targets() {
		got = append(got, tg.Label())
		if tg.Example() == "" {
			t.Errorf("%s: no example", tg.Label())
		}
	}
	if want := "sentiment.is_positive sentiment.scores"; strings.Join(got, " ") != want {
		t.Fatalf("targets %q, want %q", got, want)
	}
	res := b.Send(context.Background(), b.Targets()[1], `["great", "awful"]`)
	if res.Err != nil || !strings.Contains(res.Output, "float32[2]") {
		t.Fatalf("send: %v %q", res.Err, res.Output)
	}
}
