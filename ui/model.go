package ui

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/charmbracelet/bubbles/key"
	"github.com/charmbracelet/bubbles/textarea"
	"github.com/charmbracelet/bubbles/textinput"
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
)

var sortNames = []string{"name", "req/s", "p99", "queue", "errors"}

// Model is the workbench's root model: it routes keys to the open panel and
// renders the screen from the latest snapshot.
type Model struct {
	backend Backend
	keys    keyMap
	st      styles
	refresh time.Duration

	width, height int
	snap          Snapshot
	haveSnap      bool

	selected  string         // runner name
	methodIdx map[string]int // per runner, the method shown in detail
	sortKey   int
	filter    textinput.Model
	filtering bool

	panel    panel
	batching batchingForm
	test     testPanel
	load     loadPanel

	flash    string
	flashBad bool
	quitting bool
}

// New returns a workbench over b.
func New(b Backend) Model {
	ti := textinput.New()
	ti.Prompt = "/"
	ti.Placeholder = "filter runners"
	ta := textarea.New()
	ta.ShowLineNumbers = false
	ta.SetHeight(6)
	ta.CharLimit = 1 << 20
	return Model{
		backend: b, keys: defaultKeyMap(), st: defaultStyles(), refresh: RefreshInterval,
		width: 120, height: 40, methodIdx: map[string]int{}, filter: ti,
		test: testPanel{area: ta}, load: loadPanel{concurrency: 32, count: 2000},
	}
}

type tickMsg struct{}
type snapshotMsg Snapshot
type flashMsg struct {
	text string
	bad  bool
}

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
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.width, m.height = msg.Width, msg.Height
		m.test.area.SetWidth(max(20, msg.Width-6))
		return m, nil
	case tickMsg:
		return m, m.fetch()
	case snapshotMsg:
		m.snap, m.haveSnap = Snapshot(msg), true
		m.ensureSelection()
		return m, m.tick()
	case flashMsg:
		m.flash, m.flashBad = msg.text, msg.bad
		return m, nil
	case sendResultMsg:
		m.test.sending = false
		r := Result(msg)
		m.test.result = &r
		return m, nil
	case loadMsg:
		return m.onLoad(msg)
	case tea.KeyMsg:
		return m.onKey(msg)
	}
	return m, nil
}

func (m Model) onKey(msg tea.KeyMsg) (tea.Model, tea.Cmd) {
	if msg.String() == "ctrl+c" {
		return m.quit()
	}
	if m.filtering {
		switch msg.String() {
		case "esc":
			m.filtering = false
			m.filter.SetValue("")
			m.filter.Blur()
		case "enter":
			m.filtering = false
			m.filter.Blur()
		default:
			var cmd tea.Cmd
			m.filter, cmd = m.filter.Update(msg)
			m.ensureSelection()
			return m, cmd
		}
		return m, nil
	}
	switch m.panel {
	case panelBatching:
		return m.batchingKey(msg)
	case panelTest:
		return m.testKey(msg)
	case panelLoad:
		return m.loadKey(msg)
	case panelGPU, panelHelp:
		if key.Matches(msg, m.keys.Close) || key.Matches(msg, m.keys.Help) || key.Matches(msg, m.keys.GPU) {
			m.panel = panelNone
			return m, nil
		}
		if key.Matches(msg, m.keys.Quit) {
			return m.quit()
		}
		return m, nil
	}
	switch {
	case key.Matches(msg, m.keys.Quit):
		return m.quit()
	case key.Matches(msg, m.keys.Up):
		m.move(-1)
	case key.Matches(msg, m.keys.Down):
		m.move(1)
	case key.Matches(msg, m.keys.Method):
		if r, ok := m.selectedRunner(); ok && len(r.Methods) > 0 {
			m.methodIdx[r.Name] = (m.methodIndex(r) + 1) % len(r.Methods)
		}
	case key.Matches(msg, m.keys.Sort):
		m.sortKey = (m.sortKey + 1) % len(sortNames)
		m.flash, m.flashBad = "sorted by "+sortNames[m.sortKey], false
	case key.Matches(msg, m.keys.Filter):
		m.filtering = true
		return m, m.filter.Focus()
	case key.Matches(msg, m.keys.Batching):
		return m.openBatching()
	case key.Matches(msg, m.keys.Test):
		return m.openTest()
	case key.Matches(msg, m.keys.Load):
		return m.openLoad()
	case key.Matches(msg, m.keys.GPU):
		m.panel = panelGPU
	case key.Matches(msg, m.keys.Help):
		m.panel = panelHelp
	case key.Matches(msg, m.keys.Close):
		m.flash = ""
	}
	return m, nil
}

func (m Model) quit() (tea.Model, tea.Cmd) {
	m.stopLoad()
	m.quitting = true
	return m, tea.Quit
}

// visibleRunners applies the filter and the sort order.
func (m Model) visibleRunners() []engine.RunnerStats {
	q := strings.ToLower(strings.TrimSpace(m.filter.Value()))
	var rs []engine.RunnerStats
	for _, r := range m.snap.Runners {
		if q == "" || strings.Contains(strings.ToLower(r.Name+" "+r.Runnable), q) {
			rs = append(rs, r)
		}
	}
	less := func(a, b engine.RunnerStats) bool { return a.Name < b.Name }
	switch sortNames[m.sortKey] {
	case "req/s":
		less = func(a, b engine.RunnerStats) bool {
			return m.primary(a).Window.RequestsPerS > m.primary(b).Window.RequestsPerS
		}
	case "p99":
		less = func(a, b engine.RunnerStats) bool { return m.primary(a).Window.E2E.P99 > m.primary(b).Window.E2E.P99 }
	case "queue":
		less = func(a, b engine.RunnerStats) bool { return m.primary(a).Queue.Depth > m.primary(b).Queue.Depth }
	case "errors":
		less = func(a, b engine.RunnerStats) bool { return errorsOf(a) > errorsOf(b) }
	}
	sort.SliceStable(rs, func(i, j int) bool { return less(rs[i], rs[j]) })
	return rs
}

func errorsOf(r engine.RunnerStats) uint64 {
	var n uint64
	for _, ms := range r.Methods {
		for k, v := range ms.Totals {
			if k != "ok" && k != "cancelled" {
				n += v
			}
		}
	}
	return n
}

func (m *Model) ensureSelection() {
	rs := m.visibleRunners()
	for _, r := range rs {
		if r.Name == m.selected {
			return
		}
	}
	m.selected = ""
	if len(rs) > 0 {
		m.selected = rs[0].Name
	}
}

func (m *Model) move(d int) {
	rs := m.visibleRunners()
	for i, r := range rs {
		if r.Name == m.selected {
			m.selected = rs[min(max(i+d, 0), len(rs)-1)].Name
			return
		}
	}
}

func (m Model) selectedRunner() (engine.RunnerStats, bool) {
	for _, r := range m.snap.Runners {
		if r.Name == m.selected {
			return r, true
		}
	}
	return engine.RunnerStats{}, false
}

// methodIndex is the method shown for r: the one the user chose with m, or
// the first batchable one.
func (m Model) methodIndex(r engine.RunnerStats) int {
	if i, ok := m.methodIdx[r.Name]; ok && i < len(r.Methods) {
		return i
	}
	for i, ms := range r.Methods {
		if ms.Spec.Batchable {
			return i
		}
	}
	return 0
}

func (m Model) primary(r engine.RunnerStats) engine.MethodStats {
	if len(r.Methods) == 0 {
		return engine.MethodStats{}
	}
	return r.Methods[m.methodIndex(r)]
}

func flashCmd(text string, bad bool) tea.Cmd {
	return func() tea.Msg { return flashMsg{text, bad} }
}

func errText(prefix string, err error) string {
	return fmt.Sprintf("%s: %v", prefix, err)
}

// Context for backend calls made from commands: bounded, so a stuck engine
// cannot pile up goroutines behind the screen.
func callContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 30*time.Second)
}
