package codec

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/benchtop/benchtop/engine"
	"github.com/benchtop/benchtop/engine/tensor"
)

// This file reads and writes a method's values by name: the object body
// ({"input_ids": [[…]], "attention_mask": [[…]]}) that an API of a method
// of several inputs takes and answers with, and the one rule for gathering
// named values into the spec's order that the object body and KServe v2
// share. DecodeInputs, EncodeOutputs and ExampleInputs serve a method of
// any number of inputs by an API's IO kind, so a front end need not ask
// how many there are.

// BodyKind is how a body for a method whose inputs are specs is read when
// no API says (the workbench's method targets, benchtop bench in process):
// one input as its kind reads (engine.IOKindFor), several (or none) as an
// object keyed by input name.
func BodyKind(specs tensor.IOSpecs) engine.IOKind {
	if len(specs) == 1 {
		return engine.IOKindFor(specs[0].Kind)
	}
	return engine.IOObject
}

// DecodeInputs reads body as an API of that kind passes it to a method
// whose inputs are specs: a value per input in the spec's order, the zero
// Value for an optional input left out. An object body is DecodeObject;
// any other kind carries the method's one input, read by Decode.
//
// Like Decode it is the one rule for every front end, and its errors match
// engine.ErrInvalidInput, except a kind that cannot carry the method's
// inputs at all, which engine.CheckAPI keeps out of a config.
func DecodeInputs(kind engine.IOKind, specs tensor.IOSpecs, body []byte) ([]tensor.Value, error) {
	if kind == engine.IOObject {
		return DecodeObject(specs, body)
	}
	if len(specs) != 1 {
		return nil, fmt.Errorf("a %s body carries one value, but the method takes %d inputs (%s): use %s", kind, len(specs), specs.Names(), engine.IOObject)
	}
	v, err := Decode(kind, specs[0], body)
	if err != nil {
		return nil, err
	}
	return []tensor.Value{v}, nil
}

// DecodeObject reads body as a JSON object keyed by input name into a value
// per input of specs, in the spec's order. Each member is read as its
// input's kind reads it: a tensor as a JSON nested list (a bare scalar for
// rank 0) checked against the spec's dtype and shape as DecodeNDArray
// checks it, a text as a JSON string, a JSON input as any document. An
// optional input may be left out or sent as null (the zero Value). Every
// name must be an input's, once; every required input must be there.
// Errors name the input, match engine.ErrInvalidInput, and give byte
// offsets from the start of the body.
//
// Whether the batched inputs agree on their rows is the engine's check,
// made where the values are run.
func DecodeObject(specs tensor.IOSpecs, body []byte) ([]tensor.Value, error) {
	set := NewNamedValues(specs)
	err := scanObject(body, func(name string, start, end int) error {
		i, err := set.Index(name)
		if err != nil {
			return err
		}
		v, err := decodeMember(specs[i], body, start, end)
		if err != nil {
			return err
		}
		return set.Set(i, v)
	})
	if err != nil {
		return nil, engine.InvalidInput(err)
	}
	return set.Values()
}

// NamedValues gathers a method's inputs by name into the spec's order: the
// one rule for the object body and KServe v2 infer, so that both refuse an
// unknown, repeated or missing input with the same words. Errors match
// engine.ErrInvalidInput.
type NamedValues struct {
	specs tensor.IOSpecs
	vals  []tensor.Value
	seen  []bool
}

// NewNamedValues starts gathering values for specs.
func NewNamedValues(specs tensor.IOSpecs) *NamedValues {
	return &NamedValues{specs: specs, vals: make([]tensor.Value, len(specs)), seen: make([]bool, len(specs))}
}

// Index is the position of the input called name; an error if there is
// none, or if a value for it was already given.
func (s *NamedValues) Index(name string) (int, error) {
	i := s.specs.Index(name)
	if i < 0 {
		return -1, engine.InvalidInput(fmt.Errorf("unknown input %q (%s)", name, inputList(s.specs)))
	}
	if s.seen[i] {
		return -1, engine.InvalidInput(fmt.Errorf("input %q is given twice", name))
	}
	return i, nil
}

// Set gives input i its value; the zero Value leaves an optional input
// out, and is refused for a required one.
func (s *NamedValues) Set(i int, v tensor.Value) error {
	s.seen[i] = true
	if v.Kind() == tensor.KindInvalid && !s.specs[i].Optional {
		return engine.InvalidInput(fmt.Errorf("input %q is null, but it is required (%s)", s.specs[i].Name, inputList(s.specs)))
	}
	s.vals[i] = v
	return nil
}

// Values is a value per input, in the spec's order; an error names the
// first required input that was not given.
func (s *NamedValues) Values() ([]tensor.Value, error) {
	for i, sp := range s.specs {
		if !s.seen[i] && !sp.Optional {
			return nil, engine.InvalidInput(fmt.Errorf("missing input %q (%s)", sp.Name, inputList(s.specs)))
		}
	}
	return s.vals, nil
}

// inputList is what a method takes, for messages: "inputs: texts,
// threshold (optional)".
func inputList(specs tensor.IOSpecs) string {
	if len(specs) == 0 {
		return "the method takes no input"
	}
	var b strings.Builder
	b.WriteString("inputs: ")
	for i, s := range specs {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(s.Name)
		if s.Optional {
			b.WriteString(" (optional)")
		}
	}
	return b.String()
}

// decodeMember reads body[start:end], the value of spec's member, as
// spec's kind reads it; null is the zero Value.
func decodeMember(spec tensor.IOSpec, body []byte, start, end int) (tensor.Value, error) {
	raw := body[start:end]
	if string(raw) == "null" {
		return tensor.Value{}, nil
	}
	switch spec.Kind {
	case tensor.KindText:
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return tensor.Value{}, fmt.Errorf("input %q: the value at byte %d is not a JSON string: it takes text", spec.Name, start)
		}
		return tensor.TextValue(s), nil
	case tensor.KindJSON:
		var doc any
		if err := json.Unmarshal(raw, &doc); err != nil {
			return tensor.Value{}, fmt.Errorf("input %q: the value at byte %d is not valid JSON: %w", spec.Name, start, err)
		}
		return tensor.JSONValue(doc), nil
	}
	t, err := decodeNDArrayAt(spec, body, start, end)
	if err != nil {
		return tensor.Value{}, err
	}
	return tensor.TensorValue(t), nil
}

// decodeNDArrayAt is DecodeNDArray of body[start:end], its messages led by
// the input's name and its byte offsets counted from the start of body.
func decodeNDArrayAt(spec tensor.IOSpec, body []byte, start, end int) (*tensor.Tensor, error) {
	op := fmt.Sprintf("input %q", spec.Name)
	if spec.DType != tensor.DTypeInvalid {
		if err := spec.DType.Validate(); err != nil {
			return nil, fmt.Errorf("%s: spec %w", op, err)
		}
	}
	d := newNDDecoder(op, body[start:end], spec.DType, -1)
	d.data, d.pos = body[:end], start // offsets from the start of the body
	if err := d.run(); err != nil {
		return nil, err
	}
	t, err := d.tensor(d.shape[:d.rank])
	if err != nil {
		return nil, err
	}
	if err := spec.Check(tensor.TensorValue(t)); err != nil {
		return nil, fmt.Errorf("%s: %w (it takes %s)", op, err, spec)
	}
	return t, nil
}

// scanObject walks a JSON object's members, calling member with each name
// and the bounds of its value. It checks the object's own syntax and finds
// where each value ends; each value's decoder checks the value. Nothing is
// copied, so a large tensor is read once, by its decoder.
func scanObject(body []byte, member func(name string, start, end int) error) error {
	syntax := func(pos int, want string) error {
		return (&ndDecoder{data: body, op: "body"}).syntaxErr(pos, want)
	}
	i := skipJSONSpace(body, 0)
	if i == len(body) || body[i] != '{' {
		if i == len(body) {
			return syntax(i, "a JSON object keyed by input name")
		}
		return fmt.Errorf("body is %s, want a JSON object keyed by input name, such as {\"input_ids\": [[1, 2]], \"attention_mask\": [[1, 1]]}", (&ndDecoder{data: body}).describeAt(i))
	}
	i = skipJSONSpace(body, i+1)
	if i < len(body) && body[i] == '}' {
		return trailing(body, i+1, syntax)
	}
	for {
		if i == len(body) || body[i] != '"' {
			return syntax(i, "an input name in double quotes")
		}
		j, ok := skipJSONString(body, i)
		if !ok {
			return syntax(len(body), "the end of the name that starts at byte "+fmt.Sprint(i))
		}
		name, err := memberName(body[i:j])
		if err != nil {
			return fmt.Errorf("body: the name at byte %d: %w", i, err)
		}
		i = skipJSONSpace(body, j)
		if i == len(body) || body[i] != ':' {
			return syntax(i, "':' after the name")
		}
		start := skipJSONSpace(body, i+1)
		end, ok := scanJSONValue(body, start)
		if !ok || end == start {
			return syntax(end, fmt.Sprintf("the value of %q", name))
		}
		if err := member(name, start, end); err != nil {
			return err
		}
		i = skipJSONSpace(body, end)
		switch {
		case i < len(body) && body[i] == ',':
			i = skipJSONSpace(body, i+1)
		case i < len(body) && body[i] == '}':
			return trailing(body, i+1, syntax)
		default:
			return syntax(i, "',' or '}'")
		}
	}
}

// trailing refuses anything but space after the object that ends at i.
func trailing(body []byte, i int, syntax func(int, string) error) error {
	if i = skipJSONSpace(body, i); i != len(body) {
		return syntax(i, "end of input after the object")
	}
	return nil
}

// memberName decodes a quoted name: most are plain and cost a copy; one
// with escapes, control bytes or invalid UTF-8 goes through encoding/json,
// which decodes the first and refuses the second.
func memberName(quoted []byte) (string, error) {
	inner := quoted[1 : len(quoted)-1]
	plain := utf8.Valid(inner)
	for _, c := range inner {
		if c < 0x20 || c == '\\' {
			plain = false
			break
		}
	}
	if plain {
		return string(inner), nil
	}
	var s string
	if err := json.Unmarshal(quoted, &s); err != nil {
		return "", err
	}
	return s, nil
}

func skipJSONSpace(b []byte, i int) int {
	for i < len(b) && isJSONSpace(b[i]) {
		i++
	}
	return i
}

// skipJSONString returns the end of the string that opens at b[i], just
// past its closing quote; ok is false if it never closes.
func skipJSONString(b []byte, i int) (int, bool) {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1, true
		}
	}
	return len(b), false
}

// scanJSONValue returns the end of the value that starts at b[i]: a string
// to its closing quote, a list or object to its closing bracket (counting
// brackets outside strings), anything else up to the next delimiter. It
// checks only what finding the end needs; ok is false if a string or
// bracket never closes.
func scanJSONValue(b []byte, i int) (end int, ok bool) {
	if end, ok := scanPlainList(b, i); ok {
		return end, true
	}
	depth := 0
	for i < len(b) {
		switch c := b[i]; c {
		case '"':
			j, ok := skipJSONString(b, i)
			if !ok {
				return j, false
			}
			if depth == 0 {
				return j, true
			}
			i = j
			continue
		case '[', '{':
			depth++
		case ']', '}':
			if depth == 0 {
				return i, true
			}
			if depth--; depth == 0 {
				return i + 1, true
			}
		case ',':
			if depth == 0 {
				return i, true
			}
		default:
			if depth == 0 && isJSONSpace(c) {
				return i, true
			}
		}
		i++
	}
	return i, depth == 0
}

// scanPlainList finds the end of the list that opens at b[i] when nothing
// in it is a string or an object — a numeric or bool tensor, the bulk of
// most bodies — jumping from one ']' to the next with vectorised searches,
// several times faster than looking at every byte. ok is false when the
// value is not such a list, or does not close; scanJSONValue then looks at
// every byte.
func scanPlainList(b []byte, i int) (end int, ok bool) {
	if i >= len(b) || b[i] != '[' {
		return 0, false
	}
	depth := 0
	for {
		j := bytes.IndexByte(b[i:], ']')
		if j < 0 {
			return 0, false
		}
		seg := b[i : i+j]
		if bytes.IndexByte(seg, '"') >= 0 || bytes.IndexByte(seg, '{') >= 0 || bytes.IndexByte(seg, '}') >= 0 {
			return 0, false
		}
		depth += bytes.Count(seg, []byte{'['}) - 1
		i += j + 1
		if depth <= 0 {
			return i, depth == 0
		}
	}
}

// EncodeOutputs writes a method's outputs, a value per spec, as the
// response body of an API whose output is of that kind, with its content
// type: an object keyed by output name (EncodeObject), or the method's one
// output by Encode.
func EncodeOutputs(kind engine.IOKind, specs tensor.IOSpecs, outs []tensor.Value) (contentType string, body []byte, err error) {
	if kind == engine.IOObject {
		body, err := EncodeObject(specs, outs)
		return "application/json", body, err
	}
	if len(outs) != 1 {
		return "", nil, fmt.Errorf("the method returned %d outputs (%s), but a %s body carries one: the api's output should be %s", len(outs), specs.Names(), kind, engine.IOObject)
	}
	return Encode(kind, outs[0])
}

// EncodeObject writes values, one per spec, as a JSON object keyed by the
// specs' names in their order, ending in a newline: a tensor as a nested
// list (a bare scalar for rank 0), a text as a JSON string, a JSON value
// as itself. A zero Value (an optional input left out) is left out.
// DecodeObject reads it back.
func EncodeObject(specs tensor.IOSpecs, vals []tensor.Value) ([]byte, error) {
	if len(vals) != len(specs) {
		return nil, fmt.Errorf("encode object: %d values for %d names (%s)", len(vals), len(specs), specs.Names())
	}
	size := 16
	for i := range vals {
		if t := vals[i].Tensor(); t != nil {
			size += ndSizeHint(t)
		}
	}
	b := make([]byte, 0, size)
	b = append(b, '{')
	first := true
	for i, v := range vals {
		if v.Kind() == tensor.KindInvalid {
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = ndAppendString(b, specs[i].Name)
		b = append(b, ':')
		switch v.Kind() {
		case tensor.KindTensor:
			b = AppendNDArray(b, v.Tensor())
		case tensor.KindText:
			b = ndAppendString(b, v.Text())
		default:
			doc, err := json.Marshal(v.JSON())
			if err != nil {
				return nil, fmt.Errorf("encode %q: %w", specs[i].Name, err)
			}
			b = append(b, doc...)
		}
	}
	return append(b, '}', '\n'), nil
}

// ExampleInputs is a valid request body for an API of that kind over a
// method whose inputs are specs, with its content type: ExampleObject for
// an object body, Example of the one input otherwise. DecodeInputs accepts
// it wherever the kind fits the method, as CheckAPI makes sure it does.
func ExampleInputs(kind engine.IOKind, specs tensor.IOSpecs) (contentType, body string) {
	if kind == engine.IOObject || len(specs) != 1 {
		return "application/json", ExampleObject(specs)
	}
	return Example(kind, specs[0])
}

// ExampleObject is a JSON object with an example for every input of specs,
// optional ones too (ExampleValues), written compactly.
func ExampleObject(specs tensor.IOSpecs) string {
	b, err := EncodeObject(specs, ExampleValues(specs))
	if err != nil {
		return "{}"
	}
	return strings.TrimSuffix(string(b), "\n")
}

// ExampleValues is a value per input of specs that together pass the
// method's checks: ExampleValue of each, except that a mask (IsMask) is
// all ones, so that no row is wholly masked out. Batched inputs agree on
// their rows because ExampleValue sizes every open dim 0 alike.
func ExampleValues(specs tensor.IOSpecs) []tensor.Value {
	vals := make([]tensor.Value, len(specs))
	for i, s := range specs {
		vals[i] = ExampleValue(s)
		if t := vals[i].Tensor(); t != nil && IsMask(s) {
			vals[i] = tensor.TensorValue(ones(t))
		}
	}
	return vals
}

// IsMask reports whether an input is an attention or padding mask by the
// convention models follow: an integer or bool tensor whose name contains
// "mask". Examples and generated loads fill it with 0 and 1 (1 for the
// tokens to attend to) rather than counting values.
func IsMask(spec tensor.IOSpec) bool {
	switch spec.DType {
	case tensor.Int32, tensor.Int64, tensor.Uint8, tensor.Bool:
		return spec.Kind == tensor.KindTensor && strings.Contains(strings.ToLower(spec.Name), "mask")
	}
	return false
}

// ones is a tensor like t whose every element is 1 (true).
func ones(t *tensor.Tensor) *tensor.Tensor {
	o, err := tensor.Zeros(t.DType(), t.Shape())
	if err != nil {
		return t
	}
	switch t.DType() {
	case tensor.Int32:
		for i := range o.Int32s() {
			o.Int32s()[i] = 1
		}
	case tensor.Int64:
		for i := range o.Int64s() {
			o.Int64s()[i] = 1
		}
	default: // uint8 and bool: one byte each
		for i := range o.Bytes() {
			o.Bytes()[i] = 1
		}
	}
	return o
}
