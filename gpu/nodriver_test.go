package gpu

import (
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

// recordingNVML passes every call to the real library and notes its name.
type recordingNVML struct {
	lib   nvml.Interface
	mu    sync.Mutex
	calls []string
}

func (r *recordingNVML) note(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, name)
}

func (r *recordingNVML) called() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.calls)
}

func (r *recordingNVML) Init() nvml.Return { r.note("Init"); return r.lib.Init() }
func (r *recordingNVML) Extensions() nvml.ExtendedInterface {
	r.note("Extensions")
	return r.lib.Extensions()
}
func (r *recordingNVML) Shutdown() nvml.Return {
	r.note("Shutdown")
	return r.lib.Shutdown()
}
func (r *recordingNVML) SystemGetDriverVersion() (string, nvml.Return) {
	r.note("SystemGetDriverVersion")
	return r.lib.SystemGetDriverVersion()
}
func (r *recordingNVML) SystemGetProcessName(pid int) (string, nvml.Return) {
	r.note("SystemGetProcessName")
	return r.lib.SystemGetProcessName(pid)
}
func (r *recordingNVML) DeviceGetCount() (int, nvml.Return) {
	r.note("DeviceGetCount")
	return r.lib.DeviceGetCount()
}
func (r *recordingNVML) DeviceGetHandleByIndex(i int) (nvml.Device, nvml.Return) {
	r.note("DeviceGetHandleByIndex")
	return r.lib.DeviceGetHandleByIndex(i)
}

// TestRealNVML runs the monitor against the real go-nvml. Without a driver
// (this project's CI) Init fails, and any further call would kill the test
// process, so surviving is part of the check. With a driver the same test
// reads the real GPUs.
func TestRealNVML(t *testing.T) {
	rec := &recordingNVML{lib: nvml.New()}
	m, logs := newMonitor(t, rec, Options{Interval: 50 * time.Millisecond})
	stop := start(t, m)
	s, err := m.Ready(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	switch s.State {
	case StateNoGPU:
		t.Logf("no driver here: %s", s.Message)
		if !strings.HasPrefix(s.Message, "no NVIDIA GPU found (NVML: ") && !strings.HasPrefix(s.Message, "NVIDIA GPUs unavailable (NVML: ") {
			t.Errorf("message %q does not say why there is no GPU", s.Message)
		}
		if err := stop(); err != nil {
			t.Fatalf("Run = %v, want nil", err)
		}
		if got := rec.called(); !slices.Equal(got, []string{"Init"}) {
			t.Fatalf("NVML calls after a failed Init: %v, want only Init", got)
		}
		if s := m.Snapshot(); s.State != StateNoGPU {
			t.Errorf("after Run the state is %v, want it to stay no gpu", s.State)
		}
		if n := strings.Count(logs.String(), s.Message); n != 1 {
			t.Errorf("logged %d times, want once", n)
		}
	case StateOK:
		t.Logf("driver %s, %d GPUs", s.Driver, len(s.Devices))
		for _, d := range s.Devices {
			t.Logf("gpu %d %s %s: util %.2f (%v) mem %d/%d temp %v power %v processes %d err %v",
				d.Index, d.Name, d.UUID, d.Utilization, d.HasUtilization, d.MemoryUsed, d.MemoryTotal, d.TemperatureC, d.PowerW, len(d.Processes), d.Err)
			if d.Err != nil || d.Name == "" || !strings.HasPrefix(d.UUID, "GPU-") || !d.HasMemory || d.MemoryTotal == 0 {
				t.Errorf("gpu %d = %+v, want a name, a UUID and memory", d.Index, d)
			}
		}
		if err := stop(); err != nil {
			t.Fatalf("Run = %v, want nil", err)
		}
		if got := rec.called(); got[len(got)-1] != "Shutdown" {
			t.Errorf("last NVML call %q, want Shutdown", got[len(got)-1])
		}
	default:
		t.Fatalf("first reading %v: %s", s.State, s.Message)
	}
}
