package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"

	"github.com/benchtop/benchtop/engine"
	"github.com/benchtop/benchtop/engine/tensor"
	"github.com/benchtop/benchtop/engine/v2pb"
	"github.com/benchtop/benchtop/server/codec"
)

// The Open Inference Protocol (KServe v2) maps a model to a runner method:
// "sim" is the runner's first method, "sentiment.scores" names one.

// A v2 tensor is called by its name in the method's spec: the model's own
// names where it has them (an ONNX model's "Input3"), "input" and "output"
// for a method of one input and one output that leaves them unnamed
// (engine.DefaultInputName), so today's clients keep working. Infer takes
// every input by name and answers with every output, or the ones asked
// for, in the spec's order.

func (s *Server) handleV2Server(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"name": "benchtop", "version": s.opts.Version, "extensions": v2Extensions,
	})
}

// v2Extensions are the protocol extensions served: statistics over HTTP
// and gRPC, binary tensors over HTTP (gRPC has raw contents of its own).
var v2Extensions = []string{"statistics", "binary_tensor_data"}

type v2Model struct {
	name   string
	runner *engine.Runner
	spec   engine.MethodSpec
	// pipeline is set for a pipeline API served as a model (pipeline.go);
	// runner is then nil and spec the pipeline's signature.
	pipeline *engine.APISpec
}

func (s *Server) resolveModel(name string) (v2Model, error) {
	if rn, err := s.eng.Runner(name); err == nil {
		ms := rn.Methods()
		return v2Model{name: name, runner: rn, spec: ms[0]}, nil
	}
	if m, ok := s.pipelineModel(name); ok {
		return m, nil
	}
	if i := strings.LastIndexByte(name, '.'); i > 0 {
		if rn, err := s.eng.Runner(name[:i]); err == nil {
			if spec, ok := rn.Method(name[i+1:]); ok {
				return v2Model{name: name, runner: rn, spec: spec}, nil
			}
			return v2Model{}, errorf(http.StatusNotFound, "model %q: runner %q has no method %q", name, name[:i], name[i+1:])
		}
	}
	var names []string
	for _, rn := range s.eng.Runners() {
		names = append(names, rn.Name())
	}
	names = append(names, s.pipelineNames()...)
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
	Name string `json:"name"`
	// Datatype is left out where the method takes any dtype: v2 has no
	// name for that, and a made-up one ("ANY") breaks clients that map
	// datatypes; parameters.datatypes lists what is accepted instead.
	Datatype   string         `json:"datatype,omitempty"`
	Shape      []int          `json:"shape"`
	Parameters map[string]any `json:"parameters,omitempty"`
}

func v2Metas(specs tensor.IOSpecs) []v2TensorMeta {
	out := make([]v2TensorMeta, len(specs))
	for i, s := range specs {
		out[i] = v2Meta(s)
	}
	return out
}

// v2Datatypes is every datatype infer reads, for a tensor of any dtype.
var v2Datatypes = func() []string {
	var l []string
	for d := tensor.Float32; d <= tensor.String; d++ {
		l = append(l, d.V2())
	}
	return l
}()

// v2Meta describes one slot. What v2's three fields cannot say goes in
// parameters, present only where it applies: "optional" (the input may be
// left out), "unbatched" (one value for the whole request, not rows),
// "datatypes" (a tensor of any dtype: those accepted), "any_shape" (any
// rank; shape then reads [-1]), and "content" ("text" or "json": a BYTES
// [1] element that is a text or a JSON document).
func v2Meta(io tensor.IOSpec) v2TensorMeta {
	m := v2TensorMeta{Name: io.Name, Datatype: "BYTES", Shape: []int{1}}
	params := map[string]any{}
	switch io.Kind {
	case tensor.KindText, tensor.KindJSON:
		params["content"] = io.Kind.String()
	default: // a tensor, or any value, which infer reads as a tensor
		m.Datatype, m.Shape = io.DType.V2(), io.Shape
		if io.DType == tensor.DTypeInvalid {
			params["datatypes"] = v2Datatypes
		}
		if io.Shape == nil {
			m.Shape = []int{-1}
			params["any_shape"] = true
		}
	}
	if io.Optional {
		params["optional"] = true
	}
	if io.Unbatched {
		params["unbatched"] = true
	}
	if len(params) > 0 {
		m.Parameters = params
	}
	return m
}

func (s *Server) handleV2Metadata(w http.ResponseWriter, r *http.Request) {
	m, ok := s.model(w, r, http.MethodGet)
	if !ok {
		return
	}
	if m.pipeline != nil {
		s.pipelineMetadata(w, r, m)
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
	params := v2ModelParams(m, st)
	params["placement"] = placement
	writeJSON(w, http.StatusOK, map[string]any{
		"name":       m.name,
		"versions":   []string{"1"},
		"platform":   "benchtop_" + m.runner.Runnable().Name,
		"inputs":     v2Metas(m.spec.Inputs),
		"outputs":    v2Metas(m.spec.Outputs),
		"parameters": params,
	})
}

// v2ModelParams is what a model's metadata says beyond v2's fields, over
// HTTP and gRPC alike: the method and how it batches (what a remote runner
// needs to call it as its own), the runner's other methods, and its
// batching and workers (what the workbench shows of a remote runner).
func v2ModelParams(m v2Model, st engine.RunnerStats) map[string]any {
	var methods []string
	for _, spec := range m.runner.Methods() {
		methods = append(methods, spec.Name)
	}
	params := map[string]any{
		"method": m.spec.Name, "methods": strings.Join(methods, ","),
		"batchable": m.spec.Batchable, "batch_dim": m.spec.BatchDim, "output_batch_dim": m.spec.OutputBatchDim,
		"workers": st.Workers, "workers_ready": st.Ready,
	}
	if m.spec.Doc != "" {
		params["doc"] = m.spec.Doc
	}
	for _, ms := range st.Methods {
		if ms.Spec.Name == m.spec.Name {
			params["policy"] = ms.Batching.Policy.String()
			params["max_batch_size"] = ms.Batching.MaxBatchSize
			params["max_latency_ms"] = float64(ms.Batching.MaxLatency.Microseconds()) / 1000
		}
	}
	return params
}

func (s *Server) handleV2ModelReady(w http.ResponseWriter, r *http.Request) {
	m, ok := s.model(w, r, http.MethodGet)
	if !ok {
		return
	}
	status := http.StatusOK
	if !s.modelReady(m) {
		status = http.StatusServiceUnavailable
	}
	writeJSON(w, status, map[string]any{"name": m.name, "ready": status == http.StatusOK})
}

type v2InferTensor struct {
	Name     string `json:"name"`
	Shape    []int  `json:"shape"`
	Datatype string `json:"datatype"`
	// Parameters are read one by one where they are used, so that a bad
	// one is an error naming its tensor (binary_data_size).
	Parameters map[string]json.RawMessage `json:"parameters,omitempty"`
	Data       json.RawMessage            `json:"data"`
}

type v2RequestedOutput struct {
	Name       string                     `json:"name"`
	Parameters map[string]json.RawMessage `json:"parameters,omitempty"`
}

type v2InferRequest struct {
	ID         string                     `json:"id,omitempty"`
	Parameters map[string]json.RawMessage `json:"parameters,omitempty"`
	Inputs     []v2InferTensor            `json:"inputs"`
	Outputs    []v2RequestedOutput        `json:"outputs,omitempty"`
}

func (s *Server) handleV2Infer(w http.ResponseWriter, r *http.Request) {
	m, ok := s.model(w, r, http.MethodPost)
	if !ok {
		return
	}
	// A request with binary data is not JSON: Triton's clients send it as
	// application/octet-stream, or with no type at all.
	body, err := s.readBody(w, r, "application/json", "application/octet-stream")
	if err != nil {
		writeError(w, err)
		return
	}
	header, binary, err := splitV2Body(body, r.Header.Values(v2HeaderLength), r.Header.Get("Content-Type"))
	if err != nil {
		writeError(w, err)
		return
	}
	call, err := decodeV2(header, binary, m.spec)
	if err != nil {
		writeError(w, err)
		return
	}
	outs, setHeaders, err := s.runV2(r.Context(), m, call.in)
	if err != nil {
		writeError(w, err)
		return
	}
	resp, raw, err := encodeV2Response(m.name, call.id, m.spec.Outputs, outs, call.outputs, call.binary)
	if err != nil {
		writeError(w, fmt.Errorf("model %q: %w", m.name, err))
		return
	}
	setHeaders(w.Header().Set)
	writeV2Response(w, resp, raw)
}

// runV2 runs a model's inference: its runner's method, or a pipeline's
// steps. setHeaders says how it ran: the batch (X-Batch-*), or each step's
// time (X-Steps).
func (s *Server) runV2(ctx context.Context, m v2Model, in []tensor.Value) ([]tensor.Value, func(set func(key, value string)), error) {
	if m.pipeline != nil {
		outs, info, err := s.eng.CallAPI(ctx, m.name, in)
		return outs, func(set func(key, value string)) { setStepHeaders(set, info.Steps) }, err
	}
	outs, info, err := s.eng.RunInfo(ctx, m.runner.Name(), m.spec.Name, in)
	return outs, func(set func(key, value string)) { setBatchHeaders(set, info) }, err
}

// v2Call is a decoded inference request: a value per input of the method
// in its spec's order (the zero Value for an optional one left out), which
// outputs to send (nil: all) and which of them as binary data (nil: none).
type v2Call struct {
	id      string
	in      []tensor.Value
	outputs []bool
	binary  []bool
}

// decodeV2Request parses a KServe v2 inference request that is all JSON.
func decodeV2Request(body []byte, spec engine.MethodSpec) (v2Call, error) {
	return decodeV2(body, nil, spec)
}

// decodeV2 parses a KServe v2 inference request for a method: its JSON
// header, and binary holding the raw data of the inputs that give a
// parameters.binary_data_size, one after the other in the header's order
// (nil: the request has no binary part). Every input is read by name
// (codec.NamedValues: unknown, repeated and missing inputs are refused as
// the object body refuses them) and checked against its spec; then the
// outputs asked for, and how. Every error is a 400 naming the tensor.
func decodeV2(header, binary []byte, spec engine.MethodSpec) (v2Call, error) {
	var req v2InferRequest
	if err := json.Unmarshal(header, &req); err != nil {
		if binary != nil {
			return v2Call{}, errorf(http.StatusBadRequest, "the JSON header (the first %d bytes, as %s says) is not a v2 inference request: %v", len(header), v2HeaderLength, err)
		}
		return v2Call{}, errorf(http.StatusBadRequest, "body is not a v2 inference request: %v", err)
	}
	call := v2Call{id: req.ID}
	set := codec.NewNamedValues(spec.Inputs)
	raw := v2BinaryReader{rest: binary, present: binary != nil}
	for _, t := range req.Inputs {
		i, err := set.Index(t.Name)
		if err != nil {
			return v2Call{}, err
		}
		data, isRaw, err := raw.next(t)
		if err != nil {
			return v2Call{}, err
		}
		var v tensor.Value
		if isRaw {
			v, err = decodeV2RawTensor(t, data, spec.Inputs[i])
		} else {
			v, err = decodeV2Tensor(t, spec.Inputs[i])
		}
		if err != nil {
			return v2Call{}, err
		}
		if err := set.Set(i, v); err != nil {
			return v2Call{}, err
		}
	}
	if err := raw.done(); err != nil {
		return v2Call{}, err
	}
	in, err := set.Values()
	if err != nil {
		return v2Call{}, err
	}
	call.in = in
	if call.outputs, call.binary, err = v2Outputs(req, spec.Outputs); err != nil {
		return v2Call{}, err
	}
	return call, nil
}

// pickOutput marks the output asked for by name in pick and returns its
// index; an unknown name or one asked for twice is a 400.
func pickOutput(pick []bool, specs tensor.IOSpecs, name string) (int, error) {
	i := specs.Index(name)
	switch {
	case i < 0:
		return 0, errorf(http.StatusBadRequest, "unknown output %q (outputs: %s)", name, specs.Names())
	case pick[i]:
		return 0, errorf(http.StatusBadRequest, "output %q is asked for twice", name)
	}
	pick[i] = true
	return i, nil
}

// v2Outputs reads which outputs a request asks for (nil: all) and which of
// them it wants as binary data (nil: none): parameters.binary_data_output
// sets it for every output, an output's own parameters.binary_data for
// that one.
func v2Outputs(req v2InferRequest, specs tensor.IOSpecs) (pick, binary []bool, err error) {
	all, _, err := v2BoolParam(req.Parameters, "binary_data_output", "request")
	if err != nil {
		return nil, nil, err
	}
	if all {
		binary = make([]bool, len(specs))
		for i := range binary {
			binary[i] = true
		}
	}
	if len(req.Outputs) > 0 {
		pick = make([]bool, len(specs))
	}
	for _, o := range req.Outputs {
		i, err := pickOutput(pick, specs, o.Name)
		if err != nil {
			return nil, nil, err
		}
		b, set, err := v2BoolParam(o.Parameters, "binary_data", fmt.Sprintf("output %q", o.Name))
		if err != nil {
			return nil, nil, err
		}
		if set {
			if binary == nil {
				binary = make([]bool, len(specs))
			}
			binary[i] = b
		}
	}
	return pick, binary, nil
}

// decodeV2Tensor reads one input tensor of a JSON request against its
// spec.
func decodeV2Tensor(t v2InferTensor, in tensor.IOSpec) (tensor.Value, error) {
	dt, err := tensor.ParseDType(t.Datatype)
	if err != nil {
		return tensor.Value{}, errorf(http.StatusBadRequest, "input %q: %v", t.Name, err)
	}
	if len(t.Data) == 0 || string(t.Data) == "null" {
		return tensor.Value{}, errorf(http.StatusBadRequest, "input %q has no data (send data, or its raw bytes with parameters.binary_data_size)", t.Name)
	}
	return v2InputValue(t.Name, dt, in, func(dt tensor.DType) (*tensor.Tensor, error) {
		return codec.DecodeTensorData(t.Data, dt, t.Shape)
	})
}

// v2InputValue is the one rule for a v2 input tensor, however its elements
// came (JSON data, raw bytes over HTTP or gRPC, gRPC contents): a tensor of
// the spec's datatype and shape, or for a text or JSON input one BYTES
// element. decode reads the elements as dt; every error is a 400 naming
// the tensor.
func v2InputValue(name string, dt tensor.DType, in tensor.IOSpec, decode func(tensor.DType) (*tensor.Tensor, error)) (tensor.Value, error) {
	switch in.Kind {
	case tensor.KindText, tensor.KindJSON:
	default: // a tensor, or any value
		if in.DType != tensor.DTypeInvalid && dt != in.DType {
			return tensor.Value{}, errorf(http.StatusBadRequest, "input %q has datatype %s, the model takes %s", name, dt.V2(), in.DType.V2())
		}
		decoded, err := decode(dt)
		if err != nil {
			return tensor.Value{}, errorf(http.StatusBadRequest, "input %q: %v", name, err)
		}
		if err := in.Check(tensor.TensorValue(decoded)); err != nil {
			return tensor.Value{}, errorf(http.StatusBadRequest, "input %q: %v", name, err)
		}
		return tensor.TensorValue(decoded), nil
	}
	if dt != tensor.String {
		return tensor.Value{}, errorf(http.StatusBadRequest, "input %q has datatype %s; the model takes %s as BYTES of shape [1]", name, dt.V2(), in.Kind)
	}
	decoded, err := decode(tensor.String)
	if err != nil {
		return tensor.Value{}, errorf(http.StatusBadRequest, "input %q: %v", name, err)
	}
	strs := decoded.Strings()
	if len(strs) != 1 {
		return tensor.Value{}, errorf(http.StatusBadRequest, "input %q has %d elements; the model takes one %s element", name, len(strs), in.Kind)
	}
	if in.Kind == tensor.KindText {
		return tensor.TextValue(strs[0]), nil
	}
	var v any
	if err := json.Unmarshal([]byte(strs[0]), &v); err != nil {
		return tensor.Value{}, errorf(http.StatusBadRequest, "input %q: its element is not valid JSON: %v", name, err)
	}
	return tensor.JSONValue(v), nil
}

// encodeV2Response writes the outputs picked (nil: all), in the spec's
// order, each under its name: as JSON data, or for those marked in binary
// (nil: none) as parameters.binary_data_size in the JSON, their raw bytes
// returned in raw, in order, to follow it.
func encodeV2Response(model, id string, specs tensor.IOSpecs, outs []tensor.Value, pick, binary []bool) (header []byte, raw [][]byte, err error) {
	if len(outs) != len(specs) {
		// A reload changed the method under this request.
		return nil, nil, fmt.Errorf("returned %d outputs, want %d (%s)", len(outs), len(specs), specs.Names())
	}
	results := make([]*tensor.Tensor, len(outs))
	size := 128
	for i, out := range outs {
		if pick != nil && !pick[i] {
			continue
		}
		t, err := v2pb.V2Tensor(out)
		if err != nil {
			return nil, nil, fmt.Errorf("encode output %q: %w", specs[i].Name, err)
		}
		results[i] = t
		size += 64
		if binary == nil || !binary[i] {
			size += 8 * t.Len()
		}
	}
	buf := make([]byte, 0, size)
	buf = append(buf, `{"model_name":`...)
	buf = strconv.AppendQuote(buf, model)
	buf = append(buf, `,"model_version":"1"`...)
	if id != "" {
		buf = append(buf, `,"id":`...)
		idJSON, _ := json.Marshal(id)
		buf = append(buf, idJSON...)
	}
	buf = append(buf, `,"outputs":[`...)
	first := true
	for i, result := range results {
		if result == nil {
			continue
		}
		if !first {
			buf = append(buf, ',')
		}
		first = false
		buf = append(buf, `{"name":`...)
		buf = appendJSONString(buf, specs[i].Name)
		buf = append(buf, `,"datatype":"`...)
		buf = append(buf, result.DType().V2()...)
		buf = append(buf, `","shape":[`...)
		for j, d := range result.Shape() {
			if j > 0 {
				buf = append(buf, ',')
			}
			buf = strconv.AppendInt(buf, int64(d), 10)
		}
		if binary != nil && binary[i] {
			b, err := v2pb.RawBytes(result)
			if err != nil {
				return nil, nil, fmt.Errorf("encode output %q: %w", specs[i].Name, err)
			}
			raw = append(raw, b)
			buf = append(buf, `],"parameters":{"binary_data_size":`...)
			buf = strconv.AppendInt(buf, int64(len(b)), 10)
			buf = append(buf, "}}"...)
			continue
		}
		buf = append(buf, `],"data":`...)
		buf = codec.AppendFlat(buf, result)
		buf = append(buf, '}')
	}
	buf = append(buf, "]}\n"...)
	return buf, raw, nil
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

// v2ModelStats is one model's figures in the shape of Triton's statistics
// extension, for HTTP and gRPC alike.
type v2ModelStats struct {
	Name           string                `json:"name"`
	Version        string                `json:"version"`
	LastInference  int64                 `json:"last_inference"`
	InferenceCount uint64                `json:"inference_count"`
	ExecutionCount uint64                `json:"execution_count"`
	InferenceStats map[string]v2Duration `json:"inference_stats"`
	BatchStats     []v2BatchStat         `json:"batch_stats"`
	Queue          map[string]any        `json:"queue"`
}

type v2BatchStat struct {
	BatchSize    int        `json:"batch_size"`
	ComputeInfer v2Duration `json:"compute_infer"`
}

func v2StatsOf(m v2Model) v2ModelStats {
	st := m.runner.Stats(engine.StatsOptions{})
	var ms engine.MethodStats
	for _, x := range st.Methods {
		if x.Spec.Name == m.spec.Name {
			ms = x
		}
	}
	c := ms.Cumulative
	var rows uint64
	var batches []v2BatchStat
	for size, n := range ms.BatchSizes {
		rows += uint64(size) * n
		batches = append(batches, v2BatchStat{size, v2Duration{n, uint64(ms.BatchExec[size])}})
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
	return v2ModelStats{
		Name: m.name, Version: "1",
		LastInference:  last,
		InferenceCount: rows,
		ExecutionCount: c.Executions,
		InferenceStats: map[string]v2Duration{
			"success":       {ok200, uint64(c.Success)},
			"fail":          {failed, uint64(c.Fail)},
			"queue":         {ok200, uint64(c.Queue)},
			"compute_infer": {c.Executions, uint64(c.Exec)},
		},
		BatchStats: batches,
		Queue:      map[string]any{"depth": ms.Queue.Depth, "in_flight": ms.Queue.InFlight},
	}
}

// handleV2Stats answers in the shape of Triton's statistics extension.
func (s *Server) handleV2Stats(w http.ResponseWriter, r *http.Request) {
	m, ok := s.model(w, r, http.MethodGet)
	if !ok {
		return
	}
	if m.pipeline != nil {
		writeError(w, pipelineStatsError(m))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"model_stats": []v2ModelStats{v2StatsOf(m)}})
}
