// Package process runs runnables outside benchtop: each worker of a
// "process" runner is a child process (most often Python) that speaks the
// benchtop worker protocol on its stdin and stdout, documented in
// docs/WORKER_PROTOCOL.md so that a worker can be written in any language.
//
// The host sends HELLO with the runnable's init params; the worker answers
// READY with its methods and signatures, which become the runner's methods.
// Then each batch is one CALL frame (tensors as raw little-endian bytes with
// dtype and shape) answered by one RESULT or ERROR frame.
//
// A worker is a process the engine can lose at any moment, so everything
// that can go wrong with one is turned into an error the engine knows what
// to do with: a worker that exits, breaks its pipe, writes anything but
// frames on stdout, or outlives the call's deadline is killed with its
// process group and reported with engine.ErrWorkerCrashed, its exit status
// and the last lines of its stderr, so that only that batch fails and the
// worker is replaced. Every child runs in its own process group with a
// parent-death signal, is asked to shut down, then terminated, then killed,
// and is always reaped: no zombie and no orphan survives a runner.
package process
