package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/benchtop/benchtop/samples/models"
)

// runModels runs `benchtop models ARGS --store DIR` and returns its stdout.
func runModels(t *testing.T, dir string, args ...string) (string, error) {
	t.Helper()
	cmd := newModelsCmd()
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs(append(args, "--store", dir))
	err := cmd.Execute()
	if errOut.Len() > 0 && err == nil {
		t.Errorf("stderr while stdout is not a terminal: %q", errOut.String())
	}
	return out.String(), err
}

func TestModelsCommands(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "models")
	work := t.TempDir()
	src := filepath.Join(work, "MLP Small.onnx")
	if err := os.WriteFile(src, models.Small().ONNX, 0o644); err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(work, "mlp.tar.gz")
	notes := filepath.Join(work, "notes.txt")
	if err := os.WriteFile(notes, []byte("not a model"), 0o644); err != nil {
		t.Fatal(err)
	}
	fakeArchive := filepath.Join(work, "fake.tar.gz")
	if err := os.WriteFile(fakeArchive, []byte("not an archive"), 0o644); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name string
		args []string
		want []string // substrings of stdout
		err  string   // substring of the error; "" = success
	}{
		{"empty list", []string{"list"}, []string{"no models in", "benchtop models import"}, ""},
		{"import with a derived name", []string{"import", src}, []string{"imported mlp-small:", "run(x float32[-1 64]) → probs float32[-1 10], batch dim 0"}, ""},
		{"import v1", []string{"import", src, "--name", "mlp", "--version", "v1", "--label", "team=ml"}, []string{"imported mlp:v1", "now mlp:latest"}, ""},
		{"import v2 not batchable", []string{"import", src, "--name", "mlp", "--version", "v2", "--method", "predict", "--batchable=false"}, []string{"imported mlp:v2", "predict(x float32[-1 64])"}, ""},
		{"same version twice", []string{"import", src, "--name", "mlp", "--version", "v2"}, nil, "already exists"},
		{"bad label", []string{"import", src, "--name", "mlp", "--label", "novalue"}, nil, "want key=value"},
		{"not a model", []string{"import", notes, "--name", "notes"}, nil, "only ONNX models"},
		{"not gzip, though named .tar.gz", []string{"import", fakeArchive}, nil, "fake.tar.gz: not a gzip archive"},
		{"list", []string{"list"}, []string{"TAG", "mlp:v2", "mlp:v1", "mlp-small:", "*"}, ""},
		{"get", []string{"get", "mlp:v1", "--verify"}, []string{"name: mlp", "version: v1", "team: ml", "latest: false", "batchable: true", "# verified mlp:v1: the sha256 of 1 file (model.onnx) match model.yaml"}, ""},
		{"get hostile tag", []string{"get", "../etc"}, nil, "model name"},
		{"get missing", []string{"get", "nope"}, nil, "model not found"},
		{"export", []string{"export", "mlp:v1", archive}, []string{"exported mlp:v1 to " + archive}, ""},
		{"delete latest", []string{"delete", "mlp"}, []string{"deleted mlp:v2 (mlp:latest is mlp:v1)"}, ""},
		{"delete the rest", []string{"delete", "mlp:v1"}, []string{"deleted mlp:v1 (no version of mlp is left)"}, ""},
		{"import archive", []string{"import", archive}, []string{"imported mlp:v1", "now mlp:latest"}, ""},
		{"archive flags refused", []string{"import", archive, "--name", "x"}, nil, "drop --name"},
		{"samples", []string{"samples"}, []string{"mlp-small:", "mlp-large:", "x float32[-1 256]",
			"text-classifier:", "run(input_ids int64[-1 -1], attention_mask int64[-1 -1]) → label int64[-1], probabilities float32[-1 4], batch dim 0"}, ""},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			out, err := runModels(t, dir, st.args...)
			if st.err != "" {
				if err == nil || !strings.Contains(err.Error(), st.err) {
					t.Fatalf("got %v, want an error about %q", err, st.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range st.want {
				if !strings.Contains(out, w) {
					t.Fatalf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
	t.Run("list as json and yaml", func(t *testing.T) {
		out, err := runModels(t, dir, "list", "-o", "json")
		if err != nil {
			t.Fatal(err)
		}
		var views []map[string]any
		if err := json.Unmarshal([]byte(out), &views); err != nil || len(views) != 4 {
			t.Fatalf("json list: %v\n%s", err, out)
		}
		if views[0]["tag"] == nil || views[0]["path"] == nil || views[0]["signatures"] == nil {
			t.Fatalf("json fields: %v", views[0])
		}
		out, err = runModels(t, dir, "list", "-o", "yaml")
		if err != nil {
			t.Fatal(err)
		}
		if err := yaml.Unmarshal([]byte(out), &views); err != nil || len(views) != 4 {
			t.Fatalf("yaml list: %v\n%s", err, out)
		}
		if _, err := runModels(t, dir, "list", "-o", "xml"); err == nil {
			t.Fatal("an unknown format was accepted")
		}
	})
}

func TestDefaultName(t *testing.T) {
	cases := []struct{ path, want string }{
		{"mlp.onnx", "mlp"},
		{"/models/MLP Small.onnx", "mlp-small"},
		{"resnet50-v1.12.onnx", "resnet50-v1.12"},
		{"___.onnx", ""},
		{"../../.onnx", ""},
	}
	for _, c := range cases {
		t.Run(c.path, func(t *testing.T) {
			if got := defaultName(c.path); got != c.want {
				t.Fatalf("defaultName(%q) = %q, want %q", c.path, got, c.want)
			}
		})
	}
}

// TestProgressBarStaysOffPipes: piped or redirected, the commands draw no
// bar (what a bar draws is tested in package console).
func TestProgressBarStaysOffPipes(t *testing.T) {
	cmd := newModelsCmd()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	p := newProgressBar(cmd, "x")
	p.Update(1, 2)
	p.Update(2, 2)
	p.Done()
	if out.Len() != 0 {
		t.Fatalf("drew %q on a pipe", out.String())
	}
}
