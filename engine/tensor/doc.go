// Package tensor holds the values that flow through a runner method: a
// tensor (dtype, shape, row-major bytes or strings), a text, or a decoded
// JSON document, and the batching operations on them (Concat, Split and
// Slice along a batch dim; batch dim 0 splits into zero-copy views).
//
// It is a leaf: it imports nothing from benchtop, so the engine, the
// runnables (in process, ONNX Runtime, worker processes), the front ends
// and anything that runs a worker can all share one definition of a value
// without pulling in the engine.
//
// IOSpec, one slot of a method signature, lives here rather than in the
// engine: it is a description of a value (kind, dtype, shape) and its
// Check needs nothing but the value, so a runnable or a codec can check a
// value against a signature without the engine. How the engine batches
// values that meet a spec (shape groups, queues) stays in the engine.
package tensor
