package onnx

import (
	"fmt"

	"github.com/benchtop/benchtop/engine"
	"github.com/benchtop/benchtop/store"
)

// StoreResolver resolves a config's `model: name:version` through a model
// store into an onnx runner (watcher.ModelResolver).
type StoreResolver struct {
	Store *store.Store
}

// ResolveModel returns the runnable and init params that serve tag.
func (r StoreResolver) ResolveModel(tag string) (string, engine.Params, error) {
	m, err := r.Store.Get(tag)
	if err != nil {
		return "", nil, err
	}
	params, err := ModelParams(m)
	if err != nil {
		return "", nil, fmt.Errorf("model %s: %w", tag, err)
	}
	return TypeName, params, nil
}

// WatchDirs is the store's root: each name's folder in it holds the latest
// pointer that a new version replaces.
func (r StoreResolver) WatchDirs() []string { return []string{r.Store.Dir()} }
