package batcher

import "time"

// Clock is the batcher's view of time, so that policy decisions can be tested
// step by step without sleeping (batchertest.Clock).
type Clock interface {
	Now() time.Time
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is the part of *time.Timer the batcher needs. It is an alias, not a
// type of its own, so that a Clock can be written without importing this
// package: batcher's own tests use batchertest's.
type Timer = interface {
	Stop() bool
}

// RealClock is the wall clock.
type RealClock struct{}

func (RealClock) Now() time.Time { return time.Now() }

func (RealClock) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }
