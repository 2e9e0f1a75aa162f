package server_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/benchtop/benchtop/server"
)

// rawRequest opens a connection and sends a request's head and the first
// part of its body, leaving the rest unsent: a slow client.
func rawRequest(t *testing.T, url, head string, bodyStart string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := io.WriteString(c, strings.ReplaceAll(head, "\n", "\r\n")+"\r\n"+bodyStart); err != nil {
		t.Fatal(err)
	}
	return c
}

// readResponse reads one response from a raw connection, failing after wait.
func readResponse(t *testing.T, c net.Conn, wait time.Duration) response {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(wait))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no response within %s: %v", wait, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{resp.StatusCode, resp.Header, string(b)}
}

// metric reads one sample from /metrics; -1 if it is missing.
func (f *fixture) metric(name string, labels map[string]string) float64 {
	f.t.Helper()
	m := f.do("GET", "/metrics", "", "")
	parser := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := parser.TextToMetricFamilies(strings.NewReader(m.body))
	if err != nil {
		f.t.Fatalf("metrics: %v", err)
	}
next:
	for _, mt := range mfs[name].GetMetric() {
		for _, p := range mt.GetLabel() {
			if want, ok := labels[p.GetName()]; ok && want != p.GetValue() {
				continue next
			}
		}
		switch {
		case mt.Gauge != nil:
			return mt.GetGauge().GetValue()
		case mt.Counter != nil:
			return mt.GetCounter().GetValue()
		}
	}
	return -1
}

// waitMetric polls until a metric has a value (the server has admitted a
// request that the test cannot otherwise observe).
func (f *fixture) waitMetric(name string, labels map[string]string, want float64) {
	f.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := f.metric(name, labels)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("%s%v = %v, want %v", name, labels, got, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestSlowBodyGets408WhileLivezAnswers: clients that send their bodies a
// byte at a time are cut off at server.body_timeout with a 408 that says so,
// and the server keeps answering others meanwhile.
func TestSlowBodyGets408WhileLivezAnswers(t *testing.T) {
	const timeout = 300 * time.Millisecond
	f := newFixture(t, server.Options{BodyTimeout: timeout})
	head := "POST /predict HTTP/1.1\nHost: 127.0.0.1\nContent-Type: application/json\nContent-Length: 100000\n"
	var conns []net.Conn
	start := time.Now()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	defer func() { close(stop); wg.Wait() }()
	for range 3 {
		c := rawRequest(t, f.url, head, "[[")
		conns = append(conns, c)
		wg.Go(func() { // a byte every 50 ms, until the server hangs up
			for {
				select {
				case <-stop:
					return
				case <-time.After(50 * time.Millisecond):
				}
				if _, err := c.Write([]byte("1")); err != nil {
					return
				}
			}
		})
	}
	if r := f.do("GET", "/livez", "", ""); r.status != 200 {
		t.Fatalf("livez during slow bodies: %d %s", r.status, r.body)
	}
	for i, c := range conns {
		r := readResponse(t, c, 5*time.Second)
		if r.status != http.StatusRequestTimeout {
			t.Fatalf("slow client %d: status %d, want 408: %s", i, r.status, r.body)
		}
		msg, _ := r.json(t)["error"].(string)
		if !strings.Contains(msg, "300ms") || !strings.Contains(msg, "server.body_timeout") {
			t.Fatalf("408 error %q does not say how long it was given and which key sets it", msg)
		}
	}
	if took := time.Since(start); took > timeout+2*time.Second {
		t.Fatalf("408s took %s for a %s deadline", took, timeout)
	}
	if n := f.metric("benchtop_http_refused_total", map[string]string{"reason": "body_timeout"}); n != 3 {
		t.Fatalf("refused{body_timeout} = %v, want 3", n)
	}
}

// TestBodyDeadlineDoesNotCutInference: the deadline covers the body, not
// the work that follows it.
func TestBodyDeadlineDoesNotCutInference(t *testing.T) {
	f := newFixtureConfig(t, `
runners:
  - {name: lazy, runnable: sim, init: {fixed_ms: 400, per_row_ms: 0}, workers: 1, batching: {policy: none, max_latency_ms: 0}}
apis:
  - {name: lazy, runner: lazy, method: predict, input: ndarray, output: ndarray}
`, server.Options{BodyTimeout: 100 * time.Millisecond})
	if r := f.do("POST", "/lazy", "application/json", `[[1]]`); r.status != 200 || r.body != "[[2.0]]\n" {
		t.Fatalf("a 400 ms inference under a 100 ms body deadline: %d %s", r.status, r.body)
	}
}

// holdBudget starts a request that declares n bytes and sends one, so that
// it holds n bytes of the in-flight budget until finish sends the rest.
func (f *fixture) holdBudget(n int) (finish func() response) {
	f.t.Helper()
	body := "[[1]]" + strings.Repeat(" ", n-5)
	c := rawRequest(f.t, f.url, fmt.Sprintf("POST /predict HTTP/1.1\nHost: 127.0.0.1\nContent-Type: application/json\nContent-Length: %d\n", n), body[:1])
	f.waitMetric("benchtop_http_inflight_body_bytes", nil, float64(n))
	return func() response {
		if _, err := io.WriteString(c, body[1:]); err != nil {
			f.t.Fatal(err)
		}
		return readResponse(f.t, c, 5*time.Second)
	}
}

// TestInflightBytesAreBounded: past server.max_inflight_mb a request is
// refused at once with 503 and Retry-After, whether it declares its length
// or not; once the holder finishes its bytes are released.
func TestInflightBytesAreBounded(t *testing.T) {
	f := newFixture(t, server.Options{MaxInflightBytes: 1000})
	finish := f.holdBudget(1000)

	start := time.Now()
	r := f.do("POST", "/predict", "application/json", `[[1]]`)
	if r.status != 503 || r.header.Get("Retry-After") == "" {
		t.Fatalf("over the bound: %d (Retry-After %q) %s, want 503 with Retry-After", r.status, r.header.Get("Retry-After"), r.body)
	}
	if msg, _ := r.json(t)["error"].(string); !strings.Contains(msg, "server.max_inflight_mb") {
		t.Fatalf("503 error %q does not name server.max_inflight_mb", msg)
	}
	if took := time.Since(start); took > time.Second {
		t.Fatalf("the refusal took %s: it must not wait for room", took)
	}
	// A chunked body (no Content-Length) is charged as it is read.
	req, _ := http.NewRequest("POST", f.url+"/predict", io.MultiReader(strings.NewReader(`[[1]]`)))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if req.ContentLength != 0 || resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("chunked body over the bound: %d (Content-Length %d), want 503 with Retry-After", resp.StatusCode, req.ContentLength)
	}
	if r := f.do("GET", "/livez", "", ""); r.status != 200 {
		t.Fatalf("livez while the budget is spent: %d", r.status)
	}
	if n := f.metric("benchtop_http_refused_total", map[string]string{"reason": "inflight_bytes"}); n != 2 {
		t.Fatalf("refused{inflight_bytes} = %v, want 2", n)
	}

	if r := finish(); r.status != 200 {
		t.Fatalf("the request holding the budget: %d %s", r.status, r.body)
	}
	f.waitMetric("benchtop_http_inflight_body_bytes", nil, 0)
	if r := f.do("POST", "/predict", "application/json", `[[1]]`); r.status != 200 {
		t.Fatalf("after release: %d %s", r.status, r.body)
	}
	// More than the whole budget can never fit: that is a 413, not a 503.
	r = f.do("POST", "/predict", "application/json", "[[1]]"+strings.Repeat(" ", 2000))
	if msg, _ := r.json(t)["error"].(string); r.status != 413 || !strings.Contains(msg, "server.max_inflight_mb") {
		t.Fatalf("body larger than the budget: %d %s", r.status, r.body)
	}
}

// syncBuffer is a log sink the server's goroutines may share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) lines(substr string) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for _, l := range strings.Split(b.b.String(), "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return out
}

// TestOverloadIsCountedNotLoggedPerRequest: many 503s make at most one log
// line per route per interval, at INFO, and each is counted in the metrics;
// a real error (here a 504) is still logged at ERROR.
func TestOverloadIsCountedNotLoggedPerRequest(t *testing.T) {
	var logs syncBuffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	f := newFixture(t, server.Options{MaxInflightBytes: 1000, Logger: logger, OverloadLogInterval: time.Hour})
	finish := f.holdBudget(1000)
	const n = 200
	var wg sync.WaitGroup
	var shed atomic.Int64
	for range 8 {
		wg.Go(func() {
			for range n / 8 {
				if r := f.do("POST", "/predict", "application/json", `[[1]]`); r.status == 503 {
					shed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	finish()
	if shed.Load() != n {
		t.Fatalf("%d of %d refused, want all", shed.Load(), n)
	}
	if errs := logs.lines("level=ERROR"); len(errs) > 0 {
		t.Fatalf("overload logged at ERROR %d times, first: %s", len(errs), errs[0])
	}
	summaries := logs.lines("refused as overloaded")
	if len(summaries) != 1 || !strings.Contains(summaries[0], "level=INFO") || !strings.Contains(summaries[0], "api=predict") {
		t.Fatalf("want one INFO summary within the interval, got %d:\n%s", len(summaries), strings.Join(summaries, "\n"))
	}
	if got := f.metric("benchtop_api_requests_total", map[string]string{"api": "predict", "code": "503"}); got != n {
		t.Fatalf("benchtop_api_requests_total{predict,503} = %v, want %d", got, n)
	}
	if r := f.do("POST", "/slow", "application/json", `[[1]]`); r.status != 504 {
		t.Fatalf("slow: %d", r.status)
	}
	if errs := logs.lines("level=ERROR"); len(errs) != 1 || !strings.Contains(errs[0], "timed out") {
		t.Fatalf("a 504 must be logged at ERROR with its error, got:\n%s", strings.Join(errs, "\n"))
	}
}

// TestHostAndOriginChecks: bound to loopback, only requests naming this
// machine are served (DNS rebinding), and web pages of other origins may
// not POST; curl, same-origin pages and listed names still work.
func TestHostAndOriginChecks(t *testing.T) {
	fixtures := map[string]*fixture{}
	fix := func(name string, opts server.Options) *fixture {
		if fixtures[name] == nil {
			fixtures[name] = newFixture(t, opts)
		}
		return fixtures[name]
	}
	loopback := func() *fixture { return fix("loopback", server.Options{BindHost: "127.0.0.1"}) }
	listed := func() *fixture {
		return fix("listed", server.Options{BindHost: "127.0.0.1",
			AllowedHosts: []string{"bench.lan", "gpu-box:3000", "[fd00::1]"}, AllowedOrigins: []string{"https://app.example"}})
	}
	wildcard := func() *fixture { return fix("wildcard", server.Options{BindHost: "0.0.0.0"}) }
	wildcardListed := func() *fixture {
		return fix("wildcard listed", server.Options{BindHost: "0.0.0.0", AllowedHosts: []string{"bench.lan"}})
	}
	const same = "(same origin)"
	cases := []struct {
		name    string
		f       func() *fixture
		method  string
		path    string
		host    string // "" leaves the URL's
		origin  string // same: the server's own
		ct      string
		status  int
		message string
	}{
		{"curl by IP", loopback, "GET", "/livez", "", "", "", 200, ""},
		{"localhost with port", loopback, "GET", "/livez", "localhost:3000", "", "", 200, ""},
		{"localhost without port", loopback, "GET", "/livez", "LocalHost", "", "", 200, ""},
		{"IPv6 loopback", loopback, "GET", "/livez", "[::1]:3000", "", "", 200, ""},
		{"IPv6 loopback without port", loopback, "GET", "/livez", "[::1]", "", "", 200, ""},
		{"rebinding name", loopback, "GET", "/metrics", "evil.example:3000", "", "", 403, "server.allowed_hosts"},
		{"rebinding name posting", loopback, "POST", "/analysis", "evil.example", "http://evil.example", "text/plain", 403, `host "evil.example" is not served here`},
		{"localhost lookalike", loopback, "GET", "/livez", "localhost.evil.example", "", "", 403, "server.allowed_hosts"},
		{"listed name", listed, "GET", "/livez", "bench.lan:8080", "", "", 200, ""},
		{"listed name with its port", listed, "GET", "/livez", "gpu-box:3000", "", "", 200, ""},
		{"listed name on another port", listed, "GET", "/livez", "gpu-box:4000", "", "", 403, "gpu-box:3000"},
		{"listed IPv6", listed, "GET", "/livez", "[fd00::1]:3000", "", "", 200, ""},
		{"bound to all addresses, no list", wildcard, "GET", "/livez", "evil.example", "", "", 200, ""},
		{"bound to all addresses, listed", wildcardListed, "GET", "/livez", "evil.example", "", "", 403, "server.allowed_hosts"},
		{"bound to all addresses, listed name", wildcardListed, "GET", "/livez", "bench.lan", "", "", 200, ""},

		{"cross-origin text/plain POST", loopback, "POST", "/analysis", "", "http://evil.example", "text/plain", 403, "server.allowed_origins"},
		{"cross-origin POST without content type", loopback, "POST", "/predict", "", "https://evil.example:8443", "", 403, `cross-origin POST from "https://evil.example:8443" refused`},
		{"sandboxed page", loopback, "POST", "/analysis", "", "null", "text/plain", 403, "server.allowed_origins"},
		{"same-origin POST", loopback, "POST", "/analysis", "", same, "text/plain", 200, ""},
		{"page served from localhost", loopback, "POST", "/analysis", "", "http://localhost:8080", "text/plain", 200, ""},
		{"no Origin (curl)", loopback, "POST", "/analysis", "", "", "text/plain", 200, ""},
		{"cross-origin GET", loopback, "GET", "/livez", "", "http://evil.example", "", 200, ""},
		{"listed origin", listed, "POST", "/analysis", "", "https://app.example", "text/plain", 200, ""},
		{"listed origin, other scheme", listed, "POST", "/analysis", "", "http://app.example", "text/plain", 403, "server.allowed_origins"},
		{"page from a listed host", listed, "POST", "/analysis", "", "http://bench.lan:8080", "text/plain", 200, ""},
		{"bound to all addresses, cross-origin", wildcard, "POST", "/analysis", "", "http://evil.example", "text/plain", 403, "server.allowed_origins"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := c.f()
			body := ""
			if c.method == "POST" {
				body = "what a great day"
				if c.path == "/predict" {
					body = "[[1]]"
				}
			}
			req, _ := http.NewRequest(c.method, f.url+c.path, strings.NewReader(body))
			if c.host != "" {
				req.Host = c.host
			}
			switch c.origin {
			case "":
			case same:
				req.Header.Set("Origin", f.url)
			default:
				req.Header.Set("Origin", c.origin)
			}
			if c.ct != "" {
				req.Header.Set("Content-Type", c.ct)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			msg := ""
			if resp.StatusCode != 200 {
				msg, _ = response{resp.StatusCode, resp.Header, string(b)}.json(t)["error"].(string)
			}
			if resp.StatusCode != c.status || !strings.Contains(msg, c.message) {
				t.Fatalf("%d %s\nwant %d saying %q", resp.StatusCode, b, c.status, c.message)
			}
		})
	}
	f := loopback()
	for reason, want := range map[string]float64{"host": 3, "origin": 3} {
		if got := f.metric("benchtop_http_refused_total", map[string]string{"reason": reason}); got != want {
			t.Errorf("refused{%s} = %v, want %v", reason, got, want)
		}
	}
}

// serveReal runs the server's own Serve (not httptest) on ln until the test
// ends, and returns its URL.
func (f *fixture) serveReal(ln net.Listener) string {
	f.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.srv.Serve(ctx, ln) }()
	f.t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			f.t.Errorf("Serve: %v", err)
		}
	})
	return "http://" + ln.Addr().String()
}

// TestConnectionsAreCapped: at the cap the server stops accepting, so that
// the process never runs out of descriptors; a closed connection makes room.
func TestConnectionsAreCapped(t *testing.T) {
	f := newFixture(t, server.Options{MaxConnections: 2})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := f.serveReal(ln)
	var held []net.Conn
	for range 2 {
		c := rawRequest(t, url, "GET /livez HTTP/1.1\nHost: 127.0.0.1\n", "")
		if r := readResponse(t, c, 5*time.Second); r.status != 200 {
			t.Fatalf("livez: %d", r.status)
		}
		held = append(held, c) // kept alive, idle
	}
	client := &http.Client{Timeout: 300 * time.Millisecond, Transport: &http.Transport{DisableKeepAlives: true}}
	if resp, err := client.Get(url + "/livez"); err == nil {
		resp.Body.Close()
		t.Fatalf("a third connection was served past a cap of 2: %d", resp.StatusCode)
	}
	held[0].Close()
	client.Timeout = 5 * time.Second
	resp, err := client.Get(url + "/livez")
	if err != nil {
		t.Fatalf("after a connection closed: %v", err)
	}
	resp.Body.Close()
	if f.metric("benchtop_http_connections_limit", nil) != 2 {
		t.Fatalf("connections limit metric %v", f.metric("benchtop_http_connections_limit", nil))
	}
}

// emfileListener fails Accept with EMFILE, as a process out of descriptors
// does, until healed.
type emfileListener struct {
	net.Listener
	failing atomic.Bool
	fails   atomic.Int64
}

func (l *emfileListener) Accept() (net.Conn, error) {
	if l.failing.Load() {
		l.fails.Add(1)
		return nil, &net.OpError{Op: "accept", Net: "tcp", Addr: l.Addr(), Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	}
	return l.Listener.Accept()
}

// TestAcceptErrorsBackOff: EMFILE from accept makes the server back off and
// retry (net/http treats it as temporary), neither spinning nor exiting.
func TestAcceptErrorsBackOff(t *testing.T) {
	f := newFixture(t, server.Options{MaxConnections: 4})
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := &emfileListener{Listener: inner}
	ln.failing.Store(true)
	url := f.serveReal(ln)
	time.Sleep(300 * time.Millisecond)
	// net/http waits 5 ms, doubling to 1 s: 5 attempts in 300 ms, not thousands.
	if n := ln.fails.Load(); n < 2 || n > 10 {
		t.Fatalf("%d accept attempts in 300 ms of EMFILE: want a back-off", n)
	}
	ln.failing.Store(false)
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(url + "/livez")
	if err != nil {
		t.Fatalf("after EMFILE cleared: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("livez %d", resp.StatusCode)
	}
}
