package engine

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/benchtop/benchtop/engine/tensor"
	"github.com/benchtop/benchtop/store/names"
)

// A pipeline is an API declared as steps, as a Triton ensemble is: each
// step a runner method whose inputs are the API's inputs or earlier steps'
// outputs. The steps form a graph; a step runs as soon as the steps it
// takes outputs from have finished, so independent steps run at once, each
// batching in its own runner.

// pipeline is a planned pipeline: every value of a call has a slot (the
// API's inputs first, then each step's outputs), and each step reads its
// arguments from slots and writes its outputs to its own.
type pipeline struct {
	api   string
	steps []pstep
	roots []int // steps that wait for none
	slots int
	outs  []int // the slot of each API output
	// chain: one step at a time, each waiting for the one before; a call
	// never has two steps in flight.
	chain bool
}

type pstep struct {
	name, runner, method string
	args                 []int // per method input: its slot, -1 for an optional one left out
	base, n              int   // its outputs' slots: base to base+n
	waits                int   // steps it takes outputs from
	next                 []int // steps that take its outputs
	obs                  prometheus.Observer
}

// stepRef is a parsed reference: an API input (step < 0) or a step's
// output.
type stepRef struct {
	step int
	name string
}

// parseRef reads "$input.NAME" or "STEP.OUTPUT", STEP the longest step
// name that fits (names may hold dots).
func parseRef(from string, steps []string) (stepRef, error) {
	if rest, ok := strings.CutPrefix(from, InputRef); ok {
		if rest == "" {
			return stepRef{}, fmt.Errorf("%q names no input: write %sNAME", from, InputRef)
		}
		return stepRef{step: -1, name: rest}, nil
	}
	best := -1
	for i, s := range steps {
		if strings.HasPrefix(from, s+".") && len(from) > len(s)+1 && (best < 0 || len(s) > len(steps[best])) {
			best = i
		}
	}
	if best < 0 {
		return stepRef{}, fmt.Errorf("%q is neither %sNAME (an input of the api) nor STEP.OUTPUT (steps: %s)", from, InputRef, strings.Join(steps, ", "))
	}
	return stepRef{step: best, name: from[len(steps[best])+1:]}, nil
}

// planPipeline checks a pipeline: step names, runners and methods, every
// binding's reference, name, kind, dtype and shape along the graph, the
// inputs each method needs, cycles and outputs. It works out the API's
// inputs (each $input.NAME, as specific as every step it feeds wants) and
// outputs (the step outputs named); its body kinds default to object.
func planPipeline(ps *problems, path string, a APISpec, runners map[string]bool, methods map[string][]MethodSpec) plannedAPI {
	n0 := len(ps.list)
	g := &pipelineGraph{ps: ps, path: path, a: a, inSpecs: map[string]tensor.IOSpec{}, optional: map[string]bool{},
		deps: make([][]int, len(a.Steps)), args: make([][]stepRef, len(a.Steps))}
	g.nameSteps()
	// The specs of the steps whose methods are known.
	g.specs = make([]*MethodSpec, len(a.Steps))
	for i, st := range a.Steps {
		if st.Runner == "" {
			continue
		}
		if m, ok := findMethod(ps, g.stepPath(i), st.Runner, st.Method, runners, methods); ok {
			g.specs[i] = &m
		}
	}
	for i := range a.Steps {
		g.bindStep(i)
	}
	if cycle := findCycle(g.deps); cycle != nil {
		steps := make([]string, len(cycle))
		for k, i := range cycle {
			steps[k] = g.stepNames[i]
		}
		ps.add(g.stepPath(cycle[0]), "steps form a cycle (%s): a step can only take the outputs of steps that do not wait for it", strings.Join(steps, " → "))
	}
	p := plannedAPI{spec: a}
	outs := planReturns(ps, path, a, g.stepNames, g.specs)
	ins := make(tensor.IOSpecs, len(g.inNames))
	for k, name := range g.inNames {
		ins[k] = g.inSpecs[name]
		ins[k].Optional = g.optional[name]
	}
	p.spec.Inputs, p.spec.Outputs = ins, outs
	// A pipeline's values are named ($input.NAME, outputs): its bodies are
	// objects keyed by those names unless the config says otherwise.
	if parseKinds(ps, path, &p.spec, IOObject, IOObject) {
		checkKinds(ps, path, p.spec)
	}
	if len(ps.list) > n0 {
		return p
	}
	p.pipe = compilePipeline(a, g.stepNames, g.specs, g.inNames, g.args, g.deps)
	return p
}

// pipelineGraph is a pipeline being planned: its steps' names and
// signatures, and what it has learnt so far of the API's inputs (each
// $input.NAME, as specific as every step it feeds wants) and of the edges
// between steps.
type pipelineGraph struct {
	ps        *problems
	path      string
	a         APISpec
	stepNames []string
	specs     []*MethodSpec // nil where a step's method is not known
	inNames   []string      // the API's inputs, in the order first seen
	inSpecs   map[string]tensor.IOSpec
	optional  map[string]bool // an input every step it feeds may go without
	deps      [][]int         // the steps each step waits for
	args      [][]stepRef     // where each input of each step comes from
}

func (g *pipelineGraph) stepPath(i int) string { return fmt.Sprintf("%s.steps[%d]", g.path, i) }

// nameSteps names each step (its runner's name by default) and reports a
// missing, malformed or repeated name.
func (g *pipelineGraph) nameSteps() {
	g.stepNames = g.a.StepNames()
	seen := map[string]int{}
	for i, name := range g.stepNames {
		sp := g.stepPath(i)
		switch j, dup := seen[name]; {
		case name == "":
			g.ps.add(sp, "runner: required")
		case !names.Valid(name):
			g.ps.add(join(sp, "name"), "%q: use %s", name, names.Rule)
		case dup:
			g.ps.add(sp, "steps %d and %d are both called %q: give each a name (name: ...)", j, i, name)
		}
		seen[name] = i
	}
}

// bindStep checks step i's bindings against its method and records where
// each input comes from; an input left unbound must be optional.
func (g *pipelineGraph) bindStep(i int) {
	m := g.specs[i]
	if m == nil {
		return
	}
	st := g.a.Steps[i]
	sp := g.stepPath(i)
	g.args[i] = make([]stepRef, len(m.Inputs))
	bound := make([]bool, len(m.Inputs))
	for _, b := range st.Inputs {
		bp := join(sp, "inputs."+b.Name)
		j := m.Inputs.Index(b.Name)
		switch {
		case j < 0:
			g.ps.add(bp, "%s.%s has no input %q (it takes %s)", st.Runner, m.Name, b.Name, count(m.Inputs, "input"))
			continue
		case bound[j]:
			g.ps.add(bp, "input %q is bound twice", b.Name)
			continue
		}
		bound[j] = true
		ref, err := parseRef(b.From, g.stepNames)
		if err != nil {
			g.ps.addErr(bp, err)
			continue
		}
		g.args[i][j] = ref
		if ref.step < 0 {
			g.feedFromInput(bp, b, ref, m.Inputs[j])
		} else {
			g.feedFromStep(bp, i, b, ref, m.Inputs[j])
		}
	}
	for j, in := range m.Inputs {
		if !bound[j] && !in.Optional {
			g.ps.add(join(sp, "inputs"), "%s.%s needs input %q (%s): bind it to %sNAME or STEP.OUTPUT", st.Runner, m.Name, in.Name, in, InputRef)
		}
	}
}

// feedFromInput binds a step's input to the API's input ref.name: that
// input becomes as specific as every input it feeds wants, and optional
// only if all of them are.
func (g *pipelineGraph) feedFromInput(bp string, b Binding, ref stepRef, want tensor.IOSpec) {
	got, ok := g.inSpecs[ref.name]
	if !ok {
		g.inNames = append(g.inNames, ref.name)
		g.optional[ref.name] = want.Optional
		got = tensor.IOSpec{Name: ref.name}
	}
	u, err := unify(got, want)
	if err != nil {
		g.ps.add(bp, "%s feeds inputs that want %s and %s: %v", b.From, got, want, err)
		return
	}
	u.Name, u.Unbatched, u.Optional = ref.name, false, false
	g.inSpecs[ref.name] = u
	g.optional[ref.name] = g.optional[ref.name] && want.Optional
}

// feedFromStep binds step i's input to another step's output: an edge of
// the graph, whose two ends must agree.
func (g *pipelineGraph) feedFromStep(bp string, i int, b Binding, ref stepRef, want tensor.IOSpec) {
	st := g.a.Steps[i]
	if ref.step == i {
		g.ps.add(bp, "step %q takes its own output %s: a step can only take the outputs of other steps", g.stepNames[i], b.From)
		return
	}
	g.deps[i] = append(g.deps[i], ref.step)
	src := g.specs[ref.step]
	if src == nil {
		return // its runner's problem is reported
	}
	o := src.Outputs.Index(ref.name)
	if o < 0 {
		g.ps.add(bp, "step %q (%s.%s) has no output %q (it returns %s)", g.stepNames[ref.step], g.a.Steps[ref.step].Runner, src.Name, ref.name, count(src.Outputs, "output"))
		return
	}
	if _, err := unify(src.Outputs[o], want); err != nil {
		g.ps.add(bp, "%s is %s, but %s.%s takes %q as %s: %v", b.From, src.Outputs[o], st.Runner, g.specs[i].Name, b.Name, want, err)
	}
}

// planReturns checks a pipeline's outputs, each a step's output, and
// returns their specs.
func planReturns(ps *problems, path string, a APISpec, stepNames []string, specs []*MethodSpec) tensor.IOSpecs {
	if len(a.Returns) == 0 {
		ps.add(path, "a pipeline needs outputs: name each, e.g. outputs: {y: STEP.OUTPUT}")
		return nil
	}
	outs := make(tensor.IOSpecs, 0, len(a.Returns))
	for _, r := range a.Returns {
		rp := join(path, "outputs."+r.Name)
		if outs.Index(r.Name) >= 0 {
			ps.add(rp, "output %q is named twice", r.Name)
			continue
		}
		ref, err := parseRef(r.From, stepNames)
		switch {
		case err != nil:
			ps.addErr(rp, err)
			continue
		case ref.step < 0:
			ps.add(rp, "%s is an input of the api: an output comes from a step (STEP.OUTPUT)", r.From)
			continue
		}
		spec := tensor.IOSpec{Name: r.Name}
		if src := specs[ref.step]; src != nil {
			o := src.Outputs.Index(ref.name)
			if o < 0 {
				ps.add(rp, "step %q (%s.%s) has no output %q (it returns %s)", stepNames[ref.step], a.Steps[ref.step].Runner, src.Name, ref.name, count(src.Outputs, "output"))
				continue
			}
			spec = src.Outputs[o]
			spec.Name, spec.Unbatched = r.Name, false
		}
		outs = append(outs, spec)
	}
	return outs
}

// findCycle returns the steps of a cycle in deps (each step's list of the
// steps it waits for), or nil when there is none.
func findCycle(deps [][]int) []int {
	const (
		unseen = iota
		open
		done
	)
	state := make([]int, len(deps))
	var stack []int
	var visit func(i int) []int
	visit = func(i int) []int {
		state[i] = open
		stack = append(stack, i)
		for _, d := range deps[i] {
			switch state[d] {
			case open:
				at := slices.Index(stack, d)
				cycle := slices.Clone(stack[at:])
				slices.Reverse(cycle) // in the order values flow
				return append(cycle, cycle[0])
			case unseen:
				if c := visit(d); c != nil {
					return c
				}
			}
		}
		stack = stack[:len(stack)-1]
		state[i] = done
		return nil
	}
	for i := range deps {
		if state[i] == unseen {
			if c := visit(i); c != nil {
				return c
			}
		}
	}
	return nil
}

// compilePipeline lays out the slots of a checked pipeline.
func compilePipeline(a APISpec, stepNames []string, specs []*MethodSpec, inNames []string, args [][]stepRef, deps [][]int) *pipeline {
	p := &pipeline{api: a.Name, steps: make([]pstep, len(a.Steps)), slots: len(inNames)}
	for i, st := range a.Steps {
		p.steps[i] = pstep{name: stepNames[i], runner: st.Runner, method: st.Method, base: p.slots, n: len(specs[i].Outputs)}
		p.slots += len(specs[i].Outputs)
	}
	slotOf := func(r stepRef) int {
		if r.step < 0 {
			return slices.Index(inNames, r.name)
		}
		return p.steps[r.step].base + specs[r.step].Outputs.Index(r.name)
	}
	for i := range p.steps {
		st := &p.steps[i]
		st.args = make([]int, len(specs[i].Inputs))
		for j := range st.args {
			st.args[j] = -1
		}
		for _, b := range a.Steps[i].Inputs {
			j := specs[i].Inputs.Index(b.Name)
			st.args[j] = slotOf(args[i][j])
		}
		waits := slices.Compact(slices.Sorted(slices.Values(deps[i])))
		st.waits = len(waits)
		for _, d := range waits {
			p.steps[d].next = append(p.steps[d].next, i)
		}
		if st.waits == 0 {
			p.roots = append(p.roots, i)
		}
	}
	for _, r := range a.Returns {
		ref, _ := parseRef(r.From, stepNames)
		p.outs = append(p.outs, slotOf(ref))
	}
	p.chain = len(p.roots) == 1
	for _, st := range p.steps {
		p.chain = p.chain && len(st.next) <= 1
	}
	return p
}

// stepResult is one finished step of a call.
type stepResult struct {
	step int
	outs []tensor.Value
	info StepInfo
}

// run calls the pipeline: each step once its inputs are there, those ready
// together at once. A failing step fails the call, naming the step, and
// cancels the steps in flight; no step starts once ctx has ended. run
// returns only when every step it started has returned.
func (p *pipeline) run(ctx context.Context, e *Engine, in []tensor.Value) ([]tensor.Value, APICallInfo, error) {
	info := APICallInfo{}
	slots := make([]tensor.Value, p.slots)
	copy(slots, in)
	waits := make([]int, len(p.steps))
	for i := range p.steps {
		waits[i] = p.steps[i].waits
	}
	ready := append(make([]int, 0, len(p.steps)), p.roots...)
	info.Steps = make([]StepInfo, 0, len(p.steps))
	// Steps in flight are cancelled when one fails; a chain, which never
	// has two at once, needs no context of its own.
	cancel := context.CancelFunc(func() {})
	if !p.chain {
		ctx, cancel = context.WithCancel(ctx)
	}
	defer cancel()
	var (
		results chan stepResult
		running int
		failed  error
	)
	finish := func(r stepResult) {
		info.Steps = append(info.Steps, r.info)
		st := &p.steps[r.step]
		err := r.info.Err
		if err == nil && len(r.outs) != st.n {
			// Planned; a reload that changed the method under the call.
			err = fmt.Errorf("%w: returned %d values, want %d", ErrUnknownMethod, len(r.outs), st.n)
		}
		if err != nil {
			if failed == nil {
				failed = fmt.Errorf("api %q: step %q (%s.%s): %w", p.api, st.name, st.runner, st.method, err)
				cancel()
			}
			return
		}
		copy(slots[st.base:], r.outs)
		for _, n := range st.next {
			if waits[n]--; waits[n] == 0 {
				ready = append(ready, n)
			}
		}
	}
	for {
		if failed == nil && len(ready) > 0 {
			if err := ctx.Err(); err != nil {
				st := &p.steps[ready[0]]
				failed = fmt.Errorf("api %q: stopped before step %q (%s.%s): %w", p.api, st.name, st.runner, st.method, err)
			}
		}
		if failed == nil {
			// A lone ready step with none in flight (a chain) runs in this
			// goroutine: no hand-off for the common case.
			if len(ready) == 1 && running == 0 {
				i := ready[0]
				ready = ready[:0]
				finish(p.call(ctx, e, i, slots))
				continue
			}
			if len(ready) > 0 && results == nil {
				results = make(chan stepResult, len(p.steps))
			}
			for _, i := range ready {
				running++
				args := p.args(i, slots)
				go func() { results <- p.callArgs(ctx, e, i, args) }()
			}
			ready = ready[:0]
		}
		if running == 0 {
			break
		}
		r := <-results
		running--
		finish(r)
	}
	if failed != nil {
		return nil, info, failed
	}
	outs := make([]tensor.Value, len(p.outs))
	for k, s := range p.outs {
		outs[k] = slots[s]
	}
	if len(p.steps) == 1 {
		info.CallInfo = info.Steps[0].Info
	}
	return outs, info, nil
}

// args gathers step i's arguments from the slots; a step started in its
// own goroutine gets them before it goes, so it never reads the slots the
// caller goes on writing.
func (p *pipeline) args(i int, slots []tensor.Value) []tensor.Value {
	st := &p.steps[i]
	args := make([]tensor.Value, len(st.args))
	for j, s := range st.args {
		if s >= 0 {
			args[j] = slots[s]
		}
	}
	return args
}

func (p *pipeline) call(ctx context.Context, e *Engine, i int, slots []tensor.Value) stepResult {
	return p.callArgs(ctx, e, i, p.args(i, slots))
}

func (p *pipeline) callArgs(ctx context.Context, e *Engine, i int, args []tensor.Value) stepResult {
	st := &p.steps[i]
	start := time.Now()
	outs, ci, err := e.RunInfo(ctx, st.runner, st.method, args)
	d := time.Since(start)
	if st.obs != nil {
		st.obs.Observe(d.Seconds())
	}
	return stepResult{step: i, outs: outs, info: StepInfo{Name: st.name, Runner: st.runner, Method: st.method, Duration: d, Info: ci, Err: err}}
}

// StepNames are the names of a pipeline's steps in the order the config
// lists them, a step left unnamed called by its runner.
func (a APISpec) StepNames() []string {
	out := make([]string, len(a.Steps))
	for i, s := range a.Steps {
		out[i] = s.Name
		if out[i] == "" {
			out[i] = s.Runner
		}
	}
	return out
}
