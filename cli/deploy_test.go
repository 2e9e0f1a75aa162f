package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDeployKubernetes runs the command as a user does: the manifests go to
// stdout, or one file each to --out; a config that fails its check is
// refused, saying where.
func TestDeployKubernetes(t *testing.T) {
	path := writeConfig(t, metricsConfig)
	run := func(args ...string) (string, error) {
		var out bytes.Buffer
		root := newRootCmd("test")
		root.SetArgs(args)
		root.SetOut(&out)
		root.SetErr(&out)
		err := root.ExecuteContext(t.Context())
		return out.String(), err
	}
	out, err := run("deploy", "kubernetes", "--config", path, "--image", "registry.example/benchtop:1", "--namespace", "ml")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"kind: ConfigMap", "name: sim\n  namespace: ml", "- --runners\n        - sentiment", "dns:///sim.ml.svc.cluster.local:3001"} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout lacks %q", want)
		}
	}

	dir := filepath.Join(t.TempDir(), "manifests")
	if _, err := run("deploy", "kubernetes", "-c", path, "--image", "i", "--out", dir); err != nil {
		t.Fatal(err)
	}
	files, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != strings.Count(out, "\n---\n")+1 {
		t.Errorf("--out wrote %d files for %d documents", len(files), strings.Count(out, "\n---\n")+1)
	}

	bad := writeConfig(t, "runners:\n  - name: sim\n    runnable: simm\n")
	if _, err := run("deploy", "kubernetes", "-c", bad, "--image", "i"); err == nil || !strings.Contains(err.Error(), `unknown runnable "simm"`) {
		t.Errorf("a broken config: %v", err)
	}
}
