package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"maps"
	"net"
	"net/http/httptest"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"

	"github.com/benchtop/benchtop/batcher"
	"github.com/benchtop/benchtop/server"
)

// simServedGRPC is simEngine behind the real front ends, HTTP and gRPC, on
// real loopback sockets, as `benchtop serve` runs them.
func simServedGRPC(t *testing.T, cfg batcher.Config) (ts *httptest.Server, grpcAddr string) {
	t.Helper()
	prom := prometheus.NewRegistry()
	eng := simEngineOn(t, cfg, prom)
	srv, err := server.New(eng, server.Options{Registerer: prom, Gatherer: prom})
	if err != nil {
		t.Fatal(err)
	}
	ts = httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.ServeGRPC(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ServeGRPC: %v", err)
		}
	})
	return ts, ln.Addr().String()
}

func newGRPC(t *testing.T, opts GRPCOptions) *GRPC {
	t.Helper()
	g, err := NewGRPC(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Close)
	return g
}

func TestParseGRPCURL(t *testing.T) {
	for _, tc := range []struct{ url, addr, model, err string }{
		{url: "grpc://127.0.0.1:3001/sim", addr: "127.0.0.1:3001", model: "sim"},
		{url: "grpc://localhost:8001/sentiment.scores", addr: "localhost:8001", model: "sentiment.scores"},
		{url: "grpc://[::1]:3001/sim", addr: "[::1]:3001", model: "sim"},
		{url: "http://127.0.0.1:3001/sim", err: `scheme "http"`},
		{url: "grpc://127.0.0.1/sim", err: "no port"},
		{url: "grpc://127.0.0.1:0/sim", err: "want 1 to 65535"},
		{url: "grpc://127.0.0.1:3001", err: "no model"},
		{url: "grpc://127.0.0.1:3001/", err: "no model"},
		{url: "grpc://127.0.0.1:3001/v2/models/sim/infer", err: "the path is the model name alone"},
		{url: "grpc://127.0.0.1:3001/sim?x=1", err: "no user, query or fragment"},
		{url: "grpc://%zz", err: "want grpc://HOST:PORT/MODEL"},
	} {
		addr, model, err := ParseGRPCURL(tc.url)
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%s: err %v, want one saying %q", tc.url, err, tc.err)
		case tc.err == "" && (err != nil || addr != tc.addr || model != tc.model):
			t.Errorf("%s = %q, %q, %v; want %q, %q", tc.url, addr, model, err, tc.addr, tc.model)
		}
	}
	for u, want := range map[string]bool{"grpc://h:1/m": true, "GRPC://h:1/m": true, "http://h/x": false, "grpcx://h:1/m": false, "": false} {
		if IsGRPCURL(u) != want {
			t.Errorf("IsGRPCURL(%q) = %v", u, !want)
		}
	}
}

func TestGRPCConns(t *testing.T) {
	for callers, want := range map[int]int{0: 1, 1: 1, 32: 1, 33: 2, 64: 2, 128: 4, 256: 8, 10000: 8} {
		if got := GRPCConns(callers); got != want {
			t.Errorf("GRPCConns(%d) = %d, want %d", callers, got, want)
		}
	}
}

// The gRPC target reads the method behind a model from ModelMetadata, and
// the server's batching from ModelStatistics, call for call as /metrics
// counts them over HTTP.
func TestGRPCTargetStats(t *testing.T) {
	_, addr := simServedGRPC(t, adaptive())
	ctx := context.Background()
	for _, model := range []string{"sim", "sim.predict"} {
		t.Run(model, func(t *testing.T) {
			g := newGRPC(t, GRPCOptions{URL: "grpc://" + addr + "/" + model, Conns: 1})
			tenCallsOfTwoRows(t, ctx, g)
		})
	}
}

// A sweep over gRPC with generated requests: no errors, every request of
// the rows asked for, and the same report, key for key, as over HTTP.
func TestGRPCSweepLikeHTTP(t *testing.T) {
	ts, addr := simServedGRPC(t, adaptive())
	ctx := context.Background()
	gen := &GenOptions{Rows: Span{3, 3}, Seed: 5}
	g := newGRPC(t, GRPCOptions{URL: "grpc://" + addr + "/sim", Gen: gen, Callers: 4})
	if n := len(g.Requests()); n != PoolSize {
		t.Fatalf("%d requests, want a pool of %d", n, PoolSize)
	}
	for _, req := range g.Requests() {
		if len(req.RawInputContents) != 1 || len(req.Inputs) != 1 || req.Inputs[0].Contents != nil ||
			!slices.Equal(req.Inputs[0].Shape, []int64{3, 4}) || len(req.RawInputContents[0]) != 3*4*4 {
			t.Fatalf("request %v: want one raw FP32 [3, 4] input", req)
		}
	}
	h, err := NewHTTP(ctx, HTTPOptions{URL: ts.URL + "/v2/models/sim/infer", Gen: gen, Conns: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)

	before, err := g.ServerStats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	reports := map[string]Report{}
	for _, tg := range []Target{g, h} {
		res, err := Sweep(ctx, tg, []Level{{Concurrency: 4}}, quick())
		if err != nil {
			t.Fatalf("%s: %v", tg, err)
		}
		l := res.Levels[0]
		if l.OK == 0 || l.OK != l.Requests || len(l.Errors) > 0 {
			t.Fatalf("%s: %d ok of %d, errors %v %v", tg, l.OK, l.Requests, l.Errors, l.ErrorSamples)
		}
		if l.Server == nil || l.Server.Batches == 0 || l.Server.MeanRows < 3 {
			t.Fatalf("%s: batching %+v (%s), want batches of 3 rows or more", tg, l.Server, l.ServerError)
		}
		reports[tg.String()] = Report{Target: tg.String(), Sweeps: []SweepResult{res}}
		if tg == Target(g) {
			after, err := g.ServerStats(ctx)
			if err != nil {
				t.Fatal(err)
			}
			d := after.Sub(before)
			// The sweep cancels the calls in flight at its end: a batch that
			// already held one runs its rows, but the call is not a success,
			// so up to one per caller has rows without a request counted.
			extra := d.Rows - 3*float64(d.Requests)
			if d.Requests < l.OK || extra < 0 || extra > 3*4 || int(extra)%3 != 0 {
				t.Errorf("the server ran %d requests in %v rows for %d answered; want 3 rows each (and up to 4 cancelled)", d.Requests, d.Rows, l.OK)
			}
		}
	}
	gr, hr := reports[g.String()], reports[h.String()]
	if a, b := jsonKeys(t, gr), jsonKeys(t, hr); !slices.Equal(a, b) {
		t.Errorf("JSON keys over gRPC %v, over HTTP %v", a, b)
	}
	var gt, ht bytes.Buffer
	if err := WriteTable(&gt, gr); err != nil {
		t.Fatal(err)
	}
	if err := WriteTable(&ht, hr); err != nil {
		t.Fatal(err)
	}
	if a, b := tableHeader(gt.String()), tableHeader(ht.String()); a == "" || a != b {
		t.Errorf("table columns over gRPC %q, over HTTP %q", a, b)
	}
	if !strings.Contains(gt.String(), "grpc://"+addr+"/sim (raw tensors, 1 connection)") {
		t.Errorf("the table does not name its target:\n%s", gt.String())
	}
}

// jsonKeys is every key path of the report's JSON, sorted, with error kinds
// (the only keys that are data) left out.
func jsonKeys(t *testing.T, r Report) []string {
	t.Helper()
	var buf bytes.Buffer
	if err := WriteJSON(&buf, r); err != nil {
		t.Fatal(err)
	}
	var v any
	if err := json.Unmarshal(buf.Bytes(), &v); err != nil {
		t.Fatal(err)
	}
	var keys []string
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for _, k := range slices.Sorted(maps.Keys(v)) {
				keys = append(keys, prefix+k)
				if k != "errors" && k != "error_samples" {
					walk(prefix+k+".", v[k])
				}
			}
		case []any:
			for _, e := range v {
				walk(prefix+"[].", e)
			}
		}
	}
	walk("", v)
	slices.Sort(keys)
	return slices.Compact(keys)
}

func tableHeader(table string) string {
	for _, line := range strings.Split(table, "\n") {
		if strings.Contains(line, "req/s") {
			return strings.Join(strings.Fields(line), " ")
		}
	}
	return ""
}

// A queue of one under sixteen callers: the server refuses what it cannot
// queue, Unavailable with a retry delay, which is counted as overloaded and
// refused, as a 503 is over HTTP.
func TestGRPCOverload(t *testing.T) {
	cfg := adaptive()
	cfg.MaxQueueSize = 1
	_, addr := simServedGRPC(t, cfg)
	g := newGRPC(t, GRPCOptions{URL: "grpc://" + addr + "/sim", Callers: 16})
	res, err := RunLevel(context.Background(), g, Level{Concurrency: 16}, quick())
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors[KindOverloaded] == 0 || len(res.Errors) != 1 {
		t.Fatalf("errors %v (%v), want only %s", res.Errors, res.ErrorSamples, KindOverloaded)
	}
	if res.Refused != res.Errors[KindOverloaded] {
		t.Errorf("%d refused of %d overloaded: every overload is a refusal", res.Refused, res.Errors[KindOverloaded])
	}
	if s := res.ErrorSamples[KindOverloaded]; !strings.HasPrefix(s, "grpc Unavailable: ") || !strings.Contains(s, "overloaded") {
		t.Errorf("sample %q, want the server's status", s)
	}
	if res.OK == 0 {
		t.Errorf("nothing served: %+v", res)
	}
}

// Statuses sort into the kinds the HTTP and in-process targets use where
// one means the same.
func TestGRPCErrorKind(t *testing.T) {
	for _, tc := range []struct {
		err     *GRPCError
		kind    string
		refused bool
	}{
		{&GRPCError{Code: codes.Unavailable, Overloaded: true, RetryAfter: time.Second}, KindOverloaded, true},
		{&GRPCError{Code: codes.Unavailable}, KindConnection, false},
		{&GRPCError{Code: codes.DeadlineExceeded}, KindTimeout, false},
		{&GRPCError{Code: codes.InvalidArgument}, KindInvalid, false},
		{&GRPCError{Code: codes.NotFound}, "grpc_not_found", false},
		{&GRPCError{Code: codes.ResourceExhausted}, "grpc_resource_exhausted", false},
		{&GRPCError{Code: codes.Internal}, "grpc_internal", false},
	} {
		if got := ErrorKind(tc.err); got != tc.kind {
			t.Errorf("%v: kind %q, want %q", tc.err.Code, got, tc.kind)
		}
		refused, after := Refused(tc.err)
		if refused != tc.refused || after != tc.err.RetryAfter {
			t.Errorf("%v: refused %v after %v, want %v after %v", tc.err.Code, refused, after, tc.refused, tc.err.RetryAfter)
		}
	}
}

// Nothing listening: the connection refused is in the error, and a server
// that goes away mid-run is counted as connection errors.
func TestGRPCDeadPort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, err = NewGRPC(context.Background(), GRPCOptions{URL: "grpc://" + addr + "/sim"})
	if !errors.Is(err, syscall.ECONNREFUSED) || ErrorKind(err) != KindConnection {
		t.Fatalf("against a dead port: %v (kind %s), want connection refused", err, ErrorKind(err))
	}
	if !strings.Contains(err.Error(), `ModelMetadata "sim"`) {
		t.Errorf("error %q does not say what it was doing", err)
	}
}
