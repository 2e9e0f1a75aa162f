// Package gpu watches NVIDIA GPUs through NVML and tells the front ends what
// each runner's workers are doing on them.
//
// A Monitor polls NVML on its own goroutine (Run, owned by the caller) and
// publishes each reading as an immutable Snapshot: per device its name,
// UUID, utilization, memory, temperature and power where the device reports
// them, and the processes using it. The UI reads the latest snapshot (or
// waits for the next with Watch); Prometheus reads the same snapshot at
// scrape time as the benchtop_gpu_* gauges.
//
// Without an NVIDIA driver NVML cannot start. The monitor then publishes one
// snapshot in StateNoGPU that says so, makes no other NVML call (a call into
// an unloaded NVML kills the process) and returns: benchtop runs on CPU.
//
// Join puts a snapshot beside the engine's worker placement, so that the UI
// can show a runner's GPU utilization next to its batch sizes. Where each
// worker runs is decided by package gpu/placement, which needs no driver
// binding and so no cgo.
package gpu
