package engine

import (
	"encoding/binary"
	"encoding/json"
	"fmt"

	"github.com/benchtop/benchtop/engine/tensor"
)

// This file holds what the engine does with a method's signature on the
// way in (checking a request's values, counting its rows and bytes,
// building its batching key) and on the way out (checking a batch's
// outputs and cutting them back into callers' shares).

// checkInputs checks in, a value per input of spec, and returns the
// request's rows: for a batchable method, the size along the batch dim of
// its batched inputs, which must agree; 1 otherwise. Errors match
// ErrInvalidInput and name the input.
func checkInputs(spec *MethodSpec, in []tensor.Value) (int, error) {
	if len(in) != len(spec.Inputs) {
		return 0, countError(spec, in)
	}
	rows, first := 0, -1
	for i := range spec.Inputs {
		s := &spec.Inputs[i]
		v := in[i]
		if v.Kind() == tensor.KindInvalid {
			if s.Optional {
				continue
			}
			return 0, fmt.Errorf("%w: missing input %q (%s)", ErrInvalidInput, s.Name, takes(spec))
		}
		if err := s.Check(v); err != nil {
			return 0, fmt.Errorf("%w %q: %w", ErrInvalidInput, s.Name, err)
		}
		if !spec.Batchable || s.Unbatched {
			continue
		}
		n, err := v.Rows(spec.BatchDim)
		if err != nil {
			return 0, fmt.Errorf("%w %q: %w", ErrInvalidInput, s.Name, err)
		}
		if first < 0 {
			rows, first = n, i
			continue
		}
		if n != rows {
			return 0, fmt.Errorf("%w: inputs %q and %q disagree on the batch size: %d rows and %d rows along dim %d",
				ErrInvalidInput, spec.Inputs[first].Name, s.Name, rows, n, spec.BatchDim)
		}
	}
	if !spec.Batchable {
		return 1, nil
	}
	if first < 0 {
		return 0, fmt.Errorf("%w: no batched input is present, so the request has no rows: send at least one of %s", ErrInvalidInput, batchedNames(spec))
	}
	if rows < 1 {
		return 0, fmt.Errorf("%w %q: no rows along batch dim %d: send at least one", ErrInvalidInput, spec.Inputs[first].Name, spec.BatchDim)
	}
	return rows, nil
}

// countError says why in does not have a value per input.
func countError(spec *MethodSpec, in []tensor.Value) error {
	if len(in) < len(spec.Inputs) {
		for _, s := range spec.Inputs[len(in):] {
			if !s.Optional {
				return fmt.Errorf("%w: missing input %q: got %d values for %s (pass the zero Value for an absent optional one)",
					ErrInvalidInput, s.Name, len(in), takes(spec))
			}
		}
	}
	return fmt.Errorf("%w: got %d values, but %s", ErrInvalidInput, len(in), takes(spec))
}

// takes says what the method's inputs are, for messages.
func takes(spec *MethodSpec) string {
	switch len(spec.Inputs) {
	case 0:
		return fmt.Sprintf("method %q takes no input", spec.Name)
	case 1:
		return fmt.Sprintf("method %q takes 1 input, %q", spec.Name, spec.Inputs[0].Name)
	}
	return fmt.Sprintf("method %q takes %d inputs, %s", spec.Name, len(spec.Inputs), spec.Inputs.Names())
}

func batchedNames(spec *MethodSpec) string {
	var l tensor.IOSpecs
	for _, s := range spec.Inputs {
		if !s.Unbatched {
			l = append(l, s)
		}
	}
	return l.Names()
}

// sizeOfAll is the bytes of data a request carries, for the batcher's cost
// model: where rows differ in size, cost follows bytes.
func sizeOfAll(in []tensor.Value) int64 {
	var n int64
	for _, v := range in {
		n += sizeOf(v)
	}
	return n
}

// sizeOf is the bytes of data one value carries.
func sizeOf(v tensor.Value) int64 {
	switch v.Kind() {
	case tensor.KindTensor:
		t := v.Tensor()
		if t == nil {
			return 0
		}
		n := int64(len(t.Bytes()))
		for _, s := range t.Strings() {
			n += int64(len(s))
		}
		return n
	case tensor.KindText:
		return int64(len(v.Text()))
	case tensor.KindJSON:
		return jsonSize(v.JSON(), 0)
	}
	return 0
}

// jsonSize approximates the bytes of a decoded JSON value: strings by
// their length, anything else by a word, nesting followed a few levels.
func jsonSize(x any, depth int) int64 {
	switch x := x.(type) {
	case string:
		return int64(len(x))
	case []any:
		if depth > 4 {
			return int64(8 * len(x))
		}
		var n int64
		for _, e := range x {
			n += jsonSize(e, depth+1)
		}
		return n
	case map[string]any:
		if depth > 4 {
			return int64(16 * len(x))
		}
		var n int64
		for k, e := range x {
			n += int64(len(k)) + jsonSize(e, depth+1)
		}
		return n
	}
	return 8
}

// keyPart says what the batching key spells out for one input of a
// batchable method.
type keyPart uint8

const (
	// keyOptional: whether the input is present (one byte), since a batch
	// passes an input for every request or for none.
	keyOptional keyPart = 1 << iota
	// keyShape: the dtype and the non-batch dims, which the signature
	// leaves open and which must agree for tensors to concatenate.
	keyShape
	// keyWhole: the whole value (kind, dtype, shape and data) of an
	// unbatched input, passed once for the batch, so requests share a batch
	// only when it is identical.
	keyWhole
)

// keyParts is what the key spells out for each input of spec, or nil when
// every valid request of the method has the same key, the empty one: the
// common case, which then costs nothing per request.
func keyParts(spec MethodSpec) []keyPart {
	if !spec.Batchable {
		return nil
	}
	parts := make([]keyPart, len(spec.Inputs))
	keyed := false
	for i, s := range spec.Inputs {
		if s.Optional {
			parts[i] |= keyOptional
		}
		switch {
		case s.Unbatched:
			parts[i] |= keyWhole
		case variableBeside(s, spec.BatchDim):
			parts[i] |= keyShape
		}
		keyed = keyed || parts[i] != 0
	}
	if !keyed {
		return nil
	}
	return parts
}

// variableBeside reports whether tensors that meet s may differ in dtype or
// in a dim other than batchDim, so that two of them may not concatenate
// along batchDim.
func variableBeside(s tensor.IOSpec, batchDim int) bool {
	if s.Kind != tensor.KindTensor && s.Kind != tensor.KindInvalid {
		return false
	}
	if s.DType == tensor.DTypeInvalid || s.Shape == nil {
		return true
	}
	for i, d := range s.Shape {
		if i != batchDim && d < 0 {
			return true
		}
	}
	return false
}

// groupKey appends to key what says which requests may share a batch
// (Triton's rule, generalised to several inputs): the same inputs present;
// for each batched tensor whose signature leaves its dtype or a non-batch
// dim open, the same dtype and non-batch dims, so that they concatenate;
// for each unbatched input, the same value, since the batch passes it
// once. Every part is self-delimiting and the parts come in the spec's
// order, so equal keys mean exactly that. It fails only for an unbatched
// JSON value that cannot be encoded.
func (m *method) groupKey(key []byte, in []tensor.Value) ([]byte, error) {
	for i, p := range m.keyParts {
		if p == 0 {
			continue
		}
		v := in[i]
		present := v.Kind() != tensor.KindInvalid
		if p&keyOptional != 0 {
			key = append(key, boolByte(present))
		}
		if !present {
			continue
		}
		switch {
		case p&keyWhole != 0:
			var err error
			if key, err = appendWhole(key, v); err != nil {
				return key, fmt.Errorf("%w %q: an unbatched input must be comparable: %w", ErrInvalidInput, m.spec.Inputs[i].Name, err)
			}
		case p&keyShape != 0 && v.Kind() == tensor.KindTensor:
			t := v.Tensor()
			key = append(key, byte(t.DType()))
			key = binary.AppendUvarint(key, uint64(len(t.Shape())))
			for d, n := range t.Shape() {
				if d == m.spec.BatchDim {
					n = 0
				}
				key = binary.AppendUvarint(key, uint64(n))
			}
		}
	}
	return key, nil
}

func boolByte(b bool) byte {
	if b {
		return 1
	}
	return 0
}

// appendWhole appends a value in full: kind, then for a tensor its dtype,
// rank, dims and data; for text its length and bytes; for JSON its
// encoding (encoding/json sorts object keys, so equal values encode
// alike).
func appendWhole(key []byte, v tensor.Value) ([]byte, error) {
	key = append(key, byte(v.Kind()))
	switch v.Kind() {
	case tensor.KindTensor:
		t := v.Tensor()
		key = append(key, byte(t.DType()))
		key = binary.AppendUvarint(key, uint64(len(t.Shape())))
		for _, n := range t.Shape() {
			key = binary.AppendUvarint(key, uint64(n))
		}
		if t.DType() == tensor.String {
			for _, s := range t.Strings() {
				key = appendBytes(key, s)
			}
			return key, nil
		}
		return appendBytes(key, t.Bytes()), nil
	case tensor.KindText:
		return appendBytes(key, v.Text()), nil
	case tensor.KindJSON:
		b, err := json.Marshal(v.JSON())
		if err != nil {
			return key, err
		}
		return appendBytes(key, b), nil
	}
	return key, nil
}

func appendBytes[S string | []byte](key []byte, s S) []byte {
	key = binary.AppendUvarint(key, uint64(len(s)))
	return append(key, s...)
}

// checkOutputs checks that a runnable kept its promise: a value per
// output, each fitting its spec, and for a batchable method every batched
// output holding rows rows along the output batch dim. The error names the
// output.
func checkOutputs(spec *MethodSpec, outs []tensor.Value, rows int) error {
	if len(outs) != len(spec.Outputs) {
		return fmt.Errorf("runnable returned %d values, but method %q has %s", len(outs), spec.Name, count(spec.Outputs, "output"))
	}
	for i := range spec.Outputs {
		s := &spec.Outputs[i]
		if err := s.Check(outs[i]); err != nil {
			return fmt.Errorf("runnable returned an output %q that does not match its signature: %w", s.Name, err)
		}
		if !spec.Batchable || s.Unbatched {
			continue
		}
		n, err := outs[i].Rows(spec.OutputBatchDim)
		if err != nil {
			return fmt.Errorf("runnable output %q: %w", s.Name, err)
		}
		if n != rows {
			return fmt.Errorf("runnable returned %d rows in output %q for a batch of %d along output batch dim %d", n, s.Name, rows, spec.OutputBatchDim)
		}
	}
	return nil
}
