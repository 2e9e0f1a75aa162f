package placement_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/benchtop/benchtop/gpu/placement"
)

func unset(n int) placement.Visible { return placement.Visible{Count: n} }

func cvd(n int, v string) placement.Visible {
	return placement.Visible{Count: n, CUDAVisibleDevices: v, Set: true}
}

func TestPlace(t *testing.T) {
	tests := []struct {
		name    string
		req     placement.Request
		vis     placement.Visible
		slots   [][]int
		workers [][]int
		err     string // the whole message, when set
		errHas  string // a part of it, when the whole is long
	}{
		{name: "cpu runner", req: placement.Request{Runner: "x"}, vis: unset(8)},
		{name: "cpu runner on a machine without GPU", req: placement.Request{Runner: "x"}, vis: unset(0)},
		{name: "empty list is cpu", req: placement.Request{Runner: "x", DeviceIDs: []int{}}, vis: unset(2)},
		{
			name: "one gpu", req: placement.Request{Runner: "x", GPUs: 1}, vis: unset(8),
			slots: [][]int{{0}}, workers: [][]int{{0}},
		},
		{
			name: "one worker per gpu by default", req: placement.Request{Runner: "x", GPUs: 4}, vis: unset(8),
			slots: [][]int{{0}, {1}, {2}, {3}}, workers: [][]int{{0}, {1}, {2}, {3}},
		},
		{
			name: "workers_per_resource 1 is the default", req: placement.Request{Runner: "x", GPUs: 2, WorkersPerResource: 1}, vis: unset(2),
			slots: [][]int{{0}, {1}}, workers: [][]int{{0}, {1}},
		},
		{
			name: "all eight of a dgx", req: placement.Request{Runner: "x", GPUs: 8}, vis: unset(8),
			slots:   [][]int{{0}, {1}, {2}, {3}, {4}, {5}, {6}, {7}},
			workers: [][]int{{0}, {1}, {2}, {3}, {4}, {5}, {6}, {7}},
		},
		{
			name: "two workers per gpu are dealt round the gpus", req: placement.Request{Runner: "x", GPUs: 2, WorkersPerResource: 2}, vis: unset(2),
			slots: [][]int{{0}, {1}}, workers: [][]int{{0}, {1}, {0}, {1}},
		},
		{
			name: "three workers on one gpu", req: placement.Request{Runner: "x", GPUs: 1, WorkersPerResource: 3}, vis: unset(4),
			slots: [][]int{{0}}, workers: [][]int{{0}, {0}, {0}},
		},
		{
			name: "half: a worker gets two gpus", req: placement.Request{Runner: "x", GPUs: 4, WorkersPerResource: 0.5}, vis: unset(4),
			slots: [][]int{{0, 1}, {2, 3}}, workers: [][]int{{0, 1}, {2, 3}},
		},
		{
			name: "quarter: one worker over four gpus", req: placement.Request{Runner: "x", GPUs: 4, WorkersPerResource: 0.25}, vis: unset(8),
			slots: [][]int{{0, 1, 2, 3}}, workers: [][]int{{0, 1, 2, 3}},
		},
		{
			name: "0.33 reads as a third", req: placement.Request{Runner: "x", GPUs: 6, WorkersPerResource: 0.33}, vis: unset(8),
			slots: [][]int{{0, 1, 2}, {3, 4, 5}}, workers: [][]int{{0, 1, 2}, {3, 4, 5}},
		},
		{
			name: "explicit list", req: placement.Request{Runner: "x", DeviceIDs: []int{1, 3}}, vis: unset(4),
			slots: [][]int{{1}, {3}}, workers: [][]int{{1}, {3}},
		},
		{
			name: "explicit list keeps its order", req: placement.Request{Runner: "x", DeviceIDs: []int{3, 0}}, vis: unset(4),
			slots: [][]int{{3}, {0}}, workers: [][]int{{3}, {0}},
		},
		{
			name: "explicit list with its count", req: placement.Request{Runner: "x", GPUs: 2, DeviceIDs: []int{2, 3}}, vis: unset(4),
			slots: [][]int{{2}, {3}}, workers: [][]int{{2}, {3}},
		},
		{
			name: "explicit list grouped by half", req: placement.Request{Runner: "x", DeviceIDs: []int{4, 5, 6, 7}, WorkersPerResource: 0.5}, vis: unset(8),
			slots: [][]int{{4, 5}, {6, 7}}, workers: [][]int{{4, 5}, {6, 7}},
		},
		{
			name: "explicit list shared by two workers each", req: placement.Request{Runner: "x", DeviceIDs: []int{1, 2}, WorkersPerResource: 2}, vis: unset(3),
			slots: [][]int{{1}, {2}}, workers: [][]int{{1}, {2}, {1}, {2}},
		},
		{
			name: "explicit worker count dealt round robin", req: placement.Request{Runner: "x", GPUs: 2, Workers: 5}, vis: unset(2),
			slots: [][]int{{0}, {1}}, workers: [][]int{{0}, {1}, {0}, {1}, {0}},
		},
		{
			name: "explicit worker count below the gpus", req: placement.Request{Runner: "x", GPUs: 3, Workers: 1}, vis: unset(3),
			slots: [][]int{{0}, {1}, {2}}, workers: [][]int{{0}},
		},
		{
			name: "cuda_visible_devices renumbers: ids are visible ids", req: placement.Request{Runner: "x", GPUs: 2}, vis: cvd(8, "6,7"),
			slots: [][]int{{0}, {1}}, workers: [][]int{{0}, {1}},
		},
		{
			name: "cuda_visible_devices with uuids", req: placement.Request{Runner: "x", GPUs: 2}, vis: cvd(4, "GPU-aaaa,GPU-bbbb"),
			slots: [][]int{{0}, {1}}, workers: [][]int{{0}, {1}},
		},
		{
			name: "cuda_visible_devices with spaces", req: placement.Request{Runner: "x", GPUs: 3}, vis: cvd(4, " 3, 2 ,1"),
			slots: [][]int{{0}, {1}, {2}}, workers: [][]int{{0}, {1}, {2}},
		},

		{
			name: "more gpus than visible", req: placement.Request{Runner: "x", GPUs: 4}, vis: cvd(8, "0,1"),
			err: `runner "x" asks for 4 nvidia.com/gpu but 2 are visible (CUDA_VISIBLE_DEVICES=0,1)`,
		},
		{
			name: "more gpus than the machine has", req: placement.Request{Runner: "x", GPUs: 9}, vis: unset(8),
			err: `runner "x" asks for 9 nvidia.com/gpu but 8 are visible`,
		},
		{
			name: "one visible", req: placement.Request{Runner: "llm", GPUs: 2}, vis: unset(1),
			err: `runner "llm" asks for 2 nvidia.com/gpu but 1 is visible`,
		},
		{
			name: "no driver", req: placement.Request{Runner: "x", GPUs: 1},
			vis: placement.Visible{Note: "no NVIDIA GPU found (NVML: library not found)"},
			err: `runner "x" asks for 1 nvidia.com/gpu but none is visible: no NVIDIA GPU found (NVML: library not found)`,
		},
		{
			name: "cuda_visible_devices empty hides every gpu", req: placement.Request{Runner: "x", GPUs: 1}, vis: cvd(8, ""),
			err: `runner "x" asks for 1 nvidia.com/gpu but none is visible (CUDA_VISIBLE_DEVICES=)`,
		},
		{
			name: "cuda_visible_devices -1 hides every gpu", req: placement.Request{Runner: "x", GPUs: 1}, vis: cvd(8, "-1"),
			err: `runner "x" asks for 1 nvidia.com/gpu but none is visible (CUDA_VISIBLE_DEVICES=-1)`,
		},
		{
			name: "cuda stops at a device that does not exist", req: placement.Request{Runner: "x", GPUs: 2}, vis: cvd(2, "0,7,1"),
			err: `runner "x" asks for 2 nvidia.com/gpu but 1 is visible (CUDA_VISIBLE_DEVICES=0,7,1: CUDA stops at "7": no such device (the driver reports 2))`,
		},
		{
			name: "cuda stops at -1 in the middle", req: placement.Request{Runner: "x", GPUs: 3}, vis: cvd(4, "0,2,-1,1"),
			errHas: `but 2 are visible (CUDA_VISIBLE_DEVICES=0,2,-1,1: CUDA stops at "-1"`,
		},
		{
			name: "cuda stops at garbage", req: placement.Request{Runner: "x", GPUs: 2}, vis: cvd(4, "0,gpu1"),
			errHas: `CUDA stops at "gpu1": not a device index or GPU-/MIG- UUID`,
		},
		{
			name: "cuda stops at a repeat", req: placement.Request{Runner: "x", GPUs: 2}, vis: cvd(4, "1,1"),
			errHas: `1 is visible (CUDA_VISIBLE_DEVICES=1,1: CUDA stops at "1": listed twice)`,
		},
		{
			name: "listed id beyond the visible ones", req: placement.Request{Runner: "x", DeviceIDs: []int{0, 2}}, vis: cvd(8, "4,5"),
			err: `runner "x" asks for nvidia.com/gpu device 2 but 2 are visible (CUDA_VISIBLE_DEVICES=4,5); ids count the visible devices from 0`,
		},
		{
			name: "listed id twice", req: placement.Request{Runner: "x", DeviceIDs: []int{1, 1}}, vis: unset(4),
			err: `runner "x" lists nvidia.com/gpu device 1 twice`,
		},
		{
			name: "listed negative id", req: placement.Request{Runner: "x", DeviceIDs: []int{-1}}, vis: unset(4),
			err: `runner "x" lists nvidia.com/gpu device -1: device ids count from 0`,
		},
		{
			name: "count and list disagree", req: placement.Request{Runner: "x", GPUs: 3, DeviceIDs: []int{0, 1}}, vis: unset(4),
			err: `runner "x": nvidia.com/gpu is both 3 and the list [0 1]: give one of them`,
		},
		{
			name: "negative count", req: placement.Request{Runner: "x", GPUs: -1}, vis: unset(4),
			err: `runner "x": nvidia.com/gpu is -1: want 0 or more`,
		},
		{
			name: "half of an odd count", req: placement.Request{Runner: "x", GPUs: 3, WorkersPerResource: 0.5}, vis: unset(4),
			err: `runner "x": workers_per_resource 0.5 gives each worker 2 GPUs, but 3 nvidia.com/gpu do not split into groups of 2: ask for a multiple of 2`,
		},
		{
			name: "quarter of two", req: placement.Request{Runner: "x", GPUs: 2, WorkersPerResource: 0.25}, vis: unset(4),
			errHas: `gives each worker 4 GPUs, but 2 nvidia.com/gpu do not split`,
		},
		{
			name: "fraction that is no 1/k", req: placement.Request{Runner: "x", GPUs: 4, WorkersPerResource: 0.4}, vis: unset(4),
			err: `runner "x": workers_per_resource is 0.4: below 1 it must be 1/k (0.5, 0.25, 0.2, ...) so that each worker gets k whole GPUs`,
		},
		{
			name: "fraction above 1", req: placement.Request{Runner: "x", GPUs: 1, WorkersPerResource: 1.5}, vis: unset(4),
			err: `runner "x": workers_per_resource is 1.5: above 1 it must be a whole number of workers per GPU`,
		},
		{
			name: "negative workers_per_resource", req: placement.Request{Runner: "x", GPUs: 1, WorkersPerResource: -1}, vis: unset(4),
			err: `runner "x": workers_per_resource is -1: want a positive number (default 1)`,
		},
		{
			name: "absurd workers_per_resource", req: placement.Request{Runner: "x", GPUs: 1, WorkersPerResource: 1000}, vis: unset(4),
			err: `runner "x": workers_per_resource is 1000: want at most 64 workers per GPU`,
		},
		{
			name: "tiny workers_per_resource", req: placement.Request{Runner: "x", GPUs: 1, WorkersPerResource: 1e-300}, vis: unset(4),
			errHas: `below 1 it must be 1/k`,
		},
		{
			name: "negative workers", req: placement.Request{Runner: "x", GPUs: 1, Workers: -2}, vis: unset(4),
			err: `runner "x": workers is -2: want 0 (from nvidia.com/gpu) or more`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := placement.Place(tc.req, tc.vis)
			switch {
			case tc.err != "" || tc.errHas != "":
				if err == nil {
					t.Fatalf("Place = %+v, want an error", p)
				}
				if tc.err != "" && err.Error() != tc.err {
					t.Fatalf("error:\n got %s\nwant %s", err, tc.err)
				}
				if !strings.Contains(err.Error(), tc.errHas) {
					t.Fatalf("error %q does not contain %q", err, tc.errHas)
				}
				return
			case err != nil:
				t.Fatalf("Place: %v", err)
			}
			if !reflect.DeepEqual(p.Slots, tc.slots) {
				t.Errorf("slots = %v, want %v", p.Slots, tc.slots)
			}
			if !reflect.DeepEqual(p.Workers, tc.workers) {
				t.Errorf("workers = %v, want %v", p.Workers, tc.workers)
			}
		})
	}
}

// A worker's devices are its own: a runnable that edits its slice must not
// move its siblings.
func TestPlaceWorkersDoNotShare(t *testing.T) {
	p, err := placement.Place(placement.Request{Runner: "x", GPUs: 2, WorkersPerResource: 2}, unset(2))
	if err != nil {
		t.Fatal(err)
	}
	p.Workers[0][0] = 99
	if p.Workers[2][0] != 0 || p.Slots[0][0] != 0 {
		t.Fatalf("editing worker 0 changed worker 2 or the slots: %v, %v", p.Workers, p.Slots)
	}
}

func TestNext(t *testing.T) {
	tests := []struct {
		name  string
		req   placement.Request
		live  [][]int
		want  []int
		count int // visible devices
	}{
		{name: "empty pool starts at the first slot", req: placement.Request{GPUs: 2}, count: 2, want: []int{0}},
		{name: "fills the idle gpu", req: placement.Request{GPUs: 2}, count: 2, live: [][]int{{0}}, want: []int{1}},
		{name: "tie goes to the first", req: placement.Request{GPUs: 2}, count: 2, live: [][]int{{0}, {1}}, want: []int{0}},
		{
			// Shrinking 4 → 3 retired a worker on 1; growing back must refill 1, not 0.
			name: "refills the gpu a retired worker left", req: placement.Request{GPUs: 2, WorkersPerResource: 2}, count: 2,
			live: [][]int{{0}, {1}, {0}}, want: []int{1},
		},
		{name: "groups of two", req: placement.Request{GPUs: 4, WorkersPerResource: 0.5}, count: 4, live: [][]int{{0, 1}}, want: []int{2, 3}},
		{name: "foreign assignments are ignored", req: placement.Request{GPUs: 2}, count: 4, live: [][]int{{3}, {0}}, want: []int{1}},
		{name: "cpu runner gets nothing", req: placement.Request{}, count: 2, live: nil, want: nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := placement.Place(tc.req, unset(tc.count))
			if err != nil {
				t.Fatal(err)
			}
			if got := p.Next(tc.live); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("Next(%v) = %v, want %v", tc.live, got, tc.want)
			}
		})
	}
}
