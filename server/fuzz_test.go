package server

import (
	"testing"

	"github.com/benchtop/benchtop/engine"
	"github.com/benchtop/benchtop/engine/tensor"
)

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
	specs := []engine.MethodSpec{
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
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, spec := range specs {
			call, err := decodeV2Request(body, spec)
			if err != nil {
				if statusFor(err) != 400 {
					t.Fatalf("decode error with status %d, want 400: %v", statusFor(err), err)
				}
				continue
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
		}
	})
}
