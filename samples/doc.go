// Package samples holds the runnables that ship with benchtop, so that a new
// user sees every feature work before writing one of their own, and so that
// tests and benchmarks have models with known behaviour:
//
//   - sim: a simulated model whose batch costs fixed_ms + per_row_ms × rows
//     (like a model waiting on an accelerator) and returns each row doubled.
//   - sentiment: the custom runner of BentoML's guide, a lexicon-based
//     sentiment analyser with its own Prometheus metrics.
//   - echo: returns its input; measures the engine's own overhead.
//
// and the sample service APIs, Go functions that compose runners:
//
//   - sentiment-analysis: BentoML's analysis API, is_positive with the
//     polarity counted in the API;
//   - sentiment-compare: one text to two runners of one runnable at once.
package samples

import "github.com/benchtop/benchtop/engine"

// Register adds every sample runnable and service API type to r.
func Register(r *engine.Registry) error {
	for _, t := range []*engine.RunnableType{Sim(), Sentiment(), Echo()} {
		if err := r.Register(t); err != nil {
			return err
		}
	}
	for _, t := range []*engine.ServiceType{SentimentAnalysis(), SentimentCompare()} {
		if err := r.RegisterService(t); err != nil {
			return err
		}
	}
	return nil
}
