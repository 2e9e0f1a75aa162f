package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/benchtop/benchtop/engine"
	"github.com/benchtop/benchtop/engine/enginetest"
	"github.com/benchtop/benchtop/engine/tensor"
	"github.com/benchtop/benchtop/server"
	"github.com/benchtop/benchtop/watcher"
)

// tokensClassify is a text classifier's signature: token ids and their
// mask, int64 [batch, seq], and an optional unbatched temperature; a label
// per row and two probabilities per row.
var tokensClassify = engine.MethodSpec{
	Name: "classify", Batchable: true,
	Inputs: tensor.IOSpecs{
		{Name: "input_ids", Kind: tensor.KindTensor, DType: tensor.Int64, Shape: []int{-1, -1}},
		{Name: "attention_mask", Kind: tensor.KindTensor, DType: tensor.Int64, Shape: []int{-1, -1}},
		{Name: "temperature", Kind: tensor.KindTensor, DType: tensor.Float32, Shape: []int{}, Unbatched: true, Optional: true},
	},
	Outputs: tensor.IOSpecs{
		{Name: "label", Kind: tensor.KindTensor, DType: tensor.Int64, Shape: []int{-1}},
		{Name: "probabilities", Kind: tensor.KindTensor, DType: tensor.Float32, Shape: []int{-1, 2}},
	},
}

// tokensType computes outputs every caller can check against its own
// input: label is the masked sum of a row's ids, probabilities the row's
// count of attended tokens and the temperature (1 when absent). Each
// batch costs 2 ms, so that concurrent callers share batches.
func tokensType() *engine.RunnableType {
	return &engine.RunnableType{
		Name:    "tokens",
		Methods: []engine.MethodSpec{tokensClassify},
		New: func(context.Context, engine.Env) (engine.Instance, error) {
			return tokensInstance{}, nil
		},
	}
}

type tokensInstance struct{}

func (tokensInstance) Call(ctx context.Context, _ string, in []tensor.Value) ([]tensor.Value, error) {
	a := engine.NewArgs(tokensClassify, in)
	ids, err := a.Tensor("input_ids")
	if err != nil {
		return nil, err
	}
	mask, err := a.Tensor("attention_mask")
	if err != nil {
		return nil, err
	}
	temp := float32(1)
	if a.Has("temperature") {
		t, _ := a.Tensor("temperature")
		temp = t.Float32s()[0]
	}
	rows, seq := ids.Shape()[0], ids.Shape()[1]
	if mask.Shape()[1] != seq {
		return nil, engine.InvalidInput(fmt.Errorf("attention_mask has %d tokens a row, input_ids %d", mask.Shape()[1], seq))
	}
	labels, probs := make([]int64, rows), make([]float32, 2*rows)
	for r := range rows {
		for j := range seq {
			m := mask.Int64s()[r*seq+j]
			labels[r] += ids.Int64s()[r*seq+j] * m
			probs[2*r] += float32(m)
		}
		probs[2*r+1] = temp
	}
	select {
	case <-time.After(2 * time.Millisecond):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	lt, _ := tensor.NewTensor([]int{rows}, labels)
	pt, _ := tensor.NewTensor([]int{rows, 2}, probs)
	out := engine.NewResults(tokensClassify)
	out.SetTensor("label", lt)
	out.SetTensor("probabilities", pt)
	return out.Values()
}

const namedConfig = `
runners:
  - name: tokens
    runnable: tokens
    workers: 1
    batching: {max_batch_size: 64, max_latency_ms: 5000}
  - name: sentiment
    runnable: sentiment
    workers: 1
  - name: echo
    runnable: echo
    workers: 1
apis:
  - {name: tokens, runner: tokens, method: classify, input: object, output: object}
  - {name: classify, runner: sentiment, method: classify, input: object, output: object}
  - {name: label-only, runner: sentiment, method: scores, input: object, output: ndarray}
`

// newNamedFixture serves namedConfig: the tokens runnable beside the
// samples.
func newNamedFixture(t *testing.T) *fixture {
	t.Helper()
	prom := prometheus.NewPedanticRegistry()
	eng := enginetest.New(t, enginetest.Options{Samples: true, Engine: engine.Options{Registerer: prom}}, tokensType())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cfg, err := watcher.ParseAndValidate(ctx, "named.yaml", []byte(namedConfig), eng, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if _, err := eng.Apply(ctx, cfg.Plan); err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(eng, server.Options{Registerer: prom, Gatherer: prom})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	return &fixture{t: t, eng: eng, srv: srv, url: ts.URL}
}

func TestObjectAPI(t *testing.T) {
	f := newNamedFixture(t)
	cases := []struct {
		name, path, body string
		status           int
		want             string // the whole body for a 200, part of the error otherwise
	}{
		{"two inputs, two outputs", "/tokens", `{"input_ids": [[1, 2, 3], [4, 5, 6]], "attention_mask": [[1, 1, 0], [1, 0, 0]]}`,
			200, `{"label":[3,4],"probabilities":[[2.0,1.0],[1.0,1.0]]}` + "\n"},
		{"optional scalar given", "/tokens", `{"input_ids": [[1]], "attention_mask": [[1]], "temperature": 0.5}`,
			200, `{"label":[1],"probabilities":[[1.0,0.5]]}` + "\n"},
		{"sample classify", "/classify", `{"texts": ["I love this!", "This is awful."], "threshold": 0.1}`,
			200, `{"positive":[true,false],`},
		{"object around one input", "/label-only", `{"input": ["great"]}`, 200, "["},

		{"missing input", "/tokens", `{"input_ids": [[1]]}`, 400, `missing input "attention_mask" (inputs: input_ids, attention_mask, temperature (optional))`},
		{"extra input", "/tokens", `{"input_ids": [[1]], "attention_mask": [[1]], "token_type_ids": [[0]]}`, 400, `unknown input "token_type_ids"`},
		{"misnamed input", "/tokens", `{"input_id": [[1]], "attention_mask": [[1]]}`, 400, `unknown input "input_id"`},
		{"input twice", "/tokens", `{"input_ids": [[1]], "input_ids": [[1]], "attention_mask": [[1]]}`, 400, `input "input_ids" is given twice`},
		{"wrongly typed", "/tokens", `{"input_ids": [[1]], "attention_mask": [[0.5]]}`, 400, `input "attention_mask": 0.5 at [0 0] is not an integer, want int64`},
		{"wrong rank", "/tokens", `{"input_ids": [1, 2], "attention_mask": [[1, 1]]}`, 400, `input "input_ids": shape [2] has 1 dims, want 2`},
		{"a list for a scalar", "/tokens", `{"input_ids": [[1]], "attention_mask": [[1]], "temperature": [1]}`, 400, `input "temperature": shape [1] has 1 dims, want 0`},
		{"batch sizes disagree", "/tokens", `{"input_ids": [[1], [2]], "attention_mask": [[1]]}`, 400,
			`inputs "input_ids" and "attention_mask" disagree on the batch size: 2 rows and 1 rows along dim 0`},
		{"not an object", "/tokens", `[[1]]`, 400, `body is a list, want a JSON object keyed by input name`},
		{"runnable's own refusal", "/classify", `{"texts": ["a"], "threshold": 3}`, 400, `threshold 3 is outside the score range [-1, 1]`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := f.do("POST", c.path, "application/json", c.body)
			if r.status != c.status {
				t.Fatalf("status %d, want %d: %s", r.status, c.status, r.body)
			}
			if c.status == 200 {
				if !strings.HasPrefix(r.body, c.want) {
					t.Fatalf("body %q, want %q", r.body, c.want)
				}
				if ct := r.header.Get("Content-Type"); ct != "application/json" {
					t.Errorf("content type %q", ct)
				}
				return
			}
			if msg, _ := r.json(t)["error"].(string); !strings.Contains(msg, c.want) {
				t.Fatalf("error %q does not say %q", msg, c.want)
			}
		})
	}
}

func TestV2SeveralInputsAndOutputs(t *testing.T) {
	f := newNamedFixture(t)
	ids := `{"name": "input_ids", "shape": [2, 3], "datatype": "INT64", "data": [1, 2, 3, 4, 5, 6]}`
	mask := `{"name": "attention_mask", "shape": [2, 3], "datatype": "INT64", "data": [[1, 1, 0], [1, 0, 0]]}`
	label := `{"name":"label","datatype":"INT64","shape":[2],"data":[3,4]}`
	probs := `{"name":"probabilities","datatype":"FP32","shape":[2,2],"data":[2.0,1.0,1.0,1.0]}`
	infer := func(inputs, outputs string) string {
		b := `{"id": "7", "inputs": [` + inputs + `]`
		if outputs != "" {
			b += `, "outputs": [` + outputs + `]`
		}
		return b + "}"
	}
	wantOuts := func(outs ...string) string {
		return `{"model_name":"tokens","model_version":"1","id":"7","outputs":[` + strings.Join(outs, ",") + "]}\n"
	}
	cases := []struct {
		name, model, body string
		status            int
		want              string // the whole body for a 200, part of the error otherwise
	}{
		{"every output", "tokens", infer(ids+","+mask, ""), 200, wantOuts(label, probs)},
		{"inputs in any order", "tokens", infer(mask+","+ids, ""), 200, wantOuts(label, probs)},
		{"a subset", "tokens", infer(ids+","+mask, `{"name": "probabilities"}`), 200, wantOuts(probs)},
		{"asked out of order, sent in spec order", "tokens", infer(ids+","+mask, `{"name": "probabilities"}, {"name": "label"}`), 200, wantOuts(label, probs)},
		{"an empty list asks for all", "tokens", infer(ids+","+mask, ` `), 200, wantOuts(label, probs)},
		{"rank-0 optional input", "tokens", infer(ids+","+mask+`, {"name": "temperature", "shape": [], "datatype": "FP32", "data": [0.5]}`, `{"name": "probabilities"}`),
			200, wantOuts(`{"name":"probabilities","datatype":"FP32","shape":[2,2],"data":[2.0,0.5,1.0,0.5]}`)},
		{"by runner.method", "tokens.classify", infer(ids+","+mask, `{"name": "label"}`), 200,
			`{"model_name":"tokens.classify","model_version":"1","id":"7","outputs":[` + label + "]}\n"},

		{"unknown output", "tokens", infer(ids+","+mask, `{"name": "logits"}`), 400, `unknown output "logits" (outputs: label, probabilities)`},
		{"output twice", "tokens", infer(ids+","+mask, `{"name": "label"}, {"name": "label"}`), 400, `output "label" is asked for twice`},
		{"missing input", "tokens", infer(ids, ""), 400, `missing input "attention_mask"`},
		{"extra input", "tokens", infer(ids+","+mask+`, {"name": "token_type_ids", "shape": [2, 3], "datatype": "INT64", "data": [0, 0, 0, 0, 0, 0]}`, ""),
			400, `unknown input "token_type_ids" (inputs: input_ids, attention_mask, temperature (optional))`},
		{"input twice", "tokens", infer(ids+","+ids+","+mask, ""), 400, `input "input_ids" is given twice`},
		{"wrong datatype", "tokens", infer(ids+`, {"name": "attention_mask", "shape": [2, 3], "datatype": "INT32", "data": [1, 1, 1, 1, 1, 1]}`, ""),
			400, `input "attention_mask" has datatype INT32, the model takes INT64`},
		{"wrong shape", "tokens", infer(ids+`, {"name": "attention_mask", "shape": [6], "datatype": "INT64", "data": [1, 1, 1, 1, 1, 1]}`, ""),
			400, `input "attention_mask": shape [6] has 1 dims, want 2`},
		{"batch sizes disagree", "tokens", infer(ids+`, {"name": "attention_mask", "shape": [1, 3], "datatype": "INT64", "data": [1, 1, 1]}`, ""),
			400, `inputs "input_ids" and "attention_mask" disagree on the batch size: 2 rows and 1 rows`},
		{"shape and data disagree", "tokens", infer(ids+`, {"name": "attention_mask", "shape": [2, 3], "datatype": "INT64", "data": [1, 1]}`, ""),
			400, `input "attention_mask": data: has 2 elements, want 6`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := f.do("POST", "/v2/models/"+c.model+"/infer", "application/json", c.body)
			if r.status != c.status {
				t.Fatalf("status %d, want %d: %s", r.status, c.status, r.body)
			}
			if c.status == 200 {
				if r.body != c.want {
					t.Fatalf("body\n %s\nwant\n %s", r.body, c.want)
				}
				return
			}
			if msg, _ := r.json(t)["error"].(string); !strings.Contains(msg, c.want) {
				t.Fatalf("error %q does not say %q", msg, c.want)
			}
		})
	}
}

// TestV2Metadata: every input and output under its own name with a real v2
// datatype; what v2's fields cannot say is in parameters.
func TestV2Metadata(t *testing.T) {
	f := newNamedFixture(t)
	type meta struct {
		Inputs, Outputs []struct {
			Name       string         `json:"name"`
			Datatype   *string        `json:"datatype"`
			Shape      []int          `json:"shape"`
			Parameters map[string]any `json:"parameters"`
		}
	}
	read := func(model string) meta {
		var m meta
		if r := f.do("GET", "/v2/models/"+model, "", ""); r.status != 200 || json.Unmarshal([]byte(r.body), &m) != nil {
			t.Fatalf("metadata of %s: %d %s", model, r.status, r.body)
		} else if strings.Contains(r.body, `"ANY"`) {
			t.Errorf("metadata of %s says ANY: %s", model, r.body)
		}
		return m
	}
	m := read("tokens")
	var got []string
	for _, s := range append(m.Inputs, m.Outputs...) {
		got = append(got, fmt.Sprintf("%s %s %v %v", s.Name, *s.Datatype, s.Shape, s.Parameters))
	}
	want := []string{
		"input_ids INT64 [-1 -1] map[]",
		"attention_mask INT64 [-1 -1] map[]",
		"temperature FP32 [] map[optional:true unbatched:true]",
		"label INT64 [-1] map[]",
		"probabilities FP32 [-1 2] map[]",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("tokens:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// echo takes a tensor of any dtype and shape: no datatype, the ones
	// accepted listed.
	in := read("echo").Inputs[0]
	if in.Datatype != nil || in.Parameters["any_shape"] != true || fmt.Sprint(in.Parameters["datatypes"]) != "[FP32 FP64 INT32 INT64 UINT8 BOOL BYTES]" {
		t.Fatalf("echo input: datatype %v, parameters %v", in.Datatype, in.Parameters)
	}
	// A text method: BYTES [1], saying it is text.
	if in := read("sentiment").Inputs[0]; *in.Datatype != "BYTES" || in.Parameters["content"] != "text" {
		t.Fatalf("sentiment input %+v", in)
	}
}

// TestConcurrentCallersOfSeveralInputs: callers with 1 to 4 rows of two
// sequence lengths, half through the object API and half through v2, each
// get exactly their own rows of every output, though they share batches.
func TestConcurrentCallersOfSeveralInputs(t *testing.T) {
	f := newNamedFixture(t)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	var wg sync.WaitGroup
	var mu sync.Mutex
	shared := 0 // answers from a batch of several requests
	for caller := range 64 {
		wg.Go(func() {
			rows, seq := 1+caller%4, 3+2*(caller%2)
			ids := make([][]int64, rows)
			mask := make([][]int64, rows)
			for r := range rows {
				ids[r], mask[r] = make([]int64, seq), make([]int64, seq)
				for j := range seq {
					ids[r][j] = int64(1000*caller + 10*r + j)
					mask[r][j] = int64((r + j + 1) % 2)
				}
			}
			var wantLabel []int64
			var wantProbs [][]float32
			for r := range rows {
				var sum int64
				var n float32
				for j := range seq {
					sum += ids[r][j] * mask[r][j]
					n += float32(mask[r][j])
				}
				wantLabel = append(wantLabel, sum)
				wantProbs = append(wantProbs, []float32{n, 1})
			}
			label, probs, batchRequests, err := callTokens(client, f.url, caller%2 == 0, ids, mask)
			if err != nil {
				t.Errorf("caller %d: %v", caller, err)
				return
			}
			if fmt.Sprint(label) != fmt.Sprint(wantLabel) || fmt.Sprint(probs) != fmt.Sprint(wantProbs) {
				t.Errorf("caller %d (%d rows of %d): label %v probabilities %v, want %v %v", caller, rows, seq, label, probs, wantLabel, wantProbs)
			}
			if batchRequests > 1 {
				mu.Lock()
				shared++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if shared == 0 {
		t.Errorf("no answer came from a batch of several requests: the test did not batch")
	}
}

// callTokens sends one request to the tokens runner, through the object API
// or v2, and returns its outputs and how many requests its batch held.
func callTokens(client *http.Client, base string, v2 bool, ids, mask [][]int64) (label []int64, probs [][]float32, batchRequests int, err error) {
	var body []byte
	url := base + "/tokens"
	if v2 {
		url = base + "/v2/models/tokens/infer"
		shape := []int{len(ids), len(ids[0])}
		body, _ = json.Marshal(map[string]any{"inputs": []map[string]any{
			{"name": "attention_mask", "shape": shape, "datatype": "INT64", "data": mask},
			{"name": "input_ids", "shape": shape, "datatype": "INT64", "data": ids},
		}})
	} else {
		body, _ = json.Marshal(map[string]any{"input_ids": ids, "attention_mask": mask})
	}
	resp, err := client.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		return nil, nil, 0, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return nil, nil, 0, fmt.Errorf("status %d: %s", resp.StatusCode, b)
	}
	fmt.Sscan(resp.Header.Get("X-Batch-Requests"), &batchRequests)
	if !v2 {
		var out struct {
			Label         []int64     `json:"label"`
			Probabilities [][]float32 `json:"probabilities"`
		}
		err := json.Unmarshal(b, &out)
		return out.Label, out.Probabilities, batchRequests, err
	}
	var out struct {
		Outputs []struct {
			Name  string          `json:"name"`
			Shape []int           `json:"shape"`
			Data  json.RawMessage `json:"data"`
		} `json:"outputs"`
	}
	if err := json.Unmarshal(b, &out); err != nil || len(out.Outputs) != 2 {
		return nil, nil, 0, fmt.Errorf("v2 answer %s: %v", b, err)
	}
	var flat []float32
	if err := json.Unmarshal(out.Outputs[0].Data, &label); err != nil {
		return nil, nil, 0, err
	}
	if err := json.Unmarshal(out.Outputs[1].Data, &flat); err != nil {
		return nil, nil, 0, err
	}
	for i := 0; i+1 < len(flat); i += 2 {
		probs = append(probs, flat[i:i+2])
	}
	// v2 answers carry X-Batch-Rows only: a batch of more rows than this
	// request's was shared.
	var rows int
	fmt.Sscan(resp.Header.Get("X-Batch-Rows"), &rows)
	if rows > len(ids) {
		batchRequests = 2
	}
	return label, probs, batchRequests, nil
}
