package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"

	"github.com/benchtop/benchtop/engine"
	"github.com/benchtop/benchtop/engine/tensor"
	"github.com/benchtop/benchtop/server/codec"
)

// The Open Inference Protocol (KServe v2) maps a model to a runner method:
// "sim" is the runner's first method, "sentiment.scores" names one.

// A v2 tensor is called by its name in the method's spec: "input" and
// "output" for a method of one input and one output that leaves them
// unnamed (engine.DefaultInputName). Infer serves such methods; metadata
// lists any method's.

func (s *Server) handleV2Server(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"name": "benchtop", "version": s.opts.Version, "extensions": []string{"statistics"},
	})
}

type v2Model struct {
	name   string
	runner *engine.Runner
	spec   engine.MethodSpec
}

func (s *Server) resolveModel(name string) (v2Model, error) {
	if rn, err := s.eng.Runner(name); err == nil {
		ms := rn.Methods()
		return v2Model{name, rn, ms[0]}, nil
	}
	if i := strings.LastIndexByte(name, '.'); i > 0 {
		if rn, err := s.eng.Runner(name[:i]); err == nil {
			if spec, ok := rn.Method(name[i+1:]); ok {
				return v2Model{name, rn, spec}, nil
			}
			return v2Model{}, errorf(http.StatusNotFound, "model %q: runner %q has no method %q", name, name[:i], name[i+1:])
		}
	}
	var names []string
	for _, rn := range s.eng.Runners() {
		names = append(names, rn.Name())
	}
	return v2Model{}, errorf(http.StatusNotFound, "unknown model %q (models: %s; use runner.method for another method)", name, strings.Join(names, ", "))
}

func (s *Server) model(w http.ResponseWriter, r *http.Request, method string) (v2Model, bool) {
	if r.Method != method {
		w.Header().Set("Allow", method)
		writeError(w, errorf(http.StatusMethodNotAllowed, "%s takes %s, not %s", r.URL.Path, method, r.Method))
		return v2Model{}, false
	}
	m, err := s.resolveModel(r.PathValue("model"))
	if err != nil {
		writeError(w, err)
		return v2Model{}, false
	}
	return m, true
}

type v2TensorMeta struct {
	Name     string `json:"name"`
	Datatype string `json:"datatype"`
	Shape    []int  `json:"shape"`
}

func v2Metas(specs tensor.IOSpecs) []v2TensorMeta {
	out := make([]v2TensorMeta, len(specs))
	for i, s := range specs {
		out[i] = v2Meta(s)
	}
	return out
}

func v2Meta(io tensor.IOSpec) v2TensorMeta {
	name := io.Name
	switch io.Kind {
	case tensor.KindTensor:
		dt := "ANY"
		if io.DType != tensor.DTypeInvalid {
			dt = io.DType.V2()
		}
		shape := io.Shape
		if shape == nil {
			shape = []int{-1}
		}
		return v2TensorMeta{name, dt, shape}
	default:
		return v2TensorMeta{name, "BYTES", []int{1}}
	}
}

func (s *Server) handleV2Metadata(w http.ResponseWriter, r *http.Request) {
	m, ok := s.model(w, r, http.MethodGet)
	if !ok {
		return
	}
	st := m.runner.Stats(engine.StatsOptions{})
	placement := make([]map[string]any, 0, len(st.WorkerList))
	for _, wk := range st.WorkerList {
		p := map[string]any{"worker": wk.ID, "ready": wk.Ready, "device": "cpu"}
		if len(wk.GPUs) > 0 {
			p["device"], p["gpus"] = "nvidia.com/gpu", wk.GPUs
		}
		if wk.PID > 0 {
			p["pid"] = wk.PID
		}
		placement = append(placement, p)
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"name":     m.name,
		"versions": []string{"1"},
		"platform": "benchtop_" + m.runner.Runnable().Name,
		"inputs":   v2Metas(m.spec.Inputs),
		"outputs":  v2Metas(m.spec.Outputs),
		"parameters": map[string]any{
			"method": m.spec.Name, "batchable": m.spec.Batchable, "batch_dim": m.spec.BatchDim,
			"workers": st.Workers, "workers_ready": st.Ready, "placement": placement,
		},
	})
}

func (s *Server) handleV2ModelReady(w http.ResponseWriter, r *http.Request) {
	m, ok := s.model(w, r, http.MethodGet)
	if !ok {
		return
	}
	status := http.StatusOK
	if !m.runner.Ready() {
		status = http.StatusServiceUnavailable
	}
	writeJSON(w, status, map[string]any{"name": m.name, "ready": status == http.StatusOK})
}

type v2InferTensor struct {
	Name       string          `json:"name"`
	Shape      []int           `json:"shape"`
	Datatype   string          `json:"datatype"`
	Parameters map[string]any  `json:"parameters,omitempty"`
	Data       json.RawMessage `json:"data"`
}

type v2InferRequest struct {
	ID         string          `json:"id,omitempty"`
	Parameters map[string]any  `json:"parameters,omitempty"`
	Inputs     []v2InferTensor `json:"inputs"`
	Outputs    []struct {
		Name string `json:"name"`
	} `json:"outputs,omitempty"`
}

func (s *Server) handleV2Infer(w http.ResponseWriter, r *http.Request) {
	m, ok := s.model(w, r, http.MethodPost)
	if !ok {
		return
	}
	body, err := s.readBody(w, r, "application/json")
	if err != nil {
		writeError(w, err)
		return
	}
	req, in, err := decodeV2Request(body, m.spec)
	if err != nil {
		writeError(w, err)
		return
	}
	outs, info, err := s.eng.RunInfo(r.Context(), m.runner.Name(), m.spec.Name, []tensor.Value{in})
	if err != nil {
		writeError(w, err)
		return
	}
	if len(outs) != 1 {
		// A reload changed the method under this request.
		writeError(w, fmt.Errorf("model %q returned %d outputs, want 1", m.name, len(outs)))
		return
	}
	resp, err := encodeV2Response(m.name, req.ID, m.spec.Outputs[0].Name, outs[0])
	if err != nil {
		writeError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	setBatchHeaders(w.Header(), info)
	w.WriteHeader(http.StatusOK)
	w.Write(resp)
}

// DecodeV2Request parses a KServe v2 inference request for a method; it is
// exported for the fuzz test's sake through decodeV2Request.
func decodeV2Request(body []byte, spec engine.MethodSpec) (v2InferRequest, tensor.Value, error) {
	var req v2InferRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return req, tensor.Value{}, errorf(http.StatusBadRequest, "body is not a v2 inference request: %v", err)
	}
	in, out, err := spec.Single()
	if err != nil {
		return req, tensor.Value{}, errorf(http.StatusBadRequest, "%v", err)
	}
	if len(req.Inputs) != 1 {
		return req, tensor.Value{}, errorf(http.StatusBadRequest, "got %d inputs, want exactly one named %q", len(req.Inputs), in.Name)
	}
	for _, o := range req.Outputs {
		if o.Name != out.Name {
			return req, tensor.Value{}, errorf(http.StatusBadRequest, "unknown output %q: this model has one output, %q", o.Name, out.Name)
		}
	}
	t := req.Inputs[0]
	if t.Name != in.Name {
		return req, tensor.Value{}, errorf(http.StatusBadRequest, "unknown input %q: this model's input is %q", t.Name, in.Name)
	}
	dt, err := tensor.ParseDType(t.Datatype)
	if err != nil {
		return req, tensor.Value{}, errorf(http.StatusBadRequest, "input %q: %v", t.Name, err)
	}
	if len(t.Data) == 0 {
		return req, tensor.Value{}, errorf(http.StatusBadRequest, "input %q has no data", t.Name)
	}
	switch in.Kind {
	case tensor.KindTensor:
		if in.DType != tensor.DTypeInvalid && dt != in.DType {
			return req, tensor.Value{}, errorf(http.StatusBadRequest, "input %q has datatype %s, the model takes %s", t.Name, dt.V2(), in.DType.V2())
		}
		decoded, err := codec.DecodeTensorData(t.Data, dt, t.Shape)
		if err != nil {
			return req, tensor.Value{}, errorf(http.StatusBadRequest, "input %q: %v", t.Name, err)
		}
		if err := in.Check(tensor.TensorValue(decoded)); err != nil {
			return req, tensor.Value{}, errorf(http.StatusBadRequest, "input %q: %v", t.Name, err)
		}
		return req, tensor.TensorValue(decoded), nil
	default:
		if dt != tensor.String {
			return req, tensor.Value{}, errorf(http.StatusBadRequest, "input %q has datatype %s; this model takes %s as BYTES of shape [1]", t.Name, dt.V2(), in.Kind)
		}
		decoded, err := codec.DecodeTensorData(t.Data, tensor.String, t.Shape)
		if err != nil {
			return req, tensor.Value{}, errorf(http.StatusBadRequest, "input %q: %v", t.Name, err)
		}
		strs := decoded.Strings()
		if len(strs) != 1 {
			return req, tensor.Value{}, errorf(http.StatusBadRequest, "input %q has %d elements; this model takes one %s element", t.Name, len(strs), in.Kind)
		}
		if in.Kind == tensor.KindText {
			return req, tensor.TextValue(strs[0]), nil
		}
		var v any
		if err := json.Unmarshal([]byte(strs[0]), &v); err != nil {
			return req, tensor.Value{}, errorf(http.StatusBadRequest, "input %q: its element is not valid JSON: %v", t.Name, err)
		}
		return req, tensor.JSONValue(v), nil
	}
}

func encodeV2Response(model, id, outName string, out tensor.Value) ([]byte, error) {
	var result *tensor.Tensor
	switch out.Kind() {
	case tensor.KindTensor:
		result = out.Tensor()
	case tensor.KindText:
		result, _ = tensor.NewStringTensor([]int{1}, []string{out.Text()})
	default:
		b, err := json.Marshal(out.JSON())
		if err != nil {
			return nil, fmt.Errorf("encode json output: %w", err)
		}
		result, _ = tensor.NewStringTensor([]int{1}, []string{string(b)})
	}
	buf := make([]byte, 0, 128+8*result.Len())
	buf = append(buf, `{"model_name":`...)
	buf = strconv.AppendQuote(buf, model)
	buf = append(buf, `,"model_version":"1"`...)
	if id != "" {
		buf = append(buf, `,"id":`...)
		idJSON, _ := json.Marshal(id)
		buf = append(buf, idJSON...)
	}
	buf = append(buf, `,"outputs":[{"name":`...)
	buf = appendJSONString(buf, outName)
	buf = append(buf, `,"datatype":"`...)
	buf = append(buf, result.DType().V2()...)
	buf = append(buf, `","shape":[`...)
	for i, d := range result.Shape() {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = strconv.AppendInt(buf, int64(d), 10)
	}
	buf = append(buf, `],"data":`...)
	buf = codec.AppendFlat(buf, result)
	buf = append(buf, "}]}\n"...)
	return buf, nil
}

// appendJSONString appends s as a JSON string: as is between quotes in the
// common case of plain ASCII, through encoding/json otherwise.
func appendJSONString(buf []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			b, _ := json.Marshal(s)
			return append(buf, b...)
		}
	}
	buf = append(buf, '"')
	buf = append(buf, s...)
	return append(buf, '"')
}

type v2Duration struct {
	Count uint64 `json:"count"`
	Ns    uint64 `json:"ns"`
}

// handleV2Stats answers in the shape of Triton's statistics extension.
func (s *Server) handleV2Stats(w http.ResponseWriter, r *http.Request) {
	m, ok := s.model(w, r, http.MethodGet)
	if !ok {
		return
	}
	st := m.runner.Stats(engine.StatsOptions{})
	var ms engine.MethodStats
	for _, x := range st.Methods {
		if x.Spec.Name == m.spec.Name {
			ms = x
		}
	}
	c := ms.Cumulative
	var rows uint64
	type batchStat struct {
		BatchSize    int        `json:"batch_size"`
		ComputeInfer v2Duration `json:"compute_infer"`
	}
	var batches []batchStat
	for size, n := range ms.BatchSizes {
		rows += uint64(size) * n
		batches = append(batches, batchStat{size, v2Duration{n, uint64(ms.BatchExec[size])}})
	}
	sort.Slice(batches, func(i, j int) bool { return batches[i].BatchSize < batches[j].BatchSize })
	ok200 := ms.Totals["ok"]
	failed := uint64(0)
	for k, v := range ms.Totals {
		if k != "ok" {
			failed += v
		}
	}
	var last int64
	if !c.LastRequest.IsZero() {
		last = c.LastRequest.UnixMilli()
	}
	writeJSON(w, http.StatusOK, map[string]any{"model_stats": []any{map[string]any{
		"name": m.name, "version": "1",
		"last_inference":  last,
		"inference_count": rows,
		"execution_count": c.Executions,
		"inference_stats": map[string]v2Duration{
			"success":       {ok200, uint64(c.Success)},
			"fail":          {failed, uint64(c.Fail)},
			"queue":         {ok200, uint64(c.Queue)},
			"compute_infer": {c.Executions, uint64(c.Exec)},
		},
		"batch_stats": batches,
		"queue":       map[string]any{"depth": ms.Queue.Depth, "in_flight": ms.Queue.InFlight},
	}}})
}
