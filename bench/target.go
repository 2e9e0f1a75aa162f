package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/benchtop/benchtop/engine"
)

// Target is one endpoint under load. Call is safe for concurrent use; its
// error says why a request failed and is sorted into a kind by ErrorKind.
type Target interface {
	// Call sends one request and waits for its answer (or ctx).
	Call(ctx context.Context) error
	// ServerStats reads the serving side's cumulative counters for the
	// method under load; ErrNoServerStats when the target has none.
	ServerStats(ctx context.Context) (ServerStats, error)
	// String names the target in reports.
	String() string
}

// ErrNoServerStats: the target does not expose batching metrics (an HTTP
// service without /metrics, or one whose API does not map to a runner).
var ErrNoServerStats = errors.New("no server-side metrics")

// StatusError is an HTTP answer other than 2xx.
type StatusError struct {
	Code int
	// Message is the start of the body, usually the server's JSON error.
	Message string
	// RetryAfter is the answer's Retry-After header: how long the server
	// asks a refused client to wait; 0 when it sent none.
	RetryAfter time.Duration
}

func (e *StatusError) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("http %d", e.Code)
	}
	return fmt.Sprintf("http %d: %s", e.Code, e.Message)
}

// Error kinds that are not an HTTP status.
const (
	KindTimeout    = "timeout"    // the per-request timeout passed, or the runner's
	KindConnection = "connection" // dial, reset, EOF: the request never got an answer
	KindOverloaded = "overloaded" // in process or gRPC: refused to protect the latency bound
	KindInvalid    = "invalid"    // in process or gRPC: the input does not fit the method
	KindCrashed    = "crashed"    // in process: the worker died with the batch
	KindOther      = "error"
)

// Refused reports whether err is the server refusing a request it could
// not serve in time, which a caller may retry later: HTTP 503 or 429, gRPC
// Unavailable with RetryInfo, or in process the engine's overload error.
// retryAfter is when the server said to come back (Retry-After, RetryInfo,
// or the engine's OverloadError.RetryAfter); 0 when it did not say.
func Refused(err error) (refused bool, retryAfter time.Duration) {
	var se *StatusError
	var ge *GRPCError
	var oe *engine.OverloadError
	switch {
	case err == nil:
		return false, 0
	case errors.As(err, &se):
		return se.Code == http.StatusServiceUnavailable || se.Code == http.StatusTooManyRequests, se.RetryAfter
	case errors.As(err, &ge):
		return ge.Overloaded, ge.RetryAfter
	case errors.As(err, &oe):
		return true, oe.RetryAfter
	case errors.Is(err, engine.ErrOverloaded):
		return true, 0
	}
	return false, 0
}

// ErrorKind sorts a failed request: "http_503" for an HTTP status, else one
// of the Kind constants, which a gRPC status maps to where one means the
// same, else "grpc_internal" and the like. Statuses are kept apart because
// a 503 (shed load) and a 500 (a bug) call for different fixes.
func ErrorKind(err error) string {
	var se *StatusError
	var ge *GRPCError
	var ne net.Error
	switch {
	case errors.As(err, &se):
		return "http_" + strconv.Itoa(se.Code)
	case errors.As(err, &ge):
		return ge.kind()
	case errors.Is(err, engine.ErrOverloaded):
		return KindOverloaded
	case errors.Is(err, engine.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		return KindTimeout
	case errors.Is(err, engine.ErrInvalidInput):
		return KindInvalid
	case errors.Is(err, engine.ErrWorkerCrashed):
		return KindCrashed
	case errors.As(err, &ne):
		if ne.Timeout() {
			return KindTimeout
		}
		return KindConnection
	}
	return KindOther
}
