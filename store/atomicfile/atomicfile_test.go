package atomicfile_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/benchtop/benchtop/store/atomicfile"
)

// entries lists dir, so a test sees every file a Write left, temp or not.
func entries(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestWriteFile(t *testing.T) {
	cases := []struct {
		name     string
		existing os.FileMode // 0: no file there yet
		want     os.FileMode
	}{
		{"new file", 0, atomicfile.DefaultMode},
		{"replaced file keeps its mode", 0o600, 0o600},
		{"replaced executable keeps its mode", 0o755, 0o755},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "config.yaml")
			if c.existing != 0 {
				if err := os.WriteFile(path, []byte("old"), c.existing); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(path, c.existing); err != nil {
					t.Fatal(err)
				}
			}
			if err := atomicfile.WriteFile(path, []byte("new")); err != nil {
				t.Fatal(err)
			}
			if got := read(t, path); got != "new" {
				t.Fatalf("content %q, want %q", got, "new")
			}
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != c.want {
				t.Fatalf("mode %v, want %v", fi.Mode().Perm(), c.want)
			}
			if got := entries(t, dir); !slices.Equal(got, []string{"config.yaml"}) {
				t.Fatalf("directory holds %v, want only the file", got)
			}
		})
	}
}

func TestWriteStreamsThroughATempFileBeside(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "model.tar.gz")
	chunk := bytes.Repeat([]byte("0123456789abcdef"), 4096) // 64 KiB
	var want bytes.Buffer
	err := atomicfile.Write(path, func(w io.Writer) error {
		for range 40 { // 2.5 MiB: more than the buffer
			if _, err := w.Write(chunk); err != nil {
				return err
			}
			want.Write(chunk)
		}
		// While it is written, the content is in one hidden temp file in
		// the same directory (so the rename stays on one file system), and
		// nothing is under the final name yet.
		left, err := atomicfile.Leftovers(path)
		if err != nil || len(left) != 1 || filepath.Dir(left[0]) != dir || filepath.Base(left[0])[0] != '.' {
			t.Errorf("temp files while writing: %v, %v; want one hidden file in %s", left, err, dir)
		}
		if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the final name exists before the rename: %v", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := read(t, path); got != want.String() {
		t.Fatalf("wrote %d bytes, want %d", len(got), want.Len())
	}
	if left, err := atomicfile.Leftovers(path); err != nil || len(left) != 0 {
		t.Fatalf("leftovers after success: %v, %v", left, err)
	}
}

func TestFailureLeavesTheOldFileAndNoTemp(t *testing.T) {
	errBoom := errors.New("boom")
	cases := []struct {
		name  string
		setup func(t *testing.T, path string) // what is at path before
		write func(path string) error
		is    error // the error Write must return, if it is known
	}{
		{
			name: "the writer fails half way",
			write: func(path string) error {
				return atomicfile.Write(path, func(w io.Writer) error {
					w.Write(bytes.Repeat([]byte("x"), 3<<20)) // past the buffer: bytes reach the temp file
					return errBoom
				})
			},
			is: errBoom,
		},
		{
			name: "the rename fails: a directory is in the way",
			setup: func(t *testing.T, path string) {
				if err := os.Mkdir(path, 0o755); err != nil {
					t.Fatal(err)
				}
			},
			write: func(path string) error { return atomicfile.WriteFile(path, []byte("new")) },
		},
		{
			name:  "the directory is missing",
			setup: func(t *testing.T, path string) {},
			write: func(path string) error {
				return atomicfile.WriteFile(filepath.Join(path+".d", "x"), []byte("new"))
			},
			is: os.ErrNotExist,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "latest")
			setup := c.setup
			if setup == nil {
				setup = func(t *testing.T, path string) {
					if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
						t.Fatal(err)
					}
				}
			}
			setup(t, path)
			before := entries(t, dir)
			err := c.write(path)
			if err == nil {
				t.Fatal("no error")
			}
			if c.is != nil && !errors.Is(err, c.is) {
				t.Fatalf("error %v, want %v", err, c.is)
			}
			if after := entries(t, dir); !slices.Equal(before, after) {
				t.Fatalf("directory went from %v to %v", before, after)
			}
			if fi, err := os.Stat(path); err == nil && !fi.IsDir() {
				if got := read(t, path); got != "old" {
					t.Fatalf("old file now holds %q", got)
				}
			}
		})
	}
}

func TestLeftovers(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"latest", ".latest-123", ".latest-abc", ".latest.tmp", ".other-1", "latest-1"} {
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	left, err := atomicfile.Leftovers(filepath.Join(dir, "latest"))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{filepath.Join(dir, ".latest-123"), filepath.Join(dir, ".latest-abc")}
	if !slices.Equal(left, want) {
		t.Fatalf("leftovers %v, want %v", left, want)
	}
}
