package engine

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/benchtop/benchtop/batcher"
	"github.com/benchtop/benchtop/gpu/placement"
	"github.com/benchtop/benchtop/store/names"
)

// Config is everything an engine serves: its runners and the APIs that call
// them. Plan checks it; Apply makes the engine serve the plan.
type Config struct {
	Runners []RunnerConfig
	APIs    []APISpec
}

// Problem is one thing wrong with a Config, at the path of the setting at
// fault, spelled as in the config file: runners[2].init,
// runners[0].batching.max_batch_size, apis[1].method.
type Problem struct {
	Path string
	Err  error
}

func (p Problem) Error() string {
	if p.Path == "" {
		return p.Err.Error()
	}
	return p.Path + ": " + p.Err.Error()
}

func (p Problem) Unwrap() error { return p.Err }

// Problems is every problem Plan found, in config order.
type Problems []Problem

func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.Error()
	}
	return strings.Join(lines, "\n")
}

func (ps Problems) Unwrap() []error {
	errs := make([]error, len(ps))
	for i, p := range ps {
		errs[i] = p
	}
	return errs
}

// problems collects Problems as a check finds them.
type problems struct{ list Problems }

func (ps *problems) add(path, format string, args ...any) {
	ps.list = append(ps.list, Problem{Path: path, Err: fmt.Errorf(format, args...)})
}

func (ps *problems) addErr(path string, err error) {
	ps.list = append(ps.list, Problem{Path: path, Err: err})
}

func (ps *problems) err() error {
	if len(ps.list) == 0 {
		return nil
	}
	return ps.list
}

// join appends a key to a path ("" is the root).
func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// Plan is a checked Config, defaults filled in and each runner's methods
// resolved: what Apply makes the engine serve. Only Engine.Plan makes one,
// and only that engine applies it.
type Plan struct {
	eng     *Engine
	runners []plannedRunner
	apis    []plannedAPI
}

// plannedRunner is one runner's checked config and what starting it takes.
type plannedRunner struct {
	cfg   RunnerConfig // defaults filled in
	typ   *RunnableType
	specs []MethodSpec
}

// Config is the config the plan was made from, with the defaults Plan
// filled in, the API kinds as parsed and the API signatures worked out.
func (p *Plan) Config() Config {
	c := Config{Runners: make([]RunnerConfig, len(p.runners)), APIs: make([]APISpec, len(p.apis))}
	for i, a := range p.apis {
		c.APIs[i] = a.spec
	}
	for i, r := range p.runners {
		c.Runners[i] = r.cfg
	}
	return c
}

// Plan checks cfg and works out what serving it takes, changing nothing,
// neither cfg nor the engine. It fills in the defaults, checks every runner
// and API (names, runnables, init params, resources, batching, methods, the
// API kinds against the method signatures) and resolves each runner's
// methods, which for some runnables means asking a worker: ctx bounds that.
// The error is Problems, every problem found, each at its path in cfg.
// Resources are checked against the GPUs the engine sees, where it was
// given a view of them (Options.GPUs); without one only the request itself
// is checked.
func (e *Engine) Plan(ctx context.Context, cfg Config) (*Plan, error) {
	var ps problems
	p := &Plan{eng: e}
	seen := map[string]bool{}
	methods := map[string][]MethodSpec{} // of the runners whose methods are known
	for i, rc := range cfg.Runners {
		path := fmt.Sprintf("runners[%d]", i)
		checkName(&ps, path, "runner", rc.Name, seen)
		n := len(ps.list)
		pr := e.planRunner(ctx, &ps, path, rc)
		if pr.specs != nil {
			methods[rc.Name] = pr.specs
		}
		if len(ps.list) == n {
			p.runners = append(p.runners, pr)
		}
	}
	p.apis = e.planAPIs(&ps, cfg.APIs, seen, methods)
	if err := ps.err(); err != nil {
		return nil, err
	}
	return p, nil
}

// planRunner checks one runner at path and resolves its methods. specs is
// set whenever the methods are known, even if the runner has problems, so
// that the APIs calling it can still be checked.
func (e *Engine) planRunner(ctx context.Context, ps *problems, path string, rc RunnerConfig) plannedRunner {
	typ, err := e.registry.Lookup(rc.Runnable)
	if err == nil && typ.Defaults != nil {
		rc = typ.Defaults(rc.Params).apply(rc)
	}
	cfg := rc.withDefaults()
	pr := plannedRunner{cfg: cfg}
	checkKnobs(ps, path, cfg)
	if cfg.Runnable == "" {
		ps.add(join(path, "runnable"), "required")
		return pr
	}
	if err != nil {
		ps.addErr(join(path, "runnable"), err)
		return pr
	}
	pr.typ = typ
	pr.specs = methodsOf(ctx, ps, path, typ, cfg.Params)
	if cfg.Resources.usesGPU() {
		if _, err := PlanWorkers(typ, cfg, e.deps.numCPU, e.deps.planVisible()); err != nil {
			ps.addErr(join(path, "resources"), err)
		}
	}
	checkMethods(ps, path, cfg, typ, pr.specs)
	return pr
}

// methodsOf resolves a runner's methods: the runnable's own check of the init
// params, then its signatures, which may start a worker to ask it. nil means
// they are not known.
func methodsOf(ctx context.Context, ps *problems, path string, typ *RunnableType, params Params) []MethodSpec {
	if typ.Validate != nil {
		if err := typ.Validate(ctx, params); err != nil {
			ps.addErr(join(path, "init"), err)
			if typ.Describe != nil {
				return nil // described from bad params, it would only say so again
			}
			return typ.Methods
		}
	}
	specs, err := typ.methods(ctx, params)
	if err != nil {
		ps.addErr(join(path, "init"), err)
		return nil
	}
	if len(specs) == 0 {
		ps.add(path, "runnable %q has no methods", typ.Name)
		return nil
	}
	return specs
}

// checkName reports a missing, malformed or repeated name of a runner or an
// API, and notes it in seen.
func checkName(ps *problems, path, kind, name string, seen map[string]bool) {
	switch {
	case name == "":
		ps.add(path, "name: required")
	case !names.Valid(name):
		ps.add(join(path, "name"), "%q: use %s", name, names.Rule)
	case seen[name]:
		ps.add(join(path, "name"), "%q is used by another %s", name, kind)
	}
	if name != "" {
		seen[name] = true
	}
}

// checkKnobs reports the settings of a runner that are out of range on
// their own (defaults already filled in).
func checkKnobs(ps *problems, path string, c RunnerConfig) {
	if c.Workers < 0 || c.Workers > MaxWorkers {
		ps.add(join(path, "workers"), "%d: want 1 to %d, or leave it out to size the pool from resources", c.Workers, MaxWorkers)
	}
	if c.Resources.CPU < 0 {
		ps.add(join(path, "resources.cpu"), "%v: want 0 (all cores) or more", c.Resources.CPU)
	}
	if c.Resources.GPU < 0 {
		ps.add(join(path, "resources.nvidia.com/gpu"), "%d: want 0 or more", c.Resources.GPU)
	}
	if c.WorkersPerResource < 0 {
		ps.add(join(path, "workers_per_resource"), "%v: want a positive number, or leave it out for one worker per GPU", c.WorkersPerResource)
	}
	if c.Timeout < 0 {
		ps.add(join(path, "timeout"), "%v: want a positive duration, or leave it out for %v", c.Timeout, DefaultTimeout)
	}
	checkBatching(ps, join(path, "batching"), c.Batching)
}

// checkBatching reports the knobs of one batching config that are out of
// range, with their keys as the config file spells them.
func checkBatching(ps *problems, path string, b batcher.Config) {
	if b.Policy > batcher.None {
		ps.add(join(path, "policy"), "%v is not a policy: want adaptive, fixed or none", b.Policy)
	}
	if b.MaxBatchSize < 1 {
		ps.add(join(path, "max_batch_size"), "%d: want at least 1", b.MaxBatchSize)
	}
	if b.MaxLatency < 0 {
		ps.add(join(path, "max_latency_ms"), "%v: want 0 (no bound) or more", b.MaxLatency)
	}
	if b.BatchWait < 0 {
		ps.add(join(path, "batch_wait_ms"), "%v: want 0 or more", b.BatchWait)
	}
	if b.MaxQueueSize < 0 {
		ps.add(join(path, "max_queue_size"), "%d: want 0 (no bound) or more", b.MaxQueueSize)
	}
}

// checkMethods reports per-method batching for a method the runnable lacks
// or that does not batch, and knobs out of range.
func checkMethods(ps *problems, path string, c RunnerConfig, typ *RunnableType, specs []MethodSpec) {
	if specs == nil {
		return // not known: the problem that hid them is reported
	}
	for _, m := range slices.Sorted(maps.Keys(c.Methods)) {
		mp := join(path, "methods."+m)
		i := indexOfMethod(specs, m)
		switch {
		case i < 0:
			ps.add(mp, "runnable %q has no method %q (methods: %s)", typ.Name, m, methodNames(specs))
		case !specs[i].Batchable:
			ps.add(mp, "method %q is not batchable, so it has no batching to set", m)
		default:
			checkBatching(ps, join(mp, "batching"), c.Methods[m])
		}
	}
}

// parseKinds parses an API's input and output kinds into a; one left out
// is def (the method form has none: it must say).
func parseKinds(ps *problems, path string, a *APISpec, defIn, defOut IOKind) bool {
	ok := true
	for _, k := range []struct {
		key string
		v   *IOKind
		def IOKind
	}{{"input", &a.Input, defIn}, {"output", &a.Output, defOut}} {
		if *k.v == "" && k.def != "" {
			*k.v = k.def
			continue
		}
		parsed, err := ParseIOKind(string(*k.v))
		if err != nil {
			ps.add(join(path, k.key), "%q: want json, text, ndarray or object", string(*k.v))
			ok = false
			continue
		}
		*k.v = parsed
	}
	return ok
}

// planVisible is what Plan checks GPU requests against: the GPUs the engine
// sees, or, for an engine given no view of them (a config check), as many as
// any request names, so that only the request itself is checked.
func (d runnerDeps) planVisible() placement.Visible {
	if d.gpus == nil {
		return placement.Visible{Count: 1 << 10}
	}
	return d.gpus()
}

var errForeignPlan = errors.New("apply: not a plan this engine's Plan made")
