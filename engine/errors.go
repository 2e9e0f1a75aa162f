package engine

import (
	"errors"
	"fmt"
	"time"

	"github.com/benchtop/benchtop/batcher"
)

// Errors a caller can match with errors.Is. Front ends map them to statuses
// (overloaded → 503, timeout → 504, invalid input → 400, unknown → 404).
var (
	// ErrOverloaded: refused to protect the latency bound or the queue bound;
	// retrying later may succeed. Every OverloadError matches it.
	ErrOverloaded = batcher.ErrOverloaded
	// ErrUnknownRunner and ErrUnknownMethod: the name is not configured.
	ErrUnknownRunner = errors.New("unknown runner")
	ErrUnknownMethod = errors.New("unknown method")
	// ErrInvalidInput: the value does not fit the method signature, or the
	// runnable said the input was bad (see InvalidInput).
	ErrInvalidInput = errors.New("invalid input")
	// ErrTimeout: the batch did not finish within the runner's timeout.
	ErrTimeout = errors.New("execution timed out")
	// ErrWorkerCrashed: the worker died (panic, exited process) while running
	// the batch. An Instance whose backing process died returns an error
	// wrapping it, and the runner replaces that worker.
	ErrWorkerCrashed = errors.New("worker crashed")
	// ErrRunnerClosed: the runner was removed or the engine is shutting down.
	ErrRunnerClosed = errors.New("runner closed")
	// ErrNotReady: no worker of the runner could start (the error says why).
	ErrNotReady = errors.New("runner not ready")
)

// InvalidInput wraps err so that callers see ErrInvalidInput. Runnables use it
// for inputs the signature cannot express (an empty string, an out-of-range
// id), so that the front end answers 400 with the runnable's own message.
func InvalidInput(err error) error { return &invalidInputError{err} }

type invalidInputError struct{ err error }

func (e *invalidInputError) Error() string        { return e.err.Error() }
func (e *invalidInputError) Unwrap() error        { return e.err }
func (e *invalidInputError) Is(target error) bool { return target == ErrInvalidInput }

// OverloadError is a request refused so that it would not wait past its
// method's max_latency, or because max_queue_size requests were waiting.
// It matches ErrOverloaded, and errors.As finds it through a MethodError.
// The runner converts the batcher's own error into it, so that front ends
// see the engine's error values and need not know the batcher's.
type OverloadError struct {
	// Cause says which rule refused the request.
	Cause  batcher.Cause
	Reason string
	// RetryAfter is how long the backlog is expected to take to shrink
	// enough for a request like this one to be served in time.
	RetryAfter time.Duration
	// Forecast is the time the request was expected to take
	// (CausePredicted, CauseExpired); Bound is the max_latency it had to
	// meet.
	Forecast, Bound time.Duration
}

func (e *OverloadError) Error() string        { return "overloaded: " + e.Reason }
func (e *OverloadError) Is(target error) bool { return target == ErrOverloaded }

// overloadFrom turns the batcher's overload error into the engine's, with
// the same words and figures; any other error is returned as is.
func overloadFrom(err error) error {
	var be *batcher.OverloadError
	if !errors.As(err, &be) {
		return err
	}
	return &OverloadError{Cause: be.Cause, Reason: be.Reason, RetryAfter: be.RetryAfter, Forecast: be.Forecast, Bound: be.Bound}
}

// MethodError is what a failed call returns: which runner and method, and the
// cause, whose message is the runnable's own.
type MethodError struct {
	Runner, Method string
	Err            error
}

func (e *MethodError) Error() string {
	return fmt.Sprintf("runner %q method %q: %v", e.Runner, e.Method, e.Err)
}

func (e *MethodError) Unwrap() error { return e.Err }

// panicError carries a recovered panic as an error.
type panicError struct{ value any }

func (e *panicError) Error() string        { return fmt.Sprintf("panic: %v", e.value) }
func (e *panicError) Is(target error) bool { return target == ErrWorkerCrashed }
