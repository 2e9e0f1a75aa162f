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

// handleAPI serves POST /{api}: decode the body by the API's input kind,
// run the method, encode by its output kind.
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
	outs, info, err := s.eng.RunInfo(r.Context(), api.Runner, api.Method, []tensor.Value{in})
	if err != nil {
		writeError(w, err)
		return
	}
	if len(outs) != 1 {
		// CheckAPI keeps an API on a method of one output; a reload that
		// changed the method under a request in flight gets here.
		writeError(w, fmt.Errorf("api %q: %s.%s returned %d outputs, want 1", name, api.Runner, api.Method, len(outs)))
		return
	}
	setBatchHeaders(w.Header(), info)
	writeValue(w, api.Output, outs[0])
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

func (s *Server) decodeAPIInput(w http.ResponseWriter, r *http.Request, api engine.APISpec, spec engine.MethodSpec) (tensor.Value, error) {
	in, _, err := spec.Single() // CheckAPI made sure
	if err != nil {
		return tensor.Value{}, err
	}
	body, err := s.readBody(w, r, codec.ContentType(api.Input))
	if err != nil {
		return tensor.Value{}, err
	}
	return codec.Decode(api.Input, in, body)
}

func writeValue(w http.ResponseWriter, kind engine.IOKind, v tensor.Value) {
	ct, body, err := codec.Encode(kind, v)
	if err != nil {
		writeError(w, err)
		return
	}
	w.Header().Set("Content-Type", ct)
	w.WriteHeader(http.StatusOK)
	w.Write(body)
}
