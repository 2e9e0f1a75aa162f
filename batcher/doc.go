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
// Admission is a forecast: at submit the batcher prices what is left of the
// running batches, every batch queued ahead (cut the way they will run) and
// the request's own batch or chunks, with a cost model a + b·rows + c·bytes
// learnt from finished batches, and refuses at once what would miss
// MaxLatency. A request that fits one batch and finds its method idle is
// never refused by the forecast, so a spoiled forecast always gets evidence
// to correct itself.
//
// The adaptive policy waits while waiting is expected to pay off: for
// arrivals at the rate it measures, and — where it has learnt that callers
// come back as soon as they are answered (burst.go) — for the rest of the
// callers of the batch that just finished.
//
// Requests carry a key: only requests with equal keys share a batch (for
// tensors, the same dtype and non-batch dims), oldest first across keys.
//
// Rows, not requests, are counted: a batch never holds more than
// MaxBatchSize rows, and a request larger than that is cut into chunks that
// ride in consecutive batches (the caller reassembles them from Part offsets).
package batcher
