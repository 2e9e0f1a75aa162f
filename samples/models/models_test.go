package models_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/benchtop/benchtop/samples/models"
	"github.com/benchtop/benchtop/store"
	"github.com/benchtop/benchtop/store/onnxpb"
)

func TestSamplesDescribeThemselves(t *testing.T) {
	cases := []struct {
		m        *models.MLP
		in, out  string
		raw      bool
		initSize int
	}{
		{models.Small(), "float32[N 64]", "float32[N 10]", false, 64*256 + 256 + 256*256 + 256 + 256*10 + 10},
		{models.Large(), "float32[N 256]", "float32[N 10]", true, 256*1024 + 1024 + 1024*1024 + 1024 + 1024*10 + 10},
	}
	for _, c := range cases {
		t.Run(c.m.Name, func(t *testing.T) {
			pb, err := onnxpb.Read(c.m.ONNX)
			if err != nil {
				t.Fatal(err)
			}
			ins := pb.Graph.GraphInputs()
			if len(ins) != 1 || ins[0].Type() != c.in || len(pb.Graph.Outputs) != 1 || pb.Graph.Outputs[0].Type() != c.out {
				t.Fatalf("io %v → %v", ins, pb.Graph.Outputs)
			}
			n := 0
			for l, init := range pb.Graph.Initializers {
				var vals []float32
				if c.raw {
					if len(init.FloatData) != 0 {
						t.Fatalf("%s: float_data in a raw_data model", init.Name)
					}
					for i := 0; i < len(init.RawData); i += 4 {
						vals = append(vals, math.Float32frombits(binary.LittleEndian.Uint32(init.RawData[i:])))
					}
				} else {
					vals = init.FloatData
				}
				want := c.m.Weights[l/2]
				if l%2 == 1 {
					want = c.m.Biases[l/2]
				}
				if !slices.Equal(vals, want) {
					t.Fatalf("initializer %s does not hold the weights Forward uses", init.Name)
				}
				n += len(vals)
			}
			if n != c.initSize {
				t.Fatalf("%d parameters, want %d", n, c.initSize)
			}
		})
	}
}

func TestDeterministic(t *testing.T) {
	// Generated again from scratch (not the cached value): same bytes.
	a := models.Small().ONNX
	b := models.Regenerate("mlp-small")
	if !bytes.Equal(a, b) {
		t.Fatal("mlp-small differs between two generations")
	}
}

func TestForwardIsAClassifier(t *testing.T) {
	m := models.Small()
	x := make([]float32, 3*m.In())
	for i := range x {
		x[i] = float32(math.Sin(float64(i)))
	}
	p, err := m.Forward(x)
	if err != nil {
		t.Fatal(err)
	}
	if len(p) != 3*m.Out() {
		t.Fatalf("%d outputs", len(p))
	}
	for r := range 3 {
		var sum float64
		hi := float32(0)
		for _, v := range p[r*m.Out() : (r+1)*m.Out()] {
			sum += float64(v)
			hi = max(hi, v)
		}
		if math.Abs(sum-1) > 1e-5 {
			t.Fatalf("row %d sums to %v", r, sum)
		}
		// Neither flat nor one-hot: the weights make a useful test model.
		if hi < 0.15 || hi > 0.999 {
			t.Fatalf("row %d: top probability %v", r, hi)
		}
	}
	if _, err := m.Forward(x[:5]); err == nil {
		t.Fatal("a partial row was accepted")
	}
}

func TestEnsureSamples(t *testing.T) {
	s, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// Racing first runs import each sample once.
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() { _, errs[i] = models.EnsureSamples(ctx, s) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	all, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	var tags []string
	for _, m := range all {
		tags = append(tags, m.Name)
	}
	if !slices.Equal(tags, []string{"mlp-large", "mlp-small", "text-classifier"}) {
		t.Fatalf("store holds %v, want one version of each sample", tags)
	}
	again, err := models.EnsureSamples(ctx, s)
	if err != nil || len(again) != 3 || again[0].Version != all[1].Version {
		t.Fatalf("a second EnsureSamples changed the store: %v", err)
	}
	sig := all[0].Signatures["run"]
	if !sig.Batchable || sig.Inputs[0].String() != "x float32[-1 256]" || sig.Outputs[0].String() != "probs float32[-1 10]" {
		t.Fatalf("mlp-large signature %+v", sig)
	}
}

func TestTextClassifierDescribesItself(t *testing.T) {
	m := models.Text()
	pb, err := onnxpb.Read(m.ONNX)
	if err != nil {
		t.Fatal(err)
	}
	describe := func(vs []onnxpb.ValueInfo) []string {
		var s []string
		for _, v := range vs {
			s = append(s, v.Name+" "+v.Type())
		}
		return s
	}
	if got := describe(pb.Graph.GraphInputs()); !slices.Equal(got, []string{"input_ids int64[batch seq]", "attention_mask int64[batch seq]"}) {
		t.Fatalf("inputs %v", got)
	}
	if got := describe(pb.Graph.Outputs); !slices.Equal(got, []string{"label int64[batch]", "probabilities float32[batch 4]"}) {
		t.Fatalf("outputs %v", got)
	}
	meta := map[string]string{}
	for _, p := range pb.Metadata {
		meta[p.Key] = p.Value
	}
	if meta[models.VocabKey] != "1000" || !strings.Contains(pb.DocString, "[0, 1000)") {
		t.Fatalf("the vocabulary size is not documented: %v, %q", meta, pb.DocString)
	}
	if !bytes.Equal(m.ONNX, models.RegenerateText()) {
		t.Fatal("text-classifier differs between two generations")
	}
}

// TestTextClassifierForward: the reference computes a masked mean, so
// masked tokens (and padding) change nothing, an id out of the
// vocabulary reads as 0, and a row the mask keeps nothing of is the bias's.
func TestTextClassifierForward(t *testing.T) {
	m := models.Text()
	ids := []int64{
		5, 17, 942, 3, // row 0: all kept
		5, 17, 942, 777, // row 1: the last masked, so the same as row 0 but for the 3
		5, 17, 942, 3, // row 2: as row 0 with a 3 kept
		1000, -4, 0, 0, // row 3: out of the vocabulary, read as 0
		9, 9, 9, 9, // row 4: nothing kept
	}
	mask := []int64{
		1, 1, 1, 1,
		1, 1, 1, 0,
		1, 1, 1, 1,
		1, 1, 1, 1,
		0, 0, 0, 0,
	}
	labels, probs, err := m.Forward(ids, mask, 5)
	if err != nil {
		t.Fatal(err)
	}
	row := func(r int) []float32 { return probs[r*m.Classes : (r+1)*m.Classes] }
	for r := range 5 {
		var sum float64
		hi := 0
		for c, p := range row(r) {
			sum += float64(p)
			if p > row(r)[hi] {
				hi = c
			}
		}
		if math.Abs(sum-1) > 1e-5 || labels[r] != int64(hi) {
			t.Fatalf("row %d: probabilities %v sum to %v, label %d", r, row(r), sum, labels[r])
		}
	}
	if !slices.Equal(row(0), row(2)) {
		t.Fatalf("the same tokens gave %v and %v", row(0), row(2))
	}
	_, short, _ := m.Forward([]int64{5, 17, 942}, []int64{1, 1, 1}, 1)
	if !slices.Equal(row(1), short) {
		t.Fatalf("a masked token changed the result: %v, want %v", row(1), short)
	}
	_, zeros, _ := m.Forward([]int64{0, 0, 0, 0}, []int64{1, 1, 1, 1}, 1)
	if !slices.Equal(row(3), zeros) {
		t.Fatalf("ids out of the vocabulary: %v, want id 0's %v", row(3), zeros)
	}
	var hi float32
	for _, p := range row(0) {
		hi = max(hi, p)
	}
	if hi < 0.3 || hi > 0.999 {
		t.Fatalf("top probability %v: the weights make a poor test model", hi)
	}
	if _, _, err := m.Forward(ids[:7], mask[:7], 2); err == nil {
		t.Fatal("ragged rows were accepted")
	}
}
