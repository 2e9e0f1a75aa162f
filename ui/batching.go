package ui

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"

	"github.com/benchtop/benchtop/batcher"
	"github.com/benchtop/benchtop/watcher"
)

// batchingForm edits one method's knobs and the runner's workers. Values
// are applied live on enter; w also writes them to the config file.
type batchingForm struct {
	runner, method string
	batchable      bool
	cfg            batcher.Config
	workers        int
	focus          int
	typed          string // digits typed into the focused numeric field
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

func (m Model) openBatching() (tea.Model, tea.Cmd) {
	r, ok := m.selectedRunner()
	if !ok {
		return m, flashCmd("no runner selected", true)
	}
	ms := m.primary(r)
	m.batching = batchingForm{
		runner: r.Name, method: ms.Spec.Name, batchable: ms.Spec.Batchable,
		cfg: ms.Batching, workers: max(r.Workers, 1),
	}
	if !ms.Spec.Batchable {
		m.batching.focus = fieldWorkers
	}
	m.panel = panelBatching
	return m, nil
}

func (f *batchingForm) fieldEnabled(i int) bool { return f.batchable || i == fieldWorkers }

func (m Model) batchingKey(msg tea.KeyMsg) (tea.Model, tea.Cmd) {
	f := &m.batching
	k := m.keys
	switch {
	case key.Matches(msg, k.Close):
		m.panel = panelNone
		return m, nil
	case key.Matches(msg, k.Apply):
		f.commitTyped()
		return m, m.applyBatching(false)
	case msg.String() == "w":
		f.commitTyped()
		return m, m.applyBatching(true)
	case key.Matches(msg, k.Next):
		f.commitTyped()
		for i := 1; i <= fieldCount; i++ {
			if n := (f.focus + i) % fieldCount; f.fieldEnabled(n) {
				f.focus = n
				break
			}
		}
	case key.Matches(msg, k.Prev):
		f.commitTyped()
		for i := 1; i <= fieldCount; i++ {
			if n := (f.focus - i + fieldCount) % fieldCount; f.fieldEnabled(n) {
				f.focus = n
				break
			}
		}
	case key.Matches(msg, k.Inc):
		f.commitTyped()
		f.step(1)
	case key.Matches(msg, k.Dec):
		f.commitTyped()
		f.step(-1)
	case msg.Type == tea.KeyBackspace:
		if len(f.typed) > 0 {
			f.typed = f.typed[:len(f.typed)-1]
		}
	case msg.Type == tea.KeyRunes && f.focus != fieldPolicy:
		for _, r := range msg.Runes {
			if (r >= '0' && r <= '9') || (r == '.' && (f.focus == fieldMaxLatency || f.focus == fieldBatchWait)) {
				f.typed += string(r)
			}
		}
	case msg.Type == tea.KeyRunes && f.focus == fieldPolicy:
		switch string(msg.Runes) {
		case "a":
			f.cfg.Policy = batcher.Adaptive
		case "f":
			f.cfg.Policy = batcher.Fixed
		case "n":
			f.cfg.Policy = batcher.None
		}
	}
	return m, nil
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

// commitTyped turns the digits typed into the focused field into its value.
func (f *batchingForm) commitTyped() {
	if f.typed == "" {
		return
	}
	v, err := strconv.ParseFloat(f.typed, 64)
	f.typed = ""
	if err != nil {
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

func (m Model) applyBatching(save bool) tea.Cmd {
	f := m.batching
	b := m.backend
	return func() tea.Msg {
		var done []string
		if f.batchable {
			if err := b.SetBatching(f.runner, f.method, f.cfg); err != nil {
				return flashMsg{errText("batching not applied", err), true}
			}
			done = append(done, fmt.Sprintf("%s.%s %s max_batch_size %d max_latency %s", f.runner, f.method, f.cfg.Policy, f.cfg.MaxBatchSize, msString(f.cfg.MaxLatency)))
		}
		if err := b.SetWorkers(f.runner, f.workers); err != nil {
			return flashMsg{errText("workers not applied", err), true}
		}
		done = append(done, fmt.Sprintf("workers %d", f.workers))
		msg := "applied live: " + strings.Join(done, ", ")
		if save {
			t := watcher.Tweak{Runner: f.runner, Method: f.method, Workers: f.workers}
			if f.batchable {
				c := f.cfg
				t.Batching = &c
			}
			if err := b.Save(t); err != nil {
				return flashMsg{msg + "; not saved: " + err.Error(), true}
			}
			msg += "; written to the config file"
		}
		return flashMsg{msg, false}
	}
}

func (f batchingForm) value(i int) string {
	c := f.cfg
	switch i {
	case fieldPolicy:
		return "◂ " + c.Policy.String() + " ▸"
	case fieldMaxBatch:
		return strconv.Itoa(c.MaxBatchSize) + " rows"
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
		return humanInt(int64(c.MaxQueueSize)) + " requests"
	case fieldWorkers:
		return strconv.Itoa(f.workers)
	}
	return ""
}

func (m Model) viewBatching(width, height int) string {
	f := m.batching
	st := m.st
	var b strings.Builder
	for i := range fieldCount {
		label := fmt.Sprintf("  %-20s", fieldNames[i])
		val := f.value(i)
		if i == f.focus && f.typed != "" {
			val = f.typed + "▏"
		}
		switch {
		case !f.fieldEnabled(i):
			b.WriteString(st.dim.Render(label + "– (not batchable)"))
		case i == f.focus:
			b.WriteString("▸" + label[1:] + st.fieldFocus.Render(" "+val+" "))
		default:
			b.WriteString(label + " " + val)
		}
		b.WriteByte('\n')
	}
	b.WriteString("\n" + st.dim.Render("  ↑↓ field · ←→ change · digits type a value · a/f/n policy · enter apply live · w apply and write to config · esc close"))
	return m.box(fmt.Sprintf("batching · %s.%s", f.runner, f.method), b.String(), width, height)
}
