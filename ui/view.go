package ui

import (
	"path/filepath"
	"strings"

	"github.com/charmbracelet/bubbles/key"
	"github.com/charmbracelet/lipgloss"
)

// layoutPlan is where each component sits: heights of the stacked rows
// (0: not shown) and the split of the charts row.
type layoutPlan struct {
	w                            int
	table, charts, panel, events int
	chartsLeft                   int // width of the histogram; 0: stacked
	panelFirst                   bool
}

// Sizes below which the screen gives up the table and events to keep
// what a panel is opened for in view.
const (
	roomyHeight = 36 // rows of body: table, charts, panel and events together
	chartsMin   = 11 // a histogram of up to 33-64 plus its means; latency's figures
)

// layout sizes every component for the terminal and the open panel: run
// after every message, so a resize or a panel opening re-lays everything.
func (m *Model) layout() {
	w := max(m.width, 20)
	body := max(m.height-2, 6) // header and footer
	var p layoutPlan
	p.w = w
	tableH := func(maxShare int) int { return 3 + min(m.table.wantRows(), max(1, maxShare)) }
	switch m.panel {
	case panelNone:
		p.table = tableH(body/4 - 2)
		rest := body - p.table
		p.events = max(3, min(rest/4, 2+len(m.events.merged())))
		p.charts = rest - p.events
	case panelBatching, panelLoad:
		// Firing load or tuning: the charts stay in view.
		want := m.load.wantHeight()
		if m.panel == panelBatching {
			want = m.batching.wantHeight()
		}
		rest := body
		if body >= roomyHeight {
			p.table = tableH(body/6 - 2)
			p.events = 4
			rest -= p.table + p.events
		}
		p.panel = min(want, max(rest-chartsMin, 6))
		p.charts = rest - p.panel
	default: // test input, GPU, help, events: the panel has the body
		if body >= roomyHeight {
			p.table = tableH(body/6 - 2)
		}
		p.panel = body - p.table
		p.panelFirst = true
	}
	if p.charts > 0 && w >= 80 {
		p.chartsLeft = w / 2
		if w >= 120 {
			p.chartsLeft = w * 2 / 5
		}
	}
	m.lay = p

	m.table.SetSize(w, p.table)
	r, ok := m.table.selectedRunner()
	ms := m.table.primary(r)
	m.batches.show(r, ms, ok && len(r.Methods) > 0)
	var ri *RemoteInfo
	if info, remote := m.snap.Remote[r.Name]; remote && ok {
		ri = &info
	}
	m.latency.show(r, ms, ok && len(r.Methods) > 0, ri)
	if p.chartsLeft > 0 {
		m.batches.SetSize(p.chartsLeft, p.charts)
		m.latency.SetSize(w-p.chartsLeft, p.charts)
	} else {
		top := p.charts / 2
		m.batches.SetSize(w, top)
		m.latency.SetSize(w, p.charts-top)
	}
	if m.panel == panelEvents {
		m.events.SetSize(w, p.panel)
	} else {
		m.events.SetSize(w, p.events)
	}
	for _, c := range []component{&m.batching, &m.load, &m.test, &m.gpu, &m.help, &m.apis} {
		c.SetSize(w, max(p.panel, 3))
	}
	m.footer.Width = w
}

// View renders the screen, exactly the terminal's size.
func (m Model) View() string {
	if m.quitting {
		return ""
	}
	if !m.haveSnap {
		return "benchtop: starting…"
	}
	p := m.lay
	parts := []string{m.viewHeader(p.w)}
	if p.table > 0 {
		parts = append(parts, m.table.View())
	}
	charts := ""
	if p.charts > 0 {
		if p.chartsLeft > 0 {
			charts = lipgloss.JoinHorizontal(lipgloss.Top, m.batches.View(), m.latency.View())
		} else {
			charts = lipgloss.JoinVertical(lipgloss.Left, m.batches.View(), m.latency.View())
		}
	}
	if !p.panelFirst && charts != "" {
		parts = append(parts, charts)
	}
	if p.panel > 0 {
		parts = append(parts, m.panelView())
	}
	if p.panelFirst && charts != "" {
		parts = append(parts, charts)
	}
	if p.events > 0 {
		parts = append(parts, m.events.View())
	}
	parts = append(parts, m.viewFooter(p.w))
	return lipgloss.JoinVertical(lipgloss.Left, parts...)
}

func (m Model) panelView() string {
	switch m.panel {
	case panelBatching:
		return m.batching.View()
	case panelTest:
		return m.test.View()
	case panelLoad:
		return m.load.View()
	case panelGPU:
		return m.gpu.View()
	case panelHelp:
		return m.help.View()
	case panelEvents:
		return m.events.View()
	case panelAPIs:
		return m.apis.View()
	}
	return ""
}

// focused is the component whose keys the footer shows.
func (m Model) focused() component {
	switch m.panel {
	case panelBatching:
		return &m.batching
	case panelTest:
		return &m.test
	case panelLoad:
		return &m.load
	case panelGPU:
		return &m.gpu
	case panelHelp:
		return &m.help
	case panelEvents:
		return &m.events
	case panelAPIs:
		return &m.apis
	}
	return nil
}

// viewHeader says where the workbench serves, which config and its
// state, and the GPUs, abbreviating rather than cutting: the config's
// folder goes first, then the word "benchtop", then the GPU part; a
// refused reload's first error line is last and ends in "…" when long.
func (m Model) viewHeader(w int) string {
	st, s := m.st, m.snap
	sep := st.headerDim.Render(" ▸ ")
	state := ""
	switch {
	case s.Config.Err != "":
		first, _, _ := strings.Cut(s.Config.Err, "\n")
		state = " " + st.bad.Render("✗ reload refused: "+first)
	case !s.Config.LastReload.IsZero():
		state = " " + st.ok.Render("✓") + " " + s.Config.LastReload.Format("15:04:05")
	}
	gpu := "GPU: none"
	if s.GPU.Available {
		gpu = "GPU: " + plural(len(s.GPU.Devices), "device")
	}
	grpc := ""
	if s.GRPC != "" {
		grpc = "grpc " + s.GRPC
	}
	try := func(name, path, gpu string) string {
		parts := []string{}
		if name != "" {
			parts = append(parts, st.header.Render(name))
		}
		parts = append(parts, s.URL)
		if grpc != "" {
			parts = append(parts, grpc)
		}
		parts = append(parts, path+state)
		if gpu != "" {
			parts = append(parts, gpu)
		}
		return " " + strings.Join(parts, sep)
	}
	short := s.Config.Path
	if !strings.HasPrefix(short, "<") { // "<embedded …>" names no file
		short = filepath.Base(short)
	}
	for _, line := range []string{
		try("benchtop", s.Config.Path, gpu),
		try("benchtop", short, gpu),
		try("", short, gpu),
		try("", short, ""),
		func() string { grpc = ""; return try("", short, "") }(),
	} {
		if lipgloss.Width(line) <= w {
			return line
		}
	}
	return truncate(try("", short, ""), w)
}

// viewFooter is the focused component's key help, from its bindings; on
// the main screen the table's and the panels' keys, as many as fit.
func (m Model) viewFooter(w int) string {
	var bindings []key.Binding
	if c := m.focused(); c != nil {
		bindings = c.ShortHelp()
	} else if m.table.capturesText() {
		bindings = m.table.ShortHelp()
	} else {
		bindings = m.keys.ShortHelp()
	}
	m.footer.Width = w - 1
	line := " " + m.footer.ShortHelpView(bindings)
	if lipgloss.Width(line) > w {
		line = truncate(line, w)
	}
	return line
}
