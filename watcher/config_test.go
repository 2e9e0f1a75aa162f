package watcher

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/benchtop/benchtop/batcher"
	"github.com/benchtop/benchtop/engine"
	"github.com/benchtop/benchtop/engine/enginetest"
	"github.com/benchtop/benchtop/engine/onnx"
	"github.com/benchtop/benchtop/engine/process"
	"github.com/benchtop/benchtop/samples"
	"github.com/benchtop/benchtop/samples/models"
	"github.com/benchtop/benchtop/store"
)

func registry(t testing.TB) *engine.Registry {
	t.Helper()
	reg := engine.NewRegistry()
	if err := samples.Register(reg); err != nil {
		t.Fatal(err)
	}
	return reg
}

func noEnv(string) string { return "" }

// checker is an engine that serves nothing, to check configs on.
func checker(t testing.TB, reg *engine.Registry) *engine.Engine {
	t.Helper()
	eng, err := engine.New(engine.Options{Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	return eng
}

func TestProblemsWithPositions(t *testing.T) {
	cases := []struct {
		name string
		yaml string
		want []string // each a full problem line
	}{
		{"unknown key with a suggestion", `
runners:
  - name: sim
    runnable: sim
    wokers: 2
`, []string{`c.yaml:4:5: runners[0].wokers: unknown key; did you mean "workers"? (valid here: batching, init, methods, model, name, process, remote, replicas, resources, runnable, timeout, workers, workers_per_resource)`}},
		{"wrong types, all reported", `
server: {port: web}
runners:
  - name: sim
    runnable: sim
    workers: two
    batching: {max_latency_ms: soon, policy: lifo}
`, []string{
			`c.yaml:1:16: server.port: want an integer, got "web"`,
			`c.yaml:5:14: runners[0].workers: want an integer, got "two"`,
			`c.yaml:6:32: runners[0].batching.max_latency_ms: want a number, got "soon"`,
			`c.yaml:6:46: runners[0].batching.policy: "lifo" is not a policy: want adaptive, fixed or none`,
		}},
		{"semantic problems", `
runners:
  - name: sim
    runnable: simm
  - name: sim
    runnable: sim
    init: {fixd_ms: 1}
    batching: {max_batch_size: 0}
    methods:
      forecast: {batching: {max_batch_size: 4}}
  - name: Bad_Name
    runnable: sentiment
    methods:
      is_positive: {batching: {max_batch_size: 4}}
apis:
  - {name: a, runner: sim, method: predict, input: text, output: ndarray}
  - {name: b, runner: nope, method: x, input: json, output: json}
  - {name: c, runner: sim, method: run, input: ndarray, output: csv}
`, []string{
			`c.yaml:3:15: runners[0].runnable: unknown runnable "simm" (registered: echo, sentiment, sim)`,
			`c.yaml:4:11: runners[1].name: "sim" is used by another runner`,
			`c.yaml:6:11: runners[1].init: init params: unknown field "fixd_ms"`,
			`c.yaml:7:32: runners[1].batching.max_batch_size: 0: want at least 1`,
			`c.yaml:9:7: runners[1].methods.forecast: runnable "sim" has no method "forecast" (methods: predict)`,
			`c.yaml:10:11: runners[2].name: "Bad_Name": use lower-case letters, digits and -._ (1 to 63 characters, starting and ending with a letter or digit)`,
			`c.yaml:13:7: runners[2].methods.is_positive: method "is_positive" is not batchable, so it has no batching to set`,
			`c.yaml:15:5: apis[0]: api "a": input text does not fit sim.predict, which takes tensor float32[-1 -1] (use ndarray)`,
			`c.yaml:16:23: apis[1].runner: "nope" is not a runner in this config (runners: Bad_Name, sim)`,
			`c.yaml:17:36: apis[2].method: runner "sim" has no method "run" (methods: predict)`,
			`c.yaml:17:65: apis[2].output: "csv": want json, text, ndarray or object`,
		}},
		{"workers out of range, an explicit 0 included", `
runners:
  - {name: a, runnable: sim, workers: 0}
  - {name: b, runnable: sim, workers: 257}
  - {name: c, runnable: sim, workers: -1}
  - {name: d, runnable: sim}
`, []string{
			`c.yaml:2:39: runners[0].workers: 0: want 1 to 256, or leave it out to size the pool from resources`,
			`c.yaml:3:39: runners[1].workers: 257: want 1 to 256, or leave it out to size the pool from resources`,
			`c.yaml:4:39: runners[2].workers: -1: want 1 to 256, or leave it out to size the pool from resources`,
		}},
		{"server bounds", `
server:
  body_timeout: 0s
  max_inflight_mb: 0
  allowed_hosts: [bench.lan, "http://bench.lan"]
  allowed_origins: [https://app.example, app.example, "http://localhost:8080/page"]
runners:
  - name: sim
    runnable: sim
`, []string{
			`c.yaml:2:17: server.body_timeout: 0s: want a duration above 0, such as 30s`,
			`c.yaml:3:20: server.max_inflight_mb: 0: want at least 1 (MiB)`,
			`c.yaml:4:30: server.allowed_hosts[1]: "http://bench.lan": want a host name or address, optionally with :port (bench.lan, bench.lan:3000, [fd00::1])`,
			`c.yaml:5:42: server.allowed_origins[1]: "app.example": want an origin, scheme://host[:port] (https://app.example, http://localhost:8080)`,
			`c.yaml:5:55: server.allowed_origins[2]: "http://localhost:8080/page": want an origin, scheme://host[:port] (https://app.example, http://localhost:8080)`,
		}},
		// Syntax errors at the line where the file goes wrong, counted from 1.
		{"syntax error at the end", "runners: [\n", []string{`c.yaml:2: did not find expected node content: a value is missing`}},
		{"an unclosed list", "server:\n  host: 127.0.0.1\n\nrunners:\n  - name: a\n    workers: [2\n    runnable: echo\n",
			[]string{`c.yaml:6: did not find expected ',' or ']': the [ list that starts on this line is not closed, or two of its items lack a comma between them`}},
		{"an unclosed mapping", "runners:\n  - {name: a, runnable: echo\n\napis: []\n",
			[]string{`c.yaml:2: did not find expected ',' or '}': the { mapping that starts on this line is not closed, or two of its entries lack a comma between them`}},
		{"a tab", "runners:\n\t- name: a\n", []string{`c.yaml:2: found character that cannot start any token`}},
		{"empty", "", []string{`c.yaml: config is empty: it needs at least runners:`}},
	}
	eng := checker(t, registry(t))
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseAndValidate(t.Context(), "c.yaml", []byte(strings.TrimPrefix(c.yaml, "\n")), eng, noEnv)
			if err == nil {
				t.Fatal("accepted")
			}
			got := strings.Split(err.Error(), "\n")
			if strings.Join(got, "\n") != strings.Join(c.want, "\n") {
				t.Fatalf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(c.want, "\n"))
			}
		})
	}
}

// TestEnginePathsToPositions: the engine reports a problem at its path in
// the config (runners[2]...), and the watcher finds that key in the file.
func TestEnginePathsToPositions(t *testing.T) {
	data := []byte(`runners:
  - {name: a, runnable: sim}
  - {name: b, runnable: sentiment}
  - name: c
    runnable: sim
    timeout: -1s
    workers_per_resource: -2
    init:
      fixd_ms: 1
apis:
  - {name: p, runner: c, method: predict, input: json, output: ndarray}
`)
	_, err := ParseAndValidate(t.Context(), "c.yaml", data, checker(t, registry(t)), noEnv)
	want := []string{
		`c.yaml:6:14: runners[2].timeout: -1s: want a positive duration, or leave it out for 1m0s`,
		`c.yaml:7:27: runners[2].workers_per_resource: -2: want a positive number, or leave it out for one worker per GPU`,
		`c.yaml:9:7: runners[2].init: init params: unknown field "fixd_ms"`,
		`c.yaml:11:5: apis[0]: api "p": input json does not fit c.predict, which takes tensor float32[-1 -1] (use ndarray)`,
	}
	if err == nil || err.Error() != strings.Join(want, "\n") {
		t.Fatalf("got:\n%v\nwant:\n%s", err, strings.Join(want, "\n"))
	}
}

// TestCheckChangesNothing: checking a config (resolving it included) leaves
// it as it was; what it resolves to is a value of its own.
func TestCheckChangesNothing(t *testing.T) {
	store := dirResolver{t.TempDir()}
	os.MkdirAll(filepath.Join(store.dir, "mlp"), 0o755)
	os.WriteFile(filepath.Join(store.dir, "mlp", "latest"), []byte("v3\n"), 0o644)
	data := []byte(`runners:
  - name: stored
    model: mlp:latest
    init: {per_row_ms: 0.5}
  - name: sim
    runnable: sim
    batching: {max_batch_size: 8}
    methods:
      predict: {batching: {policy: fixed}}
apis:
  - {name: p, runner: sim, method: predict, input: ndarray, output: ndarray}
`)
	parse := func() *Config {
		c, err := Parse("c.yaml", data)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	c := parse()
	eng := checker(t, registry(t))
	checked, err := c.Check(t.Context(), eng, WithModels(store))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c, parse()) {
		t.Fatalf("Check changed the config:\n%+v", c)
	}
	if len(eng.Runners()) != 0 {
		t.Fatal("Check started runners")
	}
	if checked.Hash == c.sum {
		t.Fatal("the hash does not cover the model resolved")
	}
	rcs := checked.Plan.Config().Runners
	if rcs[0].Runnable != "sim" || rcs[0].Params["fixed_ms"] != 3 || rcs[0].Params["per_row_ms"] != 0.5 {
		t.Fatalf("stored model resolved to %s %v", rcs[0].Runnable, rcs[0].Params)
	}
	if c.Runners[0].Init["fixed_ms"] != nil {
		t.Fatal("the store's params leaked into the file's init")
	}
}

func TestDefaultsAndOverrides(t *testing.T) {
	cfg, err := ParseAndValidate(t.Context(), "c.yaml", []byte(`
runners:
  - name: sim
    runnable: sim
    timeout: 2.5
    batching: {max_batch_size: 16, max_latency_ms: 30}
    methods:
      predict: {batching: {policy: fixed, batch_wait_ms: 1.5}}
`), checker(t, registry(t)), func(k string) string { return map[string]string{"BENCHTOP_PORT": "4000"}[k] })
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Server.Host != DefaultHost || cfg.Server.Port != 4000 || cfg.Server.BodyTimeout != 30*time.Second || cfg.Server.MaxInflightMB != 256 {
		t.Fatalf("server %+v: want default host and bounds, env port", cfg.Server)
	}
	rc := cfg.Plan.Config().Runners[0]
	want := batcher.Config{Policy: batcher.Fixed, MaxBatchSize: 16, MaxLatency: 30 * time.Millisecond, BatchWait: 1500 * time.Microsecond, MaxQueueSize: batcher.DefaultMaxQueueSize}
	if rc.Methods["predict"] != want {
		t.Fatalf("method batching %+v, want %+v (method over runner over defaults)", rc.Methods["predict"], want)
	}
	if rc.Timeout != 2500*time.Millisecond {
		t.Fatalf("timeout %v", rc.Timeout)
	}
	out := wantRoundTrip(t, cfg, checker(t, registry(t)))
	if !strings.Contains(string(out), "batch_wait_ms: 1.5") || !strings.Contains(string(out), "port: 4000") ||
		!strings.Contains(string(out), "body_timeout: 30s") || !strings.Contains(string(out), "max_inflight_mb: 256") {
		t.Fatalf("effective config:\n%s", out)
	}
}

// wantRoundTrip: the effective config of cfg is a config that checks and
// plans what cfg plans, whose own effective config is itself; it leaves out
// what the file leaves to be derived (workers: 0, cpu: 0). It returns it.
func wantRoundTrip(t *testing.T, cfg *Checked, eng *engine.Engine, opts ...Option) []byte {
	t.Helper()
	out, err := cfg.Effective()
	if err != nil {
		t.Fatal(err)
	}
	for _, unset := range []string{"workers: 0\n", "cpu: 0\n", "nvidia.com/gpu: 0\n", "runnable: process\n", "runnable: onnx\n"} {
		if strings.Contains(string(out), unset) {
			t.Errorf("effective config has %q:\n%s", unset, out)
		}
	}
	again, err := ParseAndValidate(t.Context(), "effective.yaml", out, eng, noEnv, opts...)
	if err != nil {
		t.Fatalf("the effective config does not check: %v\n%s", err, out)
	}
	if got, want := again.Plan.Config(), cfg.Plan.Config(); !reflect.DeepEqual(got, want) {
		t.Fatalf("the effective config plans\n%+v\nwant\n%+v\n%s", got, want, out)
	}
	if twice, err := again.Effective(); err != nil || string(twice) != string(out) {
		t.Fatalf("the effective config's own effective config differs (%v):\n%s\nwant\n%s", err, twice, out)
	}
	return out
}

func TestServerKeys(t *testing.T) {
	cfg, err := ParseAndValidate(t.Context(), "c.yaml", []byte(`
server:
  body_timeout: 2s
  max_inflight_mb: 8
  allowed_hosts: [bench.lan, "gpu-box:3000"]
  allowed_origins: [https://app.example]
runners:
  - {name: sim, runnable: sim}
`), checker(t, registry(t)), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	want := Server{Host: DefaultHost, Port: DefaultPort, BodyTimeout: 2 * time.Second, MaxInflightMB: 8,
		AllowedHosts: []string{"bench.lan", "gpu-box:3000"}, AllowedOrigins: []string{"https://app.example"}}
	if fmt.Sprint(cfg.Server) != fmt.Sprint(want) {
		t.Fatalf("server %+v, want %+v", cfg.Server, want)
	}
	out, err := cfg.Effective()
	if err != nil || !strings.Contains(string(out), "allowed_hosts:\n    - bench.lan\n    - gpu-box:3000\n") || !strings.Contains(string(out), "body_timeout: 2s") {
		t.Fatalf("effective config:\n%s\n%v", out, err)
	}
}

// TestShippedConfigsValidate: the embedded sample and every YAML block of
// the docs must be a valid config, so what users copy works.
func TestShippedConfigsValidate(t *testing.T) {
	reg := registry(t)
	// The sample config names the sample models: give it a store that has
	// them, as the first run does.
	s, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := models.EnsureSamples(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	withStore := WithModels(onnx.StoreResolver{Store: s})
	reg.Register(onnx.Type(onnx.NewLibrary("/nonexistent")))
	reg.Register(process.Type())
	// CONFIG.md's remote runner: engine/remote's runnable stands behind it.
	reg.Register(remoteType(t, registry(t)))
	eng := checker(t, reg)
	// The sample's worker command is relative to the repository root.
	t.Chdir("..")
	t.Run("embedded sample", func(t *testing.T) {
		// It runs a Python worker, which a check starts to read its methods.
		if _, err := exec.LookPath("python3"); err != nil {
			enginetest.Needs(t, "python3", "your system's package manager (apt-get install python3)", err)
		}
		cfg, err := ParseAndValidate(t.Context(), samples.ConfigName, samples.Config, eng, noEnv, withStore)
		if err != nil {
			t.Fatalf("embedded sample config: %v", err)
		}
		out := wantRoundTrip(t, cfg, eng, withStore)
		for _, want := range []string{"model: mlp-small:latest\n", "process:\n      command: [python3, samples/python/sentiment_worker.py]\n"} {
			if !strings.Contains(string(out), want) {
				t.Errorf("effective config lacks %q:\n%s", want, out)
			}
		}
	})
	block := regexp.MustCompile("(?s)```yaml\n(.*?)```")
	for _, doc := range []string{"../README.md", "../docs/CONFIG.md"} {
		data, err := os.ReadFile(strings.TrimPrefix(doc, "../"))
		if err != nil {
			t.Fatal(err)
		}
		for i, m := range block.FindAllSubmatch(data, -1) {
			if !strings.Contains(string(m[1]), "runners:") {
				continue // a fragment, not a whole config
			}
			name := filepath.Base(doc) + "#" + string(rune('1'+i))
			if _, err := ParseAndValidate(t.Context(), name, m[1], eng, noEnv, withStore); err != nil {
				t.Errorf("%s: %v", name, err)
			}
		}
	}
}
