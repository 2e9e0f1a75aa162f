package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/benchtop/benchtop/engine"
)

// statusClientClosed is nginx's code for a client that left before the
// answer; it only ever shows in metrics and logs.
const statusClientClosed = 499

// statusFor maps an error to the HTTP status that tells the caller what to
// do: fix the request (4xx), retry later (503), or report a bug (500).
func statusFor(err error) int {
	var mbe *http.MaxBytesError
	var he *httpError
	switch {
	case errors.As(err, &he):
		return he.status
	case errors.As(err, &mbe):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, engine.ErrInvalidInput):
		return http.StatusBadRequest
	case errors.Is(err, engine.ErrUnknownRunner), errors.Is(err, engine.ErrUnknownMethod):
		return http.StatusNotFound
	case errors.Is(err, engine.ErrOverloaded), errors.Is(err, engine.ErrRunnerClosed), errors.Is(err, engine.ErrNotReady):
		return http.StatusServiceUnavailable
	case errors.Is(err, engine.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout
	case errors.Is(err, context.Canceled):
		return statusClientClosed
	}
	return http.StatusInternalServerError
}

// httpError carries a status decided by the front end itself.
type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string { return e.msg }

func errorf(status int, format string, args ...any) error {
	return &httpError{status: status, msg: fmt.Sprintf(format, args...)}
}

// writeError answers {"error": "..."} with a fitting status, and Retry-After
// on overload so that well-behaved clients back off.
func writeError(w http.ResponseWriter, err error) int {
	status := statusFor(err)
	if n, ok := w.(interface{ noteError(error) }); ok {
		n.noteError(err)
	}
	if mbe := (*http.MaxBytesError)(nil); status == http.StatusRequestEntityTooLarge && errors.As(err, &mbe) {
		err = fmt.Errorf("request body is larger than %d bytes: send less, or raise the server's --max-body-mb", mbe.Limit)
	}
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(retryAfter(err).Seconds()))))
	}
	writeJSON(w, status, map[string]string{"error": err.Error()})
	return status
}

// retryAfter is how long a client refused with 503 should wait: the
// engine's forecast on overload, at least a second.
func retryAfter(err error) time.Duration {
	retry := time.Second
	var oe *engine.OverloadError
	if errors.As(err, &oe) && oe.RetryAfter > retry {
		retry = oe.RetryAfter
	}
	return retry
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		body = []byte(`{"error":"encode response: ` + err.Error() + `"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(append(body, '\n'))
}
