package ui

import (
	"fmt"
	"sort"
	"strings"

	"github.com/charmbracelet/bubbles/key"
	"github.com/charmbracelet/bubbles/textinput"
	tea "github.com/charmbracelet/bubbletea"

	"github.com/benchtop/benchtop/engine"
	"github.com/benchtop/benchtop/engine/remote"
)

// runnersTable lists the runners, owns the selection (runner and the
// method shown for it), the sort order and the filter.
type runnersTable struct {
	keys       mainKeyMap
	filterKeys filterKeyMap
	st         styles
	w, h       int

	runners   []engine.RunnerStats
	remote    map[string]RemoteInfo
	selected  string
	methodIdx map[string]int
	sortKey   int
	filter    textinput.Model
	filtering bool
}

// sortKeys name the orders s cycles through and the column each marks.
var sortKeys = []struct{ name, column string }{
	{"name", "NAME"}, {"ok/s", "OK/S"}, {"p99", "P99"}, {"queue", "QUEUE"}, {"errors", "ERR"},
}

func newRunnersTable(st styles) runnersTable {
	ti := textinput.New()
	ti.Prompt = "/"
	ti.Placeholder = "filter"
	return runnersTable{keys: defaultMainKeyMap(), filterKeys: defaultFilterKeyMap(), st: st, methodIdx: map[string]int{}, filter: ti}
}

func (t *runnersTable) SetSize(w, h int) { t.w, t.h = w, h }

func (t runnersTable) ShortHelp() []key.Binding {
	if t.filtering {
		return t.filterKeys.ShortHelp()
	}
	return []key.Binding{t.keys.Up, t.keys.Down, t.keys.Sort, t.keys.Filter, t.keys.Method}
}

func (t runnersTable) FullHelp() [][]key.Binding { return [][]key.Binding{t.ShortHelp()} }

// capturesText: while the filter is typed every key is text.
func (t runnersTable) capturesText() bool { return t.filtering }

// wantRows is how many rows the table would like: one per shown runner.
func (t runnersTable) wantRows() int { return max(1, len(t.visible())) }

func (t runnersTable) Update(msg tea.Msg) (runnersTable, tea.Cmd) {
	switch msg := msg.(type) {
	case snapshotMsg:
		t.runners, t.remote = msg.Runners, msg.Remote
		t.ensureSelection()
	case tea.KeyMsg:
		if t.filtering {
			switch {
			case key.Matches(msg, t.filterKeys.Clear):
				t.filtering = false
				t.filter.SetValue("")
				t.filter.Blur()
			case key.Matches(msg, t.filterKeys.Accept):
				t.filtering = false
				t.filter.Blur()
			default:
				var cmd tea.Cmd
				t.filter, cmd = t.filter.Update(msg)
				t.ensureSelection()
				return t, cmd
			}
			t.ensureSelection()
			return t, nil
		}
		switch {
		case key.Matches(msg, t.keys.Up):
			t.move(-1)
		case key.Matches(msg, t.keys.Down):
			t.move(1)
		case key.Matches(msg, t.keys.Method):
			if r, ok := t.selectedRunner(); ok && len(r.Methods) > 0 {
				t.methodIdx[r.Name] = (t.methodIndex(r) + 1) % len(r.Methods)
			}
		case key.Matches(msg, t.keys.Sort):
			t.sortKey = (t.sortKey + 1) % len(sortKeys)
		case key.Matches(msg, t.keys.Filter):
			t.filtering = true
			return t, t.filter.Focus()
		}
	}
	return t, nil
}

// visible applies the filter and the sort order.
func (t runnersTable) visible() []engine.RunnerStats {
	q := strings.ToLower(strings.TrimSpace(t.filter.Value()))
	var rs []engine.RunnerStats
	for _, r := range t.runners {
		if q == "" || strings.Contains(strings.ToLower(r.Name+" "+r.Runnable), q) {
			rs = append(rs, r)
		}
	}
	less := func(a, b engine.RunnerStats) bool { return a.Name < b.Name }
	switch sortKeys[t.sortKey].name {
	case "ok/s":
		less = func(a, b engine.RunnerStats) bool {
			return t.primary(a).Window.RequestsPerS > t.primary(b).Window.RequestsPerS
		}
	case "p99":
		less = func(a, b engine.RunnerStats) bool { return t.primary(a).Window.E2E.P99 > t.primary(b).Window.E2E.P99 }
	case "queue":
		less = func(a, b engine.RunnerStats) bool { return t.primary(a).Queue.Depth > t.primary(b).Queue.Depth }
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

func (t *runnersTable) ensureSelection() {
	rs := t.visible()
	for _, r := range rs {
		if r.Name == t.selected {
			return
		}
	}
	t.selected = ""
	if len(rs) > 0 {
		t.selected = rs[0].Name
	}
}

func (t *runnersTable) move(d int) {
	rs := t.visible()
	for i, r := range rs {
		if r.Name == t.selected {
			t.selected = rs[min(max(i+d, 0), len(rs)-1)].Name
			return
		}
	}
}

// show selects runner and its method, if the filter shows it.
func (t *runnersTable) show(runner, method string) {
	for _, r := range t.visible() {
		if r.Name != runner {
			continue
		}
		t.selected = runner
		for i, ms := range r.Methods {
			if ms.Spec.Name == method {
				t.methodIdx[runner] = i
			}
		}
	}
}

func (t runnersTable) selectedRunner() (engine.RunnerStats, bool) {
	for _, r := range t.runners {
		if r.Name == t.selected {
			return r, true
		}
	}
	return engine.RunnerStats{}, false
}

// methodIndex is the method shown for r: the one chosen with m, or the
// first batchable one.
func (t runnersTable) methodIndex(r engine.RunnerStats) int {
	if i, ok := t.methodIdx[r.Name]; ok && i < len(r.Methods) {
		return i
	}
	for i, ms := range r.Methods {
		if ms.Spec.Batchable {
			return i
		}
	}
	return 0
}

func (t runnersTable) primary(r engine.RunnerStats) engine.MethodStats {
	if len(r.Methods) == 0 {
		return engine.MethodStats{}
	}
	return r.Methods[t.methodIndex(r)]
}

type column struct {
	title string
	width int
	right bool
	min   int // narrowest terminal that shows it
}

var columns = []column{
	{"NAME", 16, false, 0}, {"KIND", 8, false, 100}, {"WORKERS", 7, true, 0}, {"POLICY", 9, false, 0},
	{"MAX B", 6, true, 0}, {"MAX LAT", 8, true, 100}, {"OK/S", 9, true, 0}, {"P50", 8, true, 100},
	{"P99", 8, true, 0}, {"QUEUE", 6, true, 0}, {"ERR", 6, true, 0},
}

func kindOf(runnable string) string {
	switch runnable {
	case "onnx", "process", remote.TypeName:
		return runnable
	}
	return "go"
}

func (t runnersTable) cells(r engine.RunnerStats) []string {
	ms := t.primary(r)
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
	if ri, ok := t.remote[r.Name]; ok {
		// A remote runner's workers are its servers': the column counts
		// the endpoints taking calls, and the knobs shown are theirs.
		workers = fmt.Sprintf("⇄ %d/%d", ri.Up(), len(ri.Endpoints))
		if ri.Up() == 0 {
			workers = "✗" + workers
		}
		policy, maxB, maxL = "–", "–", "–"
		if sb, ok := ri.ServerBatching(ms.Spec.Name); ok && ms.Spec.Batchable {
			policy, maxB, maxL = sb.Policy, humanInt(int64(sb.MaxBatchSize)), msString(sb.MaxLatency)
		}
	}
	return []string{
		r.Name, kindOf(r.Runnable), workers, policy, maxB, maxL,
		humanRate(ms.Window.RequestsPerS), humanDur(ms.Window.E2E.P50), humanDur(ms.Window.E2E.P99),
		humanInt(int64(ms.Queue.Depth)), humanInt(int64(errorsOf(r))),
	}
}

func (t runnersTable) View() string {
	st := t.st
	inner := t.w - 2
	var shown []int
	used := 2
	for i, c := range columns {
		if t.w >= c.min && used+c.width+1 <= inner {
			shown = append(shown, i)
			used += c.width + 1
		}
	}
	sorted := sortKeys[t.sortKey].column
	cell := func(i int, s string) string {
		c := columns[i]
		s = truncate(s, c.width)
		if c.right {
			return fmt.Sprintf("%*s", c.width, s)
		}
		return fmt.Sprintf("%-*s", c.width, s)
	}
	var hdr []string
	for _, i := range shown {
		title := columns[i].title
		if title == sorted {
			// The sort column is marked with the direction it sorts in.
			if title == "NAME" {
				title += "▲"
			} else {
				title += "▼"
			}
		}
		hdr = append(hdr, cell(i, title))
	}
	lines := []string{"  " + st.colHeader.Render(strings.Join(hdr, " "))}
	rs := t.visible()
	rows := max(1, t.h-3)
	start := 0
	for i, r := range rs {
		if r.Name == t.selected && i >= rows {
			start = i - rows + 1
		}
	}
	for _, r := range rs[start:min(len(rs), start+rows)] {
		cells := t.cells(r)
		parts := make([]string, 0, len(shown))
		for _, i := range shown {
			parts = append(parts, cell(i, cells[i]))
		}
		line := strings.Join(parts, " ")
		if r.Name == t.selected {
			line = "▸ " + st.selected.Render(line)
		} else {
			line = "  " + line
		}
		lines = append(lines, line)
	}
	if len(rs) == 0 {
		lines = append(lines, st.dim.Render("  no runners match"))
	}
	title := fmt.Sprintf("Runners (%s)", humanInt(int64(len(t.runners))))
	if t.filter.Value() != "" || t.filtering {
		title = fmt.Sprintf("Runners (%s of %s) %s", humanInt(int64(len(rs))), humanInt(int64(len(t.runners))), t.filter.View())
	}
	title += " · sort: " + sortKeys[t.sortKey].name
	if hidden := len(rs) - rows; hidden > 0 {
		title += fmt.Sprintf(" · %s more ↓↑", humanInt(int64(hidden)))
	}
	return st.box(title, strings.Join(lines, "\n"), t.w, t.h)
}
