package watcher

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/benchtop/benchtop/batcher"
)

// saveAndRead copies orig to a file of its own, saves t into it and
// returns what the file holds then.
func saveAndRead(t *testing.T, orig string, tw Tweak) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "benchtop.yaml")
	if err := os.WriteFile(path, []byte(orig), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := SaveTweak(path, tw); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// replaceOnce is s with old, which must occur exactly once, replaced.
func replaceOnce(t *testing.T, s, old, new string) string {
	t.Helper()
	if n := strings.Count(s, old); n != 1 {
		t.Fatalf("%q occurs %d times in the file, want once", old, n)
	}
	return strings.Replace(s, old, new, 1)
}

func wantSameFile(t *testing.T, got, want string) {
	t.Helper()
	if got == want {
		return
	}
	gl, wl := strings.Split(got, "\n"), strings.Split(want, "\n")
	for i := 0; i < max(len(gl), len(wl)); i++ {
		var g, w string
		if i < len(gl) {
			g = gl[i]
		}
		if i < len(wl) {
			w = wl[i]
		}
		if g != w {
			t.Fatalf("saved file differs at line %d:\n got %q\nwant %q\nwhole file:\n%s", i+1, g, w, got)
		}
	}
	t.Fatalf("saved file differs (%d bytes, want %d)", len(got), len(want))
}

// batching is a tweak's batching: the defaults with the knobs given.
func batching(policy batcher.Policy, maxBatch int, maxLatency time.Duration) *batcher.Config {
	c := batcher.DefaultConfig()
	c.Policy, c.MaxBatchSize, c.MaxLatency = policy, maxBatch, maxLatency
	return &c
}

// TestSaveTweakSampleByteForByte saves tweaks into the repository's own
// sample config and compares the whole file: only the edited value moves,
// and the blank lines, comments and flow maps around it stay as written.
func TestSaveTweakSampleByteForByte(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "samples", "benchtop.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	orig := string(raw)
	cases := []struct {
		name string
		tw   Tweak
		old  string
		new  string
	}{{
		name: "one knob of a flow map, workers as they were",
		tw:   Tweak{Runner: "sim", Method: "predict", Workers: 1, Batching: batching(batcher.Adaptive, 32, 100*time.Millisecond)},
		old:  "batching: {policy: adaptive, max_batch_size: 64, max_latency_ms: 100}",
		new:  "batching: {policy: adaptive, max_batch_size: 32, max_latency_ms: 100}",
	}, {
		name: "adaptive never gains batch_wait_ms",
		tw: Tweak{Runner: "sim", Method: "predict", Batching: func() *batcher.Config {
			c := batching(batcher.Adaptive, 64, 80*time.Millisecond)
			c.BatchWait = 7 * time.Millisecond
			return c
		}()},
		old: "max_batch_size: 64, max_latency_ms: 100}",
		new: "max_batch_size: 64, max_latency_ms: 80}",
	}, {
		name: "fixed gains its wait, in the flow map",
		tw: Tweak{Runner: "sim", Method: "predict", Batching: func() *batcher.Config {
			c := batching(batcher.Fixed, 64, 100*time.Millisecond)
			c.BatchWait = 2500 * time.Microsecond
			return c
		}()},
		old: "batching: {policy: adaptive, max_batch_size: 64, max_latency_ms: 100}",
		new: "batching: {policy: fixed, max_batch_size: 64, max_latency_ms: 100, batch_wait_ms: 2.5}",
	}, {
		name: "a method's own batching, and workers",
		tw:   Tweak{Runner: "sentiment", Method: "scores", Workers: 4, Batching: batching(batcher.Adaptive, 128, 35*time.Millisecond)},
		old:  "    workers: 2\n    timeout: 10s\n    methods:\n      scores:\n        batching: {max_batch_size: 128, max_latency_ms: 20}",
		new:  "    workers: 4\n    timeout: 10s\n    methods:\n      scores:\n        batching: {max_batch_size: 128, max_latency_ms: 35}",
	}, {
		name: "a model runner",
		tw:   Tweak{Runner: "mlp", Method: "run", Batching: batching(batcher.Adaptive, 256, 20*time.Millisecond)},
		old:  "model: mlp-small:latest\n    resources: {cpu: 2}\n    batching: {max_batch_size: 128, max_latency_ms: 20}",
		new:  "model: mlp-small:latest\n    resources: {cpu: 2}\n    batching: {max_batch_size: 256, max_latency_ms: 20}",
	}, {
		name: "a runner without batching gains one line, before the blank line",
		tw:   Tweak{Runner: "sentiment-strict", Method: "scores", Workers: 1, Batching: batching(batcher.Adaptive, 16, batcher.DefaultMaxLatency)},
		old:  "    init: {threshold: 0.5}\n    workers: 1\n\n",
		new:  "    init: {threshold: 0.5}\n    workers: 1\n    batching: {max_batch_size: 16}\n\n",
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := saveAndRead(t, orig, tc.tw)
			wantSameFile(t, got, replaceOnce(t, orig, tc.old, tc.new))
		})
	}
}

// TestSaveTweakHandWrittenByteForByte: block maps, end-of-line comments
// with their own spacing, blank lines, quoted values, a runner written as
// one flow map, and a file without a final newline.
func TestSaveTweakHandWrittenByteForByte(t *testing.T) {
	orig := `# tuned by hand

runners:
  - name: a            # the first
    runnable: sim


    workers: 2      # two is plenty
    batching:
      policy: "adaptive"    # quoted on purpose
      max_batch_size: 8   # small

      max_latency_ms: 50

  - {name: b, runnable: echo}

  - name: c
    runnable: sentiment
    methods:
      scores:
        batching:
          max_batch_size: 16 # per-method
    batching:
      max_batch_size: 4
apis: []`

	t.Run("block map: one value in place, one key added under the last", func(t *testing.T) {
		c := batching(batcher.Adaptive, 12, 50*time.Millisecond)
		c.MaxQueueSize = 99
		got := saveAndRead(t, orig, Tweak{Runner: "a", Workers: 3, Batching: c})
		want := replaceOnce(t, orig, "workers: 2      # two", "workers: 3      # two")
		want = replaceOnce(t, want, "max_batch_size: 8   # small", "max_batch_size: 12   # small")
		want = replaceOnce(t, want, "      max_latency_ms: 50\n", "      max_latency_ms: 50\n      max_queue_size: 99\n")
		wantSameFile(t, got, want)
	})
	t.Run("quoted value replaced, fixed gains its wait", func(t *testing.T) {
		c := batching(batcher.Fixed, 8, 50*time.Millisecond)
		c.BatchWait = 3 * time.Millisecond
		got := saveAndRead(t, orig, Tweak{Runner: "a", Batching: c})
		want := replaceOnce(t, orig, `policy: "adaptive"    # quoted`, `policy: fixed    # quoted`)
		want = replaceOnce(t, want, "      max_latency_ms: 50\n", "      max_latency_ms: 50\n      batch_wait_ms: 3\n")
		wantSameFile(t, got, want)
	})
	t.Run("a runner as one flow map", func(t *testing.T) {
		got := saveAndRead(t, orig, Tweak{Runner: "b", Workers: 2, Batching: batching(batcher.None, batcher.DefaultMaxBatchSize, batcher.DefaultMaxLatency)})
		wantSameFile(t, got, replaceOnce(t, orig, "{name: b, runnable: echo}", "{name: b, runnable: echo, workers: 2, batching: {policy: none}}"))
	})
	t.Run("a method's block batching, the last runner of a file without a final newline", func(t *testing.T) {
		got := saveAndRead(t, orig, Tweak{Runner: "c", Method: "scores", Batching: batching(batcher.Adaptive, 32, 10*time.Millisecond)})
		want := replaceOnce(t, orig, "max_batch_size: 16 # per-method\n", "max_batch_size: 32 # per-method\n          max_latency_ms: 10\n")
		wantSameFile(t, got, want)

		got = saveAndRead(t, orig, Tweak{Runner: "c", Method: "is_positive", Batching: batching(batcher.Adaptive, 4, 10*time.Millisecond)})
		want = replaceOnce(t, orig, "      max_batch_size: 4\napis", "      max_batch_size: 4\n      max_latency_ms: 10\napis")
		wantSameFile(t, got, want)
	})
	t.Run("nothing changed: the file is not rewritten", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "b.yaml")
		if err := os.WriteFile(path, []byte(orig), 0o644); err != nil {
			t.Fatal(err)
		}
		before, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := SaveTweak(path, Tweak{Runner: "a", Workers: 2, Batching: batching(batcher.Adaptive, 8, 50*time.Millisecond)}); err != nil {
			t.Fatal(err)
		}
		after, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if !os.SameFile(before, after) {
			t.Fatal("a tweak that changes nothing replaced the file")
		}
	})
}

// The end of each kind of scalar, as a save finds it to replace it.
func TestScalarEnds(t *testing.T) {
	for _, tc := range []struct {
		src  string
		q    byte // 0: plain
		want string
	}{
		{`"ad\"apt" # c`, '"', `"ad\"apt"`},
		{`'it''s' # c`, '\'', `'it''s'`},
		{`'unclosed`, '\'', ``},
		{`adaptive   # c`, 0, `adaptive`},
		{`8, b: 2}`, 0, `8`},
		{`a#b # c`, 0, `a#b`},
	} {
		var got string
		if tc.q == 0 {
			got = tc.src[:plainEnd([]byte(tc.src), 0)]
		} else if end, ok := quotedEnd([]byte(tc.src), 0, tc.q); ok {
			got = tc.src[:end]
		}
		if got != tc.want {
			t.Errorf("%s: end at %q, want %q", tc.src, got, tc.want)
		}
	}
}
