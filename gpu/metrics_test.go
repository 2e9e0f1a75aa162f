package gpu

import (
	"strings"
	"testing"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

var gpuMetrics = []string{
	"benchtop_gpu_utilization_ratio", "benchtop_gpu_memory_used_bytes", "benchtop_gpu_memory_total_bytes",
	"benchtop_gpu_temperature_celsius", "benchtop_gpu_power_watts",
}

func TestMetrics(t *testing.T) {
	gpus := dgxA100()[:2]
	gpus[0].set(func(g *fakeGPU) {
		g.util = nvml.Utilization{Gpu: 75, Memory: 30}
		g.mem.Used = 12 * gib
	})
	// gpu 1 reads no temperature or power: those series are absent, not 0.
	gpus[1].set(func(g *fakeGPU) { g.tempRet, g.powerRet = nvml.ERROR_NOT_SUPPORTED, nvml.ERROR_NOT_SUPPORTED })
	reg := prometheus.NewPedanticRegistry()
	m, _ := newMonitor(t, newFakeServer(gpus), Options{Registerer: reg})

	if n, err := testutil.GatherAndCount(reg); err != nil || n != 0 {
		t.Fatalf("before the first reading: %d series (%v), want none", n, err)
	}
	m.poll("")
	const want = `
# HELP benchtop_gpu_memory_total_bytes GPU memory installed.
# TYPE benchtop_gpu_memory_total_bytes gauge
benchtop_gpu_memory_total_bytes{gpu="0"} 4.294967296e+10
benchtop_gpu_memory_total_bytes{gpu="1"} 4.294967296e+10
# HELP benchtop_gpu_memory_used_bytes GPU memory in use, by every process.
# TYPE benchtop_gpu_memory_used_bytes gauge
benchtop_gpu_memory_used_bytes{gpu="0"} 1.2884901888e+10
benchtop_gpu_memory_used_bytes{gpu="1"} 0
# HELP benchtop_gpu_power_watts GPU power draw (board, or GPU alone where the board cannot tell).
# TYPE benchtop_gpu_power_watts gauge
benchtop_gpu_power_watts{gpu="0"} 60
# HELP benchtop_gpu_temperature_celsius GPU core temperature.
# TYPE benchtop_gpu_temperature_celsius gauge
benchtop_gpu_temperature_celsius{gpu="0"} 30
# HELP benchtop_gpu_utilization_ratio Fraction of the last NVML sample period in which a kernel ran on the GPU.
# TYPE benchtop_gpu_utilization_ratio gauge
benchtop_gpu_utilization_ratio{gpu="0"} 0.75
benchtop_gpu_utilization_ratio{gpu="1"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), gpuMetrics...); err != nil {
		t.Fatal(err)
	}
	problems, err := testutil.GatherAndLint(reg, gpuMetrics...)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint %s: %s", p.Metric, p.Text)
	}

	// A second monitor on the same registry is a mistake the caller hears of.
	if _, err := New(Options{Library: newFakeServer(gpus), Registerer: reg}); err == nil {
		t.Error("registering the gauges twice succeeded")
	}
}

func TestMetricsWithoutGPU(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	lib := &mock.Interface{InitFunc: func() nvml.Return { return nvml.ERROR_LIBRARY_NOT_FOUND }}
	m, _ := newMonitor(t, lib, Options{Registerer: reg})
	if err := m.Run(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n, err := testutil.GatherAndCount(reg); err != nil || n != 0 {
		t.Fatalf("%d series without a GPU (%v), want none", n, err)
	}
}
