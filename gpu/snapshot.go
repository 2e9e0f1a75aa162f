package gpu

import (
	"time"

	"github.com/benchtop/benchtop/gpu/placement"
)

// State is what a snapshot can say about the GPUs as a whole.
type State int

const (
	// StateStarting: Run has not read NVML yet.
	StateStarting State = iota
	// StateOK: Devices hold the latest reading.
	StateOK
	// StateNoGPU: NVML could not start, or sees no device; Message says
	// which. benchtop runs on CPU.
	StateNoGPU
	// StateError: NVML started but could not list the devices; Message says
	// why. The monitor keeps trying.
	StateError
	// StateStopped: Run has returned.
	StateStopped
)

func (s State) String() string {
	switch s {
	case StateStarting:
		return "starting"
	case StateOK:
		return "ok"
	case StateNoGPU:
		return "no gpu"
	case StateError:
		return "error"
	case StateStopped:
		return "stopped"
	}
	return "unknown"
}

// Snapshot is one reading of every GPU. Snapshots are shared: do not modify
// one you were given.
type Snapshot struct {
	// Seq counts published snapshots from 1; the initial one is 0.
	Seq   uint64
	State State
	// Message says, for the UI, why there are no devices; "" in StateOK.
	Message string
	Taken   time.Time
	// Driver is the NVIDIA driver version, "" when unknown.
	Driver  string
	Devices []Device
}

// Device is one GPU, by NVML index (nvidia-smi's numbering). A reading the
// device does not support (temperature on some boards, utilization on a GPU
// split by MIG) is absent: its Has flag is false.
type Device struct {
	Index int
	Name  string
	UUID  string
	// Utilization is the fraction of the last sample period (1/6 s to 1 s,
	// by product) in which a kernel ran; MemoryUtilization the fraction in
	// which device memory was read or written.
	Utilization       float64
	MemoryUtilization float64
	HasUtilization    bool
	MemoryUsed        uint64 // bytes
	MemoryTotal       uint64 // bytes
	HasMemory         bool
	TemperatureC      float64
	HasTemperature    bool
	PowerW            float64
	HasPower          bool
	// Processes are the compute and graphics processes on the device, by
	// PID. Inside a container NVML may report host PIDs or none.
	Processes []Process
	// Err is what failed while reading this device, nil when nothing did;
	// the fields that could be read are still set.
	Err error
}

// Process is a process using a GPU.
type Process struct {
	PID  int
	Name string // as NVML knows it, "" when it cannot tell
	// Type is "C" (compute), "G" (graphics) or "C+G", as nvidia-smi shows it.
	Type       string
	MemoryUsed uint64 // bytes
	HasMemory  bool   // false where the driver hides it (no permission, WDDM)
}

// Available reports whether the snapshot has GPUs to show.
func (s Snapshot) Available() bool { return s.State == StateOK && len(s.Devices) > 0 }

// Device returns the device with NVML index i.
func (s Snapshot) Device(i int) (Device, bool) {
	for _, d := range s.Devices {
		if d.Index == i {
			return d, true
		}
	}
	return Device{}, false
}

// Visible is what placement needs from a snapshot: the device count, the
// user's CUDA_VISIBLE_DEVICES (read with lookupEnv, os.LookupEnv in
// production) and, without GPUs, why.
func (s Snapshot) Visible(lookupEnv func(string) (string, bool)) placement.Visible {
	v := placement.Visible{}
	if s.State == StateOK {
		v.Count = len(s.Devices)
	} else {
		v.Note = s.Message
	}
	if lookupEnv != nil {
		v.CUDAVisibleDevices, v.Set = lookupEnv(placement.EnvVar)
	}
	return v
}
