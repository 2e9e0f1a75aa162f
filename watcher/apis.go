package watcher

import (
	"gopkg.in/yaml.v3"

	"github.com/benchtop/benchtop/engine"
)

// The keys of an apis: entry beyond runner and method: a Go function's
// role bindings (runners:), a pipeline's steps (steps:) and its outputs
// (outputs:), each mapping in the order the file writes it, every key at
// its position so that the engine's problems land on the line at fault.

// roles reads runners: {ROLE: RUNNER, ...}.
func (d *decoder) roles(n *yaml.Node, p string) map[string]string {
	out := map[string]string{}
	for _, b := range d.bindings(n, p) {
		out[b.Name] = b.From
	}
	return out
}

// bindings reads a mapping of names to strings, in its order.
func (d *decoder) bindings(n *yaml.Node, p string) []engine.Binding {
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		d.errorf(n, p, "want a mapping of names, got %s", describeNode(n))
		return nil
	}
	d.note(n, p)
	var out []engine.Binding
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		kp := join(p, k.Value)
		if seen[k.Value] {
			d.errorf(k, kp, "key appears twice")
			continue
		}
		seen[k.Value] = true
		d.note(k, kp)
		out = append(out, engine.Binding{Name: k.Value, From: d.str(v, kp)})
	}
	return out
}

// steps reads a pipeline's steps.
func (d *decoder) steps(n *yaml.Node, p string) []engine.StepSpec {
	var out []engine.StepSpec
	d.sequence(n, p, func(n *yaml.Node, p string) {
		var st engine.StepSpec
		d.note(n, p)
		d.mapping(n, p, map[string]func(*yaml.Node, string){
			"name":   func(n *yaml.Node, p string) { st.Name = d.str(n, p) },
			"runner": func(n *yaml.Node, p string) { st.Runner = d.str(n, p) },
			"method": func(n *yaml.Node, p string) { st.Method = d.str(n, p) },
			"inputs": func(n *yaml.Node, p string) { st.Inputs = d.bindings(n, p) },
		})
		out = append(out, st)
	})
	return out
}

// FileForm is a as a config file writes it, for tools that write configs
// (`benchtop deploy kubernetes` writes the front end's): its form, runners
// or steps as given, its body kinds only where the file names them.
func (a API) FileForm() any { return effectiveAPI(a.engineSpec()) }

// engineSpec is the API for the engine, kinds as written (Plan parses them).
func (a API) engineSpec() engine.APISpec {
	return engine.APISpec{
		Name: a.Name, Runner: a.Runner, Method: a.Method,
		Input: engine.IOKind(a.Input), Output: engine.IOKind(a.Output),
		Func: a.Func, Runners: a.Runners, Steps: a.Steps, Returns: a.Outputs,
	}
}

// apiOut is an API as `benchtop config print` writes it.
type apiOut struct {
	Name    string            `yaml:"name"`
	Runner  string            `yaml:"runner,omitempty"`
	Method  string            `yaml:"method,omitempty"`
	Func    string            `yaml:"func,omitempty"`
	Runners map[string]string `yaml:"runners,omitempty"`
	Steps   []stepOut         `yaml:"steps,omitempty"`
	Outputs orderedPairs      `yaml:"outputs,omitempty"`
	Input   string            `yaml:"input,omitempty"`
	Output  string            `yaml:"output,omitempty"`
}

type stepOut struct {
	Name   string       `yaml:"name"`
	Runner string       `yaml:"runner"`
	Method string       `yaml:"method"`
	Inputs orderedPairs `yaml:"inputs,omitempty"`
}

// orderedPairs is a YAML mapping written in the order given: a pipeline's
// outputs and a step's inputs are read in file order, so config print
// keeps it for the printed config to plan the same.
type orderedPairs [][2]string

func (o orderedPairs) MarshalYAML() (any, error) {
	n := &yaml.Node{Kind: yaml.MappingNode}
	for _, kv := range o {
		// Encode quotes what a YAML 1.1 reader would take for a bool ("y").
		var k, v yaml.Node
		if err := k.Encode(kv[0]); err != nil {
			return nil, err
		}
		if err := v.Encode(kv[1]); err != nil {
			return nil, err
		}
		n.Content = append(n.Content, &k, &v)
	}
	return n, nil
}

func (o orderedPairs) IsZero() bool { return len(o) == 0 }

// effectiveAPI is a planned API with its defaults (kinds, step names).
func effectiveAPI(a engine.APISpec) apiOut {
	out := apiOut{Name: a.Name, Runner: a.Runner, Method: a.Method, Func: a.Func, Runners: a.Runners,
		Input: string(a.Input), Output: string(a.Output)}
	names := a.StepNames()
	for i, st := range a.Steps {
		so := stepOut{Name: names[i], Runner: st.Runner, Method: st.Method}
		for _, b := range st.Inputs {
			so.Inputs = append(so.Inputs, [2]string{b.Name, b.From})
		}
		out.Steps = append(out.Steps, so)
	}
	for _, b := range a.Returns {
		out.Outputs = append(out.Outputs, [2]string{b.Name, b.From})
	}
	return out
}
