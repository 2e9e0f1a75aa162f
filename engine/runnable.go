package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/benchtop/benchtop/batcher"
	"github.com/benchtop/benchtop/engine/tensor"
)

// MethodSpec is the signature of one method of a runnable: an ordered list
// of inputs and one of outputs, each a tensor.IOSpec. A method of one input
// and one output may leave them unnamed; the engine calls them "input" and
// "output" (DefaultInputName, DefaultOutputName). Several inputs (or
// outputs) must each have a name, unique within their list.
type MethodSpec struct {
	Name string
	Doc  string
	// Batchable methods cut the rows of their batched inputs along BatchDim
	// (and of their batched outputs along OutputBatchDim) between callers:
	// requests are concatenated into one batch and its outputs split back.
	// Inputs and outputs marked Unbatched are passed whole.
	Batchable      bool
	BatchDim       int
	OutputBatchDim int
	Inputs         tensor.IOSpecs
	Outputs        tensor.IOSpecs
}

// The names the engine gives the sole input and the sole output of a
// method that leaves them unnamed.
const (
	DefaultInputName  = "input"
	DefaultOutputName = "output"
)

// Validate checks that the spec can be served: names (present where there
// are several, unique), batch dims inside every batched shape, batched
// slots that can be cut into rows (tensors or JSON arrays), a batchable
// method with at least one batched input, Unbatched only on a batchable
// method, Optional only on inputs.
func (m MethodSpec) Validate() error {
	if m.Name == "" {
		return fmt.Errorf("method has no name")
	}
	for _, side := range []struct {
		what  string
		specs tensor.IOSpecs
		dim   int
	}{{"input", m.Inputs, m.BatchDim}, {"output", m.Outputs, m.OutputBatchDim}} {
		for i := range side.specs {
			if err := m.validateSlot(side.what, i, side.specs, side.dim); err != nil {
				return fmt.Errorf("method %q: %w", m.Name, err)
			}
		}
	}
	if !m.Batchable {
		return nil
	}
	if m.BatchDim < 0 || m.OutputBatchDim < 0 {
		return fmt.Errorf("method %q: batch dims %d and %d: want 0 or more", m.Name, m.BatchDim, m.OutputBatchDim)
	}
	for _, s := range m.Inputs {
		if !s.Unbatched {
			return nil
		}
	}
	return fmt.Errorf("method %q is batchable but has no batched input to count its rows by: mark an input batched, or the method not batchable", m.Name)
}

// validateSlot checks the i-th spec of one side of m.
func (m MethodSpec) validateSlot(what string, i int, specs tensor.IOSpecs, dim int) error {
	s := specs[i]
	name := s.Name
	switch {
	case name == "" && len(specs) > 1:
		return fmt.Errorf("%s %d has no name: a method of several %ss names each", what, i, what)
	case name != "" && specs[:i].Index(name) >= 0:
		return fmt.Errorf("two %ss are named %q", what, name)
	case name == "":
		name = defaultName(what)
	}
	if s.Optional && what == "output" {
		return fmt.Errorf("output %q is optional; only inputs may be", name)
	}
	if !m.Batchable {
		if s.Unbatched {
			return fmt.Errorf("%s %q is marked unbatched, but the method is not batchable: every value is passed whole", what, name)
		}
		return nil
	}
	if s.Unbatched {
		return nil
	}
	switch s.Kind {
	case tensor.KindTensor:
		if s.Shape != nil && (dim < 0 || dim >= len(s.Shape)) {
			return fmt.Errorf("%s %q: batch dim %d is outside its shape %v", what, name, dim, s.Shape)
		}
	case tensor.KindJSON:
		if dim != 0 {
			return fmt.Errorf("%s %q is a JSON array, so its batch dim must be 0, not %d", what, name, dim)
		}
	default:
		return fmt.Errorf("the method is batchable, so its batched %s %q must be a tensor or a JSON array, not %s (or mark it unbatched)", what, name, s.Kind)
	}
	return nil
}

func defaultName(what string) string {
	if what == "input" {
		return DefaultInputName
	}
	return DefaultOutputName
}

// withDefaultNames returns m with its sole input and sole output named
// when the runnable left them unnamed: the one place the defaults are
// given, so that every spec the engine hands out names every slot. It
// copies a list only when it changes one.
func (m MethodSpec) withDefaultNames() MethodSpec {
	if len(m.Inputs) == 1 && m.Inputs[0].Name == "" {
		m.Inputs = slices.Clone(m.Inputs)
		m.Inputs[0].Name = DefaultInputName
	}
	if len(m.Outputs) == 1 && m.Outputs[0].Name == "" {
		m.Outputs = slices.Clone(m.Outputs)
		m.Outputs[0].Name = DefaultOutputName
	}
	return m
}

// count is "1 input", "2 inputs (a, b)", "no output" and so on.
func count(l tensor.IOSpecs, what string) string {
	switch len(l) {
	case 0:
		return "no " + what
	case 1:
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss (%s)", len(l), what, l.Names())
}

// Resource names, as BentoML and Kubernetes spell them.
const (
	ResourceCPU = "cpu"
	ResourceGPU = "nvidia.com/gpu"
)

// RunnableType is a kind of computation that runners are made of. It is
// registered once; each worker of each runner gets its own Instance from New.
type RunnableType struct {
	Name string
	Doc  string
	// Methods is the fixed signature list. Types whose methods depend on
	// their init params (a model's inputs) set Describe instead; it may be
	// slow (starting a worker to ask it) and must stop when ctx ends.
	Methods  []MethodSpec
	Describe func(ctx context.Context, p Params) ([]MethodSpec, error)
	// Validate, if set, checks init params without building anything, so
	// that a config check catches a typo before a reload is attempted. It
	// changes nothing and stops when ctx ends.
	Validate func(ctx context.Context, p Params) error
	// SupportedResources lists what it can run on; empty means cpu only.
	SupportedResources []string
	// MultiThreaded says one instance uses several cores on CPU, so a runner
	// gets one worker with many threads rather than one worker per core.
	MultiThreaded bool
	// New builds one worker's instance. It may be slow (loading a model);
	// ctx ends when the runner gives up on it.
	New func(ctx context.Context, env Env) (Instance, error)
	// Defaults, if set, fills in the knobs a runner of this type leaves
	// out, before the engine's own defaults: a remote runner's workers are
	// calls in flight, and its batching is its servers'.
	Defaults func(p Params) RunnerDefaults
}

// RunnerDefaults are a runnable type's own defaults for a runner's knobs;
// zero fields leave the engine's.
type RunnerDefaults struct {
	Workers  int
	Batching batcher.Config
	Timeout  time.Duration
}

// apply fills c's unset knobs from d.
func (d RunnerDefaults) apply(c RunnerConfig) RunnerConfig {
	if c.Workers == 0 && d.Workers > 0 {
		c.Workers = d.Workers
	}
	if c.Batching == (batcher.Config{}) {
		c.Batching = d.Batching
	}
	if c.Timeout == 0 {
		c.Timeout = d.Timeout
	}
	return c
}

// Instance is one live copy of a runnable, owned by one worker: it is never
// called concurrently.
//
// Call runs one batch (or, for a method that is not batchable, one
// request). in holds a value per input of the method, in the order its
// spec declares them; an optional input that is absent is the zero Value.
// Call returns a value per output, in the spec's order. Args and Results
// read inputs and build outputs by name. The engine has checked in against
// the spec and checks the outputs. Neither in nor the outputs may be
// modified after Call returns, since callers get views into them.
type Instance interface {
	Call(ctx context.Context, method string, in []tensor.Value) ([]tensor.Value, error)
}

// An Instance may implement the optional interfaces below; the engine looks
// for each with a type assertion. An implementation says so at compile
// time, beside its type: var _ engine.Closer = (*session)(nil).

// Closer is implemented by instances that hold resources (sessions, files,
// processes). A runner's worker calls Close once, from its own goroutine,
// after the instance's last Call has returned — when the worker retires,
// crashes or is replaced, or its runner closes — and also on an instance
// that finished starting after its worker was retired. Close must release
// everything even when the instance is broken (a crashed process, a failed
// call); the engine ignores its error and recovers its panic. Local.Close
// calls it whenever its own caller closes the Local.
type Closer interface {
	Close() error
}

// PIDReporter is implemented by instances backed by an operating-system
// process (a worker child). PID is that process's id, shown in a runner's
// stats (WorkerInfo.PID), the workbench, the v2 API and the GPU panel. The
// engine reads it once, when the worker becomes ready, so it must not block
// and must not change over the instance's life.
type PIDReporter interface {
	PID() int
}

// ExitNotifier is implemented by instances that can stop being able to
// serve between calls, on their own (a worker process killed by the OOM
// killer or a stray signal). Done returns a channel that is closed when that
// happens; the engine calls it once, after New, and watches the channel
// while the worker waits for work, so that a dead instance is replaced
// before a batch is lost to it. The channel may also close after Close.
// A death during a Call is reported by that Call instead, with an error
// wrapping ErrWorkerCrashed.
type ExitNotifier interface {
	Done() <-chan struct{}
}

// CallerBound is implemented by instances whose work in a call is elsewhere
// and cheap to give up (a call to a runner server): the context a batch
// runs under then ends once every caller of the batch has left, and carries
// the latest of their deadlines (within the runner's timeout), so a client
// that gives up, or whose deadline passes, stops the work where it runs.
// Other instances keep running a batch whose callers left: stopping a
// worker process or an ONNX session mid-call would cost more than it saves.
type CallerBound interface {
	BoundByCallers()
}

// Env is what a new instance learns about where it runs.
type Env struct {
	Runner string
	Worker int
	Params Params
	// Methods are the runner's method signatures as the engine serves
	// them (default names given), for building Args and Results.
	Methods []MethodSpec
	// Threads is how many CPU threads the instance may use.
	Threads int
	// GPUs are the device ids assigned to this worker (empty on CPU), in
	// benchtop's visible numbering; CUDAVisibleDevices is the value a child
	// process should get so that it sees exactly those devices (the user's
	// own CUDA_VISIBLE_DEVICES respected).
	GPUs               []int
	CUDAVisibleDevices string
	// Metrics registers the runnable's own collectors on the engine's
	// Registerer, labelled runner="<name>", and removes them with the runner.
	// Every worker of a runner shares them: use RegisterOrReuse.
	Metrics prometheus.Registerer
	Logger  *slog.Logger
}

// Method finds one of Methods by name.
func (e Env) Method(name string) (MethodSpec, bool) {
	if i := indexOfMethod(e.Methods, name); i >= 0 {
		return e.Methods[i], true
	}
	return MethodSpec{}, false
}

// RegisterOrReuse registers c, or returns the equal collector a sibling
// worker registered first, so that N workers share one metric.
func RegisterOrReuse[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	err := reg.Register(c)
	if err == nil {
		return c, nil
	}
	if are, ok := err.(prometheus.AlreadyRegisteredError); ok {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing, nil
		}
	}
	var zero C
	return zero, err
}

// Params are a runner's init params as written in its config.
type Params map[string]any

// Decode fills dst (a pointer to a struct with json tags) from p, refusing
// unknown keys so that a typo in a config is an error, not a silent default.
func (p Params) Decode(dst any) error {
	raw, err := json.Marshal(map[string]any(p))
	if err != nil {
		return fmt.Errorf("init params: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return fmt.Errorf("init params: %s", strings.TrimPrefix(err.Error(), "json: "))
	}
	return nil
}

// Registry maps runnable names to their types, and service API names to
// theirs (service.go).
type Registry struct {
	mu       sync.RWMutex
	types    map[string]*RunnableType
	services map[string]*ServiceType
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{types: map[string]*RunnableType{}} }

// Register adds t; names are unique.
func (r *Registry) Register(t *RunnableType) error {
	if t.Name == "" || t.New == nil {
		return fmt.Errorf("register runnable: a name and a New function are required")
	}
	if t.Describe == nil {
		for _, m := range t.Methods {
			if err := m.Validate(); err != nil {
				return fmt.Errorf("register runnable %q: %w", t.Name, err)
			}
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return addNamed(r.types, "runnable", t.Name, t)
}

// Lookup finds a type by name; the error lists what is registered.
func (r *Registry) Lookup(name string) (*RunnableType, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return findNamed(r.types, "runnable", name)
}

// addNamed and findNamed keep the registry's kinds (runnables, service
// APIs) one way: a name is registered once, and an unknown one is told
// what is.
func addNamed[T any](m map[string]T, kind, name string, t T) error {
	if _, dup := m[name]; dup {
		return fmt.Errorf("register %s %q: already registered", kind, name)
	}
	m[name] = t
	return nil
}

func findNamed[T any](m map[string]T, kind, name string) (T, error) {
	if t, ok := m[name]; ok {
		return t, nil
	}
	list := strings.Join(slices.Sorted(maps.Keys(m)), ", ")
	if list == "" {
		list = "none"
	}
	var zero T
	return zero, fmt.Errorf("unknown %s %q (registered: %s)", kind, name, list)
}

// Names lists registered runnables, sorted.
func (r *Registry) Names() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.namesLocked()
}

func (r *Registry) namesLocked() []string { return slices.Sorted(maps.Keys(r.types)) }

// MethodsFor resolves the signatures of t for the given init params; ctx
// bounds a Describe that has to ask a worker.
func (t *RunnableType) MethodsFor(ctx context.Context, p Params) ([]MethodSpec, error) {
	return t.methods(ctx, p)
}

// methods resolves the signatures, every slot named (withDefaultNames).
func (t *RunnableType) methods(ctx context.Context, p Params) ([]MethodSpec, error) {
	ms := t.Methods
	if t.Describe != nil {
		var err error
		if ms, err = t.Describe(ctx, p); err != nil {
			return nil, fmt.Errorf("describe runnable %q: %w", t.Name, err)
		}
		for _, m := range ms {
			if err := m.Validate(); err != nil {
				return nil, fmt.Errorf("runnable %q: %w", t.Name, err)
			}
		}
	}
	out := make([]MethodSpec, len(ms))
	for i, m := range ms {
		out[i] = m.withDefaultNames()
	}
	return out, nil
}

func (t *RunnableType) supports(resource string) bool {
	if len(t.SupportedResources) == 0 {
		return resource == ResourceCPU
	}
	return slices.Contains(t.SupportedResources, resource)
}
