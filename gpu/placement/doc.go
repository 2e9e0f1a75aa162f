// Package placement decides which GPUs each worker of a runner gets.
//
// It is pure: given what a runner asks for (a count or a list of device ids,
// and workers_per_resource) and what the process can see (the driver's device
// count and the user's CUDA_VISIBLE_DEVICES), Place returns each worker's
// device ids or a config error that says what to change. It imports no driver
// binding, so the engine can call it without cgo; package gpu reads the
// device count from NVML.
//
// Device ids are CUDA's numbering inside benchtop's own process: with
// CUDA_VISIBLE_DEVICES=2,3 the two visible GPUs are 0 and 1. That is what an
// in-process runnable passes to its framework (engine.Env.GPUs), and what a
// runner's explicit list (nvidia.com/gpu: [0, 1]) means. A worker process
// gets a CUDA_VISIBLE_DEVICES of its own (CUDAVisibleDevices) naming the same
// GPUs in the parent's terms, so inside it they are 0..k-1 again.
package placement
