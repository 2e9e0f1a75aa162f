package gpu

import (
	"fmt"
	"testing"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/benchtop/benchtop/gpu/placement"
)

// busyDGX is eight A100s with four processes each.
func busyDGX() []*fakeGPU {
	gpus := dgxA100()
	for i, g := range gpus {
		g.util = nvml.Utilization{Gpu: 80, Memory: 40}
		for p := range 4 {
			g.compute = append(g.compute, nvml.ProcessInfo{Pid: uint32(1000 + 4*i + p), UsedGpuMemory: gib})
		}
	}
	return gpus
}

// BenchmarkPoll is one reading of eight mocked GPUs: the monitor's own cost
// per interval, without NVML's.
func BenchmarkPoll(b *testing.B) {
	m, err := New(Options{Library: newFakeServer(busyDGX())})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		m.poll("550.54.15")
	}
}

// BenchmarkSnapshot is what the UI pays per frame.
func BenchmarkSnapshot(b *testing.B) {
	m, err := New(Options{Library: newFakeServer(busyDGX())})
	if err != nil {
		b.Fatal(err)
	}
	m.poll("")
	b.ReportAllocs()
	for b.Loop() {
		_ = m.Snapshot()
	}
}

// BenchmarkScrape is the benchtop_gpu_* gauges of eight GPUs at one scrape.
func BenchmarkScrape(b *testing.B) {
	reg := prometheus.NewRegistry()
	m, err := New(Options{Library: newFakeServer(busyDGX()), Registerer: reg})
	if err != nil {
		b.Fatal(err)
	}
	m.poll("")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := reg.Gather(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkJoin is eight runners of four workers over eight GPUs.
func BenchmarkJoin(b *testing.B) {
	m, err := New(Options{Library: newFakeServer(busyDGX())})
	if err != nil {
		b.Fatal(err)
	}
	m.poll("")
	s := m.Snapshot()
	vis := placement.Visible{Count: 8}
	runners := map[string][]Worker{}
	for r := range 8 {
		for w := range 4 {
			runners[fmt.Sprintf("runner-%d", r)] = append(runners[fmt.Sprintf("runner-%d", r)], Worker{ID: w, GPUs: []int{(r + w) % 8}, PID: 1000 + 4*r + w})
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		_ = Join(s, vis, runners)
	}
}
