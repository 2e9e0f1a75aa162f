package engine

import (
	"testing"

	"github.com/benchtop/benchtop/engine/tensor"
)

func tensorOf[T tensor.Numeric](t *testing.T, shape []int) tensor.Value {
	t.Helper()
	n, err := tensor.ElemCount(shape)
	if err != nil {
		t.Fatal(err)
	}
	x, err := tensor.NewTensor(shape, make([]T, n))
	if err != nil {
		t.Fatal(err)
	}
	return tensor.TensorValue(x)
}

func scalar(t *testing.T, v float32) tensor.Value {
	t.Helper()
	x, err := tensor.NewTensor([]int{}, []float32{v})
	if err != nil {
		t.Fatal(err)
	}
	return tensor.TensorValue(x)
}

func newMethod(s MethodSpec) *method {
	s = s.withDefaultNames()
	return &method{spec: s, keyParts: keyParts(s)}
}

func key(t *testing.T, m *method, in ...tensor.Value) string {
	t.Helper()
	k, err := m.groupKey(nil, in)
	if err != nil {
		t.Fatal(err)
	}
	return string(k)
}

// TestGroupKey: equal keys exactly where requests may share a batch.
func TestGroupKey(t *testing.T) {
	f32 := func(shape ...int) tensor.IOSpec {
		return tensor.IOSpec{Kind: tensor.KindTensor, DType: tensor.Float32, Shape: shape}
	}
	fixed := newMethod(MethodSpec{Name: "m", Batchable: true, Inputs: []tensor.IOSpec{f32(-1, 4)}, Outputs: []tensor.IOSpec{f32(-1)}})
	if fixed.keyParts != nil {
		t.Fatal("a signature that fixes every non-batch dim needs no key")
	}
	if k := key(t, fixed, tensorOf[float32](t, []int{3, 4})); k != "" {
		t.Fatalf("key %q, want empty", k)
	}

	seq := newMethod(MethodSpec{Name: "m", Batchable: true, Inputs: []tensor.IOSpec{f32(-1, -1)}, Outputs: []tensor.IOSpec{f32(-1)}})
	if key(t, seq, tensorOf[float32](t, []int{2, 7})) != key(t, seq, tensorOf[float32](t, []int{9, 7})) {
		t.Error("rows differ, the rest agrees: the keys must be equal")
	}
	if key(t, seq, tensorOf[float32](t, []int{2, 7})) == key(t, seq, tensorOf[float32](t, []int{2, 8})) {
		t.Error("sequence lengths differ: the keys must differ")
	}
	anyDType := newMethod(MethodSpec{Name: "m", Batchable: true, Inputs: []tensor.IOSpec{{Kind: tensor.KindTensor}}, Outputs: []tensor.IOSpec{{Kind: tensor.KindTensor}}})
	if key(t, anyDType, tensorOf[float32](t, []int{2, 3})) == key(t, anyDType, tensorOf[int32](t, []int{2, 3})) {
		t.Error("dtypes differ: the keys must differ")
	}
	if key(t, anyDType, tensorOf[float32](t, []int{2, 3})) == key(t, anyDType, tensorOf[float32](t, []int{2, 3, 1})) {
		t.Error("ranks differ: the keys must differ")
	}

	two := newMethod(MethodSpec{Name: "m", Batchable: true,
		Inputs: []tensor.IOSpec{
			{Name: "a", Kind: tensor.KindTensor, DType: tensor.Int64, Shape: []int{-1, -1}},
			{Name: "b", Kind: tensor.KindTensor, DType: tensor.Float32, Shape: []int{-1, -1}, Optional: true},
			{Name: "s", Kind: tensor.KindTensor, DType: tensor.Float32, Shape: []int{}, Unbatched: true, Optional: true},
			{Name: "t", Kind: tensor.KindText, Unbatched: true},
			{Name: "j", Kind: tensor.KindJSON, Unbatched: true},
		},
		Outputs: []tensor.IOSpec{{Name: "o", Kind: tensor.KindTensor}},
	})
	base := func() []tensor.Value {
		return []tensor.Value{tensorOf[int64](t, []int{2, 3}), tensorOf[float32](t, []int{2, 3}), scalar(t, 1), tensor.TextValue("x"),
			tensor.JSONValue(map[string]any{"k": 1.0, "l": []any{"v"}})}
	}
	want := key(t, two, base()...)
	same := base()
	same[0], same[1] = tensorOf[int64](t, []int{5, 3}), tensorOf[float32](t, []int{5, 3})
	same[4] = tensor.JSONValue(map[string]any{"l": []any{"v"}, "k": 1.0})
	if key(t, two, same...) != want {
		t.Error("only rows differ (and a JSON object's key order): the keys must be equal")
	}
	for name, change := range map[string]func(in []tensor.Value){
		"a's sequence length": func(in []tensor.Value) { in[0] = tensorOf[int64](t, []int{2, 4}) },
		"b's sequence length": func(in []tensor.Value) { in[1] = tensorOf[float32](t, []int{2, 4}) },
		"b absent":            func(in []tensor.Value) { in[1] = tensor.Value{} },
		"s absent":            func(in []tensor.Value) { in[2] = tensor.Value{} },
		"s's value":           func(in []tensor.Value) { in[2] = scalar(t, 2) },
		"t's value":           func(in []tensor.Value) { in[3] = tensor.TextValue("y") },
		"j's value":           func(in []tensor.Value) { in[4] = tensor.JSONValue(map[string]any{"k": 2.0}) },
	} {
		in := base()
		change(in)
		if key(t, two, in...) == want {
			t.Errorf("%s differs: the keys must differ", name)
		}
	}
	// Self-delimiting parts: text that ends where another begins is not
	// the same key.
	split := newMethod(MethodSpec{Name: "m", Batchable: true,
		Inputs: []tensor.IOSpec{
			{Name: "a", Kind: tensor.KindTensor, DType: tensor.Float32, Shape: []int{-1}},
			{Name: "x", Kind: tensor.KindText, Unbatched: true},
			{Name: "y", Kind: tensor.KindText, Unbatched: true},
		},
		Outputs: []tensor.IOSpec{{Name: "o", Kind: tensor.KindTensor}},
	})
	a := tensorOf[float32](t, []int{1})
	if key(t, split, a, tensor.TextValue("ab"), tensor.TextValue("c")) == key(t, split, a, tensor.TextValue("a"), tensor.TextValue("bc")) {
		t.Error(`"ab"+"c" and "a"+"bc" must not share a key`)
	}
}

// TestSubmitPathDoesNotAllocate: checking a one-input request and building
// its key cost no allocation, as before several inputs existed; a
// two-input request of open sequence length costs none either.
func TestSubmitPathDoesNotAllocate(t *testing.T) {
	sim := newMethod(MethodSpec{Name: "predict", Batchable: true,
		Inputs:  []tensor.IOSpec{{Kind: tensor.KindTensor, DType: tensor.Float32, Shape: []int{-1, -1}}},
		Outputs: []tensor.IOSpec{{Kind: tensor.KindTensor, DType: tensor.Float32, Shape: []int{-1, -1}}},
	})
	pair := newMethod(MethodSpec{Name: "score", Batchable: true,
		Inputs: []tensor.IOSpec{
			{Name: "ids", Kind: tensor.KindTensor, DType: tensor.Int64, Shape: []int{-1, -1}},
			{Name: "mask", Kind: tensor.KindTensor, DType: tensor.Float32, Shape: []int{-1, -1}},
		},
		Outputs: []tensor.IOSpec{{Name: "o", Kind: tensor.KindTensor}},
	})
	for _, c := range []struct {
		m  *method
		in []tensor.Value
	}{
		{sim, []tensor.Value{tensorOf[float32](t, []int{1, 4})}},
		{pair, []tensor.Value{tensorOf[int64](t, []int{2, 16}), tensorOf[float32](t, []int{2, 16})}},
	} {
		var buf [64]byte
		allocs := testing.AllocsPerRun(100, func() {
			if _, err := checkInputs(&c.m.spec, c.in); err != nil {
				t.Fatal(err)
			}
			k, err := c.m.groupKey(buf[:0], c.in)
			if err != nil || len(k) > len(buf) {
				t.Fatalf("key %q, %v", k, err)
			}
			_ = sizeOfAll(c.in)
		})
		if allocs != 0 {
			t.Errorf("%s: %v allocations per request, want 0", c.m.spec.Name, allocs)
		}
	}
}

func TestWithDefaultNames(t *testing.T) {
	in := []tensor.IOSpec{{Kind: tensor.KindText}}
	m := MethodSpec{Name: "m", Inputs: in, Outputs: []tensor.IOSpec{{Name: "answer", Kind: tensor.KindJSON}}}.withDefaultNames()
	if m.Inputs[0].Name != DefaultInputName || m.Outputs[0].Name != "answer" {
		t.Fatalf("names %q → %q, want input → answer", m.Inputs.Names(), m.Outputs.Names())
	}
	if in[0].Name != "" {
		t.Fatal("withDefaultNames changed its caller's slice")
	}
	two := MethodSpec{Name: "m", Inputs: []tensor.IOSpec{{Name: "a"}, {Name: "b"}}}.withDefaultNames()
	if two.Inputs.Names() != "a, b" {
		t.Fatalf("named inputs became %q", two.Inputs.Names())
	}
	if s := two.Inputs.String(); s != "a any, b any" {
		t.Fatalf("String %q, want each named", s)
	}
}
