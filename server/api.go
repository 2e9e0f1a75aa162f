package server

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/benchtop/benchtop/engine"
	"github.com/benchtop/benchtop/engine/tensor"
	"github.com/benchtop/benchtop/server/codec"
)

// handleAPI serves POST /{api}: decode the body by the API's input kind
// (an object keyed by input name for a method of several), run the method,
// encode by its output kind.
func (s *Server) handleAPI(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("api")
	api, ok := s.eng.API(name)
	if !ok {
		writeError(w, errorf(http.StatusNotFound, "unknown api %q (apis: %s); GET / lists them with examples", name, s.apiNames()))
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeError(w, errorf(http.StatusMethodNotAllowed, "api %q takes POST, not %s", name, r.Method))
		return
	}
	spec, err := s.methodSpec(api.Runner, api.Method)
	if err != nil {
		writeError(w, err)
		return
	}
	in, err := s.decodeAPIInput(w, r, api, spec)
	if err != nil {
		writeError(w, err)
		return
	}
	outs, info, err := s.eng.RunInfo(r.Context(), api.Runner, api.Method, in)
	if err != nil {
		writeError(w, err)
		return
	}
	ct, body, err := codec.EncodeOutputs(api.Output, spec.Outputs, outs)
	if err != nil {
		// CheckAPI keeps a non-object output on a method of one output; a
		// reload that changed the method under a request in flight gets here.
		writeError(w, fmt.Errorf("api %q: %s.%s: %w", name, api.Runner, api.Method, err))
		return
	}
	setBatchHeaders(w.Header(), info)
	w.Header().Set("Content-Type", ct)
	w.WriteHeader(http.StatusOK)
	w.Write(body)
}

// setBatchHeaders says which batch served a request: its rows, the
// requests that shared it, and how long this one queued, in milliseconds.
func setBatchHeaders(h http.Header, info engine.CallInfo) {
	h.Set("X-Batch-Rows", strconv.Itoa(info.BatchRows))
	h.Set("X-Batch-Requests", strconv.Itoa(info.BatchRequests))
	h.Set("X-Queue-Ms", strconv.FormatFloat(float64(info.Queued)/1e6, 'f', 3, 64))
}

func (s *Server) apiNames() string {
	apis := s.eng.APIs()
	names := make([]string, len(apis))
	for i, a := range apis {
		names[i] = a.Name
	}
	if len(names) == 0 {
		return "none configured"
	}
	return strings.Join(names, ", ")
}

func (s *Server) methodSpec(runner, method string) (engine.MethodSpec, error) {
	rn, err := s.eng.Runner(runner)
	if err != nil {
		return engine.MethodSpec{}, err
	}
	spec, ok := rn.Method(method)
	if !ok {
		return engine.MethodSpec{}, fmt.Errorf("%w %q on runner %q", engine.ErrUnknownMethod, method, runner)
	}
	return spec, nil
}

// decodeAPIInput reads the body as the API's input kind reads it: an
// object keyed by input name, or the method's one input.
func (s *Server) decodeAPIInput(w http.ResponseWriter, r *http.Request, api engine.APISpec, spec engine.MethodSpec) ([]tensor.Value, error) {
	body, err := s.readBody(w, r, codec.ContentType(api.Input))
	if err != nil {
		return nil, err
	}
	return codec.DecodeInputs(api.Input, spec.Inputs, body)
}
