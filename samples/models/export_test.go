package models

// Regenerate builds a sample again, bypassing the cache.
func Regenerate(name string) []byte { return generate(name).ONNX }
