package process

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/benchtop/benchtop/engine"
	"github.com/benchtop/benchtop/engine/tensor"
)

// Type is the "process" runnable: each worker is a child process speaking
// the worker protocol on its stdin and stdout (docs/WORKER_PROTOCOL.md),
// such as a Python runnable served by samples/python/benchtop_worker.py.
// Its methods are whatever the worker declares in its handshake.
func Type() *engine.RunnableType { return newType(hooks{}) }

// hooks let tests see every process the type starts.
type hooks struct {
	started func(pid int)
}

func newType(h hooks) *engine.RunnableType {
	r := &runnable{hooks: h, described: map[string]described{}}
	return &engine.RunnableType{
		Name:     "process",
		Doc:      "runs worker processes (e.g. Python) that speak the benchtop worker protocol; methods come from the worker's handshake",
		Describe: r.describe,
		Validate: func(_ context.Context, p engine.Params) error {
			_, err := ParseParams(p)
			return err
		},
		// What a worker can use is its own business: benchtop assigns GPUs
		// through CUDA_VISIBLE_DEVICES and threads through OMP_NUM_THREADS
		// and friends. Like a BentoML runnable by default, one worker
		// process per core.
		SupportedResources: []string{engine.ResourceCPU, engine.ResourceGPU},
		New:                r.new,
	}
}

type runnable struct {
	hooks hooks

	mu        sync.Mutex
	described map[string]described // by Params.key
}

// described is what a probe read from a worker: the runner's methods are
// fixed from it, and every worker's handshake must agree with it.
type described struct {
	specs       []engine.MethodSpec
	fingerprint string
	at          time.Time
}

// describeReuse is how long a probe's answer is reused for the same params
// and unchanged files: a probe can cost seconds of imports, and reloads come
// in bursts (an editor's saves, a model store changing).
const describeReuse = 10 * time.Second

// maxDescribed bounds the cache; it only grows with distinct configs.
const maxDescribed = 256

// describe starts a worker to read its methods (a probe) and stops it. ctx
// ends the probe early; the handshake timeout bounds it too.
func (r *runnable) describe(ctx context.Context, params engine.Params) ([]engine.MethodSpec, error) {
	p, err := ParseParams(params)
	if err != nil {
		return nil, err
	}
	key, fp := p.key(), fingerprint(p)
	r.mu.Lock()
	d, ok := r.described[key]
	r.mu.Unlock()
	if ok && d.fingerprint == fp && time.Since(d.at) < describeReuse {
		return slices.Clone(d.specs), nil
	}
	hello := helloMsg{Protocol: minProtocol, MaxProtocol: maxProtocol, Probe: true, Worker: -1, Threads: 1, GPUs: []int{}, Init: initOf(p)}
	c, specs, err := r.start(ctx, p, hello, engine.Env{Threads: 1}, discardLogger())
	if err != nil {
		return nil, fmt.Errorf("start a worker to read its methods: %w", err)
	}
	if err := c.shutdown(shutdownGrace); err != nil {
		return nil, fmt.Errorf("probe worker: %w", err)
	}
	r.mu.Lock()
	if len(r.described) >= maxDescribed {
		clear(r.described)
	}
	r.described[key] = described{specs: specs, fingerprint: fp, at: time.Now()}
	r.mu.Unlock()
	return slices.Clone(specs), nil
}

// fingerprint identifies the files named on the command line (the program
// and its script), so an edited script is probed afresh.
func fingerprint(p Params) string {
	var b strings.Builder
	for _, a := range p.Command {
		path := a
		if !filepath.IsAbs(path) && p.Dir != "" {
			path = filepath.Join(p.Dir, path)
		}
		if st, err := os.Stat(path); err == nil && st.Mode().IsRegular() {
			fmt.Fprintf(&b, "%s:%d:%d;", path, st.Size(), st.ModTime().UnixNano())
		}
	}
	return b.String()
}

func initOf(p Params) map[string]any {
	if p.Init == nil {
		return map[string]any{}
	}
	return p.Init
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func (r *runnable) new(ctx context.Context, env engine.Env) (engine.Instance, error) {
	p, err := ParseParams(env.Params)
	if err != nil {
		return nil, err
	}
	logger := env.Logger
	if logger == nil {
		logger = discardLogger()
	}
	gpus := env.GPUs
	if gpus == nil {
		gpus = []int{}
	}
	hello := helloMsg{
		Protocol: minProtocol, MaxProtocol: maxProtocol, Runner: env.Runner, Worker: env.Worker,
		Threads: env.Threads, GPUs: gpus, Init: initOf(p),
	}
	c, specs, err := r.start(ctx, p, hello, env, logger)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	d, ok := r.described[p.key()]
	r.mu.Unlock()
	if ok {
		if diff := diffSpecs(d.specs, specs); diff != "" {
			_ = c.shutdown(shutdownGrace)
			return nil, fmt.Errorf("worker process %d declared other methods than the runner was configured with (%s): "+
				"the worker changed since; reload the config so the runner picks up its methods", c.pid, diff)
		}
	}
	outputs := make(map[string]tensor.IOSpecs, len(specs))
	for _, s := range specs {
		outputs[s.Name] = s.Outputs
	}
	return &worker{c: c, logger: logger, outputs: outputs}, nil
}

// start starts a process and completes its handshake; on failure the
// process is gone and the error says why, with its stderr. where gives the
// threads and GPUs the process may use.
func (r *runnable) start(ctx context.Context, p Params, hello helloMsg, where engine.Env, logger *slog.Logger) (*child, []engine.MethodSpec, error) {
	env, err := workerEnv(os.Environ(), p, where.Threads, where.GPUs, where.CUDAVisibleDevices)
	if err != nil {
		return nil, nil, fmt.Errorf("worker environment: %w", err)
	}
	c, err := startChild(p, env, logger)
	if err != nil {
		return nil, nil, err
	}
	if r.hooks.started != nil {
		r.hooks.started(c.pid)
	}
	timeout := p.handshakeTimeout()
	specs, err := c.handshake(ctx, hello, timeout)
	if err != nil {
		return nil, nil, c.startFailure(ctx, timeout, err)
	}
	return c, specs, nil
}

// handshake sends HELLO and reads READY (or the worker's ERROR).
func (c *child) handshake(ctx context.Context, hello helloMsg, timeout time.Duration) ([]engine.MethodSpec, error) {
	payload, err := json.Marshal(hello)
	if err != nil {
		return nil, fmt.Errorf("encode hello: %w", err)
	}
	frame := append(appendHeader(nil, msgHello, 0, len(payload)), payload...)
	deadline := time.Now().Add(timeout)
	_ = c.stdin.SetWriteDeadline(deadline)
	c.stdout.setDeadline(deadline)
	stop := context.AfterFunc(ctx, c.kill)
	defer stop()
	if err := c.writeFrame(frame); err != nil {
		return nil, err
	}
	h, body, err := c.readFrame()
	if err != nil {
		return nil, err
	}
	switch h.typ {
	case msgReady:
		var rm readyMsg
		if err := decodeStrict(body, &rm); err != nil {
			return nil, &protocolError{fmt.Errorf("READY: %w", err)}
		}
		specs, err := specsFromReady(rm)
		if err != nil {
			return nil, &refusedError{fmt.Sprintf("its methods cannot be served: %v", err)}
		}
		if ctx.Err() == nil {
			_ = c.stdin.SetWriteDeadline(time.Time{})
			c.stdout.setDeadline(time.Time{})
		}
		return specs, nil
	case msgError:
		var em errorMsg
		if err := decodeStrict(body, &em); err != nil {
			return nil, &protocolError{fmt.Errorf("ERROR: %w", err)}
		}
		return nil, &refusedError{em.Message}
	}
	return nil, &protocolError{fmt.Errorf("answered HELLO with %s, want READY or ERROR", h.typ)}
}

// refusedError: the worker answered its handshake with a reason not to
// serve.
type refusedError struct{ msg string }

func (e *refusedError) Error() string { return e.msg }

// startFailure turns a failed handshake into an error that says what to
// fix, and makes sure the process is gone.
func (c *child) startFailure(ctx context.Context, timeout time.Duration, err error) error {
	var ge *garbageError
	var re *refusedError
	switch {
	case ctx.Err() != nil:
		c.kill()
		<-c.exited
		return fmt.Errorf("start worker process %d: %w", c.pid, ctx.Err())
	case errors.As(err, &re):
		c.reap(shutdownGrace)
		return fmt.Errorf("worker process %d refused to start: %s%s", c.pid, re.msg, c.stderrText())
	case errors.As(err, &ge):
		c.kill()
		<-c.exited
		return fmt.Errorf("worker process %d failed its handshake: %v%s", c.pid, ge, c.stderrText())
	case errors.Is(err, os.ErrDeadlineExceeded):
		c.kill()
		<-c.exited
		return fmt.Errorf("worker process %d did not answer its handshake within %v: raise handshake_timeout_ms if it loads a large model first%s", c.pid, timeout, c.stderrText())
	case isEOF(err):
		if c.reap(time.Second) {
			return fmt.Errorf("worker process %d exited before its handshake (%s)%s", c.pid, c.status(), c.stderrText())
		}
		return fmt.Errorf("worker process %d closed its stdout before its handshake%s", c.pid, c.stderrText())
	}
	c.kill()
	<-c.exited
	return fmt.Errorf("worker process %d handshake: %v%s", c.pid, err, c.stderrText())
}

func isEOF(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.EPIPE)
}

// diffSpecs says how got differs from want, or "" when they agree on
// everything that serving depends on (docs may change).
func diffSpecs(want, got []engine.MethodSpec) string {
	index := func(ss []engine.MethodSpec) map[string]engine.MethodSpec {
		m := make(map[string]engine.MethodSpec, len(ss))
		for _, s := range ss {
			m[s.Name] = s
		}
		return m
	}
	w, g := index(want), index(got)
	var diffs []string
	for _, s := range want {
		o, ok := g[s.Name]
		if !ok {
			diffs = append(diffs, fmt.Sprintf("method %q is gone", s.Name))
			continue
		}
		if d := diffSpec(s, o); d != "" {
			diffs = append(diffs, fmt.Sprintf("method %q %s", s.Name, d))
		}
	}
	for _, s := range got {
		if _, ok := w[s.Name]; !ok {
			diffs = append(diffs, fmt.Sprintf("method %q is new", s.Name))
		}
	}
	return strings.Join(diffs, "; ")
}

func diffSpec(a, b engine.MethodSpec) string {
	if sa, sb := signature(a), signature(b); sa != sb {
		return fmt.Sprintf("was %s, now %s", sa, sb)
	}
	// A signature names the slots only where there are several.
	for _, side := range []struct {
		what string
		a, b tensor.IOSpecs
	}{{"inputs", a.Inputs, b.Inputs}, {"outputs", a.Outputs, b.Outputs}} {
		if na, nb := side.a.Names(), side.b.Names(); na != nb {
			return fmt.Sprintf("named its %s %q, now %q", side.what, na, nb)
		}
	}
	return ""
}

// signature is what serving depends on in a method spec, in words.
func signature(s engine.MethodSpec) string {
	if !s.Batchable {
		return fmt.Sprintf("%s → %s, not batchable", s.Inputs, s.Outputs)
	}
	return fmt.Sprintf("%s → %s, batchable along dim %d → %d", s.Inputs, s.Outputs, s.BatchDim, s.OutputBatchDim)
}

// shutdownGrace is how long a worker has to exit after SHUTDOWN before it
// is sent SIGTERM, and termGrace how long after SIGTERM before SIGKILL.
const (
	shutdownGrace = 2 * time.Second
	termGrace     = time.Second
)

// shutdown asks the worker to exit, then insists: SHUTDOWN and EOF on its
// stdin, SIGTERM to its group after grace, SIGKILL after termGrace. It
// always reaps the process and stops the stderr reader.
func (c *child) shutdown(grace time.Duration) error {
	if !c.hasExited() {
		_ = c.stdin.SetWriteDeadline(time.Now().Add(grace))
		_ = c.writeFrame(appendHeader(nil, msgShutdown, 0, 0))
	}
	_ = c.stdin.Close()
	var err error
	t := time.NewTimer(grace)
	select {
	case <-c.exited:
	case <-t.C:
		c.signal(syscall.SIGTERM)
		err = fmt.Errorf("worker process %d did not exit within %v of SHUTDOWN; sent SIGTERM", c.pid, grace)
		t2 := time.NewTimer(termGrace)
		select {
		case <-c.exited:
		case <-t2.C:
			c.kill()
			<-c.exited
			err = fmt.Errorf("worker process %d ignored SHUTDOWN and SIGTERM; killed it", c.pid)
		}
		t2.Stop()
	}
	t.Stop()
	_ = c.stdout.f.Close()
	c.stopStderr()
	return err
}

// stopStderr waits a moment for the stderr reader to see EOF, then closes
// the pipe under it: a grandchild that escaped the process group could
// keep the pipe open forever.
func (c *child) stopStderr() {
	t := time.NewTimer(time.Second)
	defer t.Stop()
	select {
	case <-c.stderr.done:
		return
	case <-t.C:
	}
	_ = c.stderrPipe.Close()
	<-c.stderr.done
}

// worker is one process-backed instance. The engine never calls it
// concurrently; Close may follow a Call whose context was cancelled.
type worker struct {
	c      *child
	logger *slog.Logger
	// outputs are each method's outputs as the worker declared them, to
	// read its results by.
	outputs map[string]tensor.IOSpecs
	seq     uint32
	buf     []byte // reused for outgoing frames
	// broken is set once the process is unusable; every later call fails
	// with it until the engine replaces the worker.
	broken    error
	closeOnce sync.Once
	closeErr  error
}

var (
	_ engine.Instance     = (*worker)(nil)
	_ engine.Closer       = (*worker)(nil)
	_ engine.PIDReporter  = (*worker)(nil)
	_ engine.ExitNotifier = (*worker)(nil)
)

// maxKeptBuffer bounds the frame buffer a worker keeps between calls.
const maxKeptBuffer = 4 << 20

// Call sends one batch and waits for its result. Errors the worker reports
// keep it alive, and so does a result that does not fit the method's
// outputs; anything that leaves the process unusable (it exited, it wrote
// garbage on stdout, ctx ended) kills it and wraps engine.ErrWorkerCrashed,
// so the engine replaces it. in holds a value per input and the result a
// value per output, in the order the worker declared them.
func (w *worker) Call(ctx context.Context, method string, in []tensor.Value) ([]tensor.Value, error) {
	if w.broken != nil {
		return nil, w.broken
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	w.seq++
	frame, err := appendCall(w.buf[:0], w.seq, method, in)
	if err != nil {
		return nil, fmt.Errorf("send %q to worker: %w", method, err)
	}
	if cap(frame) <= maxKeptBuffer {
		w.buf = frame
	} else {
		w.buf = nil
	}
	stop := context.AfterFunc(ctx, w.c.kill)
	out, err := w.roundTrip(frame, w.outputs[method])
	if !stop() {
		// ctx ended: the process is being killed, whatever came back.
		w.broken = w.crash(ctx, method, ctx.Err())
		return nil, w.broken
	}
	var ce *callError
	var be *badResultError
	switch {
	case err == nil:
		return out, nil
	case errors.As(err, &ce):
		if ce.invalid {
			return nil, engine.InvalidInput(errors.New(ce.msg))
		}
		return nil, errors.New(ce.msg)
	case errors.As(err, &be):
		return nil, fmt.Errorf("worker process %d returned a malformed result for %q: %w", w.c.pid, method, be.err)
	}
	w.broken = w.crash(ctx, method, err)
	return nil, w.broken
}

// roundTrip sends frame and reads the answer, a value per output of
// outputs (nil for a method the worker never declared).
func (w *worker) roundTrip(frame []byte, outputs tensor.IOSpecs) ([]tensor.Value, error) {
	if err := w.c.writeFrame(frame); err != nil {
		return nil, err
	}
	h, body, err := w.c.readFrame()
	if err != nil {
		return nil, err
	}
	if h.id != w.seq {
		return nil, &protocolError{fmt.Errorf("answered call %d with a %s for call %d", w.seq, h.typ, h.id)}
	}
	switch h.typ {
	case msgResult:
		vs, err := decodeResult(body, outputs)
		if err != nil {
			return nil, &badResultError{err}
		}
		return vs, nil
	case msgError:
		var em errorMsg
		if err := decodeStrict(body, &em); err != nil {
			return nil, &protocolError{fmt.Errorf("ERROR: %w", err)}
		}
		if em.Message == "" {
			em.Message = "the worker reported an error without a message"
		}
		return nil, &callError{msg: em.Message, invalid: em.InvalidInput}
	}
	return nil, &protocolError{fmt.Errorf("answered CALL with %s, want RESULT or ERROR", h.typ)}
}

// callError is an error the worker reported for one call.
type callError struct {
	msg     string
	invalid bool
}

func (e *callError) Error() string { return e.msg }

// badResultError: a well-framed RESULT whose value does not decode. The
// stream is still in step, so the worker can go on serving.
type badResultError struct{ err error }

func (e *badResultError) Error() string { return e.err.Error() }

// crash makes sure the process is gone and describes why it is unusable.
func (w *worker) crash(ctx context.Context, method string, err error) error {
	c := w.c
	var ge *garbageError
	var pe *protocolError
	switch {
	case ctx.Err() != nil:
		c.kill()
		<-c.exited
		return fmt.Errorf("%w: %w: worker process %d was killed because the call to %q did not finish in time%s",
			engine.ErrWorkerCrashed, ctx.Err(), c.pid, method, c.stderrText())
	case errors.As(err, &ge):
		c.kill()
		<-c.exited
		return fmt.Errorf("%w: worker process %d was stopped while running %q: %v%s", engine.ErrWorkerCrashed, c.pid, method, ge, c.stderrText())
	case errors.As(err, &pe):
		c.kill()
		<-c.exited
		return fmt.Errorf("%w: worker process %d was stopped while running %q: %v%s", engine.ErrWorkerCrashed, c.pid, method, pe, c.stderrText())
	case isEOF(err):
		if c.reap(time.Second) {
			return fmt.Errorf("%w: worker process %d exited (%s) while running %q%s", engine.ErrWorkerCrashed, c.pid, c.status(), method, c.stderrText())
		}
		return fmt.Errorf("%w: worker process %d closed its stdout while running %q and was killed%s", engine.ErrWorkerCrashed, c.pid, method, c.stderrText())
	}
	c.kill()
	<-c.exited
	return fmt.Errorf("%w: worker process %d: talking to it while running %q: %v%s", engine.ErrWorkerCrashed, c.pid, method, err, c.stderrText())
}

// Close shuts the process down (SHUTDOWN, then SIGTERM, then SIGKILL) and
// reaps it.
func (w *worker) Close() error {
	w.closeOnce.Do(func() {
		w.closeErr = w.c.shutdown(shutdownGrace)
		if w.closeErr != nil {
			w.logger.Warn(w.closeErr.Error())
		}
	})
	return w.closeErr
}

// Done is closed when the process has exited, for whoever wants to replace
// a worker that died while idle rather than at its next call.
func (w *worker) Done() <-chan struct{} { return w.c.exited }

// PID is the worker's process id.
func (w *worker) PID() int { return w.c.pid }
