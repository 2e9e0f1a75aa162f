// Package cli is benchtop's command line, one file per command: the
// workbench (root.go, workbench.go), serve, bench, models, config and
// runnables. stack.go builds what the workbench and serve share: the
// metrics registry, the GPU monitor, the engine, the config reloader and
// the HTTP server, run in one errgroup. The binary's main package (the
// repository root) only calls Main.
package cli
