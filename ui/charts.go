package ui

import (
	"fmt"
	"strings"

	"github.com/charmbracelet/bubbles/key"

	"github.com/benchtop/benchtop/engine"
	"github.com/benchtop/benchtop/engine/remote"
)

// batchChart is the selected method's batch-size histogram over the last
// five seconds, in the buckets of /metrics and benchtop bench.
type batchChart struct {
	st     styles
	w, h   int
	runner engine.RunnerStats
	method engine.MethodStats
	ok     bool
}

func (c *batchChart) SetSize(w, h int)         { c.w, c.h = w, h }
func (c batchChart) ShortHelp() []key.Binding  { return nil }
func (c batchChart) FullHelp() [][]key.Binding { return nil }
func (c *batchChart) show(r engine.RunnerStats, ms engine.MethodStats, ok bool) {
	c.runner, c.method, c.ok = r, ms, ok
}

// histRow is one line of the histogram: a range of window buckets.
type histRow struct {
	first, last int // window bucket indices, inclusive
	batches     uint64
}

func (r histRow) label() string {
	lo, _ := engine.BatchBucketRange(r.first)
	_, hi := engine.BatchBucketRange(r.last)
	switch {
	case hi == 0:
		return humanInt(int64(lo)) + "+"
	case lo == hi:
		return humanInt(int64(lo))
	}
	return fmt.Sprintf("%d-%d", lo, hi)
}

// histRows fits the buckets from 1 row up to max_batch_size (or the
// largest batch seen) into at most n lines. When they do not fit, the
// neighbouring lines with the fewest batches merge: empty ranges collapse
// first and the busiest bucket keeps a line of its own, so the buckets
// where batches land always show.
func histRows(sizes []uint64, maxBatch, n int) []histRow {
	last := 0
	for i, v := range sizes {
		if v > 0 {
			last = i
		}
	}
	if maxBatch > 0 {
		mb := 0
		for i := range sizes {
			if lo, _ := engine.BatchBucketRange(i); lo <= maxBatch {
				mb = i
			}
		}
		last = max(last, mb)
	}
	rows := make([]histRow, 0, last+1)
	for i := 0; i <= last; i++ {
		rows = append(rows, histRow{i, i, sizes[i]})
	}
	for len(rows) > max(n, 1) {
		best := 0
		for i := 1; i+1 < len(rows); i++ {
			if rows[i].batches+rows[i+1].batches < rows[best].batches+rows[best+1].batches {
				best = i
			}
		}
		rows[best] = histRow{rows[best].first, rows[best+1].last, rows[best].batches + rows[best+1].batches}
		rows = append(rows[:best+1], rows[best+2:]...)
	}
	return rows
}

func (c batchChart) View() string {
	ms := c.method
	if !c.ok {
		return c.st.box("batches", c.st.dim.Render("select a runner"), c.w, c.h)
	}
	title := fmt.Sprintf("%s.%s batch rows · 5 s", c.runner.Name, ms.Spec.Name)
	if c.runner.Runnable == remote.TypeName {
		// Its batches are the calls it sends; the servers batch again.
		title = fmt.Sprintf("%s.%s call rows · 5 s", c.runner.Name, ms.Spec.Name)
	}
	if !ms.Spec.Batchable {
		return c.st.box(title, c.st.dim.Render("not batchable: one request a call"), c.w, c.h)
	}
	var total uint64
	for _, n := range ms.Window.BatchSizes {
		total += n
	}
	body := c.h - 2
	rowsN := body
	if total > 0 && body > 3 {
		rowsN = body - 1 // a line for the means
	} else if total == 0 {
		rowsN = body - 1 // a line for the hint
	}
	rows := histRows(ms.Window.BatchSizes[:], ms.Batching.MaxBatchSize, rowsN)
	labelW := 1
	for _, r := range rows {
		labelW = max(labelW, len(r.label()))
	}
	barW := max(3, c.w-2-labelW-2-5)
	var lines []string
	for _, r := range rows {
		frac := 0.0
		if total > 0 {
			frac = float64(r.batches) / float64(total)
		}
		lines = append(lines, fmt.Sprintf("%*s ▏%s %3.0f%%", labelW, r.label(), bar(frac, barW), frac*100))
	}
	switch {
	case total == 0:
		lines = append(lines, c.st.dim.Render("no batches yet: t sends one, l loads"))
	case len(lines) < body:
		means := fmt.Sprintf("mean %.1f rows, %.1f requests", ms.Window.MeanBatchRows, ms.Window.MeanBatchRequests)
		if long := plural(int(total), "batch") + " · " + means; len([]rune(long)) <= c.w-2 {
			means = long
		}
		lines = append(lines, c.st.dim.Render(means))
	}
	return c.st.box(title, strings.Join(lines, "\n"), c.w, c.h)
}

// latencyPanel shows the selected method's latency percentiles, its rate
// and queue over the last minute, and its workers.
type latencyPanel struct {
	st     styles
	w, h   int
	runner engine.RunnerStats
	method engine.MethodStats
	ok     bool
	remote *RemoteInfo // the runner's servers, when it is remote
}

func (c *latencyPanel) SetSize(w, h int)         { c.w, c.h = w, h }
func (c latencyPanel) ShortHelp() []key.Binding  { return nil }
func (c latencyPanel) FullHelp() [][]key.Binding { return nil }
func (c *latencyPanel) show(r engine.RunnerStats, ms engine.MethodStats, ok bool, ri *RemoteInfo) {
	c.runner, c.method, c.ok, c.remote = r, ms, ok, ri
}

func (c latencyPanel) View() string {
	if !c.ok {
		return c.st.box("latency", "", c.w, c.h)
	}
	r, win := c.runner, c.method.Window
	exec, title := "exec", fmt.Sprintf("latency · %s.%s", r.Name, c.method.Spec.Name)
	if c.remote != nil {
		// A remote runner executes a batch by calling a server.
		exec, title = "call", title+" · remote"
	}
	lines := []string{
		c.st.colHeader.Render(fmt.Sprintf("%-5s %7s %7s %7s", "", "p50", "p90", "p99")),
		fmt.Sprintf("%-5s %7s %7s %7s", "e2e", humanDur(win.E2E.P50), humanDur(win.E2E.P90), humanDur(win.E2E.P99)),
		fmt.Sprintf("%-5s %7s %7s %7s", "queue", humanDur(win.Queue.P50), humanDur(win.Queue.P90), humanDur(win.Queue.P99)),
		fmt.Sprintf("%-5s %7s %7s %7s", exec, humanDur(win.Exec.P50), humanDur(win.Exec.P90), humanDur(win.Exec.P99)),
	}
	okS := humanRate(win.RequestsPerS)
	depth := humanInt(int64(c.method.Queue.Depth))
	valW := max(len(okS), len(depth))
	n := min(len(win.History), max(1, c.w-2-6-1-valW))
	hist := win.History[len(win.History)-n:]
	reqs := make([]float64, n)
	queue := make([]float64, n)
	for i, s := range hist {
		reqs[i] = float64(s.Requests)
		queue[i] = float64(s.MaxQueue)
	}
	lines = append(lines,
		fmt.Sprintf("ok/s  %s %*s", sparkline(reqs), valW, okS),
		fmt.Sprintf("queue %s %*s", sparkline(queue), valW, depth),
		c.st.dim.Render(fmt.Sprintf("last %d s · errors/s %s", n, humanRate(win.ErrorsPerS))),
	)
	if c.remote == nil {
		lines = append(lines, fmt.Sprintf("workers %d/%d · %s · %s", r.Ready, r.Workers, plural(r.Threads, "thread"), plural(r.Restarts, "restart")))
		if len(r.WorkerList) > 0 {
			lines = append(lines, workerStates(r.WorkerList))
		}
	}
	// Failures come before the detail they would push off a small screen.
	var bad []string
	// A remote runner with no server up fails to start for that reason,
	// which its endpoints' lines say one by one.
	if r.StartError != "" && (c.remote == nil || c.remote.Up() > 0) {
		bad = append(bad, c.st.bad.Render("✗ "+r.StartError))
	}
	if r.CrashLoop != "" {
		bad = append(bad, c.st.bad.Render("✗ crash loop: "+r.CrashLoop))
	}
	if len(bad) > 0 {
		lines = append(lines[:4], append(bad, lines[4:]...)...)
	}
	if c.remote != nil {
		// Its workers are calls in flight; where they go is what matters.
		lines = append(lines, c.st.endpointLines(*c.remote, c.w-2, c.h-2-len(lines))...)
	}
	return c.st.box(title, strings.Join(lines, "\n"), c.w, c.h)
}

// workerStates lists each worker: "#0 ready gpu 1 pid 4242 · #1 starting".
func workerStates(ws []engine.WorkerInfo) string {
	parts := make([]string, 0, len(ws))
	for _, w := range ws {
		p := fmt.Sprintf("#%d ", w.ID)
		if w.Ready {
			p += "ready"
		} else {
			p += "starting"
		}
		if len(w.GPUs) > 0 {
			p += fmt.Sprintf(" gpu %s", strings.Trim(strings.Join(strings.Fields(fmt.Sprint(w.GPUs)), ","), "[]"))
		}
		if w.PID > 0 {
			p += fmt.Sprintf(" pid %d", w.PID)
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, " · ")
}
