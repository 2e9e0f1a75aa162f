package store

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/benchtop/benchtop/store/onnxpb"
)

// relu is a one-node model; the samples package imports store, so an
// internal test cannot use it.
var relu = (&onnxpb.Model{IRVersion: 8, OpsetImports: []onnxpb.OpsetID{{Version: 13}}, Graph: onnxpb.Graph{
	Nodes:   []onnxpb.Node{{OpType: "Relu", Inputs: []string{"x"}, Outputs: []string{"y"}}},
	Inputs:  []onnxpb.ValueInfo{onnxpb.TensorInfo("x", onnxpb.Float, onnxpb.SymbolicDim("N"), onnxpb.FixedDim(4))},
	Outputs: []onnxpb.ValueInfo{onnxpb.TensorInfo("y", onnxpb.Float, onnxpb.SymbolicDim("N"), onnxpb.FixedDim(4))},
}}).Marshal()

// A crash mid-import leaves a scratch dir (with or without a finished
// model.yaml) whose lock no process holds: List never shows it and the next
// Open removes it; a live import's scratch dir, whose lock is held, stays.
func TestCrashLeftoversAreInvisibleAndCleaned(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "models")
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.ImportData(context.Background(), relu, ImportOptions{Name: "mlp", Version: "v1"}); err != nil {
		t.Fatal(err)
	}
	v1, err := s.Get("mlp:v1")
	if err != nil {
		t.Fatal(err)
	}
	manifest, _ := os.ReadFile(filepath.Join(v1.Dir, ManifestFile))

	crashed := []struct {
		name     string
		lockFile bool
		files    map[string][]byte
	}{
		{"import-crashed-mid-copy", true, map[string][]byte{modelFile: relu[:10]}},
		{"import-crashed-before-rename", true, map[string][]byte{modelFile: relu, ManifestFile: manifest}},
		{"delete-crashed-mid-remove", false, map[string][]byte{"v0/" + ManifestFile: manifest}},
	}
	for _, c := range crashed {
		d := filepath.Join(s.tmp(), c.name)
		for f, body := range c.files {
			os.MkdirAll(filepath.Dir(filepath.Join(d, f)), 0o755)
			if err := os.WriteFile(filepath.Join(d, f), body, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if c.lockFile {
			os.WriteFile(d+".lock", nil, 0o644) // its process died: nobody holds it
		}
	}
	live, err := s.newScratch("import")
	if err != nil {
		t.Fatal(err)
	}
	defer live.release()

	all, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 1 || all[0].Version != "v1" {
		t.Fatalf("List shows %d models: %+v", len(all), all)
	}
	if _, err := Open(dir); err != nil {
		t.Fatal(err)
	}
	left, _ := os.ReadDir(s.tmp())
	var names []string
	for _, e := range left {
		names = append(names, e.Name())
	}
	want := []string{filepath.Base(live.dir), filepath.Base(live.dir) + ".lock"}
	if len(names) != 2 || names[0] != want[0] || names[1] != want[1] {
		t.Fatalf("after Open, .tmp holds %v; want only the live import's %v", names, want)
	}
}
