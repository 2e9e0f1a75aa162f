package server_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/benchtop/benchtop/engine"
	"github.com/benchtop/benchtop/engine/tensor"
	"github.com/benchtop/benchtop/server"
)

// binInput is one input of a binary request: raw bytes after the JSON
// header (raw non-nil), or JSON data (data non-nil).
type binInput struct {
	name, datatype string
	shape          []int
	raw            []byte
	data           any
}

// binaryBody lays out a request as Triton's clients do: the JSON header,
// then the raw inputs in the header's order. extra is merged into the
// header (parameters, outputs).
func binaryBody(t *testing.T, inputs []binInput, extra map[string]any) (body []byte, headerLen int) {
	t.Helper()
	var ins []map[string]any
	var raw []byte
	for _, in := range inputs {
		m := map[string]any{"name": in.name, "datatype": in.datatype, "shape": in.shape}
		if in.raw != nil {
			m["parameters"] = map[string]any{"binary_data_size": len(in.raw)}
			raw = append(raw, in.raw...)
		} else {
			m["data"] = in.data
		}
		ins = append(ins, m)
	}
	req := map[string]any{"inputs": ins}
	for k, v := range extra {
		req[k] = v
	}
	header, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	return append(header, raw...), len(header)
}

// v2Answer is a v2 inference answer read as Triton's client reads one:
// the JSON header, and each binary output's bytes found by adding up the
// binary_data_size of the outputs before it.
type v2Answer struct {
	status  int
	header  http.Header
	error   string
	outputs map[string]v2Output
	order   []string
}

type v2Output struct {
	Datatype   string          `json:"datatype"`
	Shape      []int           `json:"shape"`
	Data       json.RawMessage `json:"data"`
	Parameters struct {
		BinaryDataSize *int `json:"binary_data_size"`
	} `json:"parameters"`
	raw []byte
}

func readV2Answer(t *testing.T, resp *http.Response) v2Answer {
	t.Helper()
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	a := v2Answer{status: resp.StatusCode, header: resp.Header}
	if resp.StatusCode != http.StatusOK {
		var e struct{ Error string }
		if err := json.Unmarshal(body, &e); err != nil || e.Error == "" {
			t.Fatalf("status %d without a JSON error: %q", resp.StatusCode, body)
		}
		a.error = e.Error
		return a
	}
	hl := len(body)
	if h := resp.Header.Get("Inference-Header-Content-Length"); h != "" {
		if hl, err = strconv.Atoi(h); err != nil || hl > len(body) {
			t.Fatalf("Inference-Header-Content-Length %q for a body of %d bytes", h, len(body))
		}
	}
	var doc struct {
		Outputs []struct {
			Name string `json:"name"`
			v2Output
		} `json:"outputs"`
	}
	if err := json.Unmarshal(body[:hl], &doc); err != nil {
		t.Fatalf("JSON header %q: %v", body[:hl], err)
	}
	a.outputs = map[string]v2Output{}
	off := hl
	for _, o := range doc.Outputs {
		if n := o.Parameters.BinaryDataSize; n != nil {
			if off+*n > len(body) {
				t.Fatalf("output %q: binary_data_size %d past the body's end", o.Name, *n)
			}
			o.raw = body[off : off+*n]
			off += *n
		}
		a.outputs[o.Name] = o.v2Output
		a.order = append(a.order, o.Name)
	}
	if off != len(body) {
		t.Fatalf("%d bytes after the outputs' binary data", len(body)-off)
	}
	return a
}

// postBinary posts a binary request with Triton's header.
func (f *fixture) postBinary(model string, body []byte, headerLen int, contentType string) v2Answer {
	f.t.Helper()
	req, err := http.NewRequest(http.MethodPost, f.url+"/v2/models/"+model+"/infer", bytes.NewReader(body))
	if err != nil {
		f.t.Fatal(err)
	}
	if headerLen >= 0 {
		req.Header.Set("Inference-Header-Content-Length", strconv.Itoa(headerLen))
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	return readV2Answer(f.t, resp)
}

func le[T any](vals ...T) []byte {
	var b bytes.Buffer
	if err := binary.Write(&b, binary.LittleEndian, vals); err != nil {
		panic(err)
	}
	return b.Bytes()
}

// bytesRaw is BYTES elements in the raw layout: each a 4-byte
// little-endian length, then its bytes.
func bytesRaw(elems ...string) []byte {
	var b []byte
	for _, e := range elems {
		b = binary.LittleEndian.AppendUint32(b, uint32(len(e)))
		b = append(b, e...)
	}
	return b
}

const binaryConfig = namedConfig + `
  - {name: json, runner: jsonecho, method: echo, input: json, output: json}
`

// jsonEchoType returns its JSON input: a method whose input is a JSON
// document, which v2 sends as one BYTES element.
func jsonEchoType() *engine.RunnableType {
	spec := engine.MethodSpec{Name: "echo",
		Inputs:  tensor.IOSpecs{{Name: "doc", Kind: tensor.KindJSON}},
		Outputs: tensor.IOSpecs{{Name: "doc", Kind: tensor.KindJSON}}}
	return &engine.RunnableType{
		Name: "jsonecho", Methods: []engine.MethodSpec{spec},
		New: func(context.Context, engine.Env) (engine.Instance, error) { return jsonEcho{}, nil },
	}
}

type jsonEcho struct{}

func (jsonEcho) Call(_ context.Context, _ string, in []tensor.Value) ([]tensor.Value, error) {
	return in, nil
}

func newBinaryFixture(t *testing.T, opts server.Options) *fixture {
	t.Helper()
	cfg := strings.Replace(binaryConfig, "apis:", `  - name: jsonecho
    runnable: jsonecho
    workers: 1
  - name: sim
    runnable: sim
    init: {fixed_ms: 0.2, per_row_ms: 0.01}
    workers: 1
apis:`, 1)
	return newFixtureConfig(t, cfg, opts, tokensType(), jsonEchoType())
}

// TestV2BinaryTensorsRoundTrip: each datatype sent raw through echo comes
// back with the same bytes when asked for binary, and as the same values
// in JSON when not.
func TestV2BinaryTensorsRoundTrip(t *testing.T) {
	f := newBinaryFixture(t, server.Options{})
	cases := []struct {
		name, datatype string
		shape          []int
		raw            []byte
		json           string
	}{
		{"float32", "FP32", []int{2, 3}, le[float32](1.5, -2, 0, 3.25, 1e-3, 7), "[1.5,-2.0,0.0,3.25,0.001,7.0]"},
		{"int64", "INT64", []int{2, 2}, le[int64](1, -1, 1<<40, 0), "[1,-1,1099511627776,0]"},
		{"bool", "BOOL", []int{3}, []byte{1, 0, 1}, "[true,false,true]"},
		{"bytes", "BYTES", []int{3}, bytesRaw("héllo", "", "a\x00b"), `["héllo","","a\u0000b"]`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := []binInput{{name: "input", datatype: tc.datatype, shape: tc.shape, raw: tc.raw}}
			body, hl := binaryBody(t, in, map[string]any{"parameters": map[string]any{"binary_data_output": true}})
			a := f.postBinary("echo", body, hl, "application/octet-stream")
			if a.status != 200 {
				t.Fatalf("status %d: %s", a.status, a.error)
			}
			if ct := a.header.Get("Content-Type"); ct != "application/octet-stream" {
				t.Errorf("Content-Type %q, want application/octet-stream", ct)
			}
			out := a.outputs["output"]
			if out.Datatype != tc.datatype || !slices.Equal(out.Shape, tc.shape) || out.Data != nil {
				t.Errorf("output %s %v data %s, want %s %v and no data", out.Datatype, out.Shape, out.Data, tc.datatype, tc.shape)
			}
			if !bytes.Equal(out.raw, tc.raw) {
				t.Errorf("raw output %v, want the input's bytes %v", out.raw, tc.raw)
			}

			// Raw in, JSON out: no binary_data_output, so the answer is JSON.
			body, hl = binaryBody(t, in, nil)
			a = f.postBinary("echo", body, hl, "")
			if a.status != 200 {
				t.Fatalf("status %d: %s", a.status, a.error)
			}
			if ct := a.header.Get("Content-Type"); ct != "application/json" || a.header.Get("Inference-Header-Content-Length") != "" {
				t.Errorf("JSON answer with Content-Type %q and header length %q", ct, a.header.Get("Inference-Header-Content-Length"))
			}
			if got := string(a.outputs["output"].Data); got != tc.json {
				t.Errorf("data %s, want %s", got, tc.json)
			}
		})
	}
}

// TestV2BinaryTextAndJSONInputs: a text or JSON input is one BYTES
// element, sent raw like any other.
func TestV2BinaryTextAndJSONInputs(t *testing.T) {
	f := newBinaryFixture(t, server.Options{})
	all := map[string]any{"parameters": map[string]any{"binary_data_output": true}}

	body, hl := binaryBody(t, []binInput{{name: "input", datatype: "BYTES", shape: []int{1}, raw: bytesRaw("héllo wörld")}}, all)
	a := f.postBinary("echo.echo_text", body, hl, "")
	if out := a.outputs["output"]; a.status != 200 || !bytes.Equal(out.raw, bytesRaw("héllo wörld")) {
		t.Fatalf("echo_text: status %d %s, raw %q", a.status, a.error, out.raw)
	}

	doc := `{"a":[1,2],"b":"c"}`
	body, hl = binaryBody(t, []binInput{{name: "doc", datatype: "BYTES", shape: []int{1}, raw: bytesRaw(doc)}}, nil)
	a = f.postBinary("jsonecho", body, hl, "")
	if a.status != 200 {
		t.Fatalf("jsonecho: status %d: %s", a.status, a.error)
	}
	var got []string
	if err := json.Unmarshal(a.outputs["doc"].Data, &got); err != nil || len(got) != 1 {
		t.Fatalf("jsonecho data %s: %v", a.outputs["doc"].Data, err)
	}
	var want, back any
	json.Unmarshal([]byte(doc), &want)
	json.Unmarshal([]byte(got[0]), &back)
	if fmt.Sprint(back) != fmt.Sprint(want) {
		t.Errorf("jsonecho answered %s, want %s", got[0], doc)
	}

	body, hl = binaryBody(t, []binInput{{name: "doc", datatype: "BYTES", shape: []int{1}, raw: bytesRaw("{not json")}}, nil)
	if a := f.postBinary("jsonecho", body, hl, ""); a.status != 400 || !strings.Contains(a.error, `input "doc"`) || !strings.Contains(a.error, "JSON") {
		t.Errorf("raw element that is not JSON: status %d %q, want 400 naming doc", a.status, a.error)
	}
	body, hl = binaryBody(t, []binInput{{name: "input", datatype: "BYTES", shape: []int{2}, raw: bytesRaw("a", "b")}}, nil)
	if a := f.postBinary("echo.echo_text", body, hl, ""); a.status != 400 || !strings.Contains(a.error, `input "input" has 2 elements`) {
		t.Errorf("two raw elements for a text input: status %d %q", a.status, a.error)
	}
}

// TestV2BinaryMixedInputsAndOutputs: raw and JSON inputs in one request
// give what the all-JSON request gives; outputs come raw or as JSON as
// each one is asked for.
func TestV2BinaryMixedInputsAndOutputs(t *testing.T) {
	f := newBinaryFixture(t, server.Options{})
	ids, mask := []int64{3, 4, 5, 1, 1, 1}, []int64{1, 1, 0, 1, 0, 0}
	jsonReq := `{"inputs":[{"name":"input_ids","datatype":"INT64","shape":[2,3],"data":[3,4,5,1,1,1]},
		{"name":"attention_mask","datatype":"INT64","shape":[2,3],"data":[1,1,0,1,0,0]},
		{"name":"temperature","datatype":"FP32","shape":[],"data":0.5}]}`
	r := f.do("POST", "/v2/models/tokens/infer", "application/json", jsonReq)
	if r.status != 200 {
		t.Fatalf("JSON request: %d %s", r.status, r.body)
	}
	var jsonAns struct {
		Outputs []struct {
			Name string
			Data json.RawMessage
		}
	}
	json.Unmarshal([]byte(r.body), &jsonAns)
	wantData := map[string]string{}
	for _, o := range jsonAns.Outputs {
		wantData[o.Name] = string(o.Data)
	}
	if wantData["label"] != "[7,1]" || wantData["probabilities"] != "[2.0,0.5,1.0,0.5]" {
		t.Fatalf("JSON answer %s", r.body)
	}

	inputs := []binInput{
		{name: "input_ids", datatype: "INT64", shape: []int{2, 3}, raw: le(ids...)},
		{name: "temperature", datatype: "FP32", shape: []int{}, data: 0.5},
		{name: "attention_mask", datatype: "INT64", shape: []int{2, 3}, raw: le(mask...)},
	}
	outputs := []struct {
		name   string
		extra  map[string]any
		binary map[string]bool // outputs answered raw; the others JSON
	}{
		{"all JSON", nil, nil},
		{"all binary", map[string]any{"parameters": map[string]any{"binary_data_output": true}},
			map[string]bool{"label": true, "probabilities": true}},
		{"one binary", map[string]any{"outputs": []any{
			map[string]any{"name": "label"},
			map[string]any{"name": "probabilities", "parameters": map[string]any{"binary_data": true}}}},
			map[string]bool{"probabilities": true}},
		{"all but one", map[string]any{"parameters": map[string]any{"binary_data_output": true}, "outputs": []any{
			map[string]any{"name": "probabilities", "parameters": map[string]any{"binary_data": false}},
			map[string]any{"name": "label"}}},
			map[string]bool{"label": true}},
		{"only one, binary", map[string]any{"outputs": []any{
			map[string]any{"name": "label", "parameters": map[string]any{"binary_data": true}}}},
			map[string]bool{"label": true}},
	}
	wantRaw := map[string][]byte{"label": le[int64](7, 1), "probabilities": le[float32](2, 0.5, 1, 0.5)}
	for _, tc := range outputs {
		t.Run(tc.name, func(t *testing.T) {
			body, hl := binaryBody(t, inputs, tc.extra)
			a := f.postBinary("tokens", body, hl, "")
			if a.status != 200 {
				t.Fatalf("status %d: %s", a.status, a.error)
			}
			wantOrder := []string{"label", "probabilities"}
			if tc.name == "only one, binary" {
				wantOrder = []string{"label"}
			}
			if !slices.Equal(a.order, wantOrder) {
				t.Errorf("outputs %v, want %v (the method's order)", a.order, wantOrder)
			}
			for _, name := range wantOrder {
				out := a.outputs[name]
				if tc.binary[name] {
					if out.Data != nil || !bytes.Equal(out.raw, wantRaw[name]) {
						t.Errorf("%s: data %s raw %v, want raw %v", name, out.Data, out.raw, wantRaw[name])
					}
				} else if string(out.Data) != wantData[name] || out.raw != nil {
					t.Errorf("%s: data %s raw %v, want data %s", name, out.Data, out.raw, wantData[name])
				}
			}
			if wantCT := map[bool]string{true: "application/octet-stream", false: "application/json"}[len(tc.binary) > 0]; a.header.Get("Content-Type") != wantCT {
				t.Errorf("Content-Type %q, want %q", a.header.Get("Content-Type"), wantCT)
			}
		})
	}

	// BYTES raw beside an FP32 scalar in JSON, and the other way round.
	classify := func(inputs []binInput) string {
		body, hl := binaryBody(t, inputs, nil)
		a := f.postBinary("sentiment.classify", body, hl, "")
		if a.status != 200 {
			t.Fatalf("classify: %d %s", a.status, a.error)
		}
		return string(a.outputs["positive"].Data) + string(a.outputs["scores"].Data)
	}
	req, _ := http.NewRequest("POST", f.url+"/v2/models/sentiment.classify/infer", strings.NewReader(
		`{"inputs":[{"name":"texts","shape":[2],"datatype":"BYTES","data":["great","awful"]},{"name":"threshold","shape":[],"datatype":"FP32","data":0.5}]}`))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	ja := readV2Answer(t, resp)
	want := string(ja.outputs["positive"].Data) + string(ja.outputs["scores"].Data)
	got1 := classify([]binInput{{name: "texts", datatype: "BYTES", shape: []int{2}, raw: bytesRaw("great", "awful")},
		{name: "threshold", datatype: "FP32", shape: []int{}, data: 0.5}})
	got2 := classify([]binInput{{name: "texts", datatype: "BYTES", shape: []int{2}, data: []string{"great", "awful"}},
		{name: "threshold", datatype: "FP32", shape: []int{}, raw: le[float32](0.5)}})
	if ja.status != 200 || got1 != want || got2 != want {
		t.Errorf("mixed requests answered %s and %s; the JSON request %s", got1, got2, want)
	}
}

// TestV2BinarySizesThatLie: every way the sizes can disagree is a 400 that
// names what to fix, the tensor where there is one.
func TestV2BinarySizesThatLie(t *testing.T) {
	f := newBinaryFixture(t, server.Options{})
	four := le[float32](1, 2, 3, 4)
	header := func(inputs string) []byte { return []byte(`{"inputs":[` + inputs + `]}`) }
	in := func(name, dt, shape string, size any) string {
		return fmt.Sprintf(`{"name":%q,"datatype":%q,"shape":%s,"parameters":{"binary_data_size":%v}}`, name, dt, shape, size)
	}
	cases := []struct {
		name        string
		model       string
		header      []byte
		raw         []byte
		headerLen   string // "": len(header); "-": none
		contentType string
		want        []string
	}{
		{"header length past the body", "echo", header(in("input", "FP32", "[4]", 16)), four, "1000", "",
			[]string{"Inference-Header-Content-Length is 1000", "the body is only"}},
		{"header length not a number", "echo", header(in("input", "FP32", "[4]", 16)), four, "12x", "",
			[]string{`Inference-Header-Content-Length is "12x"`}},
		{"header length cuts the JSON", "echo", header(in("input", "FP32", "[4]", 16)), four, "10", "",
			[]string{"JSON header (the first 10 bytes"}},
		{"size past the data", "echo", header(in("input", "FP32", "[4]", 17)), four, "", "",
			[]string{`input "input"`, "binary_data_size is 17 bytes", "only 16 bytes"}},
		{"sizes short of the data", "echo", header(in("input", "FP32", "[3]", 12)), four, "", "",
			[]string{"16 bytes of binary data", "add up to 12 bytes", `"input": 12 bytes`}},
		{"size beside the second input", "tokens",
			header(in("input_ids", "INT64", "[1,2]", 16) + "," + in("attention_mask", "INT64", "[1,2]", 16)),
			le[int64](1, 2, 1), "", "",
			[]string{`input "attention_mask"`, "only 8 bytes", `before it ("input_ids": 16 bytes)`}},
		{"size that is not dtype × shape", "echo", header(in("input", "FP32", "[2,3]", 16)), four, "", "",
			[]string{`input "input"`, "raw data is 16 bytes", "FP32 [2, 3] takes 24 bytes"}},
		{"BYTES length that lies", "sentiment.scores", header(in("input", "BYTES", "[1]", 9)), append(binary.LittleEndian.AppendUint32(nil, 50), "hello"...), "", "",
			[]string{`input "input"`, "says it is 50 bytes"}},
		{"more BYTES elements than bytes", "sentiment.scores", header(in("input", "BYTES", "[1000000000000]", 8)), bytesRaw("ab", ""), "", "",
			[]string{`input "input"`}},
		{"bool byte not 0 or 1", "echo", header(in("input", "BOOL", "[2]", 2)), []byte{1, 2}, "", "",
			[]string{`input "input"`, "want 0 or 1"}},
		{"size not a number", "echo", header(in("input", "FP32", "[4]", `"16"`)), four, "", "",
			[]string{`input "input"`, `binary_data_size is "16"`}},
		{"negative size", "echo", header(in("input", "FP32", "[4]", -16)), four, "", "",
			[]string{`input "input"`, "binary_data_size is -16"}},
		{"size without the header", "echo", header(in("input", "FP32", "[4]", 16)), nil, "-", "application/json",
			[]string{`input "input" has parameters.binary_data_size`, "no Inference-Header-Content-Length"}},
		{"octet-stream without the header", "echo", append(header(in("input", "FP32", "[4]", 16)), four...), nil, "-", "application/octet-stream",
			[]string{"needs the Inference-Header-Content-Length header"}},
		{"data and a size", "echo", header(`{"name":"input","datatype":"FP32","shape":[4],"data":[1,2,3,4],"parameters":{"binary_data_size":16}}`), four, "", "",
			[]string{`input "input" has both data and parameters.binary_data_size`}},
		{"data after JSON inputs only", "echo", header(`{"name":"input","datatype":"FP32","shape":[4],"data":[1,2,3,4]}`), four, "", "",
			[]string{"16 bytes of binary data follow", "no input gives"}},
		{"binary_data_output not a bool", "echo", []byte(`{"inputs":[` + in("input", "FP32", "[4]", 16) + `],"parameters":{"binary_data_output":"yes"}}`), four, "", "",
			[]string{"binary_data_output is \"yes\"", "true or false"}},
		{"binary_data not a bool", "echo", []byte(`{"inputs":[` + in("input", "FP32", "[4]", 16) + `],"outputs":[{"name":"output","parameters":{"binary_data":1}}]}`), four, "", "",
			[]string{`output "output"`, "binary_data is 1"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("POST", f.url+"/v2/models/"+tc.model+"/infer", bytes.NewReader(append(slices.Clip(tc.header), tc.raw...)))
			switch tc.headerLen {
			case "":
				req.Header.Set("Inference-Header-Content-Length", strconv.Itoa(len(tc.header)))
			case "-":
			default:
				req.Header.Set("Inference-Header-Content-Length", tc.headerLen)
			}
			if tc.contentType != "" {
				req.Header.Set("Content-Type", tc.contentType)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			a := readV2Answer(t, resp)
			if a.status != 400 {
				t.Fatalf("status %d (%s), want 400", a.status, a.error)
			}
			for _, w := range tc.want {
				if !strings.Contains(a.error, w) {
					t.Errorf("error %q does not say %q", a.error, w)
				}
			}
		})
	}
}

// TestV2BinaryUnderTheBodyLimits: a binary body counts against the same
// bounds as a JSON one, and must not pretend to be another type.
func TestV2BinaryUnderTheBodyLimits(t *testing.T) {
	f := newBinaryFixture(t, server.Options{MaxBodyBytes: 4096})
	big := make([]byte, 8192)
	body, hl := binaryBody(t, []binInput{{name: "input", datatype: "FP32", shape: []int{2048}, raw: big}}, nil)
	if a := f.postBinary("echo", body, hl, "application/octet-stream"); a.status != 413 {
		t.Errorf("binary body over max body: %d %s, want 413", a.status, a.error)
	}
	body, hl = binaryBody(t, []binInput{{name: "input", datatype: "FP32", shape: []int{4}, raw: le[float32](1, 2, 3, 4)}}, nil)
	if a := f.postBinary("echo", body, hl, "text/plain"); a.status != 415 || !strings.Contains(a.error, "application/octet-stream") {
		t.Errorf("binary body as text/plain: %d %s, want 415 naming application/octet-stream", a.status, a.error)
	}
	if a := f.postBinary("echo", body, hl, "application/json"); a.status != 200 {
		t.Errorf("binary body as application/json: %d %s, want 200", a.status, a.error)
	}

	f = newBinaryFixture(t, server.Options{MaxInflightBytes: 1024})
	if a := f.postBinary("echo", make([]byte, 2048), 10, "application/octet-stream"); a.status != 413 || !strings.Contains(a.error, "max_inflight_mb") {
		t.Errorf("binary body over the in-flight bound: %d %s, want 413", a.status, a.error)
	}
}

func TestV2ServerMetadataListsBinaryExtension(t *testing.T) {
	f := newBinaryFixture(t, server.Options{})
	r := f.do("GET", "/v2", "", "")
	if ext := fmt.Sprint(r.json(t)["extensions"]); !strings.Contains(ext, "binary_tensor_data") {
		t.Errorf("extensions %s do not list binary_tensor_data", ext)
	}
}

// TestV2BinaryAsTritonsClient speaks the protocol as Triton's Python
// client (tritonclient.http) does, by hand on a TCP connection: the JSON
// header as it writes it, the raw inputs after it, no Content-Type, and
// the answer read back by Inference-Header-Content-Length and the outputs'
// binary_data_size. sim doubles its input.
func TestV2BinaryAsTritonsClient(t *testing.T) {
	f := newBinaryFixture(t, server.Options{})
	u, _ := url.Parse(f.url)
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rd := bufio.NewReader(conn)
	for _, vals := range [][]float32{{1, 2, 3, 4, 5, 6, 7, 8}, {0.5, -0.25, 8, 16, 0, 1, 2, 3}} {
		raw := le(vals...)
		header := fmt.Sprintf(`{"inputs":[{"name":"input","shape":[2,4],"datatype":"FP32","parameters":{"binary_data_size":%d}}],`+
			`"outputs":[{"name":"output","parameters":{"binary_data":true}}]}`, len(raw))
		req := fmt.Sprintf("POST /v2/models/sim/infer HTTP/1.1\r\nHost: %s\r\nUser-Agent: Python-urllib/3.11\r\n"+
			"Inference-Header-Content-Length: %d\r\nContent-Length: %d\r\n\r\n%s", u.Host, len(header), len(header)+len(raw), header)
		if _, err := conn.Write(append([]byte(req), raw...)); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(rd, nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
		hl, err := strconv.Atoi(resp.Header.Get("Inference-Header-Content-Length"))
		if err != nil || hl > len(body) {
			t.Fatalf("Inference-Header-Content-Length %q", resp.Header.Get("Inference-Header-Content-Length"))
		}
		var doc struct {
			Outputs []struct {
				Name       string
				Datatype   string
				Shape      []int
				Parameters map[string]int
			}
		}
		if err := json.Unmarshal(body[:hl], &doc); err != nil {
			t.Fatal(err)
		}
		if len(doc.Outputs) != 1 || doc.Outputs[0].Name != "output" || doc.Outputs[0].Datatype != "FP32" || !slices.Equal(doc.Outputs[0].Shape, []int{2, 4}) {
			t.Fatalf("outputs %+v", doc.Outputs)
		}
		n := doc.Outputs[0].Parameters["binary_data_size"]
		if n != 32 || hl+n != len(body) {
			t.Fatalf("binary_data_size %d for %d bytes after a header of %d", n, len(body), hl)
		}
		for i, v := range vals {
			if got := math.Float32frombits(binary.LittleEndian.Uint32(body[hl+4*i:])); got != 2*v {
				t.Errorf("output[%d] = %v, want %v", i, got, 2*v)
			}
		}
	}
}
