package bench

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

func sampleReport(labels ...string) Report {
	r := Report{Target: "sim.predict (in process)"}
	for _, label := range labels {
		r.Sweeps = append(r.Sweeps, SweepResult{Label: label, Stopped: "p99 60ms passed the latency limit 50ms at concurrency 8", Levels: []LevelResult{
			{
				Level: Level{Concurrency: 1}, Stable: true, Windows: 3, Span: 3 * time.Second,
				Requests: 1500, OK: 1500, Throughput: 500,
				P50: 2 * time.Millisecond, P90: 2100 * time.Microsecond, P99: 3 * time.Millisecond, Max: 9 * time.Millisecond, Mean: 2 * time.Millisecond,
				Errors: map[string]uint64{}, ErrorSamples: map[string]string{},
				Server: &Batching{Batches: 1500, MeanRows: 2, MeanExec: 2 * time.Millisecond, Sizes: []SizeBucket{{2, 2, 1500}}},
			},
			{
				Level: Level{Concurrency: 8}, Windows: 10, Span: 10 * time.Second,
				Requests: 12000, OK: 11990, Throughput: 1199,
				P50: 6 * time.Millisecond, P90: 9 * time.Millisecond, P99: 60 * time.Millisecond, Max: 80 * time.Millisecond, Mean: 7 * time.Millisecond,
				Errors:       map[string]uint64{"http_503": 10},
				ErrorSamples: map[string]string{"http_503": "http 503: overloaded: queue full"},
				Refused:      10,
				Server: &Batching{Batches: 1000, MeanRows: 24, MeanQueue: 3 * time.Millisecond, MeanExec: 4 * time.Millisecond,
					Sizes: []SizeBucket{{9, 16, 400}, {17, 32, 600}}},
			},
		}})
	}
	return r
}

func TestWriteJSON(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteJSON(&buf, sampleReport("")); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Target string `json:"target"`
		Sweeps []struct {
			Stopped string           `json:"stopped"`
			Levels  []map[string]any `json:"levels"`
		} `json:"sweeps"`
	}
	if err := json.Unmarshal(buf.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Target == "" || len(doc.Sweeps) != 1 || len(doc.Sweeps[0].Levels) != 2 || doc.Sweeps[0].Stopped == "" {
		t.Fatalf("shape: %s", buf.String())
	}
	l := doc.Sweeps[0].Levels[1]
	want := map[string]any{
		"concurrency": 8.0, "throughput_rps": 1199.0, "stable": false,
		"latency_ms": map[string]any{"p50": 6.0, "p90": 9.0, "p99": 60.0, "max": 80.0, "mean": 7.0},
		"errors":     map[string]any{"http_503": 10.0},
		"refused":    10.0, "refused_per_s": 1.0, "refused_share": 10.0 / 12000,
		"server": map[string]any{"batches": 1000.0, "mean_batch_rows": 24.0, "mean_queue_ms": 3.0, "mean_exec_ms": 4.0,
			"batch_sizes": []any{map[string]any{"min": 9.0, "max": 16.0, "batches": 400.0}, map[string]any{"min": 17.0, "max": 32.0, "batches": 600.0}}},
	}
	for k, v := range want {
		if !reflect.DeepEqual(l[k], v) {
			t.Errorf("%s = %v, want %v", k, l[k], v)
		}
	}
	if _, ok := l["rate"]; ok {
		t.Error("closed-loop level has a rate")
	}
}

func TestWriteCSV(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteCSV(&buf, sampleReport("policy=none", "policy=adaptive")); err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(&buf).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 5 || !reflect.DeepEqual(rows[0], CSVHeader) {
		t.Fatalf("%d rows, header %v", len(rows), rows[0])
	}
	col := map[string]int{}
	for i, h := range CSVHeader {
		col[h] = i
	}
	r := rows[4]
	checks := map[string]string{
		"label": "policy=adaptive", "concurrency": "8", "p99_ms": "60", "errors": "10",
		"error_kinds": "http_503=10", "mean_batch_rows": "24", "batch_sizes": "9-16=400;17-32=600",
		"refused": "10", "refused_per_s": "1", "refused_share": "0.0008333333333333334",
	}
	for k, want := range checks {
		if r[col[k]] != want {
			t.Errorf("%s = %q, want %q", k, r[col[k]], want)
		}
	}
}

func TestWriteTable(t *testing.T) {
	tests := []struct {
		name   string
		report Report
		want   []string
	}{
		{"one sweep", sampleReport(""), []string{
			"concurrency  req/s", "p99", "errors  refused/s  refused  batch", "queue", "exec", "stable",
			"     10        1.0      <1%",
			"batch sizes (share of batches)", "9-16  17-32", "40%", "60%",
			"concurrency 8: 10 × http_503, e.g. http 503: overloaded: queue full",
			"sweep stopped: p99 60ms passed",
		}},
		{"side by side", sampleReport("policy=none", "policy=adaptive"), []string{
			"policy=none", "policy=adaptive", "req/s     p99  errors  refused/s  batch",
			"policy=adaptive: batch sizes", "policy=none: sweep stopped",
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := WriteTable(&buf, tc.report); err != nil {
				t.Fatal(err)
			}
			out := buf.String()
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("table lacks %q:\n%s", w, out)
				}
			}
		})
	}
}

func TestFmtDuration(t *testing.T) {
	tests := map[time.Duration]string{
		0: "0", 420 * time.Microsecond: "0.420ms", 2410 * time.Microsecond: "2.41ms",
		24100 * time.Microsecond: "24.1ms", 241 * time.Millisecond: "241ms", 12300 * time.Millisecond: "12.3s",
	}
	for d, want := range tests {
		if got := fmtDuration(d); got != want {
			t.Errorf("fmtDuration(%v) = %q, want %q", d, got, want)
		}
	}
}
