package batcher

import (
	"math"
	"time"
)

// costModel fits the execution time of a batch as a + b·rows + c·bytes by
// least squares over recent batches, older ones fading out so that the fit
// follows a model whose speed changes (warm-up, thermal throttling, a
// neighbour on the GPU).
//
// Bytes matter where rows vary in size: one 15 MB text is one row, and a
// model that priced it as a row would price every later one-line text at
// seconds. With the bytes term the outlier explains itself and leaves the
// per-row cost alone. Where every row has the same size, bytes and rows
// carry the same information and the fit keeps only one of them.
//
// The coefficients are kept non-negative: the fit tries every subset of
// the three terms and keeps the one that explains the batches best, the
// simplest on a tie (a fixed cost of zero first, which makes the adaptive
// policy dispatch greedily: never a bad guess while the evidence is thin).
type costModel struct {
	samples int
	last    time.Time // of the latest observation, for the time decay
	fitAt   time.Time // of the latest refit
	// Decayed sums of the normal equations over x = (1, rows, mb):
	// xx[i][j] = Σw·xi·xj, xt[i] = Σw·xi·t, tt = Σw·t².
	xx [3][3]float64
	xt [3]float64
	tt float64
	// a seconds, b seconds per row, c seconds per megabyte.
	a, b, c float64
	// The largest batch seen, in rows and bytes: a batch no larger than
	// these whose time is far off the fit is an outlier, not news.
	maxRows  int
	maxBytes int64
}

const (
	costDecay      = 0.95 // weight of the history at each new batch (~20 batches of memory)
	costHalfLife   = 30 * time.Second
	costMinSamples = 4
	costRefitEvery = time.Millisecond
	// An ordinary-sized batch counts as at most outlierFactor times its
	// forecast plus outlierFloor: a worker stopped for seconds, a GC pause
	// or a swap storm says nothing about the next batch, and one such
	// batch must not make the forecast refuse everything after it. A
	// model that really got slower still moves the fit by that factor per
	// batch.
	outlierFactor = 4
	outlierFloor  = time.Millisecond
	// Below this many rows² of variance every batch had about the same
	// size, and a fixed cost cannot be told from a per-row one.
	costMinRowVariation = 0.25
	// Below this relative variance bytes follow rows (or are constant)
	// and add nothing a fit can use.
	costMinByteVariation = 1e-3
	bytesPerUnit         = 1 << 20 // the c term is per MiB, for a well-conditioned fit
)

func (m *costModel) observe(now time.Time, rows int, bytes int64, d time.Duration) {
	w := costDecay
	if !m.last.IsZero() {
		// Evidence also fades with time, so that a method idle for minutes
		// does not judge today's requests by one long-past outlier.
		if dt := now.Sub(m.last); dt > 0 {
			w *= math.Exp2(-dt.Seconds() / costHalfLife.Seconds())
		}
	}
	m.last = now
	if m.samples >= costMinSamples-1 && rows <= m.maxRows && bytes <= 2*m.maxBytes+4096 {
		limit := outlierFactor*m.estimateAny(rows, bytes) + outlierFloor
		d = min(d, limit)
	}
	m.maxRows, m.maxBytes = max(m.maxRows, rows), max(m.maxBytes, bytes)
	x := [3]float64{1, float64(rows), float64(bytes) / bytesPerUnit}
	t := d.Seconds()
	for i := range 3 {
		for j := range 3 {
			m.xx[i][j] = m.xx[i][j]*w + x[i]*x[j]
		}
		m.xt[i] = m.xt[i]*w + x[i]*t
	}
	m.tt = m.tt*w + t*t
	m.samples++
	// Refitting tries seven term sets; for batches of microseconds, once
	// a millisecond follows the model just as well at a fraction of the
	// cost.
	if m.samples < 2*costMinSamples || now.Sub(m.fitAt) >= costRefitEvery || now.Before(m.fitAt) {
		m.fitAt = now
		m.refit()
	}
}

// The terms of the fit, as bits of a term set.
const (
	termFixed = 1 << iota // a
	termRows              // b·rows
	termBytes             // c·MiB
)

// costSubsets are the term sets the fit tries, simplest last; on a tie the
// later one wins.
var costSubsets = [...]int{
	termFixed | termRows | termBytes,
	termRows | termBytes,
	termFixed | termBytes,
	termFixed | termRows,
	termBytes,
	termFixed,
	termRows,
}

func (m *costModel) refit() {
	s0 := m.xx[0][0]
	rowVar := m.xx[1][1]/s0 - sq(m.xx[0][1]/s0)
	meanB := m.xx[0][2] / s0
	byteVar := m.xx[2][2]/s0 - sq(meanB)
	rowsVary := rowVar >= costMinRowVariation
	bytesVary := meanB > 0 && byteVar >= costMinByteVariation*sq(meanB)
	best, bestSSE := [3]float64{}, math.Inf(1)
	found := false
	for _, set := range costSubsets {
		// A term beside another is separable only where its unit varies;
		// a bytes term needs bytes at all.
		switch {
		case set&termRows != 0 && set != termRows && !rowsVary,
			set&termBytes != 0 && set != termBytes && !bytesVary,
			set&termBytes != 0 && meanB == 0:
			continue
		}
		coef, ok := m.solve(set)
		if !ok {
			continue
		}
		sse := m.sse(coef)
		// Ties within rounding go to the simpler set, later in the list.
		if !found || sse <= bestSSE+1e-9*math.Max(m.tt, 1e-18) {
			best, bestSSE, found = coef, sse, true
		}
	}
	m.a, m.b, m.c = best[0], best[1], best[2]
}

func sq(x float64) float64 { return x * x }

// solve is least squares restricted to the terms in set; it fails when the
// system is singular or any coefficient comes out negative.
func (m *costModel) solve(terms int) ([3]float64, bool) {
	var set []int
	for i := range 3 {
		if terms&(1<<i) != 0 {
			set = append(set, i)
		}
	}
	n := len(set)
	var a [3][4]float64
	for r, i := range set {
		for c, j := range set {
			a[r][c] = m.xx[i][j]
		}
		a[r][n] = m.xt[i]
	}
	// Gaussian elimination with partial pivoting on at most 3×3.
	for col := range n {
		p := col
		for r := col + 1; r < n; r++ {
			if math.Abs(a[r][col]) > math.Abs(a[p][col]) {
				p = r
			}
		}
		if math.Abs(a[p][col]) <= 1e-9*m.xx[set[col]][set[col]] {
			return [3]float64{}, false
		}
		a[col], a[p] = a[p], a[col]
		for r := range n {
			if r == col {
				continue
			}
			f := a[r][col] / a[col][col]
			for c := col; c <= n; c++ {
				a[r][c] -= f * a[col][c]
			}
		}
	}
	var coef [3]float64
	for r, i := range set {
		v := a[r][n] / a[r][r]
		if v < 0 || math.IsNaN(v) || math.IsInf(v, 0) {
			return [3]float64{}, false
		}
		coef[i] = v
	}
	return coef, true
}

// sse is the weighted sum of squared residuals of coef over the history.
func (m *costModel) sse(coef [3]float64) float64 {
	s := m.tt
	for i := range 3 {
		s -= 2 * coef[i] * m.xt[i]
		for j := range 3 {
			s += coef[i] * coef[j] * m.xx[i][j]
		}
	}
	return s
}

func (m *costModel) trained() bool { return m.samples >= costMinSamples }

// estimate is the predicted execution time of a batch of rows and bytes.
func (m *costModel) estimate(rows int, bytes int64) time.Duration {
	if !m.trained() {
		return 0
	}
	return m.estimateAny(rows, bytes)
}

// estimateAny is estimate before the model counts as trained.
func (m *costModel) estimateAny(rows int, bytes int64) time.Duration {
	return seconds(m.a + m.b*float64(rows) + m.c*float64(bytes)/bytesPerUnit)
}

// work is the predicted execution time of batches batches holding rows rows
// and bytes bytes in all: the model is linear, so their sizes do not matter.
func (m *costModel) work(batches, rows int, bytes int64) time.Duration {
	if !m.trained() || batches == 0 {
		return 0
	}
	return seconds(m.a*float64(batches) + m.b*float64(rows) + m.c*float64(bytes)/bytesPerUnit)
}

func seconds(s float64) time.Duration {
	if s > float64(math.MaxInt64)/float64(time.Second) {
		return time.Duration(math.MaxInt64)
	}
	return time.Duration(s * float64(time.Second))
}

// rateEstimator tracks arrivals in rows per second with exponential decay, so
// it answers "how busy is it right now" rather than "on average today".
type rateEstimator struct {
	value float64 // rows per second as of at
	at    time.Time
}

const rateWindow = 25 * time.Millisecond

func (r *rateEstimator) rate(now time.Time) float64 {
	if r.at.IsZero() {
		return 0
	}
	dt := now.Sub(r.at).Seconds()
	if dt <= 0 {
		return r.value
	}
	return r.value * math.Exp(-dt/rateWindow.Seconds())
}

func (r *rateEstimator) add(now time.Time, rows int) {
	r.value = r.rate(now) + float64(rows)/rateWindow.Seconds()
	r.at = now
}
