package engine

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/benchtop/benchtop/engine/tensor"
)

// An API takes one of three forms, each its own keys in the config:
//
//   - a method: runner and method, the one runner method it calls;
//   - a Go function: func, a registered ServiceType, and runners binding
//     its roles;
//   - a pipeline: steps, each a runner method, and outputs.
//
// Whatever the form, Plan works out the API's signature (Inputs and
// Outputs), front ends read and write bodies against it, and CallAPI runs it.

// StepSpec is one step of a pipeline API: a runner method whose inputs come
// from the API's inputs ($input.NAME) or from earlier steps' outputs
// (STEP.OUTPUT).
type StepSpec struct {
	// Name is how other steps and the outputs refer to the step; it is the
	// runner's name when left out.
	Name           string
	Runner, Method string
	// Inputs bind each input of the method, by name, to where its value
	// comes from. An optional input may be left out.
	Inputs []Binding
}

// Binding names a slot and where its value comes from: "$input.NAME" (an
// input of the API) or "STEP.OUTPUT" (an output of a step).
type Binding struct {
	Name, From string
}

// InputRef is the prefix of a reference to an input of the API.
const InputRef = "$input."

// ErrUnknownAPI: no API of that name is served.
var ErrUnknownAPI = errors.New("unknown api")

// StepInfo is one runner call an API made: a pipeline's step, or a Go
// function's call of a role.
type StepInfo struct {
	Name, Runner, Method string
	// Duration is the time from the call to its answer, queueing included.
	Duration time.Duration
	Info     CallInfo
	Err      error
}

// APICallInfo is what one API call did.
type APICallInfo struct {
	// CallInfo is the batch that served an API of one method (or a
	// pipeline of one step); zero for the others.
	CallInfo
	// Steps are the runner calls a pipeline or a Go function made, in the
	// order they finished.
	Steps []StepInfo
}

// apiForm is which of the three forms an API takes.
type apiForm uint8

const (
	formMethod apiForm = iota
	formFunc
	formPipeline
)

func (a APISpec) form() apiForm {
	switch {
	case a.Func != "":
		return formFunc
	case len(a.Steps) > 0:
		return formPipeline
	}
	return formMethod
}

// IsPipeline reports whether the API is made of steps.
func (a APISpec) IsPipeline() bool { return a.form() == formPipeline }

// IsFunc reports whether the API is a Go function.
func (a APISpec) IsFunc() bool { return a.form() == formFunc }

// Equal reports whether two specs define the same API.
func (a APISpec) Equal(b APISpec) bool {
	return a.Name == b.Name && a.Runner == b.Runner && a.Method == b.Method && a.Input == b.Input && a.Output == b.Output &&
		a.Func == b.Func && maps.Equal(a.Runners, b.Runners) && slices.Equal(a.Returns, b.Returns) &&
		slices.EqualFunc(a.Steps, b.Steps, func(x, y StepSpec) bool {
			return x.Name == y.Name && x.Runner == y.Runner && x.Method == y.Method && slices.Equal(x.Inputs, y.Inputs)
		})
}

// describe says what the API calls, for change lines and messages.
func (a APISpec) describe() string {
	switch a.form() {
	case formFunc:
		roles := make([]string, 0, len(a.Runners))
		for _, r := range slices.Sorted(maps.Keys(a.Runners)) {
			roles = append(roles, r+"="+a.Runners[r])
		}
		return fmt.Sprintf("func %s, %s", a.Func, strings.Join(roles, ", "))
	case formPipeline:
		steps := make([]string, len(a.Steps))
		for i, s := range a.Steps {
			steps[i] = s.Runner + "." + s.Method
		}
		return "steps " + strings.Join(steps, ", ")
	}
	return a.Runner + "." + a.Method
}

// plannedAPI is one checked API and what serving it takes.
type plannedAPI struct {
	spec  APISpec
	typ   *ServiceType
	roles map[string]*boundRole
	pipe  *pipeline
}

// planAPIs checks the APIs against the runners' methods and returns them
// with their kinds parsed and their signatures worked out. runners holds
// every runner name in the config, methods the methods of those that
// resolved: a part calling a runner that did not is not checked further,
// that runner's problem is reported.
func (e *Engine) planAPIs(ps *problems, apis []APISpec, runners map[string]bool, methods map[string][]MethodSpec) []plannedAPI {
	out := make([]plannedAPI, 0, len(apis))
	seen := map[string]bool{}
	for i, a := range apis {
		path := fmt.Sprintf("apis[%d]", i)
		checkName(ps, path, "api", a.Name, seen)
		forms := 0
		for _, set := range []bool{a.Runner != "" || a.Method != "", a.Func != "" || len(a.Runners) > 0, len(a.Steps) > 0 || len(a.Returns) > 0} {
			if set {
				forms++
			}
		}
		if forms != 1 {
			ps.add(path, "say what the api calls, one way: runner and method (one method), func and runners (a Go function), or steps and outputs (a pipeline)")
			out = append(out, plannedAPI{spec: a})
			continue
		}
		var p plannedAPI
		switch a.form() {
		case formFunc:
			p = e.planService(ps, path, a, runners, methods)
		case formPipeline:
			p = planPipeline(ps, path, a, runners, methods)
		default:
			p = planMethodAPI(ps, path, a, runners, methods)
		}
		out = append(out, p)
	}
	return out
}

// planMethodAPI checks an API of one runner method.
func planMethodAPI(ps *problems, path string, a APISpec, runners map[string]bool, methods map[string][]MethodSpec) plannedAPI {
	kindsOK := parseKinds(ps, path, &a, "", "")
	p := plannedAPI{spec: a}
	if a.Runner == "" {
		ps.add(join(path, "runner"), "required with method")
		return p
	}
	m, ok := findMethod(ps, path, a.Runner, a.Method, runners, methods)
	if !ok {
		return p
	}
	p.spec.Inputs, p.spec.Outputs = m.Inputs, m.Outputs
	if kindsOK {
		if err := CheckAPI(a, m); err != nil {
			ps.addErr(path, err)
		}
	}
	return p
}

// findMethod finds runner.method, reporting at path.runner or path.method
// what is missing; ok is false when it is not there or not known.
func findMethod(ps *problems, path, runner, method string, runners map[string]bool, methods map[string][]MethodSpec) (MethodSpec, bool) {
	specs, ok := methods[runner]
	if !ok {
		if !runners[runner] {
			ps.add(join(path, "runner"), "%q is not a runner in this config (runners: %s)", runner, strings.Join(slices.Sorted(maps.Keys(runners)), ", "))
		}
		return MethodSpec{}, false
	}
	i := indexOfMethod(specs, method)
	if i < 0 {
		ps.add(join(path, "method"), "runner %q has no method %q (methods: %s)", runner, method, methodNames(specs))
		return MethodSpec{}, false
	}
	return specs[i], true
}

// planService checks an API of a Go function: the type is registered, every
// role is bound to a runner whose method fits, no binding names a role the
// type lacks, and the body kinds fit the type's signature.
func (e *Engine) planService(ps *problems, path string, a APISpec, runners map[string]bool, methods map[string][]MethodSpec) plannedAPI {
	p := plannedAPI{spec: a}
	typ, err := e.registry.Service(a.Func)
	if err != nil {
		ps.addErr(join(path, "func"), err)
		return p
	}
	p.typ = typ
	sig := typ.signature()
	p.spec.Inputs, p.spec.Outputs = sig.Inputs, sig.Outputs
	if parseKinds(ps, path, &p.spec, typ.Input, typ.Output) {
		checkKinds(ps, path, p.spec)
	}
	p.roles = map[string]*boundRole{}
	roleNames := make([]string, len(typ.Roles))
	for i, role := range typ.Roles {
		roleNames[i] = role.Name
		rp := join(path, "runners."+role.Name)
		runner, ok := a.Runners[role.Name]
		if !ok {
			ps.add(join(path, "runners"), "role %q is not bound: add %s: <runner> (its runner's %s must take %s and return %s)",
				role.Name, role.Name, role.Method.Name, role.Method.withDefaultNames().Inputs, role.Method.withDefaultNames().Outputs)
			continue
		}
		m, ok := findMethod(ps, rp, runner, role.Method.Name, runners, methods)
		if !ok {
			continue
		}
		b, err := fitRole(role, m)
		if err != nil {
			ps.add(rp, "runner %q does not fit: %v", runner, err)
			continue
		}
		b.runner = runner
		p.roles[role.Name] = b
	}
	for _, r := range slices.Sorted(maps.Keys(a.Runners)) {
		if !slices.Contains(roleNames, r) {
			ps.add(join(path, "runners."+r), "func %q has no role %q (roles: %s)", a.Func, r, strings.Join(roleNames, ", "))
		}
	}
	return p
}

// checkKinds reports body kinds that cannot carry the API's signature.
func checkKinds(ps *problems, path string, a APISpec) {
	for _, s := range []struct {
		side, verb string
		kind       IOKind
		specs      tensor.IOSpecs
	}{{"input", "takes", a.Input, a.Inputs}, {"output", "returns", a.Output, a.Outputs}} {
		if why := apiMismatch(s.kind, s.side, s.specs); why != "" {
			ps.add(join(path, s.side), "%s does not fit api %q, which %s %s", s.kind, a.Name, s.verb, why)
		}
	}
}

// servedAPI is an API the engine serves: its spec and what a call runs.
type servedAPI struct {
	spec   APISpec
	fn     ServiceFunc
	roles  map[string]*boundRole
	pipe   *pipeline
	ok     prometheus.Counter
	failed prometheus.Counter
	dur    prometheus.Observer
}

// build makes what serves a planned API. A Go API whose definition did not
// change keeps the function that serves it now (old), and so its state.
func (e *Engine) build(ctx context.Context, p plannedAPI, old *servedAPI) (*servedAPI, error) {
	name := p.spec.Name
	s := &servedAPI{spec: p.spec, roles: p.roles, pipe: p.pipe}
	m := e.apiMetrics
	s.ok = m.calls.WithLabelValues(name, "ok")
	s.failed = m.calls.WithLabelValues(name, "error")
	s.dur = m.duration.WithLabelValues(name)
	for role, b := range s.roles {
		b.obs = m.steps.WithLabelValues(name, role)
	}
	if s.pipe != nil {
		for i := range s.pipe.steps {
			s.pipe.steps[i].obs = m.steps.WithLabelValues(name, s.pipe.steps[i].name)
		}
	}
	switch {
	case p.typ != nil && old != nil && old.fn != nil && old.spec.Equal(p.spec):
		s.fn = old.fn
	case p.typ != nil:
		e.mu.Lock()
		reg := e.apiCustomLocked(name)
		e.mu.Unlock()
		fn, err := p.typ.New(ctx, ServiceEnv{API: name, Runners: maps.Clone(p.spec.Runners), Metrics: reg})
		if err != nil {
			return nil, fmt.Errorf("api %q: start func %q: %w", name, p.typ.Name, err)
		}
		s.fn = fn
	}
	return s, nil
}

// buildAPIs builds what serves each planned API; it changes nothing the
// engine serves.
func (e *Engine) buildAPIs(ctx context.Context, planned []plannedAPI) (map[string]*servedAPI, error) {
	e.mu.RLock()
	current := e.apis
	e.mu.RUnlock()
	out := make(map[string]*servedAPI, len(planned))
	for _, p := range planned {
		s, err := e.build(ctx, p, current[p.spec.Name])
		if err != nil {
			e.forgetAPIs(out, current)
			return nil, err
		}
		out[p.spec.Name] = s
	}
	return out, nil
}

// forgetAPIs drops the series and collectors of the APIs in gone that cur
// does not serve.
func (e *Engine) forgetAPIs(gone, cur map[string]*servedAPI) {
	for name := range gone {
		if _, still := cur[name]; still {
			continue
		}
		e.mu.Lock()
		unregister := takeRegisterer(e.apiCustom, name)
		e.mu.Unlock()
		unregister()
		e.apiMetrics.forget(name)
	}
}

func (e *Engine) apiCustomLocked(name string) *runnerRegisterer {
	c, ok := e.apiCustom[name]
	if !ok {
		c = newLabelledRegisterer(e.prom, "api", name)
		e.apiCustom[name] = c
	}
	return c
}

// apiMetrics are the engine's per-API series: calls of an API as the
// engine runs them (the HTTP front end counts requests, body transfer
// included, in benchtop_api_requests_total), and a pipeline's steps.
type apiMetrics struct {
	calls    *prometheus.CounterVec
	duration *prometheus.HistogramVec
	steps    *prometheus.HistogramVec
}

func newAPIMetrics(reg prometheus.Registerer) (*apiMetrics, error) {
	m := &apiMetrics{
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "benchtop_api_calls_total",
			Help: "API calls the engine ran (from any front end), by outcome (ok, error).",
		}, []string{"api", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "benchtop_api_call_duration_seconds",
			Help:    "Time an API call took in the engine, every runner call it made included, bodies excluded.",
			Buckets: latencyBuckets,
		}, []string{"api"}),
		steps: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "benchtop_api_step_duration_seconds",
			Help:    "Time one runner call of a composed API took, queueing included: a pipeline's step or a Go API's role.",
			Buckets: latencyBuckets,
		}, []string{"api", "step"}),
	}
	for _, c := range []prometheus.Collector{m.calls, m.duration, m.steps} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *apiMetrics) forget(api string) {
	l := prometheus.Labels{"api": api}
	m.calls.DeletePartialMatch(l)
	m.duration.DeletePartialMatch(l)
	m.steps.DeletePartialMatch(l)
}

// CallAPI runs an API of any form with a value per input of its signature
// (APISpec.Inputs) and returns a value per output (APISpec.Outputs). Errors
// of a pipeline's step or a function's runner call name it, and match what
// the runner's error matches (ErrInvalidInput, ErrOverloaded, ...).
func (e *Engine) CallAPI(ctx context.Context, name string, in []tensor.Value) ([]tensor.Value, APICallInfo, error) {
	e.mu.RLock()
	a := e.apis[name]
	e.mu.RUnlock()
	if a == nil {
		return nil, APICallInfo{}, fmt.Errorf("%w %q", ErrUnknownAPI, name)
	}
	start := time.Now()
	var (
		outs []tensor.Value
		info APICallInfo
		err  error
	)
	switch {
	case a.pipe != nil || a.fn != nil:
		// The runner form's method checks its own inputs (checkInputs).
		if err = checkValues(a.spec.Inputs, in); err != nil {
			break
		}
		if a.pipe != nil {
			outs, info, err = a.pipe.run(ctx, e, in)
			break
		}
		rs := &Runners{eng: e, api: a}
		outs, err = a.fn(ctx, rs, in)
		info.Steps = rs.steps
		if err == nil && len(outs) != len(a.spec.Outputs) {
			err = fmt.Errorf("api %q: func %q returned %d values for %s", name, a.spec.Func, len(outs), count(a.spec.Outputs, "output"))
		}
	default:
		outs, info.CallInfo, err = e.RunInfo(ctx, a.spec.Runner, a.spec.Method, in)
	}
	a.dur.Observe(time.Since(start).Seconds())
	if err != nil {
		a.failed.Inc()
		return nil, info, err
	}
	a.ok.Inc()
	return outs, info, nil
}

// apiChanges says what changed from the old APIs to apis, and forgets the
// series of those that left.
func (e *Engine) apiChanges(old, apis map[string]*servedAPI) []string {
	e.forgetAPIs(old, apis)
	var out []string
	for name, a := range apis {
		if o, ok := old[name]; !ok {
			out = append(out, fmt.Sprintf("api %s: added (%s)", name, a.spec.describe()))
		} else if !o.spec.Equal(a.spec) {
			out = append(out, fmt.Sprintf("api %s: changed (%s, %s→%s)", name, a.spec.describe(), a.spec.Input, a.spec.Output))
		}
	}
	for name := range old {
		if _, ok := apis[name]; !ok {
			out = append(out, fmt.Sprintf("api %s: removed", name))
		}
	}
	sort.Strings(out)
	return out
}
