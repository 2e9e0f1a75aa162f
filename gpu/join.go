package gpu

import (
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/benchtop/benchtop/gpu/placement"
)

// Worker is where one of a runner's workers runs.
type Worker struct {
	ID int
	// GPUs are its device ids as placement gave them (engine.Env.GPUs):
	// CUDA's numbering in benchtop's process, after CUDA_VISIBLE_DEVICES.
	GPUs []int
	// PID is its process for a process worker; 0 for an in-process worker,
	// whose memory NVML cannot tell apart from benchtop's own.
	PID int
}

// RunnerUsage is one runner's GPUs as a snapshot saw them.
type RunnerUsage struct {
	Runner  string
	Devices []DeviceUsage // by NVML index
	// Utilization is the mean over its devices that report one.
	Utilization    float64
	HasUtilization bool
	// MemoryUsed and MemoryTotal add up its devices whole, whoever uses
	// them: a GPU shared with another runner counts for both.
	MemoryUsed, MemoryTotal uint64
	// ProcessMemory is what its worker processes hold on its devices; it is
	// known only for process workers whose memory the driver shows.
	ProcessMemory    uint64
	HasProcessMemory bool
	// Unresolved are device ids that match no device in the snapshot: no
	// reading yet, no GPU, or a MIG instance named by UUID.
	Unresolved []int
}

// DeviceUsage is one device a runner uses.
type DeviceUsage struct {
	Device  Device
	Workers []int // the runner's workers on it, by id
	// ProcessMemory is what the runner's worker processes hold on it.
	ProcessMemory    uint64
	HasProcessMemory bool
}

// Join reports, per runner (sorted by name), the devices its workers use and
// their utilization and memory. v maps the workers' device ids to NVML's
// devices; make it with s.Visible(os.LookupEnv).
func Join(s Snapshot, v placement.Visible, runners map[string][]Worker) []RunnerUsage {
	names := v.Devices()
	out := make([]RunnerUsage, 0, len(runners))
	for runner, workers := range runners {
		u := RunnerUsage{Runner: runner}
		byIndex := map[int]*DeviceUsage{}
		unresolved := map[int]bool{}
		for _, w := range workers {
			for _, id := range w.GPUs {
				d, ok := resolve(s, names, id)
				if !ok {
					unresolved[id] = true
					continue
				}
				du := byIndex[d.Index]
				if du == nil {
					du = &DeviceUsage{Device: d}
					byIndex[d.Index] = du
				}
				if !slices.Contains(du.Workers, w.ID) {
					du.Workers = append(du.Workers, w.ID)
				}
				if w.PID <= 0 {
					continue
				}
				for _, p := range d.Processes {
					if p.PID == w.PID && p.HasMemory {
						du.ProcessMemory += p.MemoryUsed
						du.HasProcessMemory = true
					}
				}
			}
		}
		for _, du := range byIndex {
			slices.Sort(du.Workers)
			u.Devices = append(u.Devices, *du)
		}
		sort.Slice(u.Devices, func(i, j int) bool { return u.Devices[i].Device.Index < u.Devices[j].Device.Index })
		var util float64
		var withUtil int
		for _, du := range u.Devices {
			d := du.Device
			if d.HasUtilization {
				util += d.Utilization
				withUtil++
			}
			if d.HasMemory {
				u.MemoryUsed += d.MemoryUsed
				u.MemoryTotal += d.MemoryTotal
			}
			if du.HasProcessMemory {
				u.ProcessMemory += du.ProcessMemory
				u.HasProcessMemory = true
			}
		}
		if withUtil > 0 {
			u.Utilization, u.HasUtilization = util/float64(withUtil), true
		}
		for id := range unresolved {
			u.Unresolved = append(u.Unresolved, id)
		}
		slices.Sort(u.Unresolved)
		out = append(out, u)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Runner < out[j].Runner })
	return out
}

// resolve finds the device that id names: through CUDA_VISIBLE_DEVICES to an
// NVML index, or to a UUID, which CUDA also accepts abbreviated.
func resolve(s Snapshot, names []string, id int) (Device, bool) {
	if id < 0 || id >= len(names) {
		return Device{}, false
	}
	name := names[id]
	if strings.HasPrefix(name, "GPU-") {
		var found Device
		n := 0
		for _, d := range s.Devices {
			if strings.HasPrefix(d.UUID, name) {
				found, n = d, n+1
			}
		}
		return found, n == 1
	}
	i, err := strconv.Atoi(name)
	if err != nil {
		return Device{}, false // a MIG instance: not a whole device
	}
	return s.Device(i)
}

// RunnersOn inverts a join: for each NVML index, the runners using it,
// sorted.
func RunnersOn(us []RunnerUsage) map[int][]string {
	out := map[int][]string{}
	for _, u := range us {
		for _, du := range u.Devices {
			out[du.Device.Index] = append(out[du.Device.Index], u.Runner)
		}
	}
	for _, rs := range out {
		slices.Sort(rs)
	}
	return out
}
