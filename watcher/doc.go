// Package watcher loads benchtop's YAML config, has the engine check it
// (Engine.Plan) with every problem at a position a user can jump to
// (file:line:column), and keeps a running engine in step with the file:
// fsnotify on its directory, debounced, applied as a diff, the old config
// kept whenever the new one is broken.
package watcher
