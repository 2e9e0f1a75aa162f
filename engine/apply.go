package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"reflect"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/benchtop/benchtop/batcher"
	"github.com/benchtop/benchtop/engine/tensor"
)

// IOKind is how an API reads its request body and writes its response.
type IOKind string

const (
	IOJSON    IOKind = "json"    // any JSON document
	IOText    IOKind = "text"    // text/plain
	IONDArray IOKind = "ndarray" // a JSON nested list, checked against the method's dtype and shape
	// IOObject is a JSON object keyed by input (or output) name, each
	// member read as its slot's kind reads: the body of a method of
	// several inputs or outputs, where one value per body cannot do.
	IOObject IOKind = "object"
)

// ParseIOKind accepts json, text, ndarray and object.
func ParseIOKind(s string) (IOKind, error) {
	switch k := IOKind(strings.ToLower(s)); k {
	case IOJSON, IOText, IONDArray, IOObject:
		return k, nil
	}
	return "", fmt.Errorf("unknown io kind %q: want json, text, ndarray or object", s)
}

// valueKind is the Value kind an IO kind carries.
func (k IOKind) valueKind() tensor.Kind {
	switch k {
	case IOText:
		return tensor.KindText
	case IONDArray:
		return tensor.KindTensor
	default:
		return tensor.KindJSON
	}
}

// APISpec is a named endpoint of the service: one runner method (Runner
// and Method), a Go function (Func and Runners) or a pipeline (Steps and
// Returns); see api.go.
type APISpec struct {
	Name, Runner, Method string
	// Input and Output are the body kinds. A method API must say; the
	// others default to their type's, or to object for several values.
	Input, Output IOKind
	// Func names a registered ServiceType; Runners binds each of its
	// roles to a runner.
	Func    string
	Runners map[string]string
	// Steps make the API a pipeline; Returns are its outputs, each a step
	// output (config key outputs).
	Steps   []StepSpec
	Returns []Binding
	// Inputs and Outputs are the API's signature, worked out by Plan: the
	// method's, the func's, or the pipeline's API inputs and outputs.
	Inputs, Outputs tensor.IOSpecs
}

// APIs lists the service's APIs sorted by name.
func (e *Engine) APIs() []APISpec {
	e.mu.RLock()
	out := make([]APISpec, 0, len(e.apis))
	for _, a := range e.apis {
		out = append(out, a.spec)
	}
	e.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// API finds one API by name.
func (e *Engine) API(name string) (APISpec, bool) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	a, ok := e.apis[name]
	if !ok {
		return APISpec{}, false
	}
	return a.spec, true
}

// CheckAPI reports whether api fits the method it calls. An object body
// fits any method, naming each input (or output); any other kind carries
// one value, so it fits a method of one input (or output) of its kind.
func CheckAPI(api APISpec, m MethodSpec) error {
	for _, s := range []struct {
		side, verb string
		kind       IOKind
		specs      tensor.IOSpecs
	}{{"input", "takes", api.Input, m.Inputs}, {"output", "returns", api.Output, m.Outputs}} {
		if why := apiMismatch(s.kind, s.side, s.specs); why != "" {
			return fmt.Errorf("api %q: %s %s does not fit %s.%s, which %s %s", api.Name, s.side, s.kind, api.Runner, api.Method, s.verb, why)
		}
	}
	return nil
}

// apiMismatch says what one side of a method is and which kind to use
// instead, or "" when kind fits it.
func apiMismatch(kind IOKind, side string, specs tensor.IOSpecs) string {
	switch {
	case kind == IOObject:
		return ""
	case len(specs) != 1:
		return fmt.Sprintf("%s: use %s, a JSON object keyed by %s name", count(specs, side), IOObject, side)
	}
	if got, want := kind.valueKind(), specs[0].Kind; want != tensor.KindInvalid && got != want {
		return fmt.Sprintf("%s (use %s)", specs[0], IOKindFor(want))
	}
	return ""
}

// IOKindFor is the IO kind whose bodies carry values of kind k: how a body
// for a method is read when no API says (the workbench's method targets,
// benchtop bench in process), and what CheckAPI suggests. A method that
// takes any value reads an ndarray, the most constrained of the three,
// which is also what its example value is.
func IOKindFor(k tensor.Kind) IOKind {
	switch k {
	case tensor.KindText:
		return IOText
	case tensor.KindJSON:
		return IOJSON
	}
	return IONDArray
}

// ApplyResult says what an Apply changed, one line per change, for the
// event log and the UI ("sim: batching.predict.max_batch_size 32 → 64").
type ApplyResult struct {
	Changes []string
}

// DefaultReadyTimeout bounds how long Apply waits for new runners.
const DefaultReadyTimeout = 60 * time.Second

// DefaultDrainTimeout bounds how long a replaced or removed runner may finish
// its queued and running requests.
const DefaultDrainTimeout = 30 * time.Second

// Apply makes the engine serve the plan, changing as little as it can:
// batching knobs, worker counts and timeouts change in place; a runner whose
// runnable, init params or resources changed is started anew beside the old
// one, takes over once ready, and the old one drains; a runner the plan
// lacks drains. A replacement that cannot start changes nothing: a failed
// Apply leaves the engine exactly as it was. A brand-new runner whose workers
// fail to start is added anyway, retrying, so that one broken model does not
// keep every other runner from serving; the result says so. p must come from
// this engine's Plan; what changed since it was made is taken into account.
func (e *Engine) Apply(ctx context.Context, p *Plan) (ApplyResult, error) {
	if p == nil || p.eng != e {
		return ApplyResult{}, errForeignPlan
	}
	e.applyMu.Lock()
	defer e.applyMu.Unlock()
	d := e.diff(p)
	started, err := e.startAll(d.starts)
	if err != nil {
		return ApplyResult{}, err
	}
	failing, err := waitStarted(ctx, d.starts, started)
	if err != nil {
		e.abort(d.starts, started)
		return ApplyResult{}, err
	}
	apis, err := e.buildAPIs(ctx, p.apis)
	if err != nil {
		e.abort(d.starts, started)
		return ApplyResult{}, err
	}
	res, retire := e.swap(d, started, apis)
	res.Changes = append(res.Changes, e.retuneAll(d.retunes)...)
	res.Changes = append(res.Changes, failing...)
	sort.Strings(res.Changes)
	e.drain(retire)
	return res, nil
}

// applyDiff is what an Apply does to the runners that serve now.
type applyDiff struct {
	starts  []startSpec  // new or redefined: started beside what serves
	retunes []retuneSpec // same definition: knobs change in place
	removed []*Runner    // not in the plan: drained
}

type startSpec struct {
	plannedRunner
	old *Runner // the generation it replaces, if any
}

type retuneSpec struct {
	r   *Runner
	cfg RunnerConfig
}

func (e *Engine) diff(p *Plan) applyDiff {
	current := map[string]*Runner{}
	for _, r := range e.Runners() {
		current[r.name] = r
	}
	var d applyDiff
	for _, pr := range p.runners {
		old := current[pr.cfg.Name]
		delete(current, pr.cfg.Name)
		if old != nil && sameDefinition(old.Config(), pr.cfg) {
			d.retunes = append(d.retunes, retuneSpec{old, pr.cfg})
		} else {
			d.starts = append(d.starts, startSpec{pr, old})
		}
	}
	for _, r := range current {
		d.removed = append(d.removed, r)
	}
	return d
}

// startAll starts what is new or redefined beside what serves now; if one
// cannot be built, it stops the others.
func (e *Engine) startAll(starts []startSpec) ([]*Runner, error) {
	started := make([]*Runner, 0, len(starts))
	for _, s := range starts {
		e.mu.Lock()
		custom := e.customLocked(s.cfg.Name)
		e.mu.Unlock()
		r, err := newRunner(e.deps, s.plannedRunner, custom)
		if err != nil {
			e.abort(starts, started)
			return nil, err
		}
		started = append(started, r)
	}
	return started, nil
}

// abort stops what a failed Apply started and forgets the metrics of the
// names that never served.
func (e *Engine) abort(starts []startSpec, started []*Runner) {
	closeCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, r := range started {
		_ = r.Close(closeCtx)
	}
	e.mu.Lock()
	for _, s := range starts {
		if _, running := e.runners[s.cfg.Name]; !running {
			delete(e.custom, s.cfg.Name)
		}
	}
	e.mu.Unlock()
}

// waitStarted waits for what Apply started. A replacement must be ready
// before it takes over, or the old generation keeps serving. A brand-new
// runner that cannot start (a missing library, a broken worker command) must
// not hold the others hostage: it is added, keeps retrying, and says why in
// its stats, /readyz and the events; failing lists those.
func waitStarted(ctx context.Context, starts []startSpec, started []*Runner) (failing []string, err error) {
	for i, r := range started {
		if starts[i].old != nil {
			if err := r.WaitReady(ctx); err != nil {
				return nil, err
			}
			continue
		}
		if err := r.waitStarted(ctx); err != nil {
			if ctx.Err() != nil {
				return nil, err
			}
			failing = append(failing, fmt.Sprintf("%s: not ready, retrying: %v", r.name, err))
		}
	}
	return failing, nil
}

// swap commits: the started runners and the APIs take over, the removed
// runners leave; it returns what changed and the runners to drain.
func (e *Engine) swap(d applyDiff, started []*Runner, apis map[string]*servedAPI) (ApplyResult, []*Runner) {
	var res ApplyResult
	var retire []*Runner
	e.mu.Lock()
	for i, s := range d.starts {
		e.runners[s.cfg.Name] = started[i]
		if s.old != nil {
			retire = append(retire, s.old)
			res.Changes = append(res.Changes, fmt.Sprintf("%s: restarted (%s)", s.cfg.Name, definitionDiff(s.old.Config(), s.cfg)))
		} else {
			res.Changes = append(res.Changes, fmt.Sprintf("%s: added (runnable %s)", s.cfg.Name, s.cfg.Runnable))
		}
	}
	for _, r := range d.removed {
		delete(e.runners, r.name)
		retire = append(retire, r)
		res.Changes = append(res.Changes, r.name+": removed")
	}
	// The APIs change with the runners they call, under one lock.
	oldAPIs := e.apis
	e.apis = apis
	e.mu.Unlock()
	res.Changes = append(res.Changes, e.apiChanges(oldAPIs, apis)...)
	return res, retire
}

// retuneAll changes the knobs of the runners whose definition stayed.
func (e *Engine) retuneAll(retunes []retuneSpec) []string {
	var changes []string
	for _, t := range retunes {
		c, err := t.r.retune(t.cfg)
		if err != nil {
			// Planned; a failure here is a bug worth hearing of.
			e.deps.events.Add(slog.LevelError, t.r.name, fmt.Sprintf("retune: %v", err))
		}
		changes = append(changes, c...)
	}
	return changes
}

// drain closes the runners a reload replaced or removed in the background,
// each for up to DefaultDrainTimeout.
func (e *Engine) drain(retire []*Runner) {
	for _, r := range retire {
		e.bg.Add(1)
		go func() {
			defer e.bg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), DefaultDrainTimeout)
			defer cancel()
			if err := r.Close(ctx); err != nil {
				e.deps.events.Add(slog.LevelWarn, r.name, fmt.Sprintf("old generation did not drain cleanly: %v", err))
			}
			e.forget(r.name)
		}()
	}
}

func indexOfMethod(specs []MethodSpec, name string) int {
	for i, s := range specs {
		if s.Name == name {
			return i
		}
	}
	return -1
}

// sameDefinition reports whether two configs build the same instances, so
// that only knobs differ.
func sameDefinition(a, b RunnerConfig) bool {
	return a.Runnable == b.Runnable && a.Resources.equal(b.Resources) && a.WorkersPerResource == b.WorkersPerResource && paramsEqual(a.Params, b.Params)
}

func paramsEqual(a, b Params) bool {
	if len(a) == 0 && len(b) == 0 {
		return true
	}
	return reflect.DeepEqual(a, b)
}

func definitionDiff(a, b RunnerConfig) string {
	var parts []string
	if a.Runnable != b.Runnable {
		parts = append(parts, fmt.Sprintf("runnable %s → %s", a.Runnable, b.Runnable))
	}
	if !paramsEqual(a.Params, b.Params) {
		parts = append(parts, "init "+paramsDiff(a.Params, b.Params))
	}
	if !a.Resources.equal(b.Resources) || a.WorkersPerResource != b.WorkersPerResource {
		parts = append(parts, fmt.Sprintf("resources %+v → %+v", a.Resources, b.Resources))
	}
	return strings.Join(parts, ", ")
}

// paramsDiff is the init params that differ between a and b, as
// key=value (a key one side lacks reads "unset"), in key order.
func paramsDiff(a, b Params) string {
	keys := map[string]bool{}
	for k := range a {
		keys[k] = true
	}
	for k := range b {
		keys[k] = true
	}
	show := func(p Params, k string) string {
		v, ok := p[k]
		if !ok {
			return k + " unset"
		}
		switch v.(type) {
		case map[string]any, []any, []string:
			// Nested values as JSON, not as Go prints maps.
			if j, err := json.Marshal(v); err == nil {
				return k + "=" + string(j)
			}
		}
		return fmt.Sprintf("%s=%v", k, v)
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(keys)) {
		if !reflect.DeepEqual(a[k], b[k]) {
			parts = append(parts, show(a, k)+" → "+show(b, k))
		}
	}
	return strings.Join(parts, ", ")
}

// retune applies the knobs of cfg (same definition) in place and says what
// changed.
func (r *Runner) retune(cfg RunnerConfig) ([]string, error) {
	var changes []string
	for _, m := range r.order {
		if !m.spec.Batchable {
			continue
		}
		old, want := m.q.Config(), cfg.batchingFor(m.spec)
		if old == want {
			continue
		}
		if err := m.q.SetConfig(want); err != nil {
			return changes, err
		}
		changes = append(changes, fmt.Sprintf("%s: %s", r.name, batchingDiff(m.spec.Name, old, want)))
	}
	plan, err := PlanWorkers(r.typ, cfg, r.deps.numCPU, r.deps.visible())
	if err != nil {
		return changes, err
	}
	r.b.SetMaxExec(cfg.Timeout)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closing {
		return changes, ErrRunnerClosed
	}
	if r.cfg.Timeout != cfg.Timeout {
		changes = append(changes, fmt.Sprintf("%s: timeout %v → %v", r.name, r.cfg.Timeout, cfg.Timeout))
	}
	if !plan.equal(r.plan) {
		changes = append(changes, fmt.Sprintf("%s: workers %d → %d", r.name, r.plan.Workers, plan.Workers))
	}
	r.cfg = cfg
	r.plan = plan
	r.reconcileLocked()
	return changes, nil
}

func batchingDiff(method string, a, b batcher.Config) string {
	var parts []string
	add := func(key string, x, y any) {
		if x != y {
			parts = append(parts, fmt.Sprintf("%s %v → %v", key, x, y))
		}
	}
	add("policy", a.Policy, b.Policy)
	add("max_batch_size", a.MaxBatchSize, b.MaxBatchSize)
	add("max_latency", a.MaxLatency, b.MaxLatency)
	add("batch_wait", a.BatchWait, b.BatchWait)
	add("max_queue_size", a.MaxQueueSize, b.MaxQueueSize)
	return fmt.Sprintf("%s batching %s", method, strings.Join(parts, ", "))
}
