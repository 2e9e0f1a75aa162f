package server

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/benchtop/benchtop/engine"
	"github.com/benchtop/benchtop/server/codec"
)

// handleAPI serves POST /{api}: decode the body by the API's input kind
// against its signature (an object keyed by input name where it has
// several), run it (one method, a Go function or a pipeline, through
// engine.CallAPI), encode by its output kind.
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
	body, err := s.readBody(w, r, codec.ContentType(api.Input))
	if err != nil {
		writeError(w, err)
		return
	}
	in, err := codec.DecodeInputs(api.Input, api.Inputs, body)
	if err != nil {
		writeError(w, err)
		return
	}
	outs, info, err := s.eng.CallAPI(r.Context(), name, in)
	if err != nil {
		writeError(w, err)
		return
	}
	ct, out, err := codec.EncodeOutputs(api.Output, api.Outputs, outs)
	if err != nil {
		// Plan keeps a non-object output on an API of one output; a reload
		// that changed the API under a request in flight gets here.
		writeError(w, fmt.Errorf("api %q: %w", name, err))
		return
	}
	if len(info.Steps) == 0 || len(info.Steps) == 1 && api.IsPipeline() {
		setBatchHeaders(w.Header().Set, info.CallInfo)
	}
	setStepHeaders(w.Header().Set, info.Steps)
	w.Header().Set("Content-Type", ct)
	w.WriteHeader(http.StatusOK)
	w.Write(out)
}

// setStepHeaders says, for an API that made several runner calls, how
// long each took: X-Steps: tokenize=1.204ms, classify=3.380ms (in the
// order they finished).
func setStepHeaders(set func(key, value string), steps []engine.StepInfo) {
	if len(steps) == 0 {
		return
	}
	b := make([]byte, 0, 24*len(steps))
	for i, st := range steps {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = append(b, st.Name...)
		b = append(b, '=')
		b = strconv.AppendFloat(b, float64(st.Duration)/1e6, 'f', 3, 64)
		b = append(b, "ms"...)
	}
	set("X-Steps", string(b))
}

// setBatchHeaders says which batch served a request: its rows, the
// requests that shared it, and how long this one queued, in milliseconds.
func setBatchHeaders(set func(key, value string), info engine.CallInfo) {
	set("X-Batch-Rows", strconv.Itoa(info.BatchRows))
	set("X-Batch-Requests", strconv.Itoa(info.BatchRequests))
	set("X-Queue-Ms", strconv.FormatFloat(float64(info.Queued)/1e6, 'f', 3, 64))
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
