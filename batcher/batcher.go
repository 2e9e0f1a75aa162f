package batcher

import (
	"context"
	"fmt"
	"math"
	"slices"
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
	// MaxExec is the longest a batch may execute (the runner's timeout);
	// 0 means no bound. It bounds the guesses behind Retry-After hints.
	MaxExec time.Duration
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
	running  []*Batch[T] // executing, for the admission forecast
	slots    int
	busy     int
	maxExec  time.Duration // Options.MaxExec
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
	return &Batcher[T]{clock: opts.Clock, dispatch: opts.Dispatch, reject: opts.Reject, slots: opts.Slots, maxExec: opts.MaxExec}
}

// Request is what the batcher needs to know of a request besides its
// payload.
type Request struct {
	// Rows is the size of the request along the batch dim, at least 1.
	Rows int
	// Bytes is the size of its data. Where rows vary in size (texts,
	// variable-length tensors) the cost of a batch follows bytes as much
	// as rows; 0 if unknown.
	Bytes int64
	// Key groups requests that may share a batch: only requests with equal
	// keys are batched together (for tensors, the same dtype and the same
	// non-batch dims). The empty key is a group like any other. The batcher
	// does not keep the slice: a caller may build it in a reused buffer.
	Key []byte
}

// Item is one caller's request while the batcher holds it.
type Item[T any] struct {
	Payload  T
	rows     int
	bytes    int64
	taken    int // rows already dispatched: > 0 only for a request being split
	enqueued time.Time
	deadline time.Time // zero: no bound
	group    *group[T]
	state    itemState
	// probe: admitted to an idle method although the forecast said no, so
	// that the forecast learns from it; it goes at once and never expires.
	probe bool
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
	Bytes  int64
	Formed time.Time
	// Forecast is when the batch is expected to finish.
	Forecast time.Time
	b        *Batcher[T]
	done     atomic.Bool
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
	if i := slices.Index(b.running, bt); i >= 0 {
		last := len(b.running) - 1
		b.running[i] = b.running[last]
		b.running[last] = nil
		b.running = b.running[:last]
	}
	now := b.clock.Now()
	if ok {
		bt.Queue.cost.observe(now, bt.Rows, bt.Bytes, exec)
		bt.Queue.lastExec = exec
	}
	bt.Queue.burst.finished(now, bt.Rows, bt.Queue.rows)
	out, rejected := b.scheduleAtLocked(now)
	b.mu.Unlock()
	b.emit(out, rejected)
}

// Queue is the FIFO of one method. Requests wait in groups by key (see
// Request.Key): a batch takes rows of one group only, and the group whose
// oldest request is oldest goes first, so arrival order holds across
// shapes.
type Queue[T any] struct {
	b        *Batcher[T]
	name     string
	cfg      Config
	groups   []*group[T] // those with requests waiting
	count    int         // queued items with rows left to dispatch
	rows     int         // rows left to dispatch
	bytes    int64       // bytes left to dispatch
	vBatches int         // batches the waiting rows will make (see group)
	inflight int         // batches executing
	burst    returnBurst // closed-loop callers coming back (see burst.go)
	cost     costModel
	lastExec time.Duration // of the latest batch that succeeded
	rate     rateEstimator
	avgRows  float64 // rows per request, recent
}

// group is the FIFO of one key within a queue.
//
// It also keeps the batches its waiting rows will be cut into, the way
// formLocked will cut them (greedy, FIFO, a request that does not fit
// starts the next batch, one larger than a batch is split): vBatches of
// them, the last holding tailRows rows and tailBytes bytes. That is what
// the admission forecast prices, so requests of mixed sizes, which leave
// batches part empty, are priced as they will really run.
type group[T any] struct {
	key       string
	items     []*Item[T]
	head      int
	count     int
	rows      int
	bytes     int64
	vBatches  int
	tailRows  int
	tailBytes int64
	stale     bool // a request left from the middle: recount the batches
}

// AddQueue adds the queue of one method.
func (b *Batcher[T]) AddQueue(name string, cfg Config) (*Queue[T], error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("batching for %q: %w", name, err)
	}
	q := &Queue[T]{b: b, name: name, cfg: cfg, burst: newReturnBurst()}
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
	for _, g := range q.groups {
		g.stale = true // the batch size may have changed
	}
	out, rejected := b.scheduleLocked()
	b.mu.Unlock()
	b.emit(out, rejected)
	return nil
}

// Submit queues a request. It fails at once with an OverloadError when the
// queue is full or the request is forecast to miss MaxLatency, and with
// ErrClosed after Close.
//
// A request that fits in one batch and finds its method idle (nothing
// queued, a worker free) is never refused by the forecast: it runs, and
// the forecast learns from it. Without that rule a forecast spoiled by one
// slow request would refuse everything after it, and nothing refused can
// correct it.
func (q *Queue[T]) Submit(payload T, req Request) (*Item[T], error) {
	rows := req.Rows
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
			Cause:      CauseQueueFull,
			Reason:     fmt.Sprintf("queue of %q is full (%d requests waiting, max_queue_size %d)", q.name, q.count, cfg.MaxQueueSize),
			RetryAfter: q.retryAfterLocked(now, b.expectedBacklogLocked(now)/time.Duration(max(1, b.slots))),
			Bound:      cfg.MaxLatency,
		}
		b.mu.Unlock()
		return nil, err
	}
	if q.avgRows == 0 {
		q.avgRows = float64(rows)
	}
	q.avgRows += 0.1 * (float64(rows) - q.avgRows)
	g := q.groupLocked(req.Key)
	it := &Item[T]{Payload: payload, rows: rows, bytes: max(0, req.Bytes), enqueued: now, group: g}
	if cfg.MaxLatency > 0 {
		it.deadline = now.Add(cfg.MaxLatency)
	}
	if cfg.MaxLatency > 0 && q.cost.trained() {
		// Admit only what the forecast gives some slack, since a batch
		// rarely ends exactly on its forecast: what is let in should
		// finish in time, not be refused after waiting.
		if forecast := q.forecastLocked(now, g, rows, it.bytes); forecast > cfg.MaxLatency-cfg.MaxLatency/admitSlack {
			if q.count == 0 && b.busy < b.slots && rows <= cfg.MaxBatchSize {
				it.probe = true
			} else {
				err := &OverloadError{
					Cause: CausePredicted,
					Reason: fmt.Sprintf("%q cannot serve it within max_latency %v (forecast %v: %d requests queued, %d of %d workers busy)",
						q.name, cfg.MaxLatency, forecast.Round(time.Millisecond/10), q.count, b.busy, b.slots),
					RetryAfter: q.retryAfterLocked(now, forecast-cfg.MaxLatency),
					Forecast:   forecast,
					Bound:      cfg.MaxLatency,
				}
				q.dropIfEmptyLocked(g)
				b.mu.Unlock()
				return nil, err
			}
		}
	}
	q.appendLocked(g, it)
	q.rate.add(now, rows)
	q.burst.arrived(now, rows, &q.rate)
	out, rejected := b.scheduleAtLocked(now)
	b.mu.Unlock()
	b.emit(out, rejected)
	return it, nil
}

// admitSlack: the forecast of an admitted request must leave 1/admitSlack
// of max_latency free.
const admitSlack = 20

// groupLocked finds or makes the group of key.
func (q *Queue[T]) groupLocked(key []byte) *group[T] {
	for _, g := range q.groups {
		if g.key == string(key) {
			return g
		}
	}
	g := &group[T]{key: string(key)}
	q.groups = append(q.groups, g)
	return g
}

// keptGroups is how many groups a queue keeps once empty: the shapes in
// steady use stay, so that their requests cost no allocation, while a
// burst of one-off shapes does not leave the queue walking dead groups.
const keptGroups = 4

// dropIfEmptyLocked forgets groups with nothing waiting once there are
// more than keptGroups.
func (q *Queue[T]) dropIfEmptyLocked(g *group[T]) {
	if g != nil && g.count > 0 || len(q.groups) <= keptGroups {
		return
	}
	q.groups = slices.DeleteFunc(q.groups, func(g *group[T]) bool { return g.count == 0 })
}

func (q *Queue[T]) appendLocked(g *group[T], it *Item[T]) {
	g.items = append(g.items, it)
	g.count++
	g.rows += it.rows
	g.bytes += it.bytes
	q.count++
	q.rows += it.rows
	q.bytes += it.bytes
	if g.stale {
		q.recountLocked(g)
		return
	}
	before := g.vBatches
	g.pack(q.cfg, it.rows, it.bytes)
	q.vBatches += g.vBatches - before
}

// pack adds a request of rows and bytes to the group's planned batches by
// formLocked's rule.
func (g *group[T]) pack(cfg Config, rows int, bytes int64) {
	m := cfg.MaxBatchSize
	room := 0
	if g.vBatches > 0 && cfg.Policy != None {
		room = m - g.tailRows
	}
	switch {
	case rows <= room:
		g.tailRows += rows
		g.tailBytes += bytes
	case rows <= m:
		g.vBatches++
		g.tailRows, g.tailBytes = rows, bytes
	default:
		rest := rows
		if room > 0 {
			rest -= room // it fills the last batch first, then runs on
		}
		g.vBatches += (rest + m - 1) / m
		g.tailRows = rest - (rest-1)/m*m
		g.tailBytes = bytesShare(bytes, g.tailRows, rows)
	}
}

// recountLocked plans the group's batches again from its head.
func (q *Queue[T]) recountLocked(g *group[T]) {
	q.vBatches -= g.vBatches
	g.vBatches, g.tailRows, g.tailBytes, g.stale = 0, 0, 0, false
	for _, it := range g.items[g.head:] {
		if it.state != itemQueued {
			continue
		}
		left := it.rows - it.taken
		g.pack(q.cfg, left, int64(float64(it.bytes)*float64(left)/float64(it.rows)))
	}
	q.vBatches += g.vBatches
}

// forecastLocked is how long a new request of rows and bytes in group g
// would take from now to its answer: the work of the batches running and
// queued ahead of it (every queue of the batcher: what waits in them is
// older), spread over the slots, then its own batch — the one it would
// join, or its last chunk if it is split.
func (q *Queue[T]) forecastLocked(now time.Time, g *group[T], rows int, bytes int64) time.Duration {
	b := q.b
	b.recountStaleLocked()
	ahead := b.backlogLocked(now)
	m := q.cfg.MaxBatchSize
	room := 0
	if g.vBatches > 0 && q.cfg.Policy != None {
		room = m - g.tailRows
	}
	var own time.Duration
	var lastRows int
	var lastBytes int64
	if rows <= room {
		// It joins the last planned batch, already counted ahead.
		ahead -= q.cost.estimate(g.tailRows, g.tailBytes)
		lastRows, lastBytes = g.tailRows+rows, g.tailBytes+bytes
	} else {
		plan := group[T]{vBatches: g.vBatches, tailRows: g.tailRows}
		plan.pack(q.cfg, rows, bytes)
		lastRows = plan.tailRows
		lastBytes = bytesShare(bytes, lastRows, rows)
		own = q.cost.work(plan.vBatches-g.vBatches, rows, bytes) - q.cost.estimate(lastRows, lastBytes)
	}
	start := (ahead + own) / time.Duration(max(1, b.slots))
	// Requests that arrive before its batch starts join it and make it
	// longer: as many as the arrival rate brings in that time, in
	// requests of the usual size, while they fit.
	if q.cfg.Policy != None && start > 0 && lastRows < m && q.avgRows >= 1 {
		arriving := math.Min(q.rate.rate(now)*start.Seconds(), float64(m-lastRows))
		joining := math.Floor(arriving/q.avgRows) * q.avgRows
		lastBytes += int64(joining * float64(lastBytes) / float64(lastRows))
		lastRows += int(joining)
	}
	return start + q.cost.estimate(lastRows, lastBytes)
}

// recountStaleLocked plans again the batches of every group whose plan
// went stale, so that the queues' vBatches are current.
func (b *Batcher[T]) recountStaleLocked() {
	for _, o := range b.queues {
		for _, og := range o.groups {
			if og.stale {
				o.recountLocked(og)
			}
		}
	}
}

// backlogLocked is the work the slots have before them: what is left of
// the running batches and every queued batch.
func (b *Batcher[T]) backlogLocked(now time.Time) time.Duration {
	var d time.Duration
	for _, bt := range b.running {
		if left := bt.Forecast.Sub(now); left > 0 {
			d += left
		}
	}
	for _, o := range b.queues {
		if o.count > 0 {
			d += o.cost.work(o.vBatches, o.rows, o.bytes)
		}
	}
	return d
}

// expectedBacklogLocked is backlogLocked for a Retry-After hint: a queue
// whose cost model is not trained yet has its running and queued batches
// priced by guessBatchLocked instead of at nothing. The admission forecast
// never uses it: nothing is refused on a guess.
func (b *Batcher[T]) expectedBacklogLocked(now time.Time) time.Duration {
	b.recountStaleLocked()
	var d time.Duration
	for _, bt := range b.running {
		end := bt.Forecast
		if !bt.Queue.cost.trained() {
			end = bt.Formed.Add(bt.Queue.guessBatchLocked(now))
		}
		if left := end.Sub(now); left > 0 {
			d += left
		}
	}
	for _, o := range b.queues {
		switch {
		case o.count == 0:
		case o.cost.trained():
			d += o.cost.work(o.vBatches, o.rows, o.bytes)
		default:
			d += time.Duration(o.vBatches) * o.guessBatchLocked(now)
		}
	}
	return d
}

// retryAfterLocked is the wait to suggest to a refused caller: how long
// the excess work takes to clear, and never less than one full batch, so
// that refused callers do not come straight back into the same backlog.
func (q *Queue[T]) retryAfterLocked(now time.Time, excess time.Duration) time.Duration {
	var batch time.Duration
	if q.cost.trained() {
		batch = q.cost.estimate(q.cfg.MaxBatchSize, 0)
	} else {
		batch = q.guessBatchLocked(now)
	}
	return max(excess, batch, time.Millisecond)
}

// guessBatchLocked is what one batch of the queue is expected to cost
// before its cost model is trained (its first batches): the latest batch
// that succeeded, or more if a batch running now has taken longer — a
// batch that has run for t is expected to need about t more, so twice its
// age — and never more than MaxExec, past which a batch is stopped.
func (q *Queue[T]) guessBatchLocked(now time.Time) time.Duration {
	d := q.lastExec
	for _, bt := range q.b.running {
		if bt.Queue == q {
			d = max(d, 2*now.Sub(bt.Formed))
		}
	}
	if q.b.maxExec > 0 {
		d = min(d, q.b.maxExec)
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
	q.forgetLocked(it)
	it.state = itemCancelled // left in the slice; peekLocked skips it
	it.group.stale = true
	q.dropIfEmptyLocked(it.group)
	b.checkDrainedLocked()
	return untouched
}

// forgetLocked takes a queued item's remaining rows out of the counts.
func (q *Queue[T]) forgetLocked(it *Item[T]) {
	g := it.group
	left := it.rows - it.taken
	leftBytes := it.bytes
	if it.taken > 0 {
		leftBytes = bytesShare(it.bytes, left, it.rows)
	}
	g.count--
	g.rows -= left
	g.bytes -= leftBytes
	q.count--
	q.rows -= left
	q.bytes -= leftBytes
	if q.count == 0 {
		q.bytes = 0 // shares of split requests are rounded: no drift
	}
	if g.count == 0 {
		q.vBatches -= g.vBatches
		g.vBatches, g.tailRows, g.tailBytes, g.stale, g.bytes = 0, 0, 0, false, 0
	}
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
	Groups      int     // distinct shapes waiting
	InFlight    int     // batches executing
	ArrivalRate float64 // rows per second, recent
	CostFixed   time.Duration
	CostPerRow  time.Duration
	CostPerMiB  time.Duration
	Trained     bool
	// ClosedLoop: the callers have been seen to come back as soon as they
	// are answered; ReturnPerRow is how long that takes, per row of the
	// batch that answered them (see burst.go).
	ClosedLoop   bool
	ReturnPerRow time.Duration
}

func (q *Queue[T]) waitingGroupsLocked() int {
	n := 0
	for _, g := range q.groups {
		if g.count > 0 {
			n++
		}
	}
	return n
}

// Stats returns the current queue state.
func (q *Queue[T]) Stats() Stats {
	b := q.b
	b.mu.Lock()
	defer b.mu.Unlock()
	return Stats{
		Depth:        q.count,
		Rows:         q.rows,
		Groups:       q.waitingGroupsLocked(),
		InFlight:     q.inflight,
		ArrivalRate:  q.rate.rate(b.clock.Now()),
		CostFixed:    seconds(q.cost.a),
		CostPerRow:   seconds(q.cost.b),
		CostPerMiB:   seconds(q.cost.c),
		Trained:      q.cost.trained(),
		ClosedLoop:   q.burst.tightness < closedLoop,
		ReturnPerRow: seconds(q.burst.perRow),
	}
}

// SetMaxExec changes Options.MaxExec (the runner's timeout changed).
func (b *Batcher[T]) SetMaxExec(d time.Duration) {
	b.mu.Lock()
	b.maxExec = d
	b.mu.Unlock()
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
		for _, g := range slices.Clone(q.groups) {
			for it := g.peekLocked(); it != nil; it = g.peekLocked() {
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
		var pickGroup *group[T]
		var pickHead *Item[T]
		free := b.freeAtLocked(now)
		for _, q := range b.queues {
			if q.count == 0 {
				continue
			}
			rejected = q.rejectExpiredLocked(now, free, rejected)
			g, head := q.headLocked()
			if head == nil {
				continue
			}
			if b.busy >= b.slots {
				// No slot: only a deadline can change anything before a
				// batch finishes.
				wake = earliest(wake, q.rejectAtLocked(g, head))
				continue
			}
			go_, at := q.decideLocked(now, g, head)
			if !go_ {
				wake = earliest(wake, at)
				continue
			}
			if pick == nil || head.enqueued.Before(pickHead.enqueued) {
				pick, pickGroup, pickHead = q, g, head
			}
		}
		if pick == nil {
			break
		}
		bt := pick.formLocked(now, pickGroup)
		out = append(out, bt)
		b.running = append(b.running, bt)
		b.busy++
		wake = time.Time{} // recomputed on the next pass with one slot fewer
	}
	for _, q := range b.queues {
		if len(q.groups) > keptGroups {
			q.dropIfEmptyLocked(nil)
		}
	}
	b.armTimerLocked(wake)
	b.checkDrainedLocked()
	return out, rejected
}

// freeAtLocked is when the next slot is forecast to be free: now if one
// is, else the earliest forecast end of a running batch.
func (b *Batcher[T]) freeAtLocked(now time.Time) time.Time {
	if b.busy < b.slots {
		return now
	}
	var at time.Time
	for _, bt := range b.running {
		at = earliest(at, bt.Forecast)
	}
	if at.Before(now) {
		return now
	}
	return at
}

func earliest(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}

// headLocked is the oldest waiting request of the queue and its group.
func (q *Queue[T]) headLocked() (*group[T], *Item[T]) {
	var pg *group[T]
	var ph *Item[T]
	for _, g := range q.groups {
		if h := g.peekLocked(); h != nil && (ph == nil || h.enqueued.Before(ph.enqueued)) {
			pg, ph = g, h
		}
	}
	return pg, ph
}

// batchOfLocked is the rows and bytes of the batch the head of g would
// go in if it were formed now.
func (g *group[T]) batchOfLocked(max int) (int, int64) {
	if g.rows <= max {
		return g.rows, g.bytes
	}
	return max, bytesShare(g.bytes, max, g.rows)
}

// rejectAtLocked is when the head stops being servable in time: when its
// batch, started then, would end past the deadline.
func (q *Queue[T]) rejectAtLocked(g *group[T], head *Item[T]) time.Time {
	if head.deadline.IsZero() || head.taken > 0 || head.probe {
		return time.Time{}
	}
	// A request already waited for is served a little late rather than
	// refused late: up to the admission slack past its bound.
	return head.deadline.Add(q.cfg.MaxLatency/admitSlack - q.cost.estimate(g.batchOfLocked(q.cfg.MaxBatchSize)))
}

// rejectExpiredLocked refuses the heads that can no longer make their
// deadline even if a batch took them the moment a slot is free.
func (q *Queue[T]) rejectExpiredLocked(now, free time.Time, rejected []rejection[T]) []rejection[T] {
	for _, g := range q.groups {
		rejected = q.rejectExpiredGroupLocked(g, now, free, rejected)
	}
	return rejected
}

func (q *Queue[T]) rejectExpiredGroupLocked(g *group[T], now, free time.Time, rejected []rejection[T]) []rejection[T] {
	for {
		head := g.peekLocked()
		if head == nil {
			return rejected
		}
		at := q.rejectAtLocked(g, head)
		if at.IsZero() || free.Before(at) {
			return rejected
		}
		waited := now.Sub(head.enqueued)
		late := free.Sub(at)
		q.removeHeadLocked(head, itemRejected)
		rejected = append(rejected, rejection[T]{head.Payload, &OverloadError{
			Cause: CauseExpired,
			Reason: fmt.Sprintf("%q could not start it in time for max_latency %v (waited %v in the queue)",
				q.name, q.cfg.MaxLatency, waited.Round(time.Millisecond/10)),
			RetryAfter: q.retryAfterLocked(now, late),
			Forecast:   free.Sub(head.enqueued) + q.cost.estimate(g.batchOfLocked(q.cfg.MaxBatchSize)),
			Bound:      q.cfg.MaxLatency,
		}})
	}
}

// decideLocked applies the queue's policy with a free slot at hand: dispatch
// now, or wait until the returned time (or the next event).
func (q *Queue[T]) decideLocked(now time.Time, g *group[T], head *Item[T]) (bool, time.Time) {
	cfg := q.cfg
	if g.rows >= cfg.MaxBatchSize || cfg.Policy == None || head.probe {
		return true, time.Time{}
	}
	switch cfg.Policy {
	case Fixed:
		at := head.enqueued.Add(cfg.BatchWait)
		if !head.deadline.IsZero() {
			// A batch_wait longer than the latency bound must not turn
			// every lone request into a rejection.
			at = earliest(at, head.deadline.Add(-q.cost.estimate(g.rows, g.bytes)))
		}
		return !now.Before(at), at
	default:
		return q.decideAdaptiveLocked(now, g, head)
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
// waiting for each answer before it sends again) come back in a burst after
// their batch returns. A batch formed at the start of that burst would carry
// those who already waited and leave the rest to ride behind it, halving
// throughput. So where bursts have been seen to come back (returnBurst),
// right after a batch finishes and while fewer rows wait than would if its
// callers all came back, the policy waits for them, for about as long as a
// burst has taken. Open-loop traffic never looks like that, and never pays
// the wait.
func (q *Queue[T]) decideAdaptiveLocked(now time.Time, g *group[T], head *Item[T]) (bool, time.Time) {
	m := &q.cost
	if !m.trained() {
		return true, time.Time{}
	}
	n := g.rows
	max := q.cfg.MaxBatchSize
	perRow := float64(g.bytes) / float64(g.rows)
	var bound time.Time // never wait past this: the deadline allows no more
	if !head.deadline.IsZero() {
		bound = head.deadline.Add(-m.estimate(max, int64(perRow*float64(max))))
	}
	// Batches of one size alone cannot tell a fixed cost from a cost per
	// row, and a closed loop of few callers runs nothing else; the cost of
	// one more batch of one row bounds the fixed cost from above.
	fixed := m.estimate(1, int64(perRow))
	if at, ok := q.burst.waitFor(n, max, fixed); ok {
		if at = earliest(at, bound); now.Before(at) {
			return false, at
		}
	}
	if m.a <= 0 {
		return true, time.Time{}
	}
	wake := earliest(head.enqueued.Add(seconds(m.a)), bound)
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

// formLocked takes up to MaxBatchSize rows from the head of group g, FIFO.
// A request that alone exceeds the limit is cut; a request that merely
// does not fit waits for the next batch whole, so that its caller waits
// for one batch, not two.
func (q *Queue[T]) formLocked(now time.Time, g *group[T]) *Batch[T] {
	max := q.cfg.MaxBatchSize
	q.burst.taken()
	bt := &Batch[T]{Queue: q, Formed: now, b: q.b}
	for {
		it := g.peekLocked()
		if it == nil {
			break
		}
		left := it.rows - it.taken
		room := max - bt.Rows
		if left > room {
			if left > max && room > 0 {
				share := bytesShare(it.bytes, room, it.rows)
				bt.Parts = append(bt.Parts, Part[T]{Item: it, Offset: it.taken, Rows: room})
				it.taken += room
				g.rows -= room
				g.bytes -= share
				q.rows -= room
				q.bytes -= share
				bt.Rows += room
				bt.Bytes += share
			}
			break
		}
		share := it.bytes
		if it.taken > 0 {
			share = bytesShare(it.bytes, left, it.rows)
		}
		bt.Parts = append(bt.Parts, Part[T]{Item: it, Offset: it.taken, Rows: left})
		bt.Rows += left
		bt.Bytes += share
		q.removeHeadLocked(it, itemDispatched)
		it.taken = it.rows
		if q.cfg.Policy == None {
			break
		}
	}
	// The batch is the first one planned; the rest keep their plan.
	if g.count > 0 && !g.stale {
		g.vBatches--
		q.vBatches--
		if g.vBatches < 1 {
			g.stale = true
		}
	}
	q.inflight++
	bt.Forecast = now.Add(q.cost.estimate(bt.Rows, bt.Bytes))
	return bt
}

// peekLocked returns the oldest item with rows left, discarding cancelled ones.
func (g *group[T]) peekLocked() *Item[T] {
	for g.head < len(g.items) {
		it := g.items[g.head]
		if it.state == itemQueued {
			return it
		}
		g.items[g.head] = nil
		g.head++
	}
	g.items, g.head = g.items[:0], 0
	return nil
}

// removeHeadLocked takes the head item of its group (it must be the head)
// out of the queue and its counts, leaving it in state.
func (q *Queue[T]) removeHeadLocked(it *Item[T], state itemState) {
	g := it.group
	if it.state == itemQueued {
		q.forgetLocked(it)
		if state != itemDispatched {
			g.stale = true
		}
	}
	it.state = state
	g.items[g.head] = nil
	g.head++
	if g.head > 64 && g.head*2 > len(g.items) {
		n := copy(g.items, g.items[g.head:])
		clear(g.items[n:])
		g.items, g.head = g.items[:n], 0
	}
	// Empty groups are pruned by scheduleAtLocked, not here: callers may
	// be walking q.groups.
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

// bytesShare is the bytes of part rows out of whole rows that hold b bytes,
// rows being taken as equal in size.
func bytesShare(b int64, part, whole int) int64 {
	return int64(float64(b) * float64(part) / float64(whole))
}
