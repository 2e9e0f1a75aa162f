package onnx

// LiveValues is how many runtime values are not yet released.
func LiveValues() int64 { return live.Load() }
