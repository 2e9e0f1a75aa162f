package ui

import (
	"errors"
	"fmt"
	"strings"

	"github.com/charmbracelet/bubbles/key"
	"github.com/charmbracelet/bubbles/textarea"
	"github.com/charmbracelet/bubbles/viewport"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"

	"github.com/benchtop/benchtop/engine"
)

// testPanel sends one input to an API or a runner method and shows what
// came back, wrapped in a viewport that scrolls, and which batch it rode
// in.
type testPanel struct {
	keys    testKeyMap
	st      styles
	w, h    int
	backend Backend

	targets []Target
	idx     int
	area    textarea.Model
	result  viewport.Model
	sending bool
	res     *Result
	closed  bool // esc: the root closes the panel
}

type sendResultMsg Result

func newTestPanel(st styles, b Backend) testPanel {
	ta := textarea.New()
	ta.ShowLineNumbers = false
	ta.CharLimit = 1 << 20
	vp := viewport.New(0, 0)
	vp.KeyMap = viewport.KeyMap{} // the panel's own keys scroll it
	return testPanel{keys: defaultTestKeyMap(), st: st, backend: b, area: ta, result: vp}
}

// areaHeight gives the body most of a small screen until a result comes.
func (p testPanel) areaHeight() int {
	body := p.h - 2 - 3 // target, hint and status lines
	if p.res == nil && !p.sending {
		return max(2, min(body, 8))
	}
	return max(2, min(6, body/2))
}

func (p *testPanel) SetSize(w, h int) {
	p.w, p.h = w, h
	p.area.SetWidth(max(10, w-4))
	p.area.SetHeight(p.areaHeight())
	p.result.Width = max(1, w-4)
	p.result.Height = max(1, h-2-3-p.areaHeight())
	p.setResult()
}

func (p testPanel) ShortHelp() []key.Binding  { return p.keys.ShortHelp() }
func (p testPanel) FullHelp() [][]key.Binding { return p.keys.FullHelp() }

// open offers ts, the selected runner's first, with the first one's example.
func (p *testPanel) open(ts []Target) tea.Cmd {
	p.targets, p.idx, p.res = ts, 0, nil
	if len(ts) > 0 {
		p.area.SetValue(ts[0].Example())
	}
	p.SetSize(p.w, p.h)
	return p.area.Focus()
}

func (p testPanel) Update(msg tea.Msg) (testPanel, tea.Cmd) {
	switch msg := msg.(type) {
	case sendResultMsg:
		r := Result(msg)
		p.sending, p.res = false, &r
		p.SetSize(p.w, p.h)
		p.result.GotoTop()
		return p, nil
	case tea.KeyMsg:
		k := p.keys
		switch {
		case key.Matches(msg, k.Close):
			p.area.Blur()
			p.closed = true
			return p, nil
		case key.Matches(msg, k.NextTarget), key.Matches(msg, k.PrevTarget):
			if len(p.targets) == 0 {
				return p, nil
			}
			d := 1
			if key.Matches(msg, k.PrevTarget) {
				d = -1
			}
			p.idx = (p.idx + d + len(p.targets)) % len(p.targets)
			p.area.SetValue(p.targets[p.idx].Example())
			p.res = nil
			p.SetSize(p.w, p.h)
			return p, nil
		case key.Matches(msg, k.ResultDown):
			p.result.HalfPageDown()
			return p, nil
		case key.Matches(msg, k.ResultUp):
			p.result.HalfPageUp()
			return p, nil
		case key.Matches(msg, k.Send):
			if p.sending || len(p.targets) == 0 {
				return p, nil
			}
			p.sending = true
			t, body, b := p.targets[p.idx], p.area.Value(), p.backend
			return p, func() tea.Msg {
				ctx, cancel := callContext()
				defer cancel()
				return sendResultMsg(b.Send(ctx, t, body))
			}
		}
	}
	var cmd tea.Cmd
	p.area, cmd = p.area.Update(msg)
	return p, cmd
}

// setResult fills the viewport: the outcome line, then the output, both
// wrapped to the panel's width.
func (p *testPanel) setResult() {
	if p.res == nil {
		p.result.SetContent("")
		return
	}
	r := p.res
	var b strings.Builder
	switch {
	case r.Err != nil:
		b.WriteString(p.st.bad.Render("✗ "+statusWord(r.Err)) + " " + r.Err.Error())
	case len(r.Steps) > 0:
		fmt.Fprintf(&b, "%s in %s · %s, as they finished:", p.st.ok.Render("✓ ok"), humanDur(r.Latency), plural(len(r.Steps), "runner call"))
	default:
		fmt.Fprintf(&b, "%s in %s · batch of %s (%s), queued %s, ran %s",
			p.st.ok.Render("✓ ok"), humanDur(r.Latency), plural(r.Info.BatchRows, "row"), plural(r.Info.BatchRequests, "request"),
			humanDur(r.Info.Queued), humanDur(r.Info.Exec))
	}
	var lines []string
	for _, l := range strings.Split(b.String(), "\n") {
		lines = append(lines, strings.Split(wrapHard(l, p.result.Width), "\n")...)
	}
	if r.Err != nil && len(r.Steps) > 0 {
		lines = append(lines, "runner calls, as they finished:")
	}
	// Each step (or role) beside the runner method it called and its time,
	// queueing included: X-Steps of the HTTP answer, with the batch.
	lines = append(lines, stepLines(p.st, r.Steps, p.result.Width)...)
	if r.Err == nil {
		for _, l := range strings.Split(r.Output, "\n") {
			lines = append(lines, strings.Split(wrapHard(l, p.result.Width), "\n")...)
		}
	}
	p.result.SetContent(strings.Join(lines, "\n"))
}

// stepLines is a line per runner call of an API: its step or role, the
// runner method, how long it took and the batch it rode in; a failed one
// marked ✗.
func stepLines(st styles, steps []engine.StepInfo, w int) []string {
	nameW, callW, durW := 0, 0, 0
	for _, s := range steps {
		nameW = max(nameW, lipgloss.Width(s.Name))
		callW = max(callW, lipgloss.Width(s.Runner+"."+s.Method))
		durW = max(durW, lipgloss.Width(humanDur(s.Duration)))
	}
	var lines []string
	for _, s := range steps {
		mark, tail := "  ", fmt.Sprintf("batch of %s, queued %s", plural(s.Info.BatchRows, "row"), humanDur(s.Info.Queued))
		if s.Err != nil {
			mark, tail = st.bad.Render("✗ "), st.bad.Render("failed: "+statusWord(s.Err))
		}
		dur := humanDur(s.Duration)
		line := mark + padRight(s.Name, nameW) + "  " + padRight(s.Runner+"."+s.Method, callW) + "  " +
			strings.Repeat(" ", durW-lipgloss.Width(dur)) + dur + " · " + tail
		lines = append(lines, hang("", line, w+2)...)
	}
	return lines
}

// wrapHard wraps at word boundaries where it can and cuts words (JSON
// without spaces) where it must, so nothing is lost off the right edge.
func wrapHard(s string, w int) string {
	out := strings.Split(wrap(s, w), "\n")
	for i, l := range out {
		out[i] = strings.TrimRight(l, " ")
	}
	return strings.Join(out, "\n")
}

func (p testPanel) View() string {
	st := p.st
	if len(p.targets) == 0 {
		return st.box("test input", st.dim.Render("nothing to send to: the config has no runners"), p.w, p.h)
	}
	t := p.targets[p.idx]
	lines := []string{
		st.boxTitle.Render("to: ") + t.Label(),
		st.dim.Render(fmt.Sprintf("takes %s as %s", signature(t.Spec.Inputs), t.Input)),
		p.area.View(),
	}
	switch {
	case p.sending:
		lines = append(lines, st.dim.Render("sending…"))
	case p.res != nil:
		scroll := ""
		if p.result.TotalLineCount() > p.result.Height {
			scroll = fmt.Sprintf(" · lines %d-%d of %d, pgdn/pgup scroll", p.result.YOffset+1,
				min(p.result.YOffset+p.result.Height, p.result.TotalLineCount()), p.result.TotalLineCount())
		}
		lines = append(lines, st.dim.Render("result"+scroll), p.result.View())
	default:
		lines = append(lines, st.dim.Render("ctrl+s sends; the result shows here"))
	}
	return st.box("test input", strings.Join(lines, "\n"), p.w, p.h)
}

// statusWord names an error the way the HTTP front end's status would.
func statusWord(err error) string {
	switch {
	case errors.Is(err, engine.ErrInvalidInput):
		return "invalid input (400)"
	case errors.Is(err, engine.ErrOverloaded):
		return "overloaded (503)"
	case errors.Is(err, engine.ErrTimeout):
		return "timeout (504)"
	case errors.Is(err, engine.ErrUnknownRunner), errors.Is(err, engine.ErrUnknownMethod), errors.Is(err, engine.ErrUnknownAPI):
		return "not found (404)"
	}
	return "error (500)"
}
