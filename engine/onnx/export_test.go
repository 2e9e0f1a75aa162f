package onnx

// LiveValues is how many runtime values are not yet released.
func LiveValues() int64 { return live.Load() }

// MadeValues is how many runtime values were ever made.
func MadeValues() int64 { return made.Load() }
