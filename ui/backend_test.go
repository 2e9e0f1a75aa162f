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
// with codec.DecodeInputs (whose own tests hold the rules).
func TestSendRefusesAsHTTPDoes(t *testing.T) {
	target := func(kind engine.IOKind, specs ...tensor.IOSpec) Target {
		return Target{Runner: "r", Method: "m", Input: kind, Spec: engine.MethodSpec{Name: "m", Inputs: specs, Outputs: []tensor.IOSpec{{}}}}
	}
	rows := tensor.IOSpec{Name: "input", Kind: tensor.KindTensor, DType: tensor.Float32, Shape: []int{-1, 2}}
	ids := tensor.IOSpec{Name: "input_ids", Kind: tensor.KindTensor, DType: tensor.Int64, Shape: []int{-1, -1}}
	mask := tensor.IOSpec{Name: "attention_mask", Kind: tensor.KindTensor, DType: tensor.Int64, Shape: []int{-1, -1}}
	tests := []struct {
		name   string
		target Target
		body   string
	}{
		{"text not UTF-8", target(engine.IOText, tensor.IOSpec{Name: "input", Kind: tensor.KindText}), "caf\xe9"},
		{"ndarray of the wrong width", target(engine.IONDArray, rows), "[[1, 2, 3]]"},
		{"json cut short", target(engine.IOJSON, tensor.IOSpec{Name: "input", Kind: tensor.KindJSON}), `{"text"`},
		{"object missing an input", target(engine.IOObject, ids, mask), `{"input_ids": [[1]]}`},
		{"object with an unknown input", target(engine.IOObject, ids, mask), `{"input_ids": [[1]], "attention_mask": [[1]], "x": 1}`},
		{"object, wrongly typed", target(engine.IOObject, ids, mask), `{"input_ids": [[1]], "attention_mask": [["1"]]}`},
	}
	// No engine: a body that does not decode never reaches it.
	b := &EngineBackend{}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, want := codec.DecodeInputs(tc.target.Input, tc.target.Spec.Inputs, []byte(tc.body))
			if want == nil {
				t.Fatalf("codec.DecodeInputs accepts %q; the case is wrong", tc.body)
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

// TestTargetsAndTheirExamples: every API and every runner method is a
// target, a method of several inputs too, and each target's example is
// accepted as it stands; outputs are shown by name.
func TestTargetsAndTheirExamples(t *testing.T) {
	e := enginetest.New(t, enginetest.Options{Samples: true})
	ctx := t.Context()
	plan, err := e.Plan(ctx, engine.Config{
		Runners: []engine.RunnerConfig{{Name: "sentiment", Runnable: "sentiment", Workers: 1}},
		APIs:    []engine.APISpec{{Name: "classify", Runner: "sentiment", Method: "classify", Input: engine.IOObject, Output: engine.IOObject}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Apply(ctx, plan); err != nil {
		t.Fatal(err)
	}
	b := &EngineBackend{Engine: e}
	var got []string
	for _, tg := range b.Targets() {
		got = append(got, tg.Label())
		res := b.Send(ctx, tg, tg.Example())
		if res.Err != nil {
			t.Errorf("%s: its example %q is refused: %v", tg.Label(), tg.Example(), res.Err)
		}
	}
	want := "POST /classify (sentiment.classify) sentiment.is_positive sentiment.scores sentiment.classify"
	if strings.Join(got, " ") != want {
		t.Fatalf("targets %q, want %q", got, want)
	}
	classify := b.Targets()[3]
	if classify.Input != engine.IOObject {
		t.Fatalf("sentiment.classify reads %s, want object", classify.Input)
	}
	wantExample := `{
  "texts": ["I love this!","This is awful."],
  "threshold": 0.1
}`
	if ex := classify.Example(); ex != wantExample {
		t.Fatalf("example\n%s\nwant\n%s", ex, wantExample)
	}
	res := b.Send(ctx, classify, `{"texts": ["great", "awful"]}`)
	if res.Err != nil || !strings.Contains(res.Output, "positive:\nbool[2]\n[true,false]") || !strings.Contains(res.Output, "scores:\nfloat32[2]") {
		t.Fatalf("send: %v\n%s", res.Err, res.Output)
	}
	res = b.Send(ctx, b.Targets()[2], `["great", "awful"]`)
	if res.Err != nil || !strings.HasPrefix(res.Output, "float32[2]") {
		t.Fatalf("send to a method of one input: %v %q", res.Err, res.Output)
	}
}
