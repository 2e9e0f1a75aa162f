package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/benchtop/benchtop/engine"
	"github.com/benchtop/benchtop/engine/tensor"
	"github.com/benchtop/benchtop/server/codec"
)

// handleIndex lists the APIs with a curl example each: the first thing a
// user opening the port in a browser or with curl should see.
func (s *Server) handleIndex(w http.ResponseWriter, r *http.Request) {
	base := "http://" + r.Host
	var b strings.Builder
	apis := s.eng.APIs()
	fmt.Fprintf(&b, "benchtop %s — %d runners, %d APIs\n\n", s.opts.Version, len(s.eng.Runners()), len(apis))
	for _, a := range apis {
		fmt.Fprintf(&b, "POST /%s   %s   %s → %s\n", a.Name, calls(a), a.Input, a.Output)
		if a.IsPipeline() {
			fmt.Fprintf(&b, "  steps: %s; also the v2 model %q\n", steps(a), a.Name)
		}
		if a.Input == engine.IOObject {
			fmt.Fprintf(&b, "  a JSON object keyed by input name: %s\n", a.Inputs)
		}
		ct, body := codec.ExampleInputs(a.Input, a.Inputs)
		fmt.Fprintf(&b, "  curl -s %s/%s -H 'Content-Type: %s' -d '%s'\n\n", base, a.Name, ct, strings.ReplaceAll(body, "'", `'\''`))
	}
	fmt.Fprintf(&b, "Open Inference Protocol (KServe v2): GET %s/v2/models/{runner}, POST %s/v2/models/{runner}/infer, GET .../stats\n", base, base)
	if s.opts.GRPCAddr != "" {
		fmt.Fprintf(&b, "KServe v2 over gRPC: %s (inference.GRPCInferenceService, grpc.health.v1, reflection: grpcurl -plaintext %s list)\n", s.opts.GRPCAddr, s.opts.GRPCAddr)
	}
	fmt.Fprintf(&b, "Health: %s/livez %s/readyz   Metrics: %s/metrics   OpenAPI: %s/docs.json\n", base, base, base, base)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Write([]byte(b.String()))
}

// calls says what an API calls: runner.method, func NAME, or pipeline.
func calls(a engine.APISpec) string {
	switch {
	case a.IsFunc():
		return "func " + a.Func
	case a.IsPipeline():
		return "pipeline"
	}
	return a.Runner + "." + a.Method
}

// steps lists a pipeline's steps: name (runner.method).
func steps(a engine.APISpec) string {
	names := a.StepNames()
	out := make([]string, len(a.Steps))
	for i, st := range a.Steps {
		out[i] = fmt.Sprintf("%s (%s.%s)", names[i], st.Runner, st.Method)
	}
	return strings.Join(out, ", ")
}

// xBenchtop is the x-benchtop extension of an API's operation: the method
// behind an API of one method, the func and its runners, or the steps.
func xBenchtop(a engine.APISpec) obj {
	x := obj{"input": a.Input, "output": a.Output}
	switch {
	case a.IsFunc():
		x["func"], x["runners"] = a.Func, a.Runners
	case a.IsPipeline():
		names := a.StepNames()
		st := make([]obj, len(a.Steps))
		for i, s := range a.Steps {
			st[i] = obj{"name": names[i], "runner": s.Runner, "method": s.Method}
		}
		x["steps"], x["v2_model"] = st, a.Name
	default:
		x["runner"], x["method"] = a.Runner, a.Method
	}
	return x
}

// funcDoc is the doc of a Go API's type and its role bindings.
func (s *Server) funcDoc(a engine.APISpec) string {
	if !a.IsFunc() {
		return ""
	}
	t, err := s.eng.Registry().Service(a.Func)
	if err != nil {
		return ""
	}
	var roles []string
	for _, r := range t.Roles {
		roles = append(roles, fmt.Sprintf("%s=%s.%s", r.Name, a.Runners[r.Name], r.Method.Name))
	}
	return strings.TrimSpace(t.Doc + " Runners: " + strings.Join(roles, ", ") + ".")
}

func (s *Server) handleOpenAPI(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.openAPI("http://"+r.Host))
}

type obj = map[string]any

func errorResponses(codes ...int) obj {
	out := obj{}
	for _, c := range codes {
		out[fmt.Sprint(c)] = obj{
			"description": http.StatusText(c),
			"content":     obj{"application/json": obj{"schema": obj{"$ref": "#/components/schemas/Error"}}},
		}
	}
	return out
}

func withOK(ok obj, errs obj) obj {
	errs["200"] = ok
	return errs
}

// schemaFor describes a method's inputs or outputs as a body of the given
// IO kind carries them: an object keyed by name, or the one slot.
func schemaFor(kind engine.IOKind, specs tensor.IOSpecs) (contentType string, schema obj) {
	if kind != engine.IOObject {
		if len(specs) != 1 {
			return "application/json", obj{} // CheckAPI keeps this out
		}
		return slotSchema(kind, specs[0])
	}
	props := obj{}
	required := []string{}
	for _, io := range specs {
		_, sc := slotSchema(engine.IOKindFor(io.Kind), io)
		var notes []string
		if io.Optional {
			sc["nullable"] = true
			notes = append(notes, "optional: leave it out, or send null")
		} else {
			required = append(required, io.Name)
		}
		if io.Unbatched {
			notes = append(notes, "one value for the whole request, not a row per caller")
		}
		if len(notes) > 0 {
			sc["description"] = strings.Join(notes, "; ")
		}
		props[io.Name] = sc
	}
	schema = obj{"type": "object", "properties": props, "additionalProperties": false}
	if len(required) > 0 {
		schema["required"] = required
	}
	return "application/json", schema
}

// slotSchema describes one value as the given IO kind carries it: a tensor
// as nested arrays (a bare scalar for rank 0), text as a string.
func slotSchema(kind engine.IOKind, io tensor.IOSpec) (contentType string, schema obj) {
	switch kind {
	case engine.IOText:
		return "text/plain", obj{"type": "string"}
	case engine.IONDArray:
		item := obj{"type": "number"}
		switch io.DType {
		case tensor.Int32, tensor.Int64, tensor.Uint8:
			item = obj{"type": "integer"}
		case tensor.Bool:
			item = obj{"type": "boolean"}
		case tensor.String:
			item = obj{"type": "string"}
		}
		if io.Shape == nil {
			// Any rank: an array of anything (nested lists included).
			return "application/json", obj{"type": "array", "items": obj{}}
		}
		rank := len(io.Shape)
		schema = item
		for i := rank - 1; i >= 0; i-- {
			arr := obj{"type": "array", "items": schema}
			if io.Shape[i] >= 0 {
				arr["minItems"], arr["maxItems"] = io.Shape[i], io.Shape[i]
			}
			schema = arr
		}
		return "application/json", schema
	}
	return "application/json", obj{}
}

func (s *Server) openAPI(base string) obj {
	paths := obj{}
	for _, a := range s.eng.APIs() {
		inCT, inSchema := schemaFor(a.Input, a.Inputs)
		outCT, outSchema := schemaFor(a.Output, a.Outputs)
		ct, example := codec.ExampleInputs(a.Input, a.Inputs)
		media := obj{"schema": inSchema}
		if ct == "application/json" {
			var ex any
			if json.Unmarshal([]byte(example), &ex) == nil {
				media["example"] = ex
			}
		} else {
			media["example"] = example
		}
		desc := fmt.Sprintf("Calls %s (%s → %s).", calls(a), a.Inputs, a.Outputs)
		if a.IsPipeline() {
			desc += fmt.Sprintf(" Steps: %s; the steps whose inputs are ready run at once, each batching in its runner. Also served as the v2 model %q.", steps(a), a.Name)
		}
		if a.Input == engine.IOObject {
			desc += " The body is a JSON object keyed by input name."
		}
		if a.Output == engine.IOObject {
			desc += " The answer is a JSON object keyed by output name."
		}
		if spec, err := s.methodSpec(a.Runner, a.Method); err == nil && !a.IsFunc() && !a.IsPipeline() {
			if spec.Batchable {
				desc += fmt.Sprintf(" Batchable along dim %d: concurrent requests share batches.", spec.BatchDim)
			}
			if spec.Doc != "" {
				desc += " " + spec.Doc
			}
		} else if doc := s.funcDoc(a); doc != "" {
			desc += " " + doc
		}
		paths["/"+a.Name] = obj{"post": obj{
			"operationId": "api_" + strings.NewReplacer("-", "_", ".", "_").Replace(a.Name),
			"summary":     calls(a),
			// What a client such as benchtop bench needs to build bodies
			// of its own: what the API calls and the IO kinds.
			"x-benchtop":  xBenchtop(a),
			"description": desc,
			"tags":        []string{"apis"},
			"requestBody": obj{"required": true, "content": obj{inCT: media}},
			"responses": withOK(obj{"description": "the method's output", "content": obj{outCT: obj{"schema": outSchema}}},
				errorResponses(400, 403, 404, 408, 413, 415, 500, 503, 504)),
		}}
	}
	jsonOK := func(desc string) obj {
		return obj{"description": desc, "content": obj{"application/json": obj{"schema": obj{"type": "object"}}}}
	}
	model := obj{"name": "model", "in": "path", "required": true, "schema": obj{"type": "string"},
		"description": "a runner name (its first method) or runner.method"}
	get := func(id, summary string, params []obj, ok obj, errs ...int) obj {
		op := obj{"operationId": id, "summary": summary, "tags": []string{"v2"}, "responses": withOK(ok, errorResponses(errs...))}
		if params != nil {
			op["parameters"] = params
		}
		return obj{"get": op}
	}
	paths["/v2"] = get("v2_server_metadata", "Server metadata", nil, jsonOK("name, version, extensions"))
	paths["/v2/health/live"] = get("v2_live", "Liveness", nil, jsonOK("live"))
	paths["/v2/health/ready"] = get("v2_ready", "Readiness: every runner has a worker ready", nil, jsonOK("ready"), 503)
	paths["/v2/models/{model}"] = get("v2_model_metadata", "Model metadata: inputs and outputs with datatype and shape (-1 for the batch dim)", []obj{model}, jsonOK("metadata"), 404)
	paths["/v2/models/{model}/ready"] = get("v2_model_ready", "Model readiness", []obj{model}, jsonOK("ready"), 404, 503)
	paths["/v2/models/{model}/stats"] = get("v2_model_stats", "Statistics: counts, cumulative durations, batch-size breakdown (Triton's shape)", []obj{model}, jsonOK("model_stats"), 404)
	paths["/v2/models/{model}/infer"] = obj{"post": obj{
		"operationId": "v2_infer", "summary": "Inference (Open Inference Protocol)", "tags": []string{"v2"},
		"parameters": []obj{model},
		"requestBody": obj{"required": true, "content": obj{"application/json": obj{"schema": obj{
			"type": "object", "required": []string{"inputs"},
			"properties": obj{
				"id": obj{"type": "string"},
				"inputs": obj{"type": "array", "items": obj{
					"type": "object", "required": []string{"name", "shape", "datatype"},
					"properties": obj{
						"name": obj{"type": "string"}, "datatype": obj{"type": "string"},
						"shape": obj{"type": "array", "items": obj{"type": "integer"}}, "data": obj{},
						"parameters": obj{"type": "object", "properties": obj{"binary_data_size": obj{"type": "integer"}}},
					},
				}},
				"outputs": obj{"type": "array", "items": obj{"type": "object", "properties": obj{
					"name": obj{"type": "string"}, "parameters": obj{"type": "object", "properties": obj{"binary_data": obj{"type": "boolean"}}},
				}}},
				"parameters": obj{"type": "object", "properties": obj{"binary_data_output": obj{"type": "boolean"}}},
			},
		}}, "application/octet-stream": obj{"schema": obj{
			"type": "string", "format": "binary",
			"description": "Triton's binary data extension: the JSON request (its length in the Inference-Header-Content-Length header), then the raw data of each input that gives parameters.binary_data_size, in order",
		}}}},
		"responses": withOK(jsonOK("model_name, id, outputs"), errorResponses(400, 403, 404, 408, 413, 415, 500, 503, 504)),
	}}
	paths["/livez"] = obj{"get": obj{"operationId": "livez", "summary": "Liveness", "tags": []string{"health"}, "responses": obj{"200": jsonOK("live")}}}
	paths["/readyz"] = obj{"get": obj{"operationId": "readyz", "summary": "Readiness, with each runner's state", "tags": []string{"health"},
		"responses": withOK(jsonOK("ready"), errorResponses(503))}}
	paths["/metrics"] = obj{"get": obj{"operationId": "metrics", "summary": "Prometheus metrics", "tags": []string{"health"},
		"responses": obj{"200": obj{"description": "Prometheus text exposition", "content": obj{"text/plain": obj{"schema": obj{"type": "string"}}}}}}}
	return obj{
		"openapi": "3.0.3",
		"info": obj{"title": "benchtop", "version": s.opts.Version,
			"description": "Service APIs of the loaded config, the Open Inference Protocol (KServe v2), health and metrics."},
		"servers":    []obj{{"url": base}},
		"paths":      paths,
		"components": obj{"schemas": obj{"Error": obj{"type": "object", "required": []string{"error"}, "properties": obj{"error": obj{"type": "string"}}}}},
	}
}
