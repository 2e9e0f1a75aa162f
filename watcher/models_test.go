package watcher

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/benchtop/benchtop/engine"
)

// dirResolver is a model store in miniature: <dir>/<name>/latest holds the
// version, and a version "vN" runs the sim runnable with fixed_ms N. It
// stands in for the real store behind the ModelResolver interface.
type dirResolver struct{ dir string }

func (d dirResolver) ResolveModel(tag string) (string, engine.Params, error) {
	name, _, _ := strings.Cut(tag, ":")
	v, err := os.ReadFile(filepath.Join(d.dir, name, "latest"))
	if err != nil {
		return "", nil, fmt.Errorf("model %q is not in the store", tag)
	}
	var ms int
	if _, err := fmt.Sscanf(strings.TrimSpace(string(v)), "v%d", &ms); err != nil {
		return "", nil, err
	}
	return "sim", engine.Params{"fixed_ms": ms, "per_row_ms": 0}, nil
}

func (d dirResolver) WatchDirs() []string { return []string{d.dir} }

func TestRunnerKinds(t *testing.T) {
	store := dirResolver{t.TempDir()}
	os.MkdirAll(filepath.Join(store.dir, "mlp"), 0o755)
	os.WriteFile(filepath.Join(store.dir, "mlp", "latest"), []byte("v1\n"), 0o644)
	eng := checker(t, registry(t))
	cfg, err := Parse("c.yaml", []byte(`
runners:
  - name: stored
    model: mlp:latest
  - name: py
    process:
      command: [python3, worker.py]
      env: {MODEL: small}
      dir: /srv
    init: {threshold: 0.5}
`))
	if err != nil {
		t.Fatal(err)
	}
	// "process" is not registered in this test's registry: the process
	// runner is refused, the stored model resolves.
	if err := cfg.Validate(t.Context(), eng, WithModels(store)); err == nil || !strings.Contains(err.Error(), `unknown runnable "process"`) {
		t.Fatalf("got %v", err)
	}
	res, err := cfg.Resolve(store)
	if err != nil {
		t.Fatal(err)
	}
	rcs := res.Engine.Runners
	if rcs[0].Runnable != "sim" || rcs[0].Params["fixed_ms"] != 1 {
		t.Fatalf("model runner resolved to %s %v", rcs[0].Runnable, rcs[0].Params)
	}
	want := engine.Params{"command": []string{"python3", "worker.py"}, "env": map[string]any{"MODEL": "small"}, "dir": "/srv", "init": map[string]any{"threshold": 0.5}}
	if rcs[1].Runnable != "process" || fmt.Sprint(rcs[1].Params) != fmt.Sprint(want) {
		t.Fatalf("process runner: %s %v", rcs[1].Runnable, rcs[1].Params)
	}

	cases := []struct{ name, yaml, want string }{
		{"none", "runners:\n  - name: x\n", "say what it runs"},
		{"two", "runners:\n  - name: x\n    runnable: sim\n    model: mlp\n", "alternatives: keep one"},
		{"missing model", "runners:\n  - name: x\n    model: nope:latest\n", `model "nope:latest" is not in the store`},
		{"init.path on a model", "runners:\n  - name: x\n    model: mlp\n    init: {path: /etc/x}\n", "file comes from the store"},
		{"empty command", "runners:\n  - name: x\n    process: {command: []}\n", "process.command: required"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseAndValidate(t.Context(), "c.yaml", []byte(c.yaml), eng, noEnv, WithModels(store))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want %q", err, c.want)
			}
		})
	}
}

// TestNewModelVersionReloads: replacing `latest` in the store restarts the
// runners that use the model, with nothing in the config file changed.
func TestNewModelVersionReloads(t *testing.T) {
	store := dirResolver{t.TempDir()}
	os.MkdirAll(filepath.Join(store.dir, "mlp"), 0o755)
	os.WriteFile(filepath.Join(store.dir, "mlp", "latest"), []byte("v1\n"), 0o644)
	f := newFixtureWith(t, "runners:\n  - name: stored\n    model: mlp:latest\n    workers: 1\n", Options{Models: store})
	f.watch()
	f.watched.wait(t, filepath.Join(store.dir, "mlp"))

	fixed := func() any {
		r, err := f.eng.Runner("stored")
		if err != nil {
			return nil
		}
		return r.Config().Params["fixed_ms"]
	}
	if fixed() != 1 {
		t.Fatalf("fixed_ms %v, want 1", fixed())
	}
	// A new version: written beside, then renamed over latest (atomic).
	tmp := filepath.Join(store.dir, "mlp", ".latest.tmp")
	os.WriteFile(tmp, []byte("v2\n"), 0o644)
	os.Rename(tmp, filepath.Join(store.dir, "mlp", "latest"))
	f.waitFor("the runner on the new version", func() bool { return fixed() == 2 })
	// A model added later is watched too.
	os.MkdirAll(filepath.Join(store.dir, "other"), 0o755)
	f.watched.wait(t, filepath.Join(store.dir, "other"))
	os.WriteFile(filepath.Join(store.dir, "other", "latest"), []byte("v3\n"), 0o644)
	os.WriteFile(f.path, []byte("runners:\n  - name: stored\n    model: mlp:latest\n  - name: o\n    model: other\n"), 0o644)
	f.waitFor("the new model served", func() bool {
		r, err := f.eng.Runner("o")
		return err == nil && r.Config().Params["fixed_ms"] == 3
	})
}
