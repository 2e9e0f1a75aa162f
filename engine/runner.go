package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/benchtop/benchtop/batcher"
	"github.com/benchtop/benchtop/engine/tensor"
	"github.com/benchtop/benchtop/gpu/placement"
)

// Runner is a named instance of a runnable with its own worker pool and one
// batching queue per method. It is safe for concurrent use.
type Runner struct {
	name    string
	typ     *RunnableType
	deps    runnerDeps
	methods map[string]*method
	order   []*method // declaration order
	b       *batcher.Batcher[*call]
	work    chan *batcher.Batch[*call]
	custom  *runnerRegisterer

	// stopped is closed when the runner closes. Each worker hands its
	// instance (New, Call) a context that ends with it, so closing aborts
	// them.
	stopped chan struct{}
	wg      sync.WaitGroup // every worker goroutine, abandoned ones too

	mu       sync.Mutex
	cfg      RunnerConfig
	plan     WorkerPlan
	workers  map[int]*worker
	nextID   int
	ready    int
	restarts int
	startErr error
	// crashLoop says why workers keep dying; cleared by a successful batch.
	crashLoop string
	looping   atomic.Bool
	readyN    atomic.Int32  // mirrors ready for the hot path
	readyCh   chan struct{} // closed when the first worker is ready
	startedCh chan struct{} // closed when the first worker is ready or has failed to start
	closing   bool
}

type runnerDeps struct {
	metrics *metrics
	events  *EventLog
	logger  *slog.Logger
	numCPU  int
	gpus    func() placement.Visible
}

// visible is what GPUs the process may use; none without a monitor.
func (d runnerDeps) visible() placement.Visible {
	if d.gpus == nil {
		return placement.Visible{}
	}
	return d.gpus()
}

type method struct {
	spec MethodSpec
	// keyParts says what a request's batching key spells out for each
	// input (see groupKey); nil when every request has the empty key.
	keyParts []keyPart
	// single: one input and one output, the case Run serves.
	single   bool
	refusals refusalLog
	q        *batcher.Queue[*call]
	metrics  *methodMetrics
	window   window
	totals   [6]atomic.Uint64 // indexed by statusIndex
	cum      cumulative
	sizesMu  sync.Mutex
	sizes    map[int]*batchSizeTotals // by exact rows per batch, since start
}

// cumulative sums since start, for Triton-style statistics.
type cumulative struct {
	successNs, failNs, queueNs, execNs, executions atomic.Uint64
	lastNs                                         atomic.Int64 // unix ns of the last completed request
}

type batchSizeTotals struct {
	count, execNs uint64
}

var statusIndex = map[string]int{statusOK: 0, statusError: 1, statusOverloaded: 2, statusTimeout: 3, statusCancelled: 4, statusInvalid: 5}

type worker struct {
	id        int
	quit      chan struct{}
	ready     bool
	retired   bool
	lastCrash string // set by the worker's own goroutine before it reports a crash
	gpus      []int  // device ids placed on (visible numbering)
	pid       int    // of the process behind the instance, if any
}

// call is one Run in flight.
type call struct {
	m *method
	// in holds a value per input of the method; for a method of one input
	// it points into one, so that a request costs no extra allocation.
	in   []tensor.Value
	one  [1]tensor.Value
	rows int
	done chan callResult // buffered: a worker never blocks on a caller that left
	sent atomic.Bool
	// left and deadline are the caller's context's Done channel (nil if it
	// can never leave) and deadline, for instances bound by their callers.
	left     <-chan struct{}
	deadline time.Time

	// Requests larger than max_batch_size come back in pieces.
	asmMu  sync.Mutex
	pieces []piece
	got    int
}

type piece struct {
	offset int
	outs   []tensor.Value // a value per output of the method
}

type callResult struct {
	out  []tensor.Value // a value per output of the method
	err  error
	info CallInfo
}

// CallInfo tells a caller how its request was served.
type CallInfo struct {
	BatchRows     int           // rows in the (last) batch it ran in
	BatchRequests int           // requests sharing that batch
	Queued        time.Duration // waited before its batch started
	Exec          time.Duration // that batch's execution time
}

func (c *call) finish(r callResult) {
	if c.sent.CompareAndSwap(false, true) {
		c.done <- r
	}
}

// newRunner builds a planned runner and starts its workers.
func newRunner(deps runnerDeps, pr plannedRunner, custom *runnerRegisterer) (*Runner, error) {
	typ, cfg, specs := pr.typ, pr.cfg, pr.specs
	plan, err := PlanWorkers(typ, cfg, deps.numCPU, deps.visible())
	if err != nil {
		return nil, err
	}
	r := &Runner{
		name:      cfg.Name,
		typ:       typ,
		deps:      deps,
		cfg:       cfg,
		plan:      plan,
		methods:   map[string]*method{},
		work:      make(chan *batcher.Batch[*call], 2*MaxWorkers),
		custom:    custom,
		workers:   map[int]*worker{},
		readyCh:   make(chan struct{}),
		startedCh: make(chan struct{}),
		stopped:   make(chan struct{}),
	}
	r.b = batcher.New(batcher.Options[*call]{
		MaxExec:  cfg.Timeout,
		Dispatch: func(bt *batcher.Batch[*call]) { r.work <- bt },
		Reject: func(c *call, err error) {
			if errors.Is(err, batcher.ErrClosed) {
				// It never ran: Engine.Run may retry it on a new generation.
				err = fmt.Errorf("%w: %w", ErrRunnerClosed, err)
			}
			err = overloadFrom(err)
			r.noteRefusal(c.m, err)
			c.finish(callResult{err: err})
		},
	})
	for _, s := range specs {
		q, err := r.b.AddQueue(s.Name, cfg.batchingFor(s))
		if err != nil {
			return nil, fmt.Errorf("runner %q: %w", cfg.Name, err)
		}
		m := &method{
			spec: s, q: q, metrics: deps.metrics.forMethod(cfg.Name, s.Name), sizes: map[int]*batchSizeTotals{},
			keyParts: keyParts(s), single: len(s.Inputs) == 1 && len(s.Outputs) == 1,
		}
		r.methods[s.Name] = m
		r.order = append(r.order, m)
	}
	r.mu.Lock()
	r.reconcileLocked()
	r.mu.Unlock()
	return r, nil
}

func methodNames(specs []MethodSpec) string {
	names := make([]string, len(specs))
	for i, s := range specs {
		names[i] = s.Name
	}
	return strings.Join(names, ", ")
}

// Name is the runner's name.
func (r *Runner) Name() string { return r.name }

// Runnable is the type the runner runs.
func (r *Runner) Runnable() *RunnableType { return r.typ }

// Methods lists the runner's method signatures in declaration order.
func (r *Runner) Methods() []MethodSpec {
	out := make([]MethodSpec, len(r.order))
	for i, m := range r.order {
		out[i] = m.spec
	}
	return out
}

// Method returns one method's signature.
func (r *Runner) Method(name string) (MethodSpec, bool) {
	m, ok := r.methods[name]
	if !ok {
		return MethodSpec{}, false
	}
	return m.spec, true
}

// Config returns the runner's current config, live changes included.
func (r *Runner) Config() RunnerConfig {
	r.mu.Lock()
	defer r.mu.Unlock()
	cfg := r.cfg
	cfg.Methods = map[string]batcher.Config{}
	for _, m := range r.order {
		if m.spec.Batchable {
			cfg.Methods[m.spec.Name] = m.q.Config()
		}
	}
	return cfg
}

// Run calls a method of one input and one output with in and blocks until
// the caller's own result, an error, or the end of ctx. A request
// cancelled while queued never executes. RunInfo calls any method.
func (r *Runner) Run(ctx context.Context, method string, in tensor.Value) (tensor.Value, error) {
	m, err := r.lookup(method)
	if err != nil {
		return tensor.Value{}, err
	}
	if !m.single {
		m.count(statusInvalid)
		return tensor.Value{}, &MethodError{r.name, method, fmt.Errorf("%w: %s and returns %s: call RunInfo with a value per input",
			ErrInvalidInput, takes(&m.spec), count(m.spec.Outputs, "output"))}
	}
	outs, _, err := r.run(ctx, m, []tensor.Value{in})
	if err != nil {
		return tensor.Value{}, err
	}
	return outs[0], nil
}

// RunInfo calls method with in, a value per input of the method in the
// order of its spec (the zero Value for an absent optional input), and
// returns a value per output, in the same way, and which batch served the
// request. The caller may reuse in once it returns.
func (r *Runner) RunInfo(ctx context.Context, method string, in []tensor.Value) ([]tensor.Value, CallInfo, error) {
	m, err := r.lookup(method)
	if err != nil {
		return nil, CallInfo{}, err
	}
	return r.run(ctx, m, in)
}

func (r *Runner) lookup(name string) (*method, error) {
	m, ok := r.methods[name]
	if !ok {
		return nil, &MethodError{r.name, name, fmt.Errorf("%w %q (methods: %s)", ErrUnknownMethod, name, methodNames(r.Methods()))}
	}
	return m, nil
}

func (r *Runner) run(ctx context.Context, m *method, in []tensor.Value) ([]tensor.Value, CallInfo, error) {
	rows, err := checkInputs(&m.spec, in)
	if err != nil {
		m.count(statusInvalid)
		return nil, CallInfo{}, &MethodError{r.name, m.spec.Name, err}
	}
	if err := ctx.Err(); err != nil {
		m.count(statusCancelled)
		return nil, CallInfo{}, err
	}
	if r.readyN.Load() == 0 {
		// No worker, and the last attempt to start one failed: say why
		// now rather than let the request wait out its latency bound.
		r.mu.Lock()
		startErr := r.startErr
		r.mu.Unlock()
		if startErr != nil {
			m.count(statusError)
			return nil, CallInfo{}, &MethodError{r.name, m.spec.Name, fmt.Errorf("%w: %w", ErrNotReady, startErr)}
		}
	}
	var keyBuf [64]byte
	key, err := m.groupKey(keyBuf[:0], in)
	if err != nil {
		m.count(statusInvalid)
		return nil, CallInfo{}, &MethodError{r.name, m.spec.Name, err}
	}
	c := &call{m: m, rows: rows, done: make(chan callResult, 1), left: ctx.Done()}
	c.deadline, _ = ctx.Deadline()
	// A copy, so that the caller's slice need not outlive the call (and a
	// literal one stays on its stack).
	c.in = append(c.one[:0], in...)
	it, err := m.q.Submit(c, batcher.Request{Rows: rows, Bytes: sizeOfAll(in), Key: key})
	if err != nil {
		if errors.Is(err, batcher.ErrClosed) {
			err = fmt.Errorf("%w: %w", ErrRunnerClosed, err)
		}
		err = overloadFrom(err)
		r.noteRefusal(m, err)
		m.record(time.Now(), rows, callResult{err: err})
		return nil, CallInfo{}, &MethodError{r.name, m.spec.Name, err}
	}
	start := it.Enqueued() // the batcher's clock reading, not a second one
	select {
	case res := <-c.done:
		m.record(start, rows, res)
		if res.err != nil {
			return nil, res.info, &MethodError{r.name, m.spec.Name, res.err}
		}
		return res.out, res.info, nil
	case <-ctx.Done():
		// Withdraw it if still queued; if it already runs, the worker's
		// result lands in the buffered channel and is dropped.
		m.q.Cancel(it)
		m.count(statusCancelled)
		return nil, CallInfo{}, ctx.Err()
	}
}

func statusOf(err error) string {
	switch {
	case err == nil:
		return statusOK
	case errors.Is(err, ErrOverloaded):
		return statusOverloaded
	case errors.Is(err, ErrTimeout):
		return statusTimeout
	case errors.Is(err, ErrInvalidInput):
		return statusInvalid
	case errors.Is(err, context.Canceled):
		return statusCancelled
	default:
		return statusError
	}
}

func (m *method) count(status string) {
	m.metrics.byStatus[status].Inc()
	m.totals[statusIndex[status]].Add(1)
}

func (m *method) record(start time.Time, rows int, res callResult) {
	now := time.Now()
	status := statusOf(res.err)
	m.count(status)
	e2e := now.Sub(start)
	if status == statusOK {
		m.metrics.e2e.Observe(e2e.Seconds())
		m.metrics.queue.Observe(res.info.Queued.Seconds())
	}
	m.window.recordRequest(now, status == statusOK, rows, e2e, res.info.Queued)
	if status == statusOK {
		m.cum.successNs.Add(uint64(e2e))
		m.cum.queueNs.Add(uint64(res.info.Queued))
	} else {
		m.cum.failNs.Add(uint64(e2e))
	}
	m.cum.lastNs.Store(now.UnixNano())
}

func (m *method) recordBatch(now time.Time, rows, requests int, exec time.Duration) {
	m.metrics.exec.Observe(exec.Seconds())
	m.metrics.bsz.Observe(float64(rows))
	m.window.recordBatch(now, rows, requests, exec)
	m.window.recordQueueDepth(now, m.q.Depth())
	m.cum.execNs.Add(uint64(exec))
	m.cum.executions.Add(1)
	m.sizesMu.Lock()
	t := m.sizes[rows]
	if t == nil {
		t = &batchSizeTotals{}
		m.sizes[rows] = t
	}
	t.count++
	t.execNs += uint64(exec)
	m.sizesMu.Unlock()
}

// SetBatching changes one method's batching knobs while traffic flows.
// Non-batchable methods always run one request per call.
func (r *Runner) SetBatching(method string, cfg batcher.Config) error {
	m, ok := r.methods[method]
	if !ok {
		return fmt.Errorf("runner %q: %w %q (methods: %s)", r.name, ErrUnknownMethod, method, methodNames(r.Methods()))
	}
	if !m.spec.Batchable {
		return fmt.Errorf("runner %q: method %q is not batchable", r.name, method)
	}
	if err := m.q.SetConfig(cfg); err != nil {
		return fmt.Errorf("runner %q: %w", r.name, err)
	}
	return nil
}

// SetWorkers resizes the pool while traffic flows: new workers join once
// their instance is ready; removed ones finish their batch first.
func (r *Runner) SetWorkers(n int) error {
	if n < 1 || n > MaxWorkers {
		return fmt.Errorf("runner %q: workers %d: want 1 to %d", r.name, n, MaxWorkers)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closing {
		return fmt.Errorf("runner %q: %w", r.name, ErrRunnerClosed)
	}
	r.cfg.Workers = n
	r.plan.Workers = n
	r.reconcileLocked()
	return nil
}

// WaitReady blocks until a worker is ready to serve, or ctx ends.
func (r *Runner) WaitReady(ctx context.Context) error {
	select {
	case <-r.readyCh:
		return nil
	case <-ctx.Done():
		r.mu.Lock()
		err := r.startErr
		r.mu.Unlock()
		if err != nil {
			return fmt.Errorf("runner %q not ready: %w", r.name, err)
		}
		return fmt.Errorf("runner %q not ready: %w", r.name, ctx.Err())
	}
}

func (r *Runner) markStartedLocked() {
	select {
	case <-r.startedCh:
	default:
		close(r.startedCh)
	}
}

// waitStarted blocks until a worker is ready (nil) or the first attempt to
// start one has failed (its error), or ctx ends.
func (r *Runner) waitStarted(ctx context.Context) error {
	select {
	case <-r.startedCh:
	case <-ctx.Done():
		return fmt.Errorf("runner %q not ready: %w", r.name, ctx.Err())
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ready > 0 {
		return nil
	}
	return r.startErr
}

// Ready reports whether at least one worker can serve.
func (r *Runner) Ready() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ready > 0
}

// reconcileLocked starts or retires workers until the pool matches the plan.
func (r *Runner) reconcileLocked() {
	if r.closing {
		return
	}
	for len(r.workers) < r.plan.Workers {
		w := &worker{id: r.nextID, quit: make(chan struct{})}
		if len(r.plan.GPUs.Slots) > 0 {
			live := make([][]int, 0, len(r.workers))
			for _, o := range r.workers {
				live = append(live, o.gpus)
			}
			w.gpus = r.plan.GPUs.Next(live)
		}
		r.nextID++
		r.workers[w.id] = w
		r.wg.Add(1)
		go r.runWorker(w)
	}
	if extra := len(r.workers) - r.plan.Workers; extra > 0 {
		// Retire workers still starting first: they cost nothing to stop.
		ws := make([]*worker, 0, len(r.workers))
		for _, w := range r.workers {
			ws = append(ws, w)
		}
		sort.Slice(ws, func(i, j int) bool {
			if ws[i].ready != ws[j].ready {
				return !ws[i].ready
			}
			return ws[i].id > ws[j].id
		})
		for _, w := range ws[:extra] {
			r.retireLocked(w)
		}
	}
}

func (r *Runner) retireLocked(w *worker) {
	if w.retired {
		return
	}
	w.retired = true
	close(w.quit)
	delete(r.workers, w.id)
	if w.ready {
		w.ready = false
		r.setReadyLocked(r.ready - 1)
	}
}

func (r *Runner) setReadyLocked(n int) {
	r.ready = n
	r.readyN.Store(int32(n))
	r.b.SetSlots(n)
	if n > 0 {
		select {
		case <-r.readyCh:
		default:
			close(r.readyCh)
		}
		r.markStartedLocked()
	}
}

type outcome uint8

const (
	outcomeOK outcome = iota
	outcomeCrashed
	outcomeAbandoned
)

// timeoutGrace is how long past the timeout a call that ignores its context
// may run before the worker is given up on.
const timeoutGrace = time.Second

func (r *Runner) runWorker(w *worker) {
	defer r.wg.Done()
	ctx, cancel := r.untilStopped()
	defer cancel()
	backoff := 100 * time.Millisecond
	crashes := 0
	for {
		inst, err := r.newInstance(ctx, w)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			r.mu.Lock()
			r.startErr = err
			r.markStartedLocked()
			r.mu.Unlock()
			r.deps.events.Add(slog.LevelError, r.name, fmt.Sprintf("worker %d failed to start (retry in %v): %v", w.id, backoff, err))
			select {
			case <-w.quit:
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 10*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
		r.mu.Lock()
		if w.retired {
			r.mu.Unlock()
			closeInstance(inst)
			return
		}
		r.startErr = nil
		w.ready = true
		if p, ok := inst.(PIDReporter); ok {
			w.pid = p.PID()
		}
		r.setReadyLocked(r.ready + 1)
		r.mu.Unlock()

		readyAt := time.Now()
		out := r.serve(ctx, w, inst)
		closeInstance(inst)
		if out != outcomeCrashed {
			return
		}
		// A worker that dies soon after starting, again and again, is in a
		// crash loop: back off, and say so where users look (UI, /readyz,
		// metrics) instead of restarting silently forever.
		if time.Since(readyAt) < crashWindow {
			crashes++
		} else {
			crashes = 1
		}
		delay := min(crashBackoff<<min(crashes-1, 10), 10*time.Second)
		r.mu.Lock()
		r.restarts++
		r.deps.metrics.restarts.WithLabelValues(r.name).Inc()
		if w.ready {
			w.ready = false
			r.setReadyLocked(r.ready - 1)
		}
		if crashes >= crashLoopThreshold {
			r.crashLoop = fmt.Sprintf("worker %d crashed %d times in a row, last: %s", w.id, crashes, w.lastCrash)
			r.looping.Store(true)
		}
		retired := w.retired
		r.mu.Unlock()
		if retired {
			return
		}
		level := slog.LevelWarn
		if crashes >= crashLoopThreshold {
			level = slog.LevelError
		}
		r.deps.events.Add(level, r.name, fmt.Sprintf("worker %d crashed (%d in a row: %s); restarting in %v", w.id, crashes, w.lastCrash, delay))
		select {
		case <-w.quit:
			return
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
	}
}

const (
	crashWindow        = 30 * time.Second // a crash sooner than this after start counts toward a loop
	crashLoopThreshold = 3
	crashBackoff       = 100 * time.Millisecond
)

// untilStopped returns a context that ends when the runner closes, for a
// worker to hand its instance; cancel releases it.
func (r *Runner) untilStopped() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		select {
		case <-r.stopped:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

func (r *Runner) newInstance(ctx context.Context, w *worker) (inst Instance, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = &panicError{p}
		}
	}()
	r.mu.Lock()
	env := Env{
		Runner:  r.name,
		Worker:  w.id,
		Params:  r.cfg.Params,
		Methods: r.Methods(),
		Threads: r.plan.Threads,
		GPUs:    slices.Clone(w.gpus),
		Metrics: r.custom,
		Logger:  r.deps.logger.With("runner", r.name, "worker", w.id),
	}
	r.mu.Unlock()
	if len(env.GPUs) > 0 {
		cvd, err := placement.CUDAVisibleDevices(r.deps.visible(), env.GPUs)
		if err != nil {
			return nil, fmt.Errorf("place worker %d on GPUs %v: %w", w.id, env.GPUs, err)
		}
		env.CUDAVisibleDevices = cvd
	}
	return r.typ.New(ctx, env)
}

func closeInstance(inst Instance) {
	if c, ok := inst.(Closer); ok {
		func() {
			defer func() { _ = recover() }()
			_ = c.Close()
		}()
	}
}

func (r *Runner) serve(ctx context.Context, w *worker, inst Instance) outcome {
	// An instance backed by a process says when it dies, so that a worker
	// killed while idle (the OOM killer, a stray kill) is replaced before
	// a batch is lost to it.
	var died <-chan struct{}
	if d, ok := inst.(ExitNotifier); ok {
		died = d.Done()
	}
	for {
		select {
		case <-w.quit:
			return outcomeOK
		case <-died:
			w.lastCrash = "its process exited while idle"
			return outcomeCrashed
		case bt := <-r.work:
			if out := r.execute(ctx, w, inst, bt); out != outcomeOK {
				return out
			}
		}
	}
}

// execution guards the single settlement of one batch between the worker
// and its watchdog.
type execution struct {
	settled atomic.Bool
}

func (r *Runner) execute(ctx context.Context, w *worker, inst Instance, bt *batcher.Batch[*call]) outcome {
	m := bt.Parts[0].Item.Payload.m
	start := time.Now()
	in, err := assemble(m, bt)
	var out []tensor.Value
	crashed := false
	if err == nil {
		r.mu.Lock()
		timeout := r.cfg.Timeout
		r.mu.Unlock()
		ex := &execution{}
		watchdog := time.AfterFunc(timeout+timeoutGrace, func() { r.abandon(w, bt, ex, start, timeout) })
		callCtx, cancel := context.WithTimeout(ctx, timeout)
		var unbind func()
		if _, ok := inst.(CallerBound); ok {
			callCtx, unbind = boundByCallers(callCtx, bt)
		}
		out, err = safeCall(callCtx, inst, m.spec.Name, in)
		deadline := callCtx.Err() == context.DeadlineExceeded
		if unbind != nil {
			unbind()
		}
		cancel()
		if !ex.settled.CompareAndSwap(false, true) {
			return outcomeAbandoned
		}
		watchdog.Stop()
		// A panic, or an instance reporting its process died, leaves the
		// instance unusable: replace it. Plain errors keep the worker.
		crashed = errors.Is(err, ErrWorkerCrashed)
		if err != nil && deadline && errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("%w after %v", ErrTimeout, timeout)
		}
	}
	exec := time.Since(start)
	var outs []tensor.Value
	if err == nil {
		outs, err = split(m, out, bt)
	}
	if err == nil && r.looping.Load() {
		// A good batch ends a crash loop; say so before the callers hear.
		r.mu.Lock()
		r.crashLoop = ""
		r.looping.Store(false)
		r.mu.Unlock()
	}
	bt.Done(exec, err == nil)
	m.recordBatch(time.Now(), bt.Rows, len(bt.Parts), exec)
	deliver(bt, outs, err, start, exec)
	if crashed {
		w.lastCrash = firstLine(err.Error())
		return outcomeCrashed
	}
	return outcomeOK
}

// abandon gives up on a worker whose call outlived its timeout: the batch
// fails with ErrTimeout, and a fresh worker takes the slot. The stuck
// goroutine cleans up after itself if the call ever returns.
func (r *Runner) abandon(w *worker, bt *batcher.Batch[*call], ex *execution, start time.Time, timeout time.Duration) {
	if !ex.settled.CompareAndSwap(false, true) {
		return
	}
	exec := time.Since(start)
	bt.Done(exec, false)
	deliver(bt, nil, fmt.Errorf("%w: no result after %v; the worker was replaced", ErrTimeout, timeout), start, exec)
	r.mu.Lock()
	if !w.retired {
		w.retired = true
		delete(r.workers, w.id)
		if w.ready {
			w.ready = false
			r.setReadyLocked(r.ready - 1)
		}
		r.restarts++
		r.deps.metrics.restarts.WithLabelValues(r.name).Inc()
		r.reconcileLocked()
	}
	r.mu.Unlock()
	r.deps.events.Add(slog.LevelError, r.name, fmt.Sprintf("worker %d hung past the %v timeout; replaced", w.id, timeout))
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	if len(line) > 200 {
		line = line[:200] + "…"
	}
	return line
}

// boundByCallers is ctx ended once every caller of bt has left, with the
// latest of their deadlines when all of them have one. A caller that can
// never leave keeps ctx as it is. stop releases the watch.
func boundByCallers(ctx context.Context, bt *batcher.Batch[*call]) (context.Context, func()) {
	left := make([]<-chan struct{}, 0, len(bt.Parts))
	var latest time.Time
	allDeadlines := true
	for _, p := range bt.Parts {
		c := p.Item.Payload
		if c.left == nil {
			return ctx, func() {}
		}
		left = append(left, c.left)
		if c.deadline.IsZero() {
			allDeadlines = false
		} else if c.deadline.After(latest) {
			latest = c.deadline
		}
	}
	cancelDeadline := context.CancelFunc(func() {})
	if allDeadlines {
		ctx, cancelDeadline = context.WithDeadline(ctx, latest)
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		for _, ch := range left {
			select {
			case <-ch:
			case <-done:
				return
			}
		}
		cancel()
	}()
	return ctx, func() { close(done); cancel(); cancelDeadline() }
}

func safeCall(ctx context.Context, inst Instance, method string, in []tensor.Value) (out []tensor.Value, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = &panicError{p}
		}
	}()
	return inst.Call(ctx, method, in)
}

// whole reports whether p is all of its request.
func whole(p batcher.Part[*call]) bool { return p.Offset == 0 && p.Rows == p.Item.Payload.rows }

// share is p's share of v, a batched input of its request: v itself when p
// is all of the request, else its rows along the batch dim.
func share(m *method, p batcher.Part[*call], v tensor.Value) (tensor.Value, error) {
	if whole(p) {
		return v, nil
	}
	return tensor.SliceValue(v, m.spec.BatchDim, p.Offset, p.Offset+p.Rows)
}

// assemble builds the batch's inputs: the request's own when it is alone
// and whole; else each batched input is the parts' rows concatenated along
// the batch dim, and each unbatched one the first part's value, which the
// others share (their batching keys are equal, so every part has the same
// inputs present and the same unbatched values).
func assemble(m *method, bt *batcher.Batch[*call]) ([]tensor.Value, error) {
	first := bt.Parts[0].Item.Payload
	if len(bt.Parts) == 1 && whole(bt.Parts[0]) {
		return first.in, nil
	}
	in := make([]tensor.Value, len(first.in))
	var vs []tensor.Value // one input's share of each part, reused across inputs
	for i, v := range first.in {
		if m.spec.Inputs[i].Unbatched || v.Kind() == tensor.KindInvalid {
			in[i] = v
			continue
		}
		if len(bt.Parts) == 1 {
			part, err := share(m, bt.Parts[0], v)
			if err != nil {
				return nil, fmt.Errorf("form batch: input %q: %w", m.spec.Inputs[i].Name, err)
			}
			in[i] = part
			continue
		}
		if vs == nil {
			vs = make([]tensor.Value, len(bt.Parts))
		}
		for j, p := range bt.Parts {
			part, err := share(m, p, p.Item.Payload.in[i])
			if err != nil {
				return nil, fmt.Errorf("form batch: input %q: %w", m.spec.Inputs[i].Name, err)
			}
			vs[j] = part
		}
		joined, err := tensor.ConcatValues(m.spec.BatchDim, vs)
		if err != nil {
			return nil, fmt.Errorf("form batch: input %q: %w", m.spec.Inputs[i].Name, err)
		}
		in[i] = joined
	}
	return in, nil
}

// split checks the batch's outputs and cuts them into the parts' shares:
// part j's outputs are shares[j*n : (j+1)*n] for n outputs. A batched
// output is split at the parts' row offsets; an unbatched one goes whole to
// every part.
func split(m *method, outs []tensor.Value, bt *batcher.Batch[*call]) ([]tensor.Value, error) {
	if err := checkOutputs(&m.spec, outs, bt.Rows); err != nil {
		return nil, err
	}
	if len(bt.Parts) == 1 {
		return outs, nil
	}
	sizes := make([]int, len(bt.Parts))
	for i, p := range bt.Parts {
		sizes[i] = p.Rows
	}
	n := len(outs)
	if n == 1 && !m.spec.Outputs[0].Unbatched {
		return tensor.SplitValue(outs[0], m.spec.OutputBatchDim, sizes) // one share per part already
	}
	shares := make([]tensor.Value, len(bt.Parts)*n)
	for k, out := range outs {
		if m.spec.Outputs[k].Unbatched {
			for j := range bt.Parts {
				shares[j*n+k] = out
			}
			continue
		}
		cut, err := tensor.SplitValue(out, m.spec.OutputBatchDim, sizes)
		if err != nil {
			return nil, fmt.Errorf("split output %q: %w", m.spec.Outputs[k].Name, err)
		}
		for j, v := range cut {
			shares[j*n+k] = v
		}
	}
	return shares, nil
}

// deliver answers each part's caller: with its share of shares (see
// split), or with err.
func deliver(bt *batcher.Batch[*call], shares []tensor.Value, err error, start time.Time, exec time.Duration) {
	for j, p := range bt.Parts {
		c := p.Item.Payload
		info := CallInfo{BatchRows: bt.Rows, BatchRequests: len(bt.Parts), Queued: start.Sub(p.Item.Enqueued()), Exec: exec}
		if err != nil {
			if !whole(p) {
				// One chunk of a split request failed: the caller has
				// its answer, so its chunks still queued must not run.
				bt.Queue.Cancel(p.Item)
			}
			c.finish(callResult{err: err, info: info})
			continue
		}
		n := len(c.m.spec.Outputs)
		outs := shares[j*n : (j+1)*n : (j+1)*n]
		if whole(p) {
			c.finish(callResult{out: outs, info: info})
			continue
		}
		c.addPiece(p.Offset, p.Rows, outs, info)
	}
}

// addPiece collects the outputs of one chunk of a split request and
// answers the caller once every row is back: each batched output is the
// chunks' rows joined in order, each unbatched one the first chunk's.
func (c *call) addPiece(offset, rows int, outs []tensor.Value, info CallInfo) {
	c.asmMu.Lock()
	c.pieces = append(c.pieces, piece{offset, outs})
	c.got += rows
	complete := c.got == c.rows
	var pieces []piece
	if complete {
		pieces = c.pieces
		c.pieces = nil
	}
	c.asmMu.Unlock()
	if !complete {
		return
	}
	sort.Slice(pieces, func(i, j int) bool { return pieces[i].offset < pieces[j].offset })
	spec := &c.m.spec
	out := make([]tensor.Value, len(spec.Outputs))
	vs := make([]tensor.Value, len(pieces))
	for k := range spec.Outputs {
		if spec.Outputs[k].Unbatched {
			out[k] = pieces[0].outs[k]
			continue
		}
		for i, p := range pieces {
			vs[i] = p.outs[k]
		}
		v, err := tensor.ConcatValues(spec.OutputBatchDim, vs)
		if err != nil {
			c.finish(callResult{err: fmt.Errorf("reassemble split request: output %q: %w", spec.Outputs[k].Name, err), info: info})
			return
		}
		out[k] = v
	}
	c.finish(callResult{out: out, info: info})
}

// Close stops accepting requests, lets queued and running ones finish until
// ctx ends (then fails the rest with ErrRunnerClosed), and stops every worker.
func (r *Runner) Close(ctx context.Context) error {
	r.mu.Lock()
	if r.closing {
		r.mu.Unlock()
		return nil
	}
	r.mu.Unlock()
	drainErr := r.b.Drain(ctx)
	r.mu.Lock()
	r.closing = true
	for _, w := range r.workers {
		r.retireLocked(w)
	}
	select {
	case <-r.stopped: // a concurrent Close got here first
	default:
		close(r.stopped)
	}
	r.mu.Unlock()
	done := make(chan struct{})
	go func() { r.wg.Wait(); close(done) }()
	var waitErr error
	select {
	case <-done:
	case <-ctx.Done():
		waitErr = fmt.Errorf("runner %q: workers still busy at shutdown: %w", r.name, ctx.Err())
	}
	for {
		select {
		case bt := <-r.work:
			bt.Done(0, false)
			deliver(bt, nil, ErrRunnerClosed, time.Now(), 0)
			continue
		default:
		}
		break
	}
	if drainErr != nil && waitErr == nil {
		return fmt.Errorf("runner %q: drain: %w", r.name, drainErr)
	}
	return waitErr
}
