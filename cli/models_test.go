package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/benchtop/benchtop/engine"
	"github.com/benchtop/benchtop/engine/enginetest"
	"github.com/benchtop/benchtop/engine/onnx"
	"github.com/benchtop/benchtop/engine/tensor"
	"github.com/benchtop/benchtop/samples/models"
	"github.com/benchtop/benchtop/store"
	"github.com/benchtop/benchtop/store/onnxpb"
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
	truncated := filepath.Join(work, "cut.onnx")
	if err := os.WriteFile(truncated, models.Small().ONNX[:1000], 0o644); err != nil {
		t.Fatal(err)
	}
	fixed := filepath.Join(work, "fixed.onnx")
	if err := os.WriteFile(fixed, reluFixedBatch(), 0o644); err != nil {
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
		{"not a model", []string{"import", notes, "--name", "notes"}, nil, "import " + notes + `: it is text (it begins "not a model"), not an ONNX model`},
		{"a model cut short", []string{"import", truncated}, nil, "import " + truncated + ": it ends in the middle of the model"},
		{"a fixed batch dim", []string{"import", fixed}, []string{"imported fixed:", "run(x float32[1 4]) → y float32[1 4], not batchable",
			`note: input "x" fixes dim 0 at 1: the model runs one request at a time (not batchable); to batch callers' rows, re-export it with a dynamic batch axis`}, ""},
		{"a fixed batch dim, --batchable", []string{"import", fixed, "--batchable"}, nil, `input "x" fixes dim 0 at 1, so rows from several callers cannot be batched along it: re-export the model with a dynamic batch axis or import with --batchable=false`},
		{"a fixed batch dim, --batch-dim", []string{"import", fixed, "--batch-dim", "1"}, nil, `input "x" fixes dim 1 at 4`},
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
		if err := json.Unmarshal([]byte(out), &views); err != nil || len(views) != 5 {
			t.Fatalf("json list: %v\n%s", err, out)
		}
		if views[0]["tag"] == nil || views[0]["path"] == nil || views[0]["signatures"] == nil {
			t.Fatalf("json fields: %v", views[0])
		}
		out, err = runModels(t, dir, "list", "-o", "yaml")
		if err != nil {
			t.Fatal(err)
		}
		if err := yaml.Unmarshal([]byte(out), &views); err != nil || len(views) != 5 {
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

// reluFixedBatch is an ONNX model exported with a fixed batch size, as
// many are: y = relu(x), both [1, 4].
func reluFixedBatch() []byte {
	one := []onnxpb.Dim{onnxpb.FixedDim(1), onnxpb.FixedDim(4)}
	return (&onnxpb.Model{IRVersion: 8, OpsetImports: []onnxpb.OpsetID{{Version: 13}}, ProducerName: "benchtop cli test", Graph: onnxpb.Graph{
		Name:    "relu",
		Nodes:   []onnxpb.Node{{Name: "relu", OpType: "Relu", Inputs: []string{"x"}, Outputs: []string{"y"}}},
		Inputs:  []onnxpb.ValueInfo{onnxpb.TensorInfo("x", onnxpb.Float, one...)},
		Outputs: []onnxpb.ValueInfo{onnxpb.TensorInfo("y", onnxpb.Float, one...)},
	}}).Marshal()
}

// TestFixedBatchModelServes: a model with a fixed batch dim, imported by
// `benchtop models import`, is served by an onnx runner in ONNX Runtime one
// request at a time: concurrent callers each get their own answer, and a
// request of two rows is refused saying what the model takes.
func TestFixedBatchModelServes(t *testing.T) {
	lib := onnx.Locate()
	if err := lib.Load(); err != nil {
		enginetest.Needs(t, "ONNX Runtime", "make onnxruntime (scripts/install-onnxruntime.sh)", err)
	}
	dir := filepath.Join(t.TempDir(), "models")
	src := filepath.Join(t.TempDir(), "relu.onnx")
	if err := os.WriteFile(src, reluFixedBatch(), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := runModels(t, dir, "import", src, "--name", "relu"); err != nil {
		t.Fatal(err)
	}
	s, err := store.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	// The path a config's `model: relu:latest` takes.
	runnable, params, err := onnx.StoreResolver{Store: s}.ResolveModel("relu:latest")
	if err != nil {
		t.Fatal(err)
	}
	e := enginetest.New(t, enginetest.Options{}, onnx.Type(lib))
	r := enginetest.Start(t, e, engine.RunnerConfig{Name: "relu", Runnable: runnable, Params: params, Workers: 2})
	spec, _ := r.Method("run")
	if spec.Batchable {
		t.Fatalf("the runner batches a model that fixes its batch dim: %+v", spec)
	}
	const callers = 16
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for i := range callers {
		wg.Go(func() {
			k := float32(i)
			x, err := tensor.NewTensor([]int{1, 4}, []float32{-k, k, k - 8, 0.5})
			if err != nil {
				errs <- err
				return
			}
			out, err := r.Run(t.Context(), "run", tensor.TensorValue(x))
			if err != nil {
				errs <- fmt.Errorf("caller %d: %w", i, err)
				return
			}
			got := out.Tensor().Float32s()
			if want := []float32{0, k, max(k-8, 0), 0.5}; !slices.Equal(got, want) {
				errs <- fmt.Errorf("caller %d got %v, want %v", i, got, want)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	two, err := tensor.NewTensor([]int{2, 4}, make([]float32, 8))
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.Run(t.Context(), "run", tensor.TensorValue(two))
	if !errors.Is(err, engine.ErrInvalidInput) || !strings.Contains(err.Error(), `"x": shape [2 4]: dim 0 is 2, want 1`) {
		t.Fatalf("two rows: %v, want an invalid input that says the model takes one", err)
	}
}
