package ui

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/charmbracelet/bubbles/help"
	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"

	"github.com/benchtop/benchtop/engine"
)

// RefreshInterval is how often the screen reads a snapshot: ten frames a
// second is smooth for charts and cheap for the engine.
const RefreshInterval = 100 * time.Millisecond

type panel int

const (
	panelNone panel = iota
	panelBatching
	panelTest
	panelLoad
	panelGPU
	panelHelp
	panelEvents
	panelAPIs
)

// Model is the workbench's root model. It routes messages to its
// components and lays them out; what each shows and how it reads keys is
// the component's own.
type Model struct {
	backend Backend
	keys    mainKeyMap
	st      styles
	refresh time.Duration
	clock   func() time.Time // stamps the workbench's own events

	width, height int
	snap          Snapshot
	haveSnap      bool
	panel         panel

	table    runnersTable
	batches  batchChart
	latency  latencyPanel
	events   eventsPane
	batching batchingForm
	test     testPanel
	load     loadPanel
	gpu      gpuPanel
	apis     apisPanel
	help     helpPanel
	footer   help.Model
	lay      layoutPlan

	quitting bool
}

// New returns a workbench over b.
func New(b Backend) Model {
	st := defaultStyles()
	m := Model{
		backend: b, keys: defaultMainKeyMap(), st: st, refresh: RefreshInterval, clock: time.Now,
		width: 120, height: 40,
		table: newRunnersTable(st), batches: batchChart{st: st}, latency: latencyPanel{st: st},
		events: newEventsPane(st), batching: newBatchingForm(st, b), test: newTestPanel(st, b),
		load: newLoadPanel(st, b), gpu: newGPUPanel(st), apis: newAPIsPanel(st), footer: help.New(),
	}
	m.help = newHelpPanel(st, []helpSection{
		{"main screen", m.keys.FullHelp()},
		{"batching (b)", m.batching.FullHelp()},
		{"load (l)", m.load.FullHelp()},
		{"APIs (a)", m.apis.FullHelp()},
		{"test input (t)", m.test.FullHelp()},
		{"events (e)", m.events.FullHelp()},
	})
	m.layout()
	return m
}

type tickMsg struct{}
type snapshotMsg Snapshot

func (m Model) Init() tea.Cmd { return m.fetch() }

// fetch reads a snapshot off the UI goroutine.
func (m Model) fetch() tea.Cmd {
	b := m.backend
	return func() tea.Msg { return snapshotMsg(b.Snapshot()) }
}

func (m Model) tick() tea.Cmd {
	return tea.Tick(m.refresh, func(time.Time) tea.Msg { return tickMsg{} })
}

func (m Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	m, cmd := m.route(msg)
	m.layout()
	return m, cmd
}

func (m Model) route(msg tea.Msg) (Model, tea.Cmd) {
	var cmds []tea.Cmd
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.width, m.height = msg.Width, msg.Height
		return m, nil
	case tickMsg:
		return m, m.fetch()
	case snapshotMsg:
		if m.haveSnap && m.snap.Config.Err != "" && msg.Config.Err == "" {
			// The watcher reports an applied config, not one put back to
			// what already serves; the header's ✗ clearing deserves a line.
			cmds = append(cmds, note(slog.LevelInfo, "", "config accepted again: "+msg.Config.Path+" is valid and serving"))
		}
		var changes []engine.Event
		if m.haveSnap {
			changes = endpointChanges(m.snap.Remote, msg.Remote)
		}
		m.snap, m.haveSnap = Snapshot(msg), true
		m.batching.refresh(msg.Remote)
		m.table, _ = m.table.Update(msg)
		m.events, _ = m.events.Update(msg)
		for _, ev := range changes {
			ev.Time = m.clock()
			m.events, _ = m.events.Update(noteMsg(ev))
		}
		m.gpu, _ = m.gpu.Update(msg)
		m.apis, _ = m.apis.Update(msg)
		cmds = append(cmds, m.tick())
		return m, tea.Batch(cmds...)
	case noteMsg:
		if msg.Time.IsZero() {
			msg.Time = m.clock()
		}
		var cmd tea.Cmd
		m.events, cmd = m.events.Update(msg)
		return m, cmd
	case batchingDoneMsg:
		var cmd tea.Cmd
		m.batching, cmd = m.batching.Update(msg)
		return m, cmd
	case sendResultMsg:
		var cmd tea.Cmd
		m.test, cmd = m.test.Update(msg)
		return m, cmd
	case loadMsg:
		var cmd tea.Cmd
		m.load, cmd = m.load.Update(msg)
		return m, cmd
	case tea.KeyMsg:
		return m.onKey(msg)
	}
	// Anything else (a cursor blink) belongs to the focused text field.
	var cmd tea.Cmd
	switch {
	case m.panel == panelTest:
		m.test, cmd = m.test.Update(msg)
	case m.table.capturesText():
		m.table, cmd = m.table.Update(msg)
	}
	return m, cmd
}

// capturesText: the focused component takes keys as text.
func (m Model) capturesText() bool {
	return m.panel == panelTest || (m.panel == panelNone && m.table.capturesText())
}

func (m Model) onKey(msg tea.KeyMsg) (Model, tea.Cmd) {
	if key.Matches(msg, m.keys.ForceQuit) {
		return m.quit()
	}
	// Keys typed faster than the screen reads them arrive as one message
	// of several runes ("jj"); outside a text field each is a key of its
	// own.
	if msg.Type == tea.KeyRunes && len(msg.Runes) > 1 && !msg.Paste && !m.capturesText() {
		var cmds []tea.Cmd
		for _, r := range msg.Runes {
			var cmd tea.Cmd
			m, cmd = m.onKey(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune{r}, Alt: msg.Alt})
			cmds = append(cmds, cmd)
			if m.quitting {
				break
			}
		}
		return m, tea.Batch(cmds...)
	}
	var cmd tea.Cmd
	// A panel's esc closes it at once, not through a command: a key typed
	// right after it reaches the main screen.
	closed := func(c *bool) bool {
		was := *c
		*c = false
		return was
	}
	if m.panel != panelNone {
		var done bool
		switch m.panel {
		case panelBatching:
			m.batching, cmd = m.batching.Update(msg)
			done = closed(&m.batching.closed)
		case panelTest:
			m.test, cmd = m.test.Update(msg)
			done = closed(&m.test.closed)
		case panelLoad:
			m.load, cmd = m.load.Update(msg)
			done = closed(&m.load.closed)
		case panelGPU:
			m.gpu, cmd = m.gpu.Update(msg)
			done = closed(&m.gpu.closed)
		case panelHelp:
			m.help, cmd = m.help.Update(msg)
			done = closed(&m.help.closed)
		case panelEvents:
			m.events, cmd = m.events.Update(msg)
			done = closed(&m.events.closed)
		case panelAPIs:
			m.apis, cmd = m.apis.Update(msg)
			done = closed(&m.apis.closed)
			if api, p := m.apis.take(); api != "" {
				return m.openOn(api, p)
			}
		}
		if done {
			m.panel = panelNone
		}
		return m, cmd
	}
	if m.table.capturesText() {
		m.table, cmd = m.table.Update(msg)
		return m, cmd
	}
	switch {
	case key.Matches(msg, m.keys.Quit):
		return m.quit()
	case key.Matches(msg, m.keys.Batching):
		r, ok := m.table.selectedRunner()
		if !ok {
			return m, note(slog.LevelWarn, "", "batching: no runner selected")
		}
		var ri *RemoteInfo
		if info, remote := m.snap.Remote[r.Name]; remote {
			ri = &info
		}
		m.batching.edit(r, m.table.primary(r), ri)
		m.panel = panelBatching
	case key.Matches(msg, m.keys.Test):
		return m.openOn("", panelTest)
	case key.Matches(msg, m.keys.Load):
		return m.openOn("", panelLoad)
	case key.Matches(msg, m.keys.APIs):
		m.panel = panelAPIs
	case key.Matches(msg, m.keys.Events):
		m.events.focus()
		m.panel = panelEvents
	case key.Matches(msg, m.keys.GPU):
		m.panel = panelGPU
	case key.Matches(msg, m.keys.Help):
		m.panel = panelHelp
		m.help.vp.GotoTop()
	default:
		m.table, cmd = m.table.Update(msg)
	}
	return m, cmd
}

func (m Model) quit() (Model, tea.Cmd) {
	m.load.stop()
	m.quitting = true
	return m, tea.Quit
}

// openOn opens the test input or the load panel (p) with api as its target,
// or, for api "", the selected runner's first.
func (m Model) openOn(api string, p panel) (Model, tea.Cmd) {
	m.showCallOf(api)
	ts := m.targetsFor(api)
	m.panel = p
	if p == panelLoad {
		if !m.load.running || api == "" {
			m.load.setTargets(ts)
			return m, nil
		}
		// A load already runs: it goes on, on its own target.
		return m, note(slog.LevelWarn, "", "load: one runs already; stop it (x) to load "+api)
	}
	m.layout()
	return m, m.test.open(ts)
}

// showCallOf puts a runner method api calls under the charts, unless the
// selected runner is one it calls: the charts then move with what is sent.
func (m *Model) showCallOf(api string) {
	for _, a := range m.snap.APIs {
		if a.Spec.Name != api || len(a.Calls) == 0 {
			continue
		}
		for _, c := range a.Calls {
			if c.Runner == m.table.selected {
				m.table.show(c.Runner, c.Method)
				return
			}
		}
		m.table.show(a.Calls[0].Runner, a.Calls[0].Method)
	}
}

// targetsFor orders the backend's targets so that api comes first, or with
// api "" those calling the selected runner. Targets only lists the engine's
// APIs and methods: no I/O.
func (m Model) targetsFor(api string) []Target {
	var first, rest []Target
	for _, t := range m.backend.Targets() {
		if (api != "" && t.API == api) || (api == "" && t.calls(m.table.selected)) {
			first = append(first, t)
		} else {
			rest = append(rest, t)
		}
	}
	return append(first, rest...)
}

func errText(prefix string, err error) string {
	return fmt.Sprintf("%s: %v", prefix, err)
}

// Context for backend calls made from commands: bounded, so a stuck engine
// cannot pile up goroutines behind the screen.
func callContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 30*time.Second)
}
