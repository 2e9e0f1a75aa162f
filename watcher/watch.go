package watcher

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/benchtop/benchtop/engine"
)

// Status is the state of the live config, for the UI header and /readyz.
type Status struct {
	Path       string
	Hash       string
	LastReload time.Time // last attempt, applied or refused
	OK         bool      // the last attempt applied (or was a no-op)
	Err        string    // why the last attempt was refused
	Changes    []string  // what the last applied reload changed
}

// Reloader keeps an engine in step with a config file.
type Reloader struct {
	eng      *engine.Engine
	path     string // "" for an embedded config: nothing to watch
	data     []byte // the embedded bytes when path is ""
	name     string
	getenv   func(string) string
	models   ModelResolver
	runners  []string
	debounce time.Duration
	ready    time.Duration
	onWatch  func(dir string)

	reloads     *prometheus.CounterVec
	lastOK      prometheus.Gauge
	lastOKTime  prometheus.Gauge
	info        *prometheus.GaugeVec
	applyMu     sync.Mutex
	mu          sync.Mutex
	status      Status
	current     *Checked
	subscribers []chan<- Status
}

// Options tune a Reloader; zero values are sensible.
type Options struct {
	// Debounce collapses the burst of events an editor's save makes.
	Debounce time.Duration
	// ReadyTimeout bounds how long a reload waits for new runners.
	ReadyTimeout time.Duration
	// Getenv reads overrides (BENCHTOP_PORT…); nil means os.Getenv.
	Getenv func(string) string
	// Models resolves `model:` tags; its WatchDirs are watched too.
	Models ModelResolver
	// Registerer gets the benchtop_config_* metrics; nil keeps them on a
	// registry of the reloader's own.
	Registerer prometheus.Registerer
	// OnWatch, if set, is called by Run with each folder it starts to
	// watch (the config file's, the model store's and each model's, then
	// each model folder that appears), once a change there will be seen.
	// It runs in Run's goroutine and must not block. Tests wait for it
	// rather than sleep before they change a file.
	OnWatch func(dir string)
	// Runners, if not nil, serves only these runners of the file and none
	// of its APIs (a runner server); see WithRunners.
	Runners []string
}

// NewReloader prepares to load path into eng; an empty path means the
// embedded data, which is applied once and never watched.
func NewReloader(eng *engine.Engine, path string, embedded []byte, embeddedName string, opts Options) (*Reloader, error) {
	if opts.Debounce <= 0 {
		opts.Debounce = 100 * time.Millisecond
	}
	if opts.ReadyTimeout <= 0 {
		opts.ReadyTimeout = engine.DefaultReadyTimeout
	}
	if opts.Getenv == nil {
		opts.Getenv = os.Getenv
	}
	if opts.Registerer == nil {
		opts.Registerer = prometheus.NewRegistry()
	}
	if opts.OnWatch == nil {
		opts.OnWatch = func(string) {}
	}
	r := &Reloader{
		eng: eng, data: embedded, name: embeddedName, getenv: opts.Getenv, models: opts.Models, runners: opts.Runners,
		debounce: opts.Debounce, ready: opts.ReadyTimeout, onWatch: opts.OnWatch,
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "benchtop_config_reloads_total",
			Help: "Config reloads by result (applied, unchanged, refused).",
		}, []string{"result"}),
		lastOK: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "benchtop_config_last_reload_successful",
			Help: "1 if the last config reload applied (or found nothing to change), 0 if it was refused.",
		}),
		lastOKTime: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "benchtop_config_last_reload_success_timestamp_seconds",
			Help: "When the config was last applied, in Unix seconds.",
		}),
		info: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "benchtop_config_info",
			Help: "The config being served: its file and the sha256 of its bytes.",
		}, []string{"file", "hash"}),
	}
	if path != "" {
		abs, err := filepath.Abs(path)
		if err != nil {
			return nil, fmt.Errorf("config path %q: %w", path, err)
		}
		r.path = abs
		r.name = path
	}
	r.status.Path = r.name
	for _, c := range []prometheus.Collector{r.reloads, r.lastOK, r.lastOKTime, r.info} {
		if err := opts.Registerer.Register(c); err != nil {
			return nil, fmt.Errorf("register reload metrics: %w", err)
		}
	}
	return r, nil
}

// Path is the watched file ("" for the embedded config).
func (r *Reloader) Path() string { return r.path }

// Status returns the live config's state.
func (r *Reloader) Status() Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.status
}

// Current is the config being served (nil before the first apply).
func (r *Reloader) Current() *Checked {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.current
}

// Subscribe delivers a Status after every reload attempt. Sends never block:
// a subscriber that is not reading misses updates, never stalls reloads.
func (r *Reloader) Subscribe(ch chan<- Status) {
	r.mu.Lock()
	r.subscribers = append(r.subscribers, ch)
	r.mu.Unlock()
}

// Reload reads the config and applies it. A config with the same bytes as
// the one served is a no-op; a broken one changes nothing and says why.
func (r *Reloader) Reload(ctx context.Context) error {
	r.applyMu.Lock()
	defer r.applyMu.Unlock()
	data := r.data
	if r.path != "" {
		var err error
		data, err = os.ReadFile(r.path)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				err = fmt.Errorf("%s is gone; still serving the last config until it is back", r.name)
			}
			return r.refused(err)
		}
	}
	var opts []Option
	if r.models != nil {
		opts = append(opts, WithModels(r.models))
	}
	if r.runners != nil {
		opts = append(opts, WithRunners(r.runners))
	}
	cfg, err := ParseAndValidate(ctx, r.name, data, r.eng, r.getenv, opts...)
	if err != nil {
		return r.refused(err)
	}
	if cur := r.Current(); cur != nil && cur.Hash == cfg.Hash {
		r.reloads.WithLabelValues("unchanged").Inc()
		r.lastOK.Set(1) // the last attempt succeeded: what serves is the file
		if st := r.Status(); !st.OK && !st.LastReload.IsZero() {
			// A refusal was announced; its end must be too.
			r.eng.Events().Add(slog.LevelInfo, "", "config fixed: "+r.name+" is the config that serves again (nothing to apply)")
		}
		r.finish(cfg, nil, nil)
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, r.ready)
	defer cancel()
	res, err := r.eng.Apply(ctx, cfg.Plan)
	if err != nil {
		return r.refused(fmt.Errorf("%s: not applied, the previous config keeps serving: %w", r.name, err))
	}
	r.reloads.WithLabelValues("applied").Inc()
	r.lastOK.Set(1)
	r.lastOKTime.SetToCurrentTime()
	r.info.Reset()
	r.info.WithLabelValues(r.name, cfg.Hash[:12]).Set(1)
	msg := "config applied: " + r.name
	if len(res.Changes) > 0 {
		msg = "config reloaded: " + strings.Join(res.Changes, "; ")
	}
	r.eng.Events().Add(slog.LevelInfo, "", msg)
	r.finish(cfg, res.Changes, nil)
	return nil
}

func (r *Reloader) refused(err error) error {
	r.reloads.WithLabelValues("refused").Inc()
	r.lastOK.Set(0)
	first, _, _ := strings.Cut(err.Error(), "\n")
	r.eng.Events().Add(slog.LevelError, "", "config reload refused: "+first)
	r.finish(nil, nil, err)
	return err
}

func (r *Reloader) finish(cfg *Checked, changes []string, err error) {
	r.mu.Lock()
	r.status.LastReload = time.Now()
	r.status.OK = err == nil
	r.status.Err = ""
	if err != nil {
		r.status.Err = err.Error()
	}
	if cfg != nil {
		r.current = cfg
		r.status.Hash = cfg.Hash
		if changes != nil {
			r.status.Changes = changes
		}
	}
	st := r.status
	subs := r.subscribers
	r.mu.Unlock()
	for _, ch := range subs {
		select {
		case ch <- st:
		default:
		}
	}
}

// Run watches the config file until ctx ends, reloading after each burst of
// changes. It watches the directory, not the file, because editors save by
// writing a new file and renaming it over the old one, which would end a
// watch on the file itself; and it outlives the file vanishing and coming
// back. Watch errors are reported and the watch goes on.
func (r *Reloader) Run(ctx context.Context) error {
	var modelDirs []string
	if r.models != nil {
		modelDirs = r.models.WatchDirs()
	}
	if r.path == "" && len(modelDirs) == 0 {
		<-ctx.Done()
		return nil
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch config: %w", err)
	}
	defer w.Close()
	if r.path != "" {
		if err := w.Add(filepath.Dir(r.path)); err != nil {
			return fmt.Errorf("watch %s: %w", filepath.Dir(r.path), err)
		}
		r.onWatch(filepath.Dir(r.path))
	}
	store := newStoreWatch(w, modelDirs, r.onWatch)
	var timer *time.Timer
	var fire <-chan time.Time
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return nil
			}
			if r.relevant(ev, store) {
				timer, fire = rearm(timer, r.debounce)
			}
		case err, ok := <-w.Errors:
			if !ok {
				return nil
			}
			r.eng.Events().Add(slog.LevelWarn, "", fmt.Sprintf("config watch: %v (still watching)", err))
		case <-fire:
			fire = nil
			_ = r.Reload(ctx) // the outcome is in Status, the events and the metrics
		}
	}
}

// relevant says whether ev may change what is served: the config file
// written (not only its mode changed), or a model store changing.
func (r *Reloader) relevant(ev fsnotify.Event, store *storeWatch) bool {
	name := filepath.Clean(ev.Name)
	if !store.contains(name) {
		return name == r.path && ev.Op != fsnotify.Chmod
	}
	store.follow(name, ev.Op)
	return filepath.Base(name) == "latest" || ev.Op&(fsnotify.Create|fsnotify.Remove|fsnotify.Rename) != 0
}

// rearm starts the debounce timer, or restarts it.
func rearm(t *time.Timer, d time.Duration) (*time.Timer, <-chan time.Time) {
	if t == nil {
		t = time.NewTimer(d)
	} else {
		t.Reset(d)
	}
	return t, t.C
}

// storeWatch watches the model stores one level deep: each root (new
// models) and each model's folder, where `latest` is replaced on a new
// version.
type storeWatch struct {
	w       *fsnotify.Watcher
	roots   []string // cleaned
	watched map[string]bool
	onWatch func(dir string) // Options.OnWatch
}

func newStoreWatch(w *fsnotify.Watcher, roots []string, onWatch func(dir string)) *storeWatch {
	s := &storeWatch{w: w, watched: map[string]bool{}, onWatch: onWatch}
	for _, d := range roots {
		s.roots = append(s.roots, filepath.Clean(d))
		s.watchTree(d)
	}
	return s
}

func (s *storeWatch) watchTree(dir string) {
	for _, d := range append([]string{dir}, subdirs(dir)...) {
		if !s.watched[d] && s.w.Add(d) == nil {
			s.watched[d] = true
			s.onWatch(d)
		}
	}
}

// contains says whether name lies inside a store.
func (s *storeWatch) contains(name string) bool {
	for _, d := range s.roots {
		if strings.HasPrefix(name, d+string(filepath.Separator)) {
			return true
		}
	}
	return false
}

// follow watches a model's folder created in a store's root, and forgets
// one removed or renamed away, so that a folder made again under the same
// name is watched again (the kernel drops a removed folder's watch).
func (s *storeWatch) follow(name string, op fsnotify.Op) {
	if op&(fsnotify.Remove|fsnotify.Rename) != 0 && s.watched[name] {
		delete(s.watched, name)
		_ = s.w.Remove(name) // already gone with the folder, most often
		return
	}
	if op&fsnotify.Create == 0 || filepath.Dir(name) == name {
		return
	}
	for _, d := range s.roots {
		if filepath.Dir(name) == d {
			s.watchTree(name)
		}
	}
}

func subdirs(dir string) []string {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	return out
}
