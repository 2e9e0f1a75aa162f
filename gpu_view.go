package main

import (
	"fmt"
	"os"

	"github.com/benchtop/benchtop/engine"
	"github.com/benchtop/benchtop/gpu"
	"github.com/benchtop/benchtop/ui"
)

// gpuInfo turns the monitor's latest readings into the workbench's GPU
// panel, with the runners whose workers sit on each device.
func gpuInfo(mon *gpu.Monitor, eng *engine.Engine) ui.GPUInfo {
	s := mon.Snapshot()
	if !s.Available() {
		msg := s.Message
		if msg == "" {
			msg = "GPU monitor: " + s.State.String()
		}
		return ui.GPUInfo{Message: msg}
	}
	workers := map[string][]gpu.Worker{}
	for _, r := range eng.Runners() {
		for _, w := range r.Stats(engine.StatsOptions{}).WorkerList {
			if len(w.GPUs) > 0 {
				workers[r.Name()] = append(workers[r.Name()], gpu.Worker{ID: w.ID, GPUs: w.GPUs, PID: w.PID})
			}
		}
	}
	on := gpu.RunnersOn(gpu.Join(s, s.Visible(os.LookupEnv), workers))
	hist := mon.History()
	info := ui.GPUInfo{Available: true}
	for _, d := range s.Devices {
		gd := ui.GPUDevice{
			Index: d.Index, Name: d.Name, Util: d.Utilization, MemUtil: d.MemoryUtilization,
			MemUsed: d.MemoryUsed, MemTotal: d.MemoryTotal, Runners: on[d.Index],
		}
		if d.HasTemperature {
			gd.TempC = d.TemperatureC
		}
		if d.HasPower {
			gd.PowerW = d.PowerW
		}
		for _, p := range d.Processes {
			name := p.Name
			if name == "" {
				name = "?"
			}
			entry := fmt.Sprintf("%s (pid %d)", name, p.PID)
			if p.HasMemory {
				entry += fmt.Sprintf(" %.1f GiB", float64(p.MemoryUsed)/(1<<30))
			}
			gd.Processes = append(gd.Processes, entry)
		}
		for _, h := range hist {
			if hd, ok := h.Device(d.Index); ok {
				gd.UtilHist = append(gd.UtilHist, hd.Utilization)
				if hd.MemoryTotal > 0 {
					gd.MemHist = append(gd.MemHist, float64(hd.MemoryUsed)/float64(hd.MemoryTotal))
				}
			}
		}
		info.Devices = append(info.Devices, gd)
	}
	return info
}
