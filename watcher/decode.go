package watcher

import (
	"fmt"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Pos is a place in the config file.
type Pos struct{ Line, Column int }

// Problem is one thing wrong with a config, where it is and what to do.
type Problem struct {
	File string
	Pos  Pos
	Path string // e.g. runners[0].batching.max_batch_size
	Msg  string
}

func (p Problem) Error() string {
	loc := p.File
	switch {
	case p.Pos.Line > 0 && p.Pos.Column > 0:
		loc = fmt.Sprintf("%s:%d:%d", p.File, p.Pos.Line, p.Pos.Column)
	case p.Pos.Line > 0:
		loc = fmt.Sprintf("%s:%d", p.File, p.Pos.Line)
	}
	if p.Path == "" {
		return fmt.Sprintf("%s: %s", loc, p.Msg)
	}
	return fmt.Sprintf("%s: %s: %s", loc, p.Path, p.Msg)
}

// Problems is every problem found in one config, in file order.
type Problems []Problem

func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.Error()
	}
	return strings.Join(lines, "\n")
}

// yamlLine is how yaml.v3 starts a syntax error's message.
var yamlLine = regexp.MustCompile(`^yaml: line (\d+): `)

// parserProblems are yaml.v3's parser errors, as against its scanner's. It
// reports a parser error's line counted from 0 (the scanner's from 1), or
// no line at all for line 1: the line of the collection being parsed when
// there is one, else of the token at fault.
var parserProblems = map[string]string{
	"did not find expected ',' or ']'":       "the [ list that starts on this line is not closed, or two of its items lack a comma between them",
	"did not find expected ',' or '}'":       "the { mapping that starts on this line is not closed, or two of its entries lack a comma between them",
	"did not find expected '-' indicator":    "the list that starts on this line has a line below it indented differently from its items",
	"did not find expected key":              "the mapping that starts on this line has a line below it indented differently from its keys",
	"did not find expected node content":     "a value is missing",
	"did not find expected <document start>": "",
	"did not find expected <stream-start>":   "",
	"found duplicate %TAG directive":         "",
	"found duplicate %YAML directive":        "",
	"found incompatible YAML document":       "",
	"found undefined tag handle":             "",
}

// syntaxProblem is a YAML syntax error at its line, counted from 1.
func syntaxProblem(file string, err error) Problem {
	msg := err.Error()
	p := Problem{File: file}
	m := yamlLine.FindStringSubmatch(msg)
	if m != nil {
		msg = msg[len(m[0]):]
		p.Pos.Line, _ = strconv.Atoi(m[1])
	} else {
		msg = strings.TrimPrefix(msg, "yaml: ")
	}
	if hint, parser := parserProblems[msg]; parser {
		p.Pos.Line++
		if hint != "" {
			msg += ": " + hint
		}
	}
	p.Msg = msg
	return p
}

// decoder walks a YAML node tree by hand, so that every error carries the
// position of the node at fault and decoding goes on after the first one.
type decoder struct {
	file     string
	problems Problems
	pos      map[string]Pos
}

func (d *decoder) note(n *yaml.Node, path string) {
	if n != nil {
		d.pos[path] = Pos{n.Line, n.Column}
	}
}

func (d *decoder) errorf(n *yaml.Node, path, format string, args ...any) {
	p := Problem{File: d.file, Path: path, Msg: fmt.Sprintf(format, args...)}
	if n != nil {
		p.Pos = Pos{n.Line, n.Column}
	}
	d.problems = append(d.problems, p)
}

func isNull(n *yaml.Node) bool {
	return n == nil || (n.Kind == yaml.ScalarNode && n.Tag == "!!null")
}

func describeNode(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	}
	return strconv.Quote(n.Value)
}

// mapping calls fields[key] for every key of n, reporting unknown and
// duplicate keys with a suggestion.
func (d *decoder) mapping(n *yaml.Node, path string, fields map[string]func(*yaml.Node, string)) {
	if isNull(n) {
		return
	}
	if n.Kind != yaml.MappingNode {
		d.errorf(n, path, "want a mapping of keys, got %s", describeNode(n))
		return
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		p := join(path, k.Value)
		if seen[k.Value] {
			d.errorf(k, p, "key appears twice")
			continue
		}
		seen[k.Value] = true
		f, ok := fields[k.Value]
		if !ok {
			d.errorf(k, p, "unknown key%s (valid here: %s)", suggest(k.Value, fields), strings.Join(keys(fields), ", "))
			continue
		}
		d.note(k, p)
		f(v, p)
	}
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// suggest offers the closest valid key for a typo.
func suggest[V any](got string, fields map[string]V) string {
	best, dist := "", 3
	for k := range fields {
		if dd := editDistance(got, k); dd < dist {
			best, dist = k, dd
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf("; did you mean %q?", best)
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func (d *decoder) scalar(n *yaml.Node, path, want string) (string, bool) {
	if n.Kind != yaml.ScalarNode {
		d.errorf(n, path, "want %s, got %s", want, describeNode(n))
		return "", false
	}
	d.note(n, path)
	return n.Value, true
}

func (d *decoder) str(n *yaml.Node, path string) string {
	s, _ := d.scalar(n, path, "a string")
	return s
}

func (d *decoder) integer(n *yaml.Node, path string) int {
	s, ok := d.scalar(n, path, "an integer")
	if !ok {
		return 0
	}
	v, err := strconv.Atoi(s)
	if err != nil {
		d.errorf(n, path, "want an integer, got %q", s)
	}
	return v
}

func (d *decoder) number(n *yaml.Node, path string) float64 {
	s, ok := d.scalar(n, path, "a number")
	if !ok {
		return 0
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		d.errorf(n, path, "want a number, got %q", s)
	}
	return v
}

// duration accepts Go durations ("30s", "1m30s") or a number of seconds.
func (d *decoder) duration(n *yaml.Node, path string) time.Duration {
	s, ok := d.scalar(n, path, "a duration")
	if !ok {
		return 0
	}
	if v, err := strconv.ParseFloat(s, 64); err == nil {
		return time.Duration(v * float64(time.Second))
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		d.errorf(n, path, "want a duration such as 30s or 500ms, got %q", s)
	}
	return v
}

func (d *decoder) sequence(n *yaml.Node, path string, each func(*yaml.Node, string)) {
	if isNull(n) {
		return
	}
	if n.Kind != yaml.SequenceNode {
		d.errorf(n, path, "want a list, got %s", describeNode(n))
		return
	}
	d.note(n, path)
	for i, item := range n.Content {
		each(item, fmt.Sprintf("%s[%d]", path, i))
	}
}

// anyValue decodes free-form YAML (init params).
func (d *decoder) anyValue(n *yaml.Node, path string) map[string]any {
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		d.errorf(n, path, "want a mapping of init params, got %s", describeNode(n))
		return nil
	}
	var m map[string]any
	if err := n.Decode(&m); err != nil {
		d.errorf(n, path, "%v", err)
	}
	d.note(n, path)
	return m
}
