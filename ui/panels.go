package ui

import (
	"fmt"
	"strings"

	"github.com/charmbracelet/bubbles/key"
	"github.com/charmbracelet/bubbles/viewport"
	tea "github.com/charmbracelet/bubbletea"

	"github.com/benchtop/benchtop/ui/console"
)

// gpuPanel shows each GPU's utilisation and memory over time.
type gpuPanel struct {
	keys   scrollKeyMap
	st     styles
	w, h   int
	gpu    GPUInfo
	vp     viewport.Model
	closed bool // esc: the root closes the panel
}

func newGPUPanel(st styles) gpuPanel {
	vp := viewport.New(0, 0)
	vp.KeyMap = viewport.KeyMap{}
	return gpuPanel{keys: defaultScrollKeyMap("g"), st: st, vp: vp}
}

func (p *gpuPanel) SetSize(w, h int) {
	p.w, p.h = w, h
	p.vp.Width, p.vp.Height = max(1, w-2), max(1, h-2)
	p.vp.SetContent(p.content())
}

func (p gpuPanel) ShortHelp() []key.Binding  { return p.keys.ShortHelp() }
func (p gpuPanel) FullHelp() [][]key.Binding { return p.keys.FullHelp() }

func (p gpuPanel) Update(msg tea.Msg) (gpuPanel, tea.Cmd) {
	switch msg := msg.(type) {
	case snapshotMsg:
		p.gpu = msg.GPU
		p.vp.SetContent(p.content())
	case tea.KeyMsg:
		p.closed = scroll(&p.vp, p.keys, msg)
	}
	return p, nil
}

// scroll moves a viewport by a scroll key map; it reports whether the key
// closes the panel.
func scroll(vp *viewport.Model, k scrollKeyMap, msg tea.KeyMsg) bool {
	switch {
	case key.Matches(msg, k.Close):
		return true
	case key.Matches(msg, k.Down):
		vp.ScrollDown(1)
	case key.Matches(msg, k.Up):
		vp.ScrollUp(1)
	case key.Matches(msg, k.PageDown):
		vp.PageDown()
	case key.Matches(msg, k.PageUp):
		vp.PageUp()
	}
	return false
}

func (p gpuPanel) content() string {
	g := p.gpu
	if !g.Available {
		msg := g.Message
		if msg == "" {
			msg = "No NVIDIA GPU found"
		}
		return wrapHard(msg, p.vp.Width) + "\n" + p.st.dim.Render(wrapHard("Runners run on CPU; nothing else is affected.", p.vp.Width))
	}
	var lines []string
	barW := max(10, p.w/4)
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
			lines = append(lines, wrapHard("  "+strings.Join(extra, " · "), p.vp.Width))
		}
	}
	return strings.Join(lines, "\n")
}

func (p gpuPanel) View() string {
	return p.st.box(fmt.Sprintf("GPU (%d)", len(p.gpu.Devices)), p.vp.View(), p.w, p.h)
}

// helpPanel lists every component's bindings, from their key maps, in a
// viewport that scrolls on a small screen.
type helpPanel struct {
	keys     scrollKeyMap
	st       styles
	w, h     int
	sections []helpSection
	vp       viewport.Model
	closed   bool // esc: the root closes the panel
}

type helpSection struct {
	title string
	keys  [][]key.Binding
}

func newHelpPanel(st styles, sections []helpSection) helpPanel {
	vp := viewport.New(0, 0)
	vp.KeyMap = viewport.KeyMap{}
	return helpPanel{keys: defaultScrollKeyMap("?"), st: st, sections: sections, vp: vp}
}

func (p *helpPanel) SetSize(w, h int) {
	p.w, p.h = w, h
	p.vp.Width, p.vp.Height = max(1, w-2), max(1, h-2)
	p.vp.SetContent(p.content())
}

func (p helpPanel) ShortHelp() []key.Binding  { return p.keys.ShortHelp() }
func (p helpPanel) FullHelp() [][]key.Binding { return p.keys.FullHelp() }

func (p helpPanel) Update(msg tea.Msg) (helpPanel, tea.Cmd) {
	if msg, ok := msg.(tea.KeyMsg); ok {
		p.closed = scroll(&p.vp, p.keys, msg)
	}
	return p, nil
}

func (p helpPanel) content() string {
	var lines []string
	for i, s := range p.sections {
		if i > 0 {
			lines = append(lines, "")
		}
		lines = append(lines, p.st.boxTitle.Render(s.title))
		for _, group := range s.keys {
			for _, b := range group {
				if !b.Enabled() {
					continue
				}
				lines = append(lines, fmt.Sprintf("  %-10s %s", b.Help().Key, b.Help().Desc))
			}
		}
	}
	lines = append(lines, "", p.st.dim.Render(wrapHard(
		"OK/S in the table is requests served per second over the last 5 s; the load panel's ok/s and refused/s are over its whole run.", p.vp.Width)))
	return strings.Join(lines, "\n")
}

func (p helpPanel) View() string {
	title := "help"
	if p.vp.TotalLineCount() > p.vp.Height {
		title += fmt.Sprintf(" · %.0f%% · ↓/pgdn scrolls", p.vp.ScrollPercent()*100)
	}
	return p.st.box(title, p.vp.View(), p.w, p.h)
}
