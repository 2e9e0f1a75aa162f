package gpu

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// The gauges are read from the latest snapshot at scrape time, so a reading
// a device lacks is simply not exported and a device that goes away takes
// its series with it.
var (
	utilizationDesc = prometheus.NewDesc("benchtop_gpu_utilization_ratio",
		"Fraction of the last NVML sample period in which a kernel ran on the GPU.", []string{"gpu"}, nil)
	memoryUsedDesc = prometheus.NewDesc("benchtop_gpu_memory_used_bytes",
		"GPU memory in use, by every process.", []string{"gpu"}, nil)
	memoryTotalDesc = prometheus.NewDesc("benchtop_gpu_memory_total_bytes",
		"GPU memory installed.", []string{"gpu"}, nil)
	temperatureDesc = prometheus.NewDesc("benchtop_gpu_temperature_celsius",
		"GPU core temperature.", []string{"gpu"}, nil)
	powerDesc = prometheus.NewDesc("benchtop_gpu_power_watts",
		"GPU power draw (board, or GPU alone where the board cannot tell).", []string{"gpu"}, nil)
)

type collector struct{ m *Monitor }

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{utilizationDesc, memoryUsedDesc, memoryTotalDesc, temperatureDesc, powerDesc} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	s := c.m.Snapshot()
	if s.State != StateOK {
		return
	}
	gauge := func(d *prometheus.Desc, v float64, gpu string) {
		m, err := prometheus.NewConstMetric(d, prometheus.GaugeValue, v, gpu)
		if err != nil {
			m = prometheus.NewInvalidMetric(d, err)
		}
		ch <- m
	}
	for _, d := range s.Devices {
		gpu := strconv.Itoa(d.Index)
		if d.HasUtilization {
			gauge(utilizationDesc, d.Utilization, gpu)
		}
		if d.HasMemory {
			gauge(memoryUsedDesc, float64(d.MemoryUsed), gpu)
			gauge(memoryTotalDesc, float64(d.MemoryTotal), gpu)
		}
		if d.HasTemperature {
			gauge(temperatureDesc, d.TemperatureC, gpu)
		}
		if d.HasPower {
			gauge(powerDesc, d.PowerW, gpu)
		}
	}
}
