package server

import (
	"encoding/json"
	"strconv"
	"testing"

	"github.com/benchtop/benchtop/engine"
	"github.com/benchtop/benchtop/engine/tensor"
)

// fuzzSpecs are signatures that the v2 decoders are fuzzed against: a
// float tensor, text, JSON, and BYTES beside an optional unbatched scalar.
var fuzzSpecs = func() []engine.MethodSpec {
	return []engine.MethodSpec{
		{Name: "predict", Batchable: true,
			Inputs:  []tensor.IOSpec{{Name: "input", Kind: tensor.KindTensor, DType: tensor.Float32, Shape: []int{-1, -1}}},
			Outputs: []tensor.IOSpec{{Name: "output", Kind: tensor.KindTensor, DType: tensor.Float32, Shape: []int{-1, -1}}}},
		{Name: "is_positive", Inputs: []tensor.IOSpec{{Name: "input", Kind: tensor.KindText}}, Outputs: []tensor.IOSpec{{Name: "output", Kind: tensor.KindJSON}}},
		{Name: "any", Inputs: []tensor.IOSpec{{Name: "input", Kind: tensor.KindJSON}}, Outputs: []tensor.IOSpec{{Name: "output", Kind: tensor.KindJSON}}},
		{Name: "classify", Batchable: true,
			Inputs: []tensor.IOSpec{
				{Name: "texts", Kind: tensor.KindTensor, DType: tensor.String, Shape: []int{-1}},
				{Name: "threshold", Kind: tensor.KindTensor, DType: tensor.Float32, Shape: []int{}, Unbatched: true, Optional: true},
			},
			Outputs: []tensor.IOSpec{
				{Name: "positive", Kind: tensor.KindTensor, DType: tensor.Bool, Shape: []int{-1}},
				{Name: "scores", Kind: tensor.KindTensor, DType: tensor.Float32, Shape: []int{-1}},
			}},
	}
}()

// FuzzDecodeV2Request: any body either decodes into values that fit the
// method or is refused with a 400; it never panics.
func FuzzDecodeV2Request(f *testing.F) {
	for _, seed := range []string{
		`{"id":"1","inputs":[{"name":"input","shape":[2,2],"datatype":"FP32","data":[1,2,3,4]}]}`,
		`{"inputs":[{"name":"input","shape":[1,2],"datatype":"FP32","data":[[1,2]]}],"outputs":[{"name":"output"}]}`,
		`{"inputs":[{"name":"input","shape":[1],"datatype":"BYTES","data":["hi"]}]}`,
		`{"inputs":[{"name":"input","shape":[-1,2],"datatype":"FP32","data":[1,2]}]}`,
		`{"inputs":[{"name":"input","shape":[1000000000,1000000000],"datatype":"FP32","data":[1]}]}`,
		`{"inputs":[{"name":"texts","shape":[2],"datatype":"BYTES","data":["a","b"]},{"name":"threshold","shape":[],"datatype":"FP32","data":0.5}],"outputs":[{"name":"scores"}]}`,
		`{"inputs":[{"name":"texts","shape":[1],"datatype":"BYTES","data":["a"]},{"name":"texts","shape":[1],"datatype":"BYTES","data":["b"]}]}`,
		`{"inputs":[]}`, `{}`, `[`, `null`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, spec := range fuzzSpecs {
			call, err := decodeV2Request(body, spec)
			checkV2Call(t, spec, call, err)
		}
	})
}

// FuzzDecodeV2Binary: a binary request — any header length, any JSON
// header, any bytes after it: sizes that lie, truncated data, element
// counts that overflow — either decodes into values that fit the method,
// each raw input exactly its binary_data_size, or is refused with a 400.
func FuzzDecodeV2Binary(f *testing.F) {
	bin := func(header string, raw ...byte) (string, []byte) {
		return strconv.Itoa(len(header)), append([]byte(header), raw...)
	}
	four := []byte{0, 0, 128, 63, 0, 0, 0, 64, 0, 0, 64, 64, 0, 0, 128, 64} // 1, 2, 3, 4 as float32
	for _, seed := range []struct {
		header string
		raw    []byte
	}{
		{`{"inputs":[{"name":"input","shape":[2,2],"datatype":"FP32","parameters":{"binary_data_size":16}}],"parameters":{"binary_data_output":true}}`, four},
		{`{"inputs":[{"name":"input","shape":[2,2],"datatype":"FP32","parameters":{"binary_data_size":20}}]}`, four},
		{`{"inputs":[{"name":"input","shape":[1,2],"datatype":"FP32","parameters":{"binary_data_size":8}}]}`, four},
		{`{"inputs":[{"name":"input","shape":[1000000000,1000000000],"datatype":"FP32","parameters":{"binary_data_size":16}}]}`, four},
		{`{"inputs":[{"name":"input","shape":[1],"datatype":"BYTES","parameters":{"binary_data_size":7}}]}`, []byte{3, 0, 0, 0, 'h', 'i', '!'}},
		{`{"inputs":[{"name":"input","shape":[1],"datatype":"BYTES","parameters":{"binary_data_size":7}}]}`, []byte{255, 255, 255, 255, 'h', 'i', '!'}},
		{`{"inputs":[{"name":"input","shape":[1],"datatype":"BYTES","parameters":{"binary_data_size":8}}]}`, []byte{2, 0, 0, 0, '{', '}', 0, 0}},
		{`{"inputs":[{"name":"texts","shape":[4611686018427387904],"datatype":"BYTES","parameters":{"binary_data_size":4}}]}`, []byte{0, 0, 0, 0}},
		{`{"inputs":[{"name":"texts","shape":[2],"datatype":"BYTES","parameters":{"binary_data_size":10}},{"name":"threshold","shape":[],"datatype":"FP32","parameters":{"binary_data_size":4}}],"outputs":[{"name":"scores","parameters":{"binary_data":true}}]}`,
			[]byte{1, 0, 0, 0, 'a', 1, 0, 0, 0, 'b', 0, 0, 0, 63}},
		{`{"inputs":[{"name":"texts","shape":[1],"datatype":"BYTES","data":["a"]},{"name":"threshold","shape":[],"datatype":"FP32","parameters":{"binary_data_size":4}}]}`, []byte{0, 0, 0, 63}},
		{`{"inputs":[{"name":"input","shape":[2],"datatype":"BOOL","parameters":{"binary_data_size":2}}]}`, []byte{1, 7}},
		{`{"inputs":[{"name":"input","shape":[-1],"datatype":"FP32","parameters":{"binary_data_size":-4}}]}`, four},
	} {
		length, body := bin(seed.header, seed.raw...)
		f.Add(length, body)
	}
	f.Add("999999999999999999999", []byte(`{}`))
	f.Add("-1", []byte(`{}`))
	f.Add("3", []byte(`{}`))
	f.Fuzz(func(t *testing.T, length string, body []byte) {
		header, binary, err := splitV2Body(body, []string{length}, "")
		if err != nil {
			if statusFor(err) != 400 {
				t.Fatalf("split error with status %d, want 400: %v", statusFor(err), err)
			}
			return
		}
		if len(header)+len(binary) != len(body) || binary == nil {
			t.Fatalf("split %d bytes into %d and %v", len(body), len(header), binary)
		}
		for _, spec := range fuzzSpecs {
			call, err := decodeV2(header, binary, spec)
			checkV2Call(t, spec, call, err)
			if err == nil {
				if sum := binarySizes(t, header); sum != len(binary) {
					t.Fatalf("decoded, but the inputs' binary_data_size add up to %d for %d bytes of binary data", sum, len(binary))
				}
			}
		}
	})
}

// checkV2Call: a decode either failed with a 400, or gave a value per
// input that fits its spec and output picks that fit the outputs.
func checkV2Call(t *testing.T, spec engine.MethodSpec, call v2Call, err error) {
	t.Helper()
	if err != nil {
		if statusFor(err) != 400 {
			t.Fatalf("decode error with status %d, want 400: %v", statusFor(err), err)
		}
		return
	}
	if len(call.in) != len(spec.Inputs) {
		t.Fatalf("%d values for %d inputs", len(call.in), len(spec.Inputs))
	}
	for i, v := range call.in {
		if v.Kind() == tensor.KindInvalid && spec.Inputs[i].Optional {
			continue
		}
		if err := spec.Inputs[i].Check(v); err != nil {
			t.Fatalf("decoded a value that does not fit %s: %v", spec.Inputs, err)
		}
	}
	if call.outputs != nil && len(call.outputs) != len(spec.Outputs) {
		t.Fatalf("output picks %v for %d outputs", call.outputs, len(spec.Outputs))
	}
	if call.binary != nil && len(call.binary) != len(spec.Outputs) {
		t.Fatalf("binary picks %v for %d outputs", call.binary, len(spec.Outputs))
	}
}

// binarySizes adds up the binary_data_size of a request's inputs.
func binarySizes(t *testing.T, header []byte) int {
	var req v2InferRequest
	if err := json.Unmarshal(header, &req); err != nil {
		t.Fatalf("decoded a header that is not JSON: %v", err)
	}
	sum := 0
	for _, in := range req.Inputs {
		if p, ok := in.Parameters["binary_data_size"]; ok {
			n, err := strconv.Atoi(string(p))
			if err != nil {
				t.Fatalf("decoded input %q of binary_data_size %s", in.Name, p)
			}
			sum += n
		}
	}
	return sum
}
