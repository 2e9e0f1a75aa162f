package process

import (
	"bytes"
	"encoding/binary"
	"errors"
	"slices"
	"strings"
	"testing"
	"unsafe"

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
			frame, err := appendCall(nil, 9, name, []tensor.Value{v})
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

// A method of one input sends its value exactly as protocol 1 did, so a
// worker of protocol 1 reads every CALL it can be sent.
func TestOneValueIsSentAsInProtocol1(t *testing.T) {
	v := tensorValue(tensor.NewTensor([]int{2}, []float32{1, 2}))
	frame, err := appendCall(nil, 3, "m", []tensor.Value{v})
	if err != nil {
		t.Fatal(err)
	}
	enc, err := appendValue(nil, v)
	if err != nil {
		t.Fatal(err)
	}
	if want := 8 + len(enc); len(frame)-headerSize != want || !bytes.Equal(frame[headerSize+8:], enc) {
		t.Errorf("payload % x, want the name, its padding and the value % x alone", frame[headerSize:], enc)
	}
}

func TestTupleRoundTrip(t *testing.T) {
	ids := tensorValue(tensor.NewTensor([]int{2, 3}, []int64{1, 2, 3, 4, 5, 6}))
	mask := tensorValue(tensor.NewTensor([]int{2, 3}, []bool{true, true, false, true, false, false}))
	texts := tensorValue(tensor.NewStringTensor([]int{3}, []string{"a", "bcd", ""}))
	tests := []struct {
		name string
		vs   []tensor.Value
	}{
		{"none", []tensor.Value{}},
		{"two tensors", []tensor.Value{ids, mask}},
		{"unaligned sizes", []tensor.Value{texts, tensor.TextValue("x"), mask}},
		{"absent in the middle", []tensor.Value{texts, {}, tensor.JSONValue([]any{1.0})}},
		{"absent last", []tensor.Value{ids, {}}},
		{"one", []tensor.Value{mask}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			enc, err := appendTuple(nil, tt.vs)
			if err != nil {
				t.Fatal(err)
			}
			if len(enc)%8 != 0 {
				t.Errorf("tuple of %d bytes, want a multiple of 8", len(enc))
			}
			buf := alignedBytes(len(enc))
			copy(buf, enc)
			got, err := decodeTuple(buf)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.vs) {
				t.Fatalf("%d values, want %d", len(got), len(tt.vs))
			}
			for i := range got {
				if got[i].String() != tt.vs[i].String() {
					t.Errorf("value %d: %v, want %v", i, got[i], tt.vs[i])
				}
				if got[i].Kind() == tensor.KindTensor {
					if !got[i].Tensor().Equal(tt.vs[i].Tensor()) {
						t.Errorf("value %d: data differs", i)
					}
					if b := got[i].Tensor().Bytes(); len(b) > 0 && uintptr(unsafe.Pointer(&b[0]))%8 != 0 {
						t.Errorf("value %d: data is not 8-byte aligned", i)
					}
				}
			}
		})
	}
}

func TestDecodeTupleRejectsMalformedTuples(t *testing.T) {
	tuple := func(count uint32, lens ...uint64) []byte {
		b := binary.LittleEndian.AppendUint32([]byte{wireTuple, 0, 0, 0}, count)
		for _, l := range lens {
			b = binary.LittleEndian.AppendUint64(b, l)
		}
		return b
	}
	text := func(s string) []byte { return append([]byte{wireText, 0, 0, 0, 0, 0, 0, 0}, s...) }
	pad := func(b []byte) []byte { return append(b, make([]byte, (8-len(b)%8)%8)...) }
	tests := []struct {
		name string
		b    []byte
		want string
	}{
		{"reserved", []byte{wireTuple, 1, 0, 0, 0, 0, 0, 0}, "reserved bytes"},
		{"short table", tuple(2, 8), "needs 16 bytes of lengths"},
		{"huge count", tuple(1 << 31), "needs 17179869184 bytes of lengths"},
		{"value past the end", tuple(1, 100), "claims 100 bytes, only 0 are left"},
		{"missing padding", append(tuple(1, 9), text("x")...), "lacks the padding"},
		{"dirty padding", append(append(tuple(1, 9), text("x")...), 0, 0, 0, 0, 0, 0, 7), "padding"},
		{"trailing bytes", append(pad(append(tuple(1, 9), text("x")...)), make([]byte, 8)...), "but 8 bytes follow"},
		{"nested", pad(append(tuple(1, 8), tuple(0)...)), "tuples do not nest"},
		{"bad value", pad(append(tuple(1, 4), 9, 0, 0, 0)), "tuple value 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decodeTuple(tt.b)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestDecodeResultChecksTheOutputs(t *testing.T) {
	one := tensor.IOSpecs{{Name: "output"}}
	two := tensor.IOSpecs{{Name: "positive"}, {Name: "scores"}}
	val := tensor.TextValue("x")
	enc := func(vs ...tensor.Value) []byte {
		b, err := appendValues(nil, vs)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	tests := []struct {
		name    string
		b       []byte
		outputs tensor.IOSpecs
		n       int    // values decoded
		want    string // error, or "" for success
	}{
		{"one", enc(val), one, 1, ""},
		{"two", enc(val, val), two, 2, ""},
		{"undeclared method, one", enc(val), nil, 1, ""},
		{"undeclared method, two", enc(val, val), nil, 2, ""},
		{"tuple for one", enc(val, val), one, 0, "a tuple for a method of one output: send the value itself"},
		{"value for two", enc(val), two, 0, "one value for a method of 2 outputs (positive, scores): send a tuple of them, in that order"},
		{"three for two", enc(val, val, val), two, 0, "a tuple of 3 values for a method of 2 outputs (positive, scores)"},
		{"absent output", enc(val, tensor.Value{}), two, 0, `output "scores" is empty: outputs are never absent`},
		{"empty", nil, one, 0, "an empty value: outputs are never absent"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			buf := alignedBytes(len(tt.b))
			copy(buf, tt.b)
			vs, err := decodeResult(buf, tt.outputs)
			switch {
			case tt.want == "" && err != nil:
				t.Fatal(err)
			case tt.want == "" && len(vs) != tt.n:
				t.Fatalf("%d values, want %d", len(vs), tt.n)
			case tt.want != "" && (err == nil || err.Error() != tt.want):
				t.Fatalf("error %v, want %q", err, tt.want)
			}
		})
	}
}

func TestSpecsFromReady(t *testing.T) {
	tests := []struct {
		name  string
		ready string
		want  string // signature and names of the first method, or the error
	}{
		{"batchable", `{"protocol":1,"methods":[{"name":"m","batchable":true,"input":{"kind":"tensor","dtype":"float32","shape":[-1,4]},"output":{"kind":"tensor","dtype":"float32","shape":[-1,4]}}]}`,
			"tensor float32[-1 4] → tensor float32[-1 4], batchable along dim 0 → 0"},
		{"output dim", `{"protocol":1,"methods":[{"name":"m","batchable":true,"output_batch_dim":1,"input":{"kind":"tensor","shape":[-1,4]},"output":{"kind":"tensor","shape":[-1,4]}}]}`,
			"tensor any[-1 4] → tensor any[-1 4], batchable along dim 0 → 1"},
		{"any", `{"protocol":1,"methods":[{"name":"m","input":{"kind":"any"}}]}`, "any → any, not batchable"},
		{"ndarray and v2 dtype", `{"protocol":1,"methods":[{"name":"m","input":{"kind":"ndarray","dtype":"FP64"},"output":{"kind":"text"}}]}`,
			"tensor float64 → text, not batchable"},
		{"lists", `{"protocol":2,"methods":[{"name":"classify","batchable":true,
			"inputs":[{"name":"texts","kind":"tensor","dtype":"string","shape":[-1]},
			          {"name":"threshold","kind":"tensor","dtype":"float32","shape":[],"unbatched":true,"optional":true}],
			"outputs":[{"name":"positive","kind":"tensor","dtype":"bool","shape":[-1]},{"name":"scores","kind":"tensor","dtype":"float32","shape":[-1]}]}]}`,
			"texts tensor string[-1], threshold tensor float32[] (unbatched) (optional) → positive tensor bool[-1], scores tensor float32[-1], batchable along dim 0 → 0"},
		{"one-slot form in protocol 2", `{"protocol":2,"methods":[{"name":"m","input":{"name":"x","kind":"text"},"outputs":[{"kind":"json"}]}]}`,
			"text → json, not batchable; x → "},
		{"no inputs", `{"protocol":2,"methods":[{"name":"m","inputs":[],"output":{"kind":"json"}}]}`, "none → json, not batchable"},
		{"protocol too new", `{"protocol":3,"methods":[{"name":"m"}]}`, "worker answered in protocol 3, this benchtop speaks protocols 1 to 2: this benchtop is older than the worker's SDK"},
		{"protocol too old", `{"protocol":0,"methods":[{"name":"m"}]}`, "answered in protocol 0, this benchtop speaks protocols 1 to 2: update the worker's SDK"},
		{"lists in protocol 1", `{"protocol":1,"methods":[{"name":"m","inputs":[{"name":"a"},{"name":"b"}]}]}`,
			`method "m": it declares "inputs", a list that came with protocol 2, in a READY of protocol 1: answer READY with protocol 2`},
		{"names in protocol 1", `{"protocol":1,"methods":[{"name":"m","output":{"name":"y","kind":"json"}}]}`, "name, unbatched and optional came with protocol 2"},
		{"both forms", `{"protocol":2,"methods":[{"name":"m","input":{"kind":"json"},"inputs":[{"kind":"json"}]}]}`, `it declares both "input" and "inputs"`},
		{"unnamed among several", `{"protocol":2,"methods":[{"name":"m","inputs":[{"name":"a"},{"kind":"json"}]}]}`, "input 1 has no name"},
		{"same name twice", `{"protocol":2,"methods":[{"name":"m","outputs":[{"name":"a"},{"name":"a"}]}]}`, `two outputs are named "a"`},
		{"optional output", `{"protocol":2,"methods":[{"name":"m","outputs":[{"name":"a","optional":true}]}]}`, "only inputs may be"},
		{"unbatched, not batchable", `{"protocol":2,"methods":[{"name":"m","inputs":[{"name":"a","unbatched":true}]}]}`, "the method is not batchable"},
		{"no batched input", `{"protocol":2,"methods":[{"name":"m","batchable":true,"inputs":[{"name":"a","kind":"json","unbatched":true}],"output":{"kind":"json"}}]}`, "no batched input"},
		{"bad slot in a list", `{"protocol":2,"methods":[{"name":"m","inputs":[{"name":"ids","kind":"tensor","dtype":"int4"}]}]}`, `method "m": input ids: unknown dtype "int4"`},
		{"no methods", `{"protocol":1,"methods":[]}`, "declared no methods"},
		{"no name", `{"protocol":1,"methods":[{}]}`, "method 0 has no name"},
		{"twice", `{"protocol":1,"methods":[{"name":"m"},{"name":"m"}]}`, `"m" is declared twice`},
		{"kind", `{"protocol":1,"methods":[{"name":"m","input":{"kind":"image"}}]}`, `unknown kind "image"`},
		{"dtype", `{"protocol":1,"methods":[{"name":"m","input":{"kind":"tensor","dtype":"float16"}}]}`, `unknown dtype "float16"`},
		{"text shape", `{"protocol":1,"methods":[{"name":"m","input":{"kind":"text","shape":[1]}}]}`, "takes no dtype or shape"},
		{"shape", `{"protocol":1,"methods":[{"name":"m","input":{"kind":"tensor","shape":[-2]}}]}`, "want -1 (any) or a size"},
		{"batchable text", `{"protocol":1,"methods":[{"name":"m","batchable":true,"input":{"kind":"text"},"output":{"kind":"tensor"}}]}`, "must be a tensor or a JSON array"},
		{"batch dim", `{"protocol":1,"methods":[{"name":"m","batchable":true,"batch_dim":2,"input":{"kind":"tensor","shape":[-1,4]},"output":{"kind":"tensor","shape":[-1,4]}}]}`, "outside its shape"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r readyMsg
			if err := decodeStrict([]byte(tt.ready), &r); err != nil {
				t.Fatal(err)
			}
			specs, err := specsFromReady(r)
			got := ""
			if err != nil {
				got = err.Error()
			} else {
				got = signature(specs[0])
				if names := specs[0].Inputs.Names() + " → " + specs[0].Outputs.Names(); names != " → " && len(specs[0].Inputs) == 1 {
					got += "; " + names
				}
			}
			if !strings.Contains(got, tt.want) {
				t.Errorf("got  %q\nwant %q", got, tt.want)
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
	// A lone slot's name is no part of its signature, but serving depends
	// on it: front ends take the input by name.
	named := []engine.MethodSpec{{Name: "keep", Inputs: []tensor.IOSpec{{Name: "texts", Kind: tensor.KindTensor, DType: tensor.Float32, Shape: []int{-1}}}, Outputs: f32s}}
	if got, want := diffSpecs(a[:1], named), `method "keep" named its inputs "", now "texts"`; got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

func FuzzDecodeTuple(f *testing.F) {
	for _, vs := range [][]tensor.Value{
		{tensorValue(tensor.NewTensor([]int{2}, []float32{1, 2})), {}},
		{tensorValue(tensor.NewStringTensor([]int{2}, []string{"a", "bc"})), tensor.TextValue("x"), tensor.JSONValue([]any{1.0})},
		{},
	} {
		enc, err := appendTuple(nil, vs)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(enc)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		buf := alignedBytes(len(b))
		copy(buf, b)
		vs, err := decodeTuple(buf)
		if err != nil {
			return
		}
		for _, v := range vs {
			if v.Kind() == tensor.KindJSON {
				return
			}
		}
		enc, err := appendTuple(nil, vs)
		if err != nil {
			t.Fatalf("decoded %v does not encode: %v", vs, err)
		}
		if !bytes.Equal(enc, b) {
			t.Fatalf("re-encoding %v gives % x, want % x", vs, enc, b)
		}
	})
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
