// Package engine runs models: it holds the registry of Runnable types, turns
// runner configs into live Runners with their own worker pools and batchers,
// and records what happens as Prometheus metrics and cheap snapshots.
//
// Front ends (the workbench, the HTTP server, the bench command) talk only to
// this package's exported API; the engine imports none of them.
//
// A config is served in two steps, as caddy validates by running without
// starting: Engine.Plan checks it, fills in defaults and resolves each
// runner's methods, changing nothing; Engine.Apply starts, waits, swaps and
// drains to serve the plan.
//
// The path of one request: Runner.RunInfo (or Run, for a method of one
// input and one output) validates the values, one per named input, against
// the method signature, queues the request in the method's batcher queue
// under a key that says which requests it may share a batch with, and
// blocks on its own result channel. The batcher forms a batch when its
// policy says so and puts it on the runner's work channel; an idle worker
// concatenates each batched input of the parts along the batch dim, calls
// its Instance once, splits each batched output by the parts' row counts
// and sends every caller exactly its own rows of every output.
package engine
