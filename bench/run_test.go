package bench

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/benchtop/benchtop/engine"
)

func TestClosedLoopLatency(t *testing.T) {
	// A handler that takes a known 5 ms: the percentiles must sit at or
	// just above it. Only loose bounds: the machine is shared.
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(5 * time.Millisecond)
	}))
	defer ts.Close()
	for _, c := range []int{1, 4} {
		t.Run(Level{Concurrency: c}.String(), func(t *testing.T) {
			opts := quick()
			opts.Warmup = 100 * time.Millisecond
			res, err := RunLevel(context.Background(), rawTarget(t, ts, c), Level{Concurrency: c}, opts)
			if err != nil {
				t.Fatal(err)
			}
			if res.OK == 0 || res.ErrorCount() != 0 {
				t.Fatalf("ok %d, errors %v", res.OK, res.Errors)
			}
			if res.P50 < 5*time.Millisecond || res.P50 > 12*time.Millisecond {
				t.Errorf("p50 %v, want within [5ms, 12ms] for a 5 ms handler", res.P50)
			}
			if !(res.P50 <= res.P90 && res.P90 <= res.P99 && res.P99 <= res.Max) {
				t.Errorf("percentiles out of order: p50 %v p90 %v p99 %v max %v", res.P50, res.P90, res.P99, res.Max)
			}
			// Each caller can finish at most one request per 5 ms.
			if limit := float64(c) * 200 * 1.05; res.Throughput > limit {
				t.Errorf("throughput %.0f/s exceeds %d callers × 200/s", res.Throughput, c)
			}
			if res.Server != nil {
				t.Errorf("a plain server has no batching figures, got %+v", res.Server)
			}
		})
	}
}

func TestOpenLoopRate(t *testing.T) {
	var posts atomic.Int64
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			posts.Add(1)
		}
	}))
	defer ts.Close()
	for _, poisson := range []bool{false, true} {
		l := Level{Rate: 200, Poisson: poisson}
		t.Run(l.Arrivals(), func(t *testing.T) {
			opts := Options{Window: 500 * time.Millisecond, MaxTime: 2 * time.Second, StableWindows: 4, Seed: 3, Timeout: 5 * time.Second}
			res, err := RunLevel(context.Background(), rawTarget(t, ts, 64), l, opts)
			if err != nil {
				t.Fatal(err)
			}
			if res.Windows != 4 {
				t.Fatalf("measured %d windows, want 4 (2 s of 500 ms)", res.Windows)
			}
			want := 200 * res.Span.Seconds()
			if got := float64(res.Requests); got < 0.9*want || got > 1.1*want {
				t.Errorf("%d requests answered in %v at 200/s, want %.0f ± 10%%", res.Requests, res.Span, want)
			}
		})
	}
}

func TestOpenLoopCoordinatedOmission(t *testing.T) {
	// The server stalls once for 300 ms, 300 ms into the level. Closed loop
	// with one caller sees one slow request among thousands; open loop
	// keeps sending on schedule, so every request due during the stall
	// waits for it, and the tail must show that.
	const stall = 300 * time.Millisecond
	newServer := func() *httptest.Server {
		var mu sync.Mutex
		var started, stallUntil time.Time
		return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodPost {
				return
			}
			mu.Lock()
			now := time.Now()
			if started.IsZero() {
				started = now
			}
			if stallUntil.IsZero() && now.Sub(started) > 300*time.Millisecond {
				stallUntil = now.Add(stall)
			}
			until := stallUntil
			mu.Unlock()
			time.Sleep(time.Until(until))
		}))
	}
	opts := Options{Window: 500 * time.Millisecond, MaxTime: 1500 * time.Millisecond, Seed: 3, Timeout: 5 * time.Second}
	tests := []struct {
		name  string
		level Level
		check func(t *testing.T, r LevelResult)
	}{
		{"open", Level{Rate: 200}, func(t *testing.T, r LevelResult) {
			if r.P99 < 200*time.Millisecond {
				t.Errorf("open loop p99 %v hides a %v stall (p50 %v, %d requests)", r.P99, stall, r.P50, r.OK)
			}
		}},
		{"closed", Level{Concurrency: 1}, func(t *testing.T, r LevelResult) {
			if r.Max < stall-10*time.Millisecond {
				t.Errorf("closed loop max %v, want the %v stall", r.Max, stall)
			}
			if r.P99 > 100*time.Millisecond {
				t.Errorf("closed loop p99 %v: expected one slow request among %d to leave p99 low", r.P99, r.OK)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ts := newServer()
			defer ts.Close()
			res, err := RunLevel(context.Background(), rawTarget(t, ts, 64), tc.level, opts)
			if err != nil {
				t.Fatal(err)
			}
			if res.Windows != 3 {
				t.Fatalf("measured %d windows, want 3 (the stall must be inside them)", res.Windows)
			}
			tc.check(t, res)
		})
	}
}

func TestErrorsByKind(t *testing.T) {
	var n atomic.Int64
	every3rd := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && n.Add(1)%3 == 0 {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte(`{"error": "overloaded: queue full"}`))
		}
	}))
	defer every3rd.Close()
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			select {
			case <-time.After(time.Second):
			case <-r.Context().Done():
			}
		}
	}))
	defer slow.Close()
	closed := httptest.NewServer(okHandler)
	closedTarget := rawTarget(t, closed, 1)
	closed.Close()

	tests := []struct {
		name    string
		target  *HTTP
		timeout time.Duration
		check   func(t *testing.T, r LevelResult)
	}{
		{"503 every third", rawTarget(t, every3rd, 1), 5 * time.Second, func(t *testing.T, r LevelResult) {
			got := r.Errors["http_503"]
			if len(r.Errors) != 1 || got == 0 {
				t.Fatalf("errors %v, want only http_503", r.Errors)
			}
			// Window edges may split a cycle of three.
			if d := int64(r.Requests) - 3*int64(got); d < -3 || d > 3 {
				t.Errorf("%d × 503 in %d requests, want a third", got, r.Requests)
			}
			if r.ErrorSamples["http_503"] != "http 503: overloaded: queue full" {
				t.Errorf("sample %q, want the server's JSON error", r.ErrorSamples["http_503"])
			}
		}},
		{"timeout", rawTarget(t, slow, 1), 20 * time.Millisecond, func(t *testing.T, r LevelResult) {
			if r.OK != 0 || r.Errors[KindTimeout] == 0 || len(r.Errors) != 1 {
				t.Errorf("ok %d, errors %v, want only timeouts", r.OK, r.Errors)
			}
		}},
		{"connection refused", closedTarget, 5 * time.Second, func(t *testing.T, r LevelResult) {
			if r.OK != 0 || r.Errors[KindConnection] == 0 || len(r.Errors) != 1 {
				t.Errorf("ok %d, errors %v, want only connection errors", r.OK, r.Errors)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			opts := quick()
			opts.Timeout = tc.timeout
			res, err := RunLevel(context.Background(), tc.target, Level{Concurrency: 1}, opts)
			if err != nil {
				t.Fatal(err)
			}
			if res.Requests != res.OK+sum(res.Errors) {
				t.Errorf("requests %d ≠ ok %d + errors %v", res.Requests, res.OK, res.Errors)
			}
			tc.check(t, res)
		})
	}
}

func sum(m map[string]uint64) uint64 {
	var n uint64
	for _, v := range m {
		n += v
	}
	return n
}

func TestStable(t *testing.T) {
	tests := []struct {
		name  string
		rates []float64
		want  bool
	}{
		{"too few windows", []float64{100, 100}, false},
		{"flat", []float64{100, 100, 100}, true},
		{"within 10%", []float64{95, 100, 105}, true},
		{"one outlier", []float64{80, 100, 105}, false},
		{"settles after warm-up", []float64{10, 50, 99, 100, 101}, true},
		{"still climbing", []float64{10, 50, 80, 100, 120}, false},
		{"all zero", []float64{0, 0, 0}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Stable(tc.rates, 3, 0.1); got != tc.want {
				t.Errorf("Stable(%v) = %v, want %v", tc.rates, got, tc.want)
			}
		})
	}
}

// flipTarget answers every call after a millisecond, succeeding while ok
// is set and failing otherwise.
type flipTarget struct{ ok atomic.Bool }

func (f *flipTarget) Call(ctx context.Context) error {
	time.Sleep(time.Millisecond)
	if f.ok.Load() {
		return nil
	}
	return errors.New("flip: failing this window")
}

func (f *flipTarget) ServerStats(context.Context) (ServerStats, error) {
	return ServerStats{}, ErrNoServerStats
}

func (f *flipTarget) String() string { return "flip" }

func TestStabilityJudgedOnSuccesses(t *testing.T) {
	// Answers come at a steady rate, but every other window fails them
	// all: the successes per second that the level reports swing between
	// full and nothing, so the level is not stable, however steady the
	// answers are (a wide tolerance, so that a busy machine cannot make
	// them look unsteady either).
	f := &flipTarget{}
	f.ok.Store(true)
	opts := Options{Window: 100 * time.Millisecond, MaxTime: 600 * time.Millisecond, Tolerance: 0.5, Timeout: 5 * time.Second, Seed: 1}
	opts.Progress = func(p Progress) {
		if p.Phase == "measure" {
			f.ok.Store(!f.ok.Load())
		}
	}
	res, err := RunLevel(context.Background(), f, Level{Concurrency: 2}, opts)
	if err != nil {
		t.Fatal(err)
	}
	if res.Stable {
		t.Errorf("stable after %d windows, though successes swing between windows (%d of %d answers succeeded)", res.Windows, res.OK, res.Requests)
	}
	if res.OK == 0 || res.OK == res.Requests {
		t.Errorf("%d of %d answers succeeded, want some of each", res.OK, res.Requests)
	}
	if want := float64(res.OK) / res.Span.Seconds(); math.Abs(res.Throughput-want) > 1e-9*want {
		t.Errorf("throughput %.1f/s, want the successes' %.1f/s", res.Throughput, want)
	}
}

func TestWindowRateCountsSuccesses(t *testing.T) {
	start := time.Now()
	w := &window{start: start, end: start.Add(time.Second), answered: 10, ok: 4}
	if got := w.rate(); got != 4 {
		t.Errorf("rate %v for 4 successes of 10 answers in 1 s, want 4", got)
	}
	w.latencies = nil // dropped once the window is too old to report
	if got := w.rate(); got != 4 {
		t.Errorf("rate %v after its latencies were dropped, want 4", got)
	}
}

func TestStopsAtStability(t *testing.T) {
	// A steady server settles within a few windows, well before MaxTime.
	ts := httptest.NewServer(okHandler)
	defer ts.Close()
	opts := Options{Window: 100 * time.Millisecond, MaxTime: 20 * time.Second, Tolerance: 0.5, Seed: 1}
	res, err := RunLevel(context.Background(), rawTarget(t, ts, 1), Level{Rate: 100}, opts)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Stable || res.Windows != 3 {
		t.Errorf("stable %v after %d windows, want stable after the minimum 3", res.Stable, res.Windows)
	}
}

func TestPercentile(t *testing.T) {
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	var hundred []time.Duration
	for i := 1; i <= 100; i++ {
		hundred = append(hundred, ms(i))
	}
	tests := []struct {
		name   string
		sorted []time.Duration
		q      float64
		want   time.Duration
	}{
		{"empty", nil, 0.5, 0},
		{"one", []time.Duration{ms(3)}, 0.99, ms(3)},
		{"p50 of 100", hundred, 0.5, ms(50)},
		{"p99 of 100", hundred, 0.99, ms(99)},
		{"max", hundred, 1, ms(100)},
		{"min", hundred, 0, ms(1)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Percentile(tc.sorted, tc.q); got != tc.want {
				t.Errorf("Percentile(q=%v) = %v, want %v", tc.q, got, tc.want)
			}
		})
	}
}

func TestSweepCancelled(t *testing.T) {
	// Ending ctx mid-sweep returns promptly with what was done and every
	// load goroutine stopped (the race detector and -count catch leaks).
	ts := httptest.NewServer(okHandler)
	defer ts.Close()
	ctx, cancel := context.WithCancel(context.Background())
	opts := quick()
	opts.Progress = func(p Progress) {
		if p.Index == 2 && p.Phase == "measure" {
			cancel()
		}
	}
	res, err := Sweep(ctx, rawTarget(t, ts, 4), []Level{{Concurrency: 1}, {Concurrency: 4}, {Concurrency: 8}}, opts)
	if err == nil {
		t.Fatal("no error after cancel")
	}
	if len(res.Levels) != 1 {
		t.Errorf("%d levels done, want 1", len(res.Levels))
	}
}

// refusingTarget refuses every call with err, counting the calls.
type refusingTarget struct {
	calls atomic.Int64
	err   error
}

func (f *refusingTarget) Call(context.Context) error { f.calls.Add(1); return f.err }

func (f *refusingTarget) ServerStats(context.Context) (ServerStats, error) {
	return ServerStats{}, ErrNoServerStats
}

func (f *refusingTarget) String() string { return "refusing" }

// oneSecond measures one window of one second, with no warm-up.
func oneSecond() Options {
	return Options{Window: time.Second, MaxTime: time.Second, StableWindows: 1, Timeout: 5 * time.Second, Seed: 1}
}

func TestClosedLoopHonoursRetryAfter(t *testing.T) {
	// Against a server that refuses everything with Retry-After, closed-loop
	// callers wait before they come back: over one second, a few attempts
	// each, not thousands. A Retry-After longer than the level holds them
	// until it ends, and not longer.
	for _, tc := range []struct {
		retryAfter  string
		most        int64 // attempts by 4 callers
		longestWall time.Duration
	}{
		// Each caller: at once, then after 0.5–1 s, perhaps once more.
		{"1", 4 * 3, 3 * time.Second},
		{"3600", 4 * 1, 3 * time.Second},
	} {
		t.Run("Retry-After: "+tc.retryAfter, func(t *testing.T) {
			var posts atomic.Int64
			ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Method == http.MethodPost {
					posts.Add(1)
				}
				w.Header().Set("Retry-After", tc.retryAfter)
				w.WriteHeader(http.StatusServiceUnavailable)
				w.Write([]byte(`{"error": "overloaded: queue full"}`))
			}))
			defer ts.Close()
			start := time.Now()
			res, err := RunLevel(context.Background(), rawTarget(t, ts, 4), Level{Concurrency: 4}, oneSecond())
			if err != nil {
				t.Fatal(err)
			}
			wall := time.Since(start)
			t.Logf("%d attempts in %v", posts.Load(), wall)
			if n := posts.Load(); n < 4 || n > tc.most {
				t.Fatalf("4 callers made %d attempts in %v against Retry-After: %s, want 4 to %d", n, wall, tc.retryAfter, tc.most)
			}
			if wall > tc.longestWall {
				t.Errorf("the level took %v: a back-off outlasted it", wall)
			}
			if res.OK != 0 || res.Refused != res.Requests || res.Errors["http_503"] != res.Requests {
				t.Errorf("ok %d, refused %d, errors %v of %d: want every attempt refused", res.OK, res.Refused, res.Errors, res.Requests)
			}
		})
	}
}

func TestClosedLoopBacksOffInProcess(t *testing.T) {
	// In process the engine's overload error carries its own RetryAfter;
	// an overload without one backs off from 1 ms, doubling, up to 1 s.
	tests := []struct {
		name        string
		err         error
		least, most int64 // attempts by 4 callers in one second
	}{
		// 50–100 ms apart: 10 to 21 attempts each.
		{"OverloadError with RetryAfter", fmt.Errorf("runner %q method %q: %w", "sim", "predict", &engine.OverloadError{Reason: "queue full", RetryAfter: 100 * time.Millisecond}), 4 * 5, 4 * 22},
		// 0.5+1+2+…+512 ms halves and wholes: about 12 each.
		{"overloaded without a hint", fmt.Errorf("runner: %w", engine.ErrOverloaded), 4 * 5, 4 * 16},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			target := &refusingTarget{err: tc.err}
			res, err := RunLevel(context.Background(), target, Level{Concurrency: 4}, oneSecond())
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%d attempts", target.calls.Load())
			if n := target.calls.Load(); n < tc.least || n > tc.most {
				t.Fatalf("4 callers made %d attempts in one second, want %d to %d", n, tc.least, tc.most)
			}
			if res.Errors[KindOverloaded] != res.Requests || res.Refused != res.Requests {
				t.Errorf("errors %v, refused %d of %d: want every attempt refused as overloaded", res.Errors, res.Refused, res.Requests)
			}
			if res.RefusedShare() != 1 {
				t.Errorf("refused share %v, want 1", res.RefusedShare())
			}
			if want := float64(res.Refused) / res.Span.Seconds(); res.RefusedRate() != want {
				t.Errorf("refused rate %v, want %v", res.RefusedRate(), want)
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	tests := []struct {
		name       string
		retryAfter time.Duration
		n          int
		lo, hi     time.Duration
	}{
		{"the server's hint", time.Second, 1, 500 * time.Millisecond, time.Second},
		{"the hint, however many refusals", 2 * time.Second, 40, time.Second, 2 * time.Second},
		{"no hint, first refusal", 0, 1, BackoffMin / 2, BackoffMin},
		{"no hint, fourth refusal", 0, 4, 4 * BackoffMin, 8 * BackoffMin},
		{"no hint, many refusals", 0, 1000, BackoffMax / 2, BackoffMax},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			seen := map[time.Duration]bool{}
			for range 1000 {
				d := Backoff(tc.retryAfter, tc.n, rng)
				if d < tc.lo || d > tc.hi {
					t.Fatalf("Backoff(%v, %d) = %v, want within [%v, %v]", tc.retryAfter, tc.n, d, tc.lo, tc.hi)
				}
				seen[d] = true
			}
			if len(seen) < 100 {
				t.Errorf("%d distinct waits in 1000: not jittered", len(seen))
			}
		})
	}
}

func TestRetryAfterHeader(t *testing.T) {
	now := time.Date(2025, 11, 25, 15, 0, 0, 0, time.UTC)
	tests := map[string]time.Duration{
		"":                              0,
		"1":                             time.Second,
		" 30 ":                          30 * time.Second,
		"0":                             0,
		"-5":                            0,
		"soon":                          0,
		"99999999999999999":             maxRetryAfter * time.Second,
		"Tue, 25 Nov 2025 15:00:10 GMT": 10 * time.Second,
		"Tue, 25 Nov 2025 14:00:00 GMT": 0,
	}
	for h, want := range tests {
		if got := retryAfter(h, now); got != want {
			t.Errorf("retryAfter(%q) = %v, want %v", h, got, want)
		}
	}
}
