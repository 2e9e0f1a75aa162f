package engine

import (
	"fmt"

	"github.com/benchtop/benchtop/engine/tensor"
)

// Args reads the inputs of one Call by name. A Go runnable builds it over
// the method's spec (from Env.Methods) and the values Call was given:
//
//	a := engine.NewArgs(spec, in)
//	ids, err := a.Tensor("input_ids")
//
// The engine has already checked every value against its spec, so errors
// here are a runnable's own mistakes (a misspelt name), not a caller's.
type Args struct {
	inputs tensor.IOSpecs
	in     []tensor.Value
}

// NewArgs views in, a value per input of spec in order, by name.
func NewArgs(spec MethodSpec, in []tensor.Value) Args {
	return Args{inputs: spec.Inputs, in: in}
}

// Value is the input called name: the zero Value when it is optional and
// absent. An unknown name is an error that lists the inputs.
func (a Args) Value(name string) (tensor.Value, error) {
	i := a.inputs.Index(name)
	if i < 0 {
		return tensor.Value{}, fmt.Errorf("no input %q (inputs: %s)", name, a.inputs.Names())
	}
	if i >= len(a.in) {
		return tensor.Value{}, fmt.Errorf("input %q: got %d values for %d inputs", name, len(a.in), len(a.inputs))
	}
	return a.in[i], nil
}

// Has reports whether the input called name is present: false for an
// optional input the caller left out, and for a name the method lacks.
func (a Args) Has(name string) bool {
	v, err := a.Value(name)
	return err == nil && v.Kind() != tensor.KindInvalid
}

// Tensor is the input called name as a tensor (read its elements with
// Float32s, Int64s, Strings, tensor.TensorData…). It is an error if the
// input is absent or not a tensor.
func (a Args) Tensor(name string) (*tensor.Tensor, error) {
	v, err := a.present(name)
	if err != nil {
		return nil, err
	}
	if v.Kind() != tensor.KindTensor || v.Tensor() == nil {
		return nil, fmt.Errorf("input %q is %s, not a tensor", name, v)
	}
	return v.Tensor(), nil
}

// Text is the input called name as text.
func (a Args) Text(name string) (string, error) {
	v, err := a.present(name)
	if err != nil {
		return "", err
	}
	if v.Kind() != tensor.KindText {
		return "", fmt.Errorf("input %q is %s, not text", name, v)
	}
	return v.Text(), nil
}

// JSON is the input called name as a decoded JSON value.
func (a Args) JSON(name string) (any, error) {
	v, err := a.present(name)
	if err != nil {
		return nil, err
	}
	if v.Kind() != tensor.KindJSON {
		return nil, fmt.Errorf("input %q is %s, not JSON", name, v)
	}
	return v.JSON(), nil
}

func (a Args) present(name string) (tensor.Value, error) {
	v, err := a.Value(name)
	if err != nil {
		return v, err
	}
	if v.Kind() == tensor.KindInvalid {
		return v, fmt.Errorf("input %q is absent (it is optional: check Has first)", name)
	}
	return v, nil
}

// Results builds the outputs of one Call by name, in the order the spec
// declares them. A mistake in a Set (an unknown name) is returned by Set
// and again by Values, so a runnable may check once, at the end:
//
//	out := engine.NewResults(spec)
//	out.SetTensor("label", labels)
//	out.SetTensor("probabilities", probs)
//	return out.Values()
type Results struct {
	outputs tensor.IOSpecs
	vals    []tensor.Value
	err     error
}

// NewResults returns an empty set of outputs for spec.
func NewResults(spec MethodSpec) *Results {
	return &Results{outputs: spec.Outputs, vals: make([]tensor.Value, len(spec.Outputs))}
}

// Set sets the output called name; an unknown name is an error that lists
// the outputs.
func (r *Results) Set(name string, v tensor.Value) error {
	i := r.outputs.Index(name)
	if i < 0 {
		err := fmt.Errorf("no output %q (outputs: %s)", name, r.outputs.Names())
		if r.err == nil {
			r.err = err
		}
		return err
	}
	r.vals[i] = v
	return nil
}

// SetTensor sets the output called name to t.
func (r *Results) SetTensor(name string, t *tensor.Tensor) error {
	return r.Set(name, tensor.TensorValue(t))
}

// Values returns the outputs for Call to return, or the first mistake: a
// Set that failed, or an output not set.
func (r *Results) Values() ([]tensor.Value, error) {
	if r.err != nil {
		return nil, r.err
	}
	for i, v := range r.vals {
		if v.Kind() == tensor.KindInvalid {
			return nil, fmt.Errorf("output %q was not set", r.outputs[i].Name)
		}
	}
	return r.vals, nil
}
