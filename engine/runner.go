package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strconv"
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
	// variableShape: the signature leaves the input's dtype or a non-batch
	// dim open, so requests group by their actual shape.
	variableShape bool
	refusals      refusalLog
	q             *batcher.Queue[*call]
	metrics       *methodMetrics
	window        window
	totals        [6]atomic.Uint64 // indexed by statusIndex
	cum           cumulative
	sizesMu       sync.Mutex
	sizes         map[int]*batchSizeTotals // by exact rows per batch, since start
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
	m    *method
	in   tensor.Value
	rows int
	done chan callResult // buffered: a worker never blocks on a caller that left
	sent atomic.Bool

	// Requests larger than max_batch_size come back in pieces.
	asmMu  sync.Mutex
	pieces []piece
	got    int
}

type piece struct {
	offset int
	v      tensor.Value
}

type callResult struct {
	out  tensor.Value
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
		m := &method{spec: s, q: q, metrics: deps.metrics.forMethod(cfg.Name, s.Name), sizes: map[int]*batchSizeTotals{}, variableShape: variableBeside(s.Input, s.BatchDim)}
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

// Run calls method with in and blocks until the caller's own result, an
// error, or the end of ctx. A request cancelled while queued never executes.
func (r *Runner) Run(ctx context.Context, method string, in tensor.Value) (tensor.Value, error) {
	v, _, err := r.RunInfo(ctx, method, in)
	return v, err
}

// RunInfo is Run that also says which batch served the request.
func (r *Runner) RunInfo(ctx context.Context, method string, in tensor.Value) (tensor.Value, CallInfo, error) {
	m, ok := r.methods[method]
	if !ok {
		return tensor.Value{}, CallInfo{}, &MethodError{r.name, method, fmt.Errorf("%w %q (methods: %s)", ErrUnknownMethod, method, methodNames(r.Methods()))}
	}
	rows, err := m.rowsOf(in)
	if err != nil {
		m.count(statusInvalid)
		return tensor.Value{}, CallInfo{}, &MethodError{r.name, method, fmt.Errorf("%w: %w", ErrInvalidInput, err)}
	}
	if err := ctx.Err(); err != nil {
		m.count(statusCancelled)
		return tensor.Value{}, CallInfo{}, err
	}
	if r.readyN.Load() == 0 {
		// No worker, and the last attempt to start one failed: say why
		// now rather than let the request wait out its latency bound.
		r.mu.Lock()
		startErr := r.startErr
		r.mu.Unlock()
		if startErr != nil {
			m.count(statusError)
			return tensor.Value{}, CallInfo{}, &MethodError{r.name, method, fmt.Errorf("%w: %w", ErrNotReady, startErr)}
		}
	}
	c := &call{m: m, in: in, rows: rows, done: make(chan callResult, 1)}
	var keyBuf [48]byte
	it, err := m.q.Submit(c, batcher.Request{Rows: rows, Bytes: sizeOf(in), Key: m.groupKey(keyBuf[:0], in)})
	if err != nil {
		if errors.Is(err, batcher.ErrClosed) {
			err = fmt.Errorf("%w: %w", ErrRunnerClosed, err)
		}
		err = overloadFrom(err)
		r.noteRefusal(m, err)
		m.record(time.Now(), rows, callResult{err: err})
		return tensor.Value{}, CallInfo{}, &MethodError{r.name, method, err}
	}
	start := it.Enqueued() // the batcher's clock reading, not a second one
	select {
	case res := <-c.done:
		m.record(start, rows, res)
		if res.err != nil {
			return tensor.Value{}, res.info, &MethodError{r.name, method, res.err}
		}
		return res.out, res.info, nil
	case <-ctx.Done():
		// Withdraw it if still queued; if it already runs, the worker's
		// result lands in the buffered channel and is dropped.
		m.q.Cancel(it)
		m.count(statusCancelled)
		return tensor.Value{}, CallInfo{}, ctx.Err()
	}
}

// groupKey says which requests may share a batch: tensors concatenate
// only when their dtype and every non-batch dim agree (Triton's rule), so
// where the signature leaves those open the key spells them out; where
// it fixes them every valid request has the same key, the empty one.
func (m *method) groupKey(key []byte, in tensor.Value) []byte {
	if !m.spec.Batchable || in.Kind() != tensor.KindTensor || !m.variableShape {
		return key
	}
	t := in.Tensor()
	key = append(key, byte(t.DType()))
	for i, d := range t.Shape() {
		if i == m.spec.BatchDim {
			d = -1
		}
		key = strconv.AppendInt(append(key, ','), int64(d), 10)
	}
	return key
}

// variableBeside reports whether tensors that meet s may differ in dtype or
// in a dim other than batchDim, so that two of them may not concatenate
// along batchDim.
func variableBeside(s tensor.IOSpec, batchDim int) bool {
	if s.Kind != tensor.KindTensor && s.Kind != tensor.KindInvalid {
		return false
	}
	if s.DType == tensor.DTypeInvalid || s.Shape == nil {
		return true
	}
	for i, d := range s.Shape {
		if i != batchDim && d < 0 {
			return true
		}
	}
	return false
}

// sizeOf is the bytes of data a value carries, for the batcher's cost
// model: where rows differ in size, cost follows bytes.
func sizeOf(v tensor.Value) int64 {
	switch v.Kind() {
	case tensor.KindTensor:
		t := v.Tensor()
		if t == nil {
			return 0
		}
		n := int64(len(t.Bytes()))
		for _, s := range t.Strings() {
			n += int64(len(s))
		}
		return n
	case tensor.KindText:
		return int64(len(v.Text()))
	case tensor.KindJSON:
		return jsonSize(v.JSON(), 0)
	}
	return 0
}

// jsonSize approximates the bytes of a decoded JSON value: strings by
// their length, anything else by a word, nesting followed a few levels.
func jsonSize(x any, depth int) int64 {
	switch x := x.(type) {
	case string:
		return int64(len(x))
	case []any:
		if depth > 4 {
			return int64(8 * len(x))
		}
		var n int64
		for _, e := range x {
			n += jsonSize(e, depth+1)
		}
		return n
	case map[string]any:
		if depth > 4 {
			return int64(16 * len(x))
		}
		var n int64
		for k, e := range x {
			n += int64(len(k)) + jsonSize(e, depth+1)
		}
		return n
	}
	return 8
}

func (m *method) rowsOf(in tensor.Value) (int, error) {
	if err := m.spec.Input.Check(in); err != nil {
		return 0, err
	}
	if !m.spec.Batchable {
		return 1, nil
	}
	rows, err := in.Rows(m.spec.BatchDim)
	if err != nil {
		return 0, err
	}
	if rows < 1 {
		return 0, fmt.Errorf("input has no rows along batch dim %d: send at least one", m.spec.BatchDim)
	}
	return rows, nil
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
	in, err := assemble(m.spec, bt)
	var out tensor.Value
	crashed := false
	if err == nil {
		r.mu.Lock()
		timeout := r.cfg.Timeout
		r.mu.Unlock()
		ex := &execution{}
		watchdog := time.AfterFunc(timeout+timeoutGrace, func() { r.abandon(w, bt, ex, start, timeout) })
		callCtx, cancel := context.WithTimeout(ctx, timeout)
		out, err = safeCall(callCtx, inst, m.spec.Name, in)
		deadline := callCtx.Err() == context.DeadlineExceeded
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
		outs, err = split(m.spec, out, bt)
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

func safeCall(ctx context.Context, inst Instance, method string, in tensor.Value) (out tensor.Value, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = &panicError{p}
		}
	}()
	return inst.Call(ctx, method, in)
}

// assemble builds the batch input: the request itself when it is alone and
// whole, else the parts' rows concatenated along the batch dim.
func assemble(spec MethodSpec, bt *batcher.Batch[*call]) (tensor.Value, error) {
	if len(bt.Parts) == 1 {
		p := bt.Parts[0]
		c := p.Item.Payload
		if p.Offset == 0 && p.Rows == c.rows {
			return c.in, nil
		}
		return tensor.SliceValue(c.in, spec.BatchDim, p.Offset, p.Offset+p.Rows)
	}
	vs := make([]tensor.Value, len(bt.Parts))
	for i, p := range bt.Parts {
		c := p.Item.Payload
		if p.Offset == 0 && p.Rows == c.rows {
			vs[i] = c.in
			continue
		}
		v, err := tensor.SliceValue(c.in, spec.BatchDim, p.Offset, p.Offset+p.Rows)
		if err != nil {
			return tensor.Value{}, err
		}
		vs[i] = v
	}
	v, err := tensor.ConcatValues(spec.BatchDim, vs)
	if err != nil {
		return tensor.Value{}, fmt.Errorf("form batch: %w", err)
	}
	return v, nil
}

// split cuts the batch output back into the parts' rows, after checking the
// runnable kept its promise about the output.
func split(spec MethodSpec, out tensor.Value, bt *batcher.Batch[*call]) ([]tensor.Value, error) {
	if err := spec.Output.Check(out); err != nil {
		return nil, fmt.Errorf("runnable returned an output that does not match its signature: %w", err)
	}
	if !spec.Batchable {
		return []tensor.Value{out}, nil
	}
	rows, err := out.Rows(spec.OutputBatchDim)
	if err != nil {
		return nil, fmt.Errorf("runnable output: %w", err)
	}
	if rows != bt.Rows {
		return nil, fmt.Errorf("runnable returned %d rows for a batch of %d along output batch dim %d", rows, bt.Rows, spec.OutputBatchDim)
	}
	if len(bt.Parts) == 1 {
		return []tensor.Value{out}, nil
	}
	sizes := make([]int, len(bt.Parts))
	for i, p := range bt.Parts {
		sizes[i] = p.Rows
	}
	return tensor.SplitValue(out, spec.OutputBatchDim, sizes)
}

func deliver(bt *batcher.Batch[*call], outs []tensor.Value, err error, start time.Time, exec time.Duration) {
	for i, p := range bt.Parts {
		c := p.Item.Payload
		info := CallInfo{BatchRows: bt.Rows, BatchRequests: len(bt.Parts), Queued: start.Sub(p.Item.Enqueued()), Exec: exec}
		if err != nil {
			if p.Offset != 0 || p.Rows != c.rows {
				// One chunk of a split request failed: the caller has
				// its answer, so its chunks still queued must not run.
				bt.Queue.Cancel(p.Item)
			}
			c.finish(callResult{err: err, info: info})
			continue
		}
		if p.Offset == 0 && p.Rows == c.rows {
			c.finish(callResult{out: outs[i], info: info})
			continue
		}
		c.addPiece(p.Offset, p.Rows, outs[i], info)
	}
}

// addPiece collects the output of one chunk of a split request and answers
// the caller once every row is back.
func (c *call) addPiece(offset, rows int, v tensor.Value, info CallInfo) {
	c.asmMu.Lock()
	c.pieces = append(c.pieces, piece{offset, v})
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
	vs := make([]tensor.Value, len(pieces))
	for i, p := range pieces {
		vs[i] = p.v
	}
	out, err := tensor.ConcatValues(c.m.spec.OutputBatchDim, vs)
	if err != nil {
		c.finish(callResult{err: fmt.Errorf("reassemble split request: %w", err), info: info})
		return
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
