package watcher

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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
}

// TestModelAddedLaterIsWatched: a model's folder created in the store after
// the watch began is watched itself, so that its first version is served
// with nothing else changed. The config names the model from the start
// and is never written again; what the store's own folder sees (the new
// folder) reloads too early to find a version, so only the watch on the
// new folder can bring the model in.
func TestModelAddedLaterIsWatched(t *testing.T) {
	store := dirResolver{t.TempDir()}
	os.MkdirAll(filepath.Join(store.dir, "mlp"), 0o755)
	os.WriteFile(filepath.Join(store.dir, "mlp", "latest"), []byte("v1\n"), 0o644)
	f := newUnloadedFixture(t, "runners:\n  - name: stored\n    model: mlp:latest\n    workers: 1\n  - name: o\n    model: other\n    workers: 1\n", Options{Models: store})
	notThere := `model "other" is not in the store`
	if err := f.rl.Reload(t.Context()); err == nil || !strings.Contains(err.Error(), notThere) {
		t.Fatalf("the first load: %v, want it refused until %s", err, notThere)
	}
	<-f.reloads // the first load's status
	f.watch()
	f.watched.wait(t, store.dir)

	// The model's folder appears: the store's folder sees it, starts to
	// watch it and reloads, refused still — it holds no version.
	other := filepath.Join(store.dir, "other")
	if err := os.MkdirAll(other, 0o755); err != nil {
		t.Fatal(err)
	}
	f.watched.wait(t, other)
	select {
	case st := <-f.reloads:
		if st.OK || !strings.Contains(st.Err, notThere) {
			t.Fatalf("the reload for the new folder: %+v, want it refused: %s", st, notThere)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no reload after a model folder appeared in the store")
	}
	if _, err := f.eng.Runner("o"); err == nil {
		t.Fatal("a model with no version is served")
	}

	// Its first version, written inside the new folder: only the watch on
	// that folder sees it.
	tmp := filepath.Join(other, ".latest.tmp")
	os.WriteFile(tmp, []byte("v3\n"), 0o644)
	if err := os.Rename(tmp, filepath.Join(other, "latest")); err != nil {
		t.Fatal(err)
	}
	f.waitFor("the new model served", func() bool {
		r, err := f.eng.Runner("o")
		return err == nil && r.Config().Params["fixed_ms"] == 3
	})
}

// TestModelFolderMadeAgainIsWatched: a model's folder removed and made
// again under the same name is watched again, so its next version reloads.
func TestModelFolderMadeAgainIsWatched(t *testing.T) {
	store := dirResolver{t.TempDir()}
	other := filepath.Join(store.dir, "other")
	os.MkdirAll(other, 0o755)
	os.WriteFile(filepath.Join(other, "latest"), []byte("v3\n"), 0o644)
	f := newUnloadedFixture(t, "runners:\n  - name: o\n    model: other\n    workers: 1\n", Options{Models: store})
	if err := f.rl.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	<-f.reloads // the first load's status
	f.watch()
	f.watched.wait(t, other)

	if err := os.RemoveAll(other); err != nil {
		t.Fatal(err)
	}
	select {
	case st := <-f.reloads:
		if st.OK {
			t.Fatalf("the reload after the model's folder went: %+v, want it refused", st)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no reload after a model folder was removed")
	}
	f.watched.forget(other)
	if err := os.MkdirAll(other, 0o755); err != nil {
		t.Fatal(err)
	}
	f.watched.wait(t, other)
	tmp := filepath.Join(other, ".latest.tmp")
	os.WriteFile(tmp, []byte("v5\n"), 0o644)
	if err := os.Rename(tmp, filepath.Join(other, "latest")); err != nil {
		t.Fatal(err)
	}
	f.waitFor("the new version served", func() bool {
		r, err := f.eng.Runner("o")
		return err == nil && r.Config().Params["fixed_ms"] == 5
	})
}
