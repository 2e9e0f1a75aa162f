package watcher

import (
	"bytes"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"gopkg.in/yaml.v3"

	"github.com/benchtop/benchtop/batcher"
	"github.com/benchtop/benchtop/store/atomicfile"
)

// Tweak is a change made in the workbench that the user wants to keep.
type Tweak struct {
	Runner string
	// Method, if set and the runner already overrides batching for it,
	// writes into methods.<Method>.batching; otherwise into the runner's
	// batching.
	Method   string
	Batching *batcher.Config
	Workers  int // 0: leave as it is
}

// SaveTweak writes t into the config file at path. Only the values that
// differ from what the file already says are written, each in place: the
// file's bytes are patched, never re-encoded, so comments, blank lines,
// spacing and flow or block style survive byte for byte. A knob the file
// leaves out is added only when the tweak differs from what it inherits,
// and batch_wait_ms only where the policy is fixed. The file is replaced
// atomically and durably (package atomicfile), so the watcher never reads
// half a file; a tweak that changes nothing leaves it untouched.
func SaveTweak(path string, t Tweak) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("save to config: %w", err)
	}
	out, err := patchTweak(path, data, t)
	if err != nil {
		return err
	}
	if bytes.Equal(out, data) {
		return nil
	}
	if err := atomicfile.WriteFile(path, out); err != nil {
		return fmt.Errorf("save to config: %w", err)
	}
	return nil
}

// patchTweak is SaveTweak on the bytes of the file.
func patchTweak(path string, data []byte, t Tweak) ([]byte, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, fmt.Errorf("save to config %s: it no longer parses (fix it, then save again): %w", path, err)
	}
	if len(root.Content) == 0 {
		return nil, fmt.Errorf("save to config %s: file is empty", path)
	}
	runner := findRunner(root.Content[0], t.Runner)
	if runner == nil {
		return nil, fmt.Errorf("save to config %s: no runner named %q in the file", path, t.Runner)
	}
	if runner.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("save to config %s: runner %q is not a mapping", path, t.Runner)
	}
	p := newPatcher(data)
	if t.Workers > 0 {
		if n := lookup(runner, "workers"); n == nil || !sameInt(n, t.Workers) {
			p.set(runner, "workers", strconv.Itoa(t.Workers))
		}
	}
	if t.Batching != nil {
		patchBatching(p, runner, t.Method, *t.Batching)
	}
	return p.bytes(), nil
}

// findRunner finds the runners: entry named name in the document doc.
func findRunner(doc *yaml.Node, name string) *yaml.Node {
	runners := lookup(doc, "runners")
	var runner *yaml.Node
	if runners != nil && runners.Kind == yaml.SequenceNode {
		for _, r := range runners.Content {
			if n := lookup(r, "name"); n != nil && n.Value == name {
				runner = r
			}
		}
	}
	return runner
}

// patchBatching writes the knobs of c that differ from what the file gives
// the target: methods.<method>.batching where the file already overrides
// it, else the runner's batching. What a key left out inherits is the
// runner's batching (for a method) over the defaults.
func patchBatching(p *patcher, runner *yaml.Node, method string, c batcher.Config) {
	runnerB := lookup(runner, "batching")
	target, inherited := runner, batcher.DefaultConfig()
	if method != "" {
		if m := lookup(lookup(runner, "methods"), method); m != nil && lookup(m, "batching") != nil {
			target = m
			inherited = fileBatching(runnerB, inherited)
		}
	}
	b := lookup(target, "batching")
	now := fileBatching(b, inherited)
	type knob struct {
		key   string
		value string
		same  bool
		write bool // also when left out
	}
	knobs := []knob{
		{"policy", c.Policy.String(), c.Policy == now.Policy, true},
		{"max_batch_size", strconv.Itoa(c.MaxBatchSize), c.MaxBatchSize == now.MaxBatchSize, true},
		{"max_latency_ms", msText(c.MaxLatency), c.MaxLatency == now.MaxLatency, true},
		// The wait means something to the fixed policy alone: an adaptive
		// or unbatched runner never gains it.
		{"batch_wait_ms", msText(c.BatchWait), c.BatchWait == now.BatchWait, c.Policy == batcher.Fixed},
		{"max_queue_size", strconv.Itoa(c.MaxQueueSize), c.MaxQueueSize == now.MaxQueueSize, true},
	}
	var add []string
	for _, k := range knobs {
		if k.same {
			continue
		}
		if b != nil && b.Kind == yaml.MappingNode {
			if lookup(b, k.key) != nil || k.write {
				p.set(b, k.key, k.value)
			}
			continue
		}
		if k.write {
			add = append(add, k.key+": "+k.value)
		}
	}
	if len(add) > 0 {
		// No batching mapping yet (or a null one): one in flow style, on
		// one line, like the sample config's.
		p.set(target, "batching", "{"+strings.Join(add, ", ")+"}")
	}
}

// fileBatching is base with the knobs the batching mapping b sets. A value
// that does not read is left to base: the reload that follows the save
// reports it where it is.
func fileBatching(b *yaml.Node, base batcher.Config) batcher.Config {
	if v := lookup(b, "policy"); v != nil {
		if pol, err := batcher.ParsePolicy(v.Value); err == nil {
			base.Policy = pol
		}
	}
	if v := lookup(b, "max_batch_size"); v != nil {
		if n, err := strconv.Atoi(v.Value); err == nil {
			base.MaxBatchSize = n
		}
	}
	readMS := func(key string, d *time.Duration) {
		if v := lookup(b, key); v != nil {
			if f, err := strconv.ParseFloat(v.Value, 64); err == nil {
				*d = time.Duration(f * float64(time.Millisecond))
			}
		}
	}
	readMS("max_latency_ms", &base.MaxLatency)
	readMS("batch_wait_ms", &base.BatchWait)
	if v := lookup(b, "max_queue_size"); v != nil {
		if n, err := strconv.Atoi(v.Value); err == nil {
			base.MaxQueueSize = n
		}
	}
	return base
}

func sameInt(n *yaml.Node, v int) bool {
	got, err := strconv.Atoi(n.Value)
	return err == nil && n.Kind == yaml.ScalarNode && got == v
}

// msText is d in milliseconds, as short as it reads exactly.
func msText(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', -1, 64)
}

func lookup(m *yaml.Node, key string) *yaml.Node {
	_, v := lookupPair(m, key)
	return v
}

// lookupPair is the key node and the value node of key in mapping m.
func lookupPair(m *yaml.Node, key string) (k, v *yaml.Node) {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil, nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i], m.Content[i+1]
		}
	}
	return nil, nil
}

// patcher collects edits to a file's bytes at the positions the YAML nodes
// give, and applies them at once.
type patcher struct {
	data  []byte
	lines []int // byte offset of each line's start
	edits []edit
}

type edit struct {
	at, end int // replace data[at:end]
	text    string
}

func newPatcher(data []byte) *patcher {
	p := &patcher{data: data, lines: []int{0}}
	for i, b := range data {
		if b == '\n' {
			p.lines = append(p.lines, i+1)
		}
	}
	return p
}

// offset is the byte offset of a node's line and column (both from 1;
// yaml.v3 counts columns in runes).
func (p *patcher) offset(line, col int) int {
	if line < 1 || line > len(p.lines) {
		return len(p.data)
	}
	at := p.lines[line-1]
	for c := 1; c < col && at < len(p.data); c++ {
		_, size := utf8.DecodeRune(p.data[at:])
		at += size
	}
	return at
}

// set makes key: value in mapping m: the value replaced where the key is
// there and its value is a scalar, else the pair added at the mapping's
// end, in the mapping's own style.
func (p *patcher) set(m *yaml.Node, key, value string) {
	if k, v := lookupPair(m, key); v != nil {
		if v.Kind == yaml.ScalarNode && v.Tag == "!!null" && v.Value == "" {
			// `key:` with nothing after it: the value goes after the colon.
			at := p.scalarEnd(k, p.offset(k.Line, k.Column))
			if colon := bytes.IndexByte(p.data[at:], ':'); colon >= 0 {
				p.add(at+colon+1, at+colon+1, " "+value)
			}
			return
		}
		if v.Kind == yaml.ScalarNode {
			at := p.offset(v.Line, v.Column)
			p.add(at, p.scalarEnd(v, at), value)
			return
		}
		// A mapping or list where a scalar goes: the reload that follows
		// refuses it with its position; leave it to the user.
		return
	}
	if m.Style&yaml.FlowStyle != 0 {
		p.addToFlow(m, key+": "+value)
		return
	}
	p.addToBlock(m, key+": "+value)
}

func (p *patcher) add(at, end int, text string) {
	p.edits = append(p.edits, edit{at: at, end: end, text: text})
}

// scalarEnd is where the scalar v that starts at at ends in the file.
func (p *patcher) scalarEnd(v *yaml.Node, at int) int {
	switch {
	case v.Style&yaml.DoubleQuotedStyle != 0:
		if end, ok := quotedEnd(p.data, at, '"'); ok {
			return end
		}
	case v.Style&yaml.SingleQuotedStyle != 0:
		if end, ok := quotedEnd(p.data, at, '\''); ok {
			return end
		}
	case v.Value == "" && v.Tag == "!!null":
		return at // an empty value: nothing to replace
	}
	return plainEnd(p.data, at)
}

// quotedEnd is the end of the string quoted by q that opens at at: past
// its closing quote, a backslash escaping in double quotes and a doubled
// quote in single ones.
func quotedEnd(d []byte, at int, q byte) (int, bool) {
	for i := at + 1; i < len(d); i++ {
		switch {
		case q == '"' && d[i] == '\\':
			i++
		case d[i] != q:
		case q == '\'' && i+1 < len(d) && d[i+1] == '\'':
			i++
		default:
			return i + 1, true
		}
	}
	return 0, false
}

// plainEnd is the end of a plain scalar: up to a comment, the line's end,
// or (in flow context) a comma or closing bracket; trailing blanks are the
// layout's.
func plainEnd(d []byte, at int) int {
	end := at
	for end < len(d) && d[end] != '\n' && d[end] != '\r' && d[end] != ',' && d[end] != '}' && d[end] != ']' {
		if d[end] == '#' && end > at && (d[end-1] == ' ' || d[end-1] == '\t') {
			break
		}
		end++
	}
	for end > at && (d[end-1] == ' ' || d[end-1] == '\t') {
		end--
	}
	return end
}

// addToFlow adds a pair before the closing brace of the flow mapping m.
func (p *patcher) addToFlow(m *yaml.Node, pair string) {
	open := p.offset(m.Line, m.Column)
	if len(m.Content) == 0 {
		p.add(open+1, open+1, pair)
		return
	}
	// Right after the last value, so that a trailing comma or the blanks
	// before the brace stay where they are.
	at := p.valueEnd(m.Content[len(m.Content)-1])
	p.add(at, at, ", "+pair)
}

// valueEnd is where the value n ends in the file: a scalar's last byte, or
// the closing bracket of a flow collection.
func (p *patcher) valueEnd(n *yaml.Node) int {
	at := p.offset(n.Line, n.Column)
	if n.Kind == yaml.ScalarNode {
		return p.scalarEnd(n, at)
	}
	depth := 0
	for i := at; i < len(p.data); i++ {
		switch c := p.data[i]; c {
		case '"', '\'':
			q := &yaml.Node{Style: yaml.DoubleQuotedStyle}
			if c == '\'' {
				q.Style = yaml.SingleQuotedStyle
			}
			i = p.scalarEnd(q, i) - 1
		case '{', '[':
			depth++
		case '}', ']':
			depth--
			if depth == 0 {
				return i + 1
			}
		}
	}
	return len(p.data)
}

// addToBlock adds a line with the pair after the last line of the block
// mapping m, at its keys' indentation.
func (p *patcher) addToBlock(m *yaml.Node, pair string) {
	if len(m.Content) == 0 {
		return
	}
	indent := strings.Repeat(" ", m.Content[0].Column-1)
	last := lastLine(m)
	// Lines that continue the last value (a multi-line flow collection or
	// scalar) are deeper than the keys and are not comments.
	for last < len(p.lines)-1 {
		line := p.lineText(last + 1)
		trimmed := strings.TrimLeft(line, " ")
		if trimmed == "" || strings.HasPrefix(trimmed, "#") || len(line)-len(trimmed) < len(indent)+1 {
			break
		}
		last++
	}
	at := len(p.data)
	if last < len(p.lines) {
		at = p.lines[last] // the start of the line after the last one
	}
	text := indent + pair + "\n"
	if at == len(p.data) && len(p.data) > 0 && p.data[len(p.data)-1] != '\n' {
		text = "\n" + text
	}
	p.add(at, at, text)
}

// lineText is line n (from 1) without its newline.
func (p *patcher) lineText(n int) string {
	start := p.lines[n-1]
	end := len(p.data)
	if n < len(p.lines) {
		end = p.lines[n] - 1
	}
	return strings.TrimRight(string(p.data[start:end]), "\r")
}

// lastLine is the last line any node under n starts on.
func lastLine(n *yaml.Node) int {
	last := n.Line
	for _, c := range n.Content {
		last = max(last, lastLine(c))
	}
	return last
}

func (p *patcher) bytes() []byte {
	edits := append([]edit(nil), p.edits...)
	// Stable: insertions at one offset keep the order they were made in.
	sort.SliceStable(edits, func(i, j int) bool { return edits[i].at < edits[j].at })
	var out bytes.Buffer
	prev := 0
	for _, e := range edits {
		if e.at < prev {
			continue // overlaps an edit already made: cannot happen for distinct keys
		}
		out.Write(p.data[prev:e.at])
		out.WriteString(e.text)
		prev = e.end
	}
	out.Write(p.data[prev:])
	return out.Bytes()
}
