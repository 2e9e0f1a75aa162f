// Package ui is the workbench: a terminal screen over the live engine, in
// the manner of k9s and nvtop. It shows every runner's load, batch sizes and
// latency together with the knobs that shape them, and lets a user turn the
// knobs, send test inputs and fire load while watching the effect.
//
// The UI reaches the engine only through Backend, and only inside tea.Cmds
// that return typed messages, so the UI goroutine never blocks on the
// engine. Views are pure functions of a Snapshot and the UI state, which is
// what the golden tests pin.
package ui
