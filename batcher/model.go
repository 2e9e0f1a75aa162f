package batcher

import (
	"math"
	"time"
)

// costModel fits the execution time of a batch as a + b·rows by least squares
// over recent batches, older ones fading out so that the fit follows a model
// whose speed changes (warm-up, thermal throttling, a neighbour on the GPU).
type costModel struct {
	samples            int
	s0, s1, s2, t0, t1 float64 // decayed Σw, Σw·n, Σw·n², Σw·d, Σw·n·d
	a, b               float64 // seconds, seconds per row
}

const (
	costDecay        = 0.95 // weight of the history at each new batch (~20 batches of memory)
	costMinSamples   = 4
	costMinVariation = 0.25 // rows²: below this every batch had about the same size and a, b are not separable
)

func (m *costModel) observe(rows int, d time.Duration) {
	n, sec := float64(rows), d.Seconds()
	m.s0 = m.s0*costDecay + 1
	m.s1 = m.s1*costDecay + n
	m.s2 = m.s2*costDecay + n*n
	m.t0 = m.t0*costDecay + sec
	m.t1 = m.t1*costDecay + n*sec
	m.samples++
	m.refit()
}

func (m *costModel) refit() {
	det := m.s0*m.s2 - m.s1*m.s1
	if det/(m.s0*m.s0) < costMinVariation {
		// With one batch size seen, assume no fixed cost: the policy then
		// dispatches greedily, which is never a bad guess. Varying load soon
		// yields varying sizes and a real fit.
		m.a, m.b = 0, m.t0/m.s1
		return
	}
	b := (m.s0*m.t1 - m.s1*m.t0) / det
	a := (m.t0 - b*m.s1) / m.s0
	switch {
	case b < 0:
		a, b = m.t0/m.s0, 0
	case a < 0:
		a, b = 0, m.t1/m.s2
	}
	m.a, m.b = a, b
}

func (m *costModel) trained() bool { return m.samples >= costMinSamples }

// estimate is the predicted execution time of a batch of rows.
func (m *costModel) estimate(rows int) time.Duration {
	if !m.trained() {
		return 0
	}
	return time.Duration((m.a + m.b*float64(rows)) * float64(time.Second))
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
