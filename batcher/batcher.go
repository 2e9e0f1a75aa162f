package batcher

import (
	"context"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// Options wires a Batcher to its owner.
type Options[T any] struct {
	// Clock defaults to the wall clock.
	Clock Clock
	// Dispatch hands a formed batch to a worker. It is called with no lock
	// held and must not block for long: the caller of Submit or of Batch.Done
	// runs it. The receiver must call Batch.Done exactly once.
	Dispatch func(*Batch[T])
	// Reject is told about queued requests the batcher gives up on (an
	// OverloadError when the latency bound can no longer be met, ErrClosed when
	// a drain times out). Called with no lock held, at most once per item, and
	// never for an item that already had rows dispatched.
	Reject func(payload T, err error)
	// Slots is the number of batches that may execute at once (ready workers).
	Slots int
}

// Batcher schedules the queues of one runner onto its workers' slots. Queues
// share the slots; when several are ready, the one whose oldest request is
// oldest goes first.
type Batcher[T any] struct {
	clock    Clock
	dispatch func(*Batch[T])
	reject   func(T, error)

	mu       sync.Mutex
	queues   []*Queue[T]
	slots    int
	busy     int
	closed   bool
	drained  chan struct{} // closed once closed and nothing queued or running
	timer    Timer
	timerAt  time.Time
	timerGen uint64
}

// New returns a Batcher with no queues.
func New[T any](opts Options[T]) *Batcher[T] {
	if opts.Clock == nil {
		opts.Clock = RealClock{}
	}
	if opts.Reject == nil {
		opts.Reject = func(T, error) {}
	}
	return &Batcher[T]{clock: opts.Clock, dispatch: opts.Dispatch, reject: opts.Reject, slots: opts.Slots}
}

// Item is one caller's request while the batcher holds it.
type Item[T any] struct {
	Payload  T
	rows     int
	taken    int // rows already dispatched: > 0 only for a request being split
	enqueued time.Time
	deadline time.Time // zero: no bound
	state    itemState
}

type itemState uint8

const (
	itemQueued itemState = iota
	itemDispatched
	itemCancelled
	itemRejected
)

// Rows is the size of the whole request along the batch dim.
func (it *Item[T]) Rows() int { return it.rows }

// Enqueued is when the request entered its queue.
func (it *Item[T]) Enqueued() time.Time { return it.enqueued }

// Part is the share of one request in a batch: rows [Offset, Offset+Rows) of it.
type Part[T any] struct {
	Item   *Item[T]
	Offset int
	Rows   int
}

// Batch is a group of parts to execute together.
type Batch[T any] struct {
	Queue  *Queue[T]
	Parts  []Part[T]
	Rows   int
	Formed time.Time
	b      *Batcher[T]
	done   atomic.Bool
}

// Done releases the batch's slot. A successful batch teaches the cost model
// how long rows take; a failed one does not, since failures often return fast.
func (bt *Batch[T]) Done(exec time.Duration, ok bool) {
	if bt.done.Swap(true) {
		return
	}

	b := bt.b
	b.mu.Lock()
	b.busy--
	bt.Queue.inflight--
	if ok {
		bt.Queue.cost.observe(bt.Rows, exec)
	}
	now := b.clock.Now()
	bt.Queue.returnStart(now, bt.Rows)
	out, rejected := b.scheduleAtLocked(now)
	b.mu.Unlock()
	b.emit(out, rejected)
}

// Queue is the FIFO of one method.
type Queue[T any] struct {
	b        *Batcher[T]
	name     string
	cfg      Config
	items    []*Item[T]
	head     int
	count    int // queued items with rows left to dispatch
	rows     int // rows left to dispatch
	inflight int // batches executing
	// The return burst after a batch finishes (see decideAdaptiveLocked):
	// chainEnd is its last moment (the finish, then each arrival within
	// burstGap of the one before), chainRows the rows it brought, chainBase
	// the rows of the batch that finished. returnRatio learns what share of
	// a batch's rows comes straight back: about 1 for closed-loop callers,
	// about 0 for open-loop traffic. expectRows is how many rows would wait
	// if the whole batch came back; 0 once a batch has taken them.
	chainEnd    time.Time
	chainOpen   bool
	chainRows   int
	chainBase   int
	returnRatio float64
	expectRows  int
	cost        costModel
	rate        rateEstimator
}

// AddQueue adds the queue of one method.
func (b *Batcher[T]) AddQueue(name string, cfg Config) (*Queue[T], error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("batching for %q: %w", name, err)
	}
	q := &Queue[T]{b: b, name: name, cfg: cfg}
	b.mu.Lock()
	b.queues = append(b.queues, q)
	b.mu.Unlock()
	return q, nil
}

// Name is the method the queue belongs to.
func (q *Queue[T]) Name() string { return q.name }

// Config returns the queue's current knobs.
func (q *Queue[T]) Config() Config {
	q.b.mu.Lock()
	defer q.b.mu.Unlock()
	return q.cfg
}

// SetConfig changes the knobs in place; queued requests keep their place and
// their original deadline.
func (q *Queue[T]) SetConfig(cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("batching for %q: %w", q.name, err)
	}
	b := q.b
	b.mu.Lock()
	q.cfg = cfg
	out, rejected := b.scheduleLocked()
	b.mu.Unlock()
	b.emit(out, rejected)
	return nil
}

// Submit queues a request of rows rows. It fails at once with an
// OverloadError when the queue is full or the request cannot be served
// within MaxLatency, and with ErrClosed after Close.
func (q *Queue[T]) Submit(payload T, rows int) (*Item[T], error) {
	if rows < 1 {
		return nil, fmt.Errorf("submit to %q: request has %d rows, want at least 1", q.name, rows)
	}
	b := q.b
	now := b.clock.Now()
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil, ErrClosed
	}
	cfg := q.cfg
	if cfg.MaxQueueSize > 0 && q.count >= cfg.MaxQueueSize {
		err := &OverloadError{
			Reason:     fmt.Sprintf("queue of %q is full (%d requests waiting, max_queue_size %d)", q.name, q.count, cfg.MaxQueueSize),
			RetryAfter: q.retryAfterLocked(),
		}
		b.mu.Unlock()
		return nil, err
	}
	it := &Item[T]{Payload: payload, rows: rows, enqueued: now}
	if cfg.MaxLatency > 0 {
		it.deadline = now.Add(cfg.MaxLatency)
		if wait := q.predictedWaitLocked(); q.cost.trained() && wait+q.cost.estimate(min(rows, cfg.MaxBatchSize)) > cfg.MaxLatency {
			err := &OverloadError{
				Reason: fmt.Sprintf("%q cannot serve it within max_latency %v (about %v of work queued ahead)",
					q.name, cfg.MaxLatency, wait.Round(time.Millisecond/10)),
				RetryAfter: q.retryAfterLocked(),
			}
			b.mu.Unlock()
			return nil, err
		}
	}
	q.items = append(q.items, it)
	q.count++
	q.rows += rows
	q.rate.add(now, rows)
	if q.chainOpen {
		if now.Sub(q.chainEnd) <= burstGap(q.cost.a) {
			q.chainEnd = now
			q.chainRows += rows
		} else {
			q.chainOpen = false // the pause ended the burst
		}
	}
	out, rejected := b.scheduleAtLocked(now)
	b.mu.Unlock()
	b.emit(out, rejected)
	return it, nil
}

// predictedWaitLocked is a lower bound on how long a new request waits before
// its batch starts: the full batches ahead of it, spread over all slots.
// Being a lower bound, a refusal based on it is never premature.
func (q *Queue[T]) predictedWaitLocked() time.Duration {
	if q.count == 0 && q.b.busy < q.b.slots {
		return 0
	}
	// Batches ahead, and the rows in each: with policy none every request
	// is a batch of its own.
	batches, rowsPer := q.rows/q.cfg.MaxBatchSize, q.cfg.MaxBatchSize
	if q.cfg.Policy == None && q.count > 0 {
		batches, rowsPer = q.count, max(1, q.rows/q.count)
	}
	slots := max(1, q.b.slots)
	return time.Duration(float64(batches) * float64(q.cost.estimate(rowsPer)) / float64(slots))
}

func (q *Queue[T]) retryAfterLocked() time.Duration {
	d := q.cost.estimate(q.cfg.MaxBatchSize)
	if d < time.Second {
		return time.Second
	}
	return d
}

// Cancel withdraws a request whose caller gave up. It reports whether the
// request was removed before any of its rows were dispatched, which means it
// will never execute. Rows of a split request that are still queued are
// withdrawn either way.
func (q *Queue[T]) Cancel(it *Item[T]) bool {
	b := q.b
	b.mu.Lock()
	defer b.mu.Unlock()
	if it.state != itemQueued {
		return false
	}
	untouched := it.taken == 0
	q.count--
	q.rows -= it.rows - it.taken
	it.state = itemCancelled // left in the slice; peekLocked skips it
	b.checkDrainedLocked()
	return untouched
}

// Depth is how many requests are waiting (cheaper than Stats).
func (q *Queue[T]) Depth() int {
	q.b.mu.Lock()
	defer q.b.mu.Unlock()
	return q.count
}

// Stats is a snapshot of a queue's state and what its policy has learned.
type Stats struct {
	Depth       int     // requests waiting
	Rows        int     // rows waiting
	InFlight    int     // batches executing
	ArrivalRate float64 // rows per second, recent
	CostFixed   time.Duration
	CostPerRow  time.Duration
	Trained     bool
}

// Stats returns the current queue state.
func (q *Queue[T]) Stats() Stats {
	b := q.b
	b.mu.Lock()
	defer b.mu.Unlock()
	return Stats{
		Depth:       q.count,
		Rows:        q.rows,
		InFlight:    q.inflight,
		ArrivalRate: q.rate.rate(b.clock.Now()),
		CostFixed:   time.Duration(q.cost.a * float64(time.Second)),
		CostPerRow:  time.Duration(q.cost.b * float64(time.Second)),
		Trained:     q.cost.trained(),
	}
}

// SetSlots changes how many batches may run at once (the ready workers).
// Lowering it never interrupts running batches; it only holds back new ones.
func (b *Batcher[T]) SetSlots(n int) {
	b.mu.Lock()
	b.slots = n
	out, rejected := b.scheduleLocked()
	b.mu.Unlock()
	b.emit(out, rejected)
}

// Slots returns the slot count and how many are busy.
func (b *Batcher[T]) Slots() (slots, busy int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.slots, b.busy
}

// Close stops accepting requests; queued ones are still served.
func (b *Batcher[T]) Close() {
	b.mu.Lock()
	b.closed = true
	b.checkDrainedLocked()
	b.mu.Unlock()
}

// Drain closes the batcher and waits until every queued request has been
// dispatched and every batch is done. If ctx ends first, the requests still
// queued are rejected with ErrClosed, so no caller is left waiting.
func (b *Batcher[T]) Drain(ctx context.Context) error {
	b.mu.Lock()
	b.closed = true
	if b.drained == nil {
		b.drained = make(chan struct{})
		b.checkDrainedLocked()
	}
	ch := b.drained
	b.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
	}
	var rejected []T
	b.mu.Lock()
	for _, q := range b.queues {
		for it := q.peekLocked(); it != nil; it = q.peekLocked() {
			if it.taken > 0 {
				// Part of it already runs; its owner sees that batch's
				// outcome, so withdraw only the rest.
				q.removeHeadLocked(it, itemCancelled)
				continue
			}
			q.removeHeadLocked(it, itemRejected)
			rejected = append(rejected, it.Payload)
		}
	}
	b.stopTimerLocked()
	b.checkDrainedLocked()
	b.mu.Unlock()
	for _, p := range rejected {
		b.reject(p, ErrClosed)
	}
	return ctx.Err()
}

func (b *Batcher[T]) checkDrainedLocked() {
	if !b.closed || b.drained == nil || b.busy > 0 {
		return
	}
	for _, q := range b.queues {
		if q.count > 0 {
			return
		}
	}
	select {
	case <-b.drained:
	default:
		close(b.drained)
	}
}

type rejection[T any] struct {
	payload T
	err     error
}

func (b *Batcher[T]) emit(out []*Batch[T], rejected []rejection[T]) {
	for _, r := range rejected {
		b.reject(r.payload, r.err)
	}
	for _, bt := range out {
		b.dispatch(bt)
	}
}

// scheduleLocked is the whole policy engine: reject what cannot make its
// deadline, dispatch what should go now, and arm the timer for the next
// moment a decision could change.
func (b *Batcher[T]) scheduleLocked() (out []*Batch[T], rejected []rejection[T]) {
	return b.scheduleAtLocked(b.clock.Now())
}

// scheduleAtLocked is scheduleLocked for a caller that already read the
// clock: reading it costs more than the rest of a submit on some machines.
func (b *Batcher[T]) scheduleAtLocked(now time.Time) (out []*Batch[T], rejected []rejection[T]) {
	var wake time.Time
	for {
		var pick *Queue[T]
		for _, q := range b.queues {
			rejected = q.rejectExpiredLocked(now, rejected)
			head := q.peekLocked()
			if head == nil {
				continue
			}
			if b.busy >= b.slots {
				// No slot: only a deadline can change anything before a
				// batch finishes.
				wake = earliest(wake, q.rejectAtLocked(head))
				continue
			}
			go_, at := q.decideLocked(now, head)
			if !go_ {
				wake = earliest(wake, at)
				continue
			}
			if pick == nil || head.enqueued.Before(pick.peekLocked().enqueued) {
				pick = q
			}
		}
		if pick == nil {
			break
		}
		out = append(out, pick.formLocked(now))
		b.busy++
		wake = time.Time{} // recomputed on the next pass with one slot fewer
	}
	b.armTimerLocked(wake)
	b.checkDrainedLocked()
	return out, rejected
}

func earliest(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}

// rejectAtLocked is when the head stops being servable in time.
func (q *Queue[T]) rejectAtLocked(head *Item[T]) time.Time {
	if head.deadline.IsZero() || head.taken > 0 {
		return time.Time{}
	}
	return head.deadline.Add(-q.cost.estimate(1))
}

func (q *Queue[T]) rejectExpiredLocked(now time.Time, rejected []rejection[T]) []rejection[T] {
	for {
		head := q.peekLocked()
		if head == nil {
			return rejected
		}
		at := q.rejectAtLocked(head)
		if at.IsZero() || now.Before(at) {
			return rejected
		}
		q.removeHeadLocked(head, itemRejected)
		rejected = append(rejected, rejection[T]{head.Payload, &OverloadError{
			Reason: fmt.Sprintf("%q could not start it within max_latency %v (waited %v)",
				q.name, q.cfg.MaxLatency, now.Sub(head.enqueued).Round(time.Millisecond/10)),
			RetryAfter: q.retryAfterLocked(),
		}})
	}
}

// decideLocked applies the queue's policy with a free slot at hand: dispatch
// now, or wait until the returned time (or the next event).
func (q *Queue[T]) decideLocked(now time.Time, head *Item[T]) (bool, time.Time) {
	cfg := q.cfg
	if q.rows >= cfg.MaxBatchSize || cfg.Policy == None {
		return true, time.Time{}
	}
	switch cfg.Policy {
	case Fixed:
		at := head.enqueued.Add(cfg.BatchWait)
		if !head.deadline.IsZero() {
			// A batch_wait longer than the latency bound must not turn
			// every lone request into a rejection.
			at = earliest(at, head.deadline.Add(-q.cost.estimate(q.rows)))
		}
		return !now.Before(at), at
	default:
		return q.decideAdaptiveLocked(now, head)
	}
}

// decideAdaptiveLocked waits only while waiting is expected to pay off.
//
// Holding a batch of n rows for dt costs n·dt of latency; a row that joins in
// that time is spared waiting for this batch to finish, about a + b·n. So
// waiting pays while λ·(a + b·n) > n, i.e. while n < n* = λa / (1 − λb), the
// size at which a batch is as large as what arrives during its own execution.
// Two bounds keep it honest: the oldest request never waits longer than the
// fixed cost a (past that, paying a again is cheaper: the ski-rental
// argument), and never past its deadline. At low load λa < 1, so a lone
// request goes at once.
//
// One pattern the rate cannot foresee: closed-loop callers (a client
// waiting for each answer before it sends again) come back in a burst
// microseconds after their batch returns. A batch formed at the start of
// that burst would carry one request and leave the rest to ride behind it,
// halving throughput. So where batches have been seen to come straight back
// (the learnt return ratio), right after a batch of k rows finishes and
// while fewer rows wait than the k plus those already queued, the policy
// lets the burst finish: it waits while arrivals keep coming less than a
// small gap apart. Open-loop traffic never teaches that ratio, and never
// pays the wait: which matters, because a timer that short really fires
// about a millisecond late when the process is otherwise idle.
func (q *Queue[T]) decideAdaptiveLocked(now time.Time, head *Item[T]) (bool, time.Time) {
	m := &q.cost
	if !m.trained() || m.a <= 0 {
		return true, time.Time{}
	}
	n := q.rows
	max := q.cfg.MaxBatchSize
	var bound time.Time // never wait past this: the deadline allows no more
	if !head.deadline.IsZero() {
		bound = head.deadline.Add(-m.estimate(max))
	}
	gap := burstGap(m.a)
	if q.returnRatio >= 0.5 && q.chainOpen && n < min(q.expectRows, max) && now.Sub(q.chainEnd) < gap {
		at := earliest(q.chainEnd.Add(gap), bound)
		if now.Before(at) {
			return false, at
		}
	}
	wake := earliest(head.enqueued.Add(time.Duration(m.a*float64(time.Second))), bound)
	if !now.Before(wake) {
		return true, time.Time{}
	}
	lambda := q.rate.rate(now)
	target := float64(max)
	if lb := lambda * m.b; lb < 1 {
		target = math.Min(target, lambda*m.a/(1-lb))
	}
	// Wait only for at least one more expected row: this keeps estimator
	// noise from holding back a lone closed-loop caller.
	if target >= float64(n+1) {
		return false, wake
	}
	return true, time.Time{}
}

// returnStart closes the last return burst's account and opens the next
// one, for a batch of rows that just finished.
func (q *Queue[T]) returnStart(now time.Time, rows int) {
	if q.chainBase > 0 {
		back := math.Min(1, float64(q.chainRows)/float64(q.chainBase))
		q.returnRatio = 0.7*q.returnRatio + 0.3*back
	}
	q.chainEnd, q.chainOpen, q.chainRows, q.chainBase = now, true, 0, rows
	q.expectRows = q.rows + rows
}

// burstGap is the pause in arrivals that ends a return burst. Closed-loop
// callers woken by one batch come back a few microseconds apart; open-loop
// arrivals are rarely that close, so a short gap tells the two apart and
// costs open-loop traffic next to nothing.
func burstGap(a float64) time.Duration {
	g := time.Duration(a / 16 * float64(time.Second))
	return min(max(g, 10*time.Microsecond), 50*time.Microsecond)
}

// formLocked takes up to MaxBatchSize rows from the head, FIFO. A request
// that alone exceeds the limit is cut; a request that merely does not fit
// waits for the next batch whole, so that its caller waits for one batch,
// not two.
func (q *Queue[T]) formLocked(now time.Time) *Batch[T] {
	max := q.cfg.MaxBatchSize
	q.expectRows = 0 // whatever burst there was rides in this batch
	bt := &Batch[T]{Queue: q, Formed: now, b: q.b}
	for {
		it := q.peekLocked()
		if it == nil {
			break
		}
		left := it.rows - it.taken
		room := max - bt.Rows
		if left > room {
			if left > max && room > 0 {
				bt.Parts = append(bt.Parts, Part[T]{Item: it, Offset: it.taken, Rows: room})
				it.taken += room
				q.rows -= room
				bt.Rows += room
			}
			break
		}
		bt.Parts = append(bt.Parts, Part[T]{Item: it, Offset: it.taken, Rows: left})
		q.removeHeadLocked(it, itemDispatched)
		it.taken = it.rows
		bt.Rows += left
		if q.cfg.Policy == None {
			break
		}
	}
	q.inflight++
	return bt
}

// peekLocked returns the oldest item with rows left, discarding cancelled ones.
func (q *Queue[T]) peekLocked() *Item[T] {
	for q.head < len(q.items) {
		it := q.items[q.head]
		if it.state == itemQueued {
			return it
		}
		q.items[q.head] = nil
		q.head++
	}
	q.items, q.head = q.items[:0], 0
	return nil
}

// removeHeadLocked takes the head item (it must be the head) out of the
// queue and its counts, leaving it in state.
func (q *Queue[T]) removeHeadLocked(it *Item[T], state itemState) {
	if it.state == itemQueued {
		q.count--
		q.rows -= it.rows - it.taken
	}
	it.state = state
	q.items[q.head] = nil
	q.head++
	if q.head > 64 && q.head*2 > len(q.items) {
		n := copy(q.items, q.items[q.head:])
		clear(q.items[n:])
		q.items, q.head = q.items[:n], 0
	}
}

func (b *Batcher[T]) armTimerLocked(at time.Time) {
	if at.Equal(b.timerAt) {
		return
	}
	b.stopTimerLocked()
	if at.IsZero() {
		return
	}
	b.timerAt = at
	b.timerGen++
	gen := b.timerGen
	b.timer = b.clock.AfterFunc(at.Sub(b.clock.Now()), func() { b.fire(gen) })
}

func (b *Batcher[T]) stopTimerLocked() {
	if b.timer != nil {
		b.timer.Stop()
		b.timer = nil
	}
	b.timerAt = time.Time{}
}

func (b *Batcher[T]) fire(gen uint64) {
	b.mu.Lock()
	if gen != b.timerGen {
		b.mu.Unlock()
		return
	}
	b.timer, b.timerAt = nil, time.Time{}
	out, rejected := b.scheduleLocked()
	b.mu.Unlock()
	b.emit(out, rejected)
}
