package engine

import (
	"testing"
	"time"
)

func TestWindowPercentilesAndRates(t *testing.T) {
	var w window
	now := time.Unix(1_000_000, 500_000_000)
	// 1,000 requests: 900 at 1 ms, 90 at 10 ms, 10 at 100 ms.
	for i := range 1000 {
		d := time.Millisecond
		switch {
		case i >= 990:
			d = 100 * time.Millisecond
		case i >= 900:
			d = 10 * time.Millisecond
		}
		w.recordRequest(now, true, 2, d, d/2)
	}
	w.recordRequest(now, false, 1, 0, 0)
	w.recordBatch(now, 3, 2, time.Millisecond)
	w.recordBatch(now, 64, 40, time.Millisecond)
	st := w.snapshot(now, 1, 3)
	within := func(got, want time.Duration) bool {
		return got >= want*80/100 && got <= want*120/100 // one bucket is ~19% wide
	}
	if !within(st.E2E.P50, time.Millisecond) || !within(st.E2E.P90, time.Millisecond) || !within(st.E2E.P99, 10*time.Millisecond) {
		t.Fatalf("percentiles %+v: want p50 1ms, p90 1ms, p99 10ms", st.E2E)
	}
	if st.E2E.Count != 1000 {
		t.Fatalf("count %d, want 1000 (failures are not latencies)", st.E2E.Count)
	}
	checkWindowCounts(t, st)
	// Sixteen seconds later the old slot is recycled, not summed in.
	later := now.Add(histSeconds * time.Second)
	w.recordRequest(later, true, 1, time.Second, 0)
	if st := w.snapshot(later, 5, 0); st.E2E.Count != 1 {
		t.Fatalf("stale second counted: %d", st.E2E.Count)
	}
}

// checkWindowCounts: the rates, batch sizes and history of
// TestWindowPercentilesAndRates's snapshot.
func checkWindowCounts(t *testing.T, st WindowStats) {
	t.Helper()
	// Half a second into the window: rates per second double the counts.
	if st.RequestsPerS < 1900 || st.RequestsPerS > 2100 || st.ErrorsPerS < 1.9 || st.ErrorsPerS > 2.1 {
		t.Fatalf("rates %v req/s %v err/s over %v", st.RequestsPerS, st.ErrorsPerS, st.Span)
	}
	if st.BatchSizes[2] != 1 || st.BatchSizes[6] != 1 || st.MeanBatchRows != 33.5 || st.MeanBatchRequests != 21 {
		t.Fatalf("batch sizes %v mean rows %v requests %v", st.BatchSizes, st.MeanBatchRows, st.MeanBatchRequests)
	}
	if len(st.History) != 3 || st.History[2].Requests != 1000 || st.History[2].Errors != 1 || st.History[0].Requests != 0 {
		t.Fatalf("history %+v", st.History)
	}
}

func TestBatchBucketLabels(t *testing.T) {
	// The bounds of /metrics (le 1, 2, 4, 8, …) and of benchtop bench.
	for rows, want := range map[int]string{1: "1", 2: "2", 3: "3-4", 4: "3-4", 5: "5-8", 33: "33-64", 64: "33-64", 65: "65-128", 4096: "2049-4096", 4097: "4097+", 1 << 20: "4097+"} {
		if got := BatchBucketLabel(batchBucket(rows)); got != want {
			t.Errorf("a batch of %d rows lands in %q, want %q", rows, got, want)
		}
	}
}
