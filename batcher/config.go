package batcher

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Policy decides, each time a worker is free, whether to dispatch now or wait
// for more rows.
type Policy uint8

const (
	// Adaptive learns the cost of a batch (a + b·rows) and the arrival rate,
	// dispatches at once when waiting cannot pay off, and never waits past the
	// latency bound.
	Adaptive Policy = iota
	// Fixed dispatches when the batch is full or the oldest request has waited
	// BatchWait, as TF Serving and Ray Serve do.
	Fixed
	// None sends every request on its own.
	None
)

var policyNames = [...]string{Adaptive: "adaptive", Fixed: "fixed", None: "none"}

func (p Policy) String() string {
	if int(p) < len(policyNames) {
		return policyNames[p]
	}
	return fmt.Sprintf("policy(%d)", p)
}

// ParsePolicy accepts "adaptive", "fixed" or "none".
func ParsePolicy(s string) (Policy, error) {
	for i, n := range policyNames {
		if strings.EqualFold(s, n) {
			return Policy(i), nil
		}
	}
	return 0, fmt.Errorf("unknown batching policy %q: want adaptive, fixed or none", s)
}

// Config holds every batching knob of one method. All of them can change while
// requests flow (Queue.SetConfig).
type Config struct {
	Policy Policy
	// MaxBatchSize is the most rows (along the batch dim) in one batch, inclusive.
	MaxBatchSize int
	// MaxLatency bounds the time from submit to the predicted end of execution;
	// a request that cannot make it is rejected with an OverloadError. Zero
	// means no bound.
	MaxLatency time.Duration
	// BatchWait is how long the Fixed policy holds a partial batch.
	BatchWait time.Duration
	// MaxQueueSize is the most requests waiting; zero means no bound.
	MaxQueueSize int
}

// Default knobs: generous enough to batch, tight enough to stay interactive.
const (
	DefaultMaxBatchSize = 32
	DefaultMaxLatency   = 100 * time.Millisecond
	DefaultBatchWait    = 5 * time.Millisecond
	DefaultMaxQueueSize = 10000
)

// DefaultConfig is the configuration a batchable method gets when none is given.
func DefaultConfig() Config {
	return Config{
		Policy:       Adaptive,
		MaxBatchSize: DefaultMaxBatchSize,
		MaxLatency:   DefaultMaxLatency,
		BatchWait:    DefaultBatchWait,
		MaxQueueSize: DefaultMaxQueueSize,
	}
}

// Validate reports every problem with c at once.
func (c Config) Validate() error {
	var errs []error
	if c.Policy > None {
		errs = append(errs, fmt.Errorf("policy %d: want adaptive, fixed or none", c.Policy))
	}
	if c.MaxBatchSize < 1 {
		errs = append(errs, fmt.Errorf("max_batch_size is %d: want at least 1", c.MaxBatchSize))
	}
	if c.MaxLatency < 0 {
		errs = append(errs, fmt.Errorf("max_latency is %v: want 0 (no bound) or more", c.MaxLatency))
	}
	if c.BatchWait < 0 {
		errs = append(errs, fmt.Errorf("batch_wait is %v: want 0 or more", c.BatchWait))
	}
	if c.MaxQueueSize < 0 {
		errs = append(errs, fmt.Errorf("max_queue_size is %d: want 0 (no bound) or more", c.MaxQueueSize))
	}
	return errors.Join(errs...)
}

// ErrOverloaded is matched (errors.Is) by every OverloadError.
var ErrOverloaded = errors.New("overloaded")

// ErrClosed is returned by Submit after Close, and given to requests still
// queued when a drain gives up.
var ErrClosed = errors.New("batcher closed")

// OverloadError says a request was refused so that it would not wait past its
// latency bound or grow the queue without limit. Front ends map it to 503.
type OverloadError struct {
	Cause  Cause
	Reason string
	// RetryAfter is how long the backlog is expected to take to shrink
	// enough for a request like this one to be served in time.
	RetryAfter time.Duration
	// Forecast is the time the request was expected to take (CausePredicted,
	// CauseExpired); Bound is the max_latency it had to meet.
	Forecast, Bound time.Duration
}

func (e *OverloadError) Error() string { return "overloaded: " + e.Reason }

func (e *OverloadError) Is(target error) bool { return target == ErrOverloaded }

// Cause says which rule refused a request.
type Cause uint8

const (
	// CausePredicted: refused at submit, its forecast time past max_latency.
	CausePredicted Cause = iota
	// CauseQueueFull: refused at submit, max_queue_size requests waiting.
	CauseQueueFull
	// CauseExpired: accepted, then refused while queued when its batch
	// could no longer start in time (the forecast was too hopeful).
	CauseExpired
)

var causeNames = [...]string{CausePredicted: "predicted", CauseQueueFull: "queue_full", CauseExpired: "expired"}

func (c Cause) String() string {
	if int(c) < len(causeNames) {
		return causeNames[c]
	}
	return fmt.Sprintf("cause(%d)", c)
}
