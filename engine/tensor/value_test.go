package tensor

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"unsafe"
)

// wantErr fails unless err is non-nil and contains every substring; the
// substrings are the parts of a message that tell a user what to fix.
func wantErr(t *testing.T, err error, subs ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want one containing %q", subs)
	}
	for _, s := range subs {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not contain %q", err, s)
		}
	}
}

// must unwraps a constructor call whose inputs the test knows are valid.
func must(x *Tensor, err error) *Tensor {
	if err != nil {
		panic(err)
	}
	return x
}

func TestDType(t *testing.T) {
	tests := []struct {
		d          DType
		name, v2   string
		size       int
		parseNames []string
	}{
		{Float32, "float32", "FP32", 4, []string{"float32", "FP32", "fp32", "Float32"}},
		{Float64, "float64", "FP64", 8, []string{"float64", "FP64"}},
		{Int32, "int32", "INT32", 4, []string{"int32", "INT32"}},
		{Int64, "int64", "INT64", 8, []string{"int64", "int64"}},
		{Uint8, "uint8", "UINT8", 1, []string{"uint8", "UINT8"}},
		{Bool, "bool", "BOOL", 1, []string{"bool", "BOOL"}},
		{String, "string", "BYTES", 0, []string{"string", "BYTES", "bytes"}},
		{DTypeInvalid, "invalid", "", 0, nil},
		{DType(200), "dtype(200)", "", 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.d.String(); got != tt.name {
				t.Errorf("String() = %q, want %q", got, tt.name)
			}
			if got := tt.d.V2(); got != tt.v2 {
				t.Errorf("V2() = %q, want %q", got, tt.v2)
			}
			if got := tt.d.Size(); got != tt.size {
				t.Errorf("Size() = %d, want %d", got, tt.size)
			}
			for _, s := range tt.parseNames {
				if got, err := ParseDType(s); err != nil || got != tt.d {
					t.Errorf("ParseDType(%q) = %v, %v, want %v", s, got, err, tt.d)
				}
			}
		})
	}
	t.Run("unknown", func(t *testing.T) {
		for _, s := range []string{"", "invalid", "float16", "fp 32"} {
			_, err := ParseDType(s)
			wantErr(t, err, fmt.Sprintf("%q", s), "float32", "FP32", "BYTES", "string")
		}
	})
}

func TestParseKind(t *testing.T) {
	tests := []struct {
		in   string
		want Kind
	}{
		{"tensor", KindTensor}, {"ndarray", KindTensor}, {"Tensor", KindTensor},
		{"text", KindText}, {"json", KindJSON}, {"JSON", KindJSON},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseKind(tt.in)
			if err != nil || got != tt.want {
				t.Fatalf("ParseKind(%q) = %v, %v, want %v", tt.in, got, err, tt.want)
			}
			if tt.in == tt.want.String() {
				return
			}
		})
	}
	t.Run("unknown", func(t *testing.T) {
		_, err := ParseKind("image")
		wantErr(t, err, `"image"`, "tensor", "text", "json")
	})
	if KindInvalid.String() != "invalid" {
		t.Errorf("KindInvalid.String() = %q", KindInvalid.String())
	}
}

type score float32

// roundTrip checks NewTensor, TensorData and the typed accessors for one
// element type, including that the view is zero-copy.
func roundTrip[T Numeric](t *testing.T, want DType, data []T) {
	t.Helper()
	shape := []int{2, len(data) / 2}
	x, err := NewTensor(shape, data)
	if err != nil {
		t.Fatal(err)
	}
	if x.DType() != want {
		t.Fatalf("dtype %v, want %v", x.DType(), want)
	}
	if x.Len() != len(data) || !slices.Equal(x.Shape(), shape) {
		t.Fatalf("Len %d shape %v, want %d %v", x.Len(), x.Shape(), len(data), shape)
	}
	got, err := TensorData[T](x)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, data) {
		t.Fatalf("TensorData = %v, want %v", got, data)
	}
	if &got[0] != &data[0] {
		t.Error("TensorData copied; want a view of the original data")
	}
	if len(x.Bytes()) != len(data)*want.Size() {
		t.Errorf("Bytes has %d bytes, want %d", len(x.Bytes()), len(data)*want.Size())
	}
	shape[0] = 99 // the tensor must have copied shape
	if x.Shape()[0] != 2 {
		t.Error("NewTensor kept the caller's shape slice")
	}
	if want != Float32 {
		if _, err := TensorData[float32](x); err == nil {
			t.Error("TensorData[float32] of a non-float32 tensor succeeded")
		} else {
			wantErr(t, err, "asked for float32", want.String())
		}
	}
}

func TestRoundTrip(t *testing.T) {
	t.Run("float32", func(t *testing.T) { roundTrip(t, Float32, []float32{1, -2.5, float32(math.Inf(1)), 4}) })
	t.Run("float64", func(t *testing.T) { roundTrip(t, Float64, []float64{1, math.Pi, -0.0, 1e300}) })
	t.Run("int32", func(t *testing.T) { roundTrip(t, Int32, []int32{1, math.MinInt32, math.MaxInt32, 0}) })
	t.Run("int64", func(t *testing.T) { roundTrip(t, Int64, []int64{1, math.MinInt64, math.MaxInt64, 0}) })
	t.Run("uint8", func(t *testing.T) { roundTrip(t, Uint8, []uint8{0, 1, 255, 7, 8, 9}) })
	t.Run("bool", func(t *testing.T) { roundTrip(t, Bool, []bool{true, false, false, true}) })
	t.Run("named float32", func(t *testing.T) { roundTrip(t, Float32, []score{0.5, 1.5}) })
	t.Run("string", testStringRoundTrip)
	t.Run("typed accessors", testTypedAccessors)
	t.Run("scalar", func(t *testing.T) {
		x := must(NewTensor(nil, []int64{42}))
		if x.Len() != 1 || len(x.Shape()) != 0 || x.String() != "int64[]" {
			t.Errorf("scalar: %v len %d", x, x.Len())
		}
	})
	t.Run("zeros", func(t *testing.T) {
		for _, dt := range []DType{Float32, Float64, Int32, Int64, Uint8, Bool, String} {
			x := must(Zeros(dt, []int{3, 2}))
			if x.Len() != 6 || x.DType() != dt {
				t.Errorf("Zeros(%v) = %v len %d", dt, x, x.Len())
			}
		}
	})
	t.Run("nil tensor accessors", testNilTensorAccessors)
}

// String tensors hold Go strings, not bytes, so they have their own
// constructor and no TensorData view.
func testStringRoundTrip(t *testing.T) {
	data := []string{"a", "", "ünï", "d"}
	x := must(NewStringTensor([]int{2, 2}, data))
	if x.DType() != String || !slices.Equal(x.Strings(), data) || x.Bytes() != nil || x.Len() != 4 {
		t.Fatalf("got %v %v %v", x, x.Strings(), x.Bytes())
	}
	if _, err := TensorData[uint8](x); err == nil {
		t.Error("TensorData[uint8] of a string tensor succeeded")
	}
}

// The typed accessors return nil for another dtype but an empty, non-nil
// slice for an empty tensor of their own, so that nil means only "not
// this dtype".
func testTypedAccessors(t *testing.T) {
	f32 := must(NewTensor([]int{1}, []float32{1}))
	f64 := must(NewTensor([]int{1}, []float64{2}))
	i32 := must(NewTensor([]int{1}, []int32{3}))
	i64 := must(NewTensor([]int{1}, []int64{4}))
	if f32.Float32s()[0] != 1 || f64.Float64s()[0] != 2 || i32.Int32s()[0] != 3 || i64.Int64s()[0] != 4 {
		t.Error("typed accessor returned wrong data")
	}
	if f32.Float64s() != nil || f64.Float32s() != nil || i32.Int64s() != nil || i64.Int32s() != nil {
		t.Error("typed accessor of the wrong dtype is not nil")
	}
	empty := must(Zeros(Float32, []int{0, 4}))
	if got := empty.Float32s(); got == nil || len(got) != 0 {
		t.Errorf("Float32s of an empty float32 tensor = %#v, want empty non-nil", got)
	}
}

// Tensor's doc promises that a nil *Tensor is safe to call accessors on
// and reads as empty.
func testNilTensorAccessors(t *testing.T) {
	var x *Tensor
	if x.DType() != DTypeInvalid || x.Shape() != nil || x.Len() != 0 || x.Bytes() != nil ||
		x.Strings() != nil || x.String() != "<nil>" || x.Float32s() != nil {
		t.Error("nil tensor accessors are not empty")
	}
}

func TestConstructorErrors(t *testing.T) {
	tests := []struct {
		name string
		fn   func() error
		subs []string
	}{
		{"length", func() error { _, err := NewTensor([]int{2, 3}, make([]float32, 5)); return err },
			[]string{"data has 5 elements, want 6", "[2 3]"}},
		{"negative dim", func() error { _, err := NewTensor([]int{2, -3}, make([]float32, 6)); return err },
			[]string{"dim 1 is -3, want >= 0"}},
		{"overflow", func() error { _, err := NewTensor([]int{1 << 40, 1 << 40}, []float32{}); return err },
			[]string{"more than"}},
		{"string length", func() error { _, err := NewStringTensor([]int{3}, []string{"a"}); return err },
			[]string{"data has 1 elements, want 3"}},
		{"string negative", func() error { _, err := NewStringTensor([]int{-1}, nil); return err },
			[]string{"dim 0 is -1"}},
		{"bytes length", func() error { _, err := NewTensorFromBytes(Float32, []int{2, 2}, make([]byte, 15)); return err },
			[]string{"raw has 15 bytes, want 16", "4 bytes per float32"}},
		{"bytes string", func() error { _, err := NewTensorFromBytes(String, []int{1}, []byte("x")); return err },
			[]string{"NewStringTensor"}},
		{"bytes invalid dtype", func() error { _, err := NewTensorFromBytes(DTypeInvalid, []int{1}, []byte("x")); return err },
			[]string{"dtype invalid is not valid", "float32"}},
		{"bytes bad bool", func() error { _, err := NewTensorFromBytes(Bool, []int{3}, []byte{0, 1, 2}); return err },
			[]string{"byte 2 is 2, want 0 or 1"}},
		{"bytes negative", func() error { _, err := NewTensorFromBytes(Uint8, []int{-2}, nil); return err },
			[]string{"dim 0 is -2"}},
		{"zeros invalid", func() error { _, err := Zeros(DType(77), []int{1}); return err },
			[]string{"dtype(77) is not valid"}},
		{"zeros negative", func() error { _, err := Zeros(Float32, []int{1, -1}); return err },
			[]string{"dim 1 is -1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { wantErr(t, tt.fn(), tt.subs...) })
	}
}

func TestNewTensorFromBytes(t *testing.T) {
	want := []float64{1.5, -2, math.Pi, math.MaxFloat64}
	enc := func(b []byte) {
		for i, f := range want {
			binary.LittleEndian.PutUint64(b[8*i:], math.Float64bits(f))
		}
	}
	t.Run("misaligned", func(t *testing.T) {
		buf := make([]byte, 8*len(want)+1)
		raw := buf[1:]
		enc(raw)
		x := must(NewTensorFromBytes(Float64, []int{2, 2}, raw))
		if got := x.Float64s(); !slices.Equal(got, want) {
			t.Fatalf("Float64s = %v, want %v", got, want)
		}
		if uintptr(unsafe.Pointer(&x.Bytes()[0]))%8 != 0 {
			t.Error("misaligned input was not copied to aligned memory")
		}
	})
	t.Run("aligned is zero-copy", func(t *testing.T) {
		raw := viewBytes(make([]uint64, len(want)))
		enc(raw)
		x := must(NewTensorFromBytes(Float64, []int{4}, raw))
		if !slices.Equal(x.Float64s(), want) || &x.Bytes()[0] != &raw[0] {
			t.Error("aligned input was copied or decoded wrongly")
		}
	})
	t.Run("bool", func(t *testing.T) {
		x := must(NewTensorFromBytes(Bool, []int{3}, []byte{1, 0, 1}))
		got, err := TensorData[bool](x)
		if err != nil || !slices.Equal(got, []bool{true, false, true}) {
			t.Errorf("bool data = %v, %v", got, err)
		}
	})
	t.Run("empty", func(t *testing.T) {
		x := must(NewTensorFromBytes(Int64, []int{0, 3}, nil))
		if x.Len() != 0 || x.Int64s() == nil {
			t.Errorf("empty: %v %#v", x, x.Int64s())
		}
	})
}

// randTensor fills a tensor of dt and shape with random data.
func randTensor(r *rand.Rand, dt DType, shape []int) *Tensor {
	x, err := Zeros(dt, shape)
	if err != nil {
		panic(err)
	}
	switch dt {
	case String:
		for i := range x.strs {
			x.strs[i] = fmt.Sprintf("s%d", r.IntN(1000))
		}
	case Bool:
		for i := range x.raw {
			x.raw[i] = byte(r.IntN(2))
		}
	default:
		for i := range x.raw {
			x.raw[i] = byte(r.Uint32())
		}
	}
	return x
}

// elem returns element i of x in a comparable form.
func elem(x *Tensor, i int) string {
	if x.dtype == String {
		return x.strs[i]
	}
	sz := x.dtype.Size()
	return string(x.raw[i*sz : (i+1)*sz])
}

// checkConcat verifies out element by element against an index-arithmetic
// reference, so a Concat bug cannot hide behind a matching Split bug.
func checkConcat(t *testing.T, out *Tensor, ins []*Tensor, d int) {
	t.Helper()
	shape := out.Shape()
	idx := make([]int, len(shape))
	for flat := range out.Len() {
		rem := flat
		for k := len(shape) - 1; k >= 0; k-- {
			idx[k] = rem % shape[k]
			rem /= shape[k]
		}
		row, which := idx[d], 0
		for row >= ins[which].shape[d] {
			row -= ins[which].shape[d]
			which++
		}
		in, inFlat := ins[which], 0
		for k, v := range idx {
			if k == d {
				v = row
			}
			inFlat = inFlat*in.shape[k] + v
		}
		if elem(out, flat) != elem(in, inFlat) {
			t.Fatalf("out%v = %q, want %q from input %d", idx, elem(out, flat), elem(in, inFlat), which)
		}
	}
}

func TestConcatSplitRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	dtypes := []DType{Float32, Float64, Int32, Int64, Uint8, Bool, String}
	for _, d := range []int{0, 1, 2} {
		for _, dt := range dtypes {
			for trial := range 8 {
				rank := d + 1 + r.IntN(2)
				base := make([]int, rank)
				for i := range base {
					base[i] = 1 + r.IntN(4)
				}
				if trial == 0 && d > 0 {
					base[0] = 1 // outer == 1: split and slice may use views
				}
				n := 1 + r.IntN(6)
				ins := make([]*Tensor, n)
				sizes := make([]int, n)
				for i := range ins {
					shape := slices.Clone(base)
					shape[d] = r.IntN(4) // includes zero-row inputs
					sizes[i] = shape[d]
					ins[i] = randTensor(r, dt, shape)
				}
				t.Run(fmt.Sprintf("dim%d/%v/%d", d, dt, trial), func(t *testing.T) {
					checkConcatSplit(t, d, ins, sizes)
				})
			}
		}
	}
}

// checkConcatSplit concatenates ins along dim d and takes the result apart
// again with Split, Slice and their Value forms, each of which must give
// back the inputs (sizes are their lengths along d). It is one trial of
// TestConcatSplitRoundTrip, apart so the trial's checks read on their own.
func checkConcatSplit(t *testing.T, d int, ins []*Tensor, sizes []int) {
	out, err := Concat(d, ins)
	if err != nil {
		t.Fatal(err)
	}
	if len(ins) == 1 && out != ins[0] {
		t.Error("Concat of one tensor did not return it unchanged")
	}
	checkConcat(t, out, ins, d)
	parts, err := out.Split(d, sizes)
	if err != nil {
		t.Fatal(err)
	}
	start := 0
	for i, p := range parts {
		if !p.Equal(ins[i]) {
			t.Fatalf("part %d = %v, want %v", i, p, ins[i])
		}
		s, err := out.Slice(d, start, start+sizes[i])
		if err != nil {
			t.Fatal(err)
		}
		if !s.Equal(ins[i]) {
			t.Fatalf("slice %d = %v, want %v", i, s, ins[i])
		}
		start += sizes[i]
	}
	vals := make([]Value, len(ins))
	for i := range ins {
		vals[i] = TensorValue(ins[i])
	}
	cv, err := ConcatValues(d, vals)
	if err != nil || !cv.Tensor().Equal(out) {
		t.Fatalf("ConcatValues = %v, %v, want %v", cv, err, out)
	}
	sv, err := SplitValue(cv, d, sizes)
	if err != nil {
		t.Fatal(err)
	}
	for i := range sv {
		if !sv[i].Tensor().Equal(ins[i]) {
			t.Fatalf("SplitValue part %d = %v, want %v", i, sv[i], ins[i])
		}
	}
}

// dataPtr is the address of a tensor's first element, or nil if empty.
func dataPtr(x *Tensor) unsafe.Pointer {
	if x.dtype == String {
		return unsafe.Pointer(unsafe.SliceData(x.strs))
	}
	return unsafe.Pointer(unsafe.SliceData(x.raw))
}

func TestSplitViews(t *testing.T) {
	x := must(NewTensor([]int{4, 2}, []int32{0, 1, 2, 3, 4, 5, 6, 7}))
	parts, err := x.Split(0, []int{1, 3})
	if err != nil {
		t.Fatal(err)
	}
	if dataPtr(parts[1]) != unsafe.Pointer(&x.Int32s()[2]) {
		t.Error("Split along dim 0 copied; want a view")
	}
	if cap(parts[0].Bytes()) != len(parts[0].Bytes()) {
		t.Error("split view can grow into its neighbour")
	}
	s := must(x.Slice(0, 1, 3))
	if !slices.Equal(s.Int32s(), []int32{2, 3, 4, 5}) || dataPtr(s) != unsafe.Pointer(&x.Int32s()[2]) {
		t.Errorf("Slice(0,1,3) = %v, want a view of [2 3 4 5]", s.Int32s())
	}
	c := must(x.Slice(1, 1, 2))
	if !slices.Equal(c.Int32s(), []int32{1, 3, 5, 7}) || !slices.Equal(c.Shape(), []int{4, 1}) {
		t.Errorf("Slice(1,1,2) = %v %v, want [4 1] [1 3 5 7]", c, c.Int32s())
	}
	sv, err := SliceValue(TensorValue(x), 1, 0, 1)
	if err != nil || !slices.Equal(sv.Tensor().Int32s(), []int32{0, 2, 4, 6}) {
		t.Errorf("SliceValue(1,0,1) = %v, %v, want [0 2 4 6]", sv, err)
	}
	if _, err := SliceValue(TextValue("x"), 0, 0, 1); err == nil {
		t.Error("SliceValue of text succeeded")
	}
	if _, err := SliceValue(TensorValue(x), 0, 3, 9); err == nil {
		t.Error("SliceValue out of bounds succeeded")
	}
	z := must(Zeros(Float32, []int{0, 3}))
	if zs := must(z.Slice(1, 1, 2)); zs.Len() != 0 || !slices.Equal(zs.Shape(), []int{0, 1}) {
		t.Errorf("Slice of zero outer = %v", zs)
	}
	strs := must(NewStringTensor([]int{2, 2}, []string{"a", "b", "c", "d"}))
	sc := must(strs.Slice(1, 0, 1))
	if !slices.Equal(sc.Strings(), []string{"a", "c"}) {
		t.Errorf("string Slice(1,0,1) = %v, want [a c]", sc.Strings())
	}
}

func TestSplitErrors(t *testing.T) {
	x := must(Zeros(Float32, []int{2, 8}))
	scalar := must(NewTensor(nil, []float32{1}))
	tests := []struct {
		name  string
		x     *Tensor
		dim   int
		sizes []int
		subs  []string
	}{
		{"short", x, 1, []int{3, 4}, []string{"sizes sum to 7, want 8", "dim 1 of float32[2 8]"}},
		{"long", x, 1, []int{3, 4, 2}, []string{"sizes[:3] sum to more than 8", "exactly 8"}},
		{"negative", x, 0, []int{1, -1}, []string{"sizes[1] is -1, want >= 0"}},
		{"huge", x, 0, []int{math.MaxInt, math.MaxInt}, []string{"sizes[:1] sum to more than 2"}},
		{"empty", x, 0, nil, []string{"no sizes given"}},
		{"dim out of range", x, 2, []int{2}, []string{"batch dim 2 is out of range", "float32[2 8]", "want 0..1"}},
		{"negative dim", x, -1, []int{2}, []string{"batch dim -1 is out of range"}},
		{"scalar", scalar, 0, []int{1}, []string{"scalar", "want rank >= 1"}},
		{"nil", nil, 0, []int{1}, []string{"tensor is nil"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.x.Split(tt.dim, tt.sizes)
			wantErr(t, err, append([]string{"split: "}, tt.subs...)...)
		})
	}
}

func TestSliceErrors(t *testing.T) {
	x := must(Zeros(Int64, []int{4, 2}))
	tests := []struct {
		name            string
		dim, start, end int
		subs            []string
	}{
		{"end past rows", 0, 3, 5, []string{"range [3,5) is out of bounds for dim 0 of int64[4 2]", "end <= 4"}},
		{"negative start", 0, -1, 2, []string{"range [-1,2)"}},
		{"start after end", 1, 2, 1, []string{"range [2,1)", "start <= end <= 2"}},
		{"dim out of range", 2, 0, 1, []string{"batch dim 2 is out of range"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := x.Slice(tt.dim, tt.start, tt.end)
			wantErr(t, err, append([]string{"slice: "}, tt.subs...)...)
		})
	}
	t.Run("empty range", func(t *testing.T) {
		s := must(x.Slice(0, 4, 4))
		if s.Len() != 0 || !slices.Equal(s.Shape(), []int{0, 2}) {
			t.Errorf("Slice(0,4,4) = %v", s)
		}
	})
}

func TestConcatErrors(t *testing.T) {
	a := must(Zeros(Float32, []int{2, 4}))
	b := must(Zeros(Float32, []int{2, 5}))
	f64 := must(Zeros(Float64, []int{2, 4}))
	r3 := must(Zeros(Float32, []int{2, 4, 1}))
	scalar := must(NewTensor(nil, []float32{1}))
	tests := []struct {
		name string
		dim  int
		ts   []*Tensor
		subs []string
	}{
		{"shape", 0, []*Tensor{a, a, b}, []string{"concat: tensor 2 has shape [2 5], want [* 4] (all dims but batch dim 0 must match)"}},
		{"shape dim 1", 1, []*Tensor{a, must(Zeros(Float32, []int{3, 4}))}, []string{"tensor 1 has shape [3 4], want [2 *]"}},
		{"rank", 0, []*Tensor{a, r3}, []string{"tensor 1 has shape [2 4 1], want [* 4]"}},
		{"dtype", 0, []*Tensor{a, f64}, []string{"tensor 1 has dtype float64, want float32"}},
		{"nil", 0, []*Tensor{a, nil}, []string{"tensor 1 is nil"}},
		{"nil first", 0, []*Tensor{nil}, []string{"tensor 0 is nil"}},
		{"none", 0, nil, []string{"no tensors given"}},
		{"dim", 2, []*Tensor{a, a}, []string{"batch dim 2 is out of range for tensor 0 float32[2 4], want 0..1"}},
		{"dim single", 2, []*Tensor{a}, []string{"batch dim 2 is out of range"}},
		{"scalar", 0, []*Tensor{scalar, scalar}, []string{"tensor 0 is float32[], a scalar"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Concat(tt.dim, tt.ts)
			wantErr(t, err, tt.subs...)
		})
	}
}

func TestZeroRows(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, dt := range []DType{Float32, String, Bool} {
		t.Run(dt.String(), func(t *testing.T) {
			empty := randTensor(r, dt, []int{0, 4})
			full := randTensor(r, dt, []int{2, 4})
			out, err := Concat(0, []*Tensor{empty, full, empty})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(out.Shape(), []int{2, 4}) {
				t.Fatalf("shape %v, want [2 4]", out.Shape())
			}
			parts, err := out.Split(0, []int{0, 2, 0})
			if err != nil {
				t.Fatal(err)
			}
			if !parts[0].Equal(empty) || !parts[1].Equal(full) || !parts[2].Equal(empty) {
				t.Errorf("split parts %v, want %v %v %v", parts, empty, full, empty)
			}
			all, err := Concat(0, []*Tensor{empty, empty})
			if err != nil || all.Len() != 0 || !slices.Equal(all.Shape(), []int{0, 4}) {
				t.Errorf("concat of empties = %v, %v", all, err)
			}
			// A zero outer dim leaves nothing to copy whatever the batch dim.
			z := randTensor(r, dt, []int{0, 3, 2})
			zs, err := z.Split(1, []int{1, 2})
			if err != nil || zs[1].Len() != 0 || !slices.Equal(zs[1].Shape(), []int{0, 2, 2}) {
				t.Errorf("split of zero outer = %v, %v", zs, err)
			}
		})
	}
}

func TestJSONValues(t *testing.T) {
	a := JSONValue([]any{1.0, "x"})
	b := JSONValue([]any{})
	c := JSONValue([]any{map[string]any{"k": true}})
	t.Run("concat split", func(t *testing.T) {
		v, err := ConcatValues(0, []Value{a, b, c})
		if err != nil {
			t.Fatal(err)
		}
		if n, err := v.Rows(0); err != nil || n != 3 {
			t.Fatalf("Rows = %d, %v, want 3", n, err)
		}
		parts, err := SplitValue(v, 0, []int{2, 0, 1})
		if err != nil {
			t.Fatal(err)
		}
		for i, want := range []Value{a, b, c} {
			if fmt.Sprint(parts[i].JSON()) != fmt.Sprint(want.JSON()) || parts[i].Kind() != KindJSON {
				t.Errorf("part %d = %v, want %v", i, parts[i].JSON(), want.JSON())
			}
		}
		s, err := SliceValue(v, 0, 1, 3)
		if err != nil || fmt.Sprint(s.JSON()) != "[x map[k:true]]" {
			t.Errorf("SliceValue = %v, %v", s.JSON(), err)
		}
		one, err := ConcatValues(0, []Value{a})
		if err != nil || fmt.Sprint(one.JSON()) != fmt.Sprint(a.JSON()) {
			t.Errorf("ConcatValues of one = %v, %v", one, err)
		}
	})
	tests := []struct {
		name string
		fn   func() error
		subs []string
	}{
		{"mixed kinds", func() error { _, err := ConcatValues(0, []Value{a, TextValue("x")}); return err },
			[]string{"value 1 is text, want a json array"}},
		{"object among arrays", func() error { _, err := ConcatValues(0, []Value{a, a, JSONValue(map[string]any{})}); return err },
			[]string{"value 2 is json object, want a json array"}},
		{"tensor then json", func() error {
			_, err := ConcatValues(0, []Value{TensorValue(must(Zeros(Float32, []int{1}))), a})
			return err
		}, []string{"value 1 is json array, want a tensor"}},
		{"json dim 1", func() error { _, err := ConcatValues(1, []Value{a, a}); return err },
			[]string{"batch dim 1", "want 0"}},
		{"text first", func() error { _, err := ConcatValues(0, []Value{TextValue("x")}); return err },
			[]string{"value 0 is text", "needs a tensor or a JSON array"}},
		{"none", func() error { _, err := ConcatValues(0, nil); return err }, []string{"no values given"}},
		{"split sizes", func() error { _, err := SplitValue(a, 0, []int{1}); return err },
			[]string{"sizes sum to 1, want 2 (length of the JSON array)"}},
		{"split dim", func() error { _, err := SplitValue(a, 1, []int{2}); return err }, []string{"batch dim 1"}},
		{"split text", func() error { _, err := SplitValue(TextValue("x"), 0, []int{1}); return err },
			[]string{"split: got text"}},
		{"split nil tensor", func() error { _, err := SplitValue(TensorValue(nil), 0, []int{1}); return err },
			[]string{"tensor is nil"}},
		{"slice bounds", func() error { _, err := SliceValue(a, 0, 1, 3); return err },
			[]string{"range [1,3) is out of bounds for a JSON array of length 2"}},
		{"slice object", func() error { _, err := SliceValue(JSONValue(map[string]any{}), 0, 0, 0); return err },
			[]string{"got json object"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { wantErr(t, tt.fn(), tt.subs...) })
	}
}

func TestRows(t *testing.T) {
	x := must(Zeros(Float32, []int{3, 4}))
	ok := []struct {
		name string
		v    Value
		dim  int
		want int
	}{
		{"tensor dim 0", TensorValue(x), 0, 3},
		{"tensor dim 1", TensorValue(x), 1, 4},
		{"json array", JSONValue([]any{1.0, 2.0}), 0, 2},
	}
	for _, tt := range ok {
		t.Run(tt.name, func(t *testing.T) {
			if n, err := tt.v.Rows(tt.dim); err != nil || n != tt.want {
				t.Errorf("Rows(%d) = %d, %v, want %d", tt.dim, n, err, tt.want)
			}
		})
	}
	bad := []struct {
		name string
		v    Value
		dim  int
		subs []string
	}{
		{"text", TextValue("hi"), 0, []string{"got text", "needs a tensor or a JSON array"}},
		{"json object", JSONValue(map[string]any{}), 0, []string{"got json object", "needs a tensor or a JSON array"}},
		{"json number", JSONValue(1.0), 0, []string{"got json number"}},
		{"invalid", Value{}, 0, []string{"got invalid value"}},
		{"dim", TensorValue(x), 2, []string{"batch dim 2 is out of range for tensor float32[3 4], want 0..1"}},
		{"json dim", JSONValue([]any{}), 1, []string{"batch dim 1 is out of range for a JSON array, want 0"}},
		{"nil tensor", TensorValue(nil), 0, []string{"tensor is nil"}},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.v.Rows(tt.dim)
			wantErr(t, err, append([]string{"rows: "}, tt.subs...)...)
		})
	}
}

func TestIOSpec(t *testing.T) {
	f := func(shape ...int) Value { return TensorValue(must(Zeros(Float32, shape))) }
	spec := IOSpec{Kind: KindTensor, DType: Float32, Shape: []int{-1, 4}}
	tests := []struct {
		name string
		spec IOSpec
		v    Value
		err  string // "" means v must fit
	}{
		{"fits", spec, f(7, 4), ""},
		{"fits zero rows", spec, f(0, 4), ""},
		{"kind", spec, TextValue("x"), "got text, want tensor float32[-1 4]"},
		{"nil tensor", spec, TensorValue(nil), "got nil tensor, want tensor float32[-1 4]"},
		{"dtype", spec, TensorValue(must(Zeros(Float64, []int{2, 4}))), "dtype float64, want float32"},
		{"rank", spec, f(2, 3, 4), "shape [2 3 4] has 3 dims, want 2 ([-1 4])"},
		{"dim", spec, f(2, 5), "shape [2 5]: dim 1 is 5, want 4"},
		{"any dtype", IOSpec{Kind: KindTensor, Shape: []int{2}}, TensorValue(must(Zeros(String, []int{2}))), ""},
		{"any shape", IOSpec{Kind: KindTensor, DType: Float32}, f(1, 2, 3), ""},
		{"scalar spec", IOSpec{Kind: KindTensor, Shape: []int{}}, f(1), "shape [1] has 1 dims, want 0 ([])"},
		{"text", IOSpec{Kind: KindText}, TextValue("x"), ""},
		{"text got tensor", IOSpec{Kind: KindText}, f(2, 4), "got tensor float32[2 4], want text"},
		{"json", IOSpec{Kind: KindJSON}, JSONValue(map[string]any{}), ""},
		{"json got text", IOSpec{Kind: KindJSON}, TextValue(""), "got text, want json"},
		{"unspecified", IOSpec{}, TextValue("x"), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.spec.Check(tt.v)
			if tt.err == "" {
				if err != nil {
					t.Errorf("Check(%v) = %v, want nil", tt.v, err)
				}
				return
			}
			if err == nil || err.Error() != tt.err {
				t.Errorf("Check(%v) = %v, want %q", tt.v, err, tt.err)
			}
		})
	}
	strs := []struct {
		spec IOSpec
		want string
	}{
		{spec, "tensor float32[-1 4]"},
		{IOSpec{Kind: KindTensor}, "tensor"},
		{IOSpec{Kind: KindTensor, DType: Int64}, "tensor int64"},
		{IOSpec{Kind: KindTensor, Shape: []int{-1}}, "tensor any[-1]"},
		{IOSpec{Kind: KindText}, "text"},
		{IOSpec{Kind: KindJSON}, "json"},
		{IOSpec{}, "any"},
	}
	for _, tt := range strs {
		t.Run("string "+tt.want, func(t *testing.T) {
			if got := tt.spec.String(); got != tt.want {
				t.Errorf("String() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestIOSpecs(t *testing.T) {
	ids := IOSpec{Name: "ids", Kind: KindTensor, DType: Int64, Shape: []int{-1, -1}}
	scale := IOSpec{Name: "scale", Kind: KindTensor, DType: Float32, Shape: []int{}, Unbatched: true, Optional: true}
	tests := []struct {
		name  string
		l     IOSpecs
		str   string
		names string
	}{
		{"none", nil, "none", ""},
		{"one, named or not, reads as its spec", IOSpecs{ids}, "tensor int64[-1 -1]", "ids"},
		{"one with flags", IOSpecs{scale}, "tensor float32[] (unbatched) (optional)", "scale"},
		{"several, each named", IOSpecs{ids, scale}, "ids tensor int64[-1 -1], scale tensor float32[] (unbatched) (optional)", "ids, scale"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.l.String(); got != tt.str {
				t.Errorf("String() = %q, want %q", got, tt.str)
			}
			if got := tt.l.Names(); got != tt.names {
				t.Errorf("Names() = %q, want %q", got, tt.names)
			}
		})
	}
	l := IOSpecs{ids, scale}
	if l.Index("scale") != 1 || l.Index("ids") != 0 || l.Index("mask") != -1 {
		t.Errorf("Index: scale %d ids %d mask %d, want 1 0 -1", l.Index("scale"), l.Index("ids"), l.Index("mask"))
	}
}

func TestValueString(t *testing.T) {
	long := strings.Repeat("é", 50)
	tests := []struct {
		name string
		v    Value
		want string
	}{
		{"tensor", TensorValue(must(Zeros(Float32, []int{2, 4}))), "tensor float32[2 4]"},
		{"nil tensor", TensorValue(nil), "tensor <nil>"},
		{"text", TextValue("hello"), `text "hello"`},
		{"text long", TextValue(long), `text "` + strings.Repeat("é", 40) + `…"`},
		{"text exact", TextValue(strings.Repeat("a", 40)), `text "` + strings.Repeat("a", 40) + `"`},
		{"json array", JSONValue([]any{1.0, 2.0, 3.0}), "json [3 items]"},
		{"json one", JSONValue([]any{1.0}), "json [1 item]"},
		{"json object", JSONValue(map[string]any{"a": 1.0, "b": 2.0}), "json {2 keys}"},
		{"json string", JSONValue("hi"), `json "hi"`},
		{"json number", JSONValue(2.5), "json 2.5"},
		{"json bool", JSONValue(true), "json true"},
		{"json null", JSONValue(nil), "json null"},
		{"json struct", JSONValue(struct{ A int }{1}), "json (struct { A int })"},
		{"invalid", Value{}, "invalid value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.v.String(); got != tt.want {
				t.Errorf("String() = %q, want %q", got, tt.want)
			}
		})
	}
	v := TextValue("x")
	if v.Kind() != KindText || v.Text() != "x" || v.Tensor() != nil || v.JSON() != nil {
		t.Error("text value accessors")
	}
}

func TestEqual(t *testing.T) {
	a := must(NewTensor([]int{2}, []float32{1, 2}))
	tests := []struct {
		name string
		x, y *Tensor
		want bool
	}{
		{"same data", a, must(NewTensor([]int{2}, []float32{1, 2})), true},
		{"self", a, a, true},
		{"nil nil", nil, nil, true},
		{"nil", a, nil, false},
		{"data", a, must(NewTensor([]int{2}, []float32{1, 3})), false},
		{"shape", a, must(NewTensor([]int{1, 2}, []float32{1, 2})), false},
		{"dtype", a, must(NewTensor([]int{2}, []int32{0x3f800000, 0x40000000})), false},
		{"strings", must(NewStringTensor([]int{1}, []string{"a"})), must(NewStringTensor([]int{1}, []string{"b"})), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.x.Equal(tt.y); got != tt.want {
				t.Errorf("Equal = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestAllocs guards the hot path: a batch of any size costs a fixed number
// of allocations to concatenate and to split along dim 0.
func TestAllocs(t *testing.T) {
	ins := make([]*Tensor, 64)
	sizes := make([]int, 64)
	for i := range ins {
		ins[i] = must(Zeros(Float32, []int{1, 16}))
		sizes[i] = 1
	}
	if n := testing.AllocsPerRun(100, func() { _, _ = Concat(0, ins) }); n > 3 {
		t.Errorf("Concat: %v allocs, want <= 3 (tensor, shape, data)", n)
	}
	out := must(Concat(0, ins))
	if n := testing.AllocsPerRun(100, func() { _, _ = out.Split(0, sizes) }); n > 3 {
		t.Errorf("Split: %v allocs, want <= 3 (pointers, tensors, shapes)", n)
	}
	if n := testing.AllocsPerRun(100, func() { _, _ = TensorData[float32](out) }); n != 0 {
		t.Errorf("TensorData: %v allocs, want 0", n)
	}
}

func benchConcatSplit(b *testing.B, n, width int) {
	ins := make([]*Tensor, n)
	sizes := make([]int, n)
	for i := range ins {
		x, err := NewTensor([]int{1, width}, make([]float32, width))
		if err != nil {
			b.Fatal(err)
		}
		ins[i] = x
		sizes[i] = 1
	}
	b.ReportAllocs()
	for b.Loop() {
		out, err := Concat(0, ins)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := out.Split(0, sizes); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkConcatSplit64x256(b *testing.B) { benchConcatSplit(b, 64, 256) }
func BenchmarkConcatSplit64x4(b *testing.B)   { benchConcatSplit(b, 64, 4) }
