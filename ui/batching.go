package ui

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"

	"github.com/benchtop/benchtop/batcher"
	"github.com/benchtop/benchtop/engine"
	"github.com/benchtop/benchtop/watcher"
)

// batchingForm edits one method's knobs and the runner's workers. Values
// are applied live on enter; w also writes them to the config file.
type batchingForm struct {
	keys    formKeyMap
	st      styles
	w, h    int
	backend Backend

	runner, method string
	batchable      bool
	cfg            batcher.Config
	workers        int
	workersAtOpen  int // what the runner had: a save writes workers only if changed
	focus          int
	num            numField
	busy           bool
	status         *engine.Event // the outcome of the last apply or save
	closed         bool          // esc: the root closes the panel
	// remote is set for a remote: runner: the panel shows its servers'
	// batching and changes nothing.
	remote *RemoteInfo
}

const (
	fieldPolicy = iota
	fieldMaxBatch
	fieldMaxLatency
	fieldBatchWait
	fieldMaxQueue
	fieldWorkers
	fieldCount
)

var fieldNames = [fieldCount]string{"policy", "max batch size", "max latency", "batch wait (fixed)", "max queue", "workers"}

// batchingDoneMsg is the outcome of an apply or a save.
type batchingDoneMsg engine.Event

func newBatchingForm(st styles, b Backend) batchingForm {
	return batchingForm{keys: defaultFormKeyMap(), st: st, backend: b}
}

// edit points the form at runner r's method ms; ri is the runner's
// servers when it is remote.
func (f *batchingForm) edit(r engine.RunnerStats, ms engine.MethodStats, ri *RemoteInfo) {
	*f = batchingForm{keys: f.keys, st: f.st, w: f.w, h: f.h, backend: f.backend,
		runner: r.Name, method: ms.Spec.Name, batchable: ms.Spec.Batchable, cfg: ms.Batching, workers: max(r.Workers, 1), workersAtOpen: max(r.Workers, 1),
		remote: ri}
	if !f.batchable {
		f.focus = fieldWorkers
	}
}

// refresh follows a remote runner's servers while the panel is open: their
// batching arrives once one of them answers.
func (f *batchingForm) refresh(remote map[string]RemoteInfo) {
	if f.remote == nil {
		return
	}
	if ri, ok := remote[f.runner]; ok {
		f.remote = &ri
	}
}

func (f *batchingForm) SetSize(w, h int) { f.w, f.h = w, h }
func (f batchingForm) ShortHelp() []key.Binding {
	if f.remote != nil {
		return []key.Binding{f.keys.Close}
	}
	return f.keys.ShortHelp()
}
func (f batchingForm) FullHelp() [][]key.Binding { return f.keys.FullHelp() }

// wantHeight is the form's natural height: its fields, its last outcome
// (two lines) and the border; a remote runner's, its methods, the note
// where to change them and the outcome of a key that changed nothing.
func (f batchingForm) wantHeight() int {
	if f.remote != nil {
		return 1 + max(1, len(f.remote.Batching)) + 1 + 2 + 1 + 2 + 2
	}
	return fieldCount + 1 + 2 + 2
}

func (f batchingForm) fieldEnabled(i int) bool { return f.batchable || i == fieldWorkers }

func (f batchingForm) Update(msg tea.Msg) (batchingForm, tea.Cmd) {
	switch msg := msg.(type) {
	case batchingDoneMsg:
		ev := engine.Event(msg)
		f.busy, f.status = false, &ev
		return f, func() tea.Msg { return noteMsg(ev) }
	case tea.KeyMsg:
		k := f.keys
		switch {
		case key.Matches(msg, k.Close):
			f.closed = true
			return f, nil
		case f.remote != nil:
			// Nothing here is the front end's to change: a tweak would be
			// undone by the servers' config, and w would write keys a
			// remote: runner refuses.
			f.status = &engine.Event{Level: slog.LevelWarn, Runner: f.runner,
				Message: fmt.Sprintf("read-only: %q changes nothing here; nothing applied, nothing saved", msg.String())}
			return f, nil
		case key.Matches(msg, k.Apply), key.Matches(msg, k.Save):
			f.commit()
			if f.busy {
				return f, nil
			}
			f.busy = true
			return f, f.apply(key.Matches(msg, k.Save))
		case key.Matches(msg, k.Next), key.Matches(msg, k.Prev):
			f.commit()
			d := 1
			if key.Matches(msg, k.Prev) {
				d = fieldCount - 1
			}
			for i := 1; i <= fieldCount; i++ {
				if n := (f.focus + i*d) % fieldCount; f.fieldEnabled(n) {
					f.focus = n
					break
				}
			}
		case key.Matches(msg, k.Inc):
			f.commit()
			f.step(1)
		case key.Matches(msg, k.Dec):
			f.commit()
			f.step(-1)
		case f.focus == fieldPolicy && key.Matches(msg, k.Policy):
			switch msg.String() {
			case "a":
				f.cfg.Policy = batcher.Adaptive
			case "f":
				f.cfg.Policy = batcher.Fixed
			case "n":
				f.cfg.Policy = batcher.None
			}
		case f.focus != fieldPolicy:
			f.num.key(msg, f.focus == fieldMaxLatency || f.focus == fieldBatchWait)
		}
	}
	return f, nil
}

// step nudges the focused field: policies cycle, sizes double or halve,
// latencies move by 5 ms, counts by one.
func (f *batchingForm) step(d int) {
	c := &f.cfg
	switch f.focus {
	case fieldPolicy:
		c.Policy = batcher.Policy((int(c.Policy) + d + 3) % 3)
	case fieldMaxBatch:
		if d > 0 {
			c.MaxBatchSize *= 2
		} else {
			c.MaxBatchSize = max(1, c.MaxBatchSize/2)
		}
	case fieldMaxLatency:
		c.MaxLatency = max(0, c.MaxLatency+time.Duration(d)*5*time.Millisecond)
	case fieldBatchWait:
		c.BatchWait = max(0, c.BatchWait+time.Duration(d)*time.Millisecond)
	case fieldMaxQueue:
		if d > 0 {
			c.MaxQueueSize = max(1, c.MaxQueueSize*2)
		} else {
			c.MaxQueueSize /= 2
		}
	case fieldWorkers:
		f.workers = max(1, f.workers+d)
	}
}

// commit turns the digits typed into the focused field into its value.
func (f *batchingForm) commit() {
	v, ok := f.num.commit()
	if !ok {
		return
	}
	switch f.focus {
	case fieldMaxBatch:
		f.cfg.MaxBatchSize = max(1, int(v))
	case fieldMaxLatency:
		f.cfg.MaxLatency = time.Duration(v * float64(time.Millisecond))
	case fieldBatchWait:
		f.cfg.BatchWait = time.Duration(v * float64(time.Millisecond))
	case fieldMaxQueue:
		f.cfg.MaxQueueSize = int(v)
	case fieldWorkers:
		f.workers = max(1, int(v))
	}
}

// apply sets the values live and, with save, writes them to the config
// file; the outcome comes back as one event, short enough for a line.
func (f batchingForm) apply(save bool) tea.Cmd {
	b, runner, method, batchable, cfg, workers := f.backend, f.runner, f.method, f.batchable, f.cfg, f.workers
	savedWorkers := 0 // a count the file derives from resources stays derived
	if workers != f.workersAtOpen {
		savedWorkers = workers
	}
	return func() tea.Msg {
		done := func(level slog.Level, text string) tea.Msg {
			return batchingDoneMsg{Level: level, Runner: runner, Message: text}
		}
		var what []string
		if batchable {
			if err := b.SetBatching(runner, method, cfg); err != nil {
				return done(slog.LevelError, errText("batching not applied", err))
			}
			what = append(what, fmt.Sprintf("%s %s max_batch_size %d max_latency %s", method, cfg.Policy, cfg.MaxBatchSize, msString(cfg.MaxLatency)))
		}
		if err := b.SetWorkers(runner, workers); err != nil {
			return done(slog.LevelError, errText("workers not applied", err))
		}
		what = append(what, "workers "+strconv.Itoa(workers))
		text := "applied live: " + strings.Join(what, ", ")
		if !save {
			return done(slog.LevelInfo, text)
		}
		t := watcher.Tweak{Runner: runner, Method: method, Workers: savedWorkers}
		if batchable {
			c := cfg
			t.Batching = &c
		}
		if err := b.Save(t); err != nil {
			return done(slog.LevelError, "applied live, not saved: "+err.Error())
		}
		path := b.Snapshot().Config.Path
		return done(slog.LevelInfo, fmt.Sprintf("saved to %s: %s", filepath.Base(path), strings.Join(what, ", ")))
	}
}

func (f batchingForm) value(i int) string {
	c := f.cfg
	switch i {
	case fieldPolicy:
		return "◂ " + c.Policy.String() + " ▸"
	case fieldMaxBatch:
		return plural(c.MaxBatchSize, "row")
	case fieldMaxLatency:
		if c.MaxLatency == 0 {
			return "no bound"
		}
		return msString(c.MaxLatency)
	case fieldBatchWait:
		return msString(c.BatchWait)
	case fieldMaxQueue:
		if c.MaxQueueSize == 0 {
			return "no bound"
		}
		return plural(c.MaxQueueSize, "request")
	case fieldWorkers:
		return strconv.Itoa(f.workers)
	}
	return ""
}

func (f batchingForm) View() string {
	if f.remote != nil {
		return f.remoteView()
	}
	st := f.st
	var lines []string
	for i := range fieldCount {
		label := fmt.Sprintf("  %-19s", fieldNames[i])
		val := f.value(i)
		if i == f.focus && f.num.typed != "" {
			val = f.num.typed + "▏"
		}
		switch {
		case !f.fieldEnabled(i):
			lines = append(lines, st.dim.Render(label+"– (not batchable)"))
		case i == f.focus:
			lines = append(lines, "▸"+label[1:]+st.fieldFocus.Render(" "+val+" "))
		default:
			lines = append(lines, label+" "+val)
		}
	}
	lines = append(lines, "")
	switch {
	case f.busy:
		lines = append(lines, st.dim.Render("applying…"))
	case f.status != nil:
		// The outcome wraps onto two lines so a save's message fits 80
		// columns; the events pane keeps it whole.
		mark := st.ok.Render("✓ ")
		if f.status.Level >= slog.LevelError {
			mark = st.bad.Render("✗ ")
		}
		lines = append(lines, f.statusLines(mark)...)
	}
	return st.box(fmt.Sprintf("batching · %s.%s", f.runner, f.method), strings.Join(lines, "\n"), f.w, f.h)
}

// statusLines is the last outcome on two lines at most, after mark.
func (f batchingForm) statusLines(mark string) []string {
	var lines []string
	text := strings.Split(wrap(f.status.Message, max(10, f.w-4)), "\n")
	if len(text) > 2 {
		text = append(text[:1], truncate(strings.TrimRight(text[1], " ")+" "+strings.Join(text[2:], " "), max(10, f.w-4)))
	}
	for i, l := range text {
		if i == 0 {
			lines = append(lines, mark+strings.TrimRight(l, " "))
		} else {
			lines = append(lines, "  "+strings.TrimRight(l, " "))
		}
	}
	return lines
}

// remoteView is the panel of a remote runner: its servers' batching per
// method, read-only, and where to change it.
func (f batchingForm) remoteView() string {
	st := f.st
	lines := st.serverBatchingLines(*f.remote)
	lines = append(lines, "")
	for _, l := range remoteBatchingNote(f.remote.Model, f.w-4) {
		lines = append(lines, "  "+st.dim.Render(l))
	}
	if f.status != nil {
		lines = append(lines, "")
		lines = append(lines, f.statusLines(st.bad.Render("✗ "))...)
	}
	return st.box(fmt.Sprintf("batching · %s · its runner servers', read-only", f.runner), strings.Join(lines, "\n"), f.w, f.h)
}
