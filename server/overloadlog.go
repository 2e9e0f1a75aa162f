package server

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"
)

// DefaultOverloadLogInterval is how often, at most, a route's 503s are
// summarised in the log.
const DefaultOverloadLogInterval = 10 * time.Second

// overloadLog summarises refusals (503s) instead of logging each: under
// overload there may be thousands a second, and they are expected
// behaviour, counted in benchtop_api_requests_total{code="503"}. A route's
// first refusal after a quiet interval is logged at once; the rest are
// counted and logged as one line per route per interval at most.
type overloadLog struct {
	logger   *slog.Logger
	interval time.Duration
	now      func() time.Time

	mu     sync.Mutex
	routes map[string]*overloadRoute // by route label: bounded
}

type overloadRoute struct {
	pending   int       // refusals not yet logged
	since     time.Time // start of the pending window
	lastLine  time.Time // when a line was last written; zero: never
	lastError string
}

func newOverloadLog(logger *slog.Logger, interval time.Duration, now func() time.Time) *overloadLog {
	return &overloadLog{logger: logger, interval: interval, now: now, routes: map[string]*overloadRoute{}}
}

// add counts one refusal on a route, and logs the summary if the route's
// interval has passed.
func (l *overloadLog) add(route string, err error) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	r := l.routes[route]
	if r == nil {
		r = &overloadRoute{}
		l.routes[route] = r
	}
	if r.pending == 0 {
		r.since = now
	}
	r.pending++
	r.lastError = err.Error()
	if r.lastLine.IsZero() || now.Sub(r.lastLine) >= l.interval {
		l.write(route, r, now)
	}
}

// flush logs what is pending: on routes whose interval has passed, or on
// every route when all is set (at shutdown).
func (l *overloadLog) flush(all bool) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	names := make([]string, 0, len(l.routes))
	for name := range l.routes {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		r := l.routes[name]
		if r.pending > 0 && (all || now.Sub(r.lastLine) >= l.interval) {
			l.write(name, r, now)
		}
	}
}

// run flushes every interval until ctx ends, then flushes everything.
func (l *overloadLog) run(ctx context.Context) {
	t := time.NewTicker(l.interval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			l.flush(false)
		case <-ctx.Done():
			l.flush(true)
			return
		}
	}
}

func (l *overloadLog) write(route string, r *overloadRoute, now time.Time) {
	msg := fmt.Sprintf("%d requests refused as overloaded", r.pending)
	if r.pending == 1 {
		msg = "1 request refused as overloaded"
	}
	if window := now.Sub(r.since); window >= time.Second {
		msg += fmt.Sprintf(" in the last %s", window.Round(time.Second))
	}
	l.logger.Info(msg+": "+r.lastError, "api", route, "count", r.pending, "status", 503)
	r.pending, r.lastLine = 0, now
}
