package gpu

import (
	"reflect"
	"testing"

	"github.com/benchtop/benchtop/gpu/placement"
)

func joinSnapshot() Snapshot {
	return Snapshot{State: StateOK, Devices: []Device{
		{Index: 0, UUID: "GPU-aaaa0000-0000", Utilization: 0.2, HasUtilization: true, MemoryUsed: 1 * gib, MemoryTotal: 40 * gib, HasMemory: true},
		{Index: 1, UUID: "GPU-bbbb0000-0000", Utilization: 0.4, HasUtilization: true, MemoryUsed: 6 * gib, MemoryTotal: 40 * gib, HasMemory: true,
			Processes: []Process{{PID: 501, Type: "C", MemoryUsed: 2 * gib, HasMemory: true}, {PID: 502, Type: "C"}}},
		{Index: 2, UUID: "GPU-cccc0000-0000", Utilization: 0.6, HasUtilization: true, MemoryUsed: 3 * gib, MemoryTotal: 40 * gib, HasMemory: true,
			Processes: []Process{{PID: 501, Type: "C", MemoryUsed: 1 * gib, HasMemory: true}}},
		{Index: 3, UUID: "GPU-bbbb1111-0000", MemoryTotal: 40 * gib, HasMemory: true},
	}}
}

func TestJoin(t *testing.T) {
	s := joinSnapshot()
	dev := func(i int) Device { return s.Devices[i] }
	all := placement.Visible{Count: 4}
	cvd := func(v string) placement.Visible { return placement.Visible{Count: 4, CUDAVisibleDevices: v, Set: true} }
	tests := []struct {
		name    string
		snap    Snapshot
		vis     placement.Visible
		runners map[string][]Worker
		want    []RunnerUsage
	}{
		{
			name: "one worker on one gpu", snap: s, vis: all,
			runners: map[string][]Worker{"a": {{ID: 0, GPUs: []int{0}}}},
			want: []RunnerUsage{{
				Runner: "a", Devices: []DeviceUsage{{Device: dev(0), Workers: []int{0}}},
				Utilization: 0.2, HasUtilization: true, MemoryUsed: 1 * gib, MemoryTotal: 40 * gib,
			}},
		},
		{
			name: "two workers share a gpu", snap: s, vis: all,
			runners: map[string][]Worker{"a": {{ID: 7, GPUs: []int{1}}, {ID: 2, GPUs: []int{1}}}},
			want: []RunnerUsage{{
				Runner: "a", Devices: []DeviceUsage{{Device: dev(1), Workers: []int{2, 7}}},
				Utilization: 0.4, HasUtilization: true, MemoryUsed: 6 * gib, MemoryTotal: 40 * gib,
			}},
		},
		{
			name: "a process worker over two gpus", snap: s, vis: all,
			runners: map[string][]Worker{"llm": {{ID: 3, GPUs: []int{2, 1}, PID: 501}}},
			want: []RunnerUsage{{
				Runner: "llm",
				Devices: []DeviceUsage{
					{Device: dev(1), Workers: []int{3}, ProcessMemory: 2 * gib, HasProcessMemory: true},
					{Device: dev(2), Workers: []int{3}, ProcessMemory: 1 * gib, HasProcessMemory: true},
				},
				Utilization: 0.5, HasUtilization: true, MemoryUsed: 9 * gib, MemoryTotal: 80 * gib,
				ProcessMemory: 3 * gib, HasProcessMemory: true,
			}},
		},
		{
			name: "process memory the driver hides", snap: s, vis: all,
			runners: map[string][]Worker{"a": {{ID: 0, GPUs: []int{1}, PID: 502}}},
			want: []RunnerUsage{{
				Runner: "a", Devices: []DeviceUsage{{Device: dev(1), Workers: []int{0}}},
				Utilization: 0.4, HasUtilization: true, MemoryUsed: 6 * gib, MemoryTotal: 40 * gib,
			}},
		},
		{
			name: "cuda_visible_devices renumbers", snap: s, vis: cvd("2,3"),
			runners: map[string][]Worker{"a": {{ID: 0, GPUs: []int{0}}, {ID: 1, GPUs: []int{1}}}},
			want: []RunnerUsage{{
				Runner: "a",
				Devices: []DeviceUsage{
					{Device: dev(2), Workers: []int{0}},
					{Device: dev(3), Workers: []int{1}},
				},
				Utilization: 0.6, HasUtilization: true, MemoryUsed: 3 * gib, MemoryTotal: 80 * gib,
			}},
		},
		{
			name: "cuda_visible_devices by abbreviated uuid", snap: s, vis: cvd("GPU-cccc,GPU-bbbb1"),
			runners: map[string][]Worker{"a": {{ID: 0, GPUs: []int{0, 1}}}},
			want: []RunnerUsage{{
				Runner: "a",
				Devices: []DeviceUsage{
					{Device: dev(2), Workers: []int{0}},
					{Device: dev(3), Workers: []int{0}},
				},
				Utilization: 0.6, HasUtilization: true, MemoryUsed: 3 * gib, MemoryTotal: 80 * gib,
			}},
		},
		{
			name: "an ambiguous uuid and a mig instance stay unresolved", snap: s, vis: cvd("GPU-bbbb,MIG-0f0f"),
			runners: map[string][]Worker{"a": {{ID: 0, GPUs: []int{0}}, {ID: 1, GPUs: []int{1}}}},
			want:    []RunnerUsage{{Runner: "a", Unresolved: []int{0, 1}}},
		},
		{
			name: "utilization absent", snap: s, vis: all,
			runners: map[string][]Worker{"a": {{ID: 0, GPUs: []int{3}}}},
			want: []RunnerUsage{{
				Runner: "a", Devices: []DeviceUsage{{Device: dev(3), Workers: []int{0}}},
				MemoryTotal: 40 * gib,
			}},
		},
		{
			name: "no gpu", snap: Snapshot{State: StateNoGPU}, vis: placement.Visible{},
			runners: map[string][]Worker{"a": {{ID: 0, GPUs: []int{0}}}},
			want:    []RunnerUsage{{Runner: "a", Unresolved: []int{0}}},
		},
		{
			name: "runners sorted, a cpu runner has no devices", snap: s, vis: all,
			runners: map[string][]Worker{
				"zeta":  {{ID: 0, GPUs: []int{0}}},
				"alpha": {{ID: 0}, {ID: 1}},
				"mid":   {{ID: 4, GPUs: []int{0}}},
			},
			want: []RunnerUsage{
				{Runner: "alpha"},
				{Runner: "mid", Devices: []DeviceUsage{{Device: dev(0), Workers: []int{4}}}, Utilization: 0.2, HasUtilization: true, MemoryUsed: 1 * gib, MemoryTotal: 40 * gib},
				{Runner: "zeta", Devices: []DeviceUsage{{Device: dev(0), Workers: []int{0}}}, Utilization: 0.2, HasUtilization: true, MemoryUsed: 1 * gib, MemoryTotal: 40 * gib},
			},
		},
		{name: "no runners", snap: s, vis: all, want: []RunnerUsage{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Join(tc.snap, tc.vis, tc.runners)
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("Join:\n got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestRunnersOn(t *testing.T) {
	s := joinSnapshot()
	us := Join(s, placement.Visible{Count: 4}, map[string][]Worker{
		"b":   {{ID: 0, GPUs: []int{0, 1}}},
		"a":   {{ID: 0, GPUs: []int{1}}},
		"cpu": {{ID: 0}},
	})
	want := map[int][]string{0: {"b"}, 1: {"a", "b"}}
	if got := RunnersOn(us); !reflect.DeepEqual(got, want) {
		t.Fatalf("RunnersOn = %v, want %v", got, want)
	}
}

// A placement and a join agree: what Place gives the workers is what Join
// finds on the devices.
func TestPlaceThenJoin(t *testing.T) {
	s := joinSnapshot()
	vis := s.Visible(func(string) (string, bool) { return "3,1,2", true })
	p, err := placement.Place(placement.Request{Runner: "llm", GPUs: 2, WorkersPerResource: 2}, vis)
	if err != nil {
		t.Fatal(err)
	}
	var workers []Worker
	for i, ids := range p.Workers {
		workers = append(workers, Worker{ID: i, GPUs: ids})
	}
	us := Join(s, vis, map[string][]Worker{"llm": workers})
	var got []int
	for _, du := range us[0].Devices {
		got = append(got, du.Device.Index)
		if len(du.Workers) != 2 {
			t.Errorf("gpu %d has workers %v, want two", du.Device.Index, du.Workers)
		}
	}
	// Visible ids 0 and 1 are NVML's 3 and 1.
	if !reflect.DeepEqual(got, []int{1, 3}) {
		t.Fatalf("devices %v, want [1 3]", got)
	}
}
