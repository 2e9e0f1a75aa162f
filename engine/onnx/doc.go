// Package onnx is benchtop's pre-built runner for ONNX models: a runnable
// type "onnx" whose init params name a model file, whose method signature
// is read from the model itself (every input the caller feeds and every
// output, each under the model's own name and dtype), and whose workers
// each own an ONNX Runtime session (github.com/yalue/onnxruntime_go over
// the ONNX Runtime 1.24 C API).
//
// The runtime is a shared library loaded at run time, not linked: a binary
// without it still runs every other runner, and an onnx runner then fails
// to start with a message saying how to install it. See Library for where
// it is looked for.
//
// Sessions are multi-threaded (intra-op threads from the worker's share of
// cores), so a runner gets one worker using several cores. Inputs are
// passed to the runtime without copying; outputs are written into Go
// memory and every runtime value is released before Call returns.
package onnx
