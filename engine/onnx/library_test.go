package onnx_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/benchtop/benchtop/engine/onnx"
)

// TestLocate: where the library is looked for, in order. Locate only looks
// at files, so an empty file stands in for the library.
func TestLocate(t *testing.T) {
	put := func(t *testing.T, dir string) string {
		p := filepath.Join(dir, onnx.CacheDir, "libonnxruntime.so.1")
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cases := []struct {
		name string
		// setup returns the working directory and the path Locate should find.
		setup func(t *testing.T) (wd, want string)
	}{
		{"working directory", func(t *testing.T) (string, string) {
			d := t.TempDir()
			return d, put(t, d)
		}},
		{"project root above a package folder", func(t *testing.T) (string, string) {
			root := t.TempDir()
			os.WriteFile(filepath.Join(root, "go.mod"), []byte("module x\n"), 0o644)
			pkg := filepath.Join(root, "engine", "onnx")
			os.MkdirAll(pkg, 0o755)
			return pkg, put(t, root)
		}},
		{"environment variable first", func(t *testing.T) (string, string) {
			d := t.TempDir()
			put(t, d)
			lib := filepath.Join(t.TempDir(), "custom.so")
			os.WriteFile(lib, nil, 0o644)
			t.Setenv(onnx.EnvLibrary, lib)
			return d, lib
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv(onnx.EnvLibrary, "")
			t.Setenv("LD_LIBRARY_PATH", "")
			wd, want := c.setup(t)
			t.Chdir(wd)
			if got := onnx.Locate().Path(); got != want {
				t.Fatalf("Locate() = %q, want %q", got, want)
			}
		})
	}
	t.Run("an ancestor without go.mod is not searched", func(t *testing.T) {
		t.Setenv(onnx.EnvLibrary, "")
		t.Setenv("LD_LIBRARY_PATH", "")
		outer := t.TempDir()
		planted := put(t, outer)
		inner := filepath.Join(outer, "a", "b")
		os.MkdirAll(inner, 0o755)
		t.Chdir(inner)
		if got := onnx.Locate().Path(); got == planted {
			t.Fatalf("Locate() loaded %s from above the working directory, outside any project", got)
		}
	})
	t.Run("the error says where it looked", func(t *testing.T) {
		t.Setenv(onnx.EnvLibrary, filepath.Join(t.TempDir(), "missing.so"))
		err := onnx.Locate().Load()
		if err == nil || !strings.Contains(err.Error(), "missing.so") || !strings.Contains(err.Error(), "scripts/install-onnxruntime.sh") {
			t.Fatalf("got %v", err)
		}
	})
}
