package engine

import (
	"math"
	"math/bits"
	"sync"
	"sync/atomic"
	"time"
)

// The UI wants "what is happening now": percentiles over the last few
// seconds and a minute of per-second history, read ten times a second while
// thousands of requests a second are recorded. Prometheus histograms answer a
// different question (cumulative since start), so the engine keeps this small
// rolling window beside them. Recording is lock-free (atomic adds); only the
// per-second rollover takes a lock.

const (
	latBucketsPerOctave = 4
	latOctaves          = 28 // 1 µs · 2^28 ≈ 4.5 minutes
	latBuckets          = latBucketsPerOctave*latOctaves + 1
	histSeconds         = 16 // per-second histograms kept (percentile window ≤ 15 s)
	historySeconds      = 64 // per-second counters kept (sparklines)
	batchBuckets        = 14 // 1, 2, 3-4, 5-8, … 4097+: the le bounds of /metrics
)

// latHist is a log-scale latency histogram with ~19% wide buckets.
type latHist struct {
	counts [latBuckets]atomic.Uint64
}

func latBucket(d time.Duration) int {
	us := float64(d) / float64(time.Microsecond)
	if us < 1 {
		return 0
	}
	i := int(math.Log2(us)*latBucketsPerOctave) + 1
	return min(i, latBuckets-1)
}

// latUpper is the upper edge of bucket i.
func latUpper(i int) time.Duration {
	return time.Duration(math.Exp2(float64(i)/latBucketsPerOctave) * float64(time.Microsecond))
}

func (h *latHist) observe(d time.Duration) { h.counts[latBucket(d)].Add(1) }

func (h *latHist) reset() {
	for i := range h.counts {
		h.counts[i].Store(0)
	}
}

// batchBucket maps rows to its power-of-two bucket: 1, 2, 3-4, 5-8, … —
// upper bounds inclusive, as Prometheus's le buckets of
// benchtop_runner_batch_size and benchtop bench count them, so a full batch
// of a power-of-two max_batch_size lands in the bucket that ends at it.
func batchBucket(rows int) int {
	if rows <= 1 {
		return 0
	}
	return min(bits.Len(uint(rows-1)), batchBuckets-1)
}

type secondSlot struct {
	epoch              atomic.Int64 // unix second the slot holds
	e2e, queue, exec   latHist
	ok, failed, rows   atomic.Uint64
	batches, batchRows atomic.Uint64
	batchRequests      atomic.Uint64
	batchSizes         [batchBuckets]atomic.Uint64
}

type historySlot struct {
	epoch         atomic.Int64
	ok, failed    atomic.Uint64
	maxQueue      atomic.Int64
	batches, rows atomic.Uint64
}

// window is the rolling record of one method.
type window struct {
	mu      sync.Mutex // serialises slot rollover only
	slots   [histSeconds]secondSlot
	history [historySeconds]historySlot
}

func (w *window) slot(now time.Time) (*secondSlot, *historySlot) {
	sec := now.Unix()
	s := &w.slots[sec%histSeconds]
	h := &w.history[sec%historySeconds]
	if s.epoch.Load() != sec || h.epoch.Load() != sec {
		w.mu.Lock()
		if s.epoch.Load() != sec {
			s.e2e.reset()
			s.queue.reset()
			s.exec.reset()
			s.ok.Store(0)
			s.failed.Store(0)
			s.rows.Store(0)
			s.batches.Store(0)
			s.batchRows.Store(0)
			s.batchRequests.Store(0)
			for i := range s.batchSizes {
				s.batchSizes[i].Store(0)
			}
			s.epoch.Store(sec)
		}
		if h.epoch.Load() != sec {
			h.ok.Store(0)
			h.failed.Store(0)
			h.maxQueue.Store(0)
			h.batches.Store(0)
			h.rows.Store(0)
			h.epoch.Store(sec)
		}
		w.mu.Unlock()
	}
	return s, h
}

func (w *window) recordRequest(now time.Time, ok bool, rows int, e2e, queued time.Duration) {
	s, h := w.slot(now)
	if ok {
		s.ok.Add(1)
		h.ok.Add(1)
		s.e2e.observe(e2e)
		s.queue.observe(queued)
		s.rows.Add(uint64(rows))
	} else {
		s.failed.Add(1)
		h.failed.Add(1)
	}
}

func (w *window) recordBatch(now time.Time, rows, requests int, exec time.Duration) {
	s, h := w.slot(now)
	s.batchRequests.Add(uint64(requests))
	s.exec.observe(exec)
	s.batches.Add(1)
	s.batchRows.Add(uint64(rows))
	s.batchSizes[batchBucket(rows)].Add(1)
	h.batches.Add(1)
	h.rows.Add(uint64(rows))
}

func (w *window) recordQueueDepth(now time.Time, depth int) {
	_, h := w.slot(now)
	for {
		cur := h.maxQueue.Load()
		if int64(depth) <= cur || h.maxQueue.CompareAndSwap(cur, int64(depth)) {
			return
		}
	}
}

// Percentiles are latency quantiles; zero when nothing was recorded.
type Percentiles struct {
	P50, P90, P99 time.Duration
	Count         uint64
}

// WindowStats is the recent behaviour of one method.
type WindowStats struct {
	Span          time.Duration // how much time the numbers cover
	RequestsPerS  float64
	RowsPerS      float64
	ErrorsPerS    float64
	E2E, Queue    Percentiles
	Exec          Percentiles
	MeanBatchRows float64
	// MeanBatchRequests is how many callers shared a batch on average.
	MeanBatchRequests float64
	// BatchSizes counts batches by rows: bucket i holds sizes [2^i, 2^(i+1)).
	BatchSizes [batchBuckets]uint64
	// History is one entry per second, oldest first, the current (partial)
	// second last.
	History []SecondStats
}

// SecondStats is one second of history.
type SecondStats struct {
	Requests, Errors uint64
	Batches, Rows    uint64
	MaxQueue         int
}

// BatchBucketRange is the rows bucket i of WindowStats.BatchSizes holds,
// inclusive; hi 0 means no upper bound (the last bucket).
func BatchBucketRange(i int) (lo, hi int) {
	switch {
	case i <= 0:
		return 1, 1
	case i >= batchBuckets-1:
		return 1<<(batchBuckets-2) + 1, 0
	}
	return 1<<(i-1) + 1, 1 << i
}

// BatchBucketLabel names bucket i of WindowStats.BatchSizes ("1", "2",
// "3-4", "5-8", …, "4097+").
func BatchBucketLabel(i int) string {
	lo, hi := BatchBucketRange(i)
	switch {
	case hi == 0:
		return itoa(lo) + "+"
	case lo == hi:
		return itoa(lo)
	}
	return itoa(lo) + "-" + itoa(hi)
}

func itoa(n int) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			return string(b[i:])
		}
	}
}

// snapshot summarises the last span seconds (complete ones plus the current).
func (w *window) snapshot(now time.Time, span int, history int) WindowStats {
	span = max(1, min(span, histSeconds-1))
	history = max(0, min(history, historySeconds-1))
	sec := now.Unix()
	var e2e, queue, exec [latBuckets]uint64
	var st WindowStats
	var ok, failed, rows, batches, batchRows, batchReqs uint64
	for k := 0; k < span; k++ {
		s := &w.slots[(sec-int64(k))%histSeconds]
		if s.epoch.Load() != sec-int64(k) {
			continue
		}
		for i := range latBuckets {
			e2e[i] += s.e2e.counts[i].Load()
			queue[i] += s.queue.counts[i].Load()
			exec[i] += s.exec.counts[i].Load()
		}
		ok += s.ok.Load()
		failed += s.failed.Load()
		rows += s.rows.Load()
		batches += s.batches.Load()
		batchRows += s.batchRows.Load()
		batchReqs += s.batchRequests.Load()
		for i := range s.batchSizes {
			st.BatchSizes[i] += s.batchSizes[i].Load()
		}
	}
	// The current second is partial: count the span from its start.
	elapsed := time.Duration(span-1)*time.Second + now.Sub(time.Unix(sec, 0))
	if elapsed <= 0 {
		elapsed = time.Millisecond
	}
	st.Span = elapsed
	secs := elapsed.Seconds()
	st.RequestsPerS = float64(ok) / secs
	st.RowsPerS = float64(rows) / secs
	st.ErrorsPerS = float64(failed) / secs
	st.E2E = quantiles(&e2e)
	st.Queue = quantiles(&queue)
	st.Exec = quantiles(&exec)
	if batches > 0 {
		st.MeanBatchRows = float64(batchRows) / float64(batches)
		st.MeanBatchRequests = float64(batchReqs) / float64(batches)
	}
	if history > 0 {
		st.History = make([]SecondStats, history)
		for k := 0; k < history; k++ {
			want := sec - int64(history-1-k)
			h := &w.history[want%historySeconds]
			if h.epoch.Load() != want {
				continue
			}
			st.History[k] = SecondStats{
				Requests: h.ok.Load(), Errors: h.failed.Load(),
				Batches: h.batches.Load(), Rows: h.rows.Load(), MaxQueue: int(h.maxQueue.Load()),
			}
		}
	}
	return st
}

func quantiles(counts *[latBuckets]uint64) Percentiles {
	var total uint64
	for _, c := range counts {
		total += c
	}
	p := Percentiles{Count: total}
	if total == 0 {
		return p
	}
	p.P50 = quantile(counts, total, 0.50)
	p.P90 = quantile(counts, total, 0.90)
	p.P99 = quantile(counts, total, 0.99)
	return p
}

// quantile interpolates geometrically inside the bucket holding rank q.
func quantile(counts *[latBuckets]uint64, total uint64, q float64) time.Duration {
	rank := q * float64(total)
	var seen float64
	for i, c := range counts {
		if c == 0 {
			continue
		}
		if seen+float64(c) >= rank {
			if i == 0 {
				return latUpper(0)
			}
			lo, hi := float64(latUpper(i-1)), float64(latUpper(i))
			frac := (rank - seen) / float64(c)
			return time.Duration(lo * math.Pow(hi/lo, frac))
		}
		seen += float64(c)
	}
	return latUpper(latBuckets - 1)
}
