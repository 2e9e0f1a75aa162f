package bench

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"
)

// Report is everything one bench command measured.
type Report struct {
	Target string
	Sweeps []SweepResult
}

func (r Report) open() bool {
	for _, s := range r.Sweeps {
		for _, l := range s.Levels {
			return l.Level.Open()
		}
	}
	return false
}

func (r Report) levelHeader() string {
	if !r.open() {
		return "concurrency"
	}
	for _, s := range r.Sweeps {
		for _, l := range s.Levels {
			return "rate (" + l.Level.Arrivals() + ")"
		}
	}
	return "rate"
}

// fmtDuration prints three significant digits in ms, or s from 10 s up.
func fmtDuration(d time.Duration) string {
	ms := float64(d) / float64(time.Millisecond)
	switch {
	case d == 0:
		return "0"
	case ms < 1:
		return strconv.FormatFloat(ms, 'f', 3, 64) + "ms"
	case ms < 10:
		return strconv.FormatFloat(ms, 'f', 2, 64) + "ms"
	case ms < 100:
		return strconv.FormatFloat(ms, 'f', 1, 64) + "ms"
	case ms < 10000:
		return strconv.FormatFloat(ms, 'f', 0, 64) + "ms"
	}
	return strconv.FormatFloat(d.Seconds(), 'f', 1, 64) + "s"
}

func fmtRate(r float64) string {
	if r < 100 {
		return strconv.FormatFloat(r, 'f', 1, 64)
	}
	return strconv.FormatFloat(r, 'f', 0, 64)
}

// fmtShare prints a fraction as a whole percentage, but never rounds a
// bucket that holds batches down to 0%.
func fmtShare(f float64) string {
	if f > 0 && f < 0.005 {
		return "<1%"
	}
	return strconv.FormatFloat(100*f, 'f', 0, 64) + "%"
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// WriteTable prints aligned tables for a terminal: one sweep in full, or
// several (compare mode) side by side, followed by the batch-size
// distribution, the errors with a sample message each, and notes.
func WriteTable(w io.Writer, r Report) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(w, "target: %s\n\n", r.Target)
	if len(r.Sweeps) == 1 {
		writeSweep(tw, r.levelHeader(), r.Sweeps[0])
	} else {
		writeSideBySide(w, r)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, s := range r.Sweeps {
		prefix := ""
		if s.Label != "" {
			prefix = s.Label + ": "
		}
		if hasSizes(s) {
			fmt.Fprintf(w, "\n%sbatch sizes (share of batches)\n", prefix)
			writeSizes(tw, r.levelHeader(), s)
			if err := tw.Flush(); err != nil {
				return err
			}
		}
		writeNotes(w, prefix, s)
	}
	return nil
}

func writeSweep(tw io.Writer, header string, s SweepResult) {
	fmt.Fprintf(tw, "%s\treq/s\tp50\tp90\tp99\tmax\terrors\trefused/s\trefused\tbatch\tqueue\texec\tstable\t\n", header)
	for _, l := range s.Levels {
		batch, queue, exec := "-", "-", "-"
		if b := l.Server; b != nil {
			batch = strconv.FormatFloat(b.MeanRows, 'f', 1, 64)
			queue, exec = fmtDuration(b.MeanQueue), fmtDuration(b.MeanExec)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t\n", l.Level, fmtRate(l.Throughput),
			fmtDuration(l.P50), fmtDuration(l.P90), fmtDuration(l.P99), fmtDuration(l.Max),
			l.ErrorCount(), fmtRate(l.RefusedRate()), fmtShare(l.RefusedShare()), batch, queue, exec, yesNo(l.Stable))
	}
}

// writeSideBySide puts each variant's key figures in a group of columns,
// one row per level, so that a policy can be chosen by reading across.
// Each variant's label spans its group, which tabwriter cannot do.
func writeSideBySide(w io.Writer, r Report) {
	var levels []Level
	for _, s := range r.Sweeps {
		if len(s.Levels) > len(levels) {
			levels = levels[:0]
			for _, l := range s.Levels {
				levels = append(levels, l.Level)
			}
		}
	}
	sub := []string{"req/s", "p99", "errors", "refused/s", "batch"}
	// cells[g][row][col]: g 0 is the level column, then one per sweep;
	// row 0 is the column names.
	cells := [][][]string{{{r.levelHeader()}}}
	for _, lv := range levels {
		cells[0] = append(cells[0], []string{lv.String()})
	}
	for _, s := range r.Sweeps {
		g := [][]string{sub}
		for i := range levels {
			if i >= len(s.Levels) {
				g = append(g, []string{"-", "-", "-", "-", "-"})
				continue
			}
			l := s.Levels[i]
			batch := "-"
			if l.Server != nil {
				batch = strconv.FormatFloat(l.Server.MeanRows, 'f', 1, 64)
			}
			g = append(g, []string{fmtRate(l.Throughput), fmtDuration(l.P99), strconv.FormatUint(l.ErrorCount(), 10), fmtRate(l.RefusedRate()), batch})
		}
		cells = append(cells, g)
	}
	const gap, sep = 2, "   │ "
	widths := make([][]int, len(cells))
	groupWidth := make([]int, len(cells))
	for gi, g := range cells {
		widths[gi] = make([]int, len(g[0]))
		for _, row := range g {
			for c, cell := range row {
				widths[gi][c] = max(widths[gi][c], utf8.RuneCountInString(cell))
			}
		}
		for _, wd := range widths[gi] {
			groupWidth[gi] += wd + gap
		}
		groupWidth[gi] -= gap
		if gi > 0 {
			// Widen the first column so that the label fits above.
			if extra := utf8.RuneCountInString(r.Sweeps[gi-1].Label) - groupWidth[gi]; extra > 0 {
				widths[gi][0] += extra
				groupWidth[gi] += extra
			}
		}
	}
	var b strings.Builder
	b.WriteString(strings.Repeat(" ", groupWidth[0]))
	for gi := 1; gi < len(cells); gi++ {
		b.WriteString(sep)
		fmt.Fprintf(&b, "%-*s", groupWidth[gi], r.Sweeps[gi-1].Label)
	}
	fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
	for row := range cells[0] {
		b.Reset()
		for gi, g := range cells {
			if gi > 0 {
				b.WriteString(sep)
			}
			for c, cell := range g[row] {
				if c > 0 {
					b.WriteString(strings.Repeat(" ", gap))
				}
				fmt.Fprintf(&b, "%*s", widths[gi][c], cell)
			}
		}
		fmt.Fprintln(w, b.String())
	}
}

func hasSizes(s SweepResult) bool {
	for _, l := range s.Levels {
		if l.Server != nil && len(l.Server.Sizes) > 0 {
			return true
		}
	}
	return false
}

func writeSizes(tw io.Writer, header string, s SweepResult) {
	type col struct{ min, max int }
	set := map[col]bool{}
	for _, l := range s.Levels {
		if l.Server != nil {
			for _, b := range l.Server.Sizes {
				set[col{b.Min, b.Max}] = true
			}
		}
	}
	cols := slices.SortedFunc(maps.Keys(set), func(a, b col) int { return a.min - b.min })
	fmt.Fprintf(tw, "%s\t", header)
	for _, c := range cols {
		fmt.Fprintf(tw, "%s\t", SizeBucket{Min: c.min, Max: c.max})
	}
	fmt.Fprintln(tw)
	for _, l := range s.Levels {
		fmt.Fprintf(tw, "%s\t", l.Level)
		for _, c := range cols {
			share := "-"
			if b := l.Server; b != nil {
				for _, sb := range b.Sizes {
					if sb.Min == c.min {
						share = fmtShare(float64(sb.Batches) / float64(b.Batches))
					}
				}
			}
			fmt.Fprintf(tw, "%s\t", share)
		}
		fmt.Fprintln(tw)
	}
}

func writeNotes(w io.Writer, prefix string, s SweepResult) {
	for _, l := range s.Levels {
		for _, k := range slices.Sorted(maps.Keys(l.Errors)) {
			fmt.Fprintf(w, "%s%s: %d × %s, e.g. %s\n", prefix, describeLevel(l.Level), l.Errors[k], k, l.ErrorSamples[k])
		}
		if l.ServerError != "" {
			fmt.Fprintf(w, "%s%s: no batching figures: %s\n", prefix, describeLevel(l.Level), l.ServerError)
		}
	}
	if s.Stopped != "" {
		fmt.Fprintf(w, "%ssweep stopped: %s\n", prefix, s.Stopped)
	}
}

// jsonReport is Report for scripts: durations in milliseconds, names in
// snake case.
type jsonReport struct {
	Target string      `json:"target"`
	Sweeps []jsonSweep `json:"sweeps"`
}

type jsonSweep struct {
	Label   string      `json:"label,omitempty"`
	Stopped string      `json:"stopped,omitempty"`
	Levels  []jsonLevel `json:"levels"`
}

type jsonLevel struct {
	Concurrency  int               `json:"concurrency,omitempty"`
	Rate         float64           `json:"rate,omitempty"`
	Arrivals     string            `json:"arrivals,omitempty"`
	Stable       bool              `json:"stable"`
	Windows      int               `json:"windows"`
	SpanS        float64           `json:"span_s"`
	Requests     uint64            `json:"requests"`
	OK           uint64            `json:"ok"`
	Throughput   float64           `json:"throughput_rps"`
	LatencyMS    jsonLatency       `json:"latency_ms"`
	Errors       map[string]uint64 `json:"errors"`
	ErrorSamples map[string]string `json:"error_samples,omitempty"`
	Refused      uint64            `json:"refused"`
	RefusedRate  float64           `json:"refused_per_s"`
	RefusedShare float64           `json:"refused_share"`
	Server       *jsonServer       `json:"server,omitempty"`
	ServerError  string            `json:"server_error,omitempty"`
}

type jsonLatency struct {
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	Max  float64 `json:"max"`
	Mean float64 `json:"mean"`
}

type jsonServer struct {
	Batches     uint64       `json:"batches"`
	MeanBatch   float64      `json:"mean_batch_rows"`
	BatchSizes  []jsonBucket `json:"batch_sizes"`
	MeanQueueMS float64      `json:"mean_queue_ms"`
	MeanExecMS  float64      `json:"mean_exec_ms"`
}

type jsonBucket struct {
	Min     int    `json:"min"`
	Max     int    `json:"max,omitempty"` // absent: no upper bound
	Batches uint64 `json:"batches"`
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func toJSON(r Report) jsonReport {
	out := jsonReport{Target: r.Target, Sweeps: []jsonSweep{}}
	for _, s := range r.Sweeps {
		js := jsonSweep{Label: s.Label, Stopped: s.Stopped, Levels: []jsonLevel{}}
		for _, l := range s.Levels {
			jl := jsonLevel{
				Concurrency: l.Level.Concurrency, Arrivals: l.Level.Arrivals(),
				Stable: l.Stable, Windows: l.Windows, SpanS: l.Span.Seconds(),
				Requests: l.Requests, OK: l.OK, Throughput: l.Throughput,
				LatencyMS: jsonLatency{ms(l.P50), ms(l.P90), ms(l.P99), ms(l.Max), ms(l.Mean)},
				Errors:    l.Errors, ErrorSamples: l.ErrorSamples, ServerError: l.ServerError,
				Refused: l.Refused, RefusedRate: l.RefusedRate(), RefusedShare: l.RefusedShare(),
			}
			if l.Level.Open() {
				jl.Rate = l.Level.Rate
			}
			if jl.Errors == nil {
				jl.Errors = map[string]uint64{}
			}
			if b := l.Server; b != nil {
				jl.Server = &jsonServer{Batches: b.Batches, MeanBatch: b.MeanRows,
					MeanQueueMS: ms(b.MeanQueue), MeanExecMS: ms(b.MeanExec), BatchSizes: []jsonBucket{}}
				for _, sb := range b.Sizes {
					jl.Server.BatchSizes = append(jl.Server.BatchSizes, jsonBucket{sb.Min, sb.Max, sb.Batches})
				}
			}
			js.Levels = append(js.Levels, jl)
		}
		out.Sweeps = append(out.Sweeps, js)
	}
	return out
}

// WriteJSON writes the report as one indented JSON document.
func WriteJSON(w io.Writer, r Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(toJSON(r))
}

// CSVHeader is the first row WriteCSV writes; one row per level follows.
var CSVHeader = []string{
	"label", "concurrency", "rate", "arrivals", "stable", "span_s", "requests", "ok", "throughput_rps",
	"p50_ms", "p90_ms", "p99_ms", "max_ms", "mean_ms", "errors", "error_kinds",
	"batches", "mean_batch_rows", "mean_queue_ms", "mean_exec_ms", "batch_sizes",
	"refused", "refused_per_s", "refused_share",
}

// WriteCSV writes one row per level of every sweep. error_kinds and
// batch_sizes pack their maps as "k=v;k=v".
func WriteCSV(w io.Writer, r Report) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(CSVHeader); err != nil {
		return err
	}
	f := func(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }
	for _, s := range toJSON(r).Sweeps {
		for _, l := range s.Levels {
			var kinds []string
			for _, k := range slices.Sorted(maps.Keys(l.Errors)) {
				kinds = append(kinds, fmt.Sprintf("%s=%d", k, l.Errors[k]))
			}
			var errs uint64
			for _, n := range l.Errors {
				errs += n
			}
			batches, mean, queue, exec, sizes := "", "", "", "", ""
			if b := l.Server; b != nil {
				batches, mean, queue, exec = strconv.FormatUint(b.Batches, 10), f(b.MeanBatch), f(b.MeanQueueMS), f(b.MeanExecMS)
				var parts []string
				for _, sb := range b.BatchSizes {
					parts = append(parts, fmt.Sprintf("%s=%d", SizeBucket{sb.Min, sb.Max, 0}, sb.Batches))
				}
				sizes = strings.Join(parts, ";")
			}
			row := []string{
				s.Label, strconv.Itoa(l.Concurrency), f(l.Rate), l.Arrivals, strconv.FormatBool(l.Stable),
				f(l.SpanS), strconv.FormatUint(l.Requests, 10), strconv.FormatUint(l.OK, 10), f(l.Throughput),
				f(l.LatencyMS.P50), f(l.LatencyMS.P90), f(l.LatencyMS.P99), f(l.LatencyMS.Max), f(l.LatencyMS.Mean),
				strconv.FormatUint(errs, 10), strings.Join(kinds, ";"),
				batches, mean, queue, exec, sizes,
				strconv.FormatUint(l.Refused, 10), f(l.RefusedRate), f(l.RefusedShare),
			}
			if err := cw.Write(row); err != nil {
				return err
			}
		}
	}
	cw.Flush()
	return cw.Error()
}
