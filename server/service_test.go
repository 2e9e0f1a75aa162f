package server_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/benchtop/benchtop/server"
)

// composedConfig has a pipeline of two steps in a chain (sim doubles,
// echo returns it), a fan-out pipeline (one input to two runners), a
// pipeline whose second step refuses empty text, and the sample Go APIs.
const composedConfig = `
runners:
  - name: sim
    runnable: sim
    init: {fixed_ms: 5, per_row_ms: 0}
    workers: 1
    batching: {max_batch_size: 64, max_latency_ms: 5000}
  - {name: echo, runnable: echo, workers: 1}
  - {name: sentiment, runnable: sentiment, workers: 1, batching: {max_latency_ms: 0}}
  - {name: sentiment-strict, runnable: sentiment, init: {threshold: 0.5}, workers: 1, batching: {max_latency_ms: 0}}
apis:
  - name: twice
    steps:
      - {name: double, runner: sim, method: predict, inputs: {input: $input.x}}
      - {name: back, runner: echo, method: echo, inputs: {input: double.output}}
    outputs: {y: back.output}
    input: ndarray
    output: ndarray
  - name: fan
    steps:
      - {name: double, runner: sim, method: predict, inputs: {input: $input.x}}
      - {name: same, runner: echo, method: echo, inputs: {input: $input.x}}
    outputs: {doubled: double.output, same: same.output}
  - name: judge-text
    steps:
      - {name: copy, runner: echo, method: echo_text, inputs: {input: $input.text}}
      - {name: judge, runner: sentiment, method: is_positive, inputs: {input: copy.output}}
    outputs: {verdict: judge.output}
    input: text
    output: json
  - {name: analysis, func: sentiment-analysis, runners: {model: sentiment}}
  - {name: compare, func: sentiment-compare, runners: {lenient: sentiment, strict: sentiment-strict}}
`

// TestComposedAPIsUnderConcurrentCallers: 64 callers at once on a chain,
// a fan-out pipeline and a Go API fanning out to two runners, over real
// HTTP; each caller gets exactly its own answers, and the sim step still
// batches requests of different callers.
func TestComposedAPIsUnderConcurrentCallers(t *testing.T) {
	f := newFixtureConfig(t, composedConfig, server.Options{})
	texts := []struct {
		text            string
		lenient, strict bool
	}{{"I love this, it is great!", true, true}, {"it is good", true, false}, {"this is terrible", false, false}}
	var wg sync.WaitGroup
	for i := range 64 {
		wg.Go(func() {
			x := fmt.Sprintf("[[%d, %d.5]]", i, i)
			want := fmt.Sprintf("[[%d,%d]]", 2*i, 2*i+1)
			if r := f.post("/twice", "application/json", x); r.status != 200 || !sameJSON(r.body, want) {
				t.Errorf("caller %d: /twice %s = %d %s, want %s", i, x, r.status, r.body, want)
			}
			r := f.post("/fan", "application/json", fmt.Sprintf(`{"x": %s}`, x))
			wantFan := fmt.Sprintf(`{"doubled":%s,"same":[[%d,%d.5]]}`, want, i, i)
			if r.status != 200 || !sameJSON(r.body, wantFan) {
				t.Errorf("caller %d: /fan = %d %s, want %s", i, r.status, r.body, wantFan)
			}
			tc := texts[i%len(texts)]
			r = f.post("/compare", "text/plain", tc.text)
			wantCmp := fmt.Sprintf(`{"lenient":%t,"strict":%t}`, tc.lenient, tc.strict)
			if r.status != 200 || !sameJSON(r.body, wantCmp) {
				t.Errorf("caller %d: /compare %q = %d %s, want %s", i, tc.text, r.status, r.body, wantCmp)
			}
		})
	}
	wg.Wait()
	if sum, n := f.histogram("benchtop_runner_batch_size", map[string]string{"runner": "sim"}); sum <= n {
		t.Errorf("sim ran %v rows in %v batches: the pipelines' steps never shared a batch", sum, n)
	}
	if got := f.metric("benchtop_api_calls_total", map[string]string{"api": "twice", "outcome": "ok"}); got != 64 {
		t.Errorf("benchtop_api_calls_total{twice,ok} = %v, want 64", got)
	}
	for _, step := range []string{"double", "back"} {
		if _, n := f.histogram("benchtop_api_step_duration_seconds", map[string]string{"api": "twice", "step": step}); n != 64 {
			t.Errorf("benchtop_api_step_duration_seconds{twice,%s} count = %v, want 64", step, n)
		}
	}
	for _, role := range []string{"lenient", "strict"} {
		if _, n := f.histogram("benchtop_api_step_duration_seconds", map[string]string{"api": "compare", "step": role}); n != 64 {
			t.Errorf("benchtop_api_step_duration_seconds{compare,%s} count = %v, want 64", role, n)
		}
	}
}

// TestFailingStepFailsOnlyItsCall: a step that refuses its input fails
// that call with a 400 naming the step; other calls of the same pipeline
// at the same time succeed.
func TestFailingStepFailsOnlyItsCall(t *testing.T) {
	f := newFixtureConfig(t, composedConfig, server.Options{})
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			if i%2 == 0 {
				r := f.post("/judge-text", "text/plain", "   ")
				if r.status != 400 || !strings.Contains(r.body, `step \"judge\" (sentiment.is_positive)`) || !strings.Contains(r.body, "text is empty") {
					t.Errorf("empty text: %d %s, want 400 naming step judge", r.status, r.body)
				}
				return
			}
			if r := f.post("/judge-text", "text/plain", "I love it"); r.status != 200 || compact(r.body) != "true" {
				t.Errorf("good text: %d %s, want 200 true", r.status, r.body)
			}
		})
	}
	wg.Wait()
	if got := f.metric("benchtop_api_calls_total", map[string]string{"api": "judge-text", "outcome": "error"}); got != 8 {
		t.Errorf("benchtop_api_calls_total{judge-text,error} = %v, want 8", got)
	}
}

// TestSentimentAnalysisAPI is the seed's analysis: {"is_positive": …},
// with the polarity counted in the API's own counter.
func TestSentimentAnalysisAPI(t *testing.T) {
	f := newFixtureConfig(t, composedConfig, server.Options{})
	for _, tc := range []struct{ text, want string }{
		{"I love it", `{"is_positive":true}`}, {"I hate it", `{"is_positive":false}`}, {"great stuff", `{"is_positive":true}`},
	} {
		if r := f.post("/analysis", "text/plain", tc.text); r.status != 200 || !sameJSON(r.body, tc.want) {
			t.Errorf("/analysis %q = %d %s, want %s", tc.text, r.status, r.body, tc.want)
		}
	}
	for polarity, want := range map[string]float64{"positive": 2, "negative": 1} {
		if got := f.metric("sentiment_analysis_polarity_total", map[string]string{"api": "analysis", "polarity": polarity}); got != want {
			t.Errorf("sentiment_analysis_polarity_total{analysis,%s} = %v, want %v", polarity, got, want)
		}
	}
	if r := f.post("/analysis", "text/plain", " "); r.status != 400 || !strings.Contains(r.body, `role \"model\" (sentiment.is_positive)`) {
		t.Errorf("empty text: %d %s, want 400 naming the role", r.status, r.body)
	}
}

// TestPipelineAsV2Model: a pipeline is a KServe v2 model, metadata and
// infer, like a Triton ensemble; GET / and /docs.json describe it.
func TestPipelineAsV2Model(t *testing.T) {
	f := newFixtureConfig(t, composedConfig, server.Options{})
	r := f.do("GET", "/v2/models/fan", "", "")
	if r.status != 200 {
		t.Fatalf("metadata: %d %s", r.status, r.body)
	}
	var meta struct {
		Platform string `json:"platform"`
		Inputs   []struct {
			Name     string `json:"name"`
			Datatype string `json:"datatype"`
			Shape    []int  `json:"shape"`
		} `json:"inputs"`
		Outputs []struct{ Name string } `json:"outputs"`
	}
	if err := json.Unmarshal([]byte(r.body), &meta); err != nil {
		t.Fatal(err)
	}
	if meta.Platform != "benchtop_pipeline" || len(meta.Inputs) != 1 || meta.Inputs[0].Name != "x" || meta.Inputs[0].Datatype != "FP32" ||
		fmt.Sprint(meta.Inputs[0].Shape) != "[-1 -1]" || len(meta.Outputs) != 2 || meta.Outputs[0].Name != "doubled" {
		t.Errorf("metadata: %s", r.body)
	}
	r = f.post("/v2/models/fan/infer", "application/json",
		`{"id": "7", "inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 2], "data": [1, 2]}], "outputs": [{"name": "doubled"}]}`)
	if r.status != 200 || !strings.Contains(compact(r.body), `"name":"doubled","datatype":"FP32","shape":[1,2],"data":[2.0,4.0]`) || strings.Contains(r.body, `"same"`) {
		t.Errorf("infer: %d %s", r.status, r.body)
	}
	if r.header.Get("X-Steps") == "" {
		t.Errorf("infer: no X-Steps header")
	}
	if r := f.do("GET", "/v2/models/fan/ready", "", ""); r.status != 200 {
		t.Errorf("ready: %d %s", r.status, r.body)
	}
	index := f.do("GET", "/", "", "").body
	for _, want := range []string{"POST /fan   pipeline", "steps: double (sim.predict), same (echo.echo)", "POST /compare   func sentiment-compare   text → object"} {
		if !strings.Contains(index, want) {
			t.Errorf("GET / lacks %q:\n%s", want, index)
		}
	}
	var doc struct {
		Paths map[string]map[string]struct {
			XBenchtop map[string]any `json:"x-benchtop"`
		} `json:"paths"`
	}
	if err := json.Unmarshal([]byte(f.do("GET", "/docs.json", "", "").body), &doc); err != nil {
		t.Fatal(err)
	}
	if x := doc.Paths["/analysis"]["post"].XBenchtop; x["func"] != "sentiment-analysis" {
		t.Errorf("docs.json /analysis x-benchtop = %v", x)
	}
	if x := doc.Paths["/twice"]["post"].XBenchtop; x["v2_model"] != "twice" {
		t.Errorf("docs.json /twice x-benchtop = %v", x)
	}
}

func (f *fixture) post(path, contentType, body string) response {
	return f.do(http.MethodPost, path, contentType, body)
}

// sameJSON reports whether two JSON documents hold the same values
// (1 and 1.0 alike).
func sameJSON(a, b string) bool {
	var x, y any
	return json.Unmarshal([]byte(a), &x) == nil && json.Unmarshal([]byte(b), &y) == nil && reflect.DeepEqual(x, y)
}

func compact(s string) string {
	return strings.Join(strings.Fields(s), "")
}

// histogram is the sum and count of the histogram series matching labels.
func (f *fixture) histogram(name string, labels map[string]string) (sum, count float64) {
	f.t.Helper()
	mfs := f.metrics()
next:
	for _, mt := range mfs[name].GetMetric() {
		for _, p := range mt.GetLabel() {
			if want, ok := labels[p.GetName()]; ok && want != p.GetValue() {
				continue next
			}
		}
		return mt.GetHistogram().GetSampleSum(), float64(mt.GetHistogram().GetSampleCount())
	}
	return -1, -1
}

func (f *fixture) metrics() map[string]*dto.MetricFamily {
	f.t.Helper()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := parser.TextToMetricFamilies(strings.NewReader(f.do("GET", "/metrics", "", "").body))
	if err != nil {
		f.t.Fatalf("metrics: %v", err)
	}
	return mfs
}
