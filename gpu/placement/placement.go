package placement

import (
	"fmt"
	"math"
	"slices"
)

// MaxWorkersPerGPU bounds workers_per_resource so that a typo cannot start
// thousands of workers on one GPU.
const MaxWorkersPerGPU = 64

// Request is what a runner asks for, as its config says it.
type Request struct {
	// Runner names the runner in errors.
	Runner string
	// GPUs is nvidia.com/gpu as a count: the runner uses visible devices
	// 0..GPUs-1.
	GPUs int
	// DeviceIDs is nvidia.com/gpu as a list of visible device ids, e.g.
	// [1, 3]. When set, GPUs must be 0 or its length.
	DeviceIDs []int
	// WorkersPerResource is workers per GPU: 0 or 1 gives each GPU one
	// worker, a whole number k puts k workers on each GPU, and 1/k (0.5,
	// 0.25) gives each worker k GPUs.
	WorkersPerResource float64
	// Workers, when positive, sets the pool size instead of deriving it;
	// workers are still dealt round the device groups.
	Workers int
}

// Placement is where a runner's workers run.
type Placement struct {
	// Slots are the device groups workers are dealt, in order: one device
	// each, or k devices each when workers_per_resource is 1/k.
	Slots [][]int
	// Workers are the device ids of each worker of the initial pool:
	// worker i gets Slots[i % len(Slots)], so every slot gets a worker
	// before any gets a second one. len(Workers) is the pool size.
	Workers [][]int
}

// Place assigns GPUs to the workers of a runner, or says what in its config
// asks for more than this machine has. A request for no GPU gives an empty
// Placement: the runner runs on CPU.
func Place(req Request, v Visible) (Placement, error) {
	ids, err := requested(req, v)
	if err != nil || len(ids) == 0 {
		return Placement{}, err
	}
	perSlot, gpusPerSlot, err := shares(req)
	if err != nil {
		return Placement{}, err
	}
	if req.Workers < 0 {
		return Placement{}, fmt.Errorf("runner %q: workers is %d: want 0 (from nvidia.com/gpu) or more", req.Runner, req.Workers)
	}
	if len(ids)%gpusPerSlot != 0 {
		return Placement{}, fmt.Errorf("runner %q: workers_per_resource %v gives each worker %d GPUs, but %d nvidia.com/gpu do not split into groups of %d: ask for a multiple of %d",
			req.Runner, req.WorkersPerResource, gpusPerSlot, len(ids), gpusPerSlot, gpusPerSlot)
	}
	p := Placement{Slots: make([][]int, 0, len(ids)/gpusPerSlot)}
	for i := 0; i < len(ids); i += gpusPerSlot {
		p.Slots = append(p.Slots, ids[i:i+gpusPerSlot:i+gpusPerSlot])
	}
	n := len(p.Slots) * perSlot
	if req.Workers > 0 {
		n = req.Workers
	}
	p.Workers = make([][]int, n)
	for i := range p.Workers {
		p.Workers[i] = slices.Clone(p.Slots[i%len(p.Slots)])
	}
	return p, nil
}

// Next is the devices for a worker that joins a running pool whose live
// workers hold live: the slot the fewest of them hold, the first such one on
// a tie. Worker ids only grow and a shrinking pool retires whichever workers
// are cheapest to stop, so dealing by id would drift out of balance; dealing
// by what is live does not.
func (p Placement) Next(live [][]int) []int {
	if len(p.Slots) == 0 {
		return nil
	}
	held := make([]int, len(p.Slots))
	for _, ids := range live {
		for s, slot := range p.Slots {
			if slices.Equal(ids, slot) {
				held[s]++
				break
			}
		}
	}
	best := 0
	for s := range held {
		if held[s] < held[best] {
			best = s
		}
	}
	return slices.Clone(p.Slots[best])
}

// requested is the visible device ids the runner asks for, checked against
// what is visible.
func requested(req Request, v Visible) ([]int, error) {
	if req.GPUs < 0 {
		return nil, fmt.Errorf("runner %q: nvidia.com/gpu is %d: want 0 or more", req.Runner, req.GPUs)
	}
	visible := len(v.Devices())
	if req.DeviceIDs == nil {
		if req.GPUs > visible {
			return nil, fmt.Errorf("runner %q asks for %d nvidia.com/gpu but %s%s", req.Runner, req.GPUs, visibleCount(visible), v.context())
		}
		ids := make([]int, req.GPUs)
		for i := range ids {
			ids[i] = i
		}
		return ids, nil
	}
	if req.GPUs != 0 && req.GPUs != len(req.DeviceIDs) {
		return nil, fmt.Errorf("runner %q: nvidia.com/gpu is both %d and the list %v: give one of them", req.Runner, req.GPUs, req.DeviceIDs)
	}
	seen := map[int]bool{}
	for _, id := range req.DeviceIDs {
		switch {
		case id < 0:
			return nil, fmt.Errorf("runner %q lists nvidia.com/gpu device %d: device ids count from 0", req.Runner, id)
		case seen[id]:
			return nil, fmt.Errorf("runner %q lists nvidia.com/gpu device %d twice", req.Runner, id)
		case id >= visible:
			return nil, fmt.Errorf("runner %q asks for nvidia.com/gpu device %d but %s%s; ids count the visible devices from 0",
				req.Runner, id, visibleCount(visible), v.context())
		}
		seen[id] = true
	}
	return slices.Clone(req.DeviceIDs), nil
}

// shares reads workers_per_resource as workers per slot and GPUs per slot.
func shares(req Request) (perSlot, gpusPerSlot int, err error) {
	w := req.WorkersPerResource
	switch {
	case w == 0:
		return 1, 1, nil
	case math.IsNaN(w) || math.IsInf(w, 0) || w < 0:
		return 0, 0, fmt.Errorf("runner %q: workers_per_resource is %v: want a positive number (default 1)", req.Runner, w)
	case w >= 1:
		if w != math.Trunc(w) {
			return 0, 0, fmt.Errorf("runner %q: workers_per_resource is %v: above 1 it must be a whole number of workers per GPU", req.Runner, w)
		}
		if w > MaxWorkersPerGPU {
			return 0, 0, fmt.Errorf("runner %q: workers_per_resource is %v: want at most %d workers per GPU", req.Runner, w, MaxWorkersPerGPU)
		}
		return int(w), 1, nil
	}
	// Below 1 a worker gets k whole GPUs; 0.33 is read as a third.
	k := math.Round(1 / w)
	if k > 1<<16 || math.Abs(k*w-1) > 0.02 {
		return 0, 0, fmt.Errorf("runner %q: workers_per_resource is %v: below 1 it must be 1/k (0.5, 0.25, 0.2, ...) so that each worker gets k whole GPUs", req.Runner, w)
	}
	return 1, int(k), nil
}
