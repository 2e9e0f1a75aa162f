package server

import (
	"testing"

	"github.com/benchtop/benchtop/engine"
	"github.com/benchtop/benchtop/engine/tensor"
)

// FuzzDecodeV2Request: any body either decodes into a value that fits the
// method or is refused with a 400; it never panics.
func FuzzDecodeV2Request(f *testing.F) {
	for _, seed := range []string{
		`{"id":"1","inputs":[{"name":"input","shape":[2,2],"datatype":"FP32","data":[1,2,3,4]}]}`,
		`{"inputs":[{"name":"input","shape":[1,2],"datatype":"FP32","data":[[1,2]]}],"outputs":[{"name":"output"}]}`,
		`{"inputs":[{"name":"input","shape":[1],"datatype":"BYTES","data":["hi"]}]}`,
		`{"inputs":[{"name":"input","shape":[-1,2],"datatype":"FP32","data":[1,2]}]}`,
		`{"inputs":[{"name":"input","shape":[1000000000,1000000000],"datatype":"FP32","data":[1]}]}`,
		`{"inputs":[]}`, `{}`, `[`, `null`,
	} {
		f.Add([]byte(seed))
	}
	specs := []engine.MethodSpec{
		{Name: "predict", Batchable: true,
			Inputs:  []tensor.IOSpec{{Kind: tensor.KindTensor, DType: tensor.Float32, Shape: []int{-1, -1}}},
			Outputs: []tensor.IOSpec{{Kind: tensor.KindTensor, DType: tensor.Float32, Shape: []int{-1, -1}}}},
		{Name: "is_positive", Inputs: []tensor.IOSpec{{Kind: tensor.KindText}}, Outputs: []tensor.IOSpec{{Kind: tensor.KindJSON}}},
		{Name: "any", Inputs: []tensor.IOSpec{{Kind: tensor.KindJSON}}, Outputs: []tensor.IOSpec{{Kind: tensor.KindJSON}}},
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, spec := range specs {
			_, v, err := decodeV2Request(body, spec)
			if err != nil {
				if statusFor(err) != 400 {
					t.Fatalf("decode error with status %d, want 400: %v", statusFor(err), err)
				}
				continue
			}
			if err := spec.Inputs[0].Check(v); err != nil {
				t.Fatalf("decoded a value that does not fit %s: %v", spec.Inputs, err)
			}
		}
	})
}
