package ui

import (
	"errors"
	"fmt"
	"strings"

	"github.com/charmbracelet/bubbles/key"
	"github.com/charmbracelet/bubbles/textarea"
	tea "github.com/charmbracelet/bubbletea"

	"github.com/benchtop/benchtop/engine"
)

// testPanel sends one input to an API or a runner method and shows what
// came back and which batch it rode in.
type testPanel struct {
	targets []Target
	idx     int
	area    textarea.Model
	sending bool
	result  *Result
}

type sendResultMsg Result

// targetsFor orders targets so the selected runner's come first.
func (m Model) targetsFor() []Target {
	all := m.backend.Targets()
	var first, rest []Target
	for _, t := range all {
		if t.Runner == m.selected {
			first = append(first, t)
		} else {
			rest = append(rest, t)
		}
	}
	return append(first, rest...)
}

func (m Model) openTest() (tea.Model, tea.Cmd) {
	m.test.targets = m.targetsFor()
	if len(m.test.targets) == 0 {
		return m, flashCmd("nothing to send to: the config has no runners", true)
	}
	m.test.idx = 0
	m.test.result = nil
	m.test.area.SetValue(m.test.targets[0].Example())
	m.panel = panelTest
	return m, m.test.area.Focus()
}

func (m Model) testKey(msg tea.KeyMsg) (tea.Model, tea.Cmd) {
	p := &m.test
	switch {
	case key.Matches(msg, m.keys.Close):
		m.panel = panelNone
		p.area.Blur()
		return m, nil
	case msg.String() == "ctrl+n" || msg.String() == "ctrl+p":
		d := 1
		if msg.String() == "ctrl+p" {
			d = -1
		}
		p.idx = (p.idx + d + len(p.targets)) % len(p.targets)
		p.area.SetValue(p.targets[p.idx].Example())
		p.result = nil
		return m, nil
	case key.Matches(msg, m.keys.Send):
		if p.sending {
			return m, nil
		}
		p.sending = true
		t, body, b := p.targets[p.idx], p.area.Value(), m.backend
		return m, func() tea.Msg {
			ctx, cancel := callContext()
			defer cancel()
			return sendResultMsg(b.Send(ctx, t, body))
		}
	}
	var cmd tea.Cmd
	p.area, cmd = p.area.Update(msg)
	return m, cmd
}

func (m Model) viewTest(width, height int) string {
	p := m.test
	st := m.st
	t := p.targets[p.idx]
	var b strings.Builder
	fmt.Fprintf(&b, "%s  %s\n", st.boxTitle.Render("to:"), t.Label())
	fmt.Fprintf(&b, "%s\n", st.dim.Render(fmt.Sprintf("takes %s as %s · ctrl+n/ctrl+p other target · ctrl+s send · esc close", t.Spec.Inputs, t.Input)))
	p.area.SetWidth(max(20, width-4))
	b.WriteString(p.area.View())
	b.WriteString("\n")
	switch {
	case p.sending:
		b.WriteString(st.dim.Render("sending…"))
	case p.result != nil:
		r := p.result
		if r.Err != nil {
			fmt.Fprintf(&b, "%s %s\n", st.bad.Render("✗ "+statusWord(r.Err)), r.Err)
		} else {
			info := fmt.Sprintf("%s in %s · batch of %d rows (%d requests), queued %s, executed %s",
				st.ok.Render("✓ ok"), humanDur(r.Latency), r.Info.BatchRows, r.Info.BatchRequests, humanDur(r.Info.Queued), humanDur(r.Info.Exec))
			b.WriteString(info + "\n")
			b.WriteString(r.Output)
		}
	}
	return m.box("test input", b.String(), width, height)
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
	case errors.Is(err, engine.ErrUnknownRunner), errors.Is(err, engine.ErrUnknownMethod):
		return "not found (404)"
	}
	return "error (500)"
}
