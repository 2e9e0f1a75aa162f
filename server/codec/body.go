package codec

import (
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/benchtop/benchtop/engine"
	"github.com/benchtop/benchtop/engine/tensor"
)

// ContentType is the media type of a request body of that kind.
func ContentType(kind engine.IOKind) string {
	if kind == engine.IOText {
		return "text/plain"
	}
	return "application/json"
}

// Decode reads body as the value that an API of that kind passes to a
// method whose input is spec: text must be valid UTF-8, an ndarray must be
// a JSON nested list that fits spec's dtype and shape (DecodeNDArray), and
// json may be any JSON document. The engine checks the rest when it runs
// the value.
//
// It is the one rule for the HTTP front end, the workbench's test input and
// benchtop bench in process, so all three accept and refuse the same
// bodies with the same words. Errors match engine.ErrInvalidInput, so the
// HTTP front end answers them with 400.
func Decode(kind engine.IOKind, spec tensor.IOSpec, body []byte) (tensor.Value, error) {
	switch kind {
	case engine.IOText:
		if !utf8.Valid(body) {
			return tensor.Value{}, engine.InvalidInput(errors.New("body is not valid UTF-8 text"))
		}
		return tensor.TextValue(string(body)), nil
	case engine.IONDArray:
		t, err := DecodeNDArray(body, spec)
		if err != nil {
			return tensor.Value{}, engine.InvalidInput(fmt.Errorf("%w (this api takes %s as a JSON nested list)", err, spec))
		}
		return tensor.TensorValue(t), nil
	}
	var doc any
	if err := json.Unmarshal(body, &doc); err != nil {
		return tensor.Value{}, engine.InvalidInput(fmt.Errorf("body is not valid JSON: %w", err))
	}
	return tensor.JSONValue(doc), nil
}

// Encode writes v as the response body of an API whose output is of that
// kind, with its content type. Text is written as is (any other value as
// its summary, since a text API promised text); an ndarray as a JSON nested
// list, failing if v is not a tensor; json as a JSON document, a text
// becoming a JSON string and a tensor a nested list. JSON bodies end in a
// newline, as curl users expect.
func Encode(kind engine.IOKind, v tensor.Value) (contentType string, body []byte, err error) {
	switch kind {
	case engine.IOText:
		if v.Kind() == tensor.KindText {
			return "text/plain; charset=utf-8", []byte(v.Text()), nil
		}
		return "text/plain; charset=utf-8", []byte(v.String()), nil
	case engine.IONDArray:
		t := v.Tensor()
		if t == nil {
			return "", nil, fmt.Errorf("the method returned %s, not a tensor: the api's output should not be ndarray", v)
		}
		return "application/json", append(AppendNDArray(make([]byte, 0, 16+8*t.Len()), t), '\n'), nil
	}
	var payload any = v.JSON()
	switch v.Kind() {
	case tensor.KindText:
		payload = v.Text()
	case tensor.KindTensor:
		payload = json.RawMessage(AppendNDArray(nil, v.Tensor()))
	}
	b, err := json.Marshal(payload)
	if err != nil {
		return "", nil, fmt.Errorf("encode response: %w", err)
	}
	return "application/json", append(b, '\n'), nil
}

// Example is a valid request body for an API of that kind over a method
// whose input is spec, with its content type: ExampleValue(spec) written
// compactly, for a curl line, the OpenAPI document or the workbench's test
// input. Decode accepts it wherever spec fits the kind, as CheckAPI makes
// sure it does for an API.
func Example(kind engine.IOKind, spec tensor.IOSpec) (contentType, body string) {
	v := ExampleValue(spec)
	switch kind {
	case engine.IOText:
		return ContentType(kind), v.Text()
	case engine.IONDArray:
		if t := v.Tensor(); t != nil {
			return ContentType(kind), string(AppendNDArray(nil, t))
		}
	}
	b, _ := json.Marshal(v.JSON())
	return "application/json", string(b)
}
