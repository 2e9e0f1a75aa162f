package ui

import (
	"fmt"
	"strings"

	"github.com/charmbracelet/bubbles/key"
	"github.com/charmbracelet/bubbles/viewport"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"

	"github.com/benchtop/benchtop/engine"
	"github.com/benchtop/benchtop/engine/tensor"
)

// apisPanel lists the config's APIs with their form and wiring: the method
// an API of one method calls, the runners bound to a Go API's roles, a
// pipeline's steps with what feeds each. One is selected; enter sends it a
// test input, l fires a load at it.
type apisPanel struct {
	keys    apisKeyMap
	st      styles
	w, h    int
	apis    []APIInfo
	runners map[string]engine.RunnerStats
	sel     int
	blocks  [][2]int // each API's first line and the line after its last
	vp      viewport.Model
	closed  bool // esc: the root closes the panel
	// chosen is set with the selected API's name when enter or l asks the
	// root for the test input or the load panel on it.
	chosen string
	action panel
}

func newAPIsPanel(st styles) apisPanel {
	vp := viewport.New(0, 0)
	vp.KeyMap = viewport.KeyMap{}
	return apisPanel{keys: defaultAPIsKeyMap(), st: st, vp: vp}
}

func (p *apisPanel) SetSize(w, h int) {
	p.w, p.h = w, h
	p.vp.Width, p.vp.Height = max(1, w-2), max(1, h-2)
	p.fill()
}

func (p apisPanel) ShortHelp() []key.Binding  { return p.keys.ShortHelp() }
func (p apisPanel) FullHelp() [][]key.Binding { return p.keys.FullHelp() }

func (p apisPanel) Update(msg tea.Msg) (apisPanel, tea.Cmd) {
	switch msg := msg.(type) {
	case snapshotMsg:
		// Keep the selection on the same API across a reload.
		name := p.selected()
		p.apis = msg.APIs
		p.runners = make(map[string]engine.RunnerStats, len(msg.Runners))
		for _, r := range msg.Runners {
			p.runners[r.Name] = r
		}
		p.sel = 0
		for i, a := range p.apis {
			if a.Spec.Name == name {
				p.sel = i
			}
		}
		p.fill()
	case tea.KeyMsg:
		k := p.keys
		switch {
		case key.Matches(msg, k.Close):
			p.closed = true
		case key.Matches(msg, k.Down):
			p.move(1)
		case key.Matches(msg, k.Up):
			p.move(-1)
		case key.Matches(msg, k.PageDown):
			p.vp.PageDown()
			p.selectInView()
		case key.Matches(msg, k.PageUp):
			p.vp.PageUp()
			p.selectInView()
		case key.Matches(msg, k.Test), key.Matches(msg, k.Load):
			if name := p.selected(); name != "" {
				p.chosen, p.action = name, panelTest
				if key.Matches(msg, k.Load) {
					p.action = panelLoad
				}
			}
		}
	}
	return p, nil
}

func (p apisPanel) selected() string {
	if p.sel < len(p.apis) {
		return p.apis[p.sel].Spec.Name
	}
	return ""
}

// move selects the next or previous API and scrolls it into view.
func (p *apisPanel) move(d int) {
	if len(p.apis) == 0 {
		return
	}
	p.sel = min(max(p.sel+d, 0), len(p.apis)-1)
	p.fill()
	if p.sel >= len(p.blocks) {
		return
	}
	b := p.blocks[p.sel]
	switch {
	case b[0] < p.vp.YOffset:
		p.vp.SetYOffset(b[0])
	case b[1] > p.vp.YOffset+p.vp.Height:
		p.vp.SetYOffset(min(b[0], b[1]-p.vp.Height))
	}
}

// selectInView moves the selection, if a page key scrolled it away, to the
// first API that starts in view: enter tests what the user sees.
func (p *apisPanel) selectInView() {
	top, bottom := p.vp.YOffset, p.vp.YOffset+p.vp.Height
	if p.sel < len(p.blocks) && p.blocks[p.sel][0] >= top && p.blocks[p.sel][0] < bottom {
		return
	}
	for i, b := range p.blocks {
		if b[0] >= top && b[0] < bottom {
			p.sel = i
			p.fill()
			return
		}
	}
}

// fill renders the list into the viewport, keeping its scroll.
func (p *apisPanel) fill() {
	y := p.vp.YOffset
	p.vp.SetContent(p.content())
	p.vp.SetYOffset(y)
}

func (p *apisPanel) content() string {
	st, w := p.st, p.vp.Width
	if len(p.apis) == 0 {
		return wrapHard("The config has no APIs: add some under apis: (docs/SERVICES.md says how).", w)
	}
	nameW := 0
	for _, a := range p.apis {
		nameW = max(nameW, lipgloss.Width(a.Spec.Name))
	}
	nameW = min(nameW, 20)
	var lines []string
	p.blocks = p.blocks[:0]
	for i, a := range p.apis {
		start := len(lines)
		mark, name := "  ", padRight(a.Spec.Name, nameW)
		if i == p.sel {
			mark, name = "▸ ", st.selected.Render(name)
		}
		head := fmt.Sprintf("%s%s  %s · %s → %s", mark, name, a.Form(), a.Spec.Input, a.Spec.Output)
		lines = append(lines, truncate(head, w))
		lines = append(lines, hang("    ", st.dim.Render("takes "+signature(a.Spec.Inputs)+" · returns "+signature(a.Spec.Outputs)), w)...)
		lines = append(lines, p.wiring(a, w)...)
		p.blocks = append(p.blocks, [2]int{start, len(lines)})
	}
	lines = append(lines, "", st.dim.Render(wrapHard("Per-API calls and step times are on /metrics: benchtop_api_calls_total, benchtop_api_step_duration_seconds.", w)))
	return strings.Join(lines, "\n")
}

// wiring is a line per runner call of a Go API or a pipeline: the step or
// role, the runner method it calls, and for a step what feeds its inputs;
// then a pipeline's outputs. A runner with no worker ready is marked.
func (p *apisPanel) wiring(a APIInfo, w int) []string {
	if !a.Spec.IsFunc() && !a.Spec.IsPipeline() {
		if why := p.notReady(a.Calls[0].Runner); why != "" {
			return hang("    ", why, w)
		}
		return nil
	}
	nameW, callW := len("outputs"), 0
	for _, c := range a.Calls {
		nameW = max(nameW, lipgloss.Width(c.Name))
		callW = max(callW, lipgloss.Width(c.Runner+"."+c.Method))
	}
	var lines []string
	for _, c := range a.Calls {
		call := c.Runner + "." + c.Method
		if c.Method == "" { // a Go API whose type left the registry
			call = c.Runner
		}
		var feeds []string
		for _, b := range c.Inputs {
			feeds = append(feeds, b.Name+" ← "+b.From)
		}
		line := padRight(c.Name, nameW) + "  " + padRight(call, callW)
		if a.Spec.IsFunc() {
			line = padRight(c.Name, nameW) + "  → " + call
		}
		if len(feeds) > 0 {
			line += "  " + strings.Join(feeds, ", ")
		}
		if why := p.notReady(c.Runner); why != "" {
			line += "  " + why
		}
		lines = append(lines, hang("    ", line, w)...)
	}
	if len(a.Spec.Returns) > 0 {
		var outs []string
		for _, b := range a.Spec.Returns {
			outs = append(outs, b.Name+" ← "+b.From)
		}
		lines = append(lines, hang("    ", padRight("outputs", nameW)+"  "+strings.Join(outs, ", "), w)...)
	}
	return lines
}

// notReady says, with a ✗, why a call to runner cannot be served now.
func (p *apisPanel) notReady(runner string) string {
	r, ok := p.runners[runner]
	switch {
	case !ok:
		return p.st.bad.Render("✗ runner " + runner + " is not running")
	case r.Ready == 0:
		return p.st.bad.Render("✗ " + runner + ": no worker ready")
	}
	return ""
}

// signature names each value (a lone unnamed one by its kind alone).
func signature(specs tensor.IOSpecs) string {
	if len(specs) == 0 {
		return "nothing"
	}
	parts := make([]string, len(specs))
	for i, s := range specs {
		parts[i] = s.String()
		if j := strings.IndexByte(parts[i], '['); j >= 0 {
			// A shape wraps whole: no-break spaces between its sizes.
			parts[i] = parts[i][:j] + strings.ReplaceAll(parts[i][j:], " ", "\u00a0")
		}
		if s.Name != "" && (len(specs) > 1 || (s.Name != engine.DefaultInputName && s.Name != engine.DefaultOutputName)) {
			parts[i] = s.Name + ": " + parts[i]
		}
		if s.Optional {
			parts[i] += " (optional)"
		}
	}
	return strings.Join(parts, ", ")
}

// hang wraps s to w cells behind indent, continuation lines indented two
// more, so a long wiring line stays under its API.
func hang(indent, s string, w int) []string {
	lines := strings.Split(wrapHard(s, max(8, w-lipgloss.Width(indent)-2)), "\n")
	for i, l := range lines {
		if i > 0 {
			l = "  " + l
		}
		lines[i] = indent + l
	}
	return lines
}

func (p apisPanel) View() string {
	title := fmt.Sprintf("APIs (%d)", len(p.apis))
	if p.vp.TotalLineCount() > p.vp.Height {
		title += fmt.Sprintf(" · %.0f%% · ↓/pgdn scrolls", p.vp.ScrollPercent()*100)
	}
	return p.st.box(title, p.vp.View(), p.w, p.h)
}

// take hands the root what enter or l asked for, once: the API and the
// panel to open on it.
func (p *apisPanel) take() (string, panel) {
	api, a := p.chosen, p.action
	p.chosen, p.action = "", panelNone
	return api, a
}
