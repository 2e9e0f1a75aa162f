package watcher

import (
	"fmt"
	"strings"
)

// WithRunners makes a check keep only the named runners of the file and
// none of its APIs: what a runner server (`benchtop serve --runners`)
// serves. A name the file does not have is a problem that lists the names
// it does have, so a reload that renames the runner is refused and the old
// one keeps serving.
func WithRunners(runnerNames []string) Option {
	return func(o *options) { o.runners = runnerNames }
}

// only is c with the named runners alone, in the file's order, and no
// APIs. Positions follow the runners to their new indexes, so problems
// still point into the file.
func (c *Config) only(runnerNames []string) (*Config, error) {
	want := map[string]bool{}
	for _, n := range runnerNames {
		want[n] = true
	}
	have := map[string]bool{}
	var all []string
	for _, r := range c.Runners {
		have[r.Name] = true
		all = append(all, r.Name)
	}
	var ps Problems
	for _, n := range runnerNames {
		if !have[n] {
			ps = append(ps, Problem{File: c.File, Msg: fmt.Sprintf("runner %q is not in this config: its runners are %s", n, strings.Join(all, ", "))})
		}
	}
	if len(ps) > 0 {
		return nil, ps
	}
	sub := *c
	sub.Runners, sub.APIs = nil, nil
	sub.pos = map[string]Pos{}
	for k, v := range c.pos {
		if !strings.HasPrefix(k, "runners") && !strings.HasPrefix(k, "apis") {
			sub.pos[k] = v
		}
	}
	for i, r := range c.Runners {
		if !want[r.Name] {
			continue
		}
		from, to := fmt.Sprintf("runners[%d]", i), fmt.Sprintf("runners[%d]", len(sub.Runners))
		for k, v := range c.pos {
			if rest, ok := strings.CutPrefix(k, from); ok && (rest == "" || rest[0] == '.' || rest[0] == '[') {
				sub.pos[to+rest] = v
			}
		}
		sub.Runners = append(sub.Runners, r)
		delete(want, r.Name) // a name the file repeats is the engine's to report, once
	}
	return &sub, nil
}
