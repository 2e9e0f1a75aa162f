package bench

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestMetricsDiffFromEngine(t *testing.T) {
	// Ten requests one after another through the real front end: ten
	// batches of the example's two rows, whichever way they are read.
	_, ts := simServed(t, adaptive())
	ctx := context.Background()
	for _, path := range []string{"/predict", "/v2/models/sim/infer", "/v2/models/sim.predict/infer"} {
		t.Run(path, func(t *testing.T) {
			h, err := NewHTTP(ctx, HTTPOptions{URL: ts.URL + path, Conns: 1})
			if err != nil {
				t.Fatal(err)
			}
			defer h.Close()
			d := tenCallsOfTwoRows(t, ctx, h)
			b := Summarise(d)
			if b == nil || b.MeanRows != 2 || b.MeanExec < time.Millisecond {
				t.Errorf("summary %+v, want mean 2 rows and ≥ 1 ms exec", b)
			}
		})
	}
}

// statsTarget is a target whose server says how it batched.
type statsTarget interface {
	RunnerMethod() (runner, method string)
	ServerStats(ctx context.Context) (ServerStats, error)
	Call(ctx context.Context) error
}

// tenCallsOfTwoRows sends ten of the example's requests (two rows of sim)
// one after another through tg and checks the server's figures: ten
// batches of two rows, at least 1 ms each (sim sleeps 1.1 ms for two rows).
func tenCallsOfTwoRows(t *testing.T, ctx context.Context, tg statsTarget) ServerStats {
	t.Helper()
	if r, m := tg.RunnerMethod(); r != "sim" || m != "predict" {
		t.Fatalf("runner method %q.%q, want sim.predict", r, m)
	}
	before, err := tg.ServerStats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for range 10 {
		if err := tg.Call(ctx); err != nil {
			t.Fatal(err)
		}
	}
	after, err := tg.ServerStats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	d := after.Sub(before)
	if d.Batches != 10 || d.Rows != 20 || d.Requests != 10 {
		t.Errorf("batches %d rows %v requests %d, want 10, 20, 10", d.Batches, d.Rows, d.Requests)
	}
	if want := map[int]uint64{2: 10}; !reflect.DeepEqual(d.Sizes, want) {
		t.Errorf("sizes %v, want %v", d.Sizes, want)
	}
	if d.Exec < 10*time.Millisecond {
		t.Errorf("exec %v for 10 batches of ≥ 1 ms", d.Exec)
	}
	return d
}

func TestHTTPSweepHasBatching(t *testing.T) {
	_, ts := simServed(t, adaptive())
	h, err := NewHTTP(context.Background(), HTTPOptions{URL: ts.URL + "/predict", Conns: 8})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	res, err := Sweep(context.Background(), h, []Level{{Concurrency: 8}}, quick())
	if err != nil {
		t.Fatal(err)
	}
	l := res.Levels[0]
	if l.Server == nil || l.Server.Batches == 0 {
		t.Fatalf("no batching figures: %+v (server error %q)", l.Server, l.ServerError)
	}
	// Eight callers on one worker: batches hold more than one request.
	if l.Server.MeanRows <= 2 {
		t.Errorf("mean batch %.1f rows with 8 callers of 2 rows, want more than 2", l.Server.MeanRows)
	}
}

func TestNewHTTPErrors(t *testing.T) {
	_, ts := simServed(t, adaptive())
	tests := []struct{ name, url, want string }{
		{"not a url", "localhost:3000", "want http://"},
		{"unknown api", ts.URL + "/nope", "no API at POST /nope"},
		{"unknown model", ts.URL + "/v2/models/nope/infer", "unknown model"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewHTTP(context.Background(), HTTPOptions{URL: tc.url})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

func TestParseMetrics(t *testing.T) {
	text := `# TYPE benchtop_runner_batch_size histogram
benchtop_runner_batch_size_bucket{method="predict",runner="sim",le="1"} 2
benchtop_runner_batch_size_bucket{method="predict",runner="sim",le="2"} 2
benchtop_runner_batch_size_bucket{method="predict",runner="sim",le="4"} 5
benchtop_runner_batch_size_bucket{method="predict",runner="sim",le="8192"} 7
benchtop_runner_batch_size_bucket{method="predict",runner="sim",le="+Inf"} 8
benchtop_runner_batch_size_sum{method="predict",runner="sim"} 20000
benchtop_runner_batch_size_count{method="predict",runner="sim"} 8
benchtop_runner_batch_size_bucket{method="predict",runner="other",le="+Inf"} 99
benchtop_runner_batch_size_sum{method="predict",runner="other"} 99
benchtop_runner_batch_size_count{method="predict",runner="other"} 99
# TYPE benchtop_runner_queue_duration_seconds histogram
benchtop_runner_queue_duration_seconds_bucket{method="predict",runner="sim",le="+Inf"} 30
benchtop_runner_queue_duration_seconds_sum{method="predict",runner="sim"} 0.3
benchtop_runner_queue_duration_seconds_count{method="predict",runner="sim"} 30
`
	tests := []struct {
		name           string
		runner, method string
		want           ServerStats
	}{
		{"present", "sim", "predict", ServerStats{
			Batches: 8, Rows: 20000, Sizes: map[int]uint64{1: 2, 4: 3, 8192: 2, 0: 1},
			Requests: 30, Queue: 300 * time.Millisecond,
		}},
		{"absent series", "sim", "other", ServerStats{Sizes: map[int]uint64{}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseMetrics(strings.NewReader(text), tc.runner, tc.method)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestSummarise(t *testing.T) {
	tests := []struct {
		name string
		d    ServerStats
		want *Batching
	}{
		{"no batches", ServerStats{}, nil},
		{"buckets", ServerStats{
			Batches: 6, Rows: 30, Sizes: map[int]uint64{1: 1, 4: 2, 32: 2, 0: 1},
			Requests: 10, Queue: 20 * time.Millisecond, Exec: 60 * time.Millisecond,
		}, &Batching{
			Batches: 6, MeanRows: 5, MeanQueue: 2 * time.Millisecond, MeanExec: 10 * time.Millisecond,
			Sizes: []SizeBucket{{1, 1, 1}, {3, 4, 2}, {17, 32, 2}, {8193, 0, 1}},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Summarise(tc.d); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
	names := map[SizeBucket]string{{1, 1, 0}: "1", {3, 4, 0}: "3-4", {8193, 0, 0}: ">8192"}
	for b, want := range names {
		if b.String() != want {
			t.Errorf("%+v prints %q, want %q", b, b.String(), want)
		}
	}
}

func TestSizeBucket(t *testing.T) {
	for n, want := range map[int]int{0: 1, 1: 1, 2: 2, 3: 4, 4: 4, 5: 8, 64: 64, 65: 128} {
		if got := sizeBucket(n); got != want {
			t.Errorf("sizeBucket(%d) = %d, want %d", n, got, want)
		}
	}
}
