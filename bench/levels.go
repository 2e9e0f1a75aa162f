package bench

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Level is one load level: closed loop when Concurrency > 0, else open loop
// at Rate requests per second.
type Level struct {
	// Concurrency is the number of callers, each sending its next request
	// when the last one answers.
	Concurrency int
	// Rate is the requests per second sent whatever the answers do, evenly
	// spaced or, with Poisson, at exponentially distributed gaps.
	Rate    float64
	Poisson bool
}

// Open reports whether the level is open loop.
func (l Level) Open() bool { return l.Concurrency <= 0 }

func (l Level) String() string {
	if !l.Open() {
		return strconv.Itoa(l.Concurrency)
	}
	return strconv.FormatFloat(l.Rate, 'f', -1, 64) + "/s"
}

// Arrivals names how open-loop requests are spaced ("" for closed loop).
func (l Level) Arrivals() string {
	switch {
	case !l.Open():
		return ""
	case l.Poisson:
		return "poisson"
	}
	return "constant"
}

// maxLevels bounds a range so that a typo cannot queue a day of runs.
const maxLevels = 64

// ParseSteps reads a list of load steps: "1,8,32,128", a range
// "FROM:TO:xFACTOR" ("1:128:x2" is 1,2,4,…,128) or "FROM:TO:+STEP"
// ("100:500:+100"), or several of these joined by commas.
func ParseSteps(s string) ([]float64, error) {
	var out []float64
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		if !strings.Contains(part, ":") {
			v, err := positive(part)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
			continue
		}
		steps, err := parseRange(part)
		if err != nil {
			return nil, err
		}
		out = append(out, steps...)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no load levels in %q: give a list like 1,8,32 or a range like 1:128:x2", s)
	}
	if len(out) > maxLevels {
		return nil, fmt.Errorf("%q gives %d load levels: at most %d (use a larger step)", s, len(out), maxLevels)
	}
	return out, nil
}

func parseRange(part string) ([]float64, error) {
	f := strings.Split(part, ":")
	if len(f) != 3 {
		return nil, fmt.Errorf("range %q: want FROM:TO:xFACTOR or FROM:TO:+STEP", part)
	}
	from, err := positive(f[0])
	if err != nil {
		return nil, fmt.Errorf("range %q: %w", part, err)
	}
	to, err := positive(f[1])
	if err != nil {
		return nil, fmt.Errorf("range %q: %w", part, err)
	}
	if to < from {
		return nil, fmt.Errorf("range %q: the end %v is below the start %v", part, to, from)
	}
	step := strings.TrimSpace(f[2])
	mul := strings.HasPrefix(step, "x") || strings.HasPrefix(step, "*")
	if !mul && !strings.HasPrefix(step, "+") {
		return nil, fmt.Errorf("range %q: step %q must start with x (multiply) or + (add)", part, step)
	}
	by, err := strconv.ParseFloat(step[1:], 64)
	if err != nil || math.IsNaN(by) || (mul && by <= 1) || (!mul && by <= 0) {
		return nil, fmt.Errorf("range %q: step %q must be x followed by a factor above 1, or + followed by a positive number", part, step)
	}
	var out []float64
	for v := from; v <= to*(1+1e-9); {
		out = append(out, v)
		if len(out) > maxLevels {
			break // reported by the caller with the total
		}
		if mul {
			v *= by
		} else {
			v += by
		}
	}
	return out, nil
}

func positive(s string) (float64, error) {
	v, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) || v <= 0 {
		return 0, fmt.Errorf("load level %q: want a positive number", s)
	}
	return v, nil
}

// ConcurrencyLevels parses closed-loop levels; each must be a whole number.
func ConcurrencyLevels(s string) ([]Level, error) {
	steps, err := ParseSteps(s)
	if err != nil {
		return nil, err
	}
	levels := make([]Level, len(steps))
	for i, v := range steps {
		n := int(math.Round(v))
		if math.Abs(v-float64(n)) > 1e-9 {
			return nil, fmt.Errorf("concurrency %v: want a whole number of callers", v)
		}
		levels[i] = Level{Concurrency: n}
	}
	return levels, nil
}

// RateLevels parses open-loop levels in requests per second.
func RateLevels(s string, poisson bool) ([]Level, error) {
	steps, err := ParseSteps(s)
	if err != nil {
		return nil, err
	}
	levels := make([]Level, len(steps))
	for i, v := range steps {
		levels[i] = Level{Rate: v, Poisson: poisson}
	}
	return levels, nil
}
