package batcher

import "time"

// returnBurst learns whether a queue's callers are closed-loop — each one
// waits for its answer, then sends again — and how long they take to come
// back, so that the adaptive policy can let a batch's callers return before
// it cuts the next batch.
//
// Without it, closed-loop callers settle into half batches: a batch formed
// while the previous batch's callers are still on their way back carries only
// those who already waited, the rest queue behind it, and every caller waits
// two batches. In process the callers come back within microseconds; over
// HTTP, with the answer written, read, and a new request parsed, they come
// back over hundreds of microseconds to milliseconds, spread by how many
// there are and how many cores serve them. No fixed gap between arrivals
// tells a spread-out return from ordinary traffic; their timing against the
// arrival rate does.
//
// A burst opens when a batch finishes and closes when as many rows have
// arrived as the batches that finished since it opened held. Its span is the
// time that took. Open-loop arrivals (Poisson, or any traffic that does not
// depend on answers) bring k rows in about k/λ, so span·λ/k is about 1; the
// callers of a closed loop come back in a small part of the cycle, so the
// same measure is well below 1. Its moving average, tightness, is the
// verdict.
//
// Waiting for a burst is not always worth it. Each caller's return — the
// answer written and read, a new request sent and parsed — costs CPU, r per
// row, and while the callers come back the worker is idle. With c callers in
// the loop, one batch per cycle takes a + b·c + r·c. Two batches in turn,
// each running while the other's callers come back, take 2a + b·c and leave
// no idle time. So the policy waits for the burst only where r·c < a: few
// callers, or cheap returns. Where returns cost more (many callers on few
// cores), it lets the batches alternate. r is learnt from tight bursts.
type returnBurst struct {
	start  time.Time // when the first batch of the open burst finished
	open   bool
	rows   int // rows arrived since start
	base   int // rows of the batches that finished since start
	expect int // rows that would wait if the burst came back whole; 0 once a batch has taken them

	tightness float64 // moving average of span·λ/base; starts at 1, open loop
	perRow    float64 // seconds of span per row, moving average over tight bursts
	timed     bool    // a tight burst has set perRow
}

// closedLoop is the tightness below which callers are taken to come back.
// Open-loop traffic averages 1 and, over the ten or so bursts the average
// spans, rarely strays below 0.5; closed-loop callers over HTTP measured 0.1
// to 0.3 on a loaded two-core machine.
const closedLoop = 0.5

func newReturnBurst() returnBurst { return returnBurst{tightness: 1} }

// finished accounts for a batch of rows that just finished while waiting
// rows were already queued. A batch finishing inside an open burst (several
// workers, or a burst that had not come back whole) joins it.
func (r *returnBurst) finished(now time.Time, rows, waiting int) {
	if !r.open {
		r.start, r.open, r.rows, r.base = now, true, 0, 0
	}
	r.base += rows
	r.expect = waiting + rows
}

// arrived accounts for a request of rows, already counted in rate; the
// rate is read only when a burst closes, not on every request.
func (r *returnBurst) arrived(now time.Time, rows int, rate *rateEstimator) {
	if !r.open {
		return
	}
	r.rows += rows
	if r.rows < r.base {
		return
	}
	r.open = false
	span := now.Sub(r.start).Seconds()
	tight := min(span*rate.rate(now)/float64(r.base), 2)
	r.tightness += 0.1 * (tight - r.tightness)
	if tight < closedLoop {
		perRow := span / float64(r.base)
		if !r.timed {
			r.perRow, r.timed = perRow, true
		}
		r.perRow += 0.25 * (perRow - r.perRow)
	}
}

// taken notes that a batch has been formed: whatever burst there was rides
// in it, so there is nothing more to wait for.
func (r *returnBurst) taken() { r.expect = 0 }

// waitFor says until when a batch of n waiting rows should wait for the rest
// of a return burst, if at all: only where callers have been seen to come
// back, only while fewer rows wait than would if they all did, only where
// bringing them all back costs less than fixed (the cost a batch pays
// whatever its size), and no longer than the burst is expected to take, with
// room for its spread.
func (r *returnBurst) waitFor(n, max int, fixed time.Duration) (time.Time, bool) {
	if r.tightness >= closedLoop || !r.timed || n >= min(r.expect, max) {
		return time.Time{}, false
	}
	if seconds(r.perRow*float64(r.expect)) >= fixed {
		return time.Time{}, false
	}
	span := seconds(r.perRow * float64(r.base))
	return r.start.Add(span + span/2 + 50*time.Microsecond), true
}
