package bench

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"time"
)

// Options shape every level of a sweep.
type Options struct {
	// Warmup runs the load unmeasured first, so that connections, caches
	// and the adaptive batcher's cost model settle.
	Warmup time.Duration
	// Window is one measurement window; a level is measured in windows
	// until the last StableWindows agree or MaxTime passes.
	Window  time.Duration
	MaxTime time.Duration
	// StableWindows is how many windows must agree (default 3), and
	// Tolerance how closely: each throughput within this fraction of their
	// mean (default 0.1), as perf_analyzer judges stability. Throughput is
	// successes per second, the figure a level reports: a level whose
	// answers come at a steady rate but succeed less and less is not stable.
	StableWindows int
	Tolerance     float64
	// LatencyLimit stops a sweep after the first level whose p99 exceeds
	// it; 0 never stops.
	LatencyLimit time.Duration
	// Timeout bounds one request (default 30 s).
	Timeout time.Duration
	// MaxInFlight caps open-loop requests awaiting an answer (default
	// 1024): beyond it the generator waits, and since latency counts from
	// each request's intended send time, that wait still shows.
	MaxInFlight int
	// Seed makes Poisson arrivals repeatable; 0 picks one.
	Seed uint64
	// Progress, if set, hears about each phase and window; it is called
	// from the sweeping goroutine, never concurrently.
	Progress func(Progress)
}

// Defaults for the zero Options fields.
const (
	DefaultWindow        = time.Second
	DefaultMaxTime       = 30 * time.Second
	DefaultStableWindows = 3
	DefaultTolerance     = 0.1
	DefaultTimeout       = 30 * time.Second
	DefaultMaxInFlight   = 1024
)

func (o Options) withDefaults() Options {
	if o.Window <= 0 {
		o.Window = DefaultWindow
	}
	if o.MaxTime <= 0 {
		o.MaxTime = DefaultMaxTime
	}
	if o.StableWindows <= 0 {
		o.StableWindows = DefaultStableWindows
	}
	if o.Tolerance <= 0 {
		o.Tolerance = DefaultTolerance
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = DefaultMaxInFlight
	}
	if o.Seed == 0 {
		o.Seed = rand.Uint64()
	}
	return o
}

// Progress is where a sweep is.
type Progress struct {
	Sweep        string // the compare variant, "" for a plain sweep
	Level        Level
	Index, Count int    // this level's place in the sweep, from 1
	Phase        string // "warm-up" or "measure"
	Window       int    // windows measured so far
	// Throughput is the last window's successes per second.
	Throughput float64
}

// LevelResult is one measured level.
type LevelResult struct {
	Level Level
	// Stable: the last windows' throughputs (successes per second)
	// agreed; false when MaxTime ran out first.
	Stable bool
	// Span is the measured time: the last StableWindows windows (or all,
	// if fewer ran), which every figure below covers.
	Windows int
	Span    time.Duration
	// Requests answered (successes and errors), OK the successes.
	Requests, OK uint64
	// Throughput is successes per second.
	Throughput float64
	// Latency of successful requests: from the send (closed loop) or the
	// intended send time (open loop) to the answer. Exact, from every
	// recorded latency.
	P50, P90, P99, Max, Mean time.Duration
	// Errors counts failures by ErrorKind; ErrorSamples keeps the first
	// message of each kind.
	Errors       map[string]uint64
	ErrorSamples map[string]string
	// Refused counts the failures that were the server refusing the
	// request to protect its latency or queue (see Refused): http_503,
	// http_429 and in process overloaded. They are in Errors too.
	Refused uint64
	// Server is the serving side's batching over the span; nil if unknown.
	// ServerError says why reading it failed, if it did.
	Server      *Batching
	ServerError string
}

// ErrorCount is the number of failed requests.
func (r LevelResult) ErrorCount() uint64 { return r.Requests - r.OK }

// RefusedRate is refusals per second of the span.
func (r LevelResult) RefusedRate() float64 {
	if r.Span <= 0 {
		return 0
	}
	return float64(r.Refused) / r.Span.Seconds()
}

// RefusedShare is the fraction of the answered attempts that were refused.
func (r LevelResult) RefusedShare() float64 {
	if r.Requests == 0 {
		return 0
	}
	return float64(r.Refused) / float64(r.Requests)
}

// SweepResult is a series of levels against one target and setting.
type SweepResult struct {
	// Label names the batching setting in compare mode.
	Label  string
	Levels []LevelResult
	// Stopped says why the sweep ended before its last level, if it did.
	Stopped string
}

// Sweep measures t at each level in turn, stopping early once p99 passes
// opts.LatencyLimit. It first sends one request, so that a wrong URL or
// input fails at once with the server's message instead of as a table of
// errors. On ctx's end it returns the levels done so far with ctx's error.
func Sweep(ctx context.Context, t Target, levels []Level, opts Options) (SweepResult, error) {
	return sweep(ctx, t, "", levels, opts.withDefaults())
}

func sweep(ctx context.Context, t Target, label string, levels []Level, opts Options) (SweepResult, error) {
	res := SweepResult{Label: label}
	if err := probe(ctx, t, opts.Timeout); err != nil {
		return res, err
	}
	for i, l := range levels {
		progress := func(Progress) {}
		if opts.Progress != nil {
			progress = func(p Progress) {
				p.Sweep, p.Index, p.Count = label, i+1, len(levels)
				opts.Progress(p)
			}
		}
		lr, err := runLevel(ctx, t, l, opts, progress)
		if err != nil {
			return res, err
		}
		res.Levels = append(res.Levels, lr)
		if i == len(levels)-1 {
			break
		}
		switch {
		case lr.OK == 0:
			res.Stopped = fmt.Sprintf("no request succeeded at %s", describeLevel(l))
		case opts.LatencyLimit > 0 && lr.P99 > opts.LatencyLimit:
			res.Stopped = fmt.Sprintf("p99 %s passed the latency limit %s at %s", fmtDuration(lr.P99), fmtDuration(opts.LatencyLimit), describeLevel(l))
		}
		if res.Stopped != "" {
			break
		}
	}
	return res, nil
}

func describeLevel(l Level) string {
	if l.Open() {
		return "rate " + l.String()
	}
	return "concurrency " + l.String()
}

func probe(ctx context.Context, t Target, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := t.Call(ctx); err != nil {
		return fmt.Errorf("first request to %s failed (%s): %w", t, ErrorKind(err), err)
	}
	return nil
}

// RunLevel measures t at one level: warm-up, then windows until stable or
// opts.MaxTime. Every goroutine it starts has returned when it does.
func RunLevel(ctx context.Context, t Target, l Level, opts Options) (LevelResult, error) {
	opts = opts.withDefaults()
	progress := opts.Progress
	if progress == nil {
		progress = func(Progress) {}
	}
	return runLevel(ctx, t, l, opts, progress)
}

func runLevel(ctx context.Context, t Target, l Level, opts Options, progress func(Progress)) (LevelResult, error) {
	if l.Open() && (l.Rate <= 0 || math.IsInf(l.Rate, 0) || math.IsNaN(l.Rate)) {
		return LevelResult{}, fmt.Errorf("rate %v: want a positive number of requests per second", l.Rate)
	}
	rec := &recorder{}
	loadCtx, stopLoad := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		stopLoad()
		wg.Wait()
	}()
	if l.Open() {
		wg.Go(func() { openLoop(loadCtx, t, l, opts, rec, &wg) })
	} else {
		for i := range l.Concurrency {
			rng := rand.New(rand.NewPCG(opts.Seed, uint64(i)))
			wg.Go(func() { closedLoop(loadCtx, t, opts.Timeout, rec, rng) })
		}
	}

	progress(Progress{Level: l, Phase: "warm-up"})
	if err := sleep(ctx, opts.Warmup); err != nil {
		return LevelResult{}, err
	}
	var serverErr error
	snap := func() ServerStats {
		if serverErr != nil {
			return ServerStats{}
		}
		s, err := t.ServerStats(ctx)
		if err != nil {
			serverErr = err
		}
		return s
	}
	// snaps[i] is taken at the start of windows[i].
	snaps := []ServerStats{snap()}
	var windows []*window
	rec.start(time.Now())
	begin := time.Now()
	for {
		next := begin.Add(time.Duration(len(windows)+1) * opts.Window)
		if err := sleep(ctx, time.Until(next)); err != nil {
			return LevelResult{}, err
		}
		w := rec.rotate(time.Now())
		windows = append(windows, w)
		if old := len(windows) - opts.StableWindows - 1; old >= 0 {
			windows[old].latencies = nil // never reported: only the last windows are
		}
		snaps = append(snaps, snap())
		rates := make([]float64, len(windows))
		for i, w := range windows {
			rates[i] = w.rate()
		}
		progress(Progress{Level: l, Phase: "measure", Window: len(windows), Throughput: w.rate()})
		if Stable(rates, opts.StableWindows, opts.Tolerance) || time.Since(begin) >= opts.MaxTime {
			break
		}
	}
	rec.stop()

	rates := make([]float64, len(windows))
	for i, w := range windows {
		rates[i] = w.rate()
	}
	first := max(0, len(windows)-opts.StableWindows)
	res := summarise(l, windows[first:])
	res.Stable = Stable(rates, opts.StableWindows, opts.Tolerance)
	switch {
	case serverErr == nil:
		res.Server = Summarise(snaps[len(snaps)-1].Sub(snaps[first]))
	case !errors.Is(serverErr, ErrNoServerStats):
		// The client-side figures stand on their own; say why the
		// batching columns are empty rather than fail the level.
		res.ServerError = serverErr.Error()
	}
	return res, nil
}

// Stable reports whether the last n throughputs each lie within tol (a
// fraction) of their mean. All zero counts as stable: nothing will change.
func Stable(rates []float64, n int, tol float64) bool {
	if n <= 0 || len(rates) < n {
		return false
	}
	last := rates[len(rates)-n:]
	var mean float64
	for _, r := range last {
		mean += r
	}
	mean /= float64(n)
	for _, r := range last {
		if math.Abs(r-mean) > tol*mean {
			return false
		}
	}
	return true
}

// closedLoop sends one request after the other. After a refusal it waits
// as the server asked (Backoff) before it sends again, as a well-behaved
// client does; retrying at once would only spin, and in process take the
// CPU the runner needs.
func closedLoop(ctx context.Context, t Target, timeout time.Duration, rec *recorder, rng *rand.Rand) {
	refusals := 0 // in a row
	for ctx.Err() == nil {
		start := time.Now()
		rctx, cancel := context.WithTimeout(ctx, timeout)
		err := t.Call(rctx)
		cancel()
		rec.record(time.Since(start), err)
		refused, hint := Refused(err)
		if !refused {
			refusals = 0
			continue
		}
		refusals++
		wait := Backoff(hint, refusals, rng)
		if dl, ok := ctx.Deadline(); ok {
			wait = min(wait, time.Until(dl))
		}
		_ = sleep(ctx, wait) // ends with the level, whatever is left of wait
	}
}

// Back-off after a refusal that says nothing of when to come back: from
// BackoffMin, doubling with each refusal in a row up to BackoffMax, which is
// what benchtop's server sends as its shortest Retry-After.
const (
	BackoffMin = time.Millisecond
	BackoffMax = time.Second
)

// Backoff is how long a closed-loop caller waits after its n-th refusal in
// a row (n from 1): a random time between half of ceiling and all of it,
// where ceiling is retryAfter when the server gave one, else the doubling
// BackoffMin..BackoffMax. Never more than the server's retryAfter, and the
// jitter keeps callers refused together from coming back together.
func Backoff(retryAfter time.Duration, n int, rng *rand.Rand) time.Duration {
	ceiling := retryAfter
	if ceiling <= 0 {
		ceiling = min(BackoffMin<<min(max(n-1, 0), 30), BackoffMax)
	}
	half := ceiling / 2
	return half + time.Duration(rng.Int64N(int64(ceiling-half)+1))
}

// openLoop sends requests on schedule, each in its own goroutine, and
// never waits for an answer before the next is due. When it falls behind
// (a slow scheduler, or MaxInFlight reached) it sends at once, but each
// request's latency still counts from when it was due.
func openLoop(ctx context.Context, t Target, l Level, opts Options, rec *recorder, wg *sync.WaitGroup) {
	rng := rand.New(rand.NewPCG(opts.Seed, opts.Seed^0x9e3779b97f4a7c15))
	slots := make(chan struct{}, opts.MaxInFlight)
	timer := time.NewTimer(0)
	defer timer.Stop()
	<-timer.C
	gap := float64(time.Second) / l.Rate
	due := time.Now()
	for {
		if l.Poisson {
			due = due.Add(time.Duration(rng.ExpFloat64() * gap))
		} else {
			due = due.Add(time.Duration(gap))
		}
		if d := time.Until(due); d > 0 {
			timer.Reset(d)
			select {
			case <-timer.C:
			case <-ctx.Done():
				return
			}
		}
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return
		}
		due := due
		wg.Go(func() {
			defer func() { <-slots }()
			rctx, cancel := context.WithTimeout(ctx, opts.Timeout)
			err := t.Call(rctx)
			cancel()
			rec.record(time.Since(due), err)
		})
	}
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// window is what was answered during one measurement window.
type window struct {
	start, end time.Time
	latencies  []time.Duration // successes only; dropped once not reported
	ok         uint64          // successes, kept when latencies are dropped
	answered   uint64
	refused    uint64 // of the errors
	errors     map[string]uint64
	samples    map[string]string
}

// rate is the window's throughput: successes per second, the figure a
// level reports, and so the one whose stability is judged.
func (w *window) rate() float64 {
	d := w.end.Sub(w.start).Seconds()
	if d <= 0 {
		return 0
	}
	return float64(w.ok) / d
}

// recorder collects answers into the current window; outside the
// measured span (warm-up, after stop) it drops them.
type recorder struct {
	mu  sync.Mutex
	cur *window
}

func newWindow(start time.Time) *window {
	return &window{start: start, errors: map[string]uint64{}, samples: map[string]string{}}
}

func (r *recorder) start(now time.Time) {
	r.mu.Lock()
	r.cur = newWindow(now)
	r.mu.Unlock()
}

func (r *recorder) rotate(now time.Time) *window {
	r.mu.Lock()
	defer r.mu.Unlock()
	w := r.cur
	w.end = now
	r.cur = newWindow(now)
	return w
}

func (r *recorder) stop() {
	r.mu.Lock()
	r.cur = nil
	r.mu.Unlock()
}

func (r *recorder) record(lat time.Duration, err error) {
	var kind string
	var refused bool
	if err != nil {
		kind = ErrorKind(err)
		refused, _ = Refused(err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	w := r.cur
	if w == nil {
		return
	}
	w.answered++
	if err == nil {
		w.ok++
		w.latencies = append(w.latencies, lat)
		return
	}
	w.errors[kind]++
	if refused {
		w.refused++
	}
	if _, ok := w.samples[kind]; !ok {
		w.samples[kind] = err.Error()
	}
}

// summarise merges windows into a result.
func summarise(l Level, ws []*window) LevelResult {
	res := LevelResult{Level: l, Windows: len(ws), Errors: map[string]uint64{}, ErrorSamples: map[string]string{}}
	var lat []time.Duration
	for _, w := range ws {
		res.Span += w.end.Sub(w.start)
		res.Requests += w.answered
		res.Refused += w.refused
		lat = append(lat, w.latencies...)
		for k, n := range w.errors {
			res.Errors[k] += n
		}
		for k, m := range w.samples {
			if _, ok := res.ErrorSamples[k]; !ok {
				res.ErrorSamples[k] = m
			}
		}
	}
	res.OK = uint64(len(lat))
	if res.Span > 0 {
		res.Throughput = float64(res.OK) / res.Span.Seconds()
	}
	if len(lat) == 0 {
		return res
	}
	slices.Sort(lat)
	var sum time.Duration
	for _, d := range lat {
		sum += d
	}
	res.Mean = sum / time.Duration(len(lat))
	res.P50, res.P90, res.P99 = Percentile(lat, 0.50), Percentile(lat, 0.90), Percentile(lat, 0.99)
	res.Max = lat[len(lat)-1]
	return res
}

// Percentile is the nearest-rank percentile (q in [0, 1]) of sorted
// latencies: the smallest value with at least q of them at or below it.
func Percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}
