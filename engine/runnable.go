package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/benchtop/benchtop/engine/tensor"
)

// MethodSpec is the signature of one method of a runnable.
type MethodSpec struct {
	Name string
	Doc  string
	// Batchable methods take and return tensors (or JSON arrays) whose rows
	// along BatchDim / OutputBatchDim belong to different callers.
	Batchable      bool
	BatchDim       int
	OutputBatchDim int
	Input, Output  tensor.IOSpec
}

// Validate checks that the spec can be served.
func (m MethodSpec) Validate() error {
	if m.Name == "" {
		return fmt.Errorf("method has no name")
	}
	if !m.Batchable {
		return nil
	}
	for _, s := range []struct {
		what string
		io   tensor.IOSpec
		dim  int
	}{{"input", m.Input, m.BatchDim}, {"output", m.Output, m.OutputBatchDim}} {
		switch s.io.Kind {
		case tensor.KindTensor:
			if s.io.Shape != nil && (s.dim < 0 || s.dim >= len(s.io.Shape)) {
				return fmt.Errorf("method %q: %s batch dim %d is outside its shape %v", m.Name, s.what, s.dim, s.io.Shape)
			}
		case tensor.KindJSON:
			if s.dim != 0 {
				return fmt.Errorf("method %q: %s is a JSON array, so its batch dim must be 0, not %d", m.Name, s.what, s.dim)
			}
		default:
			return fmt.Errorf("method %q is batchable, so its %s must be a tensor or a JSON array, not %s", m.Name, s.what, s.io.Kind)
		}
	}
	return nil
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
}

// Instance is one live copy of a runnable, owned by one worker: it is never
// called concurrently. Outputs must not be modified by the instance after it
// returns them, since callers get views into them.
type Instance interface {
	Call(ctx context.Context, method string, in tensor.Value) (tensor.Value, error)
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

// Env is what a new instance learns about where it runs.
type Env struct {
	Runner string
	Worker int
	Params Params
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

// Registry maps runnable names to their types.
type Registry struct {
	mu    sync.RWMutex
	types map[string]*RunnableType
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
	if _, dup := r.types[t.Name]; dup {
		return fmt.Errorf("register runnable %q: already registered", t.Name)
	}
	r.types[t.Name] = t
	return nil
}

// Lookup finds a type by name; the error lists what is registered.
func (r *Registry) Lookup(name string) (*RunnableType, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if t, ok := r.types[name]; ok {
		return t, nil
	}
	return nil, fmt.Errorf("unknown runnable %q (registered: %s)", name, strings.Join(r.namesLocked(), ", "))
}

// Names lists registered runnables, sorted.
func (r *Registry) Names() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.namesLocked()
}

func (r *Registry) namesLocked() []string {
	names := make([]string, 0, len(r.types))
	for n := range r.types {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// MethodsFor resolves the signatures of t for the given init params; ctx
// bounds a Describe that has to ask a worker.
func (t *RunnableType) MethodsFor(ctx context.Context, p Params) ([]MethodSpec, error) {
	return t.methods(ctx, p)
}

func (t *RunnableType) methods(ctx context.Context, p Params) ([]MethodSpec, error) {
	if t.Describe == nil {
		return t.Methods, nil
	}
	ms, err := t.Describe(ctx, p)
	if err != nil {
		return nil, fmt.Errorf("describe runnable %q: %w", t.Name, err)
	}
	for _, m := range ms {
		if err := m.Validate(); err != nil {
			return nil, fmt.Errorf("runnable %q: %w", t.Name, err)
		}
	}
	return ms, nil
}

func (t *RunnableType) supports(resource string) bool {
	if len(t.SupportedResources) == 0 {
		return resource == ResourceCPU
	}
	return slices.Contains(t.SupportedResources, resource)
}
