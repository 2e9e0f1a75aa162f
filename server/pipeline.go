package server

import (
	"net/http"
	"strings"

	"github.com/benchtop/benchtop/engine"
)

// A pipeline API is also a KServe v2 model, as a Triton ensemble is: its
// metadata lists the pipeline's inputs and outputs, infer runs it (each
// step batching in its own runner), ready says whether every step's runner
// is. A runner of the same name wins the model name: its own methods stay
// reachable as they were.

// pipelineModel is the v2 model of the pipeline API called name.
func (s *Server) pipelineModel(name string) (v2Model, bool) {
	a, ok := s.eng.API(name)
	if !ok || !a.IsPipeline() {
		return v2Model{}, false
	}
	return v2Model{name: name, spec: engine.MethodSpec{Name: name, Inputs: a.Inputs, Outputs: a.Outputs}, pipeline: &a}, true
}

// pipelineNames are the pipelines served as v2 models, for messages.
func (s *Server) pipelineNames() []string {
	var out []string
	for _, a := range s.eng.APIs() {
		if a.IsPipeline() {
			out = append(out, a.Name)
		}
	}
	return out
}

func (s *Server) pipelineMetadata(w http.ResponseWriter, _ *http.Request, m v2Model) {
	writeJSON(w, http.StatusOK, map[string]any{
		"name":       m.name,
		"versions":   []string{"1"},
		"platform":   "benchtop_pipeline",
		"inputs":     v2Metas(m.spec.Inputs),
		"outputs":    v2Metas(m.spec.Outputs),
		"parameters": map[string]any{"steps": pipelineSteps(m)},
	})
}

// pipelineSteps names each step of a pipeline model and the runner method
// it calls ({name, model}), in the pipeline's order.
func pipelineSteps(m v2Model) []map[string]any {
	names := m.pipeline.StepNames()
	steps := make([]map[string]any, len(m.pipeline.Steps))
	for i, st := range m.pipeline.Steps {
		steps[i] = map[string]any{"name": names[i], "model": st.Runner + "." + st.Method}
	}
	return steps
}

// modelReady is whether a model can serve: its runner has a worker ready,
// or for a pipeline, every step's runner has.
func (s *Server) modelReady(m v2Model) bool {
	if m.pipeline == nil {
		return m.runner.Ready()
	}
	for _, st := range m.pipeline.Steps {
		if rn, err := s.eng.Runner(st.Runner); err != nil || !rn.Ready() {
			return false
		}
	}
	return true
}

// pipelineStatsError points at the steps' own statistics: a pipeline has
// no batches of its own to count (its calls and steps are in /metrics,
// benchtop_api_*).
func pipelineStatsError(m v2Model) error {
	models := make([]string, len(m.pipeline.Steps))
	for i, st := range m.pipeline.Steps {
		models[i] = st.Runner + "." + st.Method
	}
	return errorf(http.StatusNotFound, "model %q is a pipeline: its steps batch in their runners, so ask each step's model (%s); its calls and step latencies are in /metrics as benchtop_api_*", m.name, strings.Join(models, ", "))
}
