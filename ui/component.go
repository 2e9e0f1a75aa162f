package ui

import (
	"log/slog"
	"strconv"
	"strings"

	"github.com/charmbracelet/bubbles/help"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"

	"github.com/benchtop/benchtop/engine"
)

// component is what every panel of the workbench is, after soft-serve's
// common.Component: a model whose Update returns its own type (so no type
// assertions), a View that fills exactly the size it was given, the help
// of its own key map, and SetSize. The root model only routes messages to
// components and lays them out.
type component interface {
	help.KeyMap
	SetSize(width, height int)
	View() string
}

var (
	_ component = (*runnersTable)(nil)
	_ component = (*batchChart)(nil)
	_ component = (*latencyPanel)(nil)
	_ component = (*eventsPane)(nil)
	_ component = (*batchingForm)(nil)
	_ component = (*loadPanel)(nil)
	_ component = (*testPanel)(nil)
	_ component = (*gpuPanel)(nil)
	_ component = (*helpPanel)(nil)
	_ component = (*apisPanel)(nil)
)

// noteMsg adds an event the workbench itself raised (an applied tweak, a
// save, a finished load) to the events pane, beside the engine's.
type noteMsg engine.Event

// The root stamps it with its clock when it arrives.
func note(level slog.Level, runner, text string) tea.Cmd {
	ev := engine.Event{Level: level, Runner: runner, Message: text}
	return func() tea.Msg { return noteMsg(ev) }
}

// numField is a numeric field that takes typed digits and arrows alike:
// digits typed since the field got focus replace its value when the user
// moves on or applies; an arrow first commits what was typed, then steps.
type numField struct {
	typed string
}

// key feeds one key to the field; it reports whether the field took it.
func (f *numField) key(msg tea.KeyMsg, decimals bool) bool {
	switch msg.Type {
	case tea.KeyBackspace:
		if f.typed == "" {
			return false
		}
		f.typed = f.typed[:len(f.typed)-1]
		return true
	case tea.KeyRunes:
		took := false
		for _, r := range msg.Runes {
			if (r >= '0' && r <= '9') || (r == '.' && decimals && !strings.Contains(f.typed, ".")) {
				f.typed += string(r)
				took = true
			}
		}
		return took
	}
	return false
}

// commit returns the typed value and clears it; ok is false when nothing
// (or nothing that parses) was typed.
func (f *numField) commit() (float64, bool) {
	s := f.typed
	f.typed = ""
	if s == "" {
		return 0, false
	}
	v, err := strconv.ParseFloat(s, 64)
	return v, err == nil
}

// box frames body with a title in exactly w×h cells (h counts the border).
func (st styles) box(title, body string, w, h int) string {
	w, h = max(w, 4), max(h, 2)
	inner, bodyH := w-2, h-2
	lines := strings.Split(body, "\n")
	if len(lines) > bodyH {
		lines = lines[:bodyH]
	}
	for len(lines) < bodyH {
		lines = append(lines, "")
	}
	for i, l := range lines {
		lines[i] = padRight(truncate(l, inner), inner)
	}
	titleText := truncate(" "+title+" ", max(1, inner-1))
	var b strings.Builder
	b.WriteString("╭─" + st.boxTitle.Render(titleText) + strings.Repeat("─", max(0, inner-1-lipgloss.Width(titleText))) + "╮")
	for _, l := range lines {
		b.WriteString("\n│" + l + "│")
	}
	b.WriteString("\n╰" + strings.Repeat("─", inner) + "╯")
	return b.String()
}

// truncate cuts s to w cells, ANSI-aware, marking the cut with "…".
func truncate(s string, w int) string {
	if lipgloss.Width(s) <= w {
		return s
	}
	if w <= 1 {
		return lipgloss.NewStyle().MaxWidth(w).Render(s)
	}
	return lipgloss.NewStyle().MaxWidth(w-1).Render(s) + "…"
}

func padRight(s string, w int) string {
	if d := w - lipgloss.Width(s); d > 0 {
		return s + strings.Repeat(" ", d)
	}
	return s
}

// wrap breaks s into lines of at most w cells, long words included.
func wrap(s string, w int) string {
	if w < 1 {
		return s
	}
	return lipgloss.NewStyle().Width(w).Render(s)
}
