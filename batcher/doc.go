// Package batcher groups concurrent requests for one runner into batches.
//
// A Batcher owns one FIFO queue per method and a number of slots (ready
// workers). Every event — a submit, a finished batch, a timer, a knob change —
// re-runs one scheduling step under a single lock: it rejects requests that can
// no longer meet their latency bound, asks each queue's policy whether to
// dispatch now or wait, and hands formed batches to the caller's Dispatch
// function. There is no dispatcher goroutine: the goroutine that caused the
// event does the work, which keeps the hand-off to a worker to one channel send.
//
// Rows, not requests, are counted: a batch never holds more than
// MaxBatchSize rows, and a request larger than that is cut into chunks that
// ride in consecutive batches (the caller reassembles them from Part offsets).
package batcher
