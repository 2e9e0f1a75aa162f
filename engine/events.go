package engine

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Event is one thing a user should hear about: a worker restart, a failed
// start, a config reload. The UI shows them; the log records them.
type Event struct {
	Seq     uint64
	Time    time.Time
	Level   slog.Level
	Runner  string // empty for engine-wide events
	Message string
}

// EventLog keeps the most recent events in memory.
type EventLog struct {
	logger *slog.Logger
	mu     sync.Mutex
	buf    []Event
	next   uint64
}

const eventLogSize = 500

// NewEventLog returns a log that also writes every event to logger.
func NewEventLog(logger *slog.Logger) *EventLog {
	return &EventLog{logger: logger, buf: make([]Event, 0, eventLogSize)}
}

// Add records an event now.
func (l *EventLog) Add(level slog.Level, runner, msg string) {
	l.mu.Lock()
	l.next++
	ev := Event{Seq: l.next, Time: time.Now(), Level: level, Runner: runner, Message: msg}
	if len(l.buf) == eventLogSize {
		copy(l.buf, l.buf[1:])
		l.buf = l.buf[:eventLogSize-1]
	}
	l.buf = append(l.buf, ev)
	l.mu.Unlock()
	if l.logger != nil {
		if runner != "" {
			l.logger.Log(context.Background(), level, msg, "runner", runner)
		} else {
			l.logger.Log(context.Background(), level, msg)
		}
	}
}

// Since returns the events after seq, oldest first.
func (l *EventLog) Since(seq uint64) []Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, ev := range l.buf {
		if ev.Seq > seq {
			return append([]Event(nil), l.buf[i:]...)
		}
	}
	return nil
}
