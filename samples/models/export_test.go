package models

// Regenerate builds a sample again, bypassing the cache.
func Regenerate(name string) []byte { return generate(name).ONNX }

// RegenerateText builds the text classifier again, bypassing the cache.
func RegenerateText() []byte { return newTextClassifier("text-classifier", 1000, 64, 4).ONNX }
