package watcher

import (
	"bytes"
	"fmt"
	"os"
	"strconv"

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

// SaveTweak writes t into the config file at path, editing the YAML node
// tree so the user's comments, order and layout survive. The file is
// replaced atomically and durably (package atomicfile), so the watcher
// never reads half a file.
func SaveTweak(path string, t Tweak) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("save to config: %w", err)
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return fmt.Errorf("save to config %s: it no longer parses: %w", path, err)
	}
	if len(root.Content) == 0 {
		return fmt.Errorf("save to config %s: file is empty", path)
	}
	runner := findRunner(root.Content[0], t.Runner)
	if runner == nil {
		return fmt.Errorf("save to config %s: no runner named %q in the file", path, t.Runner)
	}
	if t.Workers > 0 {
		set(runner, "workers", strconv.Itoa(t.Workers), "!!int")
	}
	if t.Batching != nil {
		setBatching(runner, t.Method, t.Batching)
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&root); err != nil {
		return fmt.Errorf("save to config: %w", err)
	}
	if err := atomicfile.WriteFile(path, buf.Bytes()); err != nil {
		return fmt.Errorf("save to config: %w", err)
	}
	return nil
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

// setBatching writes c into the runner's batching, or into
// methods.<method>.batching where the file already overrides it;
// batch_wait_ms and max_queue_size only where they matter or are there.
func setBatching(runner *yaml.Node, method string, c *batcher.Config) {
	target := runner
	if method != "" {
		if ms := lookup(runner, "methods"); ms != nil {
			if m := lookup(ms, method); m != nil && lookup(m, "batching") != nil {
				target = m
			}
		}
	}
	b := lookup(target, "batching")
	if b == nil || b.Kind != yaml.MappingNode {
		b = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		setNode(target, "batching", b)
	}
	set(b, "policy", c.Policy.String(), "!!str")
	set(b, "max_batch_size", strconv.Itoa(c.MaxBatchSize), "!!int")
	set(b, "max_latency_ms", ms(c.MaxLatency.Seconds()*1000), "")
	if c.Policy == batcher.Fixed || lookup(b, "batch_wait_ms") != nil {
		set(b, "batch_wait_ms", ms(c.BatchWait.Seconds()*1000), "")
	}
	if lookup(b, "max_queue_size") != nil || c.MaxQueueSize != batcher.DefaultMaxQueueSize {
		set(b, "max_queue_size", strconv.Itoa(c.MaxQueueSize), "!!int")
	}
}

func ms(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

func lookup(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

func set(m *yaml.Node, key, value, tag string) {
	if n := lookup(m, key); n != nil && n.Kind == yaml.ScalarNode {
		n.Value, n.Tag = value, tag
		if tag == "" {
			n.Tag = "!!float"
			if _, err := strconv.Atoi(value); err == nil {
				n.Tag = "!!int"
			}
		}
		return
	}
	if tag == "" {
		tag = "!!float"
		if _, err := strconv.Atoi(value); err == nil {
			tag = "!!int"
		}
	}
	setNode(m, key, &yaml.Node{Kind: yaml.ScalarNode, Tag: tag, Value: value})
}

func setNode(m *yaml.Node, key string, v *yaml.Node) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			m.Content[i+1] = v
			return
		}
	}
	m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: key}, v)
}
