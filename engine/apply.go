package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/benchtop/benchtop/batcher"
)

// IOKind is how an API reads its request body and writes its response.
type IOKind string

const (
	IOJSON    IOKind = "json"    // any JSON document
	IOText    IOKind = "text"    // text/plain
	IONDArray IOKind = "ndarray" // a JSON nested list, checked against the method's dtype and shape
)

// ParseIOKind accepts json, text and ndarray.
func ParseIOKind(s string) (IOKind, error) {
	switch k := IOKind(strings.ToLower(s)); k {
	case IOJSON, IOText, IONDArray:
		return k, nil
	}
	return "", fmt.Errorf("unknown io kind %q: want json, text or ndarray", s)
}

// valueKind is the Value kind an IO kind carries.
func (k IOKind) valueKind() Kind {
	switch k {
	case IOText:
		return KindText
	case IONDArray:
		return KindTensor
	default:
		return KindJSON
	}
}

// APISpec is a named endpoint of the service that calls one runner method.
type APISpec struct {
	Name, Runner, Method string
	Input, Output        IOKind
}

// APIs lists the service's APIs sorted by name.
func (e *Engine) APIs() []APISpec {
	e.mu.RLock()
	out := make([]APISpec, 0, len(e.apis))
	for _, a := range e.apis {
		out = append(out, a)
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
	return a, ok
}

// CheckAPI reports whether api fits the method it calls.
func CheckAPI(api APISpec, m MethodSpec) error {
	if got, want := api.Input.valueKind(), m.Input.Kind; want != KindInvalid && got != want {
		return fmt.Errorf("api %q: input %s does not fit %s.%s, which takes %s (use %s)", api.Name, api.Input, api.Runner, api.Method, m.Input, ioKindFor(want))
	}
	if got, want := api.Output.valueKind(), m.Output.Kind; want != KindInvalid && got != want {
		return fmt.Errorf("api %q: output %s does not fit %s.%s, which returns %s (use %s)", api.Name, api.Output, api.Runner, api.Method, m.Output, ioKindFor(want))
	}
	return nil
}

func ioKindFor(k Kind) IOKind {
	switch k {
	case KindText:
		return IOText
	case KindTensor:
		return IONDArray
	}
	return IOJSON
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

// Apply makes the engine serve exactly runners and apis, changing as little
// as it can: batching knobs, worker counts and timeouts change in place; a
// runner whose runnable, init params or resources changed is started anew
// beside the old one, takes over once ready, and the old one drains. An
// invalid config, or a replacement that cannot start, changes nothing: a
// failed Apply leaves the engine exactly as it was. A brand-new runner whose
// workers fail to start is added anyway, retrying, so that one broken model
// does not keep every other runner from serving; the result says so.
func (e *Engine) Apply(ctx context.Context, runners []RunnerConfig, apis []APISpec) (ApplyResult, error) {
	e.applyMu.Lock()
	defer e.applyMu.Unlock()

	current := map[string]*Runner{}
	for _, r := range e.Runners() {
		current[r.name] = r
	}
	type startSpec struct {
		cfg RunnerConfig
		typ *RunnableType
		old *Runner
	}
	var starts []startSpec
	inPlace := map[string]RunnerConfig{}
	methods := map[string][]MethodSpec{}
	var errs []error
	desired := map[string]bool{}
	for _, cfg := range runners {
		if cfg.Batching == (batcher.Config{}) {
			cfg.Batching = batcher.DefaultConfig()
		}
		if desired[cfg.Name] {
			errs = append(errs, fmt.Errorf("runner %q is defined twice", cfg.Name))
			continue
		}
		desired[cfg.Name] = true
		typ, err := e.registry.Lookup(cfg.Runnable)
		if err != nil {
			errs = append(errs, fmt.Errorf("runner %q: %w", cfg.Name, err))
			continue
		}
		if err := cfg.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("runner %q: %w", cfg.Name, err))
			continue
		}
		if typ.Validate != nil {
			if err := typ.Validate(ctx, cfg.Params); err != nil {
				errs = append(errs, fmt.Errorf("runner %q: %w", cfg.Name, err))
				continue
			}
		}
		specs, err := typ.methods(ctx, cfg.Params)
		if err != nil {
			errs = append(errs, fmt.Errorf("runner %q: %w", cfg.Name, err))
			continue
		}
		methods[cfg.Name] = specs
		old := current[cfg.Name]
		if old == nil || !sameDefinition(old.Config(), cfg) {
			starts = append(starts, startSpec{cfg, typ, old})
		} else {
			inPlace[cfg.Name] = cfg
		}
	}
	newAPIs := map[string]APISpec{}
	for _, a := range apis {
		if _, dup := newAPIs[a.Name]; dup {
			errs = append(errs, fmt.Errorf("api %q is defined twice", a.Name))
			continue
		}
		newAPIs[a.Name] = a
		specs, ok := methods[a.Runner]
		if !ok {
			errs = append(errs, fmt.Errorf("api %q: %w %q", a.Name, ErrUnknownRunner, a.Runner))
			continue
		}
		i := indexOfMethod(specs, a.Method)
		if i < 0 {
			errs = append(errs, fmt.Errorf("api %q: runner %q has no method %q (methods: %s)", a.Name, a.Runner, a.Method, methodNames(specs)))
			continue
		}
		if err := CheckAPI(a, specs[i]); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return ApplyResult{}, errors.Join(errs...)
	}

	// Start what is new or redefined beside what runs now.
	started := make([]*Runner, 0, len(starts))
	abort := func(cause error) (ApplyResult, error) {
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
		return ApplyResult{}, cause
	}
	for _, s := range starts {
		e.mu.Lock()
		custom := e.customLocked(s.cfg.Name)
		e.mu.Unlock()
		r, err := newRunner(ctx, e.deps, s.typ, s.cfg, custom)
		if err != nil {
			return abort(err)
		}
		started = append(started, r)
	}
	// A replacement must be ready before it takes over, or the old
	// generation keeps serving. A brand-new runner that cannot start
	// (a missing library, a broken worker command) must not hold the
	// others hostage: it is added, keeps retrying, and says why in its
	// stats, /readyz and the events.
	var failing []string
	for i, r := range started {
		if starts[i].old != nil {
			if err := r.WaitReady(ctx); err != nil {
				return abort(err)
			}
			continue
		}
		if err := r.waitStarted(ctx); err != nil {
			if ctx.Err() != nil {
				return abort(err)
			}
			failing = append(failing, fmt.Sprintf("%s: not ready, retrying: %v", r.name, err))
		}
	}

	// Commit: swap, retune in place, retire what is gone.
	var res ApplyResult
	var retire []*Runner
	e.mu.Lock()
	for i, s := range starts {
		e.runners[s.cfg.Name] = started[i]
		if s.old != nil {
			retire = append(retire, s.old)
			res.Changes = append(res.Changes, fmt.Sprintf("%s: restarted (%s)", s.cfg.Name, definitionDiff(s.old.Config(), s.cfg)))
		} else {
			res.Changes = append(res.Changes, fmt.Sprintf("%s: added (runnable %s)", s.cfg.Name, s.cfg.Runnable))
		}
	}
	for name, r := range current {
		if !desired[name] {
			delete(e.runners, name)
			retire = append(retire, r)
			res.Changes = append(res.Changes, name+": removed")
		}
	}
	oldAPIs := e.apis
	e.apis = newAPIs
	e.mu.Unlock()
	res.Changes = append(res.Changes, apiDiff(oldAPIs, newAPIs)...)
	for name, cfg := range inPlace {
		changes, err := current[name].retune(cfg)
		if err != nil {
			// Validated above; a failure here is a bug worth hearing of.
			e.deps.events.Add(slog.LevelError, name, fmt.Sprintf("retune: %v", err))
		}
		res.Changes = append(res.Changes, changes...)
	}
	res.Changes = append(res.Changes, failing...)
	sort.Strings(res.Changes)
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
	return res, nil
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
		parts = append(parts, fmt.Sprintf("init %v → %v", map[string]any(a.Params), map[string]any(b.Params)))
	}
	if !a.Resources.equal(b.Resources) || a.WorkersPerResource != b.WorkersPerResource {
		parts = append(parts, fmt.Sprintf("resources %+v → %+v", a.Resources, b.Resources))
	}
	return strings.Join(parts, ", ")
}

func apiDiff(old, cur map[string]APISpec) []string {
	var out []string
	for name, a := range cur {
		if o, ok := old[name]; !ok {
			out = append(out, fmt.Sprintf("api %s: added (%s.%s)", name, a.Runner, a.Method))
		} else if o != a {
			out = append(out, fmt.Sprintf("api %s: changed (%s.%s %s→%s)", name, a.Runner, a.Method, a.Input, a.Output))
		}
	}
	for name := range old {
		if _, ok := cur[name]; !ok {
			out = append(out, fmt.Sprintf("api %s: removed", name))
		}
	}
	return out
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
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closing {
		return changes, ErrRunnerClosed
	}
	if r.cfg.timeout() != cfg.timeout() {
		changes = append(changes, fmt.Sprintf("%s: timeout %v → %v", r.name, r.cfg.timeout(), cfg.timeout()))
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
