package gpu

import (
	"fmt"
	"sync"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
)

// fakeGPU is one device of a fake server; tests change it between readings.
type fakeGPU struct {
	mu       sync.Mutex
	name     string
	uuid     string
	util     nvml.Utilization
	utilRet  nvml.Return
	mem      nvml.Memory
	memRet   nvml.Return
	tempC    uint32
	tempRet  nvml.Return
	powerMW  uint32
	powerRet nvml.Return
	compute  []nvml.ProcessInfo
	graphics []nvml.ProcessInfo
	procRet  nvml.Return
	lost     bool // every call answers ERROR_GPU_IS_LOST
}

func (g *fakeGPU) set(f func(g *fakeGPU)) {
	g.mu.Lock()
	defer g.mu.Unlock()
	f(g)
}

// answer returns ret, or ERROR_GPU_IS_LOST once the GPU is lost.
func (g *fakeGPU) answer(ret nvml.Return) nvml.Return {
	if g.lost {
		return nvml.ERROR_GPU_IS_LOST
	}
	return ret
}

// device is a go-nvml mock.Device answering from g. A method the monitor must
// not call is left nil, so that calling it panics.
func (g *fakeGPU) device() *mock.Device {
	lock := func() func() { g.mu.Lock(); return g.mu.Unlock }
	return &mock.Device{
		GetNameFunc: func() (string, nvml.Return) {
			defer lock()()
			return g.name, g.answer(nvml.SUCCESS)
		},
		GetUUIDFunc: func() (string, nvml.Return) {
			defer lock()()
			return g.uuid, g.answer(nvml.SUCCESS)
		},
		GetUtilizationRatesFunc: func() (nvml.Utilization, nvml.Return) {
			defer lock()()
			return g.util, g.answer(g.utilRet)
		},
		GetMemoryInfoFunc: func() (nvml.Memory, nvml.Return) {
			defer lock()()
			return g.mem, g.answer(g.memRet)
		},
		GetTemperatureFunc: func(s nvml.TemperatureSensors) (uint32, nvml.Return) {
			defer lock()()
			if s != nvml.TEMPERATURE_GPU {
				return 0, nvml.ERROR_INVALID_ARGUMENT
			}
			return g.tempC, g.answer(g.tempRet)
		},
		GetPowerUsageFunc: func() (uint32, nvml.Return) {
			defer lock()()
			return g.powerMW, g.answer(g.powerRet)
		},
		GetComputeRunningProcessesFunc: func() ([]nvml.ProcessInfo, nvml.Return) {
			defer lock()()
			return append([]nvml.ProcessInfo(nil), g.compute...), g.answer(g.procRet)
		},
		GetGraphicsRunningProcessesFunc: func() ([]nvml.ProcessInfo, nvml.Return) {
			defer lock()()
			return append([]nvml.ProcessInfo(nil), g.graphics...), g.answer(g.procRet)
		},
	}
}

const gib = 1 << 30

// dgxA100 is eight idle A100-SXM4-40GB, as go-nvml's dgxa100 mock models
// them (that package needs github.com/google/uuid, which go.mod lacks).
func dgxA100() []*fakeGPU {
	gpus := make([]*fakeGPU, 8)
	for i := range gpus {
		gpus[i] = &fakeGPU{
			name:    "NVIDIA A100-SXM4-40GB",
			uuid:    fmt.Sprintf("GPU-%08x-1111-2222-3333-444444444444", 0xa100_0000+i),
			mem:     nvml.Memory{Total: 40 * gib, Free: 40 * gib},
			tempC:   30 + uint32(i),
			powerMW: 60_000 + uint32(i)*1000,
		}
	}
	return gpus
}

// fakeServer is a mock.Interface over gpus; handleRet, when set for an
// index, fails DeviceGetHandleByIndex there.
type fakeServer struct {
	*mock.Interface
	gpus      []*fakeGPU
	initRet   nvml.Return
	handleRet map[int]nvml.Return
	names     map[int]string
	missing   map[string]bool // symbols the driver does not export
}

func newFakeServer(gpus []*fakeGPU) *fakeServer {
	s := &fakeServer{gpus: gpus, handleRet: map[int]nvml.Return{}, names: map[int]string{}, missing: map[string]bool{}}
	devs := make([]nvml.Device, len(gpus))
	for i, g := range gpus {
		devs[i] = g.device()
	}
	s.Interface = &mock.Interface{
		InitFunc:     func() nvml.Return { return s.initRet },
		ShutdownFunc: func() nvml.Return { return nvml.SUCCESS },
		ExtensionsFunc: func() nvml.ExtendedInterface {
			return &mock.ExtendedInterface{LookupSymbolFunc: func(name string) error {
				if s.missing[name] {
					return fmt.Errorf("symbol %s not found", name)
				}
				return nil
			}}
		},
		SystemGetDriverVersionFunc: func() (string, nvml.Return) {
			return "550.54.15", nvml.SUCCESS
		},
		SystemGetProcessNameFunc: func(pid int) (string, nvml.Return) {
			if n, ok := s.names[pid]; ok {
				return n, nvml.SUCCESS
			}
			return "", nvml.ERROR_NOT_FOUND
		},
		DeviceGetCountFunc: func() (int, nvml.Return) { return len(devs), nvml.SUCCESS },
		DeviceGetHandleByIndexFunc: func(i int) (nvml.Device, nvml.Return) {
			if ret, ok := s.handleRet[i]; ok {
				return nil, ret
			}
			if i < 0 || i >= len(devs) {
				return nil, nvml.ERROR_INVALID_ARGUMENT
			}
			return devs[i], nvml.SUCCESS
		},
	}
	return s
}
