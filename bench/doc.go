// Package bench measures a runner's throughput and latency under load, the
// way Triton's perf_analyzer does, so that batching can be tuned on numbers
// rather than guesses.
//
// A Target is one endpoint: an HTTP URL (a service API or a KServe v2 infer
// route) or a runner method called in process through the engine. A sweep
// drives it at a series of load levels, either closed loop (N callers, each
// sending its next request when the last one answers, and backing off as
// the server asks when it is refused) or open loop (requests due at a
// constant or Poisson rate, sent on time whatever the answers do).
// Open loop measures each latency from the request's intended send time, so
// a stall that delays sending is charged to the requests it delayed instead
// of disappearing (coordinated omission).
//
// Each level has a warm-up, then measurement windows until the last few
// windows' throughputs (successes per second, as reported) agree
// (perf_analyzer's stability rule) or a time limit passes. Alongside the client-side figures, the serving side's own
// counters — Prometheus histograms scraped from /metrics over HTTP, the
// runner's Stats in process — are diffed across the measured span, giving
// the batch-size distribution and the split between queueing and execution.
//
// Compare runs the same sweep under several batching settings of one
// runner, applied live between sweeps, so their trade-offs sit side by side.
package bench
