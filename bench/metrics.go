package bench

import (
	"fmt"
	"io"
	"maps"
	"math"
	"math/bits"
	"slices"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/benchtop/benchtop/engine"
)

// ServerStats are the serving side's cumulative counters for one runner
// method. Two snapshots subtracted give what happened between them.
type ServerStats struct {
	// Batches executed and the rows they held in all.
	Batches uint64
	Rows    float64
	// Sizes counts batches by power-of-two bucket, keyed by the bucket's
	// upper bound (1, 2, 4, …): the granularity of the engine's
	// benchtop_runner_batch_size histogram. Key 0 holds batches above the
	// histogram's largest bound.
	Sizes map[int]uint64
	// Requests that succeeded, and the time they spent queued in all.
	Requests uint64
	Queue    time.Duration
	// Exec sums the execution time of the batches.
	Exec time.Duration
}

// Sub is what happened between before and s.
func (s ServerStats) Sub(before ServerStats) ServerStats {
	d := ServerStats{
		Batches: s.Batches - before.Batches, Rows: s.Rows - before.Rows,
		Requests: s.Requests - before.Requests,
		Queue:    s.Queue - before.Queue, Exec: s.Exec - before.Exec,
		Sizes: map[int]uint64{},
	}
	for k, n := range s.Sizes {
		if n > before.Sizes[k] {
			d.Sizes[k] = n - before.Sizes[k]
		}
	}
	return d
}

// SizeBucket is a range of batch sizes, inclusive; Max 0 means unbounded.
type SizeBucket struct {
	Min, Max int
	Batches  uint64
}

func (b SizeBucket) String() string {
	switch {
	case b.Max == 0:
		return fmt.Sprintf(">%d", b.Min-1)
	case b.Min == b.Max:
		return fmt.Sprint(b.Min)
	}
	return fmt.Sprintf("%d-%d", b.Min, b.Max)
}

// Batching is the serving side's view of one measured span.
type Batching struct {
	Batches uint64
	// MeanRows is the mean batch size, in rows along the batch dim.
	MeanRows float64
	// Sizes are the non-empty buckets, smallest first.
	Sizes []SizeBucket
	// MeanQueue is the mean wait of a successful request before its batch
	// started; MeanExec the mean execution time of a batch.
	MeanQueue, MeanExec time.Duration
}

// Summarise turns a difference of snapshots into means and buckets; nil
// when no batch ran (nothing to say, or a server that is not benchtop).
func Summarise(d ServerStats) *Batching {
	if d.Batches == 0 {
		return nil
	}
	b := &Batching{
		Batches:  d.Batches,
		MeanRows: d.Rows / float64(d.Batches),
		MeanExec: d.Exec / time.Duration(d.Batches),
	}
	if d.Requests > 0 {
		b.MeanQueue = d.Queue / time.Duration(d.Requests)
	}
	keys := slices.Sorted(maps.Keys(d.Sizes))
	if len(keys) > 0 && keys[0] == 0 {
		keys = append(keys[1:], 0) // the overflow bucket goes last
	}
	for _, k := range keys {
		n := d.Sizes[k]
		switch {
		case n == 0:
		case k == 0:
			b.Sizes = append(b.Sizes, SizeBucket{Min: histogramTop + 1, Batches: n})
		default:
			b.Sizes = append(b.Sizes, SizeBucket{Min: k/2 + 1, Max: k, Batches: n})
		}
	}
	return b
}

// sizeBucket is the power-of-two bucket holding a batch of n rows.
func sizeBucket(n int) int {
	if n <= 1 {
		return 1
	}
	return 1 << bits.Len(uint(n-1))
}

// fromRunnerStats reads one method's counters from an in-process snapshot.
func fromRunnerStats(st engine.RunnerStats, method string) (ServerStats, error) {
	for _, m := range st.Methods {
		if m.Spec.Name != method {
			continue
		}
		s := ServerStats{
			Requests: m.Totals["ok"], Queue: m.Cumulative.Queue, Exec: m.Cumulative.Exec,
			Sizes: map[int]uint64{},
		}
		for size, n := range m.BatchSizes {
			s.Batches += n
			s.Rows += float64(size) * float64(n)
			s.Sizes[sizeBucket(size)] += n
		}
		return s, nil
	}
	return ServerStats{}, fmt.Errorf("runner %q has no method %q", st.Name, method)
}

// histogramTop is the largest finite bound of benchtop_runner_batch_size
// (engine/metrics.go: powers of two from 1 to 8192).
const histogramTop = 8192

// Metric names the engine exports, diffed across a measured span.
const (
	metricBatchSize = "benchtop_runner_batch_size"
	metricQueue     = "benchtop_runner_queue_duration_seconds"
	metricExec      = "benchtop_runner_execution_duration_seconds"
)

// ParseMetrics reads one runner method's counters from a Prometheus text
// exposition (GET /metrics). A series that is absent counts as zero: the
// engine only exports a method's histograms once it has served a request.
func ParseMetrics(r io.Reader, runner, method string) (ServerStats, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(r)
	if err != nil {
		return ServerStats{}, fmt.Errorf("parse metrics: %w", err)
	}
	s := ServerStats{Sizes: map[int]uint64{}}
	if h := findHistogram(fams[metricBatchSize], runner, method); h != nil {
		s.Batches, s.Rows = h.GetSampleCount(), h.GetSampleSum()
		var below uint64
		for _, b := range h.GetBucket() {
			cum, ub := b.GetCumulativeCount(), b.GetUpperBound()
			if math.IsInf(ub, 1) {
				continue
			}
			if cum > below {
				s.Sizes[int(ub)] = cum - below
				below = cum
			}
		}
		if s.Batches > below {
			s.Sizes[0] = s.Batches - below
		}
	}
	if h := findHistogram(fams[metricQueue], runner, method); h != nil {
		s.Requests, s.Queue = h.GetSampleCount(), seconds(h.GetSampleSum())
	}
	if h := findHistogram(fams[metricExec], runner, method); h != nil {
		s.Exec = seconds(h.GetSampleSum())
	}
	return s, nil
}

func findHistogram(f *dto.MetricFamily, runner, method string) *dto.Histogram {
	if f == nil {
		return nil
	}
	for _, m := range f.GetMetric() {
		var r, me bool
		for _, l := range m.GetLabel() {
			switch l.GetName() {
			case "runner":
				r = l.GetValue() == runner
			case "method":
				me = l.GetValue() == method
			}
		}
		if r && me {
			return m.GetHistogram()
		}
	}
	return nil
}

func seconds(s float64) time.Duration { return time.Duration(math.Round(s * float64(time.Second))) }
