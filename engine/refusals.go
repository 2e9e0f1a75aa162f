package engine

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/benchtop/benchtop/batcher"
)

// refusalEvery is the most often a method's refusals make an event: under
// overload they come by the thousand a second, and the events pane and
// the log want the fact and its size, not every instance.
const refusalEvery = 10 * time.Second

// refusalLog turns a method's overload refusals into at most one event per
// refusalEvery, counting those in between.
type refusalLog struct {
	mu      sync.Mutex
	last    time.Time // of the latest event
	pending int       // refusals since it
}

// noteRefusal counts an overload refusal by its cause and, at most once
// per refusalEvery, says in the events what refused and why.
func (r *Runner) noteRefusal(m *method, err error) {
	var oe *OverloadError
	if !errors.As(err, &oe) {
		return
	}
	m.metrics.refused[oe.Cause].Inc()
	now := time.Now()
	l := &m.refusals
	l.mu.Lock()
	l.pending++
	if !l.last.IsZero() && now.Sub(l.last) < refusalEvery {
		l.mu.Unlock()
		return
	}
	n := l.pending
	l.last, l.pending = now, 0
	l.mu.Unlock()
	var what string
	switch oe.Cause {
	case batcher.CausePredicted:
		what = fmt.Sprintf("forecast %v past max_latency %v", oe.Forecast.Round(time.Millisecond/10), oe.Bound)
	case batcher.CauseExpired:
		what = fmt.Sprintf("could not start in time for max_latency %v", oe.Bound)
	default:
		what = oe.Reason
	}
	msg := fmt.Sprintf("%s: refusing requests as overloaded (%s); %d refused since the last such event, see benchtop_runner_refusals_total",
		m.spec.Name, what, n)
	r.deps.events.Add(slog.LevelWarn, r.name, msg)
}
