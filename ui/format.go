package ui

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// humanInt groups thousands: 7512 → "7,512".
func humanInt(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := ""
	if n < 0 {
		neg, s = "-", s[1:]
	}
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return neg + s
}

// humanRate shows a per-second rate: "7,512", "12.4", "0.5", "0".
func humanRate(r float64) string {
	switch {
	case r <= 0:
		return "0"
	case r >= 100:
		return humanInt(int64(math.Round(r)))
	case r >= 10:
		return strconv.FormatFloat(r, 'f', 1, 64)
	default:
		return strconv.FormatFloat(r, 'f', 1, 64)
	}
}

// humanDur shows a latency: "812µs", "8.1ms", "120ms", "2.3s"; "–" for none.
func humanDur(d time.Duration) string {
	switch {
	case d <= 0:
		return "–"
	case d < time.Millisecond:
		return fmt.Sprintf("%dµs", d.Microseconds())
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.1fms", float64(d)/1e6)
	case d < time.Second:
		return fmt.Sprintf("%.0fms", float64(d)/1e6)
	case d < time.Minute:
		return fmt.Sprintf("%.1fs", d.Seconds())
	}
	return d.Round(time.Second).String()
}

// msString shows a latency bound in ms as typed in the config.
func msString(d time.Duration) string {
	if d <= 0 {
		return "–"
	}
	return humanDur(d)
}

var sparkRunes = []rune("▁▂▃▄▅▆▇█")

// sparkline draws values scaled to their max, one rune each.
func sparkline(vals []float64) string {
	var maxV float64
	for _, v := range vals {
		maxV = math.Max(maxV, v)
	}
	out := make([]rune, len(vals))
	for i, v := range vals {
		switch {
		case maxV <= 0 || v <= 0:
			out[i] = ' '
		default:
			k := int(v / maxV * float64(len(sparkRunes)-1))
			out[i] = sparkRunes[min(max(k, 0), len(sparkRunes)-1)]
		}
	}
	return string(out)
}

var barRunes = []rune(" ▏▎▍▌▋▊▉█")

// bar draws frac of width cells with eighth-cell precision.
func bar(frac float64, width int) string {
	if width <= 0 {
		return ""
	}
	frac = math.Max(0, math.Min(1, frac))
	eighths := int(math.Round(frac * float64(width) * 8))
	full, rest := eighths/8, eighths%8
	out := make([]rune, 0, width)
	for range full {
		out = append(out, '█')
	}
	if rest > 0 && full < width {
		out = append(out, barRunes[rest])
	}
	for len(out) < width {
		out = append(out, ' ')
	}
	return string(out)
}

// plural counts a noun: "1 runner", "2 runners", "13,080 requests".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	if strings.HasSuffix(noun, "ch") || strings.HasSuffix(noun, "s") {
		return humanInt(int64(n)) + " " + noun + "es"
	}
	return humanInt(int64(n)) + " " + noun + "s"
}
