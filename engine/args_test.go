package engine_test

import (
	"strings"
	"testing"

	"github.com/benchtop/benchtop/engine"
	"github.com/benchtop/benchtop/engine/tensor"
)

// argsSpec is a method of a tensor, a text and an optional JSON input, and
// a tensor and a text output.
func argsSpec() engine.MethodSpec {
	return engine.MethodSpec{
		Name: "m",
		Inputs: []tensor.IOSpec{
			{Name: "x", Kind: tensor.KindTensor},
			{Name: "note", Kind: tensor.KindText},
			{Name: "opts", Kind: tensor.KindJSON, Optional: true},
		},
		Outputs: []tensor.IOSpec{{Name: "y", Kind: tensor.KindTensor}, {Name: "label", Kind: tensor.KindText}},
	}
}

func TestArgs(t *testing.T) {
	x, err := tensor.NewTensor([]int{2}, []float32{1, 2})
	if err != nil {
		t.Fatal(err)
	}
	a := engine.NewArgs(argsSpec(), []tensor.Value{tensor.TensorValue(x), tensor.TextValue("hi"), {}})
	if got, err := a.Tensor("x"); err != nil || got != x {
		t.Errorf("Tensor(x) = %v, %v", got, err)
	}
	if got, err := a.Text("note"); err != nil || got != "hi" {
		t.Errorf("Text(note) = %q, %v", got, err)
	}
	if a.Has("opts") || !a.Has("x") || a.Has("nope") {
		t.Errorf("Has: opts %v x %v nope %v, want false true false", a.Has("opts"), a.Has("x"), a.Has("nope"))
	}
	for name, err := range map[string]error{
		"absent":        func() error { _, err := a.JSON("opts"); return err }(),
		"unknown":       func() error { _, err := a.Tensor("nope"); return err }(),
		"not a tensor":  func() error { _, err := a.Tensor("note"); return err }(),
		"not text":      func() error { _, err := a.Text("x"); return err }(),
		"absent tensor": func() error { _, err := a.Tensor("opts"); return err }(),
	} {
		if err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if _, err := a.Tensor("nope"); err == nil || !strings.Contains(err.Error(), "inputs: x, note, opts") {
		t.Errorf("unknown name: %v, want the inputs listed", err)
	}
}

func TestResults(t *testing.T) {
	x, err := tensor.NewTensor([]int{2}, []float32{1, 2})
	if err != nil {
		t.Fatal(err)
	}
	out := engine.NewResults(argsSpec())
	out.SetTensor("y", x)
	if _, err := out.Values(); err == nil || !strings.Contains(err.Error(), `output "label" was not set`) {
		t.Errorf("Values with label unset: %v", err)
	}
	out.Set("label", tensor.TextValue("ok"))
	vs, err := out.Values()
	if err != nil || len(vs) != 2 || vs[0].Tensor() != x || vs[1].Text() != "ok" {
		t.Errorf("Values = %v, %v", vs, err)
	}
	if err := out.Set("typo", tensor.TextValue("")); err == nil {
		t.Error("Set of an unknown output: no error")
	}
	if _, err := out.Values(); err == nil || !strings.Contains(err.Error(), `no output "typo" (outputs: y, label)`) {
		t.Errorf("Values after a failed Set: %v, want that Set's error", err)
	}
}
