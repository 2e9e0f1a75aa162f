package engine

import (
	"fmt"
	"maps"
	"math"
	"reflect"
	"slices"
	"time"

	"github.com/benchtop/benchtop/batcher"
	"github.com/benchtop/benchtop/gpu/placement"
)

// Resources is what a runner asks for, as in BentoML's runner resources.
type Resources struct {
	// CPU is how many cores the runner may use; 0 means all of the machine's.
	CPU float64
	// GPU is how many NVIDIA GPUs (nvidia.com/gpu) it uses, or GPUIDs
	// which ones (numbered as visible to benchtop, after the user's own
	// CUDA_VISIBLE_DEVICES).
	GPU    int
	GPUIDs []int
}

func (r Resources) usesGPU() bool { return r.GPU > 0 || len(r.GPUIDs) > 0 }

func (r Resources) equal(o Resources) bool {
	return r.CPU == o.CPU && r.GPU == o.GPU && slices.Equal(r.GPUIDs, o.GPUIDs)
}

// RunnerConfig is everything needed to start a runner. Front ends and the
// config loader build it; Engine.Plan checks it and fills in its defaults.
type RunnerConfig struct {
	Name     string
	Runnable string
	Params   Params
	// Workers is the number of workers; 0 derives it from Resources: one per
	// GPU, else one per core for a single-threaded runnable and one in total
	// for a multi-threaded one.
	Workers   int
	Resources Resources
	// Batching applies to every batchable method (the zero value means
	// batcher.DefaultConfig()); Methods overrides it per method. Non-batchable methods always run one request per call.
	Batching batcher.Config
	Methods  map[string]batcher.Config
	// Timeout bounds one batch's execution; 0 means DefaultTimeout.
	Timeout time.Duration
	// WorkersPerResource places several workers on each GPU (2 = two per
	// GPU), or, below 1, several GPUs per worker (0.5 = two GPUs each).
	// 0 means one worker per GPU.
	WorkersPerResource float64
}

// DefaultTimeout bounds a batch's execution when the config says nothing.
const DefaultTimeout = 60 * time.Second

// MaxWorkers caps a pool so that a typo cannot fork a thousand processes.
const MaxWorkers = 256

// withDefaults is c with its unset knobs at their defaults: zero batching is
// batcher.DefaultConfig(), a zero timeout DefaultTimeout. It is the one place
// defaults are filled in (Plan calls it); the worker count is derived from
// the resources where the pool is placed (PlanWorkers).
func (c RunnerConfig) withDefaults() RunnerConfig {
	if c.Batching == (batcher.Config{}) {
		c.Batching = batcher.DefaultConfig()
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	c.Methods = maps.Clone(c.Methods)
	return c
}

// batchingFor is the effective batching of one method.
func (c RunnerConfig) batchingFor(m MethodSpec) batcher.Config {
	bc := c.Batching
	if o, ok := c.Methods[m.Name]; ok {
		bc = o
	}
	if !m.Batchable {
		// One request per call, but the queue still bounds waiting and
		// shares the workers fairly with the other methods.
		bc.Policy, bc.MaxBatchSize = batcher.None, 1
	}
	return bc
}

// WorkerPlan is how many workers a runner gets and what each may use.
type WorkerPlan struct {
	Workers int
	Threads int // CPU threads per worker
	// GPUs places workers on devices (empty for a CPU runner).
	GPUs placement.Placement
}

func (p WorkerPlan) equal(o WorkerPlan) bool {
	return p.Workers == o.Workers && p.Threads == o.Threads && reflect.DeepEqual(p.GPUs, o.GPUs)
}

// PlanWorkers derives the pool size the way BentoML's scheduling strategy
// does: an explicit count wins; a GPU runner gets one worker per GPU; on CPU a
// multi-threaded runnable gets one worker using every allotted core, a
// single-threaded one a worker per core.
func PlanWorkers(t *RunnableType, c RunnerConfig, numCPU int, vis placement.Visible) (WorkerPlan, error) {
	if c.Resources.usesGPU() {
		if !t.supports(ResourceGPU) {
			return WorkerPlan{}, fmt.Errorf("runner %q asks for nvidia.com/gpu but runnable %q supports only %v", c.Name, t.Name, supported(t))
		}
		pl, err := placement.Place(placement.Request{
			Runner: c.Name, GPUs: c.Resources.GPU, DeviceIDs: c.Resources.GPUIDs,
			WorkersPerResource: c.WorkersPerResource, Workers: c.Workers,
		}, vis)
		if err != nil {
			return WorkerPlan{}, err
		}
		return WorkerPlan{Workers: len(pl.Workers), Threads: 1, GPUs: pl}, nil
	}
	cpus := c.Resources.CPU
	if cpus <= 0 {
		cpus = float64(numCPU)
	}
	cores := max(1, int(math.Ceil(cpus)))
	var p WorkerPlan
	switch {
	case t.MultiThreaded:
		p = WorkerPlan{Workers: 1, Threads: cores}
	default:
		p = WorkerPlan{Workers: max(1, int(math.Floor(cpus))), Threads: 1}
	}
	if c.Workers > 0 {
		p.Workers = c.Workers
		if t.MultiThreaded {
			p.Threads = max(1, cores/c.Workers)
		}
	}
	return p, nil
}

func supported(t *RunnableType) []string {
	if len(t.SupportedResources) == 0 {
		return []string{ResourceCPU}
	}
	return t.SupportedResources
}
