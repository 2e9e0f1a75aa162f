package process

import (
	"bytes"
	"encoding/binary"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/benchtop/benchtop/engine"
	"github.com/benchtop/benchtop/engine/tensor"
)

// tensorValue makes a test table's tensor; the constructors only fail on
// a mistake in the table itself.
func tensorValue(x *tensor.Tensor, err error) tensor.Value {
	if err != nil {
		panic(err)
	}
	return tensor.TensorValue(x)
}

func TestValueRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		v    tensor.Value
	}{
		{"float32", tensorValue(tensor.NewTensor([]int{2, 2}, []float32{1, -2.5, 3e38, 0}))},
		{"float64", tensorValue(tensor.NewTensor([]int{1}, []float64{-1e-300}))},
		{"int32", tensorValue(tensor.NewTensor([]int{3}, []int32{-1, 0, 1 << 30}))},
		{"int64", tensorValue(tensor.NewTensor([]int{1, 1, 2}, []int64{-1 << 62, 5}))},
		{"uint8", tensorValue(tensor.NewTensor([]int{4}, []uint8{0, 1, 128, 255}))},
		{"bool", tensorValue(tensor.NewTensor([]int{2}, []bool{true, false}))},
		{"string", tensorValue(tensor.NewStringTensor([]int{3}, []string{"a", "", "日本語"}))},
		{"scalar", tensorValue(tensor.NewTensor([]int{}, []float32{7}))},
		{"empty", tensorValue(tensor.NewTensor([]int{0, 3}, []float32{}))},
		{"text", tensor.TextValue("hello ✓")},
		{"json", tensor.JSONValue(map[string]any{"k": []any{1.0, "two", nil}})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			enc, err := appendValue(nil, tt.v)
			if err != nil {
				t.Fatal(err)
			}
			buf := alignedBytes(len(enc))
			copy(buf, enc)
			got, err := decodeValue(buf)
			if err != nil {
				t.Fatal(err)
			}
			if got.String() != tt.v.String() {
				t.Fatalf("got %v, want %v", got, tt.v)
			}
			if tt.v.Kind() == tensor.KindTensor && !got.Tensor().Equal(tt.v.Tensor()) {
				t.Errorf("data differs: got %v %v", got.Tensor().Bytes(), got.Tensor().Strings())
			}
		})
	}
}

func TestTensorDataIsNotCopied(t *testing.T) {
	enc, err := appendValue(nil, tensorValue(tensor.NewTensor([]int{2}, []float64{1, 2})))
	if err != nil {
		t.Fatal(err)
	}
	buf := alignedBytes(len(enc))
	copy(buf, enc)
	v, err := decodeValue(buf)
	if err != nil {
		t.Fatal(err)
	}
	if &v.Tensor().Bytes()[0] != &buf[len(buf)-16] {
		t.Error("decoded tensor data is a copy of the frame, want a view")
	}
}

func TestDecodeValueRejectsMalformedValues(t *testing.T) {
	head := func(kind, dtype, rank byte, dims ...uint64) []byte {
		b := []byte{kind, dtype, rank, 0, 0, 0, 0, 0}
		for _, d := range dims {
			b = binary.LittleEndian.AppendUint64(b, d)
		}
		return b
	}
	tests := []struct {
		name string
		b    []byte
		want string
	}{
		{"short", []byte{1, 1}, "shorter than its 8-byte header"},
		{"reserved", []byte{2, 0, 0, 1, 0, 0, 0, 0}, "reserved bytes"},
		{"kind", head(9, 0, 0), "want 1 (tensor)"},
		{"dtype", head(1, 99, 1, 1), "dtype code 99"},
		{"text with dtype", head(2, 1, 0), "want 0 and 0"},
		{"rank", head(1, 1, 33), "at most 32"},
		{"missing dims", head(1, 1, 2, 1), "needs 16 bytes of dims"},
		{"negative dim", head(1, 1, 1, 1<<63), "larger than any frame"},
		{"short data", append(head(1, 1, 1, 2), 0, 0, 0, 0), "needs 8 data bytes, the value has 4"},
		{"long data", append(head(1, 5, 1, 1), 1, 2), "needs 1 data bytes, the value has 2"},
		{"bad bool", append(head(1, 6, 1, 1), 2), "want 0 or 1"},
		{"string lengths", append(head(1, 7, 1, 2), 1, 0, 0, 0), "needs 8 bytes of lengths"},
		{"string bytes", append(head(1, 7, 1, 1), 5, 0, 0, 0, 'a'), "add up to 5 bytes, the value has 1"},
		{"json", append(head(3, 0, 0), "{nope"...), "json value"},
		{"huge dims", head(1, 1, 3, 1<<30, 1<<30, 1<<30), "needs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decodeValue(tt.b)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestParseHeader(t *testing.T) {
	good := appendHeader(nil, msgResult, 7, 42)
	h, err := parseHeader(good)
	if err != nil || h != (header{typ: msgResult, id: 7, n: 42}) {
		t.Fatalf("got %+v, %v", h, err)
	}
	mutate := func(i int, b byte) []byte {
		c := slices.Clone(good)
		c[i] = b
		return c
	}
	tests := []struct {
		name string
		b    []byte
		want string
	}{
		{"text", []byte("hello, world!!!\n"), "not a protocol frame"},
		{"flags", mutate(5, 1), "reserved bytes"},
		{"reserved", mutate(7, 1), "reserved bytes"},
		{"type", mutate(4, 9), "unknown message type 9"},
		{"length", binary.LittleEndian.AppendUint32(slices.Clone(good[:12]), maxPayload+1), "more than the"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseHeader(tt.b)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want %q", err, tt.want)
			}
		})
	}
	if _, err := parseHeader([]byte("not a frame at all")); !errors.Is(err, errNotAFrame) {
		t.Errorf("text: %v, want errNotAFrame", err)
	}
}

func TestCallFrameKeepsTheValueAligned(t *testing.T) {
	for _, name := range []string{"", "a", "double", "seven77", "exactly8"} {
		t.Run(name, func(t *testing.T) {
			v := tensorValue(tensor.NewTensor([]int{1}, []float64{3}))
			frame, err := appendCall(nil, 9, name, v)
			if err != nil {
				t.Fatal(err)
			}
			h, err := parseHeader(frame[:headerSize])
			if err != nil {
				t.Fatal(err)
			}
			body := frame[headerSize:]
			if h.typ != msgCall || h.id != 9 || h.n != len(body) {
				t.Fatalf("header %+v for a body of %d bytes", h, len(body))
			}
			n := int(binary.LittleEndian.Uint32(body))
			if got := string(body[4 : 4+n]); got != name {
				t.Errorf("method %q, want %q", got, name)
			}
			off := (4 + n + 7) &^ 7
			if !bytes.Equal(body[4+n:off], make([]byte, off-4-n)) {
				t.Errorf("padding % x is not zeros", body[4+n:off])
			}
			got, err := decodeValue(body[off:])
			if err != nil || !got.Tensor().Equal(v.Tensor()) {
				t.Errorf("value %v, %v", got, err)
			}
		})
	}
}

func TestSpecsFromReady(t *testing.T) {
	one := 1
	tensorIO := wireIO{Kind: "tensor", DType: "float32", Shape: []int{-1, 4}}
	tests := []struct {
		name string
		msg  readyMsg
		want string // signature of the first method, or the error
	}{
		{"batchable", readyMsg{Protocol: 1, Methods: []wireMethod{{Name: "m", Batchable: true, Input: tensorIO, Output: tensorIO}}},
			"tensor float32[-1 4] → tensor float32[-1 4], batchable along dim 0 → 0"},
		{"output dim", readyMsg{Protocol: 1, Methods: []wireMethod{{Name: "m", Batchable: true, OutputBatchDim: &one, Input: tensorIO, Output: tensorIO}}},
			"tensor float32[-1 4] → tensor float32[-1 4], batchable along dim 0 → 1"},
		{"any", readyMsg{Protocol: 1, Methods: []wireMethod{{Name: "m", Input: wireIO{Kind: "any"}, Output: wireIO{}}}},
			"any → any, not batchable"},
		{"ndarray and v2 dtype", readyMsg{Protocol: 1, Methods: []wireMethod{{Name: "m", Input: wireIO{Kind: "ndarray", DType: "FP64"}, Output: wireIO{Kind: "text"}}}},
			"tensor float64 → text, not batchable"},
		{"protocol", readyMsg{Protocol: 2, Methods: []wireMethod{{Name: "m"}}}, "speaks protocol 2"},
		{"no methods", readyMsg{Protocol: 1}, "declared no methods"},
		{"no name", readyMsg{Protocol: 1, Methods: []wireMethod{{}}}, "method 0 has no name"},
		{"twice", readyMsg{Protocol: 1, Methods: []wireMethod{{Name: "m"}, {Name: "m"}}}, `"m" is declared twice`},
		{"kind", readyMsg{Protocol: 1, Methods: []wireMethod{{Name: "m", Input: wireIO{Kind: "image"}}}}, `unknown kind "image"`},
		{"dtype", readyMsg{Protocol: 1, Methods: []wireMethod{{Name: "m", Input: wireIO{Kind: "tensor", DType: "float16"}}}}, `unknown dtype "float16"`},
		{"text shape", readyMsg{Protocol: 1, Methods: []wireMethod{{Name: "m", Input: wireIO{Kind: "text", Shape: []int{1}}}}}, "takes no dtype or shape"},
		{"shape", readyMsg{Protocol: 1, Methods: []wireMethod{{Name: "m", Input: wireIO{Kind: "tensor", Shape: []int{-2}}}}}, "want -1 (any) or a size"},
		{"batchable text", readyMsg{Protocol: 1, Methods: []wireMethod{{Name: "m", Batchable: true, Input: wireIO{Kind: "text"}, Output: tensorIO}}}, "must be a tensor or a JSON array"},
		{"batch dim", readyMsg{Protocol: 1, Methods: []wireMethod{{Name: "m", Batchable: true, BatchDim: 2, Input: tensorIO, Output: tensorIO}}}, "outside its shape"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			specs, err := specsFromReady(tt.msg)
			got := ""
			if err != nil {
				got = err.Error()
			} else {
				got = signature(specs[0])
			}
			if !strings.Contains(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestReadyIsDecodedStrictly(t *testing.T) {
	var r readyMsg
	err := decodeStrict([]byte(`{"protocol":1,"methods":[{"name":"m","batch_dims":1,"input":{"kind":"any"},"output":{"kind":"any"}}]}`), &r)
	if err == nil || !strings.Contains(err.Error(), "batch_dims") {
		t.Fatalf("error %v, want the unknown field named", err)
	}
}

func TestDiffSpecs(t *testing.T) {
	f32s := []tensor.IOSpec{{Kind: tensor.KindTensor, DType: tensor.Float32, Shape: []int{-1}}}
	a := []engine.MethodSpec{{Name: "keep", Inputs: f32s, Outputs: f32s}, {Name: "change", Batchable: true, Inputs: f32s, Outputs: f32s}, {Name: "drop"}}
	b := []engine.MethodSpec{{Name: "keep", Doc: "docs may change", Inputs: f32s, Outputs: f32s}, {Name: "change", Inputs: f32s, Outputs: f32s}, {Name: "add"}}
	got := diffSpecs(a, b)
	want := `method "change" was tensor float32[-1] → tensor float32[-1], batchable along dim 0 → 0, now tensor float32[-1] → tensor float32[-1], not batchable; method "drop" is gone; method "add" is new`
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	if d := diffSpecs(a, a); d != "" {
		t.Errorf("equal specs differ: %s", d)
	}
}

func FuzzDecodeValue(f *testing.F) {
	for _, v := range []tensor.Value{
		tensorValue(tensor.NewTensor([]int{2}, []float32{1, 2})),
		tensorValue(tensor.NewStringTensor([]int{2}, []string{"a", "bc"})),
		tensor.TextValue("x"),
		tensor.JSONValue([]any{1.0}),
	} {
		enc, err := appendValue(nil, v)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(enc)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		buf := alignedBytes(len(b))
		copy(buf, b)
		v, err := decodeValue(buf)
		if err != nil {
			return
		}
		// Whatever decodes must encode back to the same bytes (JSON aside,
		// whose spacing is free).
		if v.Kind() == tensor.KindJSON {
			return
		}
		enc, err := appendValue(nil, v)
		if err != nil {
			t.Fatalf("decoded %v does not encode: %v", v, err)
		}
		if !bytes.Equal(enc, b) {
			t.Fatalf("re-encoding %v gives % x, want % x", v, enc, b)
		}
	})
}
