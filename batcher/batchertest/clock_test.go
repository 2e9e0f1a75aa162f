package batchertest_test

import (
	"testing"
	"time"

	"github.com/benchtop/benchtop/batcher"
	"github.com/benchtop/benchtop/batcher/batchertest"
)

var _ batcher.Clock = (*batchertest.Clock)(nil)

func TestTimersFireInDeadlineOrderInsideAdvance(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c := batchertest.NewClock(start)
	var fired []string
	var at []time.Duration
	record := func(name string) func() {
		return func() { fired = append(fired, name); at = append(at, c.Now().Sub(start)) }
	}
	c.AfterFunc(30*time.Millisecond, record("30ms"))
	c.AfterFunc(10*time.Millisecond, record("10ms"))
	stopped := c.AfterFunc(20*time.Millisecond, record("20ms"))
	c.AfterFunc(time.Second, record("1s"))
	if !stopped.Stop() || stopped.Stop() {
		t.Fatal("Stop reports true once, for an armed timer only")
	}
	c.Advance(50 * time.Millisecond)
	if got := c.Now().Sub(start); got != 50*time.Millisecond {
		t.Fatalf("now is start+%v, want +50ms", got)
	}
	if len(fired) != 2 || fired[0] != "10ms" || fired[1] != "30ms" || at[0] != 10*time.Millisecond || at[1] != 30*time.Millisecond {
		t.Fatalf("fired %v at %v, want [10ms 30ms] each at its deadline", fired, at)
	}
	if c.Pending() != 1 {
		t.Fatalf("%d timers pending, want the 1s one", c.Pending())
	}
}
