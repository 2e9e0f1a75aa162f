package ui

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/charmbracelet/bubbles/key"
	"github.com/charmbracelet/bubbles/progress"
	tea "github.com/charmbracelet/bubbletea"

	"github.com/benchtop/benchtop/engine"
)

// loadPanel fires N requests at concurrency C at one target and shows
// progress while the charts above respond. It counts what the engine
// refused as overloaded apart from what it served and what failed: a
// run that was mostly refused says so, in red, and leaves an event.
type loadPanel struct {
	keys    loadKeyMap
	st      styles
	w, h    int
	backend Backend

	targets     []Target
	idx         int
	concurrency int
	count       int
	focus       int // loadTarget, loadConcurrency, loadCount
	num         numField
	running     bool
	run         int // which load the updates belong to
	cancel      context.CancelFunc
	updates     <-chan loadProgress
	last        loadProgress
	bar         progress.Model
	closed      bool // esc: the root closes the panel
}

const (
	loadTarget = iota
	loadConcurrency
	loadCount
	loadFields
)

// loadProgress is a report of a running load.
type loadProgress struct {
	Done, Refused, Errors, Total int
	Elapsed                      time.Duration
	P50, P99                     time.Duration
	LastErr                      string
	Finished                     bool
}

// Accepted is how many requests the engine served.
func (p loadProgress) Accepted() int { return p.Done - p.Refused - p.Errors }

// refusedMostly: refusals outnumber what was served.
func (p loadProgress) refusedMostly() bool { return p.Refused > p.Accepted() }

type loadMsg struct {
	run int
	p   loadProgress
	ok  bool // false: the channel closed
}

func newLoadPanel(st styles, b Backend) loadPanel {
	return loadPanel{keys: defaultLoadKeyMap(), st: st, backend: b, concurrency: 32, count: 2000,
		bar: progress.New(progress.WithSolidFill("12"), progress.WithoutPercentage())}
}

func (p *loadPanel) SetSize(w, h int)         { p.w, p.h = w, h }
func (p loadPanel) ShortHelp() []key.Binding  { return p.keys.ShortHelp() }
func (p loadPanel) FullHelp() [][]key.Binding { return p.keys.FullHelp() }

// wantHeight: three fields, a blank, the bar, three lines of figures and
// the border.
func (p loadPanel) wantHeight() int { return loadFields + 1 + 4 + 2 }

// setTargets offers ts (the selected runner's first), unless a load runs.
func (p *loadPanel) setTargets(ts []Target) {
	if !p.running {
		p.targets, p.idx = ts, 0
	}
}

func (p loadPanel) Update(msg tea.Msg) (loadPanel, tea.Cmd) {
	switch msg := msg.(type) {
	case loadMsg:
		if msg.run != p.run {
			return p, nil
		}
		if !msg.ok {
			p.running = false
			p.stop()
			p.cancel = nil
			return p, p.finished()
		}
		p.last = msg.p
		return p, waitLoad(p.run, p.updates)
	case tea.KeyMsg:
		k := p.keys
		switch {
		case key.Matches(msg, k.Close):
			p.closed = true // a running load goes on; l reopens it
			return p, nil
		case key.Matches(msg, k.Stop):
			p.stop()
		case key.Matches(msg, k.Start):
			p.commit()
			if p.running || len(p.targets) == 0 {
				return p, nil
			}
			return p.start()
		case key.Matches(msg, k.Next):
			p.commit()
			p.focus = (p.focus + 1) % loadFields
		case key.Matches(msg, k.Prev):
			p.commit()
			p.focus = (p.focus + loadFields - 1) % loadFields
		case key.Matches(msg, k.Inc), key.Matches(msg, k.Dec):
			if p.running {
				return p, nil
			}
			p.commit()
			up := key.Matches(msg, k.Inc)
			switch p.focus {
			case loadTarget:
				d := 1
				if !up {
					d = -1
				}
				p.idx = (p.idx + d + len(p.targets)) % max(1, len(p.targets))
			case loadConcurrency:
				p.concurrency = scale(p.concurrency, up, 1, 1024)
			case loadCount:
				p.count = scale(p.count, up, 10, 1_000_000)
			}
		case !p.running && p.focus != loadTarget:
			p.num.key(msg, false)
		}
	}
	return p, nil
}

// commit turns digits typed into the focused field into its value.
func (p *loadPanel) commit() {
	v, ok := p.num.commit()
	if !ok {
		return
	}
	switch p.focus {
	case loadConcurrency:
		p.concurrency = min(max(int(v), 1), 1024)
	case loadCount:
		p.count = min(max(int(v), 1), 1_000_000)
	}
}

func scale(v int, up bool, lo, hi int) int {
	if up {
		return min(hi, v*2)
	}
	return max(lo, v/2)
}

func (p loadPanel) start() (loadPanel, tea.Cmd) {
	t := p.targets[p.idx]
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan loadProgress, 4)
	p.run++
	p.running, p.cancel, p.updates = true, cancel, ch
	p.last = loadProgress{Total: p.count}
	go runLoad(ctx, p.backend, t, t.Example(), p.count, p.concurrency, ch)
	return p, waitLoad(p.run, ch)
}

// stop cancels a running load; its goroutines end and close the channel.
func (p *loadPanel) stop() {
	if p.cancel != nil {
		p.cancel()
	}
}

// finished is the event a load leaves: what was sent, served and refused.
func (p loadPanel) finished() tea.Cmd {
	l := p.last
	t := p.targets[p.idx]
	level := slog.LevelInfo
	word := "load done"
	if !l.Finished {
		word = "load stopped"
	}
	text := fmt.Sprintf("%s on %s: %s of %s sent in %s; %s served, %s refused as overloaded, %s",
		word, t.Label(), humanInt(int64(l.Done)), plural(l.Total, "request"), humanDur(l.Elapsed),
		humanInt(int64(l.Accepted())), humanInt(int64(l.Refused)), plural(l.Errors, "error"))
	if l.Done > 0 && l.Refused > 0 {
		text += fmt.Sprintf(" (%.1f%% refused)", 100*float64(l.Refused)/float64(l.Done))
	}
	switch {
	case l.refusedMostly() || l.Errors > 0:
		level = slog.LevelError
		if l.LastErr != "" {
			text += "; last: " + l.LastErr
		}
	case l.Refused > 0:
		level = slog.LevelWarn
	}
	return note(level, t.Runner, text)
}

func waitLoad(run int, ch <-chan loadProgress) tea.Cmd {
	return func() tea.Msg {
		p, ok := <-ch
		return loadMsg{run, p, ok}
	}
}

// runLoad sends n requests from c goroutines and reports ten times a
// second; it closes ch when done or cancelled.
func runLoad(ctx context.Context, b Backend, t Target, body string, n, c int, ch chan<- loadProgress) {
	defer close(ch)
	start := time.Now()
	var next atomic.Int64
	var mu sync.Mutex
	var lat []time.Duration
	var refused, errs int
	var lastErr string
	var wg sync.WaitGroup
	for range c {
		wg.Go(func() {
			for ctx.Err() == nil && next.Add(1) <= int64(n) {
				r := b.Send(ctx, t, body)
				mu.Lock()
				switch {
				case r.Err == nil:
					lat = append(lat, r.Latency)
				case ctx.Err() != nil: // stopped: not the engine's doing
				case errors.Is(r.Err, engine.ErrOverloaded):
					refused++
				default:
					errs++
					lastErr = r.Err.Error()
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
		p := loadProgress{Done: len(lat) + refused + errs, Refused: refused, Errors: errs, Total: n,
			Elapsed: time.Since(start), LastErr: lastErr, Finished: finished}
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
			ch <- report(ctx.Err() == nil)
			return
		case <-ticker.C:
			select {
			case ch <- report(false):
			default: // the screen is behind; it gets the next one
			}
		}
	}
}

func (p loadPanel) View() string {
	st := p.st
	if len(p.targets) == 0 {
		return st.box("load", st.dim.Render("nothing to load: the config has no runners"), p.w, p.h)
	}
	value := func(i int, v string) string {
		if i == p.focus && p.num.typed != "" {
			return p.num.typed + "▏"
		}
		return v
	}
	fields := []string{
		"target      " + p.targets[p.idx].Label(),
		"concurrency " + value(loadConcurrency, humanInt(int64(p.concurrency))),
		"requests    " + value(loadCount, humanInt(int64(p.count))),
	}
	var lines []string
	for i, f := range fields {
		if i == p.focus && !p.running {
			lines = append(lines, "▸ "+st.fieldFocus.Render(f))
		} else {
			lines = append(lines, "  "+f)
		}
	}
	lines = append(lines, "")
	l := p.last
	if p.running || l.Done > 0 {
		frac := 0.0
		if l.Total > 0 {
			frac = float64(l.Done) / float64(l.Total)
		}
		counts := humanInt(int64(l.Done)) + "/" + humanInt(int64(l.Total))
		p.bar.Width = max(5, p.w-2-2-1-len(counts))
		lines = append(lines, "  "+p.bar.ViewAs(frac)+" "+counts)
		state := st.ok.Render("✓ done")
		switch {
		case p.running:
			state = "running"
		case !l.Finished:
			state = st.warn.Render("⚠ stopped")
		case l.refusedMostly():
			state = st.bad.Render("✗ done, mostly refused")
		case l.Errors > 0:
			state = st.bad.Render("✗ done with errors")
		}
		secs := l.Elapsed.Seconds()
		rate := func(n int) string {
			if secs <= 0 {
				return "0"
			}
			return humanRate(float64(n) / secs)
		}
		lines = append(lines, fmt.Sprintf("  %s · %s · p50 %s · p99 %s (served)", state, humanDur(l.Elapsed), humanDur(l.P50), humanDur(l.P99)))
		// Per second over the whole run, in the words of the table's OK/S
		// (which is the last five seconds).
		figures := fmt.Sprintf("ok %s/s · refused %s/s", rate(l.Accepted()), rate(l.Refused))
		if l.Done > 0 {
			figures += fmt.Sprintf(" (%.1f%%)", 100*float64(l.Refused)/float64(l.Done))
		}
		if l.refusedMostly() {
			figures = st.bad.Render("✗ " + figures)
		}
		lines = append(lines, "  "+figures)
		if l.Errors > 0 {
			lines = append(lines, st.bad.Render(fmt.Sprintf("  ✗ %s: %s", plural(l.Errors, "error"), l.LastErr)))
		} else {
			lines = append(lines, "  0 errors · over the whole run")
		}
	}
	return st.box("load", strings.Join(lines, "\n"), p.w, p.h)
}
