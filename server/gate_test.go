package server_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/benchtop/benchtop/engine"
	"github.com/benchtop/benchtop/engine/tensor"
	"github.com/benchtop/benchtop/server"
)

// gate is a test runnable whose batches the test holds and lets go: "run"
// takes float32 [N, 1] and returns it; a batch holding a row of -1 waits
// until release is closed (or its ctx ends). It counts every row it
// executes, so that a test can tell whether a request ran at all.
type gate struct {
	mu      sync.Mutex
	seen    map[float32]int
	started chan struct{} // a value each time a held batch starts
	release chan struct{}
}

func newGate() *gate {
	return &gate{seen: map[float32]int{}, started: make(chan struct{}, 16), release: make(chan struct{})}
}

func (g *gate) typ() *engine.RunnableType {
	return &engine.RunnableType{
		Name: "gate",
		Methods: []engine.MethodSpec{{
			Name: "run", Batchable: true,
			Inputs:  tensor.IOSpecs{{Kind: tensor.KindTensor, DType: tensor.Float32, Shape: []int{-1, 1}}},
			Outputs: tensor.IOSpecs{{Kind: tensor.KindTensor, DType: tensor.Float32, Shape: []int{-1, 1}}},
		}},
		New: func(context.Context, engine.Env) (engine.Instance, error) { return g, nil },
	}
}

func (g *gate) Call(ctx context.Context, _ string, in []tensor.Value) ([]tensor.Value, error) {
	rows := in[0].Tensor().Float32s()
	g.mu.Lock()
	for _, v := range rows {
		g.seen[v]++
	}
	g.mu.Unlock()
	for _, v := range rows {
		if v == -1 {
			g.started <- struct{}{}
			select {
			case <-g.release:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
	}
	return in, nil
}

func (g *gate) count(v float32) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.seen[v]
}

// gateConfig serves the gate as POST /gate and as the v2 model "gate".
const gateConfig = `
runners:
  - name: gate
    runnable: gate
    workers: 1
    timeout: 30s
    batching: {policy: adaptive, max_batch_size: 16, max_latency_ms: 0, max_queue_size: 2}
apis:
  - {name: gate, runner: gate, method: run, input: ndarray, output: ndarray}
`

// send is do for other goroutines: it reports failures instead of ending
// the test.
func (f *fixture) send(ctx context.Context, method, path, contentType, body string) (response, error) {
	req, err := http.NewRequestWithContext(ctx, method, f.url+path, strings.NewReader(body))
	if err != nil {
		return response{}, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return response{resp.StatusCode, resp.Header, string(b)}, err
}

// sendAsync sends a request in the background; its answer comes on the
// channel (with an error status 0 if it failed to come).
func (f *fixture) sendAsync(method, path, contentType, body string) <-chan response {
	ch := make(chan response, 1)
	go func() {
		r, err := f.send(context.Background(), method, path, contentType, body)
		if err != nil {
			r = response{body: err.Error()}
		}
		ch <- r
	}()
	return ch
}

// waitUntil polls cond until it holds; what says what the test waits for.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("still waiting for %s after 10s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// methodStats is the first method's stats of runner name.
func (f *fixture) methodStats(name string) engine.MethodStats {
	f.t.Helper()
	r, err := f.eng.Runner(name)
	if err != nil {
		f.t.Fatal(err)
	}
	return r.Stats(engine.StatsOptions{}).Methods[0]
}

// TestClientDisconnectCancelsQueuedWork: a client that hangs up while its
// request waits in the queue withdraws it: it never executes.
func TestClientDisconnectCancelsQueuedWork(t *testing.T) {
	g := newGate()
	f := newFixtureConfig(t, gateConfig, server.Options{}, g.typ())
	// Hold the only worker, then queue a request and hang up.
	held := f.sendAsync("POST", "/gate", "application/json", `[[-1]]`)
	<-g.started
	ctx, cancel := context.WithCancel(context.Background())
	hungUp := make(chan error, 1)
	go func() {
		_, err := f.send(ctx, "POST", "/gate", "application/json", `[[42]]`)
		hungUp <- err
	}()
	waitUntil(t, "the request to queue", func() bool { return f.methodStats("gate").Queue.Depth == 1 })
	cancel()
	if err := <-hungUp; !errors.Is(err, context.Canceled) {
		t.Fatalf("the client that hung up got %v", err)
	}
	waitUntil(t, "the server to see the hang-up", func() bool { return f.methodStats("gate").Totals["cancelled"] == 1 })
	close(g.release)
	if r := <-held; r.status != 200 {
		t.Fatalf("the held request: %d %s", r.status, r.body)
	}
	// Queues are FIFO: had the withdrawn request stayed queued, it would
	// have run before this one.
	if r := f.do("POST", "/gate", "application/json", `[[7]]`); r.status != 200 || r.body != "[[7.0]]\n" {
		t.Fatalf("after the hang-up: %d %s", r.status, r.body)
	}
	if n := g.count(42); n != 0 {
		t.Fatalf("the request whose client hung up while it was queued ran %d times", n)
	}
	if n := g.count(7); n != 1 {
		t.Fatalf("the next request ran %d times, want 1", n)
	}
	// The front end counts the hang-up as nginx's 499, apart from the
	// answers (once its handler has returned).
	f.waitMetric("benchtop_api_requests_total", map[string]string{"api": "gate", "code": "499"}, 1)
	if got := f.metric("benchtop_api_requests_total", map[string]string{"api": "gate", "code": "200"}); got != 2 {
		t.Errorf("benchtop_api_requests_total{api=gate,code=200} = %v, want 2", got)
	}
}

// batchHeaders reads X-Batch-Rows, X-Batch-Requests and X-Queue-Ms.
func batchHeaders(t *testing.T, what string, r response) (rows, requests int, queued time.Duration) {
	t.Helper()
	if r.status != 200 {
		t.Fatalf("%s: %d %s", what, r.status, r.body)
	}
	var err error
	if rows, err = strconv.Atoi(r.header.Get("X-Batch-Rows")); err != nil {
		t.Fatalf("%s: X-Batch-Rows %q", what, r.header.Get("X-Batch-Rows"))
	}
	if requests, err = strconv.Atoi(r.header.Get("X-Batch-Requests")); err != nil {
		t.Fatalf("%s: X-Batch-Requests %q", what, r.header.Get("X-Batch-Requests"))
	}
	ms, err := strconv.ParseFloat(r.header.Get("X-Queue-Ms"), 64)
	if err != nil || ms < 0 || math.IsInf(ms, 0) {
		t.Fatalf("%s: X-Queue-Ms %q", what, r.header.Get("X-Queue-Ms"))
	}
	return rows, requests, time.Duration(ms * float64(time.Millisecond))
}

// TestBatchHeaders: both inference routes say which batch served the
// request — its rows, the requests sharing it, and how long the request
// queued — with figures that agree with a batch the test assembled.
func TestBatchHeaders(t *testing.T) {
	g := newGate()
	f := newFixtureConfig(t, gateConfig, server.Options{}, g.typ())
	sent := time.Now()
	held := f.sendAsync("POST", "/gate", "application/json", `[[-1]]`)
	<-g.started
	// Two requests wait behind it, one per route; the next batch takes
	// both: 2 + 3 rows.
	api := f.sendAsync("POST", "/gate", "application/json", `[[1], [2]]`)
	waitUntil(t, "the API request to queue", func() bool { return f.methodStats("gate").Queue.Depth == 1 })
	apiQueued := time.Now()
	v2 := f.sendAsync("POST", "/v2/models/gate/infer", "application/json",
		`{"inputs": [{"name": "input", "shape": [3, 1], "datatype": "FP32", "data": [3, 4, 5]}]}`)
	waitUntil(t, "the v2 request to queue", func() bool { return f.methodStats("gate").Queue.Depth == 2 })
	v2Queued := time.Now()
	// Read the clock before opening the gate: the next batch may start
	// before this goroutine runs again.
	released := time.Now()
	close(g.release)

	rows, requests, queued := batchHeaders(t, "the held request", <-held)
	if rows != 1 || requests != 1 || queued > time.Since(sent) {
		t.Fatalf("the held request: X-Batch-Rows %d, X-Batch-Requests %d, X-Queue-Ms %v; want 1, 1 and no more than its whole time", rows, requests, queued)
	}
	ra := <-api
	rv := <-v2
	if ra.body != "[[1.0],[2.0]]\n" || !strings.Contains(rv.body, `"shape":[3,1],"data":[3.0,4.0,5.0]`) {
		t.Fatalf("answers: %s / %s", ra.body, rv.body)
	}
	aRows, aReqs, aQueued := batchHeaders(t, "POST /gate", ra)
	vRows, vReqs, vQueued := batchHeaders(t, "v2 infer", rv)
	if aRows != 5 || aReqs != 2 || vRows != 5 || vReqs != 2 {
		t.Fatalf("the shared batch: API says %d rows of %d requests, v2 %d of %d; want 5 of 2", aRows, aReqs, vRows, vReqs)
	}
	// Each waited at least from when the test saw it queued until the
	// gate opened, and the one queued first waited longer (X-Queue-Ms is
	// rounded to the microsecond).
	if aQueued < released.Sub(apiQueued)-time.Microsecond || vQueued < released.Sub(v2Queued)-time.Microsecond {
		t.Fatalf("X-Queue-Ms %v and %v: less than they were seen waiting (%v, %v)", aQueued, vQueued, released.Sub(apiQueued), released.Sub(v2Queued))
	}
	if aQueued+time.Microsecond < vQueued {
		t.Fatalf("X-Queue-Ms: the API request queued first (%v) but waited less than the v2 one (%v)", aQueued, vQueued)
	}
}

// TestRetryAfterReflectsTheWait: a refusal behind a batch that has run for
// a second asks for seconds, not for the 1 s floor, although no batch has
// finished yet to teach the runner what a batch costs.
func TestRetryAfterReflectsTheWait(t *testing.T) {
	g := newGate()
	f := newFixtureConfig(t, strings.Replace(gateConfig, "timeout: 30s", "timeout: 5s", 1), server.Options{}, g.typ())
	held := f.sendAsync("POST", "/gate", "application/json", `[[-1]]`)
	<-g.started
	queued := []<-chan response{
		f.sendAsync("POST", "/gate", "application/json", `[[1]]`),
		f.sendAsync("POST", "/gate", "application/json", `[[2]]`),
	}
	waitUntil(t, "a full queue", func() bool { return f.methodStats("gate").Queue.Depth == 2 })
	time.Sleep(time.Second) // the running batch is at least 1 s old
	r := f.do("POST", "/gate", "application/json", `[[3]]`)
	close(g.release)
	if r.status != 503 {
		t.Fatalf("behind a full queue: %d %s", r.status, r.body)
	}
	// At least 1 s left of the running batch (it has run 1 s; expect as
	// much again) and 2 s for the queued batch; each bounded by the 5 s
	// timeout.
	secs, err := strconv.Atoi(r.header.Get("Retry-After"))
	if err != nil || secs < 3 || secs > 10 {
		t.Fatalf("Retry-After %q behind a 1 s old batch and one queued, timeout 5s: want 3 to 10 seconds", r.header.Get("Retry-After"))
	}
	for _, ch := range append(queued, held) {
		if r := <-ch; r.status != 200 {
			t.Fatalf("a request admitted before the refusal: %d %s", r.status, r.body)
		}
	}
}

// lateType is a runnable whose workers start only once start is closed,
// or never, failing with err, when err is set.
func lateType(name string, start chan struct{}, err error) *engine.RunnableType {
	typ := newGate().typ()
	typ.Name = name
	inner := typ.New
	typ.New = func(ctx context.Context, env engine.Env) (engine.Instance, error) {
		if err != nil {
			return nil, err
		}
		select {
		case <-start:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return inner(ctx, env)
	}
	return typ
}

// TestNotReadyNamesTheRunner: /readyz, /v2/health/ready and a model's v2
// ready route answer 503 while a runner has no worker ready, and say which
// runner and why; once it starts, 200.
func TestNotReadyNamesTheRunner(t *testing.T) {
	start := make(chan struct{})
	f := newFixtureConfig(t, testConfig, server.Options{},
		lateType("late", start, nil), lateType("broken", nil, errors.New("weights.bin: no such file")))
	for _, name := range []string{"late", "broken"} {
		if _, err := f.eng.StartRunner(t.Context(), engine.RunnerConfig{Name: name, Runnable: name, Workers: 1}); err != nil {
			t.Fatal(err)
		}
	}
	waitUntil(t, "the broken runner's start to fail", func() bool {
		r, _ := f.eng.Runner("broken")
		return r.Stats(engine.StatsOptions{}).StartError != ""
	})
	for _, path := range []string{"/readyz", "/v2/health/ready"} {
		r := f.do("GET", path, "", "")
		runners, _ := r.json(t)["runners"].(map[string]any)
		if r.status != 503 || runners["late"] != "starting" || runners["sim"] != "ready" ||
			!strings.HasPrefix(fmt.Sprint(runners["broken"]), "not ready: ") || !strings.Contains(fmt.Sprint(runners["broken"]), "weights.bin: no such file") {
			t.Fatalf("%s with a runner starting and one failing: %d %s", path, r.status, r.body)
		}
	}
	for _, name := range []string{"late", "broken"} {
		r := f.do("GET", "/v2/models/"+name+"/ready", "", "")
		if m := r.json(t); r.status != 503 || m["name"] != name || m["ready"] != false {
			t.Fatalf("/v2/models/%s/ready: %d %s", name, r.status, r.body)
		}
	}
	if r := f.do("GET", "/v2/models/sim/ready", "", ""); r.status != 200 {
		t.Fatalf("/v2/models/sim/ready beside runners not ready: %d %s", r.status, r.body)
	}

	close(start)
	if err := f.eng.StopRunner(t.Context(), "broken"); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the late runner to be ready", func() bool {
		r, _ := f.eng.Runner("late")
		return r.Ready()
	})
	if r := f.do("GET", "/readyz", "", ""); r.status != 200 || r.json(t)["runners"].(map[string]any)["late"] != "ready" {
		t.Fatalf("/readyz once every runner is ready: %d %s", r.status, r.body)
	}
	if r := f.do("GET", "/v2/models/late/ready", "", ""); r.status != 200 || r.json(t)["ready"] != true {
		t.Fatalf("/v2/models/late/ready once started: %d %s", r.status, r.body)
	}
}

// serveUntil runs Serve on a fresh port until stop is called; done gets
// its result.
func (f *fixture) serveUntil() (url string, stop func(), done <-chan error) {
	f.t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan error, 1)
	go func() { ch <- f.srv.Serve(ctx, ln) }()
	f.t.Cleanup(cancel)
	return "http://" + ln.Addr().String(), cancel, ch
}

// TestServeDrains: when its context ends, Serve stops accepting at once,
// lets the request in flight finish and answers it, then returns nil; past
// DrainTimeout it gives up and says so.
func TestServeDrains(t *testing.T) {
	t.Run("in-flight requests finish", func(t *testing.T) {
		g := newGate()
		f := newFixtureConfig(t, gateConfig, server.Options{DrainTimeout: 30 * time.Second}, g.typ())
		url, stop, done := f.serveUntil()
		f.url = url
		held := f.sendAsync("POST", "/gate", "application/json", `[[-1]]`)
		<-g.started
		stop()
		waitUntil(t, "the listener to close", func() bool {
			c, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
			if err == nil {
				c.Close()
			}
			return err != nil
		})
		select {
		case err := <-done:
			t.Fatalf("Serve returned (%v) with a request in flight", err)
		default:
		}
		close(g.release)
		if r := <-held; r.status != 200 || r.body != "[[-1.0]]\n" {
			t.Fatalf("the request in flight at shutdown: %d %s", r.status, r.body)
		}
		if err := <-done; err != nil {
			t.Fatalf("Serve after draining: %v", err)
		}
	})
	t.Run("up to DrainTimeout", func(t *testing.T) {
		g := newGate()
		f := newFixtureConfig(t, gateConfig, server.Options{DrainTimeout: 50 * time.Millisecond}, g.typ())
		url, stop, done := f.serveUntil()
		f.url = url
		held := f.sendAsync("POST", "/gate", "application/json", `[[-1]]`)
		<-g.started
		stop()
		err := <-done
		close(g.release)
		if err == nil || !strings.Contains(err.Error(), "drain in-flight requests") || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Serve with a request held past DrainTimeout: %v", err)
		}
		<-held
	})
}
