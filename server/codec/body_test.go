package codec_test

import (
	"errors"
	"testing"

	"github.com/benchtop/benchtop/engine"
	"github.com/benchtop/benchtop/engine/tensor"
	"github.com/benchtop/benchtop/server/codec"
)

var (
	textSpec  = tensor.IOSpec{Kind: tensor.KindText}
	jsonSpec  = tensor.IOSpec{Kind: tensor.KindJSON}
	rowsSpec  = tensor.IOSpec{Kind: tensor.KindTensor, DType: tensor.Float32, Shape: []int{-1, 2}}
	wordsSpec = tensor.IOSpec{Kind: tensor.KindTensor, DType: tensor.String, Shape: []int{-1}}
	anySpec   = tensor.IOSpec{}
)

// TestDecode is the rule every front end reads a body by: the HTTP API,
// the workbench's test input and benchtop bench in process all call
// Decode, so these cases are what each of them accepts and refuses, and
// the words it refuses with.
func TestDecode(t *testing.T) {
	tests := []struct {
		name string
		kind engine.IOKind
		spec tensor.IOSpec
		body string
		want string // the value's summary, or the error
		ok   bool
	}{
		{"text", engine.IOText, textSpec, "I love this!", `text "I love this!"`, true},
		{"text, multi-byte", engine.IOText, textSpec, "naïve ✓", `text "naïve ✓"`, true},
		// Empty text decodes: whether it means anything is the method's call.
		{"text, empty", engine.IOText, textSpec, "", `text ""`, true},
		{"text, not UTF-8", engine.IOText, textSpec, "caf\xe9", "body is not valid UTF-8 text", false},
		{"text, a lone continuation byte", engine.IOText, textSpec, "\x80", "body is not valid UTF-8 text", false},

		{"ndarray", engine.IONDArray, rowsSpec, "[[1, 2], [3, 4]]", "tensor float32[2 2]", true},
		// An empty list has one dim, so it never fits a rank-2 signature.
		{"ndarray, empty list", engine.IONDArray, rowsSpec, "[]",
			"ndarray: shape [0] has 1 dims, want 2 ([-1 2]) (this api takes tensor float32[-1 2] as a JSON nested list)", false},
		{"ndarray, strings", engine.IONDArray, wordsSpec, `["good", "bad"]`, "tensor string[2]", true},
		{"ndarray, any spec infers", engine.IONDArray, anySpec, "[[1, 2.5]]", "tensor float64[1 2]", true},
		{"ndarray, wrong width", engine.IONDArray, rowsSpec, "[[1, 2, 3]]",
			"ndarray: shape [1 3]: dim 1 is 3, want 2 (this api takes tensor float32[-1 2] as a JSON nested list)", false},
		{"ndarray, wrong rank", engine.IONDArray, rowsSpec, "[1, 2]",
			"ndarray: shape [2] has 1 dims, want 2 ([-1 2]) (this api takes tensor float32[-1 2] as a JSON nested list)", false},
		{"ndarray, ragged", engine.IONDArray, rowsSpec, "[[1, 2], [3]]",
			"ndarray: row [1] has 1 elements, want 2 (every row must have the same length) (this api takes tensor float32[-1 2] as a JSON nested list)", false},
		{"ndarray, wrong element", engine.IONDArray, rowsSpec, `[["a", 2]]`,
			`ndarray: element [0 0] is "a", want a number (float32) (this api takes tensor float32[-1 2] as a JSON nested list)`, false},
		{"ndarray, truncated", engine.IONDArray, rowsSpec, "[[1,",
			"ndarray: invalid JSON at byte 4: unexpected end of input, want a value (this api takes tensor float32[-1 2] as a JSON nested list)", false},
		{"ndarray, an object", engine.IONDArray, rowsSpec, `{"x": [1, 2]}`,
			"ndarray: the value is a JSON object, want a nested list such as [[1,2],[3,4]] (or a bare scalar) (this api takes tensor float32[-1 2] as a JSON nested list)", false},
		{"ndarray, empty body", engine.IONDArray, rowsSpec, "",
			"ndarray: invalid JSON at byte 0: unexpected end of input, want a value (this api takes tensor float32[-1 2] as a JSON nested list)", false},

		{"json object", engine.IOJSON, jsonSpec, `{"text": "hi"}`, "json {1 key}", true},
		{"json array", engine.IOJSON, jsonSpec, `[1, "a", null]`, "json [3 items]", true},
		{"json scalar", engine.IOJSON, jsonSpec, `"hi"`, `json "hi"`, true},
		// encoding/json's rule for strings: invalid UTF-8 becomes U+FFFD.
		{"json, invalid UTF-8 in a string", engine.IOJSON, jsonSpec, "\"caf\xe9\"", `json "caf` + "\uFFFD" + `"`, true},
		{"json, truncated", engine.IOJSON, jsonSpec, `{"text"`, "body is not valid JSON: unexpected end of JSON input", false},
		{"json, trailing data", engine.IOJSON, jsonSpec, `{} {}`, "body is not valid JSON: invalid character '{' after top-level value", false},
		{"json, empty body", engine.IOJSON, jsonSpec, "", "body is not valid JSON: unexpected end of JSON input", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v, err := codec.Decode(tc.kind, tc.spec, []byte(tc.body))
			if !tc.ok {
				if err == nil {
					t.Fatalf("Decode(%s, %q) = %s, want an error", tc.kind, tc.body, v)
				}
				if !errors.Is(err, engine.ErrInvalidInput) {
					t.Errorf("error %q does not match engine.ErrInvalidInput, so HTTP would not answer 400", err)
				}
				if err.Error() != tc.want {
					t.Errorf("error\n got %q\nwant %q", err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatalf("Decode(%s, %q): %v", tc.kind, tc.body, err)
			}
			if got := v.String(); got != tc.want {
				t.Errorf("value %s, want %s", got, tc.want)
			}
		})
	}
}

func TestEncode(t *testing.T) {
	rows, err := tensor.NewTensor([]int{2, 2}, []float32{1, 2.5, 3, 4})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		kind     engine.IOKind
		v        tensor.Value
		ct, body string
	}{
		{"text", engine.IOText, tensor.TextValue("hi"), "text/plain; charset=utf-8", "hi"},
		{"text api, tensor value", engine.IOText, tensor.TensorValue(rows), "text/plain; charset=utf-8", "tensor float32[2 2]"},
		{"ndarray", engine.IONDArray, tensor.TensorValue(rows), "application/json", "[[1.0,2.5],[3.0,4.0]]\n"},
		{"json", engine.IOJSON, tensor.JSONValue(map[string]any{"positive": true}), "application/json", `{"positive":true}` + "\n"},
		{"json api, text value", engine.IOJSON, tensor.TextValue("hi"), "application/json", `"hi"` + "\n"},
		{"json api, tensor value", engine.IOJSON, tensor.TensorValue(rows), "application/json", "[[1.0,2.5],[3.0,4.0]]\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ct, body, err := codec.Encode(tc.kind, tc.v)
			if err != nil {
				t.Fatal(err)
			}
			if ct != tc.ct || string(body) != tc.body {
				t.Errorf("got %s %q, want %s %q", ct, body, tc.ct, tc.body)
			}
		})
	}
	if _, _, err := codec.Encode(engine.IONDArray, tensor.TextValue("hi")); err == nil {
		t.Error("an ndarray api encoded a text value")
	}
	if _, _, err := codec.Encode(engine.IOJSON, tensor.JSONValue(func() {})); err == nil {
		t.Error("a json api encoded a func")
	}
}

// TestExampleDecodes: every example a front end offers is a body the same
// front ends accept, for each kind an API or a method target can have.
func TestExampleDecodes(t *testing.T) {
	specs := []tensor.IOSpec{
		textSpec, jsonSpec, rowsSpec, wordsSpec,
		{Kind: tensor.KindTensor},
		{Kind: tensor.KindTensor, DType: tensor.Bool, Shape: []int{3}},
		{Kind: tensor.KindTensor, DType: tensor.Int64, Shape: []int{-1, 2, -1}},
	}
	for _, spec := range specs {
		kind := engine.IOKindFor(spec.Kind)
		t.Run(spec.String(), func(t *testing.T) {
			ct, body := codec.Example(kind, spec)
			if ct != codec.ContentType(kind) {
				t.Errorf("content type %s, want %s", ct, codec.ContentType(kind))
			}
			v, err := codec.Decode(kind, spec, []byte(body))
			if err != nil {
				t.Fatalf("example %q does not decode: %v", body, err)
			}
			if err := spec.Check(v); err != nil {
				t.Errorf("example %q decodes to %s, which does not fit: %v", body, v, err)
			}
		})
	}
}

// TestExample pins the bodies users copy from GET / and the OpenAPI
// document.
func TestExample(t *testing.T) {
	tests := []struct {
		kind     engine.IOKind
		spec     tensor.IOSpec
		ct, body string
	}{
		{engine.IOText, textSpec, "text/plain", "I love this!"},
		{engine.IOJSON, jsonSpec, "application/json", `{"text":"I love this!"}`},
		{engine.IONDArray, rowsSpec, "application/json", "[[0.1,0.2],[0.3,0.4]]"},
		{engine.IONDArray, anySpec, "application/json", "[[0.1,0.2,0.3,0.4]]"},
	}
	for _, tc := range tests {
		if ct, body := codec.Example(tc.kind, tc.spec); ct != tc.ct || body != tc.body {
			t.Errorf("Example(%s, %s) = %s %q, want %s %q", tc.kind, tc.spec, ct, body, tc.ct, tc.body)
		}
	}
}
