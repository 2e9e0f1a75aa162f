package batcher

import (
	"errors"
	"testing"
	"time"
)

func overload(t *testing.T, err error) *OverloadError {
	t.Helper()
	var oe *OverloadError
	if !errors.As(err, &oe) {
		t.Fatalf("got %v, want an overload error", err)
	}
	return oe
}

// runOne submits one row to an idle queue and runs its batch for exec.
func runOne(t *testing.T, h *harness, q *Queue[int], id int, exec time.Duration) {
	t.Helper()
	h.submit(q, id, 1)
	bs := h.take()
	if len(bs) != 1 {
		t.Fatalf("request %d to an idle method: %d batches, want it dispatched at once", id, len(bs))
	}
	h.clock.Advance(exec)
	bs[0].Done(exec, true)
}

// TestSlowSpellDoesNotLockTheMethodOut is the lock-out of issue 12: a
// method slow for a while taught the forecast that every row costs
// seconds, so every later request was refused, nothing ran, and nothing
// corrected the forecast.
func TestSlowSpellDoesNotLockTheMethodOut(t *testing.T) {
	h := newHarness(t, 1)
	c := cfg(Adaptive, 32)
	c.MaxLatency = 100 * time.Millisecond
	q := h.queue(c)
	for id := range 4 {
		runOne(t, h, q, id, 2*time.Second)
	}
	// Idle method, free worker: the next request runs whatever the forecast.
	h.submit(q, 10, 1)
	bs := h.take()
	if len(bs) != 1 {
		t.Fatal("a request to an idle method was held back")
	}
	// While it runs, the forecast refuses what would queue behind it, and says why.
	_, err := q.Submit(11, Request{Rows: 1})
	oe := overload(t, err)
	if oe.Cause != CausePredicted || oe.Forecast <= oe.Bound || oe.Bound != 100*time.Millisecond {
		t.Fatalf("refusal %+v: want cause predicted, a forecast past the 100ms bound", oe)
	}
	h.clock.Advance(time.Millisecond)
	bs[0].Done(time.Millisecond, true)
	// Each request that finds it idle runs and teaches the forecast, until
	// the method serves a queue again.
	for id := 20; id < 80; id++ {
		runOne(t, h, q, id, time.Millisecond)
	}
	h.b.SetSlots(0)
	h.submit(q, 90, 1)
	if _, err := q.Submit(91, Request{Rows: 1}); err != nil {
		t.Fatalf("after fast batches, a request behind one other was refused: %v", err)
	}
	if len(h.rejected) != 0 {
		t.Fatalf("rejected while queued: %v", h.rejected)
	}
}

// TestOneOutlierDoesNotPoisonTheForecast: a single batch far slower than
// its size explains (a stopped worker, a long GC pause) moves the forecast
// by a bounded factor, not to seconds.
func TestOneOutlierDoesNotPoisonTheForecast(t *testing.T) {
	h := newHarness(t, 1)
	c := cfg(Adaptive, 32)
	c.MaxLatency = 100 * time.Millisecond
	q := h.queue(c)
	for id, exec := range []time.Duration{time.Millisecond, time.Millisecond, time.Millisecond, 10 * time.Second, time.Millisecond} {
		runOne(t, h, q, id, exec)
	}
	h.b.SetSlots(0)
	h.submit(q, 10, 1)
	if _, err := q.Submit(11, Request{Rows: 1}); err != nil {
		t.Fatalf("a request behind one other was refused after one 10 s outlier: %v", err)
	}
	if est := q.Stats(); est.CostFixed+est.CostPerRow > 10*time.Millisecond {
		t.Fatalf("forecast of one row %v after one outlier, want a few ms", est.CostFixed+est.CostPerRow)
	}
}

// TestCostFollowsBytesWhereRowsVaryInSize: one 15 MB text is one row; the
// fit explains its cost by its bytes and still prices a short text as
// cheap.
func TestCostFollowsBytesWhereRowsVaryInSize(t *testing.T) {
	var m costModel
	now := t0
	for _, s := range []struct {
		bytes int64
		d     time.Duration
	}{{20, 50 * time.Microsecond}, {35, 52 * time.Microsecond}, {12, 49 * time.Microsecond}, {15 << 20, 2 * time.Second}, {28, 51 * time.Microsecond}} {
		now = now.Add(10 * time.Millisecond)
		m.observe(now, 1, s.bytes, s.d)
	}
	if got := m.estimate(1, 30); got > time.Millisecond {
		t.Fatalf("a 30-byte text is forecast at %v after one 15 MB outlier, want well under 1ms (a=%g b=%g c=%g)", got, m.a, m.b, m.c)
	}
	if got := m.estimate(1, 15<<20); got < time.Second {
		t.Fatalf("another 15 MB text is forecast at %v, want about 2s", got)
	}
}

// TestCostFitKeepsRowsWhereBytesFollowThem: fixed-width tensors give bytes
// in proportion to rows; the fit still recovers a + b·rows.
func TestCostFitKeepsRowsWhereBytesFollowThem(t *testing.T) {
	var m costModel
	for i := range 40 {
		n := 1 + i%17
		m.observe(t0, n, int64(n)*1024, 3*time.Millisecond+time.Duration(n)*250*time.Microsecond)
	}
	if got := m.estimate(10, 10*1024); got < 5400*time.Microsecond || got > 5600*time.Microsecond {
		t.Fatalf("estimate(10 rows) = %v, want 5.5ms (a=%g b=%g c=%g)", got, m.a, m.b, m.c)
	}
	if m.a < 2.9e-3 || m.a > 3.1e-3 {
		t.Fatalf("fixed cost %v, want 3ms", seconds(m.a))
	}
}

// TestOldEvidenceFades: after a long idle spell, what the method does now
// outweighs what it did before.
func TestOldEvidenceFades(t *testing.T) {
	var m costModel
	now := t0
	for range 20 {
		now = now.Add(time.Millisecond)
		m.observe(now, 1, 0, 100*time.Millisecond)
	}
	now = now.Add(5 * time.Minute)
	for range 4 {
		now = now.Add(time.Millisecond)
		m.observe(now, 1, 0, time.Millisecond)
	}
	if got := m.estimate(1, 0); got > 2*time.Millisecond {
		t.Fatalf("forecast %v: five-minute-old batches still dominate", got)
	}
}

// TestShapesBatchApart: requests whose non-batch dims differ never share a
// batch, and the oldest request goes first whatever its shape.
func TestShapesBatchApart(t *testing.T) {
	h := newHarness(t, 0)
	q := h.queue(cfg(Fixed, 64))
	for id, key := range []string{"w2", "w16", "w2", "w1", "w16"} {
		if _, err := q.Submit(id, Request{Rows: 1, Key: []byte(key)}); err != nil {
			t.Fatal(err)
		}
	}
	if s := q.Stats(); s.Groups != 3 || s.Depth != 5 {
		t.Fatalf("stats %+v: want 5 requests in 3 groups", s)
	}
	h.clock.Advance(c5ms)
	var got []string
	for range 3 {
		h.b.SetSlots(1)
		bs := h.take()
		if len(bs) != 1 {
			t.Fatalf("%d batches, want 1", len(bs))
		}
		got = append(got, describe(bs[0]))
		h.b.SetSlots(0)
		bs[0].Done(time.Millisecond, true)
	}
	want := []string{"0:0+1 2:0+1", "1:0+1 4:0+1", "3:0+1"}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("batches %q, want %q", got, want)
		}
	}
	if s := q.Stats(); s.Depth != 0 || s.Rows != 0 || s.Groups != 0 {
		t.Fatalf("counts after all ran: %+v", s)
	}
}

const c5ms = 5 * time.Millisecond

// TestWholeRequestIsPriced: a request of many batches' rows is refused at
// once when all of it cannot finish in time, even at an idle method.
func TestWholeRequestIsPriced(t *testing.T) {
	h := newHarness(t, 1)
	c := cfg(Adaptive, 64)
	c.MaxLatency = 100 * time.Millisecond
	q := h.queue(c)
	train(h, q, 2*time.Millisecond, 100*time.Microsecond) // 8.4 ms per full batch
	_, err := q.Submit(1, Request{Rows: 100_000})
	oe := overload(t, err)
	if oe.Cause != CausePredicted || oe.Forecast < 10*time.Second {
		t.Fatalf("refusal %+v: want a forecast of about 13 s for 1,563 batches", oe)
	}
	// Eleven full batches (92 ms) fit; thirteen (109 ms) do not.
	h.submit(q, 2, 11*64)
	if _, err := q.Submit(3, Request{Rows: 13 * 64}); err == nil {
		t.Fatal("a 13-batch request behind an 11-batch one was accepted")
	}
}

// TestMixedSizesArePricedAsTheyPack: requests of 40 rows in batches of 64
// go one per batch; the forecast counts those batches, not rows/64.
func TestMixedSizesArePricedAsTheyPack(t *testing.T) {
	h := newHarness(t, 1)
	c := cfg(Adaptive, 64)
	c.MaxLatency = 52 * time.Millisecond // 49.4 ms with the admission slack
	q := h.queue(c)
	train(h, q, 2*time.Millisecond, 100*time.Microsecond) // 6 ms per 40-row batch
	h.b.SetSlots(0)
	accepted := 0
	for id := range 20 {
		if _, err := q.Submit(id, Request{Rows: 40}); err != nil {
			break
		}
		accepted++
	}
	// 8 batches of 40 rows take 48 ms; a 9th would end at 54 ms. Priced as
	// full batches of 64 rows, 10 were let in, the last ending at 60 ms.
	if accepted != 8 {
		t.Fatalf("accepted %d requests of 40 rows, want 8", accepted)
	}
}

// TestAcceptedRequestsMeetTheBound: with slots busy and the forecast
// right, every accepted request finishes within max_latency, and the
// excess is refused at submit rather than after waiting.
func TestAcceptedRequestsMeetTheBound(t *testing.T) {
	h := newHarness(t, 1)
	c := cfg(Adaptive, 8)
	c.MaxLatency = 30 * time.Millisecond
	q := h.queue(c)
	const a, b = 2 * time.Millisecond, 250 * time.Microsecond // 4 ms per batch of 8
	train(h, q, a, b)
	accepted := map[int]time.Time{}
	refusedAtSubmit := 0
	var running *Batch[int]
	for tick := range 10000 { // 50 µs ticks; one row every 250 µs, twice what the worker serves
		if tick%5 == 0 {
			id := tick / 5
			if _, err := q.Submit(id, Request{Rows: 1}); err == nil {
				accepted[id] = h.clock.Now()
			} else {
				refusedAtSubmit++
			}
		}
		if running == nil {
			if bs := h.take(); len(bs) > 0 {
				running = bs[0]
			}
		}
		if running != nil {
			exec := a + time.Duration(running.Rows)*b
			if end := h.clock.Now(); !end.Before(running.Formed.Add(exec)) {
				for _, p := range running.Parts {
					if took := end.Sub(accepted[p.Item.Payload]); took > c.MaxLatency {
						t.Fatalf("request %d took %v, past the 30ms bound", p.Item.Payload, took)
					}
				}
				running.Done(exec, true)
				running = nil
				if bs := h.take(); len(bs) > 0 {
					running = bs[0]
				}
			}
		}
		h.clock.Advance(50 * time.Microsecond)
	}
	for id, err := range h.rejected {
		t.Logf("%d: %v", id, err)
		break
	}
	if len(h.rejected) > 0 {
		t.Fatalf("%d requests were refused after waiting in the queue, want all refusals at submit", len(h.rejected))
	}
	if refusedAtSubmit < 800 {
		t.Fatalf("only %d of 2000 refused at twice the capacity", refusedAtSubmit)
	}
}

// TestRetryAfterIsTheExpectedWait: a refused caller is told how long the
// work ahead of it is expected to take, not a floor — also before the cost
// model is trained, when the batches that ran (or the one running) are all
// there is to go by.
func TestRetryAfterIsTheExpectedWait(t *testing.T) {
	queueFull := func(t *testing.T, q *Queue[int], id int) *OverloadError {
		t.Helper()
		_, err := q.Submit(id, Request{Rows: 1})
		oe := overload(t, err)
		if oe.Cause != CauseQueueFull {
			t.Fatalf("refusal %+v: want cause queue_full", oe)
		}
		return oe
	}
	// A queue of one behind one worker: one batch runs, one waits, the
	// next is refused.
	setup := func(t *testing.T, maxExec time.Duration) (*harness, *Queue[int]) {
		h := newHarness(t, 1)
		h.b.SetMaxExec(maxExec)
		c := cfg(None, 1)
		c.MaxQueueSize = 1
		return h, h.queue(c)
	}
	t.Run("no batch finished: the running one is expected to take twice its age", func(t *testing.T) {
		h, q := setup(t, 0)
		h.submit(q, 1, 1)
		h.submit(q, 2, 1)
		h.clock.Advance(time.Second)
		// The running batch, 1 s old, has about 1 s left; the queued one
		// is expected to take 2 s.
		if got := queueFull(t, q, 3).RetryAfter; got != 3*time.Second {
			t.Fatalf("RetryAfter %v, want 3s", got)
		}
	})
	t.Run("after a batch of 1.5 s", func(t *testing.T) {
		h, q := setup(t, 0)
		runOne(t, h, q, 0, 1500*time.Millisecond)
		h.submit(q, 1, 1)
		h.submit(q, 2, 1)
		h.clock.Advance(100 * time.Millisecond)
		// 1.4 s left of the running batch, 1.5 s for the queued one.
		if got := queueFull(t, q, 3).RetryAfter; got != 2900*time.Millisecond {
			t.Fatalf("RetryAfter %v, want 2.9s", got)
		}
	})
	t.Run("never past the runner's timeout per batch", func(t *testing.T) {
		h, q := setup(t, 500*time.Millisecond)
		h.submit(q, 1, 1)
		h.submit(q, 2, 1)
		h.clock.Advance(time.Second)
		// The running batch is past its timeout (it is being stopped);
		// the queued one takes at most 0.5 s.
		if got := queueFull(t, q, 3).RetryAfter; got != 500*time.Millisecond {
			t.Fatalf("RetryAfter %v, want the 500ms timeout", got)
		}
	})
	t.Run("spread over the workers", func(t *testing.T) {
		h := newHarness(t, 2)
		c := cfg(None, 1)
		c.MaxQueueSize = 2
		q := h.queue(c)
		for id := range 4 {
			h.submit(q, id, 1) // two run, two wait
		}
		h.clock.Advance(time.Second)
		// 1 s left of each running batch and 2 s for each queued one,
		// over two workers.
		if got := queueFull(t, q, 5).RetryAfter; got != 3*time.Second {
			t.Fatalf("RetryAfter %v, want 3s", got)
		}
	})
	t.Run("trained: the forecast's excess, at least one full batch", func(t *testing.T) {
		h := newHarness(t, 1)
		c := cfg(Adaptive, 8)
		c.MaxLatency = 100 * time.Millisecond
		q := h.queue(c)
		train(h, q, 10*time.Millisecond, time.Millisecond)
		h.submit(q, 1, 8) // 18 ms, running
		for id := 2; id <= 5; id++ {
			h.submit(q, id, 8) // 4 × 18 ms queued
		}
		// Behind 90 ms of work its own 18 ms batch is forecast 108 ms:
		// 8 ms past the bound, less than one 18 ms batch.
		_, err := q.Submit(6, Request{Rows: 8})
		oe := overload(t, err)
		if d := oe.RetryAfter - 18*time.Millisecond; oe.Cause != CausePredicted || d < -time.Microsecond || d > time.Microsecond {
			t.Fatalf("refusal %+v (RetryAfter %v): want cause predicted, RetryAfter one 18ms batch", oe, oe.RetryAfter)
		}
	})
}
