// Package atomicfile replaces files whole and durably. Write puts the new
// content in a temp file beside the old one, syncs it, renames it over the
// old one and syncs the directory: after a crash or a power cut a reader
// finds the old file or the new one, never a part of either, and once
// Write returns nil the new one stays. On a failure before the rename the
// old file is untouched and the temp file is removed.
//
// It is the one way benchtop replaces a file: the model store's latest
// pointers and manifests, the config the workbench saves, and the archives
// `benchtop models export` writes.
package atomicfile

import (
	"bufio"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// DefaultMode is the mode of a file Write creates; a file it replaces keeps
// its own.
const DefaultMode os.FileMode = 0o644

// bufferSize suits archives of hundreds of MiB as well as small files.
const bufferSize = 1 << 20

// WriteFile replaces path with data.
func WriteFile(path string, data []byte) error {
	return replace(path, func(f *os.File) error {
		_, err := f.Write(data)
		return err
	})
}

// Write replaces path with what write writes, through a buffer. An error
// from write is returned as it is, and nothing is replaced.
func Write(path string, write func(io.Writer) error) error {
	return replace(path, func(f *os.File) error {
		bw := bufio.NewWriterSize(f, bufferSize)
		if err := write(bw); err != nil {
			return err
		}
		return bw.Flush()
	})
}

// replace is the one sequence: temp file in the same directory, filled,
// synced, renamed over path, directory synced.
func replace(path string, fill func(*os.File) error) error {
	mode := DefaultMode
	if fi, err := os.Stat(path); err == nil {
		mode = fi.Mode().Perm()
	}
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, tempPrefix(path)+"*")
	if err != nil {
		return err
	}
	if err := complete(f, mode, fill); err != nil {
		f.Close()
		os.Remove(f.Name())
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		os.Remove(f.Name())
		return err
	}
	return SyncDir(dir)
}

// complete fills f, gives it its mode, syncs and closes it.
func complete(f *os.File, mode os.FileMode, fill func(*os.File) error) error {
	if err := fill(f); err != nil {
		return err
	}
	if err := f.Chmod(mode); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	return f.Close()
}

// SyncDir makes the entries of dir durable: a rename into it, a file
// created or removed in it.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Leftovers are the temp files that Writes of path interrupted by a crash
// left beside it. Remove them only while no Write of path can be running.
func Leftovers(path string) ([]string, error) {
	dir := filepath.Dir(path)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if !e.IsDir() && strings.HasPrefix(e.Name(), tempPrefix(path)) {
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	return out, nil
}

// tempPrefix names the temp files of path: hidden, and named after it.
func tempPrefix(path string) string { return "." + filepath.Base(path) + "-" }
