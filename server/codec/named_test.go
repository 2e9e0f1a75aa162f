package codec_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/benchtop/benchtop/engine"
	"github.com/benchtop/benchtop/engine/tensor"
	"github.com/benchtop/benchtop/server/codec"
)

// classifySpecs is sentiment.classify's signature: a batched string input,
// an optional unbatched rank-0 threshold.
var classifySpecs = tensor.IOSpecs{
	{Name: "texts", Kind: tensor.KindTensor, DType: tensor.String, Shape: []int{-1}},
	{Name: "threshold", Kind: tensor.KindTensor, DType: tensor.Float32, Shape: []int{}, Unbatched: true, Optional: true},
}

// tokenSpecs is a text classifier's: token ids and their mask.
var tokenSpecs = tensor.IOSpecs{
	{Name: "input_ids", Kind: tensor.KindTensor, DType: tensor.Int64, Shape: []int{-1, -1}},
	{Name: "attention_mask", Kind: tensor.KindTensor, DType: tensor.Int64, Shape: []int{-1, -1}},
}

// mixedSpecs has one slot of each kind.
var mixedSpecs = tensor.IOSpecs{
	{Name: "prompt", Kind: tensor.KindText},
	{Name: "options", Kind: tensor.KindJSON, Optional: true},
	{Name: "flags", Kind: tensor.KindTensor, DType: tensor.Bool, Shape: []int{-1}},
}

// summary is the values as the tests compare them: each value's String,
// "absent" for the zero Value.
func summary(vals []tensor.Value) string {
	parts := make([]string, len(vals))
	for i, v := range vals {
		parts[i] = "absent"
		if v.Kind() != tensor.KindInvalid {
			parts[i] = v.String()
		}
	}
	return strings.Join(parts, "; ")
}

// TestDecodeObject is the rule an object body is read by, wherever it
// comes from: an API of a method of several inputs, the workbench's test
// input, benchtop bench in process.
func TestDecodeObject(t *testing.T) {
	tests := []struct {
		name  string
		specs tensor.IOSpecs
		body  string
		want  string // the values' summary, or the error
		ok    bool
	}{
		{"both inputs", classifySpecs, `{"texts": ["good", "bad"], "threshold": 0.5}`, "tensor string[2]; tensor float32[]", true},
		{"members in any order", classifySpecs, `{"threshold": 0.5, "texts": ["good"]}`, "tensor string[1]; tensor float32[]", true},
		{"optional left out", classifySpecs, `{"texts": ["good"]}`, "tensor string[1]; absent", true},
		{"optional as null", classifySpecs, `{"texts": ["good"], "threshold": null}`, "tensor string[1]; absent", true},
		{"space everywhere", classifySpecs, " \n{ \"texts\" : [ \"good\" ] } \n", "tensor string[1]; absent", true},
		{"escaped name", classifySpecs, `{"t\u0065xts": ["good"]}`, "tensor string[1]; absent", true},
		{"two int64 inputs", tokenSpecs, `{"input_ids": [[1, 2, 3]], "attention_mask": [[1, 1, 0]]}`, "tensor int64[1 3]; tensor int64[1 3]", true},
		// Rows are the engine's to compare: the codec reads each input alone.
		{"rows disagree (the engine's check)", tokenSpecs, `{"input_ids": [[1, 2]], "attention_mask": [[1, 1], [1, 0]]}`, "tensor int64[1 2]; tensor int64[2 2]", true},
		{"text, json and bool", mixedSpecs, `{"prompt": "hi, \"you\"", "options": {"k": [1, "}"]}, "flags": [true, false]}`,
			`text "hi, \"you\""; json {1 key}; tensor bool[2]`, true},
		{"a string holding brackets", classifySpecs, `{"texts": ["]}", "{["]}`, "tensor string[2]; absent", true},

		{"unknown input", classifySpecs, `{"texts": ["good"], "treshold": 0.5}`, `unknown input "treshold" (inputs: texts, threshold (optional))`, false},
		{"input given twice", classifySpecs, `{"texts": ["good"], "texts": ["bad"]}`, `input "texts" is given twice`, false},
		{"missing required", classifySpecs, `{"threshold": 0.5}`, `missing input "texts" (inputs: texts, threshold (optional))`, false},
		{"required as null", classifySpecs, `{"texts": null}`, `input "texts" is null, but it is required (inputs: texts, threshold (optional))`, false},
		{"empty object", tokenSpecs, `{}`, `missing input "input_ids" (inputs: input_ids, attention_mask)`, false},
		{"wrong dtype", tokenSpecs, `{"input_ids": [[1.5]], "attention_mask": [[1]]}`, `input "input_ids": 1.5 at [0 0] is not an integer, want int64`, false},
		{"string for a number", tokenSpecs, `{"input_ids": [["a"]], "attention_mask": [[1]]}`, `input "input_ids": element [0 0] is "a", want an integer (int64)`, false},
		{"wrong rank", tokenSpecs, `{"input_ids": [1, 2], "attention_mask": [[1]]}`, `input "input_ids": shape [2] has 1 dims, want 2 ([-1 -1]) (it takes tensor int64[-1 -1])`, false},
		{"a list for a scalar", classifySpecs, `{"texts": ["a"], "threshold": [0.5]}`, `input "threshold": shape [1] has 1 dims, want 0 ([]) (it takes tensor float32[])`, false},
		{"a number for text", mixedSpecs, `{"prompt": 3, "flags": [true]}`, `input "prompt": the value at byte 11 is not a JSON string: it takes text`, false},
		{"bad JSON inside a member, offset in the body", tokenSpecs, `{"input_ids": [[1, ]], "attention_mask": [[1]]}`,
			`input "input_ids": invalid JSON at byte 19: unexpected ']', want a value`, false},
		{"a list, not an object", tokenSpecs, `[[1, 2]]`, `body is a list, want a JSON object keyed by input name, such as {"input_ids": [[1, 2]], "attention_mask": [[1, 1]]}`, false},
		{"empty body", tokenSpecs, ``, `body: invalid JSON at byte 0: unexpected end of input, want a JSON object keyed by input name`, false},
		{"cut short", tokenSpecs, `{"input_ids": [[1]]`, `body: invalid JSON at byte 19: unexpected end of input, want ',' or '}'`, false},
		{"unclosed list", tokenSpecs, `{"input_ids": [[1]`, `body: invalid JSON at byte 18: unexpected end of input, want the value of "input_ids"`, false},
		{"no colon", tokenSpecs, `{"input_ids" [[1]]}`, `body: invalid JSON at byte 13: unexpected '[', want ':' after the name`, false},
		{"no value", tokenSpecs, `{"input_ids": }`, `body: invalid JSON at byte 14: unexpected '}', want the value of "input_ids"`, false},
		{"unquoted name", tokenSpecs, `{input_ids: [[1]]}`, `body: invalid JSON at byte 1: unexpected 'i', want an input name in double quotes`, false},
		{"a control byte in a name", classifySpecs, "{\"te\nxts\": [\"a\"]}", `body: the name at byte 1: invalid character '\n' in string literal`, false},
		{"trailing comma", tokenSpecs, `{"input_ids": [[1]],}`, `body: invalid JSON at byte 20: unexpected '}', want an input name in double quotes`, false},
		{"trailing data", classifySpecs, `{"texts": ["a"]} {}`, `body: invalid JSON at byte 17: unexpected '{', want end of input after the object`, false},
		{"two values in a member", classifySpecs, `{"texts": ["a"] ["b"]}`, `body: invalid JSON at byte 16: unexpected '[', want ',' or '}'`, false},
		{"bad json member", mixedSpecs, `{"prompt": "a", "options": {"k": tru}, "flags": [true]}`, `input "options": the value at byte 27 is not valid JSON: invalid character '}' in literal true (expecting 'e')`, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			vals, err := codec.DecodeObject(tc.specs, []byte(tc.body))
			if !tc.ok {
				if err == nil {
					t.Fatalf("DecodeObject(%q) = %s, want an error", tc.body, summary(vals))
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
				t.Fatalf("DecodeObject(%q): %v", tc.body, err)
			}
			if got := summary(vals); got != tc.want {
				t.Errorf("values %s, want %s", got, tc.want)
			}
		})
	}
}

// TestDecodeInputs: an object body for a method of any inputs, any other
// kind for the one input of a method, read as Decode reads it.
func TestDecodeInputs(t *testing.T) {
	one := tensor.IOSpecs{{Name: "input", Kind: tensor.KindTensor, DType: tensor.Float32, Shape: []int{-1, 2}}}
	vals, err := codec.DecodeInputs(engine.IONDArray, one, []byte(`[[1, 2]]`))
	if err != nil || summary(vals) != "tensor float32[1 2]" {
		t.Fatalf("ndarray: %s, %v", summary(vals), err)
	}
	vals, err = codec.DecodeInputs(engine.IOObject, one, []byte(`{"input": [[1, 2]]}`))
	if err != nil || summary(vals) != "tensor float32[1 2]" {
		t.Fatalf("object around one input: %s, %v", summary(vals), err)
	}
	_, want := codec.Decode(engine.IONDArray, one[0], []byte(`[[1]]`))
	if _, err := codec.DecodeInputs(engine.IONDArray, one, []byte(`[[1]]`)); err == nil || err.Error() != want.Error() {
		t.Fatalf("a refused ndarray: %v, want Decode's %v", err, want)
	}
	if _, err := codec.DecodeInputs(engine.IONDArray, classifySpecs, []byte(`["a"]`)); err == nil || !strings.Contains(err.Error(), "use object") {
		t.Fatalf("one body for two inputs: %v", err)
	}
}

func TestEncodeObject(t *testing.T) {
	positive, _ := tensor.NewTensor([]int{2}, []bool{true, false})
	scores, _ := tensor.NewTensor([]int{2}, []float32{0.5, -1})
	scalar, _ := tensor.NewTensor([]int{}, []float32{0.25})
	outs := tensor.IOSpecs{{Name: "positive"}, {Name: "scores"}}
	tests := []struct {
		name  string
		specs tensor.IOSpecs
		vals  []tensor.Value
		want  string
	}{
		{"two outputs", outs, []tensor.Value{tensor.TensorValue(positive), tensor.TensorValue(scores)}, `{"positive":[true,false],"scores":[0.5,-1.0]}` + "\n"},
		{"a rank-0 tensor", classifySpecs[1:], []tensor.Value{tensor.TensorValue(scalar)}, `{"threshold":0.25}` + "\n"},
		{"an absent optional is left out", classifySpecs, []tensor.Value{tensor.TensorValue(positive), {}}, `{"texts":[true,false]}` + "\n"},
		{"text and json", mixedSpecs[:2], []tensor.Value{tensor.TextValue("a \"b\""), tensor.JSONValue(map[string]any{"k": 1})}, `{"prompt":"a \"b\"","options":{"k":1}}` + "\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := codec.EncodeObject(tc.specs, tc.vals)
			if err != nil || string(got) != tc.want {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
	if _, err := codec.EncodeObject(outs, nil); err == nil {
		t.Fatal("no values for two names: no error")
	}
	ct, body, err := codec.EncodeOutputs(engine.IOObject, outs, []tensor.Value{tensor.TensorValue(positive), tensor.TensorValue(scores)})
	if err != nil || ct != "application/json" || !json.Valid(body) {
		t.Fatalf("EncodeOutputs object: %s %q %v", ct, body, err)
	}
	if _, _, err := codec.EncodeOutputs(engine.IONDArray, outs, []tensor.Value{tensor.TensorValue(positive), tensor.TensorValue(scores)}); err == nil || !strings.Contains(err.Error(), "should be object") {
		t.Fatalf("EncodeOutputs ndarray of two: %v", err)
	}
}

// TestObjectRoundTrip: what EncodeObject writes, DecodeObject reads back
// to the same values.
func TestObjectRoundTrip(t *testing.T) {
	for _, specs := range []tensor.IOSpecs{classifySpecs, tokenSpecs, mixedSpecs} {
		vals := codec.ExampleValues(specs)
		body, err := codec.EncodeObject(specs, vals)
		if err != nil {
			t.Fatal(err)
		}
		back, err := codec.DecodeObject(specs, body)
		if err != nil {
			t.Fatalf("%s: %v", body, err)
		}
		for i := range vals {
			if a, b := vals[i].Tensor(), back[i].Tensor(); a != nil && !a.Equal(b) {
				t.Errorf("%s: %s came back as %s", body, vals[i], back[i])
			}
		}
		if summary(back) != summary(vals) {
			t.Errorf("%s came back as %s, want %s", body, summary(back), summary(vals))
		}
	}
}

// TestExampleInputs: every example decodes, with every input present, and
// a mask is all ones.
func TestExampleInputs(t *testing.T) {
	tests := []struct {
		name  string
		kind  engine.IOKind
		specs tensor.IOSpecs
		want  string
	}{
		{"classify", engine.IOObject, classifySpecs, `{"texts":["I love this!","This is awful."],"threshold":0.1}`},
		{"tokens and mask", engine.IOObject, tokenSpecs, `{"input_ids":[[1,2,3,4],[5,6,7,8]],"attention_mask":[[1,1,1,1],[1,1,1,1]]}`},
		{"text, json, bool", engine.IOObject, mixedSpecs, `{"prompt":"I love this!","options":{"text":"I love this!"},"flags":[true,false]}`},
		{"one input, ndarray", engine.IONDArray, tokenSpecs[:1], `[[1,2,3,4],[5,6,7,8]]`},
		{"one input, object", engine.IOObject, tokenSpecs[:1], `{"input_ids":[[1,2,3,4],[5,6,7,8]]}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ct, body := codec.ExampleInputs(tc.kind, tc.specs)
			if ct != "application/json" || body != tc.want {
				t.Fatalf("got %s %s, want %s", ct, body, tc.want)
			}
			if _, err := codec.DecodeInputs(tc.kind, tc.specs, []byte(body)); err != nil {
				t.Fatalf("the example does not decode: %v", err)
			}
		})
	}
}

func TestBodyKind(t *testing.T) {
	for _, tc := range []struct {
		specs tensor.IOSpecs
		want  engine.IOKind
	}{
		{tensor.IOSpecs{{Kind: tensor.KindText}}, engine.IOText},
		{tensor.IOSpecs{{Kind: tensor.KindTensor}}, engine.IONDArray},
		{tensor.IOSpecs{{}}, engine.IONDArray},
		{classifySpecs, engine.IOObject},
		{nil, engine.IOObject},
	} {
		if got := codec.BodyKind(tc.specs); got != tc.want {
			t.Errorf("BodyKind(%s) = %s, want %s", tc.specs, got, tc.want)
		}
	}
}

// FuzzDecodeObject: any body either decodes into values that fit their
// specs or is refused as invalid input; it never panics. Whatever
// encoding/json calls invalid is refused.
func FuzzDecodeObject(f *testing.F) {
	for _, seed := range []string{
		`{"texts": ["good", "bad"], "threshold": 0.5}`, `{"prompt": "a", "flags": [true]}`,
		`{"input_ids": [[1, 2]], "attention_mask": [[1, 0]]}`, `{}`, `[`, `{"a": "\"}`, `{"texts": ["]}"]}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, specs := range []tensor.IOSpecs{classifySpecs, tokenSpecs, mixedSpecs} {
			vals, err := codec.DecodeObject(specs, body)
			if err != nil {
				if !errors.Is(err, engine.ErrInvalidInput) {
					t.Fatalf("error %q is not invalid input", err)
				}
				continue
			}
			if !json.Valid(body) {
				t.Fatalf("accepted invalid JSON %q", body)
			}
			for i, v := range vals {
				if v.Kind() == tensor.KindInvalid {
					if !specs[i].Optional {
						t.Fatalf("required input %q absent", specs[i].Name)
					}
					continue
				}
				if err := specs[i].Check(v); err != nil {
					t.Fatalf("input %q: %v", specs[i].Name, err)
				}
			}
		}
	})
}

// BenchmarkDecodeObject: an object body of two int64 [64 128] inputs
// against the same two read as ndarray bodies one by one, the object's
// own cost being the scan for where each member ends.
func BenchmarkDecodeObject(b *testing.B) {
	specs := tokenSpecs
	vals := make([]tensor.Value, 2)
	for i := range vals {
		xs := make([]int64, 64*128)
		for j := range xs {
			xs[j] = int64(j % 30000)
		}
		t, _ := tensor.NewTensor([]int{64, 128}, xs)
		vals[i] = tensor.TensorValue(t)
	}
	body, err := codec.EncodeObject(specs, vals)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("object", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			if _, err := codec.DecodeObject(specs, body); err != nil {
				b.Fatal(err)
			}
		}
	})
	parts := [][]byte{codec.AppendNDArray(nil, vals[0].Tensor()), codec.AppendNDArray(nil, vals[1].Tensor())}
	b.Run("ndarrays", func(b *testing.B) {
		b.SetBytes(int64(len(parts[0]) + len(parts[1])))
		for b.Loop() {
			for i, p := range parts {
				if _, err := codec.DecodeNDArray(p, specs[i]); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
}
