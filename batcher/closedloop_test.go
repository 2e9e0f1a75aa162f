package batcher

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"testing"
	"time"
)

// loopSim drives one queue with c closed-loop callers on a fake clock: a
// batch of n rows runs for a + b·n, and each of its callers comes back once
// its answer has been through a CPU of cores cores that spends ret on every
// caller's return (answer written and read, new request sent and parsed),
// first come first served. That is the shape of callers over HTTP; ret = 0
// is callers in process.
type loopSim struct {
	c       int
	a, b    time.Duration
	ret     time.Duration
	cores   int
	maxRows int
}

type simResult struct {
	rate    float64 // rows per second after warm-up
	batches int
	rows    int
}

func (s loopSim) run(t *testing.T, warm, measure time.Duration) simResult {
	t.Helper()
	h := newHarness(t, 1)
	q := h.queue(cfg(Adaptive, s.maxRows))
	type done struct {
		at time.Time
		bt *Batch[int]
	}
	var running []done
	var arrivals []time.Time // sorted; a caller each
	cpuFree := make([]time.Time, s.cores)
	start := h.clock.Now()
	for range s.c {
		arrivals = append(arrivals, start)
	}
	var res simResult
	end := start.Add(warm + measure)
	startRunning := func() {
		for _, bt := range h.take() {
			running = append(running, done{bt.Formed.Add(s.a + time.Duration(bt.Rows)*s.b), bt})
		}
	}
	for {
		startRunning()
		// The next event: a batch ends, a caller arrives, or (in steps of
		// 100 µs, so the fake clock fires it on the way) a timer.
		const (
			none = iota
			finish
			arrive
			tick
		)
		kind, next, ri := none, time.Time{}, -1
		if len(arrivals) > 0 {
			kind, next = arrive, arrivals[0]
		}
		for i, d := range running {
			if kind == none || d.at.Before(next) {
				kind, next, ri = finish, d.at, i
			}
		}
		if step := h.clock.Now().Add(100 * time.Microsecond); h.clock.Pending() > 0 && (kind == none || step.Before(next)) {
			kind, next = tick, step
		}
		if kind == none || next.After(end) {
			break
		}
		h.clock.Advance(next.Sub(h.clock.Now()))
		now := h.clock.Now()
		switch kind {
		case finish:
			startRunning() // a timer on the way may have started one
			d := running[ri]
			running = append(running[:ri], running[ri+1:]...)
			d.bt.Done(d.at.Sub(d.bt.Formed), true)
			if now.Sub(start) > warm {
				res.batches++
				res.rows += d.bt.Rows
			}
			for range d.bt.Rows {
				k := 0
				for j := range cpuFree {
					if cpuFree[j].Before(cpuFree[k]) {
						k = j
					}
				}
				cpuFree[k] = later(cpuFree[k], now).Add(s.ret)
				arrivals = append(arrivals, cpuFree[k])
			}
			sort.Slice(arrivals, func(i, j int) bool { return arrivals[i].Before(arrivals[j]) })
		case arrive:
			arrivals = arrivals[1:]
			h.submit(q, 0, 1)
		}
	}
	res.rate = float64(res.rows) / measure.Seconds()
	return res
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// bestRate is what the best of the two closed-loop schedules serves: one
// batch of all c callers a cycle, the worker idle while they come back, or
// two batches in turn, each running while the other's callers come back.
func (s loopSim) bestRate() float64 {
	c := float64(s.c)
	a, b := s.a.Seconds(), s.b.Seconds()
	back := s.ret.Seconds() * math.Ceil(c/float64(s.cores))
	one := c / (a + b*c + back)
	two := c / (2*a + b*c)
	if s.c < 2 {
		two = 0
	}
	return math.Max(one, two)
}

// TestClosedLoopBatching: closed-loop callers, in process and over an
// HTTP-like return path, are served at no less than 0.9 of the better of
// one whole batch a cycle and two alternating ones — never in the half
// batches that leave the worker idle half the time.
func TestClosedLoopBatching(t *testing.T) {
	const a, b = 2 * time.Millisecond, 100 * time.Microsecond
	for _, ret := range []time.Duration{0, 20 * time.Microsecond, 40 * time.Microsecond, 90 * time.Microsecond} {
		for _, c := range []int{1, 2, 8, 16, 32, 64} {
			t.Run(fmt.Sprintf("ret=%v/callers=%d", ret, c), func(t *testing.T) {
				s := loopSim{c: c, a: a, b: b, ret: ret, cores: 2, maxRows: 64}
				res := s.run(t, 200*time.Millisecond, time.Second)
				best := s.bestRate()
				t.Logf("%.0f rows/s, %.1f rows a batch, %.2f of the best schedule", res.rate, float64(res.rows)/float64(res.batches), res.rate/best)
				if got := res.rate / best; got < 0.9 {
					t.Errorf("served %.0f rows/s in %d batches (%.1f rows each), %.2f of the best schedule's %.0f",
						res.rate, res.batches, float64(res.rows)/float64(res.batches), got, best)
				}
			})
		}
	}
}

// TestOpenLoopIsNotTakenForClosed: Poisson arrivals at any load never teach
// the policy that callers come back, so they never wait for a burst.
func TestOpenLoopIsNotTakenForClosed(t *testing.T) {
	const a, b = 2 * time.Millisecond, 100 * time.Microsecond
	capacity := 64 / (a + 64*b).Seconds()
	for _, load := range []float64{0.05, 0.2, 0.5, 0.8, 0.95} {
		t.Run(fmt.Sprintf("load=%.2f", load), func(t *testing.T) {
			h := newHarness(t, 1)
			q := h.queue(cfg(Adaptive, 64))
			rng := rand.New(rand.NewPCG(1, uint64(load*100)))
			gap := func() time.Duration { return time.Duration(rng.ExpFloat64() / (load * capacity) * 1e9) }
			type done struct {
				at time.Time
				bt *Batch[int]
			}
			var running []done
			arrival := h.clock.Now().Add(gap())
			end := h.clock.Now().Add(3 * time.Second)
			minTightness := 2.0
			for h.clock.Now().Before(end) {
				for _, bt := range h.take() {
					running = append(running, done{bt.Formed.Add(a + time.Duration(bt.Rows)*b), bt})
				}
				next, ri := arrival, -1
				for i, d := range running {
					if d.at.Before(next) {
						next, ri = d.at, i
					}
				}
				if step := h.clock.Now().Add(100 * time.Microsecond); h.clock.Pending() > 0 && step.Before(next) {
					next, ri = step, -2
				}
				h.clock.Advance(next.Sub(h.clock.Now()))
				switch {
				case ri >= 0:
					d := running[ri]
					running = append(running[:ri], running[ri+1:]...)
					d.bt.Done(d.at.Sub(d.bt.Formed), true)
				case ri == -1:
					h.submit(q, 0, 1)
					arrival = h.clock.Now().Add(gap())
				}
				h.b.mu.Lock()
				if h.clock.Now().Sub(t0) > 200*time.Millisecond {
					minTightness = min(minTightness, q.burst.tightness)
				}
				h.b.mu.Unlock()
			}
			t.Logf("lowest tightness %.2f", minTightness)
			if minTightness < closedLoop {
				t.Fatalf("tightness fell to %.2f: open-loop arrivals were taken for callers coming back", minTightness)
			}
		})
	}
}
