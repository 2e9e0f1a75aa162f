// Package models generates the sample ONNX models that ship with benchtop,
// in Go, with deterministic weights, so that a first run has real models to
// serve and tests can compute the expected outputs themselves:
//
//   - mlp-small: float32 [N, 64] → 256 → 256 → 10, ReLU between, softmax out
//   - mlp-large: float32 [N, 256] → 1024 → 1024 → 10, the same shape of net
//   - text-classifier: int64 input_ids and attention_mask [batch, seq] →
//     int64 label [batch] and float32 probabilities [batch, 4]: token
//     embeddings (a vocabulary of 1000), their masked mean, a linear layer
//
// The .onnx bytes are built on demand (never committed); EnsureSamples
// imports them into a model store the first time benchtop runs.
package models
