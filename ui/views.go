package ui

import (
	"fmt"
	"log/slog"
	"strings"

	"github.com/charmbracelet/lipgloss"

	"github.com/benchtop/benchtop/engine"
	"github.com/benchtop/benchtop/ui/console"
)

// View renders the whole screen from the snapshot and the UI state.
func (m Model) View() string {
	if m.quitting {
		return ""
	}
	if !m.haveSnap {
		return "benchtop: starting…"
	}
	w, h := max(m.width, 40), max(m.height, 12)
	header := m.viewHeader(w)
	helpBar := m.viewHelpBar(w)
	tableRows := min(len(m.visibleRunners()), max(3, h/4))
	table := m.viewTable(w, tableRows)
	rest := h - lipgloss.Height(header) - lipgloss.Height(helpBar) - lipgloss.Height(table)
	// Each box adds two border lines to its body.
	eventsH := max(3, rest/4)
	if m.panel != panelNone {
		eventsH = 3
	}
	detailH := max(3, rest-eventsH-4)
	var detail string
	switch m.panel {
	case panelBatching:
		detail = m.viewBatching(w, detailH)
	case panelTest:
		detail = m.viewTest(w, detailH)
	case panelLoad:
		detail = m.viewLoad(w, detailH)
	case panelGPU:
		detail = m.viewGPU(w, detailH)
	case panelHelp:
		detail = m.viewHelp(w, detailH)
	default:
		detail = m.viewDetail(w, detailH)
	}
	events := m.viewEvents(w, eventsH)
	return lipgloss.JoinVertical(lipgloss.Left, header, table, detail, events, helpBar)
}

func (m Model) viewHeader(w int) string {
	st := m.st
	s := m.snap
	parts := []string{st.header.Render("benchtop"), s.URL}
	cfg := s.Config.Path
	switch {
	case s.Config.Err != "":
		first, _, _ := strings.Cut(s.Config.Err, "\n")
		cfg += " " + st.bad.Render("✗ reload refused: "+first)
	case !s.Config.LastReload.IsZero():
		cfg += " " + st.ok.Render("✓") + " loaded " + s.Config.LastReload.Format("15:04:05")
	}
	parts = append(parts, cfg)
	if s.GPU.Available {
		parts = append(parts, fmt.Sprintf("GPU: %d", len(s.GPU.Devices)))
	} else {
		parts = append(parts, "GPU: none found")
	}
	line := " " + strings.Join(parts, st.headerDim.Render(" ▸ "))
	return truncate(line, w)
}

type column struct {
	title string
	width int
	right bool
	min   int // narrowest terminal that shows it
}

var columns = []column{
	{"NAME", 16, false, 0}, {"KIND", 8, false, 100}, {"WORKERS", 7, true, 0}, {"POLICY", 9, false, 0},
	{"MAX B", 6, true, 0}, {"MAX LAT", 8, true, 100}, {"REQ/S", 9, true, 0}, {"P50", 8, true, 100},
	{"P99", 8, true, 0}, {"QUEUE", 6, true, 0}, {"ERR", 6, true, 0},
}

func kindOf(runnable string) string {
	switch runnable {
	case "onnx", "process":
		return runnable
	}
	return "go"
}

func (m Model) runnerCells(r engine.RunnerStats) []string {
	ms := m.primary(r)
	workers := fmt.Sprintf("%d/%d", r.Ready, r.Workers)
	if (r.StartError != "" && r.Ready == 0) || r.CrashLoop != "" {
		workers = "✗ " + workers
	}
	policy, maxB, maxL := "–", "–", "–"
	if ms.Spec.Batchable {
		policy = ms.Batching.Policy.String()
		maxB = humanInt(int64(ms.Batching.MaxBatchSize))
		maxL = msString(ms.Batching.MaxLatency)
	}
	return []string{
		r.Name, kindOf(r.Runnable), workers, policy, maxB, maxL,
		humanRate(ms.Window.RequestsPerS), humanDur(ms.Window.E2E.P50), humanDur(ms.Window.E2E.P99),
		humanInt(int64(ms.Queue.Depth)), humanInt(int64(errorsOf(r))),
	}
}

func (m Model) viewTable(w, rows int) string {
	st := m.st
	inner := w - 2
	var visible []int
	used := 2
	for i, c := range columns {
		if w >= c.min && used+c.width+1 <= inner {
			visible = append(visible, i)
			used += c.width + 1
		}
	}
	cell := func(i int, s string) string {
		c := columns[i]
		s = truncate(s, c.width)
		if c.right {
			return fmt.Sprintf("%*s", c.width, s)
		}
		return fmt.Sprintf("%-*s", c.width, s)
	}
	var lines []string
	var hdr []string
	for _, i := range visible {
		hdr = append(hdr, cell(i, columns[i].title))
	}
	lines = append(lines, "  "+st.colHeader.Render(strings.Join(hdr, " ")))
	rs := m.visibleRunners()
	start := 0
	for i, r := range rs {
		if r.Name == m.selected && i >= rows {
			start = i - rows + 1
		}
	}
	for _, r := range rs[start:min(len(rs), start+rows)] {
		cells := m.runnerCells(r)
		var parts []string
		for _, i := range visible {
			parts = append(parts, cell(i, cells[i]))
		}
		line := strings.Join(parts, " ")
		if r.Name == m.selected {
			line = "▸ " + st.selected.Render(line)
		} else {
			line = "  " + line
		}
		lines = append(lines, line)
	}
	if len(rs) == 0 {
		lines = append(lines, st.dim.Render("  no runners match"))
	}
	title := fmt.Sprintf("Runners (%d) · sort: %s", len(m.snap.Runners), sortNames[m.sortKey])
	if q := m.filter.Value(); q != "" || m.filtering {
		title += " · " + m.filter.View()
	}
	return m.box(title, strings.Join(lines, "\n"), w, len(lines))
}

func (m Model) viewDetail(w, h int) string {
	r, ok := m.selectedRunner()
	if !ok || len(r.Methods) == 0 {
		return m.box("detail", m.st.dim.Render("select a runner"), w, h)
	}
	ms := m.primary(r)
	if w >= 100 {
		left := w * 2 / 5
		return lipgloss.JoinHorizontal(lipgloss.Top, m.viewBatches(r, ms, left, h), m.viewLatency(r, ms, w-left, h))
	}
	top := h / 2
	return lipgloss.JoinVertical(lipgloss.Left, m.viewBatches(r, ms, w, top), m.viewLatency(r, ms, w, h-top-2))
}

func (m Model) viewBatches(r engine.RunnerStats, ms engine.MethodStats, w, h int) string {
	title := fmt.Sprintf("%s · %s — batch size (rows), last 5 s", r.Name, ms.Spec.Name)
	if !ms.Spec.Batchable {
		return m.box(title, m.st.dim.Render("not batchable: one request per call"), w, h)
	}
	var total uint64
	last := 0
	for i, n := range ms.Window.BatchSizes {
		total += n
		if n > 0 {
			last = i
		}
	}
	maxBucket := batchBucketOf(ms.Batching.MaxBatchSize)
	last = max(last, min(maxBucket, len(ms.Window.BatchSizes)-1))
	barW := max(5, w-2-8-7)
	var lines []string
	for i := 0; i <= last && len(lines) < h; i++ {
		frac := 0.0
		if total > 0 {
			frac = float64(ms.Window.BatchSizes[i]) / float64(total)
		}
		lines = append(lines, fmt.Sprintf("%6s ▏%s %3.0f%%", engine.BatchBucketLabel(i), bar(frac, barW), frac*100))
	}
	if total == 0 {
		lines = append(lines, m.st.dim.Render("no batches yet: press t to send one, l to load"))
	} else if len(lines) < h {
		lines = append(lines, m.st.dim.Render(fmt.Sprintf("mean %.1f rows, %.1f requests per batch", ms.Window.MeanBatchRows, ms.Window.MeanBatchRequests)))
	}
	return m.box(title, strings.Join(lines, "\n"), w, h)
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

func batchBucketOf(rows int) int {
	i := 0
	for rows > 1 {
		rows >>= 1
		i++
	}
	return i
}

func (m Model) viewLatency(r engine.RunnerStats, ms engine.MethodStats, w, h int) string {
	win := ms.Window
	lines := []string{
		fmt.Sprintf("%-6s %8s %8s %8s", "", "p50", "p90", "p99"),
		fmt.Sprintf("%-6s %8s %8s %8s", "e2e", humanDur(win.E2E.P50), humanDur(win.E2E.P90), humanDur(win.E2E.P99)),
		fmt.Sprintf("%-6s %8s %8s %8s", "queue", humanDur(win.Queue.P50), humanDur(win.Queue.P90), humanDur(win.Queue.P99)),
		fmt.Sprintf("%-6s %8s %8s %8s", "exec", humanDur(win.Exec.P50), humanDur(win.Exec.P90), humanDur(win.Exec.P99)),
		"",
	}
	n := min(len(win.History), max(10, w-20))
	hist := win.History[len(win.History)-n:]
	reqs := make([]float64, n)
	queue := make([]float64, n)
	for i, s := range hist {
		reqs[i] = float64(s.Requests)
		queue[i] = float64(s.MaxQueue)
	}
	lines = append(lines,
		fmt.Sprintf("req/s %s %s", sparkline(reqs), humanRate(win.RequestsPerS)),
		fmt.Sprintf("queue %s %d", sparkline(queue), ms.Queue.Depth),
		m.st.dim.Render(fmt.Sprintf("last %d s · workers %d/%d ready · %d threads · restarts %d · errors/s %s",
			n, r.Ready, r.Workers, r.Threads, r.Restarts, humanRate(win.ErrorsPerS))),
	)
	if len(r.WorkerList) > 0 {
		lines = append(lines, "workers "+workerStates(r.WorkerList))
	}
	if r.StartError != "" {
		lines = append(lines, m.st.bad.Render("✗ "+r.StartError))
	}
	if r.CrashLoop != "" {
		lines = append(lines, m.st.bad.Render("✗ crash loop: "+r.CrashLoop))
	}
	return m.box("latency", strings.Join(lines[:min(len(lines), max(h, 1))], "\n"), w, h)
}

func (m Model) viewEvents(w, h int) string {
	st := m.st
	evs := m.snap.Events
	var lines []string
	if m.flash != "" {
		mark := st.ok.Render("✓ ")
		if m.flashBad {
			mark = st.bad.Render("✗ ")
		}
		lines = append(lines, mark+m.flash)
	}
	for i := len(evs) - 1; i >= 0 && len(lines) < h; i-- {
		ev := evs[i]
		mark := "  "
		switch {
		case ev.Level >= slog.LevelError:
			mark = st.bad.Render("✗ ")
		case ev.Level >= slog.LevelWarn:
			mark = st.warn.Render("⚠ ")
		}
		who := ""
		if ev.Runner != "" {
			who = ev.Runner + ": "
		}
		lines = append(lines, fmt.Sprintf("%s %s%s%s", ev.Time.Format("15:04:05"), mark, who, ev.Message))
	}
	return m.box("Events", strings.Join(lines, "\n"), w, h)
}

func (m Model) viewHelpBar(w int) string {
	var parts []string
	for _, b := range m.keys.shortHelp() {
		parts = append(parts, m.st.key.Render(b.Help().Key)+" "+m.st.keyDesc.Render(b.Help().Desc))
	}
	return truncate(" "+strings.Join(parts, " · "), w)
}

func (m Model) viewHelp(w, h int) string {
	var cols []string
	for _, group := range m.keys.fullHelp() {
		var lines []string
		for _, b := range group {
			lines = append(lines, fmt.Sprintf("%-12s %s", b.Help().Key, b.Help().Desc))
		}
		cols = append(cols, strings.Join(lines, "\n"))
	}
	body := lipgloss.JoinHorizontal(lipgloss.Top, intersperse(cols, "    ")...)
	body += "\n\n" + m.st.dim.Render("test input: ctrl+n/ctrl+p change target · ctrl+s send   batching: a/f/n pick a policy, digits type a value   ? or esc closes")
	return m.box("help", body, w, h)
}

func intersperse(cols []string, sep string) []string {
	var out []string
	for i, c := range cols {
		if i > 0 {
			out = append(out, sep)
		}
		out = append(out, c)
	}
	return out
}

func (m Model) viewGPU(w, h int) string {
	g := m.snap.GPU
	if !g.Available {
		msg := g.Message
		if msg == "" {
			msg = "No NVIDIA GPU found"
		}
		return m.box("GPU", msg+"\n"+m.st.dim.Render("Runners run on CPU; nothing else is affected. esc closes."), w, h)
	}
	var lines []string
	barW := max(10, w/4)
	for _, d := range g.Devices {
		memFrac := 0.0
		if d.MemTotal > 0 {
			memFrac = float64(d.MemUsed) / float64(d.MemTotal)
		}
		lines = append(lines, fmt.Sprintf("%d %s", d.Index, d.Name))
		lines = append(lines, fmt.Sprintf("  util %s %3.0f%%  %s", bar(d.Util, barW), d.Util*100, sparkline(d.UtilHist)))
		lines = append(lines, fmt.Sprintf("  mem  %s %s / %s  %s", bar(memFrac, barW), console.Bytes(int64(d.MemUsed)), console.Bytes(int64(d.MemTotal)), sparkline(d.MemHist)))
		var extra []string
		if d.TempC > 0 {
			extra = append(extra, fmt.Sprintf("%.0f°C", d.TempC))
		}
		if d.PowerW > 0 {
			extra = append(extra, fmt.Sprintf("%.0f W", d.PowerW))
		}
		if len(d.Runners) > 0 {
			extra = append(extra, "runners: "+strings.Join(d.Runners, ", "))
		}
		if len(d.Processes) > 0 {
			extra = append(extra, "processes: "+strings.Join(d.Processes, ", "))
		}
		if len(extra) > 0 {
			lines = append(lines, "  "+strings.Join(extra, " · "))
		}
	}
	return m.box("GPU", strings.Join(lines, "\n"), w, h)
}

// box frames body with a title; h is the number of body lines.
func (m Model) box(title, body string, w, h int) string {
	inner := max(1, w-2)
	lines := strings.Split(body, "\n")
	if h > 0 && len(lines) > h {
		lines = lines[:h]
	}
	for len(lines) < h {
		lines = append(lines, "")
	}
	for i, l := range lines {
		lines[i] = padRight(truncate(l, inner), inner)
	}
	titleText := truncate(" "+title+" ", max(1, inner-1))
	top := "╭─" + m.st.boxTitle.Render(titleText) + strings.Repeat("─", max(0, inner-1-lipgloss.Width(titleText))) + "╮"
	bottom := "╰" + strings.Repeat("─", inner) + "╯"
	var b strings.Builder
	b.WriteString(top)
	for _, l := range lines {
		b.WriteString("\n│" + l + "│")
	}
	b.WriteString("\n" + bottom)
	return b.String()
}

// truncate cuts s to w cells, ANSI-aware.
func truncate(s string, w int) string {
	if lipgloss.Width(s) <= w {
		return s
	}
	return lipgloss.NewStyle().MaxWidth(w).Render(s)
}

func padRight(s string, w int) string {
	if d := w - lipgloss.Width(s); d > 0 {
		return s + strings.Repeat(" ", d)
	}
	return s
}
