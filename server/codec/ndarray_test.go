package codec

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/benchtop/benchtop/engine/tensor"
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
func must(x *tensor.Tensor, err error) *tensor.Tensor {
	if err != nil {
		panic(err)
	}
	return x
}

func tf32(shape []int, v ...float32) *tensor.Tensor { return must(tensor.NewTensor(shape, v)) }
func tf64(shape []int, v ...float64) *tensor.Tensor { return must(tensor.NewTensor(shape, v)) }
func ti32(shape []int, v ...int32) *tensor.Tensor   { return must(tensor.NewTensor(shape, v)) }
func ti64(shape []int, v ...int64) *tensor.Tensor   { return must(tensor.NewTensor(shape, v)) }
func tu8(shape []int, v ...uint8) *tensor.Tensor    { return must(tensor.NewTensor(shape, v)) }
func tbool(shape []int, v ...bool) *tensor.Tensor   { return must(tensor.NewTensor(shape, v)) }
func tstr(shape []int, v ...string) *tensor.Tensor  { return must(tensor.NewStringTensor(shape, v)) }

func tensorSpec(dt tensor.DType, shape ...int) tensor.IOSpec {
	return tensor.IOSpec{Kind: tensor.KindTensor, DType: dt, Shape: shape}
}

// anySpec infers the dtype and accepts any shape.
var anySpec = tensor.IOSpec{Kind: tensor.KindTensor}

var negZero = math.Copysign(0, -1)

func TestDecodeNDArray(t *testing.T) {
	deep32 := strings.Repeat("[", 32) + "1" + strings.Repeat("]", 32)
	ones32 := make([]int, 32)
	for i := range ones32 {
		ones32[i] = 1
	}
	tests := []struct {
		name string
		body string
		spec tensor.IOSpec
		want *tensor.Tensor
	}{
		{"float32", `[[1, 2.5], [-3e2, 0.1]]`, tensorSpec(tensor.Float32, -1, 2), tf32([]int{2, 2}, 1, 2.5, -300, 0.1)},
		{"float32 exponents", `[1E3, 2e-3, 1.5E+2, 0.000001, 123456789012345678901234567890]`, tensorSpec(tensor.Float32),
			tf32([]int{5}, 1000, 0.002, 150, 1e-6, 1.2345679e29)},
		{"float32 underflow is zero", `[1e-50]`, tensorSpec(tensor.Float32), tf32([]int{1}, 0)},
		{"float32 max", `[3.4028234663852886e38, -3.4028235e38]`, tensorSpec(tensor.Float32), tf32([]int{2}, math.MaxFloat32, -math.MaxFloat32)},
		{"float64", `[1.5e-3, -0.0, 0, 1e308, 5e-324]`, tensorSpec(tensor.Float64), tf64([]int{5}, 1.5e-3, negZero, 0, 1e308, 5e-324)},
		{"float64 from ints", `[[1, -2]]`, tensorSpec(tensor.Float64), tf64([]int{1, 2}, 1, -2)},
		{"int32", `[[1,-2],[2147483647,-2147483648]]`, tensorSpec(tensor.Int32), ti32([]int{2, 2}, 1, -2, math.MaxInt32, math.MinInt32)},
		{"int64", `[9223372036854775807,-9223372036854775808, -0]`, tensorSpec(tensor.Int64), ti64([]int{3}, math.MaxInt64, math.MinInt64, 0)},
		{"uint8", `[0,255,7]`, tensorSpec(tensor.Uint8, 3), tu8([]int{3}, 0, 255, 7)},
		{"bool", `[[true,false]]`, tensorSpec(tensor.Bool), tbool([]int{1, 2}, true, false)},
		{"string escapes", `["a\"b", "\\", "\/", "\b\f\n\r\t", "\u00e9\u4E2D", "\ud83d\ude00", "héllo", "", "\u0000"]`, tensorSpec(tensor.String),
			tstr([]int{9}, "a\"b", `\`, "/", "\b\f\n\r\t", "é中", "😀", "héllo", "", "\x00")},
		{"string lone surrogates become U+FFFD", `["\ud800x", "\udc00", "\ud800\u0041", "\ud800\udbff"]`, tensorSpec(tensor.String),
			tstr([]int{4}, "\uFFFDx", "\uFFFD", "\uFFFDA", "\uFFFD\uFFFD")},
		{"string invalid UTF-8 becomes U+FFFD", "[\"a\xffb\", \"\xed\xa0\x80\"]", tensorSpec(tensor.String),
			tstr([]int{2}, "a\uFFFDb", "\uFFFD\uFFFD\uFFFD")},
		{"inferred int64", `[[1,2],[3,4]]`, anySpec, ti64([]int{2, 2}, 1, 2, 3, 4)},
		{"inferred float64 from a fraction", `[1, 2.5]`, anySpec, tf64([]int{2}, 1, 2.5)},
		{"inferred float64 from an exponent", `[[3], [1e2]]`, anySpec, tf64([]int{2, 1}, 3, 100)},
		{"inferred float64 forgives a big integer", `[1, 99999999999999999999, 0.5]`, anySpec, tf64([]int{3}, 1, 1e20, 0.5)},
		{"inferred integer -0 is 0 before a fraction", `[-0, 0.5]`, anySpec, tf64([]int{2}, 0, 0.5)},
		{"inferred integer -0 is 0 after a fraction", `[0.5, -0]`, anySpec, tf64([]int{2}, 0.5, 0)},
		{"inferred float -0.0 keeps its sign", `[-0.0, 1]`, anySpec, tf64([]int{2}, negZero, 1)},
		{"inferred bool", `[true,false]`, anySpec, tbool([]int{2}, true, false)},
		{"inferred string", `[["a"],["b"]]`, anySpec, tstr([]int{2, 1}, "a", "b")},
		{"rank 0 int", `7`, anySpec, ti64([]int{}, 7)},
		{"rank 0 float32", ` 2.5 `, tensorSpec(tensor.Float32), tf32([]int{}, 2.5)},
		{"rank 0 string", `"x"`, anySpec, tstr([]int{}, "x")},
		{"rank 0 fits an empty spec shape", `true`, tensor.IOSpec{Kind: tensor.KindTensor, Shape: []int{}}, tbool([]int{}, true)},
		{"whitespace", " \n\t\r[ 1 ,\n2 ]\r\n ", tensorSpec(tensor.Int32), ti32([]int{2}, 1, 2)},
		{"empty", `[]`, anySpec, tf64([]int{0})},
		{"empty rows", `[[],[]]`, anySpec, tf64([]int{2, 0})},
		{"empty int32", `[ ]`, tensorSpec(tensor.Int32, -1), ti32([]int{0})},
		{"empty string rows", `[[[]]]`, tensorSpec(tensor.String), tstr([]int{1, 1, 0})},
		{"32 dims", deep32, anySpec, ti64(ones32, 1)},
		{"zero spec accepts anything", `[1]`, tensor.IOSpec{}, ti64([]int{1}, 1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeNDArray([]byte(tt.body), tt.spec)
			if err != nil {
				t.Fatal(err)
			}
			if !got.Equal(tt.want) {
				t.Fatalf("got %s %s, want %s %s", got, AppendNDArray(nil, got), tt.want, AppendNDArray(nil, tt.want))
			}
		})
	}
}

func TestDecodeNDArrayErrors(t *testing.T) {
	tests := []struct {
		name string
		body string
		spec tensor.IOSpec
		want string // the whole message when exact, else substrings separated by |
		// exact says want is the whole message.
		exact bool
	}{
		{"ragged rows", `[[1,2,3,4],[1,2,3,4],[1,2,3,4,5]]`, anySpec,
			"ndarray: row [2] has 5 elements, want 4 (every row must have the same length)", true},
		{"ragged inner rows", `[[[1],[2]],[[3],[4,5]]]`, anySpec, "row [1 1] has 2 elements, want 1", false},
		{"ragged short row", `[[[1],[2]],[[3]]]`, anySpec, "row [1] has 1 elements, want 2", false},
		{"empty then full row", `[[],[1]]`, anySpec, "row [1] has 1 elements, want 0", false},
		{"list too deep", `[[1],[[2]]]`, anySpec, "element [1 0] is a list, want a number|rows must nest to the same depth|2 dims", false},
		{"scalar too shallow", `[[1],2]`, tensorSpec(tensor.Float32), "element [1] is a number, want a list|2 dims", false},
		{"list after empty rows", `[[],[[1]]]`, anySpec, "element [1 0] is a list", false},
		{"mixed number string", `[1,"x"]`, anySpec,
			`ndarray: element [1] is "x", want a number like element [0] (elements must be all numbers, all bools or all strings)`, true},
		{"mixed string bool", `[["a"],[true]]`, anySpec, `element [1 0] is true, want a string like element [0 0]`, false},
		{"mixed bool number", `[true, 1.5]`, anySpec, `element [1] is 1.5, want a bool like element [0]`, false},
		{"inferred null", `[1, null]`, anySpec, `element [1] is null|JSON has no NaN`, false},
		{"string for float32", `[[1,2],["x",3]]`, tensorSpec(tensor.Float32), `ndarray: element [1 0] is "x", want a number (float32)`, true},
		{"long string is cut", `["` + strings.Repeat("é", 50) + `"]`, tensorSpec(tensor.Int32), `is "ééééééééééééééééééé…, want an integer (int32)`, false},
		{"message stays valid UTF-8", "[\"a\xffb\"]", tensorSpec(tensor.Float32), "element [0] is \"a\uFFFDb\", want a number", false},
		{"null for float64", `[null]`, tensorSpec(tensor.Float64), "element [0] is null, want a number (float64) (JSON has no NaN or Infinity)", false},
		{"object", `[{"a":1}]`, tensorSpec(tensor.Float32), "element [0] is an object, want a number (float32)", false},
		{"top-level object", `{"a":1}`, tensorSpec(tensor.Float32), "ndarray: the value is a JSON object, want a nested list such as [[1,2],[3,4]] (or a bare scalar)", true},
		{"object after numbers", `[1, {}]`, anySpec, "element [1] is an object, want a number", false},
		{"number for bool", `[1]`, tensorSpec(tensor.Bool), "element [0] is 1, want true or false (bool)", false},
		{"null for bool", `[null]`, tensorSpec(tensor.Bool), "element [0] is null, want true or false (bool)", false},
		{"number for string", `[[1]]`, tensorSpec(tensor.String), "element [0 0] is 1, want a JSON string (string)", false},
		{"bool for int", `[false]`, tensorSpec(tensor.Int64), "element [0] is false, want an integer (int64)", false},
		{"rank 0 wrong kind", `"x"`, tensorSpec(tensor.Float32), `ndarray: the value is "x", want a number (float32)`, true},
		{"not an integer", `[[1,3.5]]`, tensorSpec(tensor.Int32), "ndarray: 3.5 at [0 1] is not an integer, want int32", true},
		{"integral float literal", `[3.0]`, tensorSpec(tensor.Int64), "3.0 at [0] is not an integer, want int64 (write it as 3)", false},
		{"exponent literal", `[1e2]`, tensorSpec(tensor.Uint8), "1e2 at [0] is not an integer, want uint8 (write it as 100)", false},
		{"rank 0 not an integer", `0.5`, tensorSpec(tensor.Int32), "ndarray: 0.5 is not an integer, want int32", true},
		{"uint8 too big", `[300]`, tensorSpec(tensor.Uint8), "ndarray: 300 at [0] is out of range for uint8 (0..255)", true},
		{"uint8 negative", `[1, -1]`, tensorSpec(tensor.Uint8), "-1 at [1] is out of range for uint8 (0..255)", false},
		{"int32 too big", `[2147483648]`, tensorSpec(tensor.Int32), "2147483648 at [0] is out of range for int32 (-2147483648..2147483647)", false},
		{"int32 too small", `[-2147483649]`, tensorSpec(tensor.Int32), "out of range for int32", false},
		{"int64 too big", `[9223372036854775808]`, tensorSpec(tensor.Int64), "9223372036854775808 at [0] is out of range for int64", false},
		{"int64 too small", `[-9223372036854775809]`, tensorSpec(tensor.Int64), "out of range for int64", false},
		{"int64 huge", `[123456789012345678901234567890]`, tensorSpec(tensor.Int64), "out of range for int64", false},
		{"inferred int64 too big", `[1, 99999999999999999999]`, anySpec, "99999999999999999999 at [1] is out of range for int64", false},
		{"float32 too big", `[1, 1e39]`, tensorSpec(tensor.Float32), "1e39 at [1] is out of range for float32 (±3.4028235e+38)", false},
		{"float64 too big", `[-1e309]`, tensorSpec(tensor.Float64), "-1e309 at [0] is out of range for float64", false},
		{"inferred float too big", `[1.5e999]`, anySpec, "out of range for float64", false},
		{"bad close", `[1,2}`, anySpec, "ndarray: invalid JSON at byte 4: unexpected '}'", false},
		{"trailing comma", `[1,]`, anySpec, "invalid JSON at byte 3: unexpected ']', want a value", false},
		{"empty body", ``, anySpec, "invalid JSON at byte 0: unexpected end of input", false},
		{"blank body", "  \n", anySpec, "invalid JSON at byte 3: unexpected end of input", false},
		{"unclosed list", `[1, 2`, anySpec, "invalid JSON at byte 5: unexpected end of input, want ',' or ']'", false},
		{"missing comma", `[1 2]`, anySpec, "invalid JSON at byte 3: unexpected '2', want ',' or ']'", false},
		{"leading zero", `[01]`, anySpec, "invalid JSON at byte 2: unexpected '1'", false},
		{"bare dot", `[1.]`, anySpec, "invalid JSON at byte 3: unexpected ']', want a digit after '.'", false},
		{"bare minus", `[-]`, anySpec, "invalid JSON at byte 2: unexpected ']', want a digit", false},
		{"bare exponent", `[1e+]`, anySpec, "byte 4: unexpected ']', want a digit in the exponent", false},
		{"plus sign", `[+1]`, anySpec, "byte 1: unexpected '+'", false},
		{"leading dot", `[.5]`, anySpec, "byte 1: unexpected '.'", false},
		{"NaN", `[NaN]`, tensorSpec(tensor.Float32), "byte 1: unexpected 'N'", false},
		{"Infinity", `[1, Infinity]`, tensorSpec(tensor.Float32), "byte 4: unexpected 'I'", false},
		{"bad literal", `[tru]`, anySpec, `byte 4: unexpected ']', want "true"`, false},
		{"bad null", `[nul`, tensorSpec(tensor.Float32), `byte 4: unexpected end of input, want "null"`, false},
		{"unterminated string", `["abc`, anySpec, `byte 5: unexpected end of input, want '"' to end the string`, false},
		{"control character in string", "[\"a\nb\"]", anySpec, `byte 3: unexpected '\n', want no control characters`, false},
		{"bad escape", `["\q"]`, anySpec, `byte 3: unexpected 'q', want an escape`, false},
		{"short unicode escape", `["\u12G4"]`, anySpec, `byte 6: unexpected 'G', want 4 hex digits after \u`, false},
		{"escape at end", `["\`, anySpec, `byte 3: unexpected end of input`, false},
		{"single quotes", `['a']`, anySpec, `byte 1: unexpected '\''`, false},
		{"invalid byte", "[\xff]", anySpec, `byte 1: unexpected byte 0xff`, false},
		{"trailing garbage", `[1,2] x`, anySpec, "invalid JSON at byte 6: unexpected 'x', want end of input after the value", false},
		{"two values", `[1][2]`, anySpec, "invalid JSON at byte 3: unexpected '['", false},
		{"two scalars", `1 2`, anySpec, "invalid JSON at byte 2: unexpected '2'", false},
		{"too deep", strings.Repeat("[", 33) + "1" + strings.Repeat("]", 33), anySpec,
			"ndarray: list at byte 32 nests deeper than 32 dims, the most allowed", true},
		{"too deep and unclosed", strings.Repeat("[", 100000), anySpec, "deeper than 32 dims", false},
		{"spec dim", `[[1,2,3,4,5],[1,2,3,4,5]]`, tensorSpec(tensor.Float32, -1, 4), "ndarray: shape [2 5]: dim 1 is 5, want 4", true},
		{"spec rank", `[1,2]`, tensorSpec(tensor.Float32, -1, 2), "ndarray: shape [2] has 1 dims, want 2 ([-1 2])", true},
		{"spec rank 0", `[1]`, tensor.IOSpec{Kind: tensor.KindTensor, Shape: []int{}}, "shape [1] has 1 dims, want 0", false},
		{"spec empty is rank 1", `[]`, tensorSpec(tensor.Float32, -1, 4), "shape [0] has 1 dims, want 2", false},
		{"spec kind", `[1]`, tensor.IOSpec{Kind: tensor.KindText}, "ndarray: got a tensor, want text", true},
		{"spec dtype", `[1]`, tensor.IOSpec{Kind: tensor.KindTensor, DType: tensor.DType(99)}, "ndarray: spec dtype dtype(99) is not valid, want one of float32", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeNDArray([]byte(tt.body), tt.spec)
			if err == nil {
				t.Fatalf("decoded %s %s, want an error", got, AppendNDArray(nil, got))
			}
			if tt.exact {
				if err.Error() != tt.want {
					t.Fatalf("error\n%q\nwant\n%q", err, tt.want)
				}
				return
			}
			wantErr(t, err, strings.Split(tt.want, "|")...)
			if !strings.HasPrefix(err.Error(), "ndarray: ") {
				t.Errorf("error %q does not start with ndarray: ", err)
			}
		})
	}
}

// The decoded tensor must not alias the body, which an HTTP server reuses.
func TestDecodeNDArrayDoesNotAliasInput(t *testing.T) {
	for _, body := range []string{`["abc", "d\"ef"]`, `[1.5, 2]`, `[[1, 2]]`} {
		b := []byte(body)
		got := must(DecodeNDArray(b, anySpec))
		want := AppendNDArray(nil, got)
		for i := range b {
			b[i] = 'x'
		}
		if out := AppendNDArray(nil, got); string(out) != string(want) {
			t.Errorf("%s: after overwriting the body the tensor reads %s", body, out)
		}
	}
}

func TestDecodeTensorData(t *testing.T) {
	tests := []struct {
		name  string
		body  string
		dt    tensor.DType
		shape []int
		want  *tensor.Tensor
	}{
		{"flat", `[1,2,3,4,5,6]`, tensor.Float32, []int{2, 3}, tf32([]int{2, 3}, 1, 2, 3, 4, 5, 6)},
		{"nested like shape", `[[1,2,3],[4,5,6]]`, tensor.Int64, []int{2, 3}, ti64([]int{2, 3}, 1, 2, 3, 4, 5, 6)},
		{"nested unlike shape", `[[1,2],[3,4],[5,6]]`, tensor.Int32, []int{2, 3}, ti32([]int{2, 3}, 1, 2, 3, 4, 5, 6)},
		{"nested deeper", `[[[true],[false]],[[true],[true]]]`, tensor.Bool, []int{4}, tbool([]int{4}, true, false, true, true)},
		{"bytes", `["a", "b\n"]`, tensor.String, []int{2, 1}, tstr([]int{2, 1}, "a", "b\n")},
		{"uint8", `[0, 255]`, tensor.Uint8, []int{1, 2}, tu8([]int{1, 2}, 0, 255)},
		{"float64", `[0.1, -2]`, tensor.Float64, []int{2}, tf64([]int{2}, 0.1, -2)},
		{"scalar", `5`, tensor.Float32, []int{1}, tf32([]int{1}, 5)},
		{"scalar for rank 0", `5`, tensor.Int32, []int{}, ti32([]int{}, 5)},
		{"empty", `[]`, tensor.Float32, []int{0, 3}, tf32([]int{0, 3})},
		{"empty rows", `[[],[]]`, tensor.String, []int{5, 0}, tstr([]int{5, 0})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeTensorData([]byte(tt.body), tt.dt, tt.shape)
			if err != nil {
				t.Fatal(err)
			}
			if !got.Equal(tt.want) {
				t.Fatalf("got %s %s, want %s %s", got, AppendNDArray(nil, got), tt.want, AppendNDArray(nil, tt.want))
			}
		})
	}
}

func TestDecodeTensorDataErrors(t *testing.T) {
	tests := []struct {
		name  string
		body  string
		dt    tensor.DType
		shape []int
		want  string
	}{
		{"too few", `[1,2,3]`, tensor.Float32, []int{2, 2}, "data: has 3 elements, want 4 (the product of shape [2 2])"},
		{"too many", `[[1,2],[3,4],[5,6]]`, tensor.Int64, []int{2, 2}, "data: has 6 elements, want 4 (the product of shape [2 2])"},
		{"empty for nonempty", `[]`, tensor.Int64, []int{1}, "data: has 0 elements, want 1"},
		{"scalar for two", `1`, tensor.Int64, []int{2}, "data: has 1 elements, want 2"},
		{"ragged", `[[1,2],[3]]`, tensor.Float32, []int{3}, "data: row [1] has 1 elements, want 2"},
		{"element", `[1,"a"]`, tensor.Float32, []int{2}, `data: element [1] is "a", want a number (float32)`},
		{"range", `[1,256]`, tensor.Uint8, []int{2}, `data: 256 at [1] is out of range for uint8 (0..255)`},
		{"syntax", `[1,2`, tensor.Float32, []int{2}, `data: invalid JSON at byte 4: unexpected end of input`},
		{"dtype", `[1]`, tensor.DTypeInvalid, []int{1}, "data: dtype invalid is not valid, want one of float32"},
		{"shape", `[1]`, tensor.Float32, []int{-1}, "data: shape [-1]: dim 0 is -1, want >= 0"},
		{"huge shape does not allocate", `[1,2]`, tensor.Float32, []int{1 << 30, 1 << 20}, "data: has 2 elements, want 1125899906842624"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeTensorData([]byte(tt.body), tt.dt, tt.shape)
			wantErr(t, err, tt.want)
		})
	}
}

func TestAppendNDArray(t *testing.T) {
	nan, inf := math.NaN(), math.Inf(1)
	tests := []struct {
		name       string
		t          *tensor.Tensor
		want, flat string
	}{
		{"float32", tf32([]int{2, 3}, 0.1, 1, float32(negZero), 1.5e-8, 1e20, -3.25),
			`[[0.1,1.0,-0.0],[1.5e-08,1e+20,-3.25]]`, `[0.1,1.0,-0.0,1.5e-08,1e+20,-3.25]`},
		{"float32 shortest", tf32([]int{2}, 16777216, 3.4028235e38), `[1.6777216e+07,3.4028235e+38]`, `[1.6777216e+07,3.4028235e+38]`},
		{"float64", tf64([]int{3}, 0.1, 100000, 1e21), `[0.1,100000.0,1e+21]`, `[0.1,100000.0,1e+21]`},
		{"NaN and Inf are null", tf64([]int{2, 2}, nan, inf, -inf, 2), `[[null,null],[null,2.0]]`, `[null,null,null,2.0]`},
		{"float32 NaN", tf32([]int{}, float32(nan)), `null`, `[null]`},
		{"int32", ti32([]int{1, 2}, math.MinInt32, 7), `[[-2147483648,7]]`, `[-2147483648,7]`},
		{"int64", ti64([]int{2}, math.MaxInt64, -1), `[9223372036854775807,-1]`, `[9223372036854775807,-1]`},
		{"uint8", tu8([]int{3, 1}, 0, 128, 255), `[[0],[128],[255]]`, `[0,128,255]`},
		{"bool", tbool([]int{2}, true, false), `[true,false]`, `[true,false]`},
		{"strings", tstr([]int{2, 3}, "a\"b\\c", "\n\t\r\x01\x7f", "\u2028\u2029", "x\xffy", "é😀", "</>&"),
			`[["a\"b\\c","\n\t\r\u0001` + "\x7f" + `","\u2028\u2029"],["x\ufffdy","é😀","</>&"]]`,
			`["a\"b\\c","\n\t\r\u0001` + "\x7f" + `","\u2028\u2029","x\ufffdy","é😀","</>&"]`},
		{"rank 0", tf64([]int{}, 3.5), `3.5`, `[3.5]`},
		{"rank 0 string", tstr([]int{}, "hi"), `"hi"`, `["hi"]`},
		{"empty", tf32([]int{0}), `[]`, `[]`},
		{"empty rows", ti64([]int{2, 0}), `[[],[]]`, `[]`},
		{"empty outer", ti64([]int{0, 3}), `[]`, `[]`},
		{"empty middle", tstr([]int{2, 0, 3}), `[[],[]]`, `[]`},
		{"rank 3", ti32([]int{2, 1, 2}, 1, 2, 3, 4), `[[[1,2]],[[3,4]]]`, `[1,2,3,4]`},
		{"nil", nil, `null`, `[]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(AppendNDArray([]byte("x="), tt.t)); got != "x="+tt.want {
				t.Errorf("AppendNDArray = %s, want x=%s", got, tt.want)
			}
			if got := string(AppendFlat([]byte("x="), tt.t)); got != "x="+tt.flat {
				t.Errorf("AppendFlat = %s, want x=%s", got, tt.flat)
			}
			if !json.Valid(AppendNDArray(nil, tt.t)) || !json.Valid(AppendFlat(nil, tt.t)) {
				t.Errorf("output is not valid JSON")
			}
		})
	}
}

// codecRandString draws from characters that stress escaping.
func codecRandString(r *rand.Rand) string {
	const alphabet = "ab \"\\/\n\t\x00\x1f\x7fé中😀\u2028<>&"
	runes := []rune(alphabet)
	n := r.IntN(8)
	var b strings.Builder
	for range n {
		b.WriteRune(runes[r.IntN(len(runes))])
	}
	return b.String()
}

// codecRandTensor fills a tensor of dt and shape with values that cover
// each dtype's range, special values included.
func codecRandTensor(r *rand.Rand, dt tensor.DType, shape []int) *tensor.Tensor {
	x := must(tensor.Zeros(dt, shape))
	switch dt {
	case tensor.Float32:
		xs := x.Float32s()
		for i := range xs {
			xs[i] = codecRandFloat32(r)
		}
	case tensor.Float64:
		xs := x.Float64s()
		for i := range xs {
			xs[i] = codecRandFloat64(r)
		}
	case tensor.Int32:
		xs := x.Int32s()
		for i := range xs {
			xs[i] = int32(r.Uint32())
		}
	case tensor.Int64:
		xs := x.Int64s()
		for i := range xs {
			xs[i] = int64(r.Uint64())
		}
	case tensor.Uint8:
		xs := x.Bytes()
		for i := range xs {
			xs[i] = uint8(r.IntN(256))
		}
	case tensor.Bool:
		xs := x.Bytes()
		for i := range xs {
			xs[i] = uint8(r.IntN(2))
		}
	case tensor.String:
		xs := x.Strings()
		for i := range xs {
			xs[i] = codecRandString(r)
		}
	}
	return x
}

// codecRandFloat32 draws a finite float32: any bit pattern (subnormals,
// extremes), an integral value or an ordinary one, each a shape the
// encoder writes differently. JSON cannot carry NaN or ±Inf, so those
// are drawn again.
func codecRandFloat32(r *rand.Rand) float32 {
	for {
		var f float32
		switch r.IntN(4) {
		case 0:
			f = math.Float32frombits(r.Uint32())
		case 1:
			f = float32(r.IntN(2000) - 1000)
		default:
			f = float32(r.NormFloat64())
		}
		if !math.IsNaN(float64(f)) && !math.IsInf(float64(f), 0) {
			return f
		}
	}
}

// codecRandFloat64 is codecRandFloat32 for float64, with ordinary values
// spread over 40 decades so that exponents are written too.
func codecRandFloat64(r *rand.Rand) float64 {
	for {
		var f float64
		switch r.IntN(4) {
		case 0:
			f = math.Float64frombits(r.Uint64())
		case 1:
			f = float64(r.IntN(2000) - 1000)
		default:
			f = r.NormFloat64() * math.Pow(10, float64(r.IntN(40)-20))
		}
		if !math.IsNaN(f) && !math.IsInf(f, 0) {
			return f
		}
	}
}

func TestNDArrayRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for dt := tensor.Float32; dt <= tensor.String; dt++ {
		t.Run(dt.String(), func(t *testing.T) {
			for range 300 {
				shape := make([]int, r.IntN(5))
				for i := range shape {
					shape[i] = r.IntN(5)
				}
				x := codecRandTensor(r, dt, shape)
				body := AppendNDArray(nil, x)
				got, err := DecodeNDArray(body, tensorSpec(dt, shape...))
				if zero := slices.Index(shape, 0); zero >= 0 && zero < len(shape)-1 {
					// Nested lists cannot show the dims after an empty
					// one: [2 0 3] is written [[],[]], which reads as [2 0].
					wantErr(t, err, "dims, want")
				} else if err != nil {
					t.Fatalf("%s: %v", body, err)
				} else if !got.Equal(x) {
					t.Fatalf("round trip of %s changed it: %s", body, AppendNDArray(nil, got))
				}
				// Inference gets the dtype back too, except for the dtypes
				// it never infers and for empty tensors.
				if x.Len() > 0 && dt != tensor.Float32 && dt != tensor.Int32 && dt != tensor.Uint8 {
					got, err := DecodeNDArray(body, anySpec)
					if err != nil || !got.Equal(x) {
						t.Fatalf("inferred round trip of %s: %s %v", body, got, err)
					}
				}
				flat, err := DecodeTensorData(AppendFlat(nil, x), dt, shape)
				if err != nil || !flat.Equal(x) {
					t.Fatalf("flat round trip of %s: %s %v", body, flat, err)
				}
			}
		})
	}
}

// Strings must agree with encoding/json in both directions.
func TestNDArrayStringsMatchEncodingJSON(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	strs := make([]string, 2000)
	for i := range strs {
		strs[i] = codecRandString(r)
	}
	strs = append(strs, "\xff", "a\xc3", "\xed\xa0\x80")
	x := tstr([]int{len(strs)}, strs...)
	var back []string
	if err := json.Unmarshal(AppendNDArray(nil, x), &back); err != nil {
		t.Fatal(err)
	}
	for i, s := range strs {
		want := s
		if !utf8.ValidString(s) {
			// Each invalid byte becomes one U+FFFD.
			want = ""
			for _, r := range []rune(s) {
				want += string(r)
			}
		}
		if back[i] != want {
			t.Fatalf("encoding/json reads %s as %q, want %q", AppendNDArray(nil, tstr([]int{}, s)), back[i], want)
		}
	}
	body, err := json.Marshal(strs)
	if err != nil {
		t.Fatal(err)
	}
	got := must(DecodeNDArray(body, tensorSpec(tensor.String)))
	if !slices.Equal(got.Strings(), back) {
		t.Fatalf("decoding encoding/json's output disagrees with encoding/json")
	}
}

// The float fast paths must agree with strconv.ParseFloat exactly.
func TestDecodeFloatsMatchStrconv(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	var lits []string
	for range 100000 {
		var b []byte
		if r.IntN(2) == 0 {
			b = append(b, '-')
		}
		intDigits := r.IntN(12)
		if intDigits == 0 {
			b = append(b, '0')
		} else {
			b = append(b, byte('1'+r.IntN(9)))
			for range intDigits - 1 {
				b = append(b, byte('0'+r.IntN(10)))
			}
		}
		if fd := r.IntN(12); fd > 0 {
			b = append(b, '.')
			for range fd {
				b = append(b, byte('0'+r.IntN(10)))
			}
		}
		if r.IntN(3) == 0 {
			b = append(b, 'e')
			b = strconv.AppendInt(b, int64(r.IntN(55)-30), 10) // within float32's range
		}
		lits = append(lits, string(b))
	}
	// Decimals next to float32 midpoints, where double rounding through
	// float64 would go wrong if the fast path allowed it.
	for range 100000 {
		f := float32(r.Float64() * math.Pow(2, float64(r.IntN(30)-6)))
		mid := (float64(f) + float64(math.Nextafter32(f, float32(math.Inf(1))))) / 2
		for _, prec := range []int{6, 7, 8, 9, 10, 12, 14, 15, 16, 17} {
			lits = append(lits, strconv.FormatFloat(mid, 'f', prec, 64), strconv.FormatFloat(mid, 'g', prec, 64))
		}
		lits = append(lits, strconv.FormatFloat(mid, 'f', -1, 64))
	}
	body := []byte("[" + strings.Join(lits, ",") + "]")
	f32 := must(DecodeNDArray(body, tensorSpec(tensor.Float32))).Float32s()
	f64 := must(DecodeNDArray(body, tensorSpec(tensor.Float64))).Float64s()
	for i, s := range lits {
		w64, err := strconv.ParseFloat(s, 64)
		if err != nil {
			t.Fatal(err)
		}
		w32, err := strconv.ParseFloat(s, 32)
		if err != nil {
			t.Fatal(err)
		}
		if math.Float64bits(f64[i]) != math.Float64bits(w64) {
			t.Errorf("float64 %s = %v, strconv says %v", s, f64[i], w64)
		}
		if math.Float32bits(f32[i]) != math.Float32bits(float32(w32)) {
			t.Errorf("float32 %s = %v, strconv says %v", s, f32[i], float32(w32))
		}
	}
}

func TestExampleValue(t *testing.T) {
	specs := []tensor.IOSpec{
		{},
		{Kind: tensor.KindTensor},
		{Kind: tensor.KindText},
		{Kind: tensor.KindJSON},
		tensorSpec(tensor.Float32, -1, 4),
		tensorSpec(tensor.Float64, -1, -1, -1),
		tensorSpec(tensor.Int32, -1),
		tensorSpec(tensor.Int64, 1, -1),
		tensorSpec(tensor.Uint8, -1, 3, 8, 8),
		tensorSpec(tensor.Bool, 2, -1),
		tensorSpec(tensor.String, -1),
		tensorSpec(tensor.String),
		tensorSpec(tensor.Float32, 0, -1),
		{Kind: tensor.KindTensor, DType: tensor.Float64, Shape: []int{}},
		{Kind: tensor.KindTensor, DType: tensor.Int64, Shape: []int{}},
		{Kind: tensor.KindTensor, Shape: []int{-1, 300}},
	}
	for _, spec := range specs {
		t.Run(spec.String(), func(t *testing.T) {
			v := ExampleValue(spec)
			if err := spec.Check(v); err != nil {
				t.Fatalf("ExampleValue = %s: %v", v, err)
			}
			if v.Kind() != tensor.KindTensor || v.Tensor().Len() == 0 {
				return // an empty [0 4] is written [], which reads as [0]
			}
			// The example must also survive the wire: it is what a curl
			// example sends.
			body := AppendNDArray(nil, v.Tensor())
			got, err := DecodeNDArray(body, tensor.IOSpec{Kind: tensor.KindTensor, DType: v.Tensor().DType(), Shape: spec.Shape})
			if err != nil || !got.Equal(v.Tensor()) {
				t.Fatalf("%s does not decode back: %v", body, err)
			}
		})
	}
	wantBody := map[string]string{
		"float32": `[[0.1,0.2,0.3,0.4],[0.5,0.6,0.7,0.8]]`,
		"int64":   `[[1,2,3,4]]`,
		"bool":    `[[true,false,true,false],[true,false,true,false]]`,
		"string":  `["I love this!","This is awful."]`,
		"uint8":   `[1,2]`,
		"scalar":  `0.1`,
		"any":     `[[0.1,0.2,0.3,0.4]]`,
	}
	got := map[string]*tensor.Tensor{
		"float32": ExampleValue(tensorSpec(tensor.Float32, -1, 4)).Tensor(),
		"int64":   ExampleValue(tensorSpec(tensor.Int64, 1, -1)).Tensor(),
		"bool":    ExampleValue(tensorSpec(tensor.Bool, -1, -1)).Tensor(),
		"string":  ExampleValue(tensorSpec(tensor.String, -1)).Tensor(),
		"uint8":   ExampleValue(tensorSpec(tensor.Uint8, -1)).Tensor(),
		"scalar":  ExampleValue(tensor.IOSpec{Kind: tensor.KindTensor, DType: tensor.Float64, Shape: []int{}}).Tensor(),
		"any":     ExampleValue(tensor.IOSpec{Kind: tensor.KindTensor}).Tensor(),
	}
	for name, want := range wantBody {
		if body := string(AppendNDArray(nil, got[name])); body != want {
			t.Errorf("%s example = %s, want %s", name, body, want)
		}
	}
	if v := ExampleValue(tensor.IOSpec{Kind: tensor.KindText}); v.Text() != "I love this!" {
		t.Errorf("text example = %s", v)
	}
	if v := ExampleValue(tensor.IOSpec{Kind: tensor.KindJSON}); v.JSON().(map[string]any)["text"] != "I love this!" {
		t.Errorf("json example = %s", v)
	}
}

// codecFuzzSpecs are the specs the fuzzers pick from by index.
var codecFuzzShapes = [][]int{nil, {}, {-1}, {-1, -1}, {2, -1}, {-1, -1, -1}, {-1, 2}}

func codecFuzzSpec(dt, shape uint8) tensor.IOSpec {
	return tensor.IOSpec{Kind: tensor.KindTensor, DType: tensor.DType(dt % 8), Shape: codecFuzzShapes[int(shape)%len(codecFuzzShapes)]}
}

// codecFlatten lists the leaves of a value encoding/json decoded.
func codecFlatten(v any, out []any) []any {
	if l, ok := v.([]any); ok {
		for _, x := range l {
			out = codecFlatten(x, out)
		}
		return out
	}
	return append(out, v)
}

var codecFuzzSeeds = []string{
	`[[1,2],[3,4]]`, `[1.5, -2e3, 0.1]`, `[true, false]`, `["a", "b\u00e9\n"]`, `7`, `"x"`, `[]`, `[[],[]]`,
	`[[1,2],[3]]`, `[1, "x"]`, `[300, -1]`, `[3.5]`, `[1e39]`, `[1,2}`, `[1] x`, `[null]`, `[{}]`,
	`["\ud800"]`, "[\"\xff\"]", `[99999999999999999999, 0.5]`, `[-0, -0.0]`, `[[[[[[1]]]]]]`,
	strings.Repeat("[", 40) + strings.Repeat("]", 40), `[1e-50, 3.4028235e38]`, ` [ 1 , 2 ] `, `[01]`, `[1.]`,
}

func FuzzDecodeNDArray(f *testing.F) {
	for i, s := range codecFuzzSeeds {
		f.Add([]byte(s), uint8(i), uint8(i/8))
	}
	f.Fuzz(func(t *testing.T, body []byte, dt, shape uint8) {
		spec := codecFuzzSpec(dt, shape)
		x, err := DecodeNDArray(body, spec)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "ndarray: ") {
				t.Fatalf("error %q lacks the ndarray: prefix", err)
			}
			return
		}
		if !json.Valid(body) {
			t.Fatalf("decoded invalid JSON %q", body)
		}
		if err := spec.Check(tensor.TensorValue(x)); err != nil {
			t.Fatalf("result %s fails the spec: %v", x, err)
		}
		if x.Len() > len(body) {
			t.Fatalf("%d elements from %d bytes", x.Len(), len(body))
		}
		out := AppendNDArray(nil, x)
		y, err := DecodeNDArray(out, spec)
		if err != nil {
			t.Fatalf("re-decoding %s: %v", out, err)
		}
		if !y.Equal(x) {
			t.Fatalf("%q decoded to %s, which re-decoded as %s", body, out, AppendNDArray(nil, y))
		}
		flat, err := DecodeTensorData(AppendFlat(nil, x), x.DType(), x.Shape())
		if err != nil || !flat.Equal(x) {
			t.Fatalf("flat round trip of %s: %v", out, err)
		}
		codecAgreesWithEncodingJSON(t, body, spec, x)
	})
}

// codecAgreesWithEncodingJSON checks x, decoded from body, against
// encoding/json where the two decode the same way: float64 numbers and
// strings. It is the fuzz target's oracle for values, where the round
// trips can only catch a decoder and encoder that disagree.
func codecAgreesWithEncodingJSON(t *testing.T, body []byte, spec tensor.IOSpec, x *tensor.Tensor) {
	t.Helper()
	if x.DType() != tensor.Float64 && x.DType() != tensor.String {
		return
	}
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("encoding/json rejects %q: %v", body, err)
	}
	leaves := codecFlatten(v, nil)
	if len(leaves) != x.Len() {
		t.Fatalf("encoding/json sees %d elements, want %d", len(leaves), x.Len())
	}
	for i, l := range leaves {
		switch x.DType() {
		case tensor.Float64:
			if l.(float64) == 0 && x.Float64s()[i] == 0 && spec.DType == tensor.DTypeInvalid {
				break // inference reads an integer -0 as 0, like numpy
			}
			if math.Float64bits(l.(float64)) != math.Float64bits(x.Float64s()[i]) {
				t.Fatalf("element %d: encoding/json says %v, got %v", i, l, x.Float64s()[i])
			}
		case tensor.String:
			if l.(string) != x.Strings()[i] {
				t.Fatalf("element %d: encoding/json says %q, got %q", i, l, x.Strings()[i])
			}
		}
	}
}

func FuzzDecodeTensorData(f *testing.F) {
	for i, s := range codecFuzzSeeds {
		f.Add([]byte(s), uint8(i), uint8(i*3), uint8(i%3))
	}
	f.Fuzz(func(t *testing.T, body []byte, dt, d0, d1 uint8) {
		shape := []int{int(d0 % 16), int(d1 % 4)}
		if d1%4 == 3 {
			shape = shape[:1]
		}
		x, err := DecodeTensorData(body, tensor.DType(dt%8), shape)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "data: ") {
				t.Fatalf("error %q lacks the data: prefix", err)
			}
			return
		}
		if !json.Valid(body) {
			t.Fatalf("decoded invalid JSON %q", body)
		}
		if x.DType() != tensor.DType(dt%8) || !slices.Equal(x.Shape(), shape) {
			t.Fatalf("got %s, want %s%v", x, tensor.DType(dt%8), shape)
		}
		out := AppendFlat(nil, x)
		y, err := DecodeTensorData(out, x.DType(), shape)
		if err != nil || !y.Equal(x) {
			t.Fatalf("%q decoded to %s, which re-decoded as %v %v", body, out, y, err)
		}
		if zero := slices.Index(shape, 0); zero >= 0 && zero < len(shape)-1 {
			return // nested lists cannot show dims after an empty one
		}
		z, err := DecodeNDArray(AppendNDArray(nil, x), tensor.IOSpec{Kind: tensor.KindTensor, DType: x.DType(), Shape: shape})
		if err != nil || !z.Equal(x) {
			t.Fatalf("nested round trip of %s: %v", out, err)
		}
	})
}

func codecBenchTensor() *tensor.Tensor {
	r := rand.New(rand.NewPCG(7, 8))
	xs := make([]float32, 64*256)
	for i := range xs {
		xs[i] = float32(r.NormFloat64())
	}
	return tf32([]int{64, 256}, xs...)
}

func BenchmarkDecodeNDArray(b *testing.B) {
	body := AppendNDArray(nil, codecBenchTensor())
	spec := tensorSpec(tensor.Float32, -1, 256)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeNDArray(body, spec); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendNDArray(b *testing.B) {
	x := codecBenchTensor()
	buf := AppendNDArray(nil, x)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendNDArray(buf[:0], x)
	}
}

// codecBenchTokens is a batch of token ids, the usual int64 input.
func codecBenchTokens() *tensor.Tensor {
	r := rand.New(rand.NewPCG(7, 8))
	xs := make([]int64, 64*256)
	for i := range xs {
		xs[i] = int64(r.IntN(30000))
	}
	return ti64([]int{64, 256}, xs...)
}

// codecBenchTexts is a batch of sentences, mostly ASCII, with the
// accents, quotes and newlines that send the string scanner off its
// fast path now and then.
func codecBenchTexts() *tensor.Tensor {
	words := []string{"the", "model", "said", "\"hello\"", "café", "naïve", "line\nbreak", "tab\there", "中文", "ok"}
	r := rand.New(rand.NewPCG(7, 8))
	xs := make([]string, 64*16)
	for i := range xs {
		var b strings.Builder
		for j := range 4 + r.IntN(12) {
			if j > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(words[r.IntN(len(words))])
		}
		xs[i] = b.String()
	}
	return tstr([]int{64, 16}, xs...)
}

// BenchmarkDecodeNDArrayInt64 infers the dtype, as a spec without one
// does.
func BenchmarkDecodeNDArrayInt64(b *testing.B) {
	body := AppendNDArray(nil, codecBenchTokens())
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeNDArray(body, anySpec); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeNDArrayString(b *testing.B) {
	body := AppendNDArray(nil, codecBenchTexts())
	spec := tensorSpec(tensor.String, -1, 16)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeNDArray(body, spec); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendNDArrayInt64(b *testing.B) {
	x := codecBenchTokens()
	buf := AppendNDArray(nil, x)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendNDArray(buf[:0], x)
	}
}

func BenchmarkAppendNDArrayString(b *testing.B) {
	x := codecBenchTexts()
	buf := AppendNDArray(nil, x)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendNDArray(buf[:0], x)
	}
}
