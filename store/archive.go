package store

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/benchtop/benchtop/store/atomicfile"
)

// An archive is a tar.gz of one version: name/version/model.yaml first, then
// the files it lists, each checked against its sha256 on import.

// maxManifest bounds model.yaml, which is read into memory.
const maxManifest = 1 << 20

// maxEntries bounds how many files an archive may hold.
const maxEntries = 64

// Export writes the model tag names as a tar.gz to w. The files are
// checked against their checksums as they are read, so a damaged store
// never produces an archive that looks good.
func (s *Store) Export(ctx context.Context, tag string, w io.Writer, progress Progress) (*Model, error) {
	m, err := s.Get(tag)
	if err != nil {
		return nil, err
	}
	if err := s.export(ctx, m, w, progress); err != nil {
		return nil, fmt.Errorf("export %s: %w", m.Tag(), err)
	}
	return m, nil
}

func (s *Store) export(ctx context.Context, m *Model, w io.Writer, progress Progress) error {
	manifest, err := os.ReadFile(filepath.Join(m.Dir, ManifestFile))
	if err != nil {
		return err
	}
	zw := gzip.NewWriter(w)
	tw := tar.NewWriter(zw)
	prefix := m.Name + "/" + m.Version + "/"
	hdr := func(name string, size int64) *tar.Header {
		return &tar.Header{Name: prefix + name, Mode: 0o644, Size: size, ModTime: m.Created, Typeflag: tar.TypeReg, Format: tar.FormatPAX}
	}
	if err := tw.WriteHeader(hdr(ManifestFile, int64(len(manifest)))); err != nil {
		return err
	}
	if _, err := tw.Write(manifest); err != nil {
		return err
	}
	var done int64
	files := slices.Sorted(func(yield func(string) bool) {
		for f := range m.SHA256 {
			if !yield(f) {
				return
			}
		}
	})
	for _, name := range files {
		if err := exportFile(ctx, tw, hdr, m, name, &done, progress); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return zw.Close()
}

func exportFile(ctx context.Context, tw *tar.Writer, hdr func(string, int64) *tar.Header, m *Model, name string, done *int64, progress Progress) error {
	f, err := os.Open(filepath.Join(m.Dir, name))
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if err := tw.WriteHeader(hdr(name, st.Size())); err != nil {
		return err
	}
	h := sha256.New()
	base := *done
	n, err := copyCtx(ctx, io.MultiWriter(tw, h), f, m.Size, func(d, total int64) {
		if progress != nil {
			progress(base+d, total)
		}
	})
	*done += n
	if err != nil {
		return err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != m.SHA256[name] {
		return fmt.Errorf("%s has sha256 %s, model.yaml says %s: the stored file was changed or damaged", name, got, m.SHA256[name])
	}
	return nil
}

// ArchiveOptions say how to import an archive.
type ArchiveOptions struct {
	// Size is the archive's size in bytes, for progress; 0 if unknown.
	Size     int64
	Progress Progress
}

// ImportArchive adds the version in a tar.gz made by Export. Every file must
// match the checksum in its model.yaml and sit under name/version/; links,
// absolute paths, "..", unexpected or missing files refuse the archive
// before anything is visible in the store. model.yaml comes first, and a
// file it does not list or whose size does not fit the size it declares is
// refused before any of it is written. An existing version is never
// replaced (ErrExists). latest moves to it only if it is the newest.
func (s *Store) ImportArchive(ctx context.Context, r io.Reader, opts ArchiveOptions) (*Model, error) {
	m, err := s.importArchive(ctx, r, opts)
	if err != nil {
		return nil, fmt.Errorf("import archive: %w", err)
	}
	return m, nil
}

type countingReader struct {
	r        io.Reader
	n, total int64
	progress Progress
}

func (c *countingReader) Read(p []byte) (int, error) {
	k, err := c.r.Read(p)
	c.n += int64(k)
	if c.progress != nil && k > 0 {
		c.progress(c.n, c.total)
	}
	return k, err
}

func (s *Store) importArchive(ctx context.Context, r io.Reader, opts ArchiveOptions) (*Model, error) {
	total := opts.Size
	if total <= 0 {
		total = -1
	}
	zr, err := gzip.NewReader(&countingReader{r: r, total: total, progress: opts.Progress})
	if err != nil {
		return nil, fmt.Errorf("not a tar.gz made by benchtop models export: %w", err)
	}
	defer zr.Close()
	tr := tar.NewReader(zr)
	sc, err := s.newScratch("archive")
	if err != nil {
		return nil, err
	}
	defer sc.release()

	var name, version string
	var manifest []byte
	var m *Model // from model.yaml, which comes first
	sums := map[string]string{}
	var written int64 // bytes of the files extracted so far
	for entries := 0; ; entries++ {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read archive: %w", err)
		}
		if entries >= maxEntries {
			return nil, fmt.Errorf("more than %d entries: not an archive of one model", maxEntries)
		}
		n, v, file, err := entryPath(h)
		if err != nil {
			return nil, err
		}
		if file == "" {
			continue // a directory entry
		}
		if name == "" {
			name, version = n, v
		} else if n != name || v != version {
			return nil, fmt.Errorf("entry %q is not under %s/%s/: an archive holds one model version", h.Name, name, version)
		}
		if _, dup := sums[file]; dup || (file == ManifestFile && manifest != nil) {
			return nil, fmt.Errorf("entry %q appears twice", h.Name)
		}
		if file == ManifestFile {
			if h.Size > maxManifest {
				return nil, fmt.Errorf("%s is %d bytes: more than %d is not a benchtop manifest", h.Name, h.Size, maxManifest)
			}
			if manifest, err = io.ReadAll(io.LimitReader(tr, maxManifest)); err != nil {
				return nil, fmt.Errorf("read %s: %w", h.Name, err)
			}
			if m, err = archiveManifest(manifest, name, version); err != nil {
				return nil, err
			}
			continue
		}
		if m == nil {
			return nil, fmt.Errorf("entry %q comes before %s: an archive starts with its %s, which says what the files that follow are; export the model again with benchtop models export, or rebuild the tar with %s first", h.Name, ManifestFile, ManifestFile, ManifestFile)
		}
		// Everything about the file is checked against model.yaml before a
		// byte of it is written: a small archive must not fill the disk.
		if err := checkDeclared(m, file, h.Size, written, len(sums)); err != nil {
			return nil, err
		}
		sum, size, err := copyFile(ctx, filepath.Join(sc.dir, file), io.LimitReader(tr, h.Size), h.Size, nil)
		if err != nil {
			return nil, fmt.Errorf("extract %s: %w", h.Name, err)
		}
		if size != h.Size {
			return nil, fmt.Errorf("extract %s: the archive ends after %d of its %d bytes: it is truncated", h.Name, size, h.Size)
		}
		sums[file] = sum
		written += size
	}
	if m == nil {
		return nil, errors.New("no model.yaml: not an archive made by benchtop models export")
	}
	if err := checkSums(m, sums); err != nil {
		return nil, err
	}
	if written != m.Size {
		return nil, fmt.Errorf("%s says the files are %d bytes, but they are %d", ManifestFile, m.Size, written)
	}
	for method, sig := range m.Signatures {
		got, _, err := describeONNX(filepath.Join(sc.dir, m.File), SignatureOptions{Method: method, Batchable: sig.Batchable, BatchDim: sig.BatchDim})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", m.File, err)
		}
		if !sameSpecs(got.Inputs, sig.Inputs) || !sameSpecs(got.Outputs, sig.Outputs) {
			return nil, fmt.Errorf("%s does not describe %s: its inputs or outputs differ from the model's", ManifestFile, m.File)
		}
	}
	if err := atomicfile.WriteFile(filepath.Join(sc.dir, ManifestFile), manifest); err != nil {
		return nil, err
	}
	return s.installArchive(m, sc)
}

// archiveManifest parses an archive's model.yaml and checks what can be
// checked before any file is extracted.
func archiveManifest(raw []byte, name, version string) (*Model, error) {
	m, err := parseManifest(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ManifestFile, err)
	}
	if m.Name != name || m.Version != version {
		return nil, fmt.Errorf("%s says %s but the archive holds %s:%s", ManifestFile, m.Tag(), name, version)
	}
	// The manifest's description must be the model's own, so that a runner
	// built from the signature matches the file; the signatures are compared
	// with the model once it is extracted.
	if m.Framework != FrameworkONNX {
		return nil, fmt.Errorf("framework %q: only %q models can be imported", m.Framework, FrameworkONNX)
	}
	if m.Size < 0 {
		return nil, fmt.Errorf("%s says the files are %d bytes: want 0 or more", ManifestFile, m.Size)
	}
	for method := range m.Signatures {
		if !ValidName(method) {
			return nil, fmt.Errorf("method %q: %s", method, nameRule)
		}
	}
	return m, nil
}

// checkDeclared refuses a file that model.yaml does not list, or whose size
// in its tar header does not fit the size model.yaml declares. That size is
// the bytes of all the files together: a file may have at most what is left
// of it after the extracted files before it (written bytes), and the last
// listed file exactly that, which for a model of one file is its size.
func checkDeclared(m *Model, file string, size, written int64, extracted int) error {
	if _, ok := m.SHA256[file]; !ok {
		return fmt.Errorf("%s is in the archive but not in %s, which lists the files of the model (%s): the archive was changed; export the model again", file, ManifestFile, strings.Join(slices.Sorted(maps.Keys(m.SHA256)), ", "))
	}
	left := m.Size - written
	last := extracted+1 == len(m.SHA256)
	switch {
	case last && size != left && extracted == 0:
		return fmt.Errorf("%s is %d bytes in the archive, but %s says it is %d: the archive was changed or damaged (nothing of it was written); export the model again", file, size, ManifestFile, left)
	case last && size != left:
		return fmt.Errorf("%s is %d bytes in the archive, but %s leaves it %d (size %d, less %d in the files before it): the archive was changed or damaged (nothing of it was written); export the model again", file, size, ManifestFile, left, m.Size, written)
	case size > left:
		return fmt.Errorf("%s is %d bytes in the archive, more than the %d %s leaves for it (size %d, less %d in the files before it): the archive was changed or damaged (nothing of it was written); export the model again", file, size, left, ManifestFile, m.Size, written)
	}
	return nil
}

func checkSums(m *Model, sums map[string]string) error {
	for file, want := range m.SHA256 {
		got, ok := sums[file]
		if !ok {
			return fmt.Errorf("%s lists %s, which the archive lacks", ManifestFile, file)
		}
		if got != want {
			return fmt.Errorf("%s has sha256 %s, but %s says %s: the archive was changed or damaged", file, got, ManifestFile, want)
		}
	}
	for file := range sums {
		if _, ok := m.SHA256[file]; !ok {
			return fmt.Errorf("%s is in the archive but not in %s", file, ManifestFile)
		}
	}
	return nil
}

func sameSpecs(a, b []TensorSpec) bool {
	return slices.EqualFunc(a, b, func(x, y TensorSpec) bool {
		return x.Name == y.Name && x.DType == y.DType && x.Kind == y.Kind && slices.Equal(x.Shape, y.Shape)
	})
}

// entryPath checks one archive entry: a regular file name/version/file, or
// a directory on the way to one. Anything else refuses the archive.
func entryPath(h *tar.Header) (name, version, file string, err error) {
	bad := func(why string) error { return fmt.Errorf("entry %q: %s", h.Name, why) }
	p := strings.TrimSuffix(h.Name, "/")
	if p == "" || strings.HasPrefix(p, "/") || path.Clean(p) != p {
		return "", "", "", bad("want a clean relative path name/version/file")
	}
	parts := strings.Split(p, "/")
	switch h.Typeflag {
	case tar.TypeDir:
		if len(parts) > 2 {
			return "", "", "", bad("directories deeper than name/version/ are not part of a model")
		}
	case tar.TypeReg:
		if len(parts) != 3 {
			return "", "", "", bad("want name/version/file")
		}
	default:
		return "", "", "", bad(fmt.Sprintf("type %q: only regular files are accepted (no links or devices)", h.Typeflag))
	}
	if err := checkName(parts[0]); err != nil {
		return "", "", "", bad(err.Error())
	}
	if len(parts) > 1 {
		if err := checkVersion(parts[1]); err != nil {
			return "", "", "", bad(err.Error())
		}
	}
	if len(parts) < 3 {
		return parts[0], "", "", nil
	}
	if !validFile(parts[2]) {
		return "", "", "", bad("file names are letters, digits and ._- (at most 128)")
	}
	if h.Size < 0 {
		return "", "", "", bad("negative size")
	}
	return parts[0], parts[1], parts[2], nil
}

func (s *Store) installArchive(m *Model, sc *scratch) (*Model, error) {
	unlock, err := s.lockName(m.Name)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if err := os.MkdirAll(filepath.Join(s.dir, m.Name), 0o755); err != nil {
		return nil, err
	}
	final := filepath.Join(s.dir, m.Name, m.Version)
	if err := os.Rename(sc.dir, final); err != nil {
		if isDir(final) {
			return nil, fmt.Errorf("%w: %s (delete it first to replace it)", ErrExists, m.Tag())
		}
		return nil, err
	}
	if err := atomicfile.SyncDir(filepath.Join(s.dir, m.Name)); err != nil {
		return nil, err
	}
	if err := s.updateLatestLocked(m.Name); err != nil {
		return nil, fmt.Errorf("model %s stored, but latest was not updated: %w", m.Tag(), err)
	}
	return s.get(Tag{Name: m.Name, Version: m.Version})
}
