package ui

import (
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/charmbracelet/bubbles/key"
	"github.com/charmbracelet/bubbles/viewport"
	tea "github.com/charmbracelet/bubbletea"

	"github.com/benchtop/benchtop/engine"
)

// eventsPane shows the engine's events and the workbench's own notes
// (applied tweaks, saves, loads), newest on top, one timestamped line
// each. Focused (e), a line is chosen with ↑↓ and opens in full on enter.
type eventsPane struct {
	keys    listKeyMap
	st      styles
	w, h    int
	engine  []engine.Event
	local   []engine.Event
	focused bool
	cursor  int // index into merged(), newest first
	open    bool
	vp      viewport.Model
	closed  bool // esc: the root closes the panel
}

// localEventsKept bounds the workbench's own notes as the engine bounds
// its log.
const localEventsKept = 200

func newEventsPane(st styles) eventsPane {
	return eventsPane{keys: defaultListKeyMap(), st: st, vp: viewport.New(0, 0)}
}

func (p *eventsPane) SetSize(w, h int) {
	p.w, p.h = w, h
	p.vp.Width, p.vp.Height = max(1, w-2), max(1, h-2)
	if p.open {
		p.setContent()
	}
}

func (p eventsPane) ShortHelp() []key.Binding {
	if p.open {
		return []key.Binding{p.keys.Up, p.keys.Down, p.keys.Close}
	}
	return p.keys.ShortHelp()
}

func (p eventsPane) FullHelp() [][]key.Binding { return p.keys.FullHelp() }

// merged is every event, newest first.
func (p eventsPane) merged() []engine.Event {
	all := make([]engine.Event, 0, len(p.engine)+len(p.local))
	all = append(all, p.engine...)
	all = append(all, p.local...)
	slices.SortStableFunc(all, func(a, b engine.Event) int { return b.Time.Compare(a.Time) })
	return all
}

func (p *eventsPane) focus() {
	p.focused, p.cursor, p.open = true, 0, false
}

func (p eventsPane) Update(msg tea.Msg) (eventsPane, tea.Cmd) {
	switch msg := msg.(type) {
	case snapshotMsg:
		p.engine = msg.Events
	case noteMsg:
		p.local = append(p.local, engine.Event(msg))
		if len(p.local) > localEventsKept {
			p.local = slices.Clone(p.local[len(p.local)-localEventsKept:])
		}
		if p.focused && !p.open {
			p.cursor++ // the chosen line stays chosen as a new one lands on top
		}
	case tea.KeyMsg:
		if p.open {
			switch {
			case key.Matches(msg, p.keys.Close):
				p.open = false
			case key.Matches(msg, p.keys.Down):
				p.vp.ScrollDown(1)
			case key.Matches(msg, p.keys.Up):
				p.vp.ScrollUp(1)
			case key.Matches(msg, p.keys.PageDown):
				p.vp.PageDown()
			case key.Matches(msg, p.keys.PageUp):
				p.vp.PageUp()
			}
			return p, nil
		}
		n := len(p.merged())
		switch {
		case key.Matches(msg, p.keys.Close):
			p.focused, p.closed = false, true
			return p, nil
		case key.Matches(msg, p.keys.Down):
			p.cursor = min(p.cursor+1, max(0, n-1))
		case key.Matches(msg, p.keys.Up):
			p.cursor = max(p.cursor-1, 0)
		case key.Matches(msg, p.keys.PageDown):
			p.cursor = min(p.cursor+max(1, p.h-2), max(0, n-1))
		case key.Matches(msg, p.keys.PageUp):
			p.cursor = max(p.cursor-max(1, p.h-2), 0)
		case key.Matches(msg, p.keys.Open):
			if n > 0 {
				p.open = true
				p.setContent()
				p.vp.GotoTop()
			}
		}
	}
	return p, nil
}

func (p *eventsPane) setContent() {
	evs := p.merged()
	if p.cursor >= len(evs) {
		return
	}
	ev := evs[p.cursor]
	head := ev.Time.Format("2006-01-02 15:04:05") + " " + levelWord(ev.Level)
	if ev.Runner != "" {
		head += " · runner " + ev.Runner
	}
	p.vp.SetContent(p.st.boxTitle.Render(head) + "\n\n" + wrap(ev.Message, p.vp.Width))
}

func levelWord(l slog.Level) string {
	switch {
	case l >= slog.LevelError:
		return "✗ error"
	case l >= slog.LevelWarn:
		return "⚠ warning"
	}
	return "info"
}

func (p eventsPane) line(ev engine.Event) string {
	mark := "  "
	switch {
	case ev.Level >= slog.LevelError:
		mark = p.st.bad.Render("✗ ")
	case ev.Level >= slog.LevelWarn:
		mark = p.st.warn.Render("⚠ ")
	}
	who := ""
	if ev.Runner != "" {
		who = ev.Runner + ": "
	}
	// One line per event, each with its time; what does not fit ends in
	// "…" and enter (with e) shows it whole.
	first, _, more := strings.Cut(ev.Message, "\n")
	text := who + first
	if more {
		text += " …"
	}
	return truncate(ev.Time.Format("15:04:05")+" "+mark+text, p.w-2)
}

func (p eventsPane) View() string {
	evs := p.merged()
	if p.open && p.cursor < len(evs) {
		return p.st.box(fmt.Sprintf("event %d of %d · esc back", p.cursor+1, len(evs)), p.vp.View(), p.w, p.h)
	}
	body := max(1, p.h-2)
	start := 0
	if p.focused && p.cursor >= body {
		start = p.cursor - body + 1
	}
	var lines []string
	for i := start; i < len(evs) && len(lines) < body; i++ {
		l := p.line(evs[i])
		if p.focused && i == p.cursor {
			l = p.st.selected.Render(padRight(l, p.w-2))
		}
		lines = append(lines, l)
	}
	if len(evs) == 0 {
		lines = append(lines, p.st.dim.Render("no events yet"))
	}
	title := fmt.Sprintf("Events (%s) · newest first", humanInt(int64(len(evs))))
	if !p.focused {
		title += " · e to read"
	}
	return p.st.box(title, strings.Join(lines, "\n"), p.w, p.h)
}
