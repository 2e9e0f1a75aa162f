package onnx

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	ort "github.com/yalue/onnxruntime_go"
)

// EnvLibrary names the environment variable that points at the library.
const EnvLibrary = "BENCHTOP_ONNXRUNTIME_LIB"

// Version is the ONNX Runtime release the bindings speak (C API 24).
const Version = "1.24.1"

// CacheDir is where scripts/install-onnxruntime.sh puts the library,
// relative to the project root.
var CacheDir = filepath.Join(".cache", "onnxruntime")

// libNames are the file names the library goes by, most specific first.
var libNames = []string{"libonnxruntime.so.1", "libonnxruntime.so." + Version, "libonnxruntime.so"}

// systemDirs are searched last, after LD_LIBRARY_PATH.
var systemDirs = []string{"/usr/local/lib", "/usr/lib", "/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/opt/onnxruntime/lib"}

// ErrNoLibrary is what Load returns when the library was not found.
var ErrNoLibrary = errors.New("onnx runtime library not found")

// Library is the ONNX Runtime shared library, found on disk and loaded into
// the process at most once.
type Library struct {
	path   string
	looked []string // where Locate looked, for the error
	err    error    // why it could not be located
}

// Locate finds the library: $BENCHTOP_ONNXRUNTIME_LIB if set (and then only
// there), else .cache/onnxruntime/ in the working directory, in the project
// root above it (the nearest parent holding go.mod, so tests and commands
// run from a package folder find it), next to the executable and in its
// parent (bin/..), then in LD_LIBRARY_PATH and the system's library
// directories. Not finding it is not an error yet: Load reports it, so that
// only onnx runners fail.
func Locate() *Library {
	if p := os.Getenv(EnvLibrary); p != "" {
		if isFile(p) {
			return &Library{path: p}
		}
		return &Library{looked: []string{p}, err: fmt.Errorf("%w: %s=%s is not a file", ErrNoLibrary, EnvLibrary, p)}
	}
	var dirs []string
	if wd, err := os.Getwd(); err == nil {
		dirs = append(dirs, wd)
		if root := projectRoot(wd); root != "" {
			dirs = append(dirs, root)
		}
	}
	if exe, err := os.Executable(); err == nil {
		if real, err := filepath.EvalSymlinks(exe); err == nil {
			exe = real
		}
		dirs = append(dirs, filepath.Dir(exe), filepath.Dir(filepath.Dir(exe)))
	}
	var looked []string
	for _, d := range dirs {
		p := filepath.Join(d, CacheDir, libNames[0])
		if slices.Contains(looked, p) {
			continue
		}
		looked = append(looked, p)
		if isFile(p) {
			return &Library{path: p}
		}
	}
	sys := filepath.SplitList(os.Getenv("LD_LIBRARY_PATH"))
	for _, d := range append(sys, systemDirs...) {
		if d == "" {
			continue
		}
		for _, n := range libNames {
			p := filepath.Join(d, n)
			looked = append(looked, p)
			if isFile(p) {
				return &Library{path: p}
			}
		}
	}
	return &Library{looked: looked, err: ErrNoLibrary}
}

// projectRoot is the nearest ancestor of dir holding go.mod, "" if none.
func projectRoot(dir string) string {
	for {
		if isFile(filepath.Join(dir, "go.mod")) {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

// NewLibrary is a library at a known path.
func NewLibrary(path string) *Library {
	if !isFile(path) {
		return &Library{looked: []string{path}, err: fmt.Errorf("%w: %s is not a file", ErrNoLibrary, path)}
	}
	return &Library{path: path}
}

func isFile(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

// Path is the library's file, "" if none was found.
func (l *Library) Path() string { return l.path }

// The runtime's environment is process-global: one library, initialised
// once; a failure is remembered so that every worker reports the same cause
// without retrying a dlopen that cannot succeed.
var global struct {
	mu   sync.Mutex
	path string
	err  error
	done bool
}

// Load loads the library into the process and initialises the runtime, or
// returns why it cannot, with how to fix it. Only the first library loaded
// in a process counts: loading another path afterwards is an error.
func (l *Library) Load() error {
	if l == nil {
		return fmt.Errorf("%w: no library given (use onnx.Locate())", ErrNoLibrary)
	}
	if l.err != nil {
		return fmt.Errorf("%w\n  looked in: %s\n  install it with scripts/install-onnxruntime.sh (ONNX Runtime %s), or set %s to its path",
			l.err, summarize(l.looked), Version, EnvLibrary)
	}
	global.mu.Lock()
	defer global.mu.Unlock()
	if global.done {
		if global.path != l.path {
			return fmt.Errorf("onnx runtime already loaded from %s; cannot also load %s in one process", global.path, l.path)
		}
		return global.err
	}
	global.done, global.path = true, l.path
	ort.SetSharedLibraryPath(l.path)
	if err := ort.InitializeEnvironment(ort.WithLogLevelError()); err != nil {
		global.err = fmt.Errorf("load onnx runtime %s: %w (benchtop needs ONNX Runtime %s: run scripts/install-onnxruntime.sh or set %s)", l.path, err, Version, EnvLibrary)
	}
	return global.err
}

func summarize(paths []string) string {
	const show = 4
	if len(paths) <= show {
		return strings.Join(paths, ", ")
	}
	return strings.Join(paths[:show], ", ") + fmt.Sprintf(" and %d more", len(paths)-show)
}
