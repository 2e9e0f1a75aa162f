package v2pb

import (
	"encoding/binary"
	"math"
	"strings"
	"testing"

	"github.com/benchtop/benchtop/engine/tensor"
)

func TestRawRoundTrip(t *testing.T) {
	f32, _ := tensor.NewTensor([]int{2, 3}, []float32{1, -2.5, 3, float32(math.Inf(1)), 0, 6})
	i64, _ := tensor.NewTensor([]int{3}, []int64{-1, 1 << 40, 7})
	u8, _ := tensor.NewTensor([]int{4}, []uint8{0, 1, 254, 255})
	bools, _ := tensor.NewTensor([]int{2}, []bool{true, false})
	strs, _ := tensor.NewStringTensor([]int{3}, []string{"", "héllo", strings.Repeat("x", 300)})
	empty, _ := tensor.NewTensor([]int{0, 4}, []float32{})
	for _, want := range []*tensor.Tensor{f32, i64, u8, bools, strs, empty} {
		raw, err := RawBytes(want)
		if err != nil {
			t.Fatalf("%v: %v", want, err)
		}
		if len(raw) != RawSize(want) {
			t.Errorf("%v: RawSize %d, wrote %d", want, RawSize(want), len(raw))
		}
		got, err := DecodeRaw(raw, want.DType(), want.Shape())
		if err != nil {
			t.Fatalf("%v: decode: %v", want, err)
		}
		if !got.Equal(want) {
			t.Errorf("round trip: got %v, want %v", got, want)
		}
	}
}

// The wire layout is a fact of the protocol, not of this machine: pin it.
func TestRawLayoutIsLittleEndian(t *testing.T) {
	v, _ := tensor.NewTensor([]int{1}, []int32{0x01020304})
	raw, _ := RawBytes(v)
	if string(raw) != "\x04\x03\x02\x01" {
		t.Errorf("int32 0x01020304 = % x, want 04 03 02 01", raw)
	}
	s, _ := tensor.NewStringTensor([]int{2}, []string{"ab", "c"})
	raw, _ = RawBytes(s)
	if want := "\x02\x00\x00\x00ab\x01\x00\x00\x00c"; string(raw) != want {
		t.Errorf("BYTES [ab c] = % x, want % x", raw, want)
	}
}

func TestDecodeRawRefusesWhatDoesNotFit(t *testing.T) {
	lenPrefix := func(n uint32) string { return string(binary.LittleEndian.AppendUint32(nil, n)) }
	for _, tc := range []struct {
		name  string
		raw   string
		dt    tensor.DType
		shape []int
		want  string
	}{
		{"short numeric", "\x00\x00\x00", tensor.Float32, []int{1}, "raw data is 3 bytes, but FP32 [1] takes 4 bytes"},
		{"long numeric", "\x00\x00\x00\x00\x00", tensor.Float32, []int{1}, "raw data is 5 bytes"},
		{"bool not 0 or 1", "\x02", tensor.Bool, []int{1}, "want 0 or 1"},
		{"negative dim", "", tensor.Float32, []int{-1}, "dim 0 is -1"},
		{"overflowing count", "", tensor.Float32, []int{math.MaxInt / 2, 4}, "more than"},
		{"string count beyond the bytes", lenPrefix(0), tensor.String, []int{1 << 40}, "too short for the 1099511627776 BYTES elements"},
		{"length that lies", lenPrefix(10) + "abc", tensor.String, []int{1}, "says it is 10 bytes, but only 3 bytes follow"},
		{"huge length", lenPrefix(math.MaxUint32) + "abc", tensor.String, []int{1}, "says it is 4294967295 bytes"},
		{"truncated prefix", lenPrefix(1) + "a" + "\x00\x00", tensor.String, []int{2}, "too short"},
		{"ends inside a prefix", lenPrefix(1) + "a" + "\x00\x00\x00", tensor.String, []int{2}, "ends inside the length of BYTES element 1"},
		{"trailing bytes", lenPrefix(1) + "ab", tensor.String, []int{1}, "raw data has 1 byte after the 1 BYTES elements"},
		{"invalid dtype", "", tensor.DTypeInvalid, []int{1}, "not valid"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeRaw([]byte(tc.raw), tc.dt, tc.shape)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to say %q", err, tc.want)
			}
		})
	}
}

// A misaligned sub-slice of a wire buffer (the common case: a tensor that
// follows a JSON header) decodes to the right values.
func TestDecodeRawMisaligned(t *testing.T) {
	want, _ := tensor.NewTensor([]int{3}, []float64{1.5, -2, 1e300})
	raw, _ := RawBytes(want)
	buf := append([]byte{0xff}, raw...)
	got, err := DecodeRaw(buf[1:], tensor.Float64, []int{3})
	if err != nil || !got.Equal(want) {
		t.Fatalf("got %v, %v; want %v", got, err, want)
	}
}

// FuzzDecodeRaw: whatever the bytes and the shape claim, DecodeRaw returns
// an error or a tensor of exactly that shape whose raw form is the input.
func FuzzDecodeRaw(f *testing.F) {
	f.Add([]byte("\x01\x00\x00\x00a"), uint8(tensor.String), 1, 1)
	f.Add([]byte("\x00\x00\x80\x3f"), uint8(tensor.Float32), 1, 1)
	f.Add([]byte("\xff\xff\xff\xff"), uint8(tensor.String), 1, 1)
	f.Add([]byte{}, uint8(tensor.Int64), 1<<30, 1<<30)
	f.Add([]byte("\x01\x00"), uint8(tensor.Bool), 2, 1)
	f.Fuzz(func(t *testing.T, raw []byte, dt uint8, d0, d1 int) {
		shape := []int{d0, d1}
		got, err := DecodeRaw(raw, tensor.DType(dt), shape)
		if err != nil {
			return
		}
		if !equalInts(got.Shape(), shape) || got.DType() != tensor.DType(dt) {
			t.Fatalf("decoded %v from shape %v dtype %v", got, shape, tensor.DType(dt))
		}
		back, err := RawBytes(got)
		if err != nil || string(back) != string(raw) {
			t.Fatalf("re-encoded % x (%v), want % x", back, err, raw)
		}
	})
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
