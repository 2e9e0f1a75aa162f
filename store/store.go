package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/benchtop/benchtop/store/atomicfile"
)

// Errors callers can match with errors.Is.
var (
	ErrNotFound = errors.New("model not found")
	ErrExists   = errors.New("model version already exists")
)

const (
	tmpDir    = ".tmp"
	locksDir  = ".locks"
	latestDir = Latest // the pointer file inside <name>/
)

var fileRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$`)

func validFile(s string) bool { return fileRE.MatchString(s) }

// Store is a model store rooted at one directory. It holds no state of its
// own beyond the path, so any number of Stores and processes may share a
// directory: changes to a name are serialised by a file lock.
type Store struct {
	dir string
}

// DefaultDir is $BENCHTOP_HOME/models, else ~/.benchtop/models.
func DefaultDir() (string, error) {
	if h := os.Getenv("BENCHTOP_HOME"); h != "" {
		return filepath.Join(h, "models"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("find the model store: %w (set BENCHTOP_HOME)", err)
	}
	return filepath.Join(home, ".benchtop", "models"), nil
}

// Open opens (creating it if needed) the store at dir and removes what
// crashed imports and deletes left behind.
func Open(dir string) (*Store, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("open model store %s: %w", dir, err)
	}
	s := &Store{dir: abs}
	for _, d := range []string{abs, s.tmp(), filepath.Join(abs, locksDir)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("open model store: %w", err)
		}
	}
	if err := s.Clean(); err != nil {
		return nil, fmt.Errorf("open model store %s: %w", abs, err)
	}
	return s, nil
}

// Dir is the store's root directory.
func (s *Store) Dir() string { return s.dir }

// LatestFile is the file whose content is the version name:latest means.
// It is replaced by rename, so a watcher sees a Create event on it (watch
// its directory, filepath.Dir of it: the file itself is replaced).
func (s *Store) LatestFile(name string) string { return filepath.Join(s.dir, name, latestDir) }

func (s *Store) tmp() string { return filepath.Join(s.dir, tmpDir) }

// Clean removes the temp directories of imports and deletes whose process
// died; those of running ones are kept, since their lock is still held.
func (s *Store) Clean() error {
	entries, err := os.ReadDir(s.tmp())
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range entries {
		name := e.Name()
		base, isLock := strings.CutSuffix(name, ".lock")
		if !isLock {
			if _, err := os.Lstat(filepath.Join(s.tmp(), name+".lock")); err == nil {
				continue // handled with its lock
			}
			base = name
		}
		lock, ok, err := lockFile(filepath.Join(s.tmp(), base+".lock"), false)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !ok {
			continue // its owner is alive
		}
		if err := os.RemoveAll(filepath.Join(s.tmp(), base)); err != nil {
			errs = append(errs, err)
		}
		unlockRemove(lock)
	}
	return errors.Join(errs...)
}

// scratch is a locked temp directory: the work area of one import or delete.
type scratch struct {
	dir  string
	lock *os.File
}

func (s *Store) newScratch(kind string) (*scratch, error) {
	for {
		id := kind + "-" + NewVersion(time.Now())
		lock, _, err := lockFile(filepath.Join(s.tmp(), id+".lock"), true)
		if err != nil {
			return nil, fmt.Errorf("temp dir: %w", err)
		}
		dir := filepath.Join(s.tmp(), id)
		if err := os.Mkdir(dir, 0o755); err != nil {
			unlockRemove(lock)
			if errors.Is(err, fs.ErrExist) {
				continue
			}
			return nil, fmt.Errorf("temp dir: %w", err)
		}
		return &scratch{dir: dir, lock: lock}, nil
	}
}

// release removes what is left of the scratch dir, then its lock.
func (sc *scratch) release() {
	_ = os.RemoveAll(sc.dir)
	unlockRemove(sc.lock)
}

func unlockRemove(f *os.File) {
	_ = os.Remove(f.Name())
	_ = f.Close()
}

// lockName serialises changes to one name (install, delete, latest).
func (s *Store) lockName(name string) (func(), error) {
	f, _, err := lockFile(filepath.Join(s.dir, locksDir, name+".lock"), true)
	if err != nil {
		return nil, fmt.Errorf("lock model %q: %w", name, err)
	}
	return func() { _ = f.Close() }, nil
}

// Names lists the names with at least one version, sorted.
func (s *Store) Names() ([]string, error) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("list models: %w", err)
	}
	var names []string
	for _, e := range entries {
		if e.IsDir() && ValidName(e.Name()) {
			names = append(names, e.Name())
		}
	}
	return names, nil
}

// versions reads every complete version of name, newest first.
func (s *Store) versions(name string) ([]*Model, error) {
	entries, err := os.ReadDir(filepath.Join(s.dir, name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var ms []*Model
	for _, e := range entries {
		if !e.IsDir() || !ValidVersion(e.Name()) {
			continue
		}
		m, err := readManifest(filepath.Join(s.dir, name, e.Name()))
		if err != nil || m.Name != name || m.Version != e.Name() {
			// Not something the store wrote; Get reports it by its tag.
			continue
		}
		ms = append(ms, m)
	}
	sort.Slice(ms, func(i, j int) bool { return newer(ms[i], ms[j]) })
	if len(ms) > 0 {
		latest := s.readLatest(name, ms)
		for _, m := range ms {
			m.Latest = m.Version == latest
		}
	}
	return ms, nil
}

func newer(a, b *Model) bool {
	if !a.Created.Equal(b.Created) {
		return a.Created.After(b.Created)
	}
	return a.Version > b.Version
}

// readLatest is the version in <name>/latest, or the newest one when the
// file is missing or stale (a crash between install and pointer update).
func (s *Store) readLatest(name string, ms []*Model) string {
	raw, err := os.ReadFile(s.LatestFile(name))
	if err == nil {
		v := strings.TrimSpace(string(raw))
		for _, m := range ms {
			if m.Version == v {
				return v
			}
		}
	}
	return ms[0].Version
}

// List returns every model version, by name, newest version first.
func (s *Store) List() ([]*Model, error) {
	names, err := s.Names()
	if err != nil {
		return nil, err
	}
	var all []*Model
	for _, n := range names {
		ms, err := s.versions(n)
		if err != nil {
			return nil, fmt.Errorf("list models: %w", err)
		}
		all = append(all, ms...)
	}
	return all, nil
}

// Get resolves a tag (name, name:latest, name:version or a unique version
// prefix) to a stored model.
func (s *Store) Get(tag string) (*Model, error) {
	t, err := ParseTag(tag)
	if err != nil {
		return nil, err
	}
	return s.get(t)
}

func (s *Store) get(t Tag) (*Model, error) {
	ms, err := s.versions(t.Name)
	if err != nil {
		return nil, fmt.Errorf("get model %s: %w", t, err)
	}
	if len(ms) == 0 {
		names, _ := s.Names()
		have := "the store is empty"
		if len(names) > 0 {
			have = "models: " + strings.Join(names, ", ")
		}
		return nil, fmt.Errorf("%w: %q in %s (%s)", ErrNotFound, t.Name, s.dir, have)
	}
	if t.Version == "" {
		for _, m := range ms {
			if m.Latest {
				return m, nil
			}
		}
	}
	var matches []*Model
	for _, m := range ms {
		if m.Version == t.Version {
			return m, nil
		}
		if strings.HasPrefix(m.Version, t.Version) {
			matches = append(matches, m)
		}
	}
	switch len(matches) {
	case 1:
		return matches[0], nil
	case 0:
		if dir := filepath.Join(s.dir, t.Name, t.Version); isDir(dir) {
			if _, err := readManifest(dir); err != nil {
				return nil, fmt.Errorf("model %s is damaged: %w", t, err)
			}
		}
		return nil, fmt.Errorf("%w: %s (versions of %s: %s)", ErrNotFound, t, t.Name, versionList(ms))
	}
	return nil, fmt.Errorf("model tag %s is ambiguous: it starts %d versions (%s); give more of the version", t, len(matches), versionList(matches))
}

func isDir(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

func versionList(ms []*Model) string {
	vs := make([]string, len(ms))
	for i, m := range ms {
		vs[i] = m.Version
	}
	return strings.Join(vs, ", ")
}

// Delete removes one version (the one the tag resolves to) and points
// latest at the newest remaining version.
func (s *Store) Delete(tag string) (*Model, error) {
	t, err := ParseTag(tag)
	if err != nil {
		return nil, err
	}
	unlock, err := s.lockName(t.Name)
	if err != nil {
		return nil, err
	}
	defer unlock()
	m, err := s.get(t)
	if err != nil {
		return nil, fmt.Errorf("delete: %w", err)
	}
	sc, err := s.newScratch("delete")
	if err != nil {
		return nil, fmt.Errorf("delete model %s: %w", m.Tag(), err)
	}
	defer sc.release()
	// Out of the name's directory in one rename, so no reader sees half a
	// version; the files go with the scratch dir.
	if err := os.Rename(m.Dir, filepath.Join(sc.dir, m.Version)); err != nil {
		return nil, fmt.Errorf("delete model %s: %w", m.Tag(), err)
	}
	if err := s.updateLatestLocked(t.Name); err != nil {
		return m, fmt.Errorf("delete model %s: %w", m.Tag(), err)
	}
	return m, nil
}

// updateLatestLocked points <name>/latest at the newest version, or removes
// the name when none is left. The caller holds the name's lock.
func (s *Store) updateLatestLocked(name string) error {
	ms, err := s.versions(name)
	if err != nil {
		return err
	}
	// Leftovers of a crash in atomicfile.WriteFile: writers hold this lock.
	stale, _ := atomicfile.Leftovers(s.LatestFile(name))
	for _, f := range stale {
		_ = os.Remove(f)
	}
	if len(ms) == 0 {
		_ = os.Remove(s.LatestFile(name))
		// Fails harmlessly if someone put other files there.
		_ = os.Remove(filepath.Join(s.dir, name))
		return nil
	}
	want := ms[0].Version
	if raw, err := os.ReadFile(s.LatestFile(name)); err == nil && strings.TrimSpace(string(raw)) == want {
		return nil
	}
	return atomicfile.WriteFile(s.LatestFile(name), []byte(want+"\n"))
}

// Progress reports bytes done out of total (-1 when unknown).
type Progress func(done, total int64)

// SignatureOptions is how a runner calls the model.
type SignatureOptions struct {
	Method    string
	Batchable bool
	BatchDim  int
	// Auto makes Batchable a wish, not a demand: a model that cannot be
	// batched along BatchDim (exported with a fixed batch size, [1, 64])
	// is imported not batchable, the reason in its Signature's Note,
	// instead of refused.
	Auto bool
}

// DefaultSignature is method "run", batchable along dim 0 if the model
// lets that dim vary, and not batchable otherwise.
func DefaultSignature() SignatureOptions {
	return SignatureOptions{Method: "run", Batchable: true, Auto: true}
}

// ImportOptions say how to store a model file.
type ImportOptions struct {
	Name string
	// Version is generated (time-sortable, unique) when empty.
	Version string
	// Signature defaults to DefaultSignature().
	Signature *SignatureOptions
	Labels    map[string]string
	// Metadata is added to what the model file says about itself.
	Metadata map[string]string
	// KeepExisting makes the import a no-op returning the latest version
	// when the name already has one, decided under the name's lock so that
	// racing first runs import a sample once.
	KeepExisting bool
	Progress     Progress
}

var labelKeyRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._/-]{0,62}$`)

func (o *ImportOptions) check() (SignatureOptions, error) {
	if err := checkName(o.Name); err != nil {
		return SignatureOptions{}, err
	}
	if o.Version != "" {
		if err := checkVersion(o.Version); err != nil {
			return SignatureOptions{}, err
		}
	}
	sig := DefaultSignature()
	if o.Signature != nil {
		sig = *o.Signature
	}
	if !ValidName(sig.Method) {
		return sig, fmt.Errorf("method %q: %s", sig.Method, nameRule)
	}
	if sig.BatchDim < 0 {
		return sig, fmt.Errorf("batch dim %d: want 0 or more", sig.BatchDim)
	}
	for k := range o.Labels {
		if !labelKeyRE.MatchString(k) {
			return sig, fmt.Errorf("label %q: keys are letters, digits and ._/- (at most 63)", k)
		}
	}
	return sig, nil
}

// Import copies the ONNX model at path into the store as a new version,
// reading its inputs and outputs from the model itself, and makes it the
// latest version of its name.
func (s *Store) Import(ctx context.Context, path string, opts ImportOptions) (*Model, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("import model: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("import model: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("import model: %s is not a regular file", path)
	}
	m, err := s.importReader(ctx, f, st.Size(), opts)
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", path, err)
	}
	return m, nil
}

// ImportData is Import for a model held in memory.
func (s *Store) ImportData(ctx context.Context, data []byte, opts ImportOptions) (*Model, error) {
	m, err := s.importReader(ctx, bytes.NewReader(data), int64(len(data)), opts)
	if err != nil {
		return nil, fmt.Errorf("import model %q: %w", opts.Name, err)
	}
	return m, nil
}

const modelFile = "model.onnx"

func (s *Store) importReader(ctx context.Context, r io.Reader, size int64, opts ImportOptions) (*Model, error) {
	sigOpts, err := opts.check()
	if err != nil {
		return nil, err
	}
	if opts.KeepExisting {
		// Spare the copy; install decides again under the lock.
		if m, err := s.get(Tag{Name: opts.Name}); err == nil {
			return m, nil
		}
	}
	sc, err := s.newScratch("import")
	if err != nil {
		return nil, err
	}
	defer sc.release()
	sum, n, err := copyFile(ctx, filepath.Join(sc.dir, modelFile), r, size, opts.Progress)
	if err != nil {
		return nil, err
	}
	sig, meta, err := describeONNX(filepath.Join(sc.dir, modelFile), sigOpts)
	if err != nil {
		return nil, err
	}
	maps.Copy(meta, opts.Metadata)
	m := &Model{
		Name:       opts.Name,
		Version:    opts.Version,
		Framework:  FrameworkONNX,
		File:       modelFile,
		Created:    time.Now().UTC(),
		Size:       n,
		SHA256:     map[string]string{modelFile: sum},
		Signatures: map[string]Signature{sigOpts.Method: sig},
		Labels:     opts.Labels,
		Metadata:   meta,
	}
	return s.install(m, sc, opts.Version == "", opts.KeepExisting)
}

// install writes model.yaml into the scratch dir and renames it into place
// under the name's lock, then updates latest.
func (s *Store) install(m *Model, sc *scratch, generated, keepExisting bool) (*Model, error) {
	unlock, err := s.lockName(m.Name)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if keepExisting {
		if existing, err := s.get(Tag{Name: m.Name}); err == nil {
			return existing, nil
		}
	}
	if err := os.MkdirAll(filepath.Join(s.dir, m.Name), 0o755); err != nil {
		return nil, err
	}
	for attempt := 0; ; attempt++ {
		if generated {
			m.Version = NewVersion(m.Created)
		}
		raw, err := m.marshal()
		if err != nil {
			return nil, err
		}
		if err := atomicfile.WriteFile(filepath.Join(sc.dir, ManifestFile), raw); err != nil {
			return nil, err
		}
		final := filepath.Join(s.dir, m.Name, m.Version)
		// rename(2) refuses to replace a non-empty directory: an existing
		// version is never overwritten, even by a racing process.
		err = os.Rename(sc.dir, final)
		if err == nil {
			m.Dir = final
			break
		}
		if !isDir(final) {
			return nil, err
		}
		if !generated || attempt > 3 {
			return nil, fmt.Errorf("%w: %s (delete it first or pick another --version)", ErrExists, m.Tag())
		}
	}
	if err := atomicfile.SyncDir(filepath.Join(s.dir, m.Name)); err != nil {
		return nil, err
	}
	if err := s.updateLatestLocked(m.Name); err != nil {
		return nil, fmt.Errorf("model %s stored, but latest was not updated: %w", m.Tag(), err)
	}
	got, err := s.get(Tag{Name: m.Name, Version: m.Version})
	if err != nil {
		return nil, err
	}
	return got, nil
}

// copyFile writes r to path, synced, and returns its sha256 and size.
func copyFile(ctx context.Context, path string, r io.Reader, total int64, progress Progress) (string, int64, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := copyCtx(ctx, io.MultiWriter(f, h), r, total, progress)
	if err != nil {
		return "", n, err
	}
	if err := f.Sync(); err != nil {
		return "", n, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, f.Close()
}

// copyCtx copies in chunks, checking ctx and reporting progress between them.
func copyCtx(ctx context.Context, w io.Writer, r io.Reader, total int64, progress Progress) (int64, error) {
	buf := make([]byte, 1<<20)
	var n int64
	for {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		k, rerr := r.Read(buf)
		if k > 0 {
			if _, err := w.Write(buf[:k]); err != nil {
				return n, err
			}
			n += int64(k)
			if progress != nil {
				progress(n, total)
			}
		}
		if rerr == io.EOF {
			return n, nil
		}
		if rerr != nil {
			return n, rerr
		}
	}
}

// Verify recomputes the checksums of a stored model's files.
func (s *Store) Verify(tag string) (*Model, error) {
	m, err := s.Get(tag)
	if err != nil {
		return nil, err
	}
	for name, want := range m.SHA256 {
		f, err := os.Open(filepath.Join(m.Dir, name))
		if err != nil {
			return m, fmt.Errorf("verify %s: %w", m.Tag(), err)
		}
		h := sha256.New()
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			return m, fmt.Errorf("verify %s: %w", m.Tag(), err)
		}
		if got := hex.EncodeToString(h.Sum(nil)); got != want {
			return m, fmt.Errorf("verify %s: %s has sha256 %s, model.yaml says %s: the file was changed or damaged", m.Tag(), name, got, want)
		}
	}
	return m, nil
}
