package process

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/benchtop/benchtop/engine/tensor"
	"github.com/benchtop/benchtop/samples"
)

// docExamples reads the ```hexdump NAME and ```json NAME blocks of
// docs/WORKER_PROTOCOL.md, so that the examples users copy are the bytes
// this package sends and accepts.
func docExamples(t *testing.T) map[string][]byte {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "..", "docs", "WORKER_PROTOCOL.md"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string][]byte{}
	var name string
	raw := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "```hexdump "):
			name, raw = strings.TrimPrefix(line, "```hexdump "), false
		case strings.HasPrefix(line, "```json "):
			name, raw = strings.TrimPrefix(line, "```json "), true
		case line == "```":
			name = ""
		case name != "" && raw:
			out[name] = append(out[name], line+"\n"...)
		case name != "":
			// "0000  89 42 …  ascii": the bytes sit between the offset and
			// the two spaces before the ASCII column.
			fields := strings.SplitN(line, "  ", 3)
			if len(fields) < 2 {
				t.Fatalf("hexdump %s: bad line %q", name, line)
			}
			b, err := hex.DecodeString(strings.ReplaceAll(fields[1], " ", ""))
			if err != nil {
				t.Fatalf("hexdump %s: %v in %q", name, err, line)
			}
			out[name] = append(out[name], b...)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestProtocolDocExamples(t *testing.T) {
	ex := docExamples(t)
	f32 := func(data ...float32) tensor.Value {
		return tensorValue(tensor.NewTensor([]int{2, 2}, data))
	}
	t.Run("HELLO", func(t *testing.T) {
		payload, err := json.Marshal(helloMsg{Protocol: minProtocol, MaxProtocol: maxProtocol, Runner: "py-sentiment", Worker: 0, Threads: 1, GPUs: []int{}, Init: map[string]any{"threshold": 0.05}})
		if err != nil {
			t.Fatal(err)
		}
		want := append(appendHeader(nil, msgHello, 0, len(payload)), payload...)
		if !bytes.Equal(ex["HELLO"], want) {
			t.Errorf("doc\n%x\nwant\n%x", ex["HELLO"], want)
		}
	})
	t.Run("READY", func(t *testing.T) { checkDocReady(t, ex["READY"]) })
	t.Run("CALL", func(t *testing.T) {
		want, err := appendCall(nil, 7, "double", []tensor.Value{f32(1, 2, 3, 4)})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(ex["CALL"], want) {
			t.Errorf("doc\n%x\nwant\n%x", ex["CALL"], want)
		}
	})
	classifyIn := []tensor.Value{
		tensorValue(tensor.NewStringTensor([]int{2}, []string{"great!", "meh"})),
		tensorValue(tensor.NewTensor([]int{}, []float32{0.5})),
	}
	t.Run("CALL_TUPLE", func(t *testing.T) {
		want, err := appendCall(nil, 9, "classify", classifyIn)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(ex["CALL_TUPLE"], want) {
			t.Errorf("doc\n%x\nwant\n%x", ex["CALL_TUPLE"], want)
		}
	})
	t.Run("RESULT_TUPLE", func(t *testing.T) {
		b := ex["RESULT_TUPLE"]
		h, err := parseHeader(b[:headerSize])
		if err != nil || h.typ != msgResult || h.id != 9 || h.n != len(b)-headerSize {
			t.Fatalf("header %+v, %v", h, err)
		}
		outputs := tensor.IOSpecs{{Name: "positive"}, {Name: "scores"}}
		vs, err := decodeResult(append(alignedBytes(0), b[headerSize:]...), outputs)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := tensor.TensorData[bool](vs[0].Tensor()); err != nil || !slices.Equal(got, []bool{true, false}) {
			t.Errorf("positive %v, want [true false]", got)
		}
		// The doc's score is the Python sample's, which the Go sample's
		// equals to the bit.
		if got, want := vs[1].Tensor().Float32s(), []float32{float32(samples.Compound("great!")), 0}; !slices.Equal(got, want) {
			t.Errorf("scores %v, want %v", got, want)
		}
	})
	t.Run("RESULT", func(t *testing.T) {
		b := ex["RESULT"]
		h, err := parseHeader(b[:headerSize])
		if err != nil || h.typ != msgResult || h.id != 7 || h.n != len(b)-headerSize {
			t.Fatalf("header %+v, %v", h, err)
		}
		v, err := decodeValue(append(alignedBytes(0), b[headerSize:]...))
		if err != nil || !v.Tensor().Equal(f32(2, 4, 6, 8).Tensor()) {
			t.Errorf("value %v %v, %v", v, v.Tensor().Float32s(), err)
		}
	})
	t.Run("ERROR", func(t *testing.T) { checkDocError(t, ex["ERROR"]) })
	t.Run("SHUTDOWN", func(t *testing.T) {
		if want := appendHeader(nil, msgShutdown, 0, 0); !bytes.Equal(ex["SHUTDOWN"], want) {
			t.Errorf("doc %x, want %x", ex["SHUTDOWN"], want)
		}
	})
	for name, v := range map[string]tensor.Value{
		"STRINGS": tensorValue(tensor.NewStringTensor([]int{2}, []string{"hi", "héllo"})),
		"TEXT":    tensor.TextValue("great!"),
	} {
		t.Run(name, func(t *testing.T) {
			want, err := appendValue(nil, v)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(ex[name], want) {
				t.Errorf("doc %x, want %x", ex[name], want)
			}
		})
	}
}

// checkDocReady: the READY example declares the methods the doc says.
func checkDocReady(t *testing.T, b []byte) {
	var r readyMsg
	if err := decodeStrict(b, &r); err != nil {
		t.Fatal(err)
	}
	specs, err := specsFromReady(r)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range specs {
		got = append(got, s.Name+": "+signature(s))
	}
	want := []string{
		"is_positive: text → json, not batchable",
		"classify: texts tensor string[-1], threshold tensor float32[] (unbatched) (optional) → positive tensor bool[-1], scores tensor float32[-1], batchable along dim 0 → 0",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got %q, want %q", got, want)
	}
}

// checkDocError: the ERROR example answers call 8 as an invalid input.
func checkDocError(t *testing.T, b []byte) {
	h, err := parseHeader(b[:headerSize])
	if err != nil || h.typ != msgError || h.id != 8 {
		t.Fatalf("header %+v, %v", h, err)
	}
	var em errorMsg
	if err := decodeStrict(b[headerSize:], &em); err != nil || !em.InvalidInput || em.Message == "" {
		t.Errorf("got %+v, %v", em, err)
	}
}
