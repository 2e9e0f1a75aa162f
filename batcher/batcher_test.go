package batcher

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/benchtop/benchtop/batcher/batchertest"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// harness collects dispatched batches and rejections under a fake clock.
type harness struct {
	t        *testing.T
	clock    *batchertest.Clock
	b        *Batcher[int]
	mu       sync.Mutex
	batches  []*Batch[int]
	rejected map[int]error
}

func newHarness(t *testing.T, slots int) *harness {
	h := &harness{t: t, clock: batchertest.NewClock(t0), rejected: map[int]error{}}
	h.b = New(Options[int]{
		Clock: h.clock,
		Slots: slots,
		Dispatch: func(b *Batch[int]) {
			h.mu.Lock()
			h.batches = append(h.batches, b)
			h.mu.Unlock()
		},
		Reject: func(p int, err error) {
			h.mu.Lock()
			h.rejected[p] = err
			h.mu.Unlock()
		},
	})
	return h
}

func (h *harness) queue(cfg Config) *Queue[int] {
	h.t.Helper()
	q, err := h.b.AddQueue("predict", cfg)
	if err != nil {
		h.t.Fatal(err)
	}
	return q
}

func (h *harness) submit(q *Queue[int], id, rows int) *Item[int] {
	h.t.Helper()
	it, err := q.Submit(id, Request{Rows: rows})
	if err != nil {
		h.t.Fatalf("submit %d: %v", id, err)
	}
	return it
}

// take returns and forgets the batches dispatched so far.
func (h *harness) take() []*Batch[int] {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := h.batches
	h.batches = nil
	return out
}

// describe renders a batch as "id:offset+rows id:offset+rows".
func describe(b *Batch[int]) string {
	s := ""
	for i, p := range b.Parts {
		if i > 0 {
			s += " "
		}
		s += fmt.Sprintf("%d:%d+%d", p.Item.Payload, p.Offset, p.Rows)
	}
	return s
}

func cfg(p Policy, max int) Config {
	c := DefaultConfig()
	c.Policy = p
	c.MaxBatchSize = max
	c.MaxLatency = 0
	return c
}

// train teaches q's cost model a + b·n with batches of varied size.
func train(h *harness, q *Queue[int], a, b time.Duration) {
	h.b.mu.Lock()
	for _, n := range []int{1, 8, 2, 16, 4, 32, 3, 12} {
		q.cost.observe(h.clock.Now(), n, 0, a+time.Duration(n)*b)
	}
	h.b.mu.Unlock()
}

func TestFIFOAndInclusiveMax(t *testing.T) {
	h := newHarness(t, 0) // no worker yet: everything queues
	q := h.queue(cfg(Fixed, 4))
	for id := 1; id <= 9; id++ {
		h.submit(q, id, 1)
	}
	if got := h.take(); len(got) != 0 {
		t.Fatalf("dispatched %d batches with no slot", len(got))
	}
	h.b.SetSlots(1)
	var order []string
	for range 3 {
		bs := h.take()
		if len(bs) != 1 {
			h.clock.Advance(DefaultBatchWait) // the last partial batch waits batch_wait
			bs = h.take()
		}
		if len(bs) != 1 {
			t.Fatalf("want one batch per free slot, got %d", len(bs))
		}
		order = append(order, describe(bs[0]))
		bs[0].Done(time.Millisecond, true)
	}
	want := []string{"1:0+1 2:0+1 3:0+1 4:0+1", "5:0+1 6:0+1 7:0+1 8:0+1", "9:0+1"}
	if fmt.Sprint(order) != fmt.Sprint(want) {
		t.Fatalf("batches %q, want %q (FIFO, max 4 rows inclusive)", order, want)
	}
}

func TestOversizedRequestIsSplitAndOthersKeepOrder(t *testing.T) {
	h := newHarness(t, 0)
	q := h.queue(cfg(None, 4))
	q.SetConfig(cfg(Adaptive, 4))
	h.submit(q, 1, 10)
	h.submit(q, 2, 2)
	h.submit(q, 3, 3)
	h.b.SetSlots(1)
	var got []string
	for bs := h.take(); len(bs) > 0; bs = h.take() {
		got = append(got, describe(bs[0]))
		bs[0].Done(time.Millisecond, true)
	}
	want := []string{"1:0+4", "1:4+4", "1:8+2 2:0+2", "3:0+3"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("batches %q, want %q", got, want)
	}
	if s := q.Stats(); s.Depth != 0 || s.Rows != 0 {
		t.Fatalf("queue not empty after everything ran: %+v", s)
	}
}

func TestPolicyNoneSendsOneRequestPerBatch(t *testing.T) {
	h := newHarness(t, 0)
	q := h.queue(cfg(None, 64))
	h.submit(q, 1, 2)
	h.submit(q, 2, 3)
	h.b.SetSlots(2)
	bs := h.take()
	if len(bs) != 2 || describe(bs[0]) != "1:0+2" || describe(bs[1]) != "2:0+3" {
		t.Fatalf("got %d batches, want one per request", len(bs))
	}
}

func TestFixedWaitsForBatchWaitOrFull(t *testing.T) {
	h := newHarness(t, 1)
	c := cfg(Fixed, 3)
	c.BatchWait = 5 * time.Millisecond
	q := h.queue(c)
	h.submit(q, 1, 1)
	h.clock.Advance(4 * time.Millisecond)
	if n := len(h.take()); n != 0 {
		t.Fatalf("fixed dispatched after 4ms of a 5ms batch_wait")
	}
	h.clock.Advance(time.Millisecond)
	if bs := h.take(); len(bs) != 1 || describe(bs[0]) != "1:0+1" {
		t.Fatalf("fixed did not dispatch when batch_wait elapsed")
	}

	h.take()
	h2 := newHarness(t, 1)
	q2 := h2.queue(c)
	h2.submit(q2, 1, 1)
	h2.submit(q2, 2, 2)
	if bs := h2.take(); len(bs) != 1 || bs[0].Rows != 3 {
		t.Fatalf("fixed did not dispatch a full batch at once")
	}
}

func TestAdaptiveDecisions(t *testing.T) {
	const a, b = 2 * time.Millisecond, 100 * time.Microsecond
	t.Run("untrained dispatches at once", func(t *testing.T) {
		h := newHarness(t, 1)
		q := h.queue(cfg(Adaptive, 64))
		h.submit(q, 1, 1)
		if len(h.take()) != 1 {
			t.Fatal("an idle worker should get a lone request at once")
		}
	})
	t.Run("low load dispatches at once", func(t *testing.T) {
		h := newHarness(t, 1)
		q := h.queue(cfg(Adaptive, 64))
		train(h, q, a, b)
		for id := range 5 { // 100 rows/s: λa = 0.2
			h.submit(q, id, 1)
			bs := h.take()
			if len(bs) != 1 {
				t.Fatalf("request %d waited at low load", id)
			}
			bs[0].Done(a+b, true)
			h.clock.Advance(10 * time.Millisecond)
		}
	})
	t.Run("high load waits for rows but not past the fixed cost", func(t *testing.T) {
		h := newHarness(t, 1)
		q := h.queue(cfg(Adaptive, 64))
		train(h, q, a, b)
		// Arrivals at 5,000 rows/s: n* = λa/(1-λb) = 20 rows.
		h.b.SetSlots(0)
		for id := range 10 {
			h.submit(q, id, 1)
		}
		h.b.mu.Lock()
		q.rate = rateEstimator{value: 5000, at: h.clock.Now()}
		h.b.mu.Unlock()
		h.b.SetSlots(1)
		if n := len(h.take()); n != 0 {
			t.Fatalf("dispatched 10 rows while ~20 were expected within a fixed cost")
		}
		h.clock.Advance(a)
		bs := h.take()
		if len(bs) != 1 || bs[0].Rows != 10 {
			t.Fatalf("oldest request waited longer than the fixed cost a=%v", a)
		}
	})
	t.Run("never waits past the latency bound", func(t *testing.T) {
		h := newHarness(t, 1)
		c := cfg(Adaptive, 64)
		c.MaxLatency = 7 * time.Millisecond // full batch costs 8.4ms > bound: go at once
		q := h.queue(c)
		train(h, q, a, b)
		h.b.SetSlots(0)
		for id := range 20 {
			h.submit(q, id, 1)
		}
		h.b.SetSlots(1)
		if len(h.take()) != 1 {
			t.Fatal("adaptive waited although waiting would break max_latency")
		}
	})
	t.Run("full batch goes at once", func(t *testing.T) {
		h := newHarness(t, 1)
		q := h.queue(cfg(Adaptive, 4))
		train(h, q, a, b)
		h.b.SetSlots(0)
		for id := range 4 {
			h.submit(q, id, 1)
		}
		h.b.SetSlots(1)
		if bs := h.take(); len(bs) != 1 || bs[0].Rows != 4 {
			t.Fatal("a full batch must not wait")
		}
	})
}

func TestDeadlineRejection(t *testing.T) {
	t.Run("queued past the bound is rejected when it expires", func(t *testing.T) {
		h := newHarness(t, 1)
		c := cfg(Fixed, 4)
		c.MaxLatency = 10 * time.Millisecond
		q := h.queue(c)
		h.submit(q, 1, 4) // occupies the only worker
		running := h.take()
		h.submit(q, 2, 1)
		h.clock.Advance(10 * time.Millisecond)
		if len(h.rejected) != 0 {
			t.Fatal("rejected before its deadline and the 5% slack")
		}
		h.clock.Advance(time.Millisecond / 2)
		err := h.rejected[2]
		if !errors.Is(err, ErrOverloaded) {
			t.Fatalf("request 2: got %v, want an overload error the moment its deadline and slack passed", err)
		}
		var oe *OverloadError
		if !errors.As(err, &oe) || oe.RetryAfter <= 0 {
			t.Fatalf("overload error without Retry-After: %#v", err)
		}
		running[0].Done(time.Millisecond, true)
		if bs := h.take(); len(bs) != 0 {
			t.Fatalf("a rejected request was dispatched: %s", describe(bs[0]))
		}
	})
	t.Run("submit refuses what the queue ahead makes impossible", func(t *testing.T) {
		h := newHarness(t, 1)
		c := cfg(Adaptive, 64)
		c.MaxLatency = 27 * time.Millisecond
		q := h.queue(c)
		train(h, q, 2*time.Millisecond, 100*time.Microsecond)
		h.b.SetSlots(0)
		for id := range 3 { // three full batches ahead: 25.2 ms of work, then 2.1 ms of its own
			h.submit(q, id, 64)
		}
		_, err := q.Submit(99, Request{Rows: 1})
		if !errors.Is(err, ErrOverloaded) {
			t.Fatalf("got %v, want an immediate overload error", err)
		}
	})
	t.Run("full queue", func(t *testing.T) {
		h := newHarness(t, 0)
		c := cfg(Fixed, 4)
		c.MaxQueueSize = 2
		q := h.queue(c)
		h.submit(q, 1, 1)
		h.submit(q, 2, 1)
		_, err := q.Submit(3, Request{Rows: 1})
		if !errors.Is(err, ErrOverloaded) {
			t.Fatalf("got %v, want overload on a full queue", err)
		}
	})
}

func TestCancel(t *testing.T) {
	h := newHarness(t, 0)
	q := h.queue(cfg(Fixed, 8))
	h.submit(q, 1, 1)
	it := h.submit(q, 2, 1)
	h.submit(q, 3, 1)
	if !q.Cancel(it) {
		t.Fatal("cancel of a queued request should report it never runs")
	}
	if q.Cancel(it) {
		t.Fatal("second cancel reported success")
	}
	if s := q.Stats(); s.Depth != 2 || s.Rows != 2 {
		t.Fatalf("after cancel: %+v, want 2 requests, 2 rows", s)
	}
	h.b.SetSlots(1)
	h.clock.Advance(DefaultBatchWait)
	bs := h.take()
	if len(bs) != 1 || describe(bs[0]) != "1:0+1 3:0+1" {
		t.Fatalf("cancelled request was dispatched or others lost: %v", len(bs))
	}
	if q.Cancel(bs[0].Parts[0].Item) {
		t.Fatal("cancel of a dispatched request reported it never runs")
	}
}

func TestSetConfigWhileQueued(t *testing.T) {
	h := newHarness(t, 0)
	q := h.queue(cfg(Fixed, 2))
	for id := range 6 {
		h.submit(q, id, 1)
	}
	if err := q.SetConfig(Config{MaxBatchSize: 0}); err == nil {
		t.Fatal("max_batch_size 0 accepted")
	}
	if err := q.SetConfig(cfg(Adaptive, 6)); err != nil {
		t.Fatal(err)
	}
	h.b.SetSlots(1)
	if bs := h.take(); len(bs) != 1 || bs[0].Rows != 6 {
		t.Fatalf("new max_batch_size not applied to queued requests")
	}
}

func TestDrain(t *testing.T) {
	h := newHarness(t, 1)
	q := h.queue(cfg(None, 4))
	h.submit(q, 1, 1)
	h.submit(q, 2, 1)
	h.submit(q, 3, 1)
	first := h.take()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.b.Drain(ctx) }()
	// Wait until Drain has closed the batcher.
	for {
		if _, err := q.Submit(4, Request{Rows: 1}); errors.Is(err, ErrClosed) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	first[0].Done(time.Millisecond, true) // request 2 runs
	second := h.take()
	if len(second) != 1 {
		t.Fatal("drain did not keep serving queued requests")
	}
	cancel() // give up while 2 runs and 3 waits
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("drain returned %v", err)
	}
	if !errors.Is(h.rejected[3], ErrClosed) {
		t.Fatalf("request 3 left waiting after drain gave up: %v", h.rejected[3])
	}
	second[0].Done(time.Millisecond, true)
	if err := h.b.Drain(context.Background()); err != nil {
		t.Fatalf("second drain: %v", err)
	}
}

func TestRateEstimatorFollowsSteadyArrivals(t *testing.T) {
	var r rateEstimator
	now := t0
	for range 1000 { // 4,000 rows/s for 250 ms
		r.add(now, 1)
		now = now.Add(250 * time.Microsecond)
	}
	if got := r.rate(now); got < 3600 || got > 4400 {
		t.Fatalf("rate %.0f rows/s, want about 4000", got)
	}
	if got := r.rate(now.Add(time.Second)); got > 1 {
		t.Fatalf("rate %.2f rows/s a second after the last arrival, want about 0", got)
	}
}

func TestCostModelRecoversLinearCost(t *testing.T) {
	var m costModel
	for i := range 40 {
		n := 1 + i%17
		m.observe(t0, n, 0, 3*time.Millisecond+time.Duration(n)*250*time.Microsecond)
	}
	if got := m.estimate(10, 0); got < 5400*time.Microsecond || got > 5600*time.Microsecond {
		t.Fatalf("estimate(10) = %v, want 5.5ms", got)
	}
	var flat costModel
	for range 10 {
		flat.observe(t0, 1, 0, time.Millisecond)
	}
	if flat.a != 0 {
		t.Fatalf("one batch size seen: fixed cost should be unknown (0), got %v", flat.a)
	}
}

// TestConcurrentSubmitCancel drives the real clock from many goroutines with
// workers finishing batches at random: every request is dispatched exactly
// once or cancelled before dispatch, never both, and counts end at zero.
func TestConcurrentSubmitCancel(t *testing.T) {
	var seen sync.Map
	var dispatchedRows atomic.Int64
	work := make(chan *Batch[int], 1024)
	b := New(Options[int]{Slots: 3, Dispatch: func(bt *Batch[int]) { work <- bt }})
	q, _ := b.AddQueue("m", Config{Policy: Adaptive, MaxBatchSize: 16})
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := range 3 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			for {
				select {
				case bt := <-work:
					for _, p := range bt.Parts {
						if p.Offset+p.Rows == p.Item.Rows() {
							if _, dup := seen.LoadOrStore(p.Item.Payload, true); dup {
								t.Errorf("request %d dispatched twice", p.Item.Payload)
							}
						}
						dispatchedRows.Add(int64(p.Rows))
					}
					time.Sleep(time.Duration(rng.IntN(200)) * time.Microsecond)
					bt.Done(time.Millisecond, true)
				case <-stop:
					return
				}
			}
		})
	}
	var cancelledRows atomic.Int64
	var callers sync.WaitGroup
	for c := range 32 {
		callers.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(c), 2))
			for i := range 200 {
				id := c*1000 + i
				rows := 1 + rng.IntN(20)
				it, err := q.Submit(id, Request{Rows: rows})
				if err != nil {
					t.Errorf("submit: %v", err)
					return
				}
				if rng.IntN(4) == 0 && q.Cancel(it) {
					cancelledRows.Add(int64(rows))
				}
			}
		})
	}
	callers.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.Drain(ctx); err != nil {
		t.Fatalf("drain: %v", err)
	}
	close(stop)
	wg.Wait()
	if s := q.Stats(); s.Depth != 0 || s.Rows != 0 || s.InFlight != 0 {
		t.Fatalf("counts did not return to zero: %+v", s)
	}
	if dispatchedRows.Load() == 0 {
		t.Fatal("nothing dispatched")
	}
}

// finishBig runs one batch of rows rows to completion, so that the queue
// has just returned that many callers' results.
//
// backPerRow is how fast past bursts taught that callers come back, per
// row; 0 means they have not been seen to come back at all (open loop).
func finishBig(t *testing.T, h *harness, q *Queue[int], rows int, exec time.Duration, queuedMeanwhile int, backPerRow time.Duration) {
	t.Helper()
	h.b.SetSlots(0)
	for id := range rows {
		h.submit(q, 1000+id, 1)
	}
	h.b.SetSlots(1)
	bs := h.take()
	if len(bs) != 1 || bs[0].Rows != rows {
		t.Fatalf("setup: want one batch of %d rows", rows)
	}
	for id := range queuedMeanwhile {
		h.submit(q, 2000+id, 1) // arrived while the big batch ran
	}
	h.clock.Advance(exec)
	h.b.mu.Lock()
	if backPerRow > 0 {
		q.burst.tightness, q.burst.perRow, q.burst.timed = 0.1, backPerRow.Seconds(), true
	}
	h.b.mu.Unlock()
	bs[0].Done(exec, true)
}

// TestAdaptiveCollectsAClosedLoopBurst: when a big batch returns, its
// callers come back within microseconds. The request that waited behind
// that batch must not leave alone just before them.
func TestAdaptiveCollectsAClosedLoopBurst(t *testing.T) {
	const a, b = 2 * time.Millisecond, 100 * time.Microsecond
	h := newHarness(t, 0)
	q := h.queue(cfg(Adaptive, 16))
	train(h, q, a, b)
	finishBig(t, h, q, 15, 3500*time.Microsecond, 1, 5*time.Microsecond)
	if n := len(h.take()); n != 0 {
		t.Fatal("dispatched one request while its peers were about to return")
	}
	for id := 1; id < 16; id++ { // the burst: one every 5 µs
		h.clock.Advance(5 * time.Microsecond)
		h.submit(q, id, 1)
	}
	bs := h.take()
	if len(bs) != 1 || bs[0].Rows != 16 {
		t.Fatalf("got %d batches (first %d rows), want one full batch of 16", len(bs), rowsOf(bs))
	}
}

// TestAdaptiveBurstWaitIsBounded: callers that do not all come back are
// not waited for past the span a burst has taken.
func TestAdaptiveBurstWaitIsBounded(t *testing.T) {
	const a, b = 2 * time.Millisecond, 100 * time.Microsecond
	h := newHarness(t, 0)
	q := h.queue(cfg(Adaptive, 64))
	train(h, q, a, b)
	finishBig(t, h, q, 30, 5*time.Millisecond, 0, 5*time.Microsecond)
	for id := range 20 { // only 20 of the 30 come back
		h.clock.Advance(5 * time.Microsecond)
		h.submit(q, id, 1)
	}
	if n := len(h.take()); n != 0 {
		t.Fatal("cut the batch in the middle of a burst")
	}
	h.clock.Advance(500 * time.Microsecond) // 30 rows at 5 µs: 150 µs, ×1.5 + 50 µs
	bs := h.take()
	if len(bs) != 1 || bs[0].Rows != 20 {
		t.Fatalf("after the burst's span: %d batches (%d rows), want one of 20", len(bs), rowsOf(bs))
	}
}

// TestAdaptiveCostlyReturnsAlternate: where bringing every caller back
// would cost more than a batch's fixed cost, the waiting rows go at once,
// to run while the others come back.
func TestAdaptiveCostlyReturnsAlternate(t *testing.T) {
	const a, b = 2 * time.Millisecond, 100 * time.Microsecond
	h := newHarness(t, 0)
	q := h.queue(cfg(Adaptive, 64))
	train(h, q, a, b)
	finishBig(t, h, q, 16, 3600*time.Microsecond, 16, 90*time.Microsecond) // 32 back in 2.9 ms > a
	if bs := h.take(); len(bs) != 1 || bs[0].Rows != 16 {
		t.Fatalf("got %d batches (%d rows), want the 16 waiting rows at once", len(bs), rowsOf(bs))
	}
}

// TestAdaptiveOpenLoopDoesNotWaitForReturns: traffic whose batches never
// come back (the ratio stays 0) is dispatched at once when a batch ends.
func TestAdaptiveOpenLoopDoesNotWaitForReturns(t *testing.T) {
	const a, b = 2 * time.Millisecond, 100 * time.Microsecond
	h := newHarness(t, 0)
	q := h.queue(cfg(Adaptive, 64))
	train(h, q, a, b)
	h.b.mu.Lock()
	q.rate = rateEstimator{value: 100, at: h.clock.Now()} // n* < 1: no reason to wait
	h.b.mu.Unlock()
	finishBig(t, h, q, 30, 5*time.Millisecond, 3, 0)
	if bs := h.take(); len(bs) != 1 || bs[0].Rows != 3 {
		t.Fatalf("got %d batches (%d rows), want the 3 waiting rows at once", len(bs), rowsOf(bs))
	}
}

// TestClosedLoopIsLearnt: callers that come back soon after their batch
// are told from open-loop arrivals that come at the same average rate.
func TestClosedLoopIsLearnt(t *testing.T) {
	for _, tc := range []struct {
		name   string
		spread time.Duration // between one batch's callers coming back
		closed bool
	}{
		{"closed", 20 * time.Microsecond, true},
		{"open", 250 * time.Microsecond, false}, // 8 rows over the whole 2 ms cycle
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, 1)
			q := h.queue(cfg(Adaptive, 8))
			for round := range 40 {
				for id := range 8 {
					h.clock.Advance(tc.spread)
					h.submit(q, round*100+id, 1)
				}
				h.clock.Advance(time.Millisecond) // a timer may cut the batch
				for _, bt := range h.take() {
					bt.Done(time.Millisecond, true)
				}
			}
			st := q.Stats()
			if st.ClosedLoop != tc.closed {
				t.Fatalf("closed loop %v, want %v", st.ClosedLoop, tc.closed)
			}
			if tc.closed && (st.ReturnPerRow <= 0 || st.ReturnPerRow > tc.spread) {
				t.Fatalf("callers come back in %v a row, want about %v", st.ReturnPerRow, tc.spread)
			}
		})
	}
}

func rowsOf(bs []*Batch[int]) int {
	if len(bs) == 0 {
		return 0
	}
	return bs[0].Rows
}
