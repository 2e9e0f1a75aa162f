package engine

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/benchtop/benchtop/batcher"
)

// Request outcomes, the status label of benchtop_runner_requests_total.
const (
	statusOK         = "ok"
	statusError      = "error"
	statusOverloaded = "overloaded"
	statusTimeout    = "timeout"
	statusCancelled  = "cancelled"
	statusInvalid    = "invalid"
)

var allStatuses = []string{statusOK, statusError, statusOverloaded, statusTimeout, statusCancelled, statusInvalid}

// latencyBuckets span 100 µs to ~50 s: in-process no-ops to slow LLM calls.
var latencyBuckets = prometheus.ExponentialBuckets(0.0001, 2, 20)

// batchSizeBuckets are powers of two, so they suit any max_batch_size,
// including 1 (everything lands in le="1").
var batchSizeBuckets = prometheus.ExponentialBuckets(1, 2, 14)

// metrics are the engine's Prometheus collectors, registered once on the
// engine's Registerer and labelled per runner and method.
type metrics struct {
	requests  *prometheus.CounterVec
	e2e       *prometheus.HistogramVec
	queue     *prometheus.HistogramVec
	exec      *prometheus.HistogramVec
	batchSize *prometheus.HistogramVec
	restarts  *prometheus.CounterVec
	refusals  *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer, state stateFunc) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "benchtop_runner_requests_total",
			Help: "Requests to runner methods, by outcome (ok, error, overloaded, timeout, cancelled, invalid).",
		}, []string{"runner", "method", "status"}),
		e2e: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "benchtop_runner_request_duration_seconds",
			Help:    "Time from submit to result of successful requests, queueing included.",
			Buckets: latencyBuckets,
		}, []string{"runner", "method"}),
		queue: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "benchtop_runner_queue_duration_seconds",
			Help:    "Time requests waited in the batching queue before their batch started.",
			Buckets: latencyBuckets,
		}, []string{"runner", "method"}),
		exec: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "benchtop_runner_execution_duration_seconds",
			Help:    "Time one batch took to execute on a worker.",
			Buckets: latencyBuckets,
		}, []string{"runner", "method"}),
		batchSize: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "benchtop_runner_batch_size",
			Help:    "Rows (along the batch dim) per executed batch.",
			Buckets: batchSizeBuckets,
		}, []string{"runner", "method"}),
		restarts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "benchtop_runner_worker_restarts_total",
			Help: "Workers replaced after a panic, a crash or a hung call.",
		}, []string{"runner"}),
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "benchtop_runner_refusals_total",
			Help: "Requests refused as overloaded, by cause: predicted (at submit, forecast past max_latency), queue_full (max_queue_size), expired (accepted, then could not start in time).",
		}, []string{"runner", "method", "cause"}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.e2e, m.queue, m.exec, m.batchSize, m.restarts, m.refusals, &stateCollector{state}} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// methodMetrics are the children of one runner method, resolved once so the
// hot path does no label lookups.
type methodMetrics struct {
	byStatus              map[string]prometheus.Counter
	e2e, queue, exec, bsz prometheus.Observer
	refused               [batcher.CauseExpired + 1]prometheus.Counter // by cause
}

func (m *metrics) forMethod(runner, method string) *methodMetrics {
	mm := &methodMetrics{
		byStatus: make(map[string]prometheus.Counter, len(allStatuses)),
		e2e:      m.e2e.WithLabelValues(runner, method),
		queue:    m.queue.WithLabelValues(runner, method),
		exec:     m.exec.WithLabelValues(runner, method),
		bsz:      m.batchSize.WithLabelValues(runner, method),
	}
	for _, s := range allStatuses {
		mm.byStatus[s] = m.requests.WithLabelValues(runner, method, s)
	}
	for _, c := range []batcher.Cause{batcher.CausePredicted, batcher.CauseQueueFull, batcher.CauseExpired} {
		mm.refused[c] = m.refusals.WithLabelValues(runner, method, c.String())
	}
	return mm
}

// forget drops a removed runner's series so /metrics does not report ghosts.
func (m *metrics) forget(runner string) {
	l := prometheus.Labels{"runner": runner}
	m.requests.DeletePartialMatch(l)
	m.e2e.DeletePartialMatch(l)
	m.queue.DeletePartialMatch(l)
	m.exec.DeletePartialMatch(l)
	m.batchSize.DeletePartialMatch(l)
	m.restarts.DeletePartialMatch(l)
	m.refusals.DeletePartialMatch(l)
}

// stateCollector reads queue depth, in-flight batches and workers at scrape
// time from state the engine already holds, instead of mirroring it into
// gauges on every change.
type stateCollector struct {
	state stateFunc
}

// stateFunc reports every runner's live state to the three emitters.
type stateFunc func(emit func(runner, method string, depth, inflight int), workers func(runner string, n int), looping func(runner string, yes bool))

var (
	queueDepthDesc = prometheus.NewDesc("benchtop_runner_queue_depth", "Requests waiting in the batching queue.", []string{"runner", "method"}, nil)
	inFlightDesc   = prometheus.NewDesc("benchtop_runner_in_flight", "Batches executing now.", []string{"runner", "method"}, nil)
	workersDesc    = prometheus.NewDesc("benchtop_runner_workers", "Workers ready to execute batches.", []string{"runner"}, nil)
	loopingDesc    = prometheus.NewDesc("benchtop_runner_crash_looping", "1 while a runner's workers keep crashing right after they start.", []string{"runner"}, nil)
)

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- queueDepthDesc
	ch <- inFlightDesc
	ch <- workersDesc
	ch <- loopingDesc
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	c.state(func(runner, method string, depth, inflight int) {
		ch <- prometheus.MustNewConstMetric(queueDepthDesc, prometheus.GaugeValue, float64(depth), runner, method)
		ch <- prometheus.MustNewConstMetric(inFlightDesc, prometheus.GaugeValue, float64(inflight), runner, method)
	}, func(runner string, n int) {
		ch <- prometheus.MustNewConstMetric(workersDesc, prometheus.GaugeValue, float64(n), runner)
	}, func(runner string, yes bool) {
		v := 0.0
		if yes {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(loopingDesc, prometheus.GaugeValue, v, runner)
	})
}

// runnerRegisterer gives a runnable's custom collectors a runner label and
// remembers them, so the runner can unregister them when it goes away.
type runnerRegisterer struct {
	inner prometheus.Registerer
	mu    sync.Mutex
	cs    []prometheus.Collector
}

// newLabelledRegisterer registers on reg with label=value on every series,
// and remembers what it registered so that it can take it all back.
func newLabelledRegisterer(reg prometheus.Registerer, label, value string) *runnerRegisterer {
	return &runnerRegisterer{inner: prometheus.WrapRegistererWith(prometheus.Labels{label: value}, reg)}
}

// takeRegisterer removes name's registerer from m (under the caller's
// lock) and returns a function that unregisters what it registered, to
// call once the lock is released.
func takeRegisterer(m map[string]*runnerRegisterer, name string) (unregister func()) {
	c := m[name]
	delete(m, name)
	return func() {
		if c != nil {
			c.unregisterAll()
		}
	}
}

func (r *runnerRegisterer) Register(c prometheus.Collector) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.inner.Register(c); err != nil {
		return err
	}
	r.cs = append(r.cs, c)
	return nil
}

func (r *runnerRegisterer) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			panic(err)
		}
	}
}

func (r *runnerRegisterer) Unregister(c prometheus.Collector) bool { return r.inner.Unregister(c) }

func (r *runnerRegisterer) unregisterAll() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.cs {
		r.inner.Unregister(c)
	}
	r.cs = nil
}
