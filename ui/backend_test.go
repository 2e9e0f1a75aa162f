package ui

import (
	"context"
	"errors"
	"slices"
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
		APIs: []engine.APISpec{
			{Name: "classify", Runner: "sentiment", Method: "classify", Input: engine.IOObject, Output: engine.IOObject},
			{Name: "analysis", Func: "sentiment-analysis", Runners: map[string]string{"model": "sentiment"}},
			{Name: "judge", Steps: []engine.StepSpec{
				{Name: "lenient", Runner: "sentiment", Method: "classify", Inputs: []engine.Binding{{Name: "texts", From: "$input.texts"}}},
				{Name: "strict", Runner: "sentiment", Method: "classify", Inputs: []engine.Binding{
					{Name: "texts", From: "$input.texts"}, {Name: "threshold", From: "$input.threshold"}}},
			}, Returns: []engine.Binding{{Name: "lenient", From: "lenient.positive"}, {Name: "strict", From: "strict.positive"}}},
		},
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
	want := "POST /analysis (Go func sentiment-analysis)|POST /classify (sentiment.classify)|POST /judge (pipeline of 2 steps)|" +
		"sentiment.is_positive|sentiment.scores|sentiment.classify"
	if strings.Join(got, "|") != want {
		t.Fatalf("targets %q, want %q", got, want)
	}
	targets := b.Targets()
	classify := targets[5]
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
	res = b.Send(ctx, targets[4], `["great", "awful"]`)
	if res.Err != nil || !strings.HasPrefix(res.Output, "float32[2]") {
		t.Fatalf("send to a method of one input: %v %q", res.Err, res.Output)
	}
}

// TestSendToComposedAPIs: a pipeline and a Go API run through CallAPI, as
// POST /{api} does, and say which runner calls they made; a bad body is
// refused as HTTP refuses it, and an API a reload removed is not found.
func TestSendToComposedAPIs(t *testing.T) {
	e := enginetest.New(t, enginetest.Options{Samples: true})
	ctx := t.Context()
	plan, err := e.Plan(ctx, engine.Config{
		Runners: []engine.RunnerConfig{
			{Name: "sentiment", Runnable: "sentiment", Workers: 1},
			{Name: "strict", Runnable: "sentiment", Workers: 1, Params: engine.Params{"threshold": 0.5}},
		},
		APIs: []engine.APISpec{
			{Name: "compare", Func: "sentiment-compare", Runners: map[string]string{"lenient": "sentiment", "strict": "strict"}},
			{Name: "judge", Steps: []engine.StepSpec{
				{Name: "lenient", Runner: "sentiment", Method: "classify", Inputs: []engine.Binding{{Name: "texts", From: "$input.texts"}}},
				{Name: "strict", Runner: "strict", Method: "classify", Inputs: []engine.Binding{{Name: "texts", From: "$input.texts"}}},
			}, Returns: []engine.Binding{{Name: "lenient", From: "lenient.positive"}, {Name: "strict", From: "strict.positive"}}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Apply(ctx, plan); err != nil {
		t.Fatal(err)
	}
	b := &EngineBackend{Engine: e}
	find := func(api string) Target {
		for _, tg := range b.Targets() {
			if tg.API == api {
				return tg
			}
		}
		t.Fatalf("no target for api %q", api)
		return Target{}
	}
	steps := func(r Result) string {
		var out []string
		for _, s := range r.Steps {
			out = append(out, s.Name+"="+s.Runner+"."+s.Method)
		}
		slices.Sort(out) // they come in the order they finished
		return strings.Join(out, " ")
	}

	judge := find("judge")
	if got := strings.Join(judge.Runners, " "); got != "sentiment strict" {
		t.Errorf("judge calls %q, want sentiment strict", got)
	}
	res := b.Send(ctx, judge, `{"texts": ["I love it", "good"]}`)
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	if got := steps(res); got != "lenient=sentiment.classify strict=strict.classify" {
		t.Errorf("judge's steps %q", got)
	}
	if want := "lenient:\nbool[2]\n[true,true]\nstrict:\nbool[2]\n[true,false]"; res.Output != want {
		t.Errorf("judge answered\n%s\nwant\n%s", res.Output, want)
	}
	for _, s := range res.Steps {
		if s.Duration <= 0 || s.Info.BatchRows != 2 {
			t.Errorf("step %s: took %v in a batch of %d rows, want a time and 2 rows", s.Name, s.Duration, s.Info.BatchRows)
		}
	}

	res = b.Send(ctx, find("compare"), find("compare").Example())
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	if got := steps(res); got != "lenient=sentiment.is_positive strict=strict.is_positive" {
		t.Errorf("compare's runner calls %q", got)
	}

	res = b.Send(ctx, judge, `{"texts": "I love it"}`)
	if !errors.Is(res.Err, engine.ErrInvalidInput) || statusWord(res.Err) != "invalid input (400)" {
		t.Errorf("a body of the wrong shape: %v (%s), want invalid input (400)", res.Err, statusWord(res.Err))
	}
	res = b.Send(ctx, Target{API: "gone", Form: "pipeline of 2 steps"}, `{}`)
	if !errors.Is(res.Err, engine.ErrUnknownAPI) || statusWord(res.Err) != "not found (404)" {
		t.Errorf("an API the config no longer has: %v (%s), want not found (404)", res.Err, statusWord(res.Err))
	}
}
