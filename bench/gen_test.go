package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/benchtop/benchtop/engine"
	"github.com/benchtop/benchtop/engine/enginetest"
	"github.com/benchtop/benchtop/engine/tensor"
	"github.com/benchtop/benchtop/server"
	"github.com/benchtop/benchtop/server/codec"
)

func TestParseSpan(t *testing.T) {
	tests := []struct {
		in   string
		want Span
		err  string
	}{
		{"16", Span{16, 16}, ""},
		{"8..64", Span{8, 64}, ""},
		{" 1 .. 2 ", Span{1, 2}, ""},
		{"8-64", Span{}, `"8-64": want N or MIN..MAX, such as 16 or 8..64`},
		{"64..8", Span{}, `"64..8": want 1 ≤ MIN ≤ MAX`},
		{"0..8", Span{}, `"0..8": want 1 ≤ MIN ≤ MAX`},
		{"", Span{}, `"": want N or MIN..MAX`},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseSpan(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %v %v, want %v", got, err, tc.want)
			}
		})
	}
}

// tokenSpec is a text classifier's: token ids and their mask, int64
// [batch, seq], and an optional unbatched temperature.
var tokenSpec = engine.MethodSpec{
	Name: "classify", Batchable: true,
	Inputs: tensor.IOSpecs{
		{Name: "input_ids", Kind: tensor.KindTensor, DType: tensor.Int64, Shape: []int{-1, -1}},
		{Name: "attention_mask", Kind: tensor.KindTensor, DType: tensor.Int64, Shape: []int{-1, -1}},
		{Name: "temperature", Kind: tensor.KindTensor, DType: tensor.Float32, Shape: []int{}, Unbatched: true, Optional: true},
	},
	Outputs: tensor.IOSpecs{{Name: "label", Kind: tensor.KindTensor, DType: tensor.Int64, Shape: []int{-1}}},
}

// TestGenerate: every generated request fits the signature, its inputs
// agree on rows and sequence length, ids stay below the vocabulary, masks
// are ones then zeros, and sizes vary across the pool.
func TestGenerate(t *testing.T) {
	opts := GenOptions{Rows: Span{1, 3}, SeqLen: Span{4, 9}, Vocab: 50, Seed: 7}
	pool, err := Generate(tokenSpec, opts, 200)
	if err != nil {
		t.Fatal(err)
	}
	rowsSeen, seqSeen := map[int]bool{}, map[int]bool{}
	example := codec.ExampleValues(tokenSpec.Inputs)[2].Tensor()
	for k, in := range pool {
		if err := checkInputs(tokenSpec, in); err != nil {
			t.Fatalf("request %d: %v", k, err)
		}
		ids, mask := in[0].Tensor(), in[1].Tensor()
		rows, seq := ids.Shape()[0], ids.Shape()[1]
		if fmt.Sprint(mask.Shape()) != fmt.Sprint(ids.Shape()) {
			t.Fatalf("request %d: ids %v, mask %v", k, ids, mask)
		}
		if rows < 1 || rows > 3 || seq < 4 || seq > 9 {
			t.Fatalf("request %d: %d rows of %d, want 1..3 of 4..9", k, rows, seq)
		}
		rowsSeen[rows], seqSeen[seq] = true, true
		for _, id := range ids.Int64s() {
			if id < 0 || id >= 50 {
				t.Fatalf("request %d: id %d outside [0, 50)", k, id)
			}
		}
		for r := range rows {
			row := mask.Int64s()[r*seq : (r+1)*seq]
			if row[0] != 1 || strings.Contains(fmt.Sprint(row), "0 1") || strings.Trim(fmt.Sprint(row), "[]01 ") != "" {
				t.Fatalf("request %d: mask row %v, want ones then zeros", k, row)
			}
		}
		if !in[2].Tensor().Equal(example) {
			t.Fatalf("request %d: temperature %v, want the example, every time", k, in[2])
		}
	}
	if len(rowsSeen) != 3 || len(seqSeen) != 6 {
		t.Errorf("rows seen %v, sequence lengths seen %v: the pool does not vary", rowsSeen, seqSeen)
	}
	again, _ := Generate(tokenSpec, opts, 200)
	if !again[17][0].Tensor().Equal(pool[17][0].Tensor()) {
		t.Error("the same seed made another pool")
	}

	if _, err := Generate(tokenSpec, GenOptions{SeqLen: Span{8, 8}}, 1); err == nil || !strings.Contains(err.Error(), `input "input_ids": an integer input (token ids?) needs a range: give --vocab N`) {
		t.Fatalf("ids without a vocabulary: %v", err)
	}
	// A string input: sentences, as many as the rows.
	classify := engine.MethodSpec{Name: "classify", Batchable: true, Inputs: tensor.IOSpecs{{Name: "texts", Kind: tensor.KindTensor, DType: tensor.String, Shape: []int{-1}}}}
	pool, err = Generate(classify, GenOptions{Rows: Span{5, 5}}, 1)
	if err != nil || len(pool[0][0].Tensor().Strings()) != 5 || pool[0][0].Tensor().Strings()[0] == "" {
		t.Fatalf("strings: %v %v", pool, err)
	}
}

// tokensRunnable returns, per row, the masked sum of its ids.
func tokensRunnable() *engine.RunnableType {
	return &engine.RunnableType{
		Name: "tokens", Methods: []engine.MethodSpec{tokenSpec},
		New: func(context.Context, engine.Env) (engine.Instance, error) { return tokensInstance{}, nil },
	}
}

type tokensInstance struct{}

func (tokensInstance) Call(_ context.Context, _ string, in []tensor.Value) ([]tensor.Value, error) {
	a := engine.NewArgs(tokenSpec, in)
	ids, _ := a.Tensor("input_ids")
	mask, _ := a.Tensor("attention_mask")
	rows, seq := ids.Shape()[0], ids.Shape()[1]
	labels := make([]int64, rows)
	for i, id := range ids.Int64s() {
		labels[i/seq] += id * mask.Int64s()[i]
	}
	lt, _ := tensor.NewTensor([]int{rows}, labels)
	return []tensor.Value{tensor.TensorValue(lt)}, nil
}

// TestGeneratedLoad: generated requests of several inputs run without an
// error in process, through an object API and through v2, and batches
// form.
func TestGeneratedLoad(t *testing.T) {
	prom := prometheus.NewRegistry()
	eng := enginetest.New(t, enginetest.Options{Samples: true, Engine: engine.Options{Registerer: prom}}, tokensRunnable())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	plan, err := eng.Plan(ctx, engine.Config{
		Runners: []engine.RunnerConfig{
			{Name: "tokens", Runnable: "tokens", Workers: 1},
			{Name: "sentiment", Runnable: "sentiment", Workers: 1},
		},
		APIs: []engine.APISpec{
			{Name: "tokens", Runner: "tokens", Method: "classify", Input: engine.IOObject, Output: engine.IOObject},
			{Name: "classify", Runner: "sentiment", Method: "classify", Input: engine.IOObject, Output: engine.IOObject},
			{Name: "scores", Runner: "sentiment", Method: "scores", Input: engine.IONDArray, Output: engine.IONDArray},
			{Name: "analysis", Runner: "sentiment", Method: "is_positive", Input: engine.IOText, Output: engine.IOJSON},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := eng.Apply(ctx, plan); err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(eng, server.Options{Registerer: prom, Gatherer: prom})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)

	gen := &GenOptions{Rows: Span{1, 4}, SeqLen: Span{4, 16}, Vocab: 1000, Seed: 3}
	pool, err := Generate(tokenSpec, *gen, PoolSize)
	if err != nil {
		t.Fatal(err)
	}
	inproc, err := NewInProcess(eng, "tokens", "classify", pool...)
	if err != nil {
		t.Fatal(err)
	}
	targets := []Target{inproc}
	for _, path := range []string{"/tokens", "/v2/models/tokens/infer", "/classify", "/v2/models/sentiment.classify/infer", "/scores"} {
		h, err := NewHTTP(ctx, HTTPOptions{URL: ts.URL + path, Gen: gen, Conns: 4})
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		t.Cleanup(h.Close)
		if bodies, _ := h.Bodies(); len(bodies) != PoolSize {
			t.Fatalf("%s: %d bodies, want a pool of %d", path, len(bodies), PoolSize)
		}
		targets = append(targets, h)
	}
	// The v2 routes again with raw tensors (int64 ids and masks, BYTES
	// texts beside an FP32 scalar).
	for _, path := range []string{"/v2/models/tokens/infer", "/v2/models/sentiment.classify/infer"} {
		h, err := NewHTTP(ctx, HTTPOptions{URL: ts.URL + path, Gen: gen, Conns: 4, Binary: true})
		if err != nil {
			t.Fatalf("%s binary: %v", path, err)
		}
		t.Cleanup(h.Close)
		bodies, ct := h.Bodies()
		if len(bodies) != PoolSize || ct != "application/octet-stream" {
			t.Fatalf("%s binary: %d bodies of %s, want a pool of %d of application/octet-stream", path, len(bodies), ct, PoolSize)
		}
		for i, body := range bodies {
			checkBinaryBody(t, body, h.headerLens[i])
		}
		targets = append(targets, h)
	}
	for _, tg := range targets {
		res, err := Sweep(ctx, tg, []Level{{Concurrency: 4}}, quick())
		if err != nil {
			t.Fatalf("%s: %v", tg, err)
		}
		l := res.Levels[0]
		if l.OK == 0 || len(l.Errors) > 0 {
			t.Errorf("%s: %d ok, errors %v %v", tg, l.OK, l.Errors, l.ErrorSamples)
		}
	}

	// Without generation, a method of several inputs gets its example.
	for _, path := range []string{"/tokens", "/v2/models/tokens/infer", "/v2/models/tokens/infer (binary)"} {
		path, binary := strings.CutSuffix(path, " (binary)")
		h, err := NewHTTP(ctx, HTTPOptions{URL: ts.URL + path, Binary: binary})
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		t.Cleanup(h.Close)
		if err := h.Call(ctx); err != nil {
			t.Errorf("%s: the example fails: %v", path, err)
		}
	}
	// Generated bodies are tensors: a text API says so.
	if _, err := NewHTTP(ctx, HTTPOptions{URL: ts.URL + "/analysis", Gen: gen}); err == nil || !strings.Contains(err.Error(), "API /analysis takes text bodies") {
		t.Errorf("generating for a text API: %v", err)
	}
	if _, err := NewHTTP(ctx, HTTPOptions{URL: ts.URL + "/tokens", Gen: &GenOptions{}}); err == nil || !strings.Contains(err.Error(), "--vocab") {
		t.Errorf("ids without a vocabulary: %v", err)
	}
}

// checkBinaryBody: a body of Triton's binary data extension is a JSON
// header of the length given, then exactly the bytes its inputs'
// binary_data_size add up to; it asks for binary outputs.
func checkBinaryBody(t *testing.T, body []byte, headerLen string) {
	t.Helper()
	n, err := strconv.Atoi(headerLen)
	if err != nil || n > len(body) {
		t.Fatalf("header length %q for a body of %d bytes", headerLen, len(body))
	}
	var req struct {
		Inputs []struct {
			Name       string
			Data       any
			Parameters struct {
				BinaryDataSize *int `json:"binary_data_size"`
			}
		}
		Parameters struct {
			BinaryDataOutput bool `json:"binary_data_output"`
		}
	}
	if err := json.Unmarshal(body[:n], &req); err != nil {
		t.Fatalf("header %q: %v", body[:n], err)
	}
	sum := 0
	for _, in := range req.Inputs {
		if in.Parameters.BinaryDataSize == nil || in.Data != nil {
			t.Fatalf("input %q is not sent raw: %s", in.Name, body[:n])
		}
		sum += *in.Parameters.BinaryDataSize
	}
	if sum != len(body)-n || !req.Parameters.BinaryDataOutput {
		t.Fatalf("sizes add up to %d for %d raw bytes; binary_data_output %v", sum, len(body)-n, req.Parameters.BinaryDataOutput)
	}
}
