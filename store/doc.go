// Package store keeps versioned models on disk, so that a model saved once
// becomes a batching runner by its tag (mlp:latest) without any code.
//
// Layout under the store directory ($BENCHTOP_HOME/models, by default
// ~/.benchtop/models):
//
//	<name>/<version>/model.yaml   name, version, framework, signatures, io, checksums
//	<name>/<version>/model.onnx   the model file itself
//	<name>/latest                 one line: the version "name" and "name:latest" mean
//	.tmp/                         imports and deletes in progress (never listed)
//	.locks/<name>.lock            serialises changes to one name across processes
//
// Every change is atomic: an import is written into .tmp and renamed into
// place whole, so a crash never leaves a half model that List shows, and
// latest is a small file replaced by rename, so a watcher (fsnotify on
// <name>/) sees a version appear behind name:latest as one Create event on
// <name>/latest. Leftovers of crashed imports are removed by the next Open.
//
// Names and versions follow the rule of package names (lower-case letters,
// digits and "-._", 1 to 63 characters, starting and ending with a letter
// or digit), so no tag can reach outside the store.
package store
