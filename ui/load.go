package ui

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/charmbracelet/bubbles/key"
	"github.com/charmbracelet/bubbles/progress"
	tea "github.com/charmbracelet/bubbletea"
)

// loadPanel fires N requests at concurrency C at one target and shows
// progress while the charts above respond.
type loadPanel struct {
	targets     []Target
	idx         int
	concurrency int
	count       int
	focus       int // 0 target, 1 concurrency, 2 count
	running     bool
	cancel      context.CancelFunc
	updates     <-chan loadProgress
	last        loadProgress
	bar         progress.Model
}

// loadProgress is a report of a running load.
type loadProgress struct {
	Done, Errors, Total int
	Elapsed             time.Duration
	P50, P99            time.Duration
	LastErr             string
	Finished            bool
}

type loadMsg struct {
	p  loadProgress
	ok bool // false: the channel closed
}

func (m Model) openLoad() (tea.Model, tea.Cmd) {
	if !m.load.running {
		m.load.targets = m.targetsFor()
		m.load.idx = 0
	}
	if len(m.load.targets) == 0 {
		return m, flashCmd("nothing to load: the config has no runners", true)
	}
	if m.load.bar.Width == 0 {
		m.load.bar = progress.New(progress.WithSolidFill("12"), progress.WithoutPercentage())
	}
	m.panel = panelLoad
	return m, nil
}

func (m Model) loadKey(msg tea.KeyMsg) (tea.Model, tea.Cmd) {
	p := &m.load
	switch {
	case key.Matches(msg, m.keys.Close):
		m.panel = panelNone // a running load goes on; l reopens it
	case key.Matches(msg, m.keys.Stop):
		m.stopLoad()
	case key.Matches(msg, m.keys.Apply):
		if p.running {
			return m, nil
		}
		return m.startLoad()
	case key.Matches(msg, m.keys.Next):
		p.focus = (p.focus + 1) % 3
	case key.Matches(msg, m.keys.Prev):
		p.focus = (p.focus + 2) % 3
	case key.Matches(msg, m.keys.Inc), key.Matches(msg, m.keys.Dec):
		if p.running {
			return m, nil
		}
		up := key.Matches(msg, m.keys.Inc)
		switch p.focus {
		case 0:
			d := 1
			if !up {
				d = -1
			}
			p.idx = (p.idx + d + len(p.targets)) % len(p.targets)
		case 1:
			p.concurrency = scale(p.concurrency, up, 1, 1024)
		case 2:
			p.count = scale(p.count, up, 10, 1_000_000)
		}
	case key.Matches(msg, m.keys.Quit):
		return m.quit()
	}
	return m, nil
}

func scale(v int, up bool, lo, hi int) int {
	if up {
		return min(hi, v*2)
	}
	return max(lo, v/2)
}

func (m Model) startLoad() (tea.Model, tea.Cmd) {
	p := &m.load
	t := p.targets[p.idx]
	body := t.Example()
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan loadProgress, 4)
	p.running, p.cancel, p.updates = true, cancel, ch
	p.last = loadProgress{Total: p.count}
	go runLoad(ctx, m.backend, t, body, p.count, p.concurrency, ch)
	return m, waitLoad(ch)
}

// stopLoad cancels a running load; its goroutines end and close the channel.
func (m *Model) stopLoad() {
	if m.load.cancel != nil {
		m.load.cancel()
	}
}

func waitLoad(ch <-chan loadProgress) tea.Cmd {
	return func() tea.Msg {
		p, ok := <-ch
		return loadMsg{p, ok}
	}
}

func (m Model) onLoad(msg loadMsg) (tea.Model, tea.Cmd) {
	p := &m.load
	if !msg.ok {
		p.running = false
		if p.cancel != nil {
			p.cancel()
			p.cancel = nil
		}
		return m, nil
	}
	p.last = msg.p
	return m, waitLoad(p.updates)
}

// runLoad sends n requests from c goroutines and reports ten times a
// second; it closes ch when done or cancelled.
func runLoad(ctx context.Context, b Backend, t Target, body string, n, c int, ch chan<- loadProgress) {
	defer close(ch)
	start := time.Now()
	var next atomic.Int64
	var mu sync.Mutex
	var lat []time.Duration
	var errs int
	var lastErr string
	var wg sync.WaitGroup
	for range c {
		wg.Go(func() {
			for ctx.Err() == nil && next.Add(1) <= int64(n) {
				r := b.Send(ctx, t, body)
				mu.Lock()
				if r.Err != nil {
					if ctx.Err() == nil {
						errs++
						lastErr = r.Err.Error()
					}
				} else {
					lat = append(lat, r.Latency)
				}
				mu.Unlock()
			}
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	report := func(finished bool) loadProgress {
		mu.Lock()
		defer mu.Unlock()
		p := loadProgress{Done: len(lat) + errs, Errors: errs, Total: n, Elapsed: time.Since(start), LastErr: lastErr, Finished: finished}
		if len(lat) > 0 {
			s := slices.Clone(lat)
			slices.Sort(s)
			p.P50, p.P99 = s[len(s)/2], s[len(s)*99/100]
		}
		return p
	}
	ticker := time.NewTicker(RefreshInterval)
	defer ticker.Stop()
	for {
		select {
		case <-done:
			ch <- report(true)
			return
		case <-ticker.C:
			select {
			case ch <- report(false):
			default: // the screen is behind; it gets the next one
			}
		}
	}
}

func (m Model) viewLoad(width, height int) string {
	p := m.load
	st := m.st
	var b strings.Builder
	fields := []string{
		"target      " + p.targets[p.idx].Label(),
		fmt.Sprintf("concurrency %d", p.concurrency),
		fmt.Sprintf("requests    %s", humanInt(int64(p.count))),
	}
	for i, f := range fields {
		if i == p.focus && !p.running {
			b.WriteString("▸ " + st.fieldFocus.Render(f) + "\n")
		} else {
			b.WriteString("  " + f + "\n")
		}
	}
	b.WriteByte('\n')
	l := p.last
	if p.running || l.Done > 0 {
		frac := 0.0
		if l.Total > 0 {
			frac = float64(l.Done) / float64(l.Total)
		}
		p.bar.Width = max(10, width-30)
		rate := 0.0
		if l.Elapsed > 0 {
			rate = float64(l.Done-l.Errors) / l.Elapsed.Seconds()
		}
		fmt.Fprintf(&b, "  %s %s/%s\n", p.bar.ViewAs(frac), humanInt(int64(l.Done)), humanInt(int64(l.Total)))
		state := st.ok.Render("✓ done")
		if p.running {
			state = "running"
		} else if !l.Finished {
			state = st.warn.Render("stopped")
		}
		fmt.Fprintf(&b, "  %s · %s req/s · p50 %s · p99 %s · ", state, humanRate(rate), humanDur(l.P50), humanDur(l.P99))
		if l.Errors > 0 {
			fmt.Fprintf(&b, "%s\n  last error: %s\n", st.bad.Render(fmt.Sprintf("✗ %d errors", l.Errors)), l.LastErr)
		} else {
			b.WriteString("0 errors\n")
		}
	}
	b.WriteString("\n" + st.dim.Render("  ↑↓ field · ←→ change · enter start · x stop · esc close (the load goes on)"))
	return m.box("load", b.String(), width, height)
}
