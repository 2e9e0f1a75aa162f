package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/benchtop/benchtop/engine"
	"github.com/benchtop/benchtop/engine/enginetest"
	"github.com/benchtop/benchtop/server"
	"github.com/benchtop/benchtop/watcher"
)

const testConfig = `
runners:
  - name: sim
    runnable: sim
    init: {fixed_ms: 0.2, per_row_ms: 0.01}
    workers: 1
    batching: {max_batch_size: 16, max_latency_ms: 1000}
  - name: slow
    runnable: sim
    init: {fixed_ms: 300, per_row_ms: 0}
    workers: 1
    timeout: 100ms
    batching: {policy: none, max_latency_ms: 0}
  - name: busy
    runnable: sim
    init: {fixed_ms: 30, per_row_ms: 0}
    workers: 1
    batching: {policy: none, max_latency_ms: 50, max_queue_size: 2}
  - name: sentiment
    runnable: sentiment
    workers: 1
  - name: echo
    runnable: echo
    workers: 1
apis:
  - {name: predict, runner: sim, method: predict, input: ndarray, output: ndarray}
  - {name: slow, runner: slow, method: predict, input: ndarray, output: ndarray}
  - {name: busy, runner: busy, method: predict, input: ndarray, output: ndarray}
  - {name: analysis, runner: sentiment, method: is_positive, input: text, output: json}
  - {name: scores, runner: sentiment, method: scores, input: ndarray, output: ndarray}
  - {name: echo, runner: echo, method: echo, input: ndarray, output: ndarray}
  - {name: echo-text, runner: echo, method: echo_text, input: text, output: text}
  - {name: classify, runner: sentiment, method: classify, input: object, output: object}
`

type fixture struct {
	t   *testing.T
	eng *engine.Engine
	srv *server.Server
	url string
}

func newFixture(t *testing.T, opts server.Options) *fixture {
	t.Helper()
	return newFixtureConfig(t, testConfig, opts)
}

// newFixtureConfig serves config with httptest (see serveReal for Serve),
// on an engine with the samples and types.
func newFixtureConfig(t *testing.T, config string, opts server.Options, types ...*engine.RunnableType) *fixture {
	t.Helper()
	// One registry, as main has: the engine's metrics and the server's.
	prom := prometheus.NewPedanticRegistry()
	eng := enginetest.New(t, enginetest.Options{Samples: true, Engine: engine.Options{Registerer: prom}}, types...)
	if opts.Registerer == nil && opts.Gatherer == nil {
		opts.Registerer, opts.Gatherer = prom, prom
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cfg, err := watcher.ParseAndValidate(ctx, "test.yaml", []byte(config), eng, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if _, err := eng.Apply(ctx, cfg.Plan); err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(eng, opts)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close) // before the engine closes
	return &fixture{t: t, eng: eng, srv: srv, url: ts.URL}
}

type response struct {
	status int
	header http.Header
	body   string
}

func (f *fixture) do(method, path, contentType, body string) response {
	f.t.Helper()
	req, err := http.NewRequest(method, f.url+path, strings.NewReader(body))
	if err != nil {
		f.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{resp.StatusCode, resp.Header, string(b)}
}

func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(r.body), &m); err != nil {
		t.Fatalf("response is not a JSON object: %q", r.body)
	}
	return m
}

func TestServiceAPIs(t *testing.T) {
	f := newFixture(t, server.Options{})
	cases := []struct {
		name, path, ct, body string
		status               int
		want                 string
	}{
		{"ndarray in, ndarray out", "/predict", "application/json", `[[1, 2.5], [3, -4]]`, 200, "[[2.0,5.0],[6.0,-8.0]]\n"},
		{"content type may be left out", "/predict", "", `[[1]]`, 200, "[[2.0]]\n"},
		{"text in, json out", "/analysis", "text/plain", "I love this, it is great!", 200, "true\n"},
		{"strings as ndarray", "/scores", "application/json", `["great", "awful"]`, 200, ""},
		{"echo text", "/echo-text", "text/plain; charset=utf-8", "héllo", 200, "héllo"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := f.do("POST", c.path, c.ct, c.body)
			if r.status != c.status {
				t.Fatalf("status %d, want %d: %s", r.status, c.status, r.body)
			}
			if c.want != "" && r.body != c.want {
				t.Fatalf("body %q, want %q", r.body, c.want)
			}
			if r.header.Get("X-Request-ID") == "" {
				t.Fatal("no X-Request-ID")
			}
		})
	}
	r := f.do("POST", "/scores", "application/json", `["great", "awful"]`)
	var scores []float64
	if err := json.Unmarshal([]byte(r.body), &scores); err != nil || len(scores) != 2 || scores[0] <= 0 || scores[1] >= 0 {
		t.Fatalf("scores %q", r.body)
	}
}

func TestErrorsSayWhatToFix(t *testing.T) {
	f := newFixture(t, server.Options{MaxBodyBytes: 1024})
	cases := []struct {
		name, method, path, ct, body string
		status                       int
		want                         string
	}{
		{"malformed JSON", "POST", "/predict", "application/json", `[[1, 2]`, 400, "ndarray"},
		{"wrong rank", "POST", "/predict", "application/json", `[1, 2]`, 400, "want 2"},
		{"wrong dtype", "POST", "/predict", "application/json", `[["a"]]`, 400, "want a number"},
		{"ragged rows", "POST", "/predict", "application/json", `[[1, 2], [3]]`, 400, "same length"},
		{"runnable's own message", "POST", "/analysis", "text/plain", "   ", 400, "text is empty: send a sentence to analyse"},
		{"text not UTF-8", "POST", "/analysis", "text/plain", "caf\xe9", 400, "body is not valid UTF-8 text"},
		{"unknown api", "POST", "/nope", "application/json", `[]`, 404, `unknown api "nope" (apis: analysis, busy, classify, echo, echo-text, predict, scores, slow)`},
		{"wrong method", "GET", "/predict", "", "", 405, "takes POST"},
		{"too large", "POST", "/predict", "application/json", "[[" + strings.Repeat("1,", 600) + "1]]", 413, "larger than 1024 bytes"},
		{"wrong content type", "POST", "/predict", "application/x-www-form-urlencoded", `[[1]]`, 415, "Content-Type: application/json"},
		{"text api wants text", "POST", "/analysis", "application/json", `"hi"`, 415, "text/plain"},
		{"execution timeout", "POST", "/slow", "application/json", `[[1]]`, 504, "timed out after 100ms"},
		{"unknown v2 model", "GET", "/v2/models/nope", "", "", 404, `unknown model "nope"`},
		{"unknown route", "GET", "/v2/nothing/here", "", "", 404, "v2 routes are"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := f.do(c.method, c.path, c.ct, c.body)
			if r.status != c.status {
				t.Fatalf("status %d, want %d: %s", r.status, c.status, r.body)
			}
			msg, _ := r.json(t)["error"].(string)
			if !strings.Contains(msg, c.want) {
				t.Fatalf("error %q does not say %q", msg, c.want)
			}
			if c.status == 405 && r.header.Get("Allow") != "POST" {
				t.Fatalf("405 without Allow: POST")
			}
		})
	}
}

func TestOverloadAnswers503WithRetryAfter(t *testing.T) {
	f := newFixture(t, server.Options{})
	var wg sync.WaitGroup
	statuses := make(chan response, 20)
	for range 20 {
		wg.Go(func() { statuses <- f.do("POST", "/busy", "application/json", `[[1]]`) })
	}
	wg.Wait()
	close(statuses)
	var ok, shed int
	for r := range statuses {
		switch r.status {
		case 200:
			ok++
		case 503:
			shed++
			if r.header.Get("Retry-After") == "" {
				t.Fatal("503 without Retry-After")
			}
			if msg := r.json(t)["error"].(string); !strings.Contains(msg, "overloaded") {
				t.Fatalf("503 error %q", msg)
			}
		default:
			t.Fatalf("status %d: %s", r.status, r.body)
		}
	}
	if ok == 0 || shed == 0 {
		t.Fatalf("ok %d, shed %d: a 30 ms runner with a queue of 2 must serve some and shed some of 20", ok, shed)
	}
}

func TestHealthIndexMetricsAndDocs(t *testing.T) {
	f := newFixture(t, server.Options{Version: "1.2.3"})
	if r := f.do("GET", "/livez", "", ""); r.status != 200 {
		t.Fatalf("livez %d", r.status)
	}
	r := f.do("GET", "/readyz", "", "")
	if r.status != 200 || r.json(t)["runners"].(map[string]any)["sim"] != "ready" {
		t.Fatalf("readyz %d %s", r.status, r.body)
	}
	idx := f.do("GET", "/", "", "")
	if !strings.Contains(idx.body, "curl -s "+f.url+"/predict -H 'Content-Type: application/json' -d '[[") {
		t.Fatalf("index lacks a curl example:\n%s", idx.body)
	}
	checkIndexExamples(t, f, idx.body)

	f.do("POST", "/predict", "application/json", `[[1]]`)
	f.do("POST", "/nope", "application/json", `[[1]]`)
	f.do("POST", "/analysis", "text/plain", "I love it")
	m := f.do("GET", "/metrics", "", "")
	parser := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := parser.TextToMetricFamilies(strings.NewReader(m.body))
	if err != nil {
		t.Fatalf("metrics exposition does not parse: %v", err)
	}
	found := map[string]bool{}
	for _, mt := range mfs["benchtop_api_requests_total"].GetMetric() {
		l := map[string]string{}
		for _, p := range mt.GetLabel() {
			l[p.GetName()] = p.GetValue()
		}
		found[l["api"]+"/"+l["code"]] = true
	}
	if !found["predict/200"] || !found["unknown/404"] {
		t.Fatalf("api metrics %v", found)
	}
	for _, name := range []string{"benchtop_runner_batch_size", "benchtop_api_request_duration_seconds", "sentiment_polarity_total"} {
		if mfs[name] == nil {
			t.Errorf("metric %s missing", name)
		}
	}
	// A runnable's own metric is served beside the engine's, with the
	// runner's label.
	positive := 0.0
	for _, mt := range mfs["sentiment_polarity_total"].GetMetric() {
		l := map[string]string{}
		for _, p := range mt.GetLabel() {
			l[p.GetName()] = p.GetValue()
		}
		if l["runner"] == "sentiment" && l["polarity"] == "positive" {
			positive = mt.GetCounter().GetValue()
		}
	}
	if positive < 1 {
		t.Errorf("sentiment_polarity_total{runner=sentiment,polarity=positive} = %v after \"I love it\"", positive)
	}

	checkOpenAPI(t, f, "1.2.3")
}

// checkIndexExamples: the index's examples work as printed.
func checkIndexExamples(t *testing.T, f *fixture, index string) {
	t.Helper()
	for _, line := range strings.Split(index, "\n") {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "curl ") || strings.Contains(line, "/slow") || strings.Contains(line, "/busy") {
			continue
		}
		url := strings.Fields(line)[2]
		ct := strings.TrimSuffix(strings.SplitN(line, "Content-Type: ", 2)[1], "' -d")
		ct = ct[:strings.Index(ct, "'")]
		body := line[strings.Index(line, "-d '")+4 : len(line)-1]
		body = strings.ReplaceAll(body, `'\''`, "'")
		if r := f.do("POST", strings.TrimPrefix(url, f.url), ct, body); r.status != 200 {
			t.Errorf("example %q: %d %s", line, r.status, r.body)
		}
	}
}

// checkOpenAPI: /docs.json is valid OpenAPI 3 with the service's paths.
func checkOpenAPI(t *testing.T, f *fixture, version string) {
	t.Helper()
	d := f.do("GET", "/docs.json", "", "")
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData([]byte(d.body))
	if err != nil {
		t.Fatalf("docs.json does not load: %v", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("docs.json is not valid OpenAPI 3: %v", err)
	}
	for _, p := range []string{"/predict", "/analysis", "/classify", "/v2/models/{model}/infer", "/readyz"} {
		if doc.Paths.Find(p) == nil {
			t.Errorf("docs.json lacks %s", p)
		}
	}
	if doc.Info.Version != version {
		t.Errorf("version %q", doc.Info.Version)
	}
}

func TestRequestIDIsEchoed(t *testing.T) {
	f := newFixture(t, server.Options{})
	req, _ := http.NewRequest("GET", f.url+"/livez", nil)
	req.Header.Set("X-Request-ID", "abc-123")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("X-Request-ID"); got != "abc-123" {
		t.Fatalf("X-Request-ID %q", got)
	}
}

// TestOpenInferenceProtocol uses request bodies in the shape of the KServe
// v2 specification's own examples.
func TestOpenInferenceProtocol(t *testing.T) {
	f := newFixture(t, server.Options{})
	r := f.do("GET", "/v2", "", "")
	if r.status != 200 || r.json(t)["name"] != "benchtop" {
		t.Fatalf("server metadata %d %s", r.status, r.body)
	}
	for _, p := range []string{"/v2/health/live", "/v2/health/ready", "/v2/models/sim/ready"} {
		if r := f.do("GET", p, "", ""); r.status != 200 {
			t.Fatalf("%s: %d", p, r.status)
		}
	}
	meta := f.do("GET", "/v2/models/sim", "", "").json(t)
	in := meta["inputs"].([]any)[0].(map[string]any)
	if in["name"] != "input" || in["datatype"] != "FP32" || fmt.Sprint(in["shape"]) != "[-1 -1]" {
		t.Fatalf("metadata inputs %v", in)
	}

	meta = f.do("GET", "/v2/models/sentiment.classify", "", "").json(t)
	if ins, outs := meta["inputs"].([]any), meta["outputs"].([]any); len(ins) != 2 || len(outs) != 2 ||
		ins[1].(map[string]any)["name"] != "threshold" || outs[0].(map[string]any)["datatype"] != "BOOL" {
		t.Fatalf("metadata of a method of two inputs and outputs: %v → %v", ins, outs)
	}

	cases := []struct {
		name, model, body string
		status            int
		want              string
	}{
		{"flat data", "sim", `{"id": "42", "inputs": [{"name": "input", "shape": [2, 2], "datatype": "FP32", "data": [1, 2, 3, 4]}], "outputs": [{"name": "output"}]}`,
			200, `{"model_name":"sim","model_version":"1","id":"42","outputs":[{"name":"output","datatype":"FP32","shape":[2,2],"data":[2.0,4.0,6.0,8.0]}]}` + "\n"},
		{"nested data", "sim", `{"inputs": [{"name": "input", "shape": [1, 3], "datatype": "FP32", "data": [[1, 2, 3]]}]}`,
			200, `{"model_name":"sim","model_version":"1","outputs":[{"name":"output","datatype":"FP32","shape":[1,3],"data":[2.0,4.0,6.0]}]}` + "\n"},
		{"text model via BYTES", "sentiment", `{"inputs": [{"name": "input", "shape": [1], "datatype": "BYTES", "data": ["what a great day"]}]}`,
			200, `"datatype":"BYTES","shape":[1],"data":["true"]`},
		{"another method by name", "sentiment.scores", `{"inputs": [{"name": "input", "shape": [2], "datatype": "BYTES", "data": ["good", "bad"]}]}`,
			200, `"datatype":"FP32","shape":[2]`},
		{"wrong datatype", "sim", `{"inputs": [{"name": "input", "shape": [1, 1], "datatype": "FP64", "data": [1]}]}`, 400, "datatype FP64, the model takes FP32"},
		{"shape and data disagree", "sim", `{"inputs": [{"name": "input", "shape": [2, 2], "datatype": "FP32", "data": [1, 2, 3]}]}`, 400, `has 3 elements, want 4 (the product of shape [2 2])`},
		{"wrong input name", "sim", `{"inputs": [{"name": "x", "shape": [1, 1], "datatype": "FP32", "data": [1]}]}`, 400, `unknown input \"x\" (inputs: input)`},
		{"unknown output", "sim", `{"inputs": [{"name": "input", "shape": [1, 1], "datatype": "FP32", "data": [1]}], "outputs": [{"name": "probs"}]}`, 400, `unknown output`},
		{"not json", "sim", `{"inputs": [`, 400, "not a v2 inference request"},
		{"a method of several inputs, the optional one left out", "sentiment.classify", `{"inputs": [{"name": "texts", "shape": [1], "datatype": "BYTES", "data": ["good"]}]}`,
			200, `"outputs":[{"name":"positive","datatype":"BOOL","shape":[1],"data":[true]},{"name":"scores"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := f.do("POST", "/v2/models/"+c.model+"/infer", "application/json", c.body)
			if r.status != c.status || !strings.Contains(r.body, c.want) {
				t.Fatalf("%d %s\nwant %d containing %s", r.status, r.body, c.status, c.want)
			}
		})
	}
	st := f.do("GET", "/v2/models/sim/stats", "", "").json(t)
	ms := st["model_stats"].([]any)[0].(map[string]any)
	if ms["inference_count"].(float64) < 3 || len(ms["batch_stats"].([]any)) == 0 {
		t.Fatalf("stats %v", ms)
	}
	succ := ms["inference_stats"].(map[string]any)["success"].(map[string]any)
	if succ["count"].(float64) < 2 || succ["ns"].(float64) <= 0 {
		t.Fatalf("success stats %v", succ)
	}
}

// TestConcurrentHTTPCallersGetTheirOwnRows: 200 callers at once, batched
// together, each get exactly their own rows back. The runner has no latency
// bound: on a loaded machine the forecast may rightly refuse some under one
// (TestOverloadAnswers503WithRetryAfter is about that), which is not what
// this test is about.
func TestConcurrentHTTPCallersGetTheirOwnRows(t *testing.T) {
	f := newFixtureConfig(t, `
runners:
  - {name: sim, runnable: sim, init: {fixed_ms: 0.2, per_row_ms: 0.01}, workers: 1, batching: {max_batch_size: 16, max_latency_ms: 0}}
apis:
  - {name: predict, runner: sim, method: predict, input: ndarray, output: ndarray}
`, server.Options{})
	var wg sync.WaitGroup
	for i := range 200 {
		wg.Go(func() {
			body := fmt.Sprintf("[[%d, %d]]", i, -i)
			resp, err := http.Post(f.url+"/predict", "application/json", bytes.NewBufferString(body))
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if want := fmt.Sprintf("[[%d.0,%d.0]]\n", 2*i, -2*i); string(b) != want {
				t.Errorf("caller %d got %q, want %q", i, b, want)
			}
		})
	}
	wg.Wait()
}
