// Package console is plain terminal output for the commands, outside the
// workbench's screen: sizes in binary units, a progress bar, and whether a
// writer is a terminal. The workbench (package ui) shows sizes with Bytes
// too, so a size reads the same on every screen.
package console

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/charmbracelet/x/term"
)

// IsTerminal reports whether w is a terminal: an *os.File the terminal
// driver answers for (not merely a character device: /dev/null is one).
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(f.Fd())
}

// Bytes shows a size in binary units: "512 B", "1.5 KiB", "1.2 GiB".
func Bytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// Bar draws the progress of a copy on one line of a terminal:
// "label  █████░░░░░  50%  1.0 MiB / 2.0 MiB", or the bytes done alone
// when the total is unknown. A Bar with no writer draws nothing.
type Bar struct {
	w     io.Writer
	label string
	last  time.Time
	drawn bool
}

// NewBar returns a bar that draws on w (nil: nowhere), labelled label.
func NewBar(w io.Writer, label string) *Bar { return &Bar{w: w, label: label} }

const barWidth = 30

// Update draws done bytes of total (-1 or 0: unknown), at most ten times a
// second but always when done reaches total. Its signature is that of the
// store's progress callbacks.
func (p *Bar) Update(done, total int64) {
	if p.w == nil {
		return
	}
	// Ten frames a second is smooth; more would cost more than the copy.
	if now := time.Now(); now.Sub(p.last) < 100*time.Millisecond && done != total {
		return
	} else {
		p.last = now
	}
	p.drawn = true
	if total <= 0 {
		fmt.Fprintf(p.w, "\r\033[K%s  %s", p.label, Bytes(done))
		return
	}
	frac := min(1, float64(done)/float64(total))
	full := int(frac * barWidth)
	bar := strings.Repeat("█", full) + strings.Repeat("░", barWidth-full)
	fmt.Fprintf(p.w, "\r\033[K%s  %s %3.0f%%  %s / %s", p.label, bar, frac*100, Bytes(done), Bytes(total))
}

// Done clears the bar's line, so what is printed next starts clean.
func (p *Bar) Done() {
	if p.w != nil && p.drawn {
		fmt.Fprint(p.w, "\r\033[K")
	}
}
