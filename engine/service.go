package engine

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/benchtop/benchtop/engine/tensor"
)

// A service API composes runners, as a BentoML service API does: Go code
// registered as a ServiceType (this file), or steps declared in the config
// (pipeline.go). Both are served through Engine.CallAPI, like the APIs of
// one method, and each runner call still batches in its runner.

// ServiceType is a kind of service API written in Go: what it takes and
// returns, the runners it needs by role, and its function. It is registered
// once (Registry.RegisterService); the config binds its roles to runners:
//
//	apis:
//	  - {name: analysis, func: sentiment-analysis, runners: {model: sentiment}}
type ServiceType struct {
	Name string
	Doc  string
	// Inputs and Outputs are the values the API takes and returns, as a
	// method's are: one unnamed slot (named input or output by the engine)
	// or several named ones.
	Inputs, Outputs tensor.IOSpecs
	// Input and Output are the body kinds an API of this type reads and
	// writes when its config entry leaves them out.
	Input, Output IOKind
	// Roles are the runners the function calls, each with the method it
	// calls and the signature that method must fit.
	Roles []Role
	// New builds the function of one API of this type. It runs when an
	// Apply starts serving the API (or a changed definition of it), not per
	// call; a failure fails that Apply. It may register collectors on
	// env.Metrics (use RegisterOrReuse: an API rebuilt by a reload finds
	// its collectors there and keeps counting).
	New func(ctx context.Context, env ServiceEnv) (ServiceFunc, error)
}

// Role is one runner a ServiceType calls. Method names the method the bound
// runner must have; its Inputs are what the function passes (in this
// order, to Runners.Call) and its Outputs what it reads back (in this
// order). A runner method fits when it has an input of each name that
// accepts the role's spec (and no other input it requires) and an output of
// each name that the role's spec accepts. A sole unnamed slot is called
// input or output, as in a MethodSpec.
type Role struct {
	Name   string
	Doc    string
	Method MethodSpec
}

// ServiceFunc is one call of a service API: in holds a value per input of
// its type, the result a value per output. It reaches runners through rs
// only, and may call several at once from its own goroutines, each of which
// it waits for before it returns.
type ServiceFunc func(ctx context.Context, rs *Runners, in []tensor.Value) ([]tensor.Value, error)

// ServiceEnv is what a new service API learns about where it runs.
type ServiceEnv struct {
	// API is the API's name in the config.
	API string
	// Runners maps each role to the runner it is bound to.
	Runners map[string]string
	// Metrics registers the API's own collectors on the engine's
	// Registerer, labelled api="<name>"; they leave with the API.
	Metrics prometheus.Registerer
}

// RegisterService adds a service API type; names are unique among them.
func (r *Registry) RegisterService(t *ServiceType) error {
	if t.Name == "" || t.New == nil {
		return fmt.Errorf("register service api: a name and a New function are required")
	}
	sig := MethodSpec{Name: t.Name, Inputs: t.Inputs, Outputs: t.Outputs}
	if err := sig.Validate(); err != nil {
		return fmt.Errorf("register service api %q: %w", t.Name, err)
	}
	for _, k := range []IOKind{t.Input, t.Output} {
		if _, err := ParseIOKind(string(k)); err != nil {
			return fmt.Errorf("register service api %q: %w", t.Name, err)
		}
	}
	seen := map[string]bool{}
	for _, role := range t.Roles {
		if role.Name == "" || seen[role.Name] {
			return fmt.Errorf("register service api %q: roles need distinct names", t.Name)
		}
		seen[role.Name] = true
		if err := role.Method.Validate(); err != nil {
			return fmt.Errorf("register service api %q: role %q: %w", t.Name, role.Name, err)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.services == nil {
		r.services = map[string]*ServiceType{}
	}
	return addNamed(r.services, "service api", t.Name, t)
}

// Service finds a service API type by name; the error lists what is
// registered.
func (r *Registry) Service(name string) (*ServiceType, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return findNamed(r.services, "service api func", name)
}

// signature is the type's inputs and outputs as the engine names them.
func (t *ServiceType) signature() MethodSpec {
	return MethodSpec{Name: t.Name, Inputs: t.Inputs, Outputs: t.Outputs}.withDefaultNames()
}

// Runners is how a ServiceFunc calls the runners bound to its roles. It is
// safe for concurrent use by the goroutines of one call.
type Runners struct {
	eng   *Engine
	api   *servedAPI
	mu    sync.Mutex
	steps []StepInfo
}

// Runner is the name of the runner bound to role.
func (rs *Runners) Runner(role string) string {
	if b := rs.api.roles[role]; b != nil {
		return b.runner
	}
	return ""
}

// Call calls role's method with in, a value per input of the role's
// signature in its order, and returns a value per output of the role's
// signature. The request batches in the bound runner like any other.
func (rs *Runners) Call(ctx context.Context, role string, in ...tensor.Value) ([]tensor.Value, error) {
	b := rs.api.roles[role]
	if b == nil {
		return nil, fmt.Errorf("api %q has no role %q", rs.api.spec.Name, role)
	}
	args := in
	if b.args != nil {
		if len(in) != len(b.want) {
			return nil, fmt.Errorf("role %q: got %d values, want %d (%s)", role, len(in), len(b.want), b.want.Names())
		}
		args = make([]tensor.Value, len(b.args))
		for i, j := range b.args {
			if j >= 0 {
				args[i] = in[j]
			}
		}
	}
	start := time.Now()
	outs, info, err := rs.eng.RunInfo(ctx, b.runner, b.method, args)
	d := time.Since(start)
	b.obs.Observe(d.Seconds())
	rs.mu.Lock()
	rs.steps = append(rs.steps, StepInfo{Name: role, Runner: b.runner, Method: b.method, Duration: d, Info: info, Err: err})
	rs.mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("role %q (%s.%s): %w", role, b.runner, b.method, err)
	}
	if b.outs != nil {
		picked := make([]tensor.Value, len(b.outs))
		for i, j := range b.outs {
			picked[i] = outs[j]
		}
		outs = picked
	}
	return outs, nil
}

// boundRole is a role bound to a runner's method, with how the role's
// values map onto the method's slots (nil where they are the same).
type boundRole struct {
	runner, method string
	want           tensor.IOSpecs // the role's inputs
	args           []int          // per method input: the role input it takes, -1 for none
	outs           []int          // per role output: the method output it reads
	obs            prometheus.Observer
}

// fitRole checks that m serves role and works out how values map: the
// error says which slot does not fit and why.
func fitRole(role Role, m MethodSpec) (*boundRole, error) {
	want := role.Method.withDefaultNames()
	b := &boundRole{method: m.Name, want: want.Inputs}
	args := make([]int, len(m.Inputs))
	same := len(m.Inputs) == len(want.Inputs)
	for i, in := range m.Inputs {
		j := want.Inputs.Index(in.Name)
		args[i] = j
		same = same && j == i
		if j < 0 && !in.Optional {
			return nil, fmt.Errorf("method %s needs input %q (%s), which role %q does not pass (it passes %s)", m.Name, in.Name, in, role.Name, count(want.Inputs, "input"))
		}
	}
	for _, in := range want.Inputs {
		i := m.Inputs.Index(in.Name)
		if i < 0 {
			return nil, fmt.Errorf("method %s has no input %q that role %q passes (it takes %s)", m.Name, in.Name, role.Name, count(m.Inputs, "input"))
		}
		if _, err := unify(in, m.Inputs[i]); err != nil {
			return nil, fmt.Errorf("role %q passes %q as %s, but method %s takes %s: %w", role.Name, in.Name, in, m.Name, m.Inputs[i], err)
		}
	}
	if !same {
		b.args = args
	}
	outs := make([]int, len(want.Outputs))
	same = len(m.Outputs) == len(want.Outputs)
	for j, out := range want.Outputs {
		i := m.Outputs.Index(out.Name)
		if i < 0 {
			return nil, fmt.Errorf("method %s has no output %q that role %q reads (it returns %s)", m.Name, out.Name, role.Name, count(m.Outputs, "output"))
		}
		if _, err := unify(m.Outputs[i], out); err != nil {
			return nil, fmt.Errorf("role %q reads %q as %s, but method %s returns %s: %w", role.Name, out.Name, out, m.Name, m.Outputs[i], err)
		}
		outs[j] = i
		same = same && i == j
	}
	if !same {
		b.outs = outs
	}
	return b, nil
}

// unify is the spec of the values both a and b describe, or why there are
// none: kinds, dtypes, ranks or fixed dims that differ. A slot left open
// on one side takes the other's; the zero spec takes anything.
func unify(a, b tensor.IOSpec) (tensor.IOSpec, error) {
	switch {
	case a.Kind == tensor.KindInvalid:
		b.Name = a.Name
		return b, nil
	case b.Kind == tensor.KindInvalid:
		return a, nil
	case a.Kind != b.Kind:
		return a, fmt.Errorf("%s is not %s", a.Kind, b.Kind)
	case a.Kind != tensor.KindTensor:
		return a, nil
	}
	out := a
	switch {
	case a.DType == tensor.DTypeInvalid:
		out.DType = b.DType
	case b.DType != tensor.DTypeInvalid && a.DType != b.DType:
		return a, fmt.Errorf("dtype %s is not %s", a.DType, b.DType)
	}
	switch {
	case a.Shape == nil:
		out.Shape = b.Shape
	case b.Shape == nil:
	case len(a.Shape) != len(b.Shape):
		return a, fmt.Errorf("shape %v has %d dims, not %d (%v)", a.Shape, len(a.Shape), len(b.Shape), b.Shape)
	default:
		out.Shape = slices.Clone(a.Shape)
		for i := range a.Shape {
			switch {
			case a.Shape[i] < 0:
				out.Shape[i] = b.Shape[i]
			case b.Shape[i] >= 0 && a.Shape[i] != b.Shape[i]:
				return a, fmt.Errorf("dim %d is %d, not %d", i, a.Shape[i], b.Shape[i])
			}
		}
	}
	return out, nil
}

// checkValues checks an API's input values against its signature, as
// checkInputs does a method's, with errors that match ErrInvalidInput.
func checkValues(specs tensor.IOSpecs, in []tensor.Value) error {
	if len(in) != len(specs) {
		return fmt.Errorf("%w: got %d values, want %s", ErrInvalidInput, len(in), count(specs, "input"))
	}
	for i := range specs {
		s := &specs[i]
		if in[i].Kind() == tensor.KindInvalid {
			if s.Optional {
				continue
			}
			return fmt.Errorf("%w: missing input %q", ErrInvalidInput, s.Name)
		}
		if err := s.Check(in[i]); err != nil {
			return fmt.Errorf("%w %q: %w", ErrInvalidInput, s.Name, err)
		}
	}
	return nil
}
